/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The approval gate's routes (broker/API.md, "Approval").  A token request
 * under a grant with "approval": true is held (202 + an ID); the requesting
 * process polls GET /v1/approvals/ID on tools.sock; an admin lists, approves
 * or denies on admin.sock; an undecided request times out (a denial).  The
 * token is minted when the requester collects an approved request, bound to
 * it like any token.  Every step is audited: the hold (decision "pending"),
 * the operator's decision with both identities, the collection, and the
 * timeouts and abandoned requests (from the sweep).
 *
 * Locks: the table (approval.h: not thread safe) is guarded by tab_lock,
 * held for memory work only -- the table's calls, queueing audit records
 * (audit.h: memory), a line for the operator.  Nothing waits with it held
 * (a held request answers 202 at once and is polled); the token of an
 * approved request is minted after the entry is copied out and the lock
 * dropped, fenced against a leak response as api_token is.  Any thread
 * (the tool poll, the admin routes, the sweep).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>
#include <sodium.h>

#include "api_internal.h"
#include "approval.h"
#include "audit.h"
#include "audit_format.h" /* cb_json_string_lossy */
#include "daemon.h"
#include "error.h"
#include "log.h"
#include "scan.h"

#define POLL_INTERVAL 1 /* seconds: the retry_after a held request advertises */

static cb_approvals *tab;
static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t mono_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec;
}

/* A line on stderr for operators; exe paths are the caller's choice of
 * file name: no control characters reach the terminal.  Every caller holds
 * tab_lock, and a write to stderr may block (a full pipe): the line is kept
 * (this thread's) and written by tab_unlock, after the lock is dropped. */
static __thread char **said;
static __thread size_t n_said;

static void tab_unlock(void) {
        char **lines = said;
        size_t n = n_said;

        said = NULL;
        n_said = 0;
        pthread_mutex_unlock(&tab_lock);
        for (size_t i = 0; i < n; i++) {
                cb_log(CB_LOG_NOTICE, "%s", lines[i]); /* cb_log makes it terminal-safe (keys/text.h) */
                free(lines[i]);
        }
        free(lines);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
        char line[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        char **nl = realloc(said, (n_said + 1) * sizeof(*nl));
        if (nl) {
                said = nl;
                if ((said[n_said] = strdup(line)))
                        n_said++;
        }
}

static const char *use_name(unsigned use) {
        return use == CB_USE_PROXY ? "proxy" : use == CB_USE_REDEEM ? "redeem" : "?";
}

static const char *bind_name(int bind) {
        return bind == CB_BIND_UID ? "uid" : bind == CB_BIND_SESSION ? "session" : bind == CB_BIND_PROCESS ? "process" : "exe";
}

int approval_init(uint32_t timeout) {
        tab = cb_approvals_new(0, 0, timeout);
        return tab ? 0 : cb_error_set(-ENOMEM, "out of memory");
}

void approval_fini(void) {
        cb_approvals_free(tab);
        tab = NULL;
}

static json_t *requester_json(const cb_approval *e) {
        return json_pack("{s:I, s:I, s:I, s:o*, s:s, s:s}", "uid", (json_int_t)e->uid, "gid", (json_int_t)e->gid,
                         "pid", (json_int_t)e->pid, "exe", cb_json_string_lossy(e->exe_path), "exe_sha256",
                         e->exe_sha256_hex, "client", e->client); /* exe may not be UTF-8 */
}

static json_t *decider_json(const cb_approval *e) {
        if (e->by_uid == (uid_t)-1)
                return json_null();
        return json_pack("{s:I, s:I, s:o*}", "uid", (json_int_t)e->by_uid, "pid", (json_int_t)e->by_pid, "exe",
                         cb_json_string_lossy(e->by_exe));
}

static void sweep_event(const cb_approval *e, const char *what, void *ud) {
        json_t *o;

        (void)ud;
        o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "time", (json_int_t)time(NULL), "socket", "internal",
                      "route", !strcmp(what, "timeout") ? "approval.timeout" : !strcmp(what, "abandoned")
                                                                                   ? "approval.abandoned"
                                                                                   : "approval.uncollected",
                      "decision", "deny", "approval_id", e->id, "secret", e->secret, "client", e->client, "requester",
                      requester_json(e));
        if (!strcmp(what, "timeout")) {
                say("approval %s (uid %u, %s, '%s' for %s) timed out after %u s: denied", e->id, (unsigned)e->uid,
                    e->exe_path, e->secret, use_name(e->use), cb_approvals_timeout(tab));
                char why[64];
                snprintf(why, sizeof(why), "no decision within %u s", cb_approvals_timeout(tab));
                json_object_set_new(o, "reason", json_string(why));
        } else if (!strcmp(what, "abandoned")) {
                json_object_set_new(o, "reason", json_string("the requesting process exited"));
        } else {
                json_object_set_new(o, "reason", json_string("approved but not collected in time"));
                json_object_set_new(o, "decided_by", decider_json(e));
        }
        if (o && audit_emit(o) < 0)
                say("cannot write the audit record of approval %s (%s)", e->id, what);
        json_decref(o);
}

