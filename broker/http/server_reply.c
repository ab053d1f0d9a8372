/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The answers of a request (split from server.c, issue 18): reply_*, the
 * answer held until the request's audit records are written (flush: the
 * connection suspended meanwhile, resumed by the writer), the 503 when
 * they are not, and the budget of recorded refusals per uid.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>
#include <sodium.h>

#include "metrics.h"
#include "audit.h"
#include "audit_format.h" /* cb_json_string_lossy */
#include "daemon.h"
#include "ratelimit.h"
#include "sandbox.h"
#include "server_internal.h"

void wipe_free(void *p, size_t n) {
        if (p) {
                sodium_memzero(p, n);
                free(p);
        }
}

struct body_buf {
        char *p;
        size_t n;
};

static void free_sensitive(void *cls) {
        struct body_buf *b = cls;

        wipe_free(b->p, b->n);
        free(b);
}

/* audit_emit() and audit_write() live in audit/audit_record.c. */

static int queue(request *rq, unsigned status, char *text, size_t len, bool sensitive) {
        struct MHD_Response *resp;
        struct body_buf *b = NULL;

        if (sensitive) {
                b = malloc(sizeof(*b));
                if (!b) {
                        wipe_free(text, len);
                        return MHD_NO;
                }
                b->p = text;
                b->n = len;
                resp = MHD_create_response_from_buffer_with_free_callback_cls(len, text, free_sensitive, b);
        } else {
                resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
        }
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", "application/json");
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        if (rq->close)
                MHD_add_response_header(resp, "Connection", "close");
        return reply_response(rq, status, resp);
}

/* Held while the request's records are queued (flush() queues it once
 * they are written); at once when there are none. */
int reply_response(request *rq, unsigned status, struct MHD_Response *resp) {
        int ret;

        if (rq->n_audit_recs && !rq->held_resp) {
                rq->held_resp = resp;
                rq->held_status = status;
                rq->answered = true;
                return MHD_YES;
        }
        ret = MHD_queue_response(rq->conn, status, resp);
        rq->answered = ret == MHD_YES;
        MHD_destroy_response(resp);
        return ret;
}

/* 503 for a request whose record was not written in time or at all: made
 * here (not audited: its refusal is counted in the audit.resume record). */
static int refuse_unrecorded(request *rq, int why) {
        struct MHD_Response *resp;
        char msg[400], err[128];
        json_t *o;
        char *text;
        int ret;

        if (!audit_failed(err, sizeof(err)))
                snprintf(err, sizeof(err), "%s", strerror(-why));
        if (why == -ETIMEDOUT)
                snprintf(msg, sizeof(msg), "the audit log did not take this decision's record within %u ms (%s): "
                         "refused, nothing was done", CB_AUDIT_WAIT_MS, err);
        else
                snprintf(msg, sizeof(msg), "the audit log cannot be written (%s): refused, nothing was done", err);
        metrics_request(rq->route, 503);
        if (rq->sdk_errors)
                o = json_pack("{s:s, s:{s:s, s:s, s:s}, s:s}", "type", "error", "error", "type", "audit_unavailable",
                              "code", "audit_unavailable", "message", msg, "message", msg);
        else
                o = json_pack("{s:s, s:s}", "error", "audit_unavailable", "message", msg);
        text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!text)
                return MHD_NO;
        resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(text);
                return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "application/json");
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        if (rq->close)
                MHD_add_response_header(resp, "Connection", "close");
        ret = MHD_queue_response(rq->conn, 503, resp);
        rq->answered = ret == MHD_YES;
        MHD_destroy_response(resp);
        return ret;
}

static void audit_woken(void *ud) {
        request *rq = ud;

        /* Resume only a suspended connection: if the handler has not
         * suspended it yet, it sees bit 2 and resumes it itself. */
        if (__atomic_fetch_or(&rq->audit_sync, 2, __ATOMIC_ACQ_REL) & 1)
                MHD_resume_connection(rq->conn);
}

/* While a connection is suspended for its records, an end of file read
 * from it is held back (cb_sender.hold_eof): libmicrohttpd 0.9.75 reads a
 * resumed connection before calling the handler and closes it, answer
 * unsent, on a client's half-close.  Released when the answer is due;
 * true if an end of file was held (the answer then closes the
 * connection).  Unix sockets only (TCP is never suspended).  The same
 * holds while a connection waits for its caller's executable's hash. */
