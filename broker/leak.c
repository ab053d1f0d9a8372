/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The leak response in the daemon: what is done once scan.c's live matcher
 * sights a secret or a token (declared in scan.h and scan_internal.h; the
 * matcher and the /v1/scan and /v1/redact routes are in scan.c).  It holds
 * the compromised marks and their file leaks.json, the response itself
 * (leak_respond), the token issuance gate (leak_token_gate) with its canary
 * alert cooldown, and the weak stub of the rotation hook (leak.h).
 *
 * Leak response, once per request and secret (under cbd.lock):
 *   canary            alert "canary" (whatever else on_leak says)
 *   on_leak revoke    revoke every token of the secret; if the sighted
 *                     version is the current one, mark the secret
 *                     compromised: no token is issued for it until its
 *                     current version changes (rotation, put)
 *   on_leak rotate    leak_rotate_request(name) if the sighted version is the
 *                     current one; otherwise, or if that fails: as revoke
 *   on_leak alert     the alert only
 * Every sighted token that the table knows is revoked.  Each response is
 * an alert (alert_raise) and an audit record with decision "leak" or
 * "canary", at most once per CB_LEAK_ALERT_COOLDOWN seconds per secret (the
 * request's own audit record is written every time).
 * Compromised marks are kept in STATE_DIR/leaks.json ({"compromised":
 * {NAME: VERSION}}, replaced atomically on every change), so a restart does
 * not lift them; a mark goes once the secret's current version changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alert.h"
#include "audit_format.h" /* cb_json_string_lossy */
#include "error.h"
#include "fsutil.h"
#include "leak.h"
#include "scan.h"
#include "scan_internal.h"
#include "match.h" /* cb_scan_kind_name */

/* ---- the rotation hook's stub (leak.h) ---------------------------------- */

__attribute__((weak)) int leak_rotate_request(const char *name) {
        (void)name;
        return cb_error_set(-ENOSYS, "rotation on leak is not available in this broker");
}

/* ---- leak marks: compromised state and alert cooldown ------------------- */

typedef struct mark {
        char name[CB_NAME_MAX + 1];
        uint32_t version;     /* the compromised version */
        bool compromised;
        uint64_t last_alert;
} mark;

static mark *marks;
static size_t n_marks;
static int leaks_dirfd = -1;

#define LEAKS_FILE "leaks.json"
#define LEAKS_MAX (8 * 1024 * 1024)

static mark *mark_get(const char *name, bool create) {
        for (size_t i = 0; i < n_marks; i++)
                if (strcmp(marks[i].name, name) == 0)
                        return &marks[i];
        if (!create)
                return NULL;
        mark *nm = realloc(marks, (n_marks + 1) * sizeof(*nm));
        if (!nm)
                return NULL;
        marks = nm;
        memset(&marks[n_marks], 0, sizeof(*marks));
        snprintf(marks[n_marks].name, sizeof(marks[n_marks].name), "%s", name);
        return &marks[n_marks++];
}

static uint32_t current_version(const char *name) {
        const cb_version_info *vi;
        size_t nv;

        if (cb_store_versions(cbd.store, name, &vi, &nv) < 0)
                return 0;
        for (size_t k = 0; k < nv; k++)
                if (vi[k].state == CB_VS_CURRENT)
                        return vi[k].version;
        return 0;
}

/* Write the compromised marks (under cbd.lock).  A failure is reported
 * and the marks still hold in memory. */
static void leaks_save(void) {
        json_t *o = json_object(), *c = json_object();
        char *text = NULL;
        int r = -ENOMEM;

        if (leaks_dirfd < 0) {
                json_decref(o);
                json_decref(c);
                return;
        }
        for (size_t i = 0; i < n_marks; i++)
                if (marks[i].compromised)
                        json_object_set_new(c, marks[i].name, json_integer(marks[i].version));
        json_object_set_new(o, "compromised", c);
        text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        if (text)
                r = cb_atomic_replace(leaks_dirfd, LEAKS_FILE, text, strlen(text));
        if (r < 0)
                fprintf(stderr, "credbrokerd: cannot record compromised secrets in %s: %s (they hold until "
                        "restart)\n", LEAKS_FILE, strerror(-r));
        free(text);
        json_decref(o);
}

int scanner_init(const char *state_dir) {
        unsigned char *buf = NULL;
        json_t *o = NULL, *c, *v;
        json_error_t err;
        const char *name;
        size_t len;
        int r;

        leaks_dirfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (leaks_dirfd < 0)
                return cb_error_set(-errno, "%s: %s", state_dir, strerror(errno));
        r = cb_read_file_at(leaks_dirfd, LEAKS_FILE, LEAKS_MAX, &buf, &len);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return cb_error_set(r, "%s/%s: %s", state_dir, LEAKS_FILE, strerror(-r));
        o = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &err);
        c = json_object_get(o, "compromised");
        if (!json_is_object(c)) {
                r = cb_error_set(-EINVAL, "%s/%s: not a {\"compromised\": {NAME: VERSION}} object%s%s: refusing to "
                                 "start without knowing which secrets leaked", state_dir, LEAKS_FILE, o ? "" : ": ",
                                 o ? "" : err.text);
                goto out;
        }
        json_object_foreach(c, name, v) {
                json_int_t ver = json_integer_value(v);
                if (cb_name_check(name) < 0 || !json_is_integer(v) || ver < 1 || ver > UINT32_MAX) {
                        r = cb_error_set(-EINVAL, "%s/%s: bad entry \"%.64s\"", state_dir, LEAKS_FILE, name);
                        goto out;
                }
                mark *m = mark_get(name, true);
                if (!m) {
                        r = cb_error_set(-ENOMEM, "out of memory");
                        goto out;
                }
                m->compromised = true;
                m->version = (uint32_t)ver;
        }
        r = 0;
out:
        json_decref(o);
        free(buf);
        return r;
}