static void sweep_locked(void) {
        if (tab)
                cb_approvals_sweep(tab, mono_now(), sweep_event, NULL);
}

void approval_sweep(void) {
        pthread_mutex_lock(&tab_lock);
        sweep_locked();
        tab_unlock();
}

static json_t *pending_body(const cb_approval *e, uint64_t now) {
        return json_pack("{s:s, s:s, s:i, s:I}", "status", "pending", "approval_id", e->id, "retry_after",
                         POLL_INTERVAL, "expires_in", (json_int_t)(e->deadline > now ? e->deadline - now : 0));
}

static int hold_locked(request *rq, const char *client, unsigned use, uint32_t ttl, int bind);

int approval_hold(request *rq, const char *client, unsigned use, uint32_t ttl, int bind) {
        pthread_mutex_lock(&tab_lock);
        int ret = hold_locked(rq, client, use, ttl, bind);
        tab_unlock();
        return ret;
}

static int hold_locked(request *rq, const char *client, unsigned use, uint32_t ttl, int bind) {
        const cb_approval *e;
        char id[CB_APPROVAL_ID_LEN + 1];
        uint64_t now = mono_now();
        json_t *extra;
        int r, ret;

        sweep_locked();
        r = cb_approvals_add(tab, &rq->peer, client, rq->secret, use, ttl, bind, now, &e);
        if (r < 0)
                return reply_error(rq, r == -ENOSPC ? 429 : r == -EOPNOTSUPP ? 403 : 500,
                                   r == -ENOSPC ? "rate_limited" : r == -EOPNOTSUPP ? "forbidden" : "internal",
                                   "grant for '%s' requires approval: %s", rq->secret, cb_error_last());
        memcpy(id, e->id, sizeof(id));
        extra = json_pack("{s:s, s:s, s:I}", "approval_id", id, "bind", bind_name(bind), "ttl", (json_int_t)ttl);
        rq->audit_extra = extra;
        /* Audited before it is announced: no record, no held request. */
        if (audit_write(rq, 202, "pending", r == 1 ? "approval requested again" : "approval requested") < 0) {
                if (r == 0)
                        cb_approvals_drop(tab, id);
                ret = reply_error(rq, 503, "audit_unavailable", "the audit log cannot be written");
                goto out;
        }
        if (r == 0)
                say("approval needed: %s: uid %u pid %d (%s) asks for '%s' (%s, %u s) as client '%s': "
                    "credbroker approve %.*s | credbroker deny %.*s",
                    id, (unsigned)e->uid, (int)e->pid, e->exe_path, e->secret, use_name(use), ttl, client,
                    CB_APPROVAL_ID_SHORT, id, CB_APPROVAL_ID_SHORT, id);
        rq->no_audit = true;
        ret = reply_json(rq, 202, pending_body(e, now), false);
out:
        rq->audit_extra = NULL;
        json_decref(extra);
        return ret;
}

/* Mint the token an approved request asked for, for its requester (rq's
 * peer, already checked to be that process). */
static int collect_approved(request *rq, const cb_approval *c) {
        const cb_token_info *info;
        const char *client = NULL;
        char tok[CB_TOKEN_LEN + 1];
        int r, ret;

        /* A reload in between may have taken the grant away. */
        const cb_grant *g = cb_policy_find_grant(rq->policy, &rq->peer, c->secret, c->use, &client);
        if (!g)
                return reply_error(rq, 403, "forbidden", "approved, but the grant for '%s' (%s) no longer exists",
                                   c->secret, use_name(c->use));
        uint32_t ttl = c->ttl > g->max_ttl ? g->max_ttl : c->ttl;
        /* Checked, then minted against a fence: a delete or leak response
         * revoking the secret's tokens in between makes the mint fail, and
         * the checks run again (as api_token's). */
        for (int tries = 0;; tries++) {
                uint64_t fence = cb_tokens_fence(cbd.tokens);
                if (!api_secret_live(c->secret)) /* deleted while the request waited */
                        return reply_error(rq, 404, "not_found", "no secret named '%s'", c->secret);
                /* Seen leaked (or made a canary) while the request waited: the
                 * approval was given for a secret that is no longer safe to hand out. */
                if (leak_token_gate(rq, c->secret, &ret))
                        return ret;
                r = cb_tokens_issue_fenced(cbd.tokens, fence, &rq->peer, client, c->secret, 0, c->use, ttl,
                                           g->max_uses, (cb_token_bind)c->bind, tok, &info);
                if (r != -ESTALE)
                        break;
                if (tries == 3)
                        return reply_error(rq, 503, "unavailable", "tokens kept being revoked while this one was "
                                           "issued: retry");
        }
        if (r < 0)
                return reply_error(rq, r == -ENOSPC ? 429 : 500, r == -ENOSPC ? "rate_limited" : "internal", "%s",
                                   cb_error_last());
        snprintf(rq->accessor, sizeof(rq->accessor), "%s", info->accessor);
        rq->token_issued = true; /* revoked again if its record is not written (server_reply.c flush) */
        snprintf(rq->client, sizeof(rq->client), "%s", client);
        ret = reply_json(rq, 201,
                         json_pack("{s:s, s:s, s:I, s:s}", "token", tok, "accessor", info->accessor, "expires_in",
                                   (json_int_t)(info->expires - info->issued), "approval_id", c->id),
                         true);
        sodium_memzero(tok, sizeof(tok));
        return ret;
}

