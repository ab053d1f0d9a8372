/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libmicrohttpd glue: one server per socket; tools.sock has a pool of
 * threads (--tool-threads), admin.sock one.  The caller of a request is
 * the process that wrote its bytes (sender.c: per-message credentials read
 * under libmicrohttpd's own recv()), with its current credentials, judged
 * on every request; a connection whose bytes came from two processes is
 * refused.  Identity is lazy (a uid no client selects is not looked at
 * beyond its credentials) and never hashes on a serving thread: a request
 * whose executable is not hashed yet is suspended while a worker hashes
 * (peer_hash.c).  SO_PEERCRED is read once, at accept (conn_notify), for
 * the per-uid connection cap and to vouch for the writer's pid.
 * Identification runs in parallel on the server threads; then a route
 * marked UNLOCKED (token issue, health, introspect) runs without any
 * daemon-wide lock, every other one under the control lock (srv.lock,
 * main.c's cbd.lock) that still guards the stateful subsystems.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sodium.h>

#include "log.h"
#include "metrics.h"
#include "audit.h"
#include "audit_format.h" /* cb_json_string_lossy */
#include "daemon.h"
#include "error.h"
#include "scan.h"
#include "sender.h"
#include "ratelimit.h"
#include "route.h"
#include "tcpdiag.h"
#include "sandbox.h"

static void wipe_free(void *p, size_t n) {
        if (p) {
                sodium_memzero(p, n);
                free(p);
        }
}

/* A connection's socket_context, set up in conn_notify() at accept and
 * freed when MHD closes the connection; NULL when the caller's credentials
 * could not be read (its requests are refused as not identified). */
enum { CTX_COUNTED = 0, CTX_REFUSED = 1, CTX_DROPPED = 2, CTX_FULL = 3 };
typedef struct conn_ctx {
        struct ucred cred; /* SO_PEERCRED (fixed at connect()); over TCP the uid
                            * from sock_diag only, pid 0, gid -1 */
        uid_t acct;        /* the uid its costs are charged to (cb_peer_account_uid) */
        int kind;          /* CTX_*: how the per-uid cap counted it */
        int fd;            /* tracked by sender.c when >= 0 (Unix sockets) */
        cb_sender snd;     /* who wrote the bytes read so far (sender.h) */
} conn_ctx;

static conn_ctx *conn_ctx_of(struct MHD_Connection *conn) {
        const union MHD_ConnectionInfo *sc = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

        return sc ? sc->socket_context : NULL;
}

struct body_buf {
        char *p;
        size_t n;
};

static int admin_marker, tcp_marker; /* the servers' cls: tools.sock has NULL */

/* http/'s own state: the servers (started and stopped by main.c's thread
 * only), the executables' hash cache (its own lock), the refusals of the
 * per-uid cap (atomic). */
static struct MHD_Daemon *tool_mhd, *admin_mhd;
static struct MHD_Daemon *tcp_mhd[64]; /* one per proxy loop (--threads), which runs it */
static cb_exe_cache *exe_cache;
static uint64_t conn_refused;  /* connections refused over CB_CONN_PER_UID (atomic) */
static uid_t conn_refused_uid; /* the last uid refused (atomic) */
static uint64_t conn_refused_full; /* of conn_refused: over a socket's CB_CONN_MAX (atomic) */
static server_env srv;         /* what main.c hands us (server_attach), before the servers */

void server_attach(const server_env *env) {
        srv = *env;
}

cb_exe_cache *server_exe_cache(void) {
        return exe_cache;
}

uint64_t server_conn_refused_full(void) {
        return __atomic_load_n(&conn_refused_full, __ATOMIC_RELAXED);
}

uint64_t server_conn_refused(uid_t *ret_uid) {
        if (ret_uid)
                *ret_uid = __atomic_load_n(&conn_refused_uid, __ATOMIC_RELAXED);
        return __atomic_load_n(&conn_refused, __ATOMIC_RELAXED);
}

enum { HASH_NONE = 0, HASH_WAITING, HASH_DONE };

static void free_sensitive(void *cls) {
        struct body_buf *b = cls;

        wipe_free(b->p, b->n);
        free(b);
}

/* audit_emit() and audit_write() live in audit.c. */

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
static void eof_hold(request *rq) {
        conn_ctx *cc = conn_ctx_of(rq->conn);

        if (cc && cc->fd >= 0)
                __atomic_store_n(&cc->snd.hold_eof, 1, __ATOMIC_RELEASE);
}

static bool eof_release(request *rq) {
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
static void flush_drop(request *rq, bool force) {
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
static enum MHD_Result flush(request *rq, enum MHD_Result ret, bool may_suspend) {
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
 * never affected.  Under the request lock. */
static unsigned refusals_recorded = 600; /* --refusals-recorded; 0: every one */
static cb_ratelimit *refusals;           /* guards itself; made once (any serving thread) */
static pthread_once_t refusals_once = PTHREAD_ONCE_INIT;
static void refusals_make(void) {
        refusals = cb_ratelimit_new(1024); /* 2 per user; full of open windows: quiet */
}

void server_set_refusals_recorded(unsigned n) {
        refusals_recorded = n;
}

static bool refusal_quiet(request *rq) {
        char key[32];
        uint32_t retry = 0;
        uint64_t now = (uint64_t)time(NULL);

        if (refusals_recorded == 0)
                return false;
        pthread_once(&refusals_once, refusals_make);
        if (!refusals)
                return false; /* out of memory: recorded as before */
        snprintf(key, sizeof(key), "uid#%u", (unsigned)rq->acct_uid); /* subordinate uids share their owner's */
        if (cb_ratelimit_take(refusals, key, "records", refusals_recorded, 60, now, &retry))
                return false;
        if (cb_ratelimit_take(refusals, key, "note", 1, 60, now, NULL)) {
                json_t *ev = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "decision", "deny", "route",
                                       "refusals.quiet", "uid", (json_int_t)rq->peer.uid, "records_per_minute",
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

int reply_error(request *rq, unsigned status, const char *code, const char *fmt, ...) {
        char msg[512];
        json_t *o;
        char *text;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
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
        if (rq->sandbox_ref && status >= 400)
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

static enum MHD_Result dispatch(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                request *rq);

/* Did a process other than the one the request was judged as write some
 * of the body streaming in now (proxy, scan: decided on the headers)?  The
 * rest of the request must not ride on that decision. */
static bool body_mixed(struct MHD_Connection *conn) {
        const conn_ctx *cc = conn_ctx_of(conn);

        if (!cc || cc->fd < 0)
                return false; /* TCP: no per-message credentials; tokens are the credential there */
        if (cc->snd.other_pid == 0 && cc->snd.err == 0)
                return false;
        return true;
}

static enum MHD_Result handle_body(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                   const char *upload_data, size_t *upload_data_size, request *rq);

static enum MHD_Result handle_inner(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                    const char *version, const char *upload_data, size_t *upload_data_size,
                                    void **con_cls) {
        request *rq = *con_cls;

        if (!rq || !rq->started) {
                const conn_ctx *cc = conn_ctx_of(conn);
                if (cc && cc->kind != CTX_COUNTED)
                        return MHD_NO; /* answered 429 or 503 in conn_notify() */
                if (!rq && !(rq = calloc(1, sizeof(*rq))))
                        return MHD_NO;
                rq->peer.pidfd = -1;
                rq->started = true;
                rq->http10 = version && strcmp(version, "HTTP/1.0") == 0;
                *con_cls = rq;
                /* A proxied request is decided on its headers, before any of
                 * its body is read: the body then streams to the upstream.
                 * So is a scan: its body streams through the matcher.  The
                 * path decides (a wrong method is refused on the headers
                 * too); over TCP, whatever tools.sock would stream (the
                 * proxy, and a scan target: refused there, on its headers). */
                const http_route *path;
                http_args args;
                (void)http_route_find(cls == &admin_marker ? HTTP_ADMIN : HTTP_TOOLS, method, url, &args, &path);
                rq->first_call = path && (path->flags & HTTP_ROUTE_STREAM);
                if (rq->first_call)
                        return dispatch(cls, conn, url, method, rq);
                return MHD_YES;
        }
        if (__atomic_load_n(&rq->hash_state, __ATOMIC_ACQUIRE) == HASH_DONE && rq->first_call) {
                /* Resumed after being suspended on its headers: decide
                 * now.  libmicrohttpd may pass body bytes with this very
                 * call: they go on to the paths below (streamed, or
                 * dropped when refused), never left unconsumed. */
                /* Before any body moves; not suspended with body bytes in
                 * hand (waits here, at most the deadline). */
                enum MHD_Result d = flush(rq, dispatch(cls, conn, url, method, rq), false);
                if (d != MHD_YES || !*upload_data_size)
                        return d;
        }
        return handle_body(cls, conn, url, method, upload_data, upload_data_size, rq);
}

/* A started request's body bytes (or its end): streamed to the proxy or
 * the matcher, dropped after a refusal on the headers, or kept. */
static enum MHD_Result handle_body(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                   const char *upload_data, size_t *upload_data_size, request *rq) {
        if ((rq->proxy || rq->scan) && *upload_data_size && body_mixed(conn))
                return MHD_NO; /* a streamed body from another writer: the connection is closed, the request aborted */
        if (rq->proxy) {
                if (*upload_data_size)
                        return proxy_feed(rq, upload_data, upload_data_size) == MHD_YES ? MHD_YES : MHD_NO;
                proxy_body_done(rq);
                return proxy_continue(rq) == MHD_YES ? MHD_YES : MHD_NO;
        }
        if (rq->scan && !rq->answered) {
                if (*upload_data_size)
                        return scan_feed(rq, upload_data, upload_data_size) == MHD_YES ? MHD_YES : MHD_NO;
                return scan_finish(rq) == MHD_YES ? MHD_YES : MHD_NO;
        }
        if (rq->answered) {
                *upload_data_size = 0; /* refused on its headers: the body is dropped */
                return MHD_YES;
        }
        if (*upload_data_size) {
                if (!rq->too_large && rq->body_len + *upload_data_size <= CB_BODY_MAX) {
                        size_t need = rq->body_len + *upload_data_size + 1;
                        if (need > rq->body_cap) {
                                size_t nc = rq->body_cap ? rq->body_cap : 4096;
                                while (nc < need)
                                        nc *= 2;
                                unsigned char *nb = malloc(nc);
                                if (!nb)
                                        return MHD_NO;
                                if (rq->body) {
                                        memcpy(nb, rq->body, rq->body_len);
                                        wipe_free(rq->body, rq->body_cap);
                                }
                                rq->body = nb;
                                rq->body_cap = nc;
                        }
                        memcpy(rq->body + rq->body_len, upload_data, *upload_data_size);
                        rq->body_len += *upload_data_size;
                        rq->body[rq->body_len] = 0;
                } else {
                        rq->too_large = true;
                }
                *upload_data_size = 0;
                return MHD_YES;
        }
        return dispatch(cls, conn, url, method, rq);
}

/* Every path of a request runs here and ends outside the request lock, where its
 * answer waits for its records (flush). */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size,
                              void **con_cls) {
        request *rq = *con_cls;
        enum MHD_Result ret;

        if (rq && rq->audit_suspended) {
                /* Woken: its records are written, failed or late.  MHD
                 * calls again in the state it was suspended in (the
                 * headers of a proxied request, or a whole request): the
                 * answer or the hand-over is all that is due now. */
                rq->audit_suspended = false;
                ret = flush(rq, MHD_YES, true);
                /* Body bytes may come with this very call (a request
                 * decided on its headers): streamed on, or dropped after a
                 * refusal -- never left unconsumed, which makes
                 * libmicrohttpd drop the connection, answer unsent. */
                if (ret == MHD_YES && !rq->audit_suspended && *upload_data_size)
                        ret = flush(rq, handle_body(cls, conn, url, method, upload_data, upload_data_size, rq), true);
                return ret;
        }
        ret = handle_inner(cls, conn, url, method, version, upload_data, upload_data_size, con_cls);
        return flush(*con_cls, ret, true);
}

/* The one process that wrote every byte read on this connection so far,
 * into *ret; -EPERM when there were several (a connection handed to, or
 * shared with, another process: each process must open its own). */
static int sender_of(const cb_sender *s, struct ucred *ret) {
        if (s->err == -ENOMSG)
                return cb_error_set(-EPROTO, "request bytes arrived without their sender's credentials");
        if (s->err < 0)
                return cb_error_set(-EPROTO, "request bytes arrived with truncated control data (descriptors "
                                             "sent to the broker?)");
        if (s->reads == 0)
                return cb_error_set(-EPROTO, "no request bytes were read with credentials");
        if (s->other_pid) {
                bool gone = s->pidfd >= 0 && !cb_peer_alive(&(cb_peer){ .pidfd = s->pidfd });

                return cb_error_set(-EPERM, "the bytes on this connection were written by more than one process "
                                            "(pid %d uid %u%s, then pid %d uid %u): a connection serves only the "
                                            "process that writes on it; each process must open its own",
                                    (int)s->first.pid, (unsigned)s->first.uid, gone ? ", which has exited" : "",
                                    (int)s->other_pid, (unsigned)s->other_uid);
        }
        *ret = s->first;
        return 0;
}

static int identify(request *rq, const conn_ctx *cc, const struct ucred *cred, unsigned need) {
        unsigned what;

        /* Never hashed here: hash_step() does that, off this thread. */
        if (rq->admin_socket)
                what = cb_policy_uses_cgroup(rq->policy) ? CB_PEER_CGROUP : 0;
        else
                what = !(need & CB_NEED_SELECTED) ? CB_PEER_SKIP_EXE : (need & CB_NEED_CGROUP) ? CB_PEER_CGROUP : 0;
        return cb_peer_identify_pidfd(cred, cc->snd.pidfd, exe_cache, what | CB_PEER_SKIP_HASH, &rq->peer);
}

static bool stat_key_eq(const struct stat *a, const struct stat *b) {
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
               a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* A hash worker's answer (peer_hash.c, on its thread). */
static void hash_done(void *ud, int r, const unsigned char sha[32], const char *err) {
        request *rq = ud;

        rq->hash_r = r;
        if (sha)
                memcpy(rq->hash_sha, sha, 32);
        snprintf(rq->hash_err, sizeof(rq->hash_err), "%s", err ? err : "");
        __atomic_store_n(&rq->hash_state, HASH_DONE, __ATOMIC_RELEASE);
        /* Resume only a suspended connection: if the handler has not
         * suspended it yet, it sees bit 2 and resumes it itself. */
        if (__atomic_fetch_or(&rq->hash_sync, 2, __ATOMIC_ACQ_REL) & 1)
                MHD_resume_connection(rq->conn);
}

/* The executable's hash for rq->peer (identified with CB_PEER_SKIP_HASH):
 * from the cache, from the worker that just ran for this request, or
 * else queued for a worker (1: the connection is suspended; this thread
 * goes on serving others).  may_wait false: a miss is refused instead. */
static int hash_step(request *rq, struct MHD_Connection *conn, bool may_wait) {
        int state = __atomic_load_n(&rq->hash_state, __ATOMIC_ACQUIRE), r;

        if (state == HASH_DONE) {
                rq->hash_state = HASH_NONE;
                if (eof_release(rq))
                        rq->close = true; /* half-closed while suspended: the answer ends the connection */
                if (rq->hash_r < 0)
                        return cb_error_set(rq->hash_r, "%s", rq->hash_err);
                if (!stat_key_eq(&rq->hash_st, &rq->peer.exe_st))
                        return cb_error_set(-EAGAIN, "peer pid %d: its executable changed while it was being "
                                                     "hashed; retry", (int)rq->peer.pid);
                memcpy(rq->peer.exe_sha256, rq->hash_sha, 32);
        } else if (!cb_exe_cache_get(exe_cache, &rq->peer.exe_st, rq->peer.exe_sha256)) {
                if (!may_wait)
                        return cb_error_set(-EAGAIN, "peer pid %d: its executable is not hashed yet; retry",
                                            (int)rq->peer.pid);
                rq->hash_st = rq->peer.exe_st;
                rq->conn = conn;
                __atomic_store_n(&rq->hash_state, HASH_WAITING, __ATOMIC_RELAXED);
                __atomic_store_n(&rq->hash_sync, 0, __ATOMIC_RELAXED);
                r = cb_exe_hash_submit(exe_cache, &rq->peer, hash_done, rq);
                if (r < 0) {
                        rq->hash_state = HASH_NONE;
                        return r;
                }
                cb_peer_done(&rq->peer);
                eof_hold(rq);
                /* The worker may already be done (a resume of a connection
                 * not yet suspended would be lost): whichever of the two
                 * comes second resumes it (hash_done). */
                MHD_suspend_connection(conn);
                if (__atomic_fetch_or(&rq->hash_sync, 1, __ATOMIC_ACQ_REL) & 2)
                        MHD_resume_connection(conn);
                return 1;
        }
        sodium_bin2hex(rq->peer.exe_sha256_hex, sizeof(rq->peer.exe_sha256_hex), rq->peer.exe_sha256, 32);
        rq->peer.hash_known = true;
        return 0;
}

/* Run the request's route (route.h), the caller identified, under
 * the request lock: admin.sock's gate first, then the path's checks, the method,
 * the handler.  r, path, args: http_route_find's answer. */
static int run_route(request *rq, unsigned sock, const http_route *r, const http_route *path, const http_args *args) {
        http_gate gate = http_routes_admin_gate();
        char use[64];
        int ret;

        if (sock == HTTP_ADMIN && (!gate || gate(rq, path, &ret)))
                return gate ? ret : reply_error(rq, 503, "unavailable", "no routes");
        if (path && path->seg_max && args->seg_len > path->seg_max)
                return reply_error(rq, 400, "bad_request", "%s", path->seg_too_long);
        if (r) {
                rq->route = r->audit;
                return r->handler(rq, args);
        }
        if (path) {
                if (path->flags & HTTP_ROUTE_NAMED_405)
                        rq->route = path->audit;
                http_route_methods(sock, path, use, sizeof(use));
                return reply_error(rq, 405, "method_not_allowed", "%s", use);
        }
        if (sock == HTTP_TCP)
                return reply_error(rq, 404, "not_found", "over TCP only the proxy and /v1/health are served; use "
                                                         "tools.sock");
        return reply_error(rq, 404, "not_found", "no route %.64s", rq->url);
}

/* Identify the caller and run the route. */
static enum MHD_Result dispatch(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                request *rq) {
        /* A sandbox's listener (sandbox.h) is served as the TCP listener
         * is, its caller being the sandbox's launching uid. */
        cb_sandbox *sbx = cls == &admin_marker || cls == &tcp_marker ? NULL : cb_sandbox_of(cls);
        unsigned sock = cls == &admin_marker ? HTTP_ADMIN : cls == &tcp_marker || sbx ? HTTP_TCP : HTTP_TOOLS;
        const http_route *route, *path, *tool_path;
        http_args args, tool_args;
        int ret;

        rq->conn = conn;
        rq->url = url;
        rq->method = method;
        rq->admin_socket = sock == HTTP_ADMIN;
        rq->tcp = sock == HTTP_TCP;
        /* The table is fixed: looked up outside the lock.  Refusals of what
         * tools.sock would proxy come in the SDKs' shape, on every socket. */
        route = http_route_find(sock, method, url, &args, &path);
        if (sock == HTTP_TOOLS)
                tool_path = path;
        else
                (void)http_route_find(HTTP_TOOLS, method, url, &tool_args, &tool_path);
        rq->sdk_errors = tool_path && (tool_path->flags & HTTP_ROUTE_SDK_ERRORS);
        /* A liveness probe decides nothing: its record is written when it
         * can be, never waited for, and a failed audit log does not refuse
         * it. */
        bool probe = path && (path->flags & HTTP_ROUTE_PROBE) && strcmp(method, "GET") == 0;
        rq->sandbox = sbx ? sbx->id : NULL;
        rq->sandbox_ref = sbx;
        /* The policy this request is decided under, from its first call to
         * its end (a resumed request keeps it; completed() releases it):
         * a reload meanwhile neither waits for it nor changes its mind. */
        if (!rq->policy)
                rq->policy = cb_policy_acquire(srv.policy);
        /* The control lock (srv.lock) is taken only for the routes that
         * still need it: an UNLOCKED route (the token route, health,
         * introspect) and a refusal with no route run without it.  On
         * admin.sock the gate needs it (audit_intent drops it to wait). */
        pthread_mutex_t *lk = sock == HTTP_ADMIN || (route && !(route->flags & HTTP_ROUTE_UNLOCKED)) ? srv.lock : NULL;
        if (rq->tcp) {
                /* Over TCP the uid comes from sock_diag (looked up once, at
                 * accept: a socket's owner never changes); there is no pid
                 * or executable, so only uid-bound proxy tokens work here. */
                const conn_ctx *cc = conn_ctx_of(conn);
                if (lk)
                        pthread_mutex_lock(lk);
                if (!cc) {
                        ret = reply_error(rq, 403, "forbidden", "TCP caller not identified (sock_diag found no "
                                                                "owner for its socket)");
                } else {
                        rq->peer.uid = cc->cred.uid;
                        rq->peer.gid = (gid_t)-1;
                        rq->peer.pid = 0;
                        rq->have_peer = true;
                        rq->acct_uid = cc->acct;
                        rq->audit_optional = probe;
                        if (rq->audit_optional ? audit_failed(NULL, 0) : !audit_available())
                                ret = reply_audit_refused(rq);
                        else if (rq->too_large)
                                ret = reply_error(rq, 413, "payload_too_large", "body larger than %d bytes",
                                                  CB_BODY_MAX);
                        else
                                ret = run_route(rq, sock, route, path, &args);
                }
                if (lk)
                        pthread_mutex_unlock(lk);
                return ret == MHD_YES ? MHD_YES : MHD_NO;
        }
        /* The caller is the process that wrote the request's bytes
         * (sender.c), with its current credentials; identification reads
         * /proc and may hash a file, outside the lock, and only as much as
         * the policy needs for that uid (lazy identity). */
        conn_ctx *cc = conn_ctx_of(conn);
        struct ucred cred;
        unsigned need = ~0u;
        int r, rechecks = 0;

again:
        need = ~0u;
        if (!cc)
                r = cb_error_set(-EPROTO, "its credentials (SO_PEERCRED) could not be read when it connected");
        else
                r = sender_of(&cc->snd, &cred);
        /* The writer's pid is its own claim (cb_peer_writer_trusted): one
         * stat of /proc/PID/ns/pid for a writer in our pid namespace. */
        if (r == 0)
                r = cb_peer_writer_trusted(cred.pid, cc->cred.pid);
        if (r == 0 && !rq->admin_socket)
                need = cb_policy_uid_needs(rq->policy, cred.uid, cred.gid, NULL);
        r = r < 0 ? r : identify(rq, cc, &cred, need);
        if (r == 0 && (rq->admin_socket || (need & CB_NEED_SELECTED)) && (r = hash_step(rq, conn, true)) == 1)
                return MHD_YES; /* suspended until a worker has hashed its executable */
        /* Identification may have waited (a hash the caller can make as
         * long as it likes): a reload answered meanwhile must hold for
         * this request.  So the route is decided under the policy in force
         * now, not the one taken at the request's start; under a newer one
         * the caller is identified again (it may ask for more: the hash is
         * cached by now).  Identification and the route then read one
         * snapshot, and what is left between this check and the decision
         * is memory work, never a wait (red team rt6 F2). */
        if (r == 0) {
                const cb_policy *now = cb_policy_acquire(srv.policy);
                if (now != rq->policy) {
                        cb_policy_unref(rq->policy);
                        rq->policy = now;
                        if (++rechecks <= 3)
                                goto again;
                        r = cb_error_set(-EAGAIN, "the policy was reloaded repeatedly while the caller was identified");
                } else {
                        cb_policy_unref(now);
                }
        }
        if (lk)
                pthread_mutex_lock(lk);
        if (r == -EBUSY || r == -EAGAIN) {
                ret = reply_error(rq, 503, "identity_busy", "caller not identified yet: %s", cb_error_last());
        } else if (r < 0) {
                ret = reply_error(rq, 403, "forbidden", "caller not identified: %s", cb_error_last());
        } else {
                rq->have_peer = true;
                /* The writer's user namespace owner when the writer is not
                 * the connector (the connector's was charged at accept). */
                rq->acct_uid = cred.pid == cc->cred.pid ? cc->acct : cb_peer_account_uid(cred.pid, cred.uid);
                rq->audit_optional = probe;
                if (rq->audit_optional ? audit_failed(NULL, 0) : !audit_available()) /* fail closed: refused before anything is done */
                        ret = reply_audit_refused(rq);
                else if (rq->too_large)
                        ret = reply_error(rq, 413, "payload_too_large", "body larger than %d bytes", CB_BODY_MAX);
                else
                        ret = run_route(rq, sock, route, path, &args);
        }
        if (lk)
                pthread_mutex_unlock(lk);
        return ret == MHD_YES ? MHD_YES : MHD_NO;
}

/* ---- per-uid connection cap ----------------------------------------------
 * One uid may hold at most CB_CONN_PER_UID connections on a socket, so one
 * tool (or a hijacked agent) opening idle connections cannot use up the
 * server's CB_CONN_MAX for everyone.  Over the cap, a connection is not
 * served: the first CB_CONN_REFUSED_PER_UID such connections of a uid are
 * answered 429 at once and half-closed (the client reads the answer and
 * EOF; MHD drops the connection when the request comes in, or after 1 s
 * idle), any beyond that are shut down outright (the client sees the
 * connection closed).  A uid thus holds at most CB_CONN_PER_UID +
 * CB_CONN_REFUSED_PER_UID slots, however it trickles bytes.
 *
 * A socket serves at most CB_CONN_MAX connections in all.  libmicrohttpd
 * takes CB_CONN_SPARE more, so that a connection past the cap is seen
 * here, answered 503 and half-closed like a refused one (CTX_FULL) — and
 * counted, like the per-uid refusals — rather than left waiting unseen in
 * the listen queue.
 * (Past the spare too, e.g. while many refused connections are being
 * closed, libmicrohttpd stops accepting for a moment: those wait, and are
 * answered when taken.) */
typedef struct conn_caps {
        pthread_mutex_t lock;
        struct {
                uid_t uid;
                unsigned n, refused;
        } u[CB_CONN_MAX];
        size_t n;
        size_t total; /* CTX_COUNTED connections, at most CB_CONN_MAX */
} conn_caps;

static conn_caps tool_caps = { .lock = PTHREAD_MUTEX_INITIALIZER }, admin_caps = { .lock = PTHREAD_MUTEX_INITIALIZER },
                 tcp_caps = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Take a slot for a new connection of uid: CTX_COUNTED, CTX_REFUSED (over
 * the uid's cap, still within the refused allowance), CTX_DROPPED (past
 * that) or CTX_FULL (the socket holds CB_CONN_MAX; a uid over its own cap
 * is told that instead). */
static int caps_take(conn_caps *c, uid_t uid) {
        int kind = CTX_DROPPED;
        size_t i;

        pthread_mutex_lock(&c->lock);
        for (i = 0; i < c->n && c->u[i].uid != uid; i++)
                ;
        if ((i == c->n || c->u[i].n < CB_CONN_PER_UID) && c->total >= CB_CONN_MAX) {
                kind = CTX_FULL;
                goto out;
        }
        /* Always room: an entry has counted connections, and at most
         * CB_CONN_MAX are counted. */
        if (i == c->n && c->n < CB_CONN_MAX) {
                c->u[i].uid = uid;
                c->u[i].n = c->u[i].refused = 0;
                c->n++;
        }
        if (i < c->n) {
                if (c->u[i].n < CB_CONN_PER_UID) {
                        c->u[i].n++;
                        c->total++;
                        kind = CTX_COUNTED;
                } else if (c->u[i].refused < CB_CONN_REFUSED_PER_UID) {
                        c->u[i].refused++;
                        kind = CTX_REFUSED;
                }
        }
out:
        pthread_mutex_unlock(&c->lock);
        return kind;
}

static void caps_put(conn_caps *c, uid_t uid, int kind) {
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n; i++)
                if (c->u[i].uid == uid) {
                        if (kind == CTX_COUNTED && c->u[i].n > 0) {
                                c->u[i].n--;
                                c->total--;
                        } else if (kind == CTX_REFUSED && c->u[i].refused > 0) {
                                c->u[i].refused--;
                        }
                        if (c->u[i].n == 0 && c->u[i].refused == 0)
                                c->u[i] = c->u[--c->n];
                        break;
                }
        pthread_mutex_unlock(&c->lock);
}

/* Answer 429 (a uid over its cap) or 503 (the socket full) before MHD
 * reads a byte, then half-close (or, hard, close both ways).  What the
 * client already sent is drained first: closing a Unix socket with unread
 * data resets the connection, and the client would lose the answer. */
static void refuse_now(int fd, uid_t uid, bool hard, bool full) {
#define BUSY_BODY "{\"error\":\"too_many_connections\",\"message\":\"uid %u holds %d connections, the most one uid may\"}"
#define FULL_BODY "{\"error\":\"server_busy\",\"message\":\"the socket serves %d connections, the most it may; retry\"}"
        char busy[256], sink[4096];
        int n = full ? snprintf(busy, sizeof(busy),
                                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                                "Retry-After: 1\r\nContent-Length: %d\r\n\r\n" FULL_BODY,
                                snprintf(NULL, 0, FULL_BODY, CB_CONN_MAX), CB_CONN_MAX)
                     : snprintf(busy, sizeof(busy),
                                "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nConnection: close\r\n"
                                "Content-Length: %d\r\n\r\n" BUSY_BODY,
                                snprintf(NULL, 0, BUSY_BODY, (unsigned)uid, CB_CONN_PER_UID), (unsigned)uid,
                                CB_CONN_PER_UID);
#undef BUSY_BODY
#undef FULL_BODY

        if (n > 0 && (size_t)n < sizeof(busy))
                (void)send(fd, busy, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)shutdown(fd, SHUT_WR);
        if (!hard)
                return;
        for (size_t total = 0; total < CB_BODY_MAX;) {
                ssize_t k = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
                if (k <= 0)
                        break;
                total += (size_t)k;
        }
        (void)shutdown(fd, SHUT_RD);
}

/* Over TCP there is no pid to find the user behind a uid: a uid no client
 * selects -- which is all a user's subordinate uids are, unless the policy
 * names them -- is charged to one shared bucket (such callers can only be
 * refused there anyway: over TCP a uid-bound proxy token is the
 * credential, and only a selected uid holds one). */
static uid_t tcp_account_uid(uid_t uid) {
        const cb_policy *pol = cb_policy_acquire(srv.policy);
        bool selected = cb_policy_uid_selectable(pol, uid, NULL);

        cb_policy_unref(pol);
        return selected ? uid : CB_PEER_ACCOUNT_UNKNOWN;
}

static void conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode code) {
        cb_sandbox *sbx = cls == &admin_marker || cls == &tcp_marker ? NULL : cb_sandbox_of(cls);
        conn_caps *c = cls == &admin_marker ? &admin_caps : cls == &tcp_marker || sbx ? &tcp_caps : &tool_caps;

        if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
                conn_ctx *cc = *socket_context;
                if (cc) {
                        if (cc->fd >= 0)
                                cb_sender_untrack(cc->fd, &cc->snd);
                        caps_put(c, cc->acct, cc->kind);
                        free(cc);
                }
                *socket_context = NULL;
                return;
        }
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct ucred uc;
        conn_ctx *cc;

        *socket_context = NULL;
        if (cls == &tcp_marker || sbx) {
                uc.pid = 0;
                uc.gid = (gid_t)-1;
                /* On a sandbox's listener every caller is the sandbox: the
                 * listener lives in its network namespace (sandbox.h). */
                if (sbx) {
                        uc.uid = sbx->uid; /* counted where sandbox/ accepted it */
                } else if (!ci || cb_tcp_peer_uid(ci->connect_fd, &uc.uid) < 0) {
                        return; /* the request is refused: not identified */
                }
                if (!ci)
                        return;
                /* A streamed response goes out as the upstream sends it:
                 * headers first, then each piece.  Without NODELAY a small
                 * piece waits for the client's delayed ACK (~40 ms). */
                int one = 1;
                (void)setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        } else if (!ci || cb_peer_cred_read(ci->connect_fd, &uc) < 0) {
                return; /* the request is refused: not identified */
        }
        cc = malloc(sizeof(*cc));
        if (!cc) {
                /* Neither counted nor identifiable: not served. */
                (void)shutdown(ci->connect_fd, SHUT_RDWR);
                return;
        }
        cc->fd = -1;
        cc->snd.pidfd = -1;
        if (cls != &tcp_marker && !sbx) {
                if (cb_sender_track(ci->connect_fd, &cc->snd) < 0) {
                        free(cc);
                        (void)shutdown(ci->connect_fd, SHUT_RDWR);
                        return;
                }
                cc->fd = ci->connect_fd;
        }
        /* Charged to the user behind it: the owner of its user namespace
         * when that is not ours (subordinate uids must not multiply the
         * per-uid cap). */
        uid_t acct = sbx ? uc.uid : cls == &tcp_marker ? tcp_account_uid(uc.uid) : cb_peer_account_uid(uc.pid, uc.uid);
        int kind = caps_take(c, acct);

        cc->cred = uc;
        cc->acct = acct;
        cc->kind = kind;
        *socket_context = cc;
        if (kind == CTX_COUNTED)
                return;
        refuse_now(ci->connect_fd, acct, kind == CTX_DROPPED, kind == CTX_FULL);
        if (kind == CTX_REFUSED || kind == CTX_FULL) /* one of the spare slots, for 1 s at most */
                (void)MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, 1u);
        /* Counted, not reported one by one (a flood must not become a flood
         * of log lines): the main loop reports them once a second. */
        if (kind == CTX_FULL)
                __atomic_add_fetch(&conn_refused_full, 1, __ATOMIC_RELAXED);
        else
                __atomic_store_n(&conn_refused_uid, acct, __ATOMIC_RELAXED);
        __atomic_add_fetch(&conn_refused, 1, __ATOMIC_RELAXED);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
        request *rq = *con_cls;

        (void)cls, (void)conn, (void)toe;
        if (!rq)
                return;
        flush_drop(rq, false); /* never left by flush(); a closed connection's, defensively */
        if (rq->body)
                wipe_free(rq->body, rq->body_cap);
        free(rq->raw_target);
        proxy_request_done(rq);
        scan_request_done(rq);
        cb_peer_done(&rq->peer);
        cb_policy_unref(rq->policy);
        free(rq);
        *con_cls = NULL;
}

/* The per-connection pool holds the request line and headers (bodies are
 * copied out as they arrive, capped at CB_BODY_MAX): 32 KiB is ample, and
 * the pool is set up afresh for every connection — a large one costs more
 * than the whole request (measured: 256 KiB made token issue ~10x slower). */
/* URLs and query arguments reach the handlers as sent: the proxy forwards
 * them byte for byte (and checks the raw path), the other routes have no
 * escapes to undo. */
static size_t keep_escapes(void *cls, struct MHD_Connection *c, char *s) {
        (void)cls, (void)c;
        return strlen(s);
}

/* The request-target as the client sent it, before libmicrohttpd splits
 * off the query and rewrites it ('+' becomes a space, '=' and '&' NULs):
 * the proxy checks and forwards exactly these bytes.  The request is made
 * here (MHD hands it to handle() as its context). */
static void *keep_target(void *cls, const char *uri, struct MHD_Connection *c) {
        request *rq = calloc(1, sizeof(*rq));

        (void)cls, (void)c;
        if (rq) {
                rq->peer.pidfd = -1;
                rq->raw_target = strdup(uri); /* NULL: the proxy refuses the request */
                /* libmicrohttpd 0.9.75 hands the target as a C string: a NUL
                 * in it cuts it short.  Whole, it ends where the space
                 * before the HTTP version was (the version, checked before
                 * this call, follows); cut, the rest of the target does. */
                rq->target_nul = strncmp(uri + strlen(uri) + 1, "HTTP/", 5) != 0;
        }
        return rq;
}

/* threads 0: no thread of MHD's own; the proxy's transfer loop drives it
 * (MHD_run), so a proxied request over TCP is read, decided, sent upstream
 * and answered on one thread, without a hand-over. */
static struct MHD_Daemon *start_one(int fd, void *cls, unsigned threads, unsigned conn_limit) {
        /* TURBO: read and write at once rather than wait for readiness
         * first (measured: 22 -> 17 system calls per token request). */
        unsigned flags = MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;

        if (threads)
                flags |= MHD_USE_INTERNAL_POLLING_THREAD;
        if (fd < 0) /* connections handed in (MHD_add_connection): the thread must be woken */
                flags |= MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
        return MHD_start_daemon(flags, 0, NULL, NULL,
                                handle, cls, MHD_OPTION_EXTERNAL_LOGGER, cb_log_mhd, NULL, /* stamped lines */
                                /* no socket: the connection limit (given again below) in its place */
                                fd >= 0 ? MHD_OPTION_LISTEN_SOCKET : MHD_OPTION_CONNECTION_LIMIT,
                                fd >= 0 ? fd : (int)conn_limit, MHD_OPTION_NOTIFY_COMPLETED, completed,
                                NULL, MHD_OPTION_NOTIFY_CONNECTION, conn_notify, cls, MHD_OPTION_UNESCAPE_CALLBACK,
                                keep_escapes, NULL, MHD_OPTION_URI_LOG_CALLBACK, keep_target, NULL,
                                MHD_OPTION_CONNECTION_LIMIT, conn_limit, MHD_OPTION_CONNECTION_TIMEOUT,
                                (unsigned)10, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
                                /* a pool of 1 draws a warning: pass 0 options then */
                                threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads,
                                MHD_OPTION_END);
}

int server_start(int tool_fd, int admin_fd, int tcp_fd, unsigned threads, unsigned tool_threads) {
        /* The TCP listener's servers first (one per proxy loop, which runs
         * it: it serves nothing until the loops run; each has its own
         * descriptor of the listening socket, as MHD closes it at stop, and
         * its share of the socket's CB_CONN_MAX + CB_CONN_SPARE connections),
         * then the loops, then the sockets whose requests may hand jobs to
         * them. */
        if (threads == 0 || threads > sizeof(tcp_mhd) / sizeof(tcp_mhd[0]))
                return cb_error_set(-EINVAL, "--threads: %u is out of range", threads);
        if (!exe_cache && !(exe_cache = cb_exe_cache_new(256)))
                return cb_error_set(-ENOMEM, "out of memory");
        /* Per-message credentials on both Unix sockets (sender.h); the
         * table covers every descriptor the process may open. */
        struct rlimit nofile;
        bool have_pidfd = false, norights = false;
        size_t max_fd = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < (1u << 20)
                                ? (size_t)nofile.rlim_cur
                                : (size_t)1 << 20;
        if (cb_sender_init(max_fd) < 0 || cb_sender_listen(tool_fd, &have_pidfd, &norights) < 0 ||
            cb_sender_listen(admin_fd, &have_pidfd, &norights) < 0)
                return cb_error_set(-EIO, "per-message credentials on the Unix sockets: %s", cb_error_last());
        if (!norights)
                cb_log(CB_LOG_WARNING, "this kernel lacks SO_PASSRIGHTS (Linux 6.16): descriptors a caller sends "
                                    "are refused with its request, but the kernel releases them on a serving thread");
        if (tcp_fd >= 0) {
                for (unsigned i = 0; i < threads; i++) {
                        int fd = i == 0 ? tcp_fd : fcntl(tcp_fd, F_DUPFD_CLOEXEC, 3);
                        if (fd < 0 ||
                            !(tcp_mhd[i] = start_one(fd, &tcp_marker, 0, (CB_CONN_MAX + CB_CONN_SPARE) / threads))) {
                                if (fd >= 0 && i > 0)
                                        close(fd);
                                server_stop();
                                return cb_error_set(-EIO, "cannot start the HTTP server on the TCP listener");
                        }
                }
        }
        if (cb_exe_hasher_start(2) < 0) {
                server_stop();
                return -EIO;
        }
        if (proxy_loop_start(threads, tcp_fd >= 0 ? tcp_mhd : NULL) < 0) {
                server_stop();
                return -EIO;
        }
        tool_mhd = start_one(tool_fd, NULL, tool_threads, CB_CONN_MAX + CB_CONN_SPARE);
        if (!tool_mhd) {
                server_stop();
                return cb_error_set(-EIO, "cannot start the HTTP server on tools.sock");
        }
        admin_mhd = start_one(admin_fd, &admin_marker, 1, CB_CONN_MAX + CB_CONN_SPARE);
        if (!admin_mhd) {
                server_stop();
                return cb_error_set(-EIO, "cannot start the HTTP server on admin.sock");
        }
        return 0;
}

/* A sandbox's listener (sandbox.h's ops): a server of its own, with one
 * thread and no listening socket: sandbox/ accepts on the listener the
 * launcher handed over (CONNECT is its business) and hands the others in. */
void *server_sandbox_serve(cb_sandbox *sb) {
        struct MHD_Daemon *d = start_one(-1, sb, 1, CB_CONN_PER_UID);

        if (!d)
                (void)cb_error_set(-EIO, "libmicrohttpd did not start");
        return d;
}

int server_sandbox_add(void *h, int fd) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);

        if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
                close(fd);
                return -errno;
        }
        /* On failure libmicrohttpd closes fd. */
        return MHD_add_connection(h, fd, (struct sockaddr *)&ss, sl) == MHD_YES ? 0 : -EIO;
}

/* The sandbox is gone: its processes are dead (its pid namespace ended),
 * so its connections close; what is left after a moment (a request
 * waiting for its upstream) is ended by the stop. */
void server_sandbox_unserve(void *h) {
        struct MHD_Daemon *d = h;

        for (int i = 0; i < 200; i++) {
                const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
                if (!di || di->num_connections == 0)
                        break;
                usleep(10000);
        }
        MHD_stop_daemon(d);
}

void server_stop(void) {
        audit_watch_stop(); /* resumes every connection waiting for its record */
        proxy_stop();
        cb_exe_hasher_stop(); /* resumes every connection waiting for a hash */
        if (tool_mhd)
                MHD_stop_daemon(tool_mhd);
        if (admin_mhd)
                MHD_stop_daemon(admin_mhd);
        for (size_t i = 0; i < sizeof(tcp_mhd) / sizeof(tcp_mhd[0]); i++)
                if (tcp_mhd[i]) {
                        MHD_stop_daemon(tcp_mhd[i]);
                        tcp_mhd[i] = NULL;
                }
        tool_mhd = admin_mhd = NULL;
        cb_exe_cache_free(exe_cache); /* the hash workers have stopped */
        exe_cache = NULL;
}