bool scanner_is_compromised(const char *name) {
        mark *m = mark_get(name, false);

        if (!m || !m->compromised)
                return false;
        if (current_version(name) != m->version) {
                m->compromised = false; /* rotated since */
                leaks_save();
                return false;
        }
        return true;
}

void leak_list_compromised(json_t *arr) {
        for (size_t i = 0; i < n_marks; i++)
                if (scanner_is_compromised(marks[i].name))
                        json_array_append_new(arr, json_string(marks[i].name));
}

void leak_shutdown(void) {
        if (leaks_dirfd >= 0)
                close(leaks_dirfd);
        leaks_dirfd = -1;
        free(marks);
        marks = NULL;
        n_marks = 0;
}

/* ---- the leak response -------------------------------------------------- */

/* Mark name compromised at version (0: its current version) and record it
 * (leaks.json): no token is issued for it until its current version
 * changes.  Under cbd.lock. */
void scanner_mark_compromised(const char *name, uint32_t version) {
        mark *m;

        if (!version)
                version = current_version(name);
        if (!version || !(m = mark_get(name, true)) || (m->compromised && m->version == version))
                return;
        m->compromised = true;
        m->version = version;
        leaks_save();
}

/* The leak response (scan_internal.h). */
int leak_respond(request *rq, const scan_seen *seen, size_t n_seen) {
        uint64_t now = (uint64_t)time(NULL);
        int r = 0;

        for (size_t i = 0; i < n_seen; i++) {
                const scan_seen *s = &seen[i];
                json_t *forms = json_array(), *ev;
                const char *action, *decision = "leak";
                size_t revoked = 0;

                for (int k = CB_SK_RAW; k <= CB_SK_TOKEN; k++)
                        if (s->forms & (1u << k))
                                json_array_append_new(forms, json_string(cb_scan_kind_name((enum cb_scan_kind)k)));
                if (s->token) {
                        if (!s->name[0]) {
                                json_decref(forms);
                                continue; /* well-formed, but not a token this broker knows (any longer) */
                        }
                        revoked = cb_tokens_revoke_accessor(cbd.tokens, s->name);
                        (void)proxy_cancel_accessor(s->name, "its token was seen in scanned text");
                        action = "revoke";
                        ev = json_pack("{s:s, s:s, s:o, s:s, s:I}", "what", "token", "accessor", s->name, "forms",
                                       forms, "action", action, "tokens_revoked", (json_int_t)revoked);
                } else {
                        bool canary = cb_policy_is_canary(cbd.policy, s->name);
                        enum cb_on_leak a = cb_policy_on_leak(cbd.policy, s->name);
                        const char *note = NULL;
                        mark *m = mark_get(s->name, true);

                        /* Rotate only when the sighted value is the current one: once
                         * rotated, later sightings of it do not rotate again. */
                        if (a == CB_ON_LEAK_ROTATE && s->version != current_version(s->name)) {
                                note = "the sighted version is not the current one";
                                a = CB_ON_LEAK_REVOKE;
                        }
                        /* Containment now, whatever the rotation hook does later (it
                         * may fail or take its whole timeout): tokens revoked, the
                         * sighted current version marked compromised (the mark goes
                         * once the hook's rotation makes a new version current). */
                        if (a == CB_ON_LEAK_REVOKE || a == CB_ON_LEAK_ROTATE) {
                                revoked = cb_tokens_revoke_secret(cbd.tokens, s->name);
                                (void)proxy_cancel_secret(s->name, "its value was seen in scanned text");
                                if (m && s->version == current_version(s->name))
                                        scanner_mark_compromised(s->name, s->version);
                        }
                        if (a == CB_ON_LEAK_ROTATE && leak_rotate_request(s->name) < 0) {
                                note = cb_error_last();
                                a = CB_ON_LEAK_REVOKE; /* contained above already */
                        }
                        action = a == CB_ON_LEAK_ROTATE ? "rotate" : a == CB_ON_LEAK_REVOKE ? "revoke" : "alert";
                        if (canary)
                                decision = "canary";
                        ev = json_pack("{s:s, s:s, s:I, s:o, s:s, s:I}", "what", "secret", "secret", s->name, "version",
                                       (json_int_t)s->version, "forms", forms, "action", action, "tokens_revoked",
                                       (json_int_t)revoked);
                        if (ev && note)
                                json_object_set_new(ev, "rotate_failed", json_string(note));
                        if (m && m->last_alert && now - m->last_alert < CB_LEAK_ALERT_COOLDOWN && revoked == 0) {
                                json_decref(ev);
                                continue; /* alerted a moment ago, nothing new done */
                        }
                        if (m)
                                m->last_alert = now;
                }
                if (!ev)
                        return -ENOMEM;
                json_object_set_new(ev, "route", json_string(rq->route));
                json_object_set_new(ev, "uid", json_integer(rq->peer.uid));
                json_object_set_new(ev, "pid", json_integer(rq->peer.pid));
                json_object_set_new(ev, "exe", cb_json_string_lossy(rq->peer.exe_path)); /* may not be UTF-8 */
                if (rq->client[0])
                        json_object_set_new(ev, "client", json_string(rq->client));
                alert_raise(decision, ev);
                json_object_set_new(ev, "time", json_integer((json_int_t)now));
                json_object_set_new(ev, "decision", json_string(decision));
                if (audit_emit(ev) < 0)
                        r = -EIO;
                json_decref(ev);
        }
        return r;
}

