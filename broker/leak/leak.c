/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The leak response in the daemon: what is done once scan.c's live matcher
 * sights a secret or a token (declared in scan.h and scan_internal.h; the
 * matcher and the /v1/scan and /v1/redact routes are in scan.c).  It holds
 * the compromised marks and their file leaks.json, the response itself
 * (leak_respond), the token issuance gate (leak_token_gate) with its canary
 * alert cooldown.  The subsystems that react to a leak (the token table
 * revokes, proxy/ cuts streams, rotate/ rotates) are reached through
 * leak_react.c (leak_react.h); the store and the token table are handed
 * in by main.c (leak_attach, scan.h).
 *
 * Locks: leak responses serialise among themselves on respond_lock (the
 * alert cooldowns; a response does store writes: the marks); the marks
 * array on marks_lock (memory only); the store guards itself (its writers'
 * mutex, the read side for readers).  No tools.sock request waits for
 * respond_lock but one that sighted something (scan_finish), which then
 * runs its own response.
 *
 * Leak response, once per request and secret (under respond_lock):
 *   canary            alert "canary" (whatever else on_leak says)
 *   on_leak revoke    revoke every token of the secret; if the sighted
 *                     version is the current one, mark the secret
 *                     compromised: no token is issued for it until its
 *                     current version changes (rotation, put)
 *   on_leak rotate    leak_rotate(name) if the sighted version is the
 *                     current one; otherwise, or if that fails: as revoke
 *   on_leak alert     the alert only
 * Every sighted token that the table knows is revoked.  Each response is
 * an alert (alert_raise) and an audit record with decision "leak" or
 * "canary", at most once per CB_LEAK_ALERT_COOLDOWN seconds per secret (the
 * request's own audit record is written every time).
 * Compromised marks are store records (keys/store.h, cb_store_mark_leaked):
 * the leaked version is never served or stored again, and the secret is
 * compromised (no token) while that version is current.  An older broker's
 * STATE_DIR/leaks.json is carried into the store once at start and removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alert.h"
#include "audit.h"
#include "audit_format.h" /* cb_json_string_lossy */
#include "error.h"
#include "fsutil.h"
#include "leak_react.h"
#include "log.h"
#include "metrics.h"
#include "scan.h"
#include "scan_internal.h"
#include "match.h" /* cb_scan_kind_name */

/* ---- leak marks: compromised state and alert cooldown ------------------- */

/* The compromised marks themselves are store records (cb_store_mark_leaked):
 * sealed, counted by the generation and the tpm2 counter.  What is kept
 * here is the alert cooldown, and a mark the store could not record (disk
 * full): it holds in memory until the store takes it, and is retried every
 * time it is consulted. */
typedef struct mark {
        char name[CB_NAME_MAX + 1];
        uint32_t version;     /* a version the store has not recorded yet */
        bool pending;
        uint64_t last_alert;
} mark;

/* One allocation per mark, never moved or freed before leak_shutdown: a
 * mark found stays valid while the array of pointers grows. */
static mark **marks;
static size_t n_marks;
/* The array and a mark's pending and version change and are read under
 * marks_lock, memory work only; last_alert under respond_lock. */
static pthread_mutex_t marks_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t respond_lock = PTHREAD_MUTEX_INITIALIZER;

leak_env leak_cur;

void leak_attach(const leak_env *env) {
        leak_cur = *env;
}

#define LEAKS_FILE "leaks.json" /* before the marks were store records: migrated once */
#define LEAKS_MAX (8 * 1024 * 1024)

static mark *mark_get(const char *name, bool create) {
        mark *found = NULL;

        pthread_mutex_lock(&marks_lock);
        for (size_t i = 0; i < n_marks && !found; i++)
                if (strcmp(marks[i]->name, name) == 0)
                        found = marks[i];
        if (!found && create) {
                mark **nv = realloc(marks, (n_marks + 1) * sizeof(*nv));
                mark *nm = calloc(1, sizeof(*nm));
                if (nv)
                        marks = nv;
                if (nv && nm) {
                        snprintf(nm->name, sizeof(nm->name), "%s", name);
                        marks[n_marks++] = found = nm;
                } else {
                        free(nm);
                }
        }
        pthread_mutex_unlock(&marks_lock);
        return found;
}

/* The current version of name (0: none) and whether it is marked leaked in
 * the store: read under the store's read side (never waiting for a
 * writer's I/O), nothing kept past it. */
static uint32_t current_of(const char *name, bool *ret_leaked) {
        const cb_version_info *vi;
        uint32_t v = 0;
        bool leaked = false;
        size_t nv;

        cb_store_read_lock(leak_cur.store);
        if (cb_store_versions(leak_cur.store, name, &vi, &nv) == 0)
                for (size_t k = 0; k < nv; k++)
                        if (vi[k].state == CB_VS_CURRENT) {
                                v = vi[k].version;
                                leaked = vi[k].leaked;
                        }
        cb_store_read_unlock(leak_cur.store);
        if (ret_leaked)
                *ret_leaked = leaked;
        return v;
}

static uint32_t current_version(const char *name) {
        return current_of(name, NULL);
}

/* Record a mark the store could not take before; true once it has.  A
 * store write: never called with the store's read side held. */
static bool mark_flush(mark *m) {
        pthread_mutex_lock(&marks_lock);
        bool pending = m->pending;
        uint32_t version = m->version;
        pthread_mutex_unlock(&marks_lock);
        if (!pending)
                return true;
        if (cb_store_mark_leaked(leak_cur.store, m->name, version, NULL) < 0) {
                const cb_version_info *vi;
                size_t nv;
                bool destroyed = false;

                /* A version destroyed meanwhile has no value left to serve. */
                cb_store_read_lock(leak_cur.store);
                if (cb_store_versions(leak_cur.store, m->name, &vi, &nv) == 0)
                        for (size_t k = 0; k < nv; k++)
                                destroyed |= vi[k].version == version && vi[k].state == CB_VS_DESTROYED;
                cb_store_read_unlock(leak_cur.store);
                if (!destroyed)
                        return false;
        }
        pthread_mutex_lock(&marks_lock);
        if (m->version == version) /* not re-marked at another version meanwhile */
                m->pending = false;
        pthread_mutex_unlock(&marks_lock);
        return true;
}

/* leaks.json of an older broker: each entry becomes a store record, then
 * the file goes.  A file that cannot be read, parsed or carried over stops
 * the daemon: which secrets leaked must never be forgotten. */
static int leaks_migrate(const char *state_dir) {
        unsigned char *buf = NULL;
        json_t *o = NULL, *c, *v;
        json_error_t err;
        const char *name;
        size_t len;
        int dfd, r;

        dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dfd < 0)
                return cb_error_set(-errno, "%s: %s", state_dir, strerror(errno));
        r = cb_read_file_at(dfd, LEAKS_FILE, LEAKS_MAX, &buf, &len);
        if (r == -ENOENT) {
                r = 0;
                goto out;
        }
        if (r < 0) {
                r = cb_error_set(r, "%s/%s: %s", state_dir, LEAKS_FILE, strerror(-r));
                goto out;
        }
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
                r = cb_store_mark_leaked(leak_cur.store, name, (uint32_t)ver, NULL);
                if (r == -ENOENT || r == -EKEYREVOKED)
                        continue; /* the secret or version is gone: nothing left to serve */
                if (r < 0) {
                        r = cb_error_set(r, "%s/%s: cannot carry '%s' version %lld into the store: %s", state_dir,
                                         LEAKS_FILE, name, (long long)ver, cb_error_last());
                        goto out;
                }
        }
        if (unlinkat(dfd, LEAKS_FILE, 0) < 0 || fsync(dfd) < 0) {
                r = cb_error_set(-errno, "%s/%s: carried into the store, but cannot remove it: %s", state_dir,
                                 LEAKS_FILE, strerror(errno));
                goto out;
        }
        cb_log(CB_LOG_NOTICE, "%s/%s carried into the store (compromised marks are store records now) and "
                "removed", state_dir, LEAKS_FILE);
        r = 0;