int api_approval_poll(request *rq, const http_args *args) {
        const char *id = args->rest;
        cb_approval *c = NULL;
        uint64_t now = mono_now();
        json_t *extra = NULL;
        int ret;

        c = sodium_malloc(sizeof(*c)); /* large (two paths); not secret, but off the stack */
        if (!c)
                return reply_error(rq, 500, "internal", "out of memory");
        /* The entry is copied out (a decided one removed) under the
         * table's lock; everything after works on the copy. */
        pthread_mutex_lock(&tab_lock);
        sweep_locked();
        int cr = cb_approvals_collect(tab, id, &rq->peer, now, c);
        tab_unlock();
        if (cr < 0) {
                ret = reply_error(rq, 404, "not_found", "%s", cb_error_last());
                goto out;
        }
        snprintf(rq->secret, sizeof(rq->secret), "%s", c->secret);
        snprintf(rq->client, sizeof(rq->client), "%s", c->client);
        if (c->state == CB_APPROVAL_PENDING) {
                rq->route = "approval.poll";
                rq->no_audit = true; /* the hold and the result are audited; the polls in between are not */
                ret = reply_json(rq, 202, pending_body(c, now), false);
                goto out;
        }
        extra = json_pack("{s:s, s:o}", "approval_id", c->id, "decided_by", decider_json(c));
        rq->audit_extra = extra;
        switch (c->state) {
        case CB_APPROVAL_APPROVED:
                ret = collect_approved(rq, c);
                break;
        case CB_APPROVAL_DENIED:
                ret = reply_error(rq, 403, "approval_denied", "request %s for '%s' was denied by uid %u", c->id,
                                  c->secret, (unsigned)c->by_uid);
                break;
        default:
                ret = reply_error(rq, 403, "approval_expired",
                                  "request %s for '%s' was not approved within %u s: denied", c->id, c->secret,
                                  cb_approvals_timeout(tab));
                break;
        }
out:
        rq->audit_extra = NULL;
        json_decref(extra);
        sodium_free(c);
        return ret;
}

/* ---- admin.sock ---- */

int api_approvals_list(request *rq, const http_args *args) {
        uint64_t now = mono_now();
        json_t *arr;

        (void)args;
        arr = json_array();
        pthread_mutex_lock(&tab_lock);
        sweep_locked();
        for (size_t i = 0; i < cb_approvals_count(tab); i++) {
                const cb_approval *e = cb_approvals_at(tab, i);
                json_t *o = requester_json(e);
                json_t *more = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:o}", "id", e->id, "state",
                                         cb_approval_state_name(e->state), "secret", e->secret, "use",
                                         use_name(e->use), "ttl", (json_int_t)e->ttl, "bind", bind_name(e->bind),
                                         "age", (json_int_t)(now - e->created), "expires_in",
                                         (json_int_t)(e->deadline > now ? e->deadline - now : 0), "decided_by",
                                         decider_json(e));
                json_object_update(o, more);
                json_decref(more);
                json_array_append_new(arr, o);
        }
        tab_unlock();
        /* Compromised or not: store reads (and maybe a retried mark, a
         * store write), outside the table's lock. */
        size_t ai;
        json_t *ao;
        json_array_foreach(arr, ai, ao) {
                const char *sec = json_string_value(json_object_get(ao, "secret"));
                if (sec && scanner_is_compromised(sec))
                        json_object_set_new(ao, "compromised", json_true());
        }
        return reply_json(rq, 200,
                          json_pack("{s:o, s:I}", "approvals", arr, "timeout", (json_int_t)cb_approvals_timeout(tab)),
                          false);
}