/* ---- the token gate ----------------------------------------------------- */

/* Canary alerts for token requests: at most one per uid and route per
 * CB_LEAK_ALERT_COOLDOWN seconds (every request is still audited), so a
 * looping tool cannot flood the alert channel. */
#define CANARY_COOL_SLOTS 64
static struct {
        uid_t uid;
        char route[24];
        uint64_t last;
} canary_cool[CANARY_COOL_SLOTS];

static bool canary_alert_due(uid_t uid, const char *route, uint64_t now) {
        size_t oldest = 0;
        for (size_t i = 0; i < CANARY_COOL_SLOTS; i++) {
                if (canary_cool[i].last && canary_cool[i].uid == uid && strcmp(canary_cool[i].route, route) == 0) {
                        if (now - canary_cool[i].last < CB_LEAK_ALERT_COOLDOWN)
                                return false;
                        canary_cool[i].last = now;
                        return true;
                }
                if (canary_cool[i].last < canary_cool[oldest].last)
                        oldest = i;
        }
        canary_cool[oldest].uid = uid;
        snprintf(canary_cool[oldest].route, sizeof(canary_cool[oldest].route), "%s", route);
        canary_cool[oldest].last = now;
        return true;
}

int leak_token_gate(request *rq, const char *secret, int *ret) {
        if (cb_policy_is_canary(cbd.policy, secret)) {
                json_t *ev = json_pack("{s:s, s:o*, s:s, s:I, s:I, s:o*}", "what", "token_request", "secret",
                                       cb_json_string_lossy(secret), "route", rq->route ? rq->route : "token", "uid",
                                       (json_int_t)rq->peer.uid, "pid", (json_int_t)rq->peer.pid, "exe",
                                       cb_json_string_lossy(rq->peer.exe_path)); /* exe may not be UTF-8 */
                if (!ev) /* out of memory: a bare alert rather than none */
                        ev = json_pack("{s:s}", "what", "token_request");
                if (ev) {
                        if (canary_alert_due(rq->peer.uid, rq->route ? rq->route : "token", (uint64_t)time(NULL)))
                                alert_raise("canary", ev);
                        json_object_set_new(ev, "time", json_integer((json_int_t)time(NULL)));
                        json_object_set_new(ev, "decision", json_string("canary"));
                        (void)audit_emit(ev); /* the refusal below is audited too */
                        json_decref(ev);
                }
                *ret = reply_error(rq, 403, "forbidden", "'%s' is never granted", secret);
                return 1;
        }
        if (scanner_is_compromised(secret)) {
                *ret = reply_error(rq, 403, "compromised", "'%s' was seen leaked: no token until it is rotated",
                                   secret);
                return 1;
        }
        return 0;
}