out:
        json_decref(o);
        free(buf);
        close(dfd);
        return r;
}

int scanner_init(const char *state_dir) {
        return leaks_migrate(state_dir);
}

bool scanner_is_compromised(const char *name) {
        bool leaked, pending = false;
        uint32_t curv = current_of(name, &leaked);
        mark *m = mark_get(name, false);

        if (!curv)
                return false;
        if (leaked)
                return true;
        /* A mark the store has not taken yet (disk full): it holds while
         * its version is current, and is retried now. */
        if (m) {
                pthread_mutex_lock(&marks_lock);
                pending = m->pending && m->version == curv;
                pthread_mutex_unlock(&marks_lock);
        }
        if (pending)
                (void)mark_flush(m);
        return pending;
}

void leak_list_compromised(json_t *arr) {
        const char **names = NULL;
        char **copy = NULL;
        size_t n = 0;

        /* The names are the store's until its next write: copied under the
         * read side, then each looked at (which may write: a mark retried). */
        cb_store_read_lock(leak_cur.store);
        if (cb_store_names(leak_cur.store, &names, &n) == 0 && (copy = calloc(n + 1, sizeof(*copy))))
                for (size_t i = 0; i < n; i++)
                        copy[i] = strdup(names[i]);
        cb_store_read_unlock(leak_cur.store);
        free(names);
        for (size_t i = 0; copy && i < n; i++) {
                if (copy[i] && scanner_is_compromised(copy[i]))
                        json_array_append_new(arr, json_string(copy[i]));
                free(copy[i]);
        }
        free(copy);
}