static int route_decide(request *rq, const char *id, size_t id_len, bool approve) {
        const cb_approval *e;
        char want[CB_APPROVAL_ID_LEN + 1], full[CB_APPROVAL_ID_LEN + 1];
        json_t *extra;
        int r, ret;

        if (rq->body_len)
                return reply_error(rq, 400, "bad_request", "this route takes no body");
        if (id_len > CB_APPROVAL_ID_LEN)
                return reply_error(rq, 400, "bad_request", "an approval ID is %d to %d hex digits",
                                   CB_APPROVAL_ID_SHORT, CB_APPROVAL_ID_LEN);
        memcpy(want, id, id_len);
        want[id_len] = 0;
        r = cb_approvals_lookup(tab, want, &e);
        if (r < 0)
                return reply_error(rq, r == -ENOENT ? 404 : 400, r == -ENOENT ? "not_found" : "bad_request", "%s",
                                   cb_error_last());
        memcpy(full, e->id, sizeof(full));
        snprintf(rq->secret, sizeof(rq->secret), "%s", e->secret);
        snprintf(rq->client, sizeof(rq->client), "%s", e->client);
        extra = json_pack("{s:s, s:o}", "approval_id", full, "requester", requester_json(e));
        rq->audit_extra = extra;
        r = cb_approvals_check_decide(tab, full, approve, &rq->peer);
        if (r < 0) {
                ret = reply_error(rq, r == -EALREADY ? 409 : r == -EPERM ? 403 : 404,
                                  r == -EALREADY ? "already_decided" : r == -EPERM ? "forbidden" : "not_found", "%s",
                                  cb_error_last());
                goto out;
        }
        /* An approver an agent can reach would let it approve itself: a uid
         * that any policy client selector can match, whatever program it
         * runs (an agent of that uid can run curl), may deny but not
         * approve.  uid-level separation, not (uid, executable). */
        const char *as_client = NULL;
        if (approve && cb_policy_uid_selectable(rq->policy, rq->peer.uid, &as_client)) {
                ret = reply_error(rq, 403, "forbidden",
                                  "uid %u can be policy client '%s': an approver must not be a uid tools run as",
                                  (unsigned)rq->peer.uid, as_client);
                goto out;
        }
        /* The record names the operator (this request's peer) and the
         * requester; it is written before the decision takes effect. */
        if (audit_write(rq, 200, "allow", approve ? "approved" : "denied") < 0) {
                ret = reply_error(rq, 503, "audit_unavailable", "the audit log cannot be written: nothing decided");
                goto out;
        }
        rq->no_audit = true;
        r = cb_approvals_decide(tab, full, approve, &rq->peer, mono_now());
        if (r < 0) { /* cannot happen: checked under the same lock */
                ret = reply_error(rq, 500, "internal", "%s", cb_error_last());
                goto out;
        }
        say("approval %s %s by uid %u (pid %d, %s)", full, approve ? "approved" : "denied", (unsigned)rq->peer.uid,
            (int)rq->peer.pid, rq->peer.exe_path);
        ret = reply_json(rq, 200,
                         json_pack("{s:s, s:s, s:s, s:s, s:o}", "approval_id", full, "state",
                                   approve ? "approved" : "denied", "secret", rq->secret, "client", rq->client,
                                   "requester", requester_json(e)),
                         false);
out:
        rq->audit_extra = NULL;
        json_decref(extra);
        return ret;
}

/* POST /v1/admin/approvals/ID/approve and .../deny: checked, audited
 * (queued) and decided under one hold of the table's lock. */
static int decide(request *rq, const http_args *args, bool approve) {
        pthread_mutex_lock(&tab_lock);
        sweep_locked();
        int ret = route_decide(rq, args->seg, args->seg_len, approve);
        tab_unlock();
        return ret;
}

int api_approve(request *rq, const http_args *args) {
        return decide(rq, args, true);
}

int api_deny(request *rq, const http_args *args) {
        return decide(rq, args, false);
}

/* Anything else under /v1/admin/approvals/ (recorded as admin.approvals). */
int api_approvals_unknown(request *rq, const http_args *args) {
        (void)args;
        approval_sweep();
        return reply_error(rq, 404, "not_found", "no route %.64s (want /v1/admin/approvals[/ID/approve|/ID/deny])",
                           rq->url);
}

size_t approval_pending(void) {
        pthread_mutex_lock(&tab_lock);
        size_t n = 0, all = tab ? cb_approvals_count(tab) : 0;

        for (size_t i = 0; i < all; i++)
                n += cb_approvals_at(tab, i)->state == CB_APPROVAL_PENDING;
        tab_unlock();
        return n;
}