void eof_hold(request *rq) {
        conn_ctx *cc = conn_ctx_of(rq->conn);

        if (cc && cc->fd >= 0)
                __atomic_store_n(&cc->snd.hold_eof, 1, __ATOMIC_RELEASE);
}

bool eof_release(request *rq) {
        conn_ctx *cc = conn_ctx_of(rq->conn);

        if (!cc || cc->fd < 0)
                return false;
        __atomic_store_n(&cc->snd.hold_eof, 0, __ATOMIC_RELEASE);
        return cc->snd.eof_held;
}

/* Not written yet: suspend the connection until the writer (or, at the
 * deadline, audit_queue.c's deadline thread) wakes it, so that this
 * serving thread goes on serving others.  true: suspended (handle() calls
 * flush again when MHD calls back). */
static bool flush_suspend(request *rq) {
        audit_rec *last = rq->audit_recs[rq->n_audit_recs - 1];

        if (audit_rec_done(last, 0))
                return false;
        if (!rq->audit_deadline_ms)
                rq->audit_deadline_ms = audit_deadline_ms();
        if (rq->audit_deadline_ms <= audit_deadline_ms() - CB_AUDIT_WAIT_MS)
                return false; /* the deadline has passed: flush() decides at once */
        __atomic_store_n(&rq->audit_sync, 0, __ATOMIC_RELAXED);
        if (audit_rec_watch(last, rq->audit_deadline_ms, audit_woken, rq) != 0)
                return false; /* done meanwhile, or stopping: flush() waits on this thread */
        rq->audit_suspended = true;
        eof_hold(rq);
        MHD_suspend_connection(rq->conn);
        if (__atomic_fetch_or(&rq->audit_sync, 1, __ATOMIC_ACQ_REL) & 2)
                MHD_resume_connection(rq->conn);
        return true;
}

/* Nothing of a request that failed (MHD_NO: the connection is closed)
 * takes effect; its records stay queued. */
void flush_drop(request *rq, bool force) {
        if (!force && !rq->n_audit_recs && !rq->held_resp && !rq->proxy_held)
                return; /* answered (or nothing pending) */
        for (unsigned i = 0; i < rq->n_audit_recs; i++)
                audit_rec_put(rq->audit_recs[i]);
        rq->n_audit_recs = 0;
        if (rq->token_issued) {
                (void)cb_tokens_revoke_accessor(srv.tokens, rq->accessor); /* the table locks itself */
                rq->token_issued = false;
        }
        if (rq->proxy_held)
                proxy_abort(rq);
        if (rq->held_resp) {
                MHD_destroy_response(rq->held_resp); /* wipes a sensitive body (its free callback) */
                rq->held_resp = NULL;
        }
}

/* A decision takes effect only once its record is written: wait for the
 * request's records holding no lock (the caller holds none), then answer
 * (a token, a value, a refusal) or start the proxied transfer.  When a
 * record cannot be written in time, nothing takes effect: a minted token
 * is revoked before the 503, a proxied request never starts.  An admin
 * write whose intent is recorded answers what it did either way. */
enum MHD_Result flush(request *rq, enum MHD_Result ret, bool may_suspend) {
        uint64_t deadline;
        int r = 0;

        if (!rq || !rq->n_audit_recs)
                return ret;
        if (ret != MHD_YES) {
                flush_drop(rq, true);
                return ret;
        }
        /* Over TCP MHD is driven by a proxy loop (MHD_run), which a resume
         * from another thread does not wake: the wait stays on that
         * thread, at most the deadline (then the stall refuses at once). */
        if (may_suspend && !rq->tcp && flush_suspend(rq))
                return MHD_YES;
        if (eof_release(rq) && !rq->close) {
                rq->close = true; /* the client has half-closed: the answer ends the connection */
                if (rq->held_resp)
                        MHD_add_response_header(rq->held_resp, "Connection", "close");
        }
        deadline = rq->audit_deadline_ms ? rq->audit_deadline_ms : audit_deadline_ms();
        rq->audit_deadline_ms = 0;
        for (unsigned i = 0; i < rq->n_audit_recs; i++) {
                int k = audit_rec_wait(rq->audit_recs[i], deadline);
                if (k < 0 && r == 0)
                        r = k;
                rq->audit_recs[i] = NULL;
        }
        rq->n_audit_recs = 0;
        if (r == 0 || rq->intent_recorded) {
                rq->token_issued = false; /* recorded: it is the caller's now */
                if (rq->proxy_held && proxy_release(rq) < 0)
                        r = -EIO; /* answered 503 by proxy_release */
                if (rq->held_resp) {
                        struct MHD_Response *resp = rq->held_resp;
                        rq->held_resp = NULL;
                        ret = reply_response(rq, rq->held_status, resp) == MHD_YES ? MHD_YES : MHD_NO;
                }
                return ret;
        }
        flush_drop(rq, true); /* a minted token: revoked, never handed out */
        rq->token_issued = false;
        return refuse_unrecorded(rq, r) == MHD_YES ? MHD_YES : MHD_NO;
}