void leak_shutdown(void) {
        for (size_t i = 0; i < n_marks; i++)
                free(marks[i]);
        free(marks);
        marks = NULL;
        n_marks = 0;
}

/* ---- the leak response -------------------------------------------------- */

/* Mark version (0: the current one) of name leaked, as a store record: it
 * is never served again, its value never stored again, and while it is
 * current no token is issued for the secret.  If the store cannot record
 * it (disk full), the mark holds in memory (and is retried), stderr says
 * so and an alert is raised: containment first -- but a mark in memory
 * dies with the process, so the caller is told (-EIO) and must tell
 * whoever asked.  0 when recorded (or nothing to mark).  Any thread, but never
 * with the store's read side held (a store write); takes no leak lock (a
 * rotation calls it under rotate/'s lock). */
/* A mark in memory, before the store has it (memory work only): the token
 * gate refuses the secret from here while version is current
 * (compromised_unlocked).  Cleared by a successful store mark. */
static void mark_pending(const char *name, uint32_t version) {
        mark *m = mark_get(name, true);

        if (m) {
                pthread_mutex_lock(&marks_lock);
                m->pending = true;
                m->version = version;
                pthread_mutex_unlock(&marks_lock);
        }
}

static void mark_stored(const char *name, uint32_t version) {
        mark *m = mark_get(name, false);

        if (m) {
                pthread_mutex_lock(&marks_lock);
                if (m->version == version)
                        m->pending = false;
                pthread_mutex_unlock(&marks_lock);
        }
}

int scanner_mark_compromised(const char *name, uint32_t version) {
        mark *m;

        if (!version)
                version = current_version(name);
        if (!version)
                return 0;
        if (cb_store_mark_leaked(leak_cur.store, name, version, NULL) == 0) {
                mark_stored(name, version); /* a mark_pending before it, if any */
                return 0;
        }
        cb_log(CB_LOG_ERR, "cannot record '%s' version %u as leaked in the store: %s (held in memory and retried; "
               "it is LOST if the daemon stops before the store can take it: free space, then check "
               "'credbroker status')", name, version, cb_error_last());
        json_t *ev = json_pack("{s:s, s:I, s:s}", "secret", name, "version", (json_int_t)version, "message",
                               "the leak mark is held in memory only: the store could not record it");
        alert_raise("leak_mark_not_persisted", ev); /* borrows ev */
        json_decref(ev);
        m = mark_get(name, true);
        if (m) { /* the token gate sees it from here (compromised_unlocked) */
                pthread_mutex_lock(&marks_lock);
                m->pending = true;
                m->version = version;
                pthread_mutex_unlock(&marks_lock);
        }
        return -EIO;
}

/* For the tool routes (token gate): the store under its read side (never
 * waiting for a writer's I/O), the marks under marks_lock; a pending mark
 * is not retried here (a retry is a store write: the sweep and
 * scanner_is_compromised's admin callers do it). */
static bool compromised_unlocked(const char *name) {
        bool leaked, pending = false;
        uint32_t curv = current_of(name, &leaked);

        if (!curv)
                return false;
        if (leaked)
                return true;
        pthread_mutex_lock(&marks_lock);
        for (size_t i = 0; i < n_marks; i++)
                if (strcmp(marks[i]->name, name) == 0)
                        pending = marks[i]->pending && marks[i]->version == curv;
        pthread_mutex_unlock(&marks_lock);
        return pending;
}