int reply_json(request *rq, unsigned status, json_t *body, bool sensitive) {
        char *text;
        size_t len;

        /* Fail closed: no audit record, no answer -- unless the decision was
         * recorded before it took effect (an admin write's intent record):
         * then the answer tells what was done. */
        if (audit_write(rq, status, status < 300 ? "allow" : "deny", NULL) < 0 && !rq->intent_recorded &&
            !rq->audit_optional) {
                json_decref(body);
                return reply_audit_refused(rq); /* says why; not audited a second time */
        }
        metrics_request(rq->route, status);
        text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (!text)
                return MHD_NO;
        len = strlen(text);
        return queue(rq, status, text, len, sensitive);
}

int reply_json_text(request *rq, unsigned status, char *text, size_t len, bool sensitive) {
        /* As reply_json: fail closed without the record. */
        if (audit_write(rq, status, status < 300 ? "allow" : "deny", NULL) < 0 && !rq->intent_recorded &&
            !rq->audit_optional) {
                if (sensitive)
                        wipe_free(text, len);
                else
                        free(text);
                return reply_audit_refused(rq);
        }
        metrics_request(rq->route, status);
        return queue(rq, status, text, len, sensitive);
}

int reply_audit_refused(request *rq) {
        char err[128] = "";

        (void)audit_failed(err, sizeof(err));
        rq->no_audit = true; /* it could not be written */
        return reply_error(rq, 503, "audit_unavailable",
                           "the audit log cannot be written (%s): requests are refused until it can", err);
}

int reply_text(request *rq, unsigned status, const char *content_type, char *text, size_t len) {
        struct MHD_Response *resp;

        if (audit_write(rq, status, status < 300 ? "allow" : "deny", NULL) < 0 && status < 300) {
                free(text);
                return reply_audit_refused(rq); /* says why; not audited a second time */
        }
        metrics_request(rq->route, status);
        resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(text);
                return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", content_type);
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        return reply_response(rq, status, resp);
}

/* ---- a budget of recorded refusals per uid -----------------------------------
 * Every refusal is a record, and tools.sock is 0666: left alone, any local
 * user -- one no client selects, or a tool asking for names it holds no
 * grant for -- grows the audit log at megabytes a second until its file
 * system is full, which then stops the broker for everyone.  So a uid's
 * refusals on the tool side are recorded one by one up to
 * --refusals-recorded (600) a minute; past that, one record says so, and its
 * later refusals in the minute are answered 429 too_many_refusals without
 * a record of their own (counted in the metrics).  Allowed requests are
 * never affected.  Any thread. */
static unsigned refusals_recorded = 600; /* --refusals-recorded; 0: every one */
static cb_ratelimit *refusals;           /* guards itself; made once (any serving thread) */
static pthread_once_t refusals_once = PTHREAD_ONCE_INIT;
static void refusals_make(void) {
        refusals = cb_ratelimit_new(1024); /* 2 per user; full of open windows: quiet */
}

void server_set_refusals_recorded(unsigned n) {
        refusals_recorded = n;
}

bool server_refusal_quiet(uid_t acct, uid_t uid) {
        char key[32];
        uint32_t retry = 0;
        uint64_t now = (uint64_t)time(NULL);

        if (refusals_recorded == 0)
                return false;
        pthread_once(&refusals_once, refusals_make);
        if (!refusals)
                return false; /* out of memory: recorded as before */
        snprintf(key, sizeof(key), "uid#%u", (unsigned)acct); /* subordinate uids share their owner's */
        if (cb_ratelimit_take(refusals, key, "records", refusals_recorded, 60, now, &retry))
                return false;
        if (cb_ratelimit_take(refusals, key, "note", 1, 60, now, NULL)) {
                json_t *ev = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "decision", "deny", "route",
                                       "refusals.quiet", "uid", (json_int_t)uid, "records_per_minute",
                                       (json_int_t)refusals_recorded, "quiet_for_s", (json_int_t)retry, "message",
                                       "this uid's further refusals this minute are answered 429 and not "
                                       "recorded one by one");
                if (ev) {
                        json_object_set_new(ev, "time", json_integer((json_int_t)now));
                        (void)audit_emit(ev);
                        json_decref(ev);
                }
        }
        return true;
}