/* Once a second (the sweep): retry the marks the store could not take. */
void leak_flush_pending(void) {
        pthread_mutex_lock(&marks_lock);
        size_t n = n_marks;
        pthread_mutex_unlock(&marks_lock);
        for (size_t i = 0; i < n; i++) {
                pthread_mutex_lock(&marks_lock);
                mark *m = marks[i]; /* marks never move or go (mark_get) */
                pthread_mutex_unlock(&marks_lock);
                (void)mark_flush(m);
        }
}

static int respond(request *rq, const scan_seen *seen, size_t n_seen);

/* The leak response (scan_internal.h): serialised with the other leak
 * responses only. */
int leak_respond(request *rq, const scan_seen *seen, size_t n_seen) {
        if (!n_seen)
                return 0;
        pthread_mutex_lock(&respond_lock);
        int r = respond(rq, seen, n_seen);
        pthread_mutex_unlock(&respond_lock);
        return r;
}

static int respond(request *rq, const scan_seen *seen, size_t n_seen) {
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
                        metrics_leak("", "token");
                        revoked = leak_revoke_accessor(s->name);
                        (void)leak_cut_accessor(s->name, "its token was seen in scanned text");
                        action = "revoke";
                        ev = json_pack("{s:s, s:s, s:o, s:s, s:I}", "what", "token", "accessor", s->name, "forms",
                                       forms, "action", action, "tokens_revoked", (json_int_t)revoked);
                } else {
                        bool canary = cb_policy_is_canary(rq->policy, s->name);
                        enum cb_on_leak a = cb_policy_on_leak(rq->policy, s->name);
                        const char *note = NULL;
                        mark *m = mark_get(s->name, true);

                        metrics_leak(s->name, canary ? "canary" : "value"); /* every sighting, cooldown or not */

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
                                /* Marked first, then revoked: a token issue
                                 * racing this either sees the mark or is
                                 * fenced by the revocation (api_tool.c).
                                 * Marked in memory (the gate honours it at
                                 * once), revoked and cut, and only then
                                 * recorded in the store: containment never
                                 * waits for the store's writers (an admin's
                                 * fsync or compaction). */
                                mark_pending(s->name, s->version);
                                revoked = leak_revoke_secret(s->name);
                                (void)leak_cut_secret(s->name, "its value was seen in scanned text");
                                scanner_mark_compromised(s->name, s->version); /* any sighted version */
                        }
                        if (a == CB_ON_LEAK_ROTATE && leak_rotate(s->name) < 0) {
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
static pthread_mutex_t canary_lock = PTHREAD_MUTEX_INITIALIZER; /* canary_cool: memory only */

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

bool leak_canary_note(request *rq, const char *secret) {
        if (!cb_policy_is_canary(rq->policy, secret))
                return false;
        json_t *ev = json_pack("{s:s, s:o*, s:s, s:I, s:I, s:o*}", "what", "token_request", "secret",
                               cb_json_string_lossy(secret), "route", rq->route ? rq->route : "token", "uid",
                               (json_int_t)rq->peer.uid, "pid", (json_int_t)rq->peer.pid, "exe",
                               cb_json_string_lossy(rq->peer.exe_path)); /* exe may not be UTF-8 */
        if (!ev) /* out of memory: a bare alert rather than none */
                ev = json_pack("{s:s}", "what", "token_request");
        if (ev) {
                pthread_mutex_lock(&canary_lock);
                bool due = canary_alert_due(rq->peer.uid, rq->route ? rq->route : "token", (uint64_t)time(NULL));
                pthread_mutex_unlock(&canary_lock);
                if (due)
                        alert_raise("canary", ev); /* alert.c's own lock */
                json_object_set_new(ev, "time", json_integer((json_int_t)time(NULL)));
                json_object_set_new(ev, "decision", json_string("canary"));
                (void)audit_emit(ev); /* the refusal is audited too */
                json_decref(ev);
        }
        return true;
}

int leak_token_gate(request *rq, const char *secret, int *ret) {
        if (leak_canary_note(rq, secret)) {
                *ret = reply_error(rq, 403, "forbidden", "'%s' is never granted", secret);
                return 1;
        }
        if (compromised_unlocked(secret)) {
                *ret = reply_error(rq, 403, "compromised", "'%s' was seen leaked: no token until it is rotated",
                                   secret);
                return 1;
        }
        return 0;
}