static bool refusal_quiet(request *rq) {
        return server_refusal_quiet(rq->acct_uid, rq->peer.uid);
}

int reply_error(request *rq, unsigned status, const char *code, const char *fmt, ...) {
        char msg[512];
        json_t *o;
        char *text;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        /* The outbound leak guard's refusal raises its own alert, even when
         * the refusal is not recorded one by one (over the budget below). */
        if (rq->sandbox_ref && strcmp(code, "leak_refused") == 0)
                cb_sandbox_note_leak(rq->sandbox_ref, rq->route, status, msg);
        bool leak = rq->sandbox_ref && strcmp(code, "leak_refused") == 0;
        if (status >= 400 && status < 500 && rq->have_peer && !rq->admin_socket && !rq->no_audit &&
            !rq->audit_optional && refusal_quiet(rq)) {
                status = 429;
                code = "too_many_refusals";
                snprintf(msg, sizeof(msg), "uid %u has had more than %u requests refused this minute: refused, "
                         "and not recorded one by one", (unsigned)rq->peer.uid, refusals_recorded);
                rq->no_audit = true;
        }
        /* A denial without its record is answered 503 (still a refusal),
         * and counted in the audit.resume record. */
        if (audit_write(rq, status, "deny", msg) < 0 && status != 503 && !rq->intent_recorded && !rq->audit_optional) {
                status = 503;
                code = "audit_unavailable";
                snprintf(msg, sizeof(msg), "the audit log cannot be written: refused");
        }
        if (rq->sandbox_ref && status >= 400 && !leak)
                cb_sandbox_note_refusal(rq->sandbox_ref, rq->method, rq->route, status, msg);
        metrics_request(rq->route, status);
        if (rq->sdk_errors)
                /* A refused proxied request reaches an SDK (openai,
                 * @anthropic-ai/sdk), which reads error.message into its
                 * exception: answer in the vendors' shape. */
                o = json_pack("{s:s, s:{s:s, s:s, s:o*}, s:o*}", "type", "error", "error", "type", code, "code", code,
                              "message", cb_json_string_lossy(msg), "message", cb_json_string_lossy(msg));
        else
                o = json_pack("{s:s, s:o*}", "error", code, "message", cb_json_string_lossy(msg)); /* msg may quote a URL */
        text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!text)
                return MHD_NO;
        return queue(rq, status, text, strlen(text), false);
}

/* Why a request body is not JSON, without jansson's err.text: that quotes
 * the input near the error (" near '<text>'"), and a body may carry a
 * secret value.  Only a fixed category and the position. */
static const char *json_error_category(const json_error_t *e) {
        switch (json_error_code(e)) {
        case json_error_out_of_memory:
                return "out of memory";
        case json_error_stack_overflow:
                return "nested too deeply";
        case json_error_invalid_utf8:
                return "not UTF-8";
        case json_error_premature_end_of_input:
                return "ends too early";
        case json_error_end_of_input_expected:
                return "text after the value";
        case json_error_null_character:
        case json_error_null_byte_in_key:
                return "a NUL byte";
        case json_error_duplicate_key:
                return "a duplicate key";
        case json_error_numeric_overflow:
                return "a number out of range";
        case json_error_invalid_syntax:
        default:
                return "a syntax error or a control character in a string";
        }
}

json_t *body_object(request *rq, const char *const *allowed) {
        json_error_t err;
        json_t *o;
        const char *key;
        json_t *v;

        if (!rq->body_len) {
                reply_error(rq, 400, "bad_request", "a JSON object body is required");
                return NULL;
        }
        o = json_loadb((const char *)rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &err);
        if (!o) {
                reply_error(rq, 400, "bad_request", "body is not JSON: %s at line %d, column %d (byte %d)",
                            json_error_category(&err), err.line, err.column, err.position);
                return NULL;
        }
        if (!json_is_object(o)) {
                reply_error(rq, 400, "bad_request", "body is not a JSON object");
                json_decref(o);
                return NULL;
        }
        json_object_foreach(o, key, v) {
                bool ok = false;
                for (size_t i = 0; allowed[i]; i++)
                        ok |= strcmp(key, allowed[i]) == 0;
                if (!ok) {
                        reply_error(rq, 400, "bad_request", "unknown field '%.64s'", key);
                        json_decref(o);
                        return NULL;
                }
        }
        return o;
}
