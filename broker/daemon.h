/* SPDX-License-Identifier: Apache-2.0 */
/* credbrokerd internals shared by main.c, http/, api/ and the route handlers still outside api/. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <jansson.h>

#include "peer.h"
#include "policy.h"
#include "ratelimit.h"
#include "store.h"
#include "tokens.h"
#include "version.h"

#define CB_BODY_MAX (128 * 1024)
#define CB_CONN_MAX 4096            /* connections per socket */
#define CB_CONN_PER_UID 128         /* of which one uid may hold */
#define CB_CONN_REFUSED_PER_UID 16  /* and over that, answered 429 (see server_conn.c) */
#define CB_CONN_SPARE 256           /* connections past CB_CONN_MAX taken only to be refused (503) */

struct MHD_Daemon;
struct MHD_Connection;

typedef struct daemon_state {
        pthread_mutex_t admin_lock; /* the admin lock: every admin.sock route, the main loop's sweeps,
                                     * audit reopen and provisioning scans, serialised among
                                     * themselves.  No tools.sock or TCP route takes it: the state
                                     * they share guards itself (store: writers' mutex + read side;
                                     * approvals, proxy jobs, leak response, rotation, the live
                                     * matcher: their own locks; docs/architecture.md, Locks) */
        cb_store *store;
        cb_policy_slot *policy; /* the policy in force: a snapshot a reader acquires (policy.h), never
                                 * read under the admin lock; a reload swaps it holding no lock */
        cb_tokens *tokens;
        cb_ratelimit *rate;
        const char *policy_path;
        const char *run_dir;
        uint64_t started;
        uint32_t default_ttl;     /* --default-ttl: a token's lifetime when its request names none,
                                   * and the cap under a grant without max_ttl (CB_TTL_DEFAULT) */
} daemon_state;

extern daemon_state cbd;

/* One request as the handlers see it. */
typedef struct request {
        struct MHD_Connection *conn;
        const char *method;
        const char *url;
        unsigned char *body; /* NUL-terminated, wiped on free */
        size_t body_len, body_cap;
        bool too_large;
        bool admin_socket;
        bool tcp;                  /* --listen-tcp: peer.uid from sock_diag, no pid or executable */
        bool sdk_errors;           /* refusals in the vendors' SDK shape (a proxy target: route.h) */
        const char *sandbox;       /* on a sandbox's listener: its id (tcp is set too; sandbox.h) */
        struct cb_sandbox *sandbox_ref; /* ... and the sandbox */
        cb_peer peer;
        bool have_peer;
        const cb_policy *policy;   /* the snapshot this request is decided under: acquired at its
                                    * start (server_request.c), released when it ends (one policy throughout) */
        uid_t acct_uid;            /* whom its costs are charged to (http/server_*.c: cb_peer_account_uid) */
        /* What the audit record says (set by handlers). */
        const char *route;
        char secret[CB_NAME_MAX + 1];
        char client[65];
        char accessor[CB_ACCESSOR_LEN + 1];
        bool no_audit;             /* this reply's record is written elsewhere */
        bool intent_recorded;      /* an admin write's "before" record is durable (audit_intent) */
        json_t *audit_extra;       /* more fields for this reply's record (owned by the handler) */
        bool audit_optional;       /* its record may be lost (health): never waited for, never refused for */
        struct audit_rec *audit_recs[4]; /* its records, queued: written before the answer goes out */
        unsigned n_audit_recs;
        struct MHD_Response *held_resp; /* the answer, until its records are written (server_reply.c) */
        unsigned held_status;
        bool token_issued;         /* a token was minted for the answer (accessor): revoked if not recorded */
        uint64_t audit_deadline_ms; /* its records' (server_reply.c flush) */
        int audit_sync;            /* suspended for them: 1 by the handler, 2 woken (atomic) */
        bool audit_suspended;
        bool proxy_held;           /* rq->proxy decided, not handed to a loop until its record is written */
        bool answered;             /* a response is queued */
        bool started;              /* handle() has seen it (MHD's first call is done) */
        bool close;                /* the answer closes the connection (Connection: close) */
        char *raw_target;          /* the request-target as sent (server.c keep_target) */
        bool target_nul;           /* ... up to a NUL byte: the rest was cut off */
        bool http10;               /* an HTTP/1.0 request */
        struct proxy_job *proxy;   /* a proxied request in flight (proxy.c) */
        struct scan_job *scan;     /* a scan/redact body streaming through the matcher (scan.c) */
        /* The caller's executable being hashed off this thread (server_request.c):
         * the connection is suspended until a worker has the hash. */
        int hash_state;            /* HASH_NONE, HASH_WAITING, HASH_DONE (atomic) */
        int hash_sync;             /* 1: suspended by the handler, 2: answered by the worker (atomic) */
        bool first_call;           /* dispatched on the headers (proxy, scan): resume re-dispatches */
        int hash_r;
        unsigned char hash_sha[32];
        struct stat hash_st;
        char hash_err[256];
} request;

/* Responses.  Every reply goes through these; they also write the audit
 * record (decision "allow" for 2xx, else "deny" with the message). */
int reply_json(request *rq, unsigned status, json_t *body, bool sensitive);
/* reply_json with the JSON text already made (malloc'd, len bytes; taken,
 * and wiped when sensitive): for a hot route whose answer is a fixed shape
 * of values that need no escaping. */
int reply_json_text(request *rq, unsigned status, char *text, size_t len, bool sensitive);
int reply_error(request *rq, unsigned status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* 503 audit_unavailable (the log is failed: said why); not audited a
 * second time. */
int reply_audit_refused(request *rq);
/* A non-JSON answer (GET /metrics); takes text (malloc'd, never a secret). */
int reply_text(request *rq, unsigned status, const char *content_type, char *text, size_t len);

/* Parse the body as a JSON object whose keys are all in `allowed` (NULL-
 * terminated).  On failure replies 400 and returns NULL. */
json_t *body_object(request *rq, const char *const *allowed);

/* Audit one decision (JSON line): queued, and attached to rq (its answer
 * waits for it).  -errno when it cannot even be queued (then the log is
 * failed and the refusal counted). */
int audit_write(request *rq, unsigned status, const char *decision, const char *reason);

/* The answer of a request (a response made elsewhere, e.g. scan.c):
 * queued to MHD once rq's records are written (server_reply.c). */
int reply_response(request *rq, unsigned status, struct MHD_Response *resp);

/* The injection proxy (proxy.c).  api_proxy decides and starts a proxied
 * request (ANY /v1/proxy/..., absolute-form targets, CONNECT refused);
 * proxy_continue answers once the upstream's headers are in (handle()
 * calls it when rq->proxy is set); proxy_request_done releases the
 * request's hold when MHD is done with it; proxy_stop resumes every parked
 * connection before the servers stop. */
int proxy_init(void);
/* The threads that run the upstream transfers (proxy.c): n of them,
 * started with the servers (signals blocked), ended by proxy_stop.
 * drive: NULL, or n servers without a thread of their own (the TCP
 * listener's), loop i running drive[i] too. */
struct MHD_Daemon;
int proxy_loop_start(unsigned n, struct MHD_Daemon *const *drive);
void proxy_loop_stop(void);
int api_proxy(request *rq);
/* A proxied request decided while its record was queued (rq->proxy_held):
 * once the record is written, hand it to a transfer loop (-EIO: answered
 * 503 instead); when it cannot be written, drop it (nothing was sent).
 * Under no lock. */
int proxy_release(request *rq);
void proxy_abort(request *rq);
int proxy_continue(request *rq);
/* MHD delivers the body of a proxied request piece by piece (proxy_feed
 * consumes what fits, *size is what is left) and then its end. */
int proxy_feed(request *rq, const char *data, size_t *size);
void proxy_body_done(request *rq);
void proxy_request_done(request *rq);
void proxy_stop(void);
/* Cut every proxied request of secret in flight (a leaked rotation, a
 * revocation): one not yet answered gets 403 "revoked" with why, a
 * streaming body ends in an error.
 * Returns how many.  Any thread: the jobs table guards itself (proxy_jobs_mu,
 * memory work only). */
size_t proxy_cancel_secret(const char *secret, const char *why);
/* The same for the requests made with one token (by accessor). */
size_t proxy_cancel_accessor(const char *accessor, const char *why);

/* The approval gate (api_approval.c; approval.h has the table).
 * approval_init makes the table (timeout: seconds until an undecided request
 * is denied); approval_sweep times out and drops requests (any thread:
 * the table has its own mutex; about once a second); approval_hold holds a token request under
 * an approval grant and answers 202 (api_token).  Its routes (GET
 * /v1/approvals/ID, /v1/admin/approvals...) are in api/api_routes.c. */
int approval_init(uint32_t timeout);
void approval_fini(void);
void approval_sweep(void);
int approval_hold(request *rq, const char *client, unsigned use, uint32_t ttl, int bind);
/* Requests still waiting for a decision (GET /metrics); any thread. */
size_t approval_pending(void);

/* Reload the policy file (main.c); on failure the old policy stays and
 * err says why.  Reads, parses and validates holding no lock, then swaps
 * the snapshot: requests in flight keep the one they started with. */
int policy_reload(char *err, size_t errlen);

/* What http/ works on, handed by main.c before server_start (so http/
 * reads no daemon-wide global): the token table (a token minted for an
 * answer whose record cannot be written is revoked), the slot of the
 * policy in force (each request acquires its snapshot at its start:
 * rq->policy), and the admin lock every admin.sock route runs under
 * (cbd.admin_lock; never taken for a tools.sock or TCP route). */
typedef struct server_env {
        cb_tokens *tokens;
        cb_policy_slot *policy;
        pthread_mutex_t *admin_lock;
} server_env;
void server_attach(const server_env *env);

/* Start/stop the HTTP servers on listening fds; tools.sock gets `threads`
 * threads (each its own epoll loop), admin.sock one, the TCP listener
 * (tcp_fd, -1 for none) as many as tools.sock. */
int server_start(int tool_fd, int admin_fd, int tcp_fd, unsigned threads, unsigned tool_threads);
void server_stop(void);
/* Connections refused over CB_CONN_PER_UID since start, and the last uid
 * refused (*ret_uid; may be NULL).  Any thread, no lock. */
uint64_t server_conn_refused(uid_t *ret_uid);
uint64_t server_conn_refused_full(void); /* of those: over a socket's CB_CONN_MAX */
/* The executables' hash cache server_start made (sandbox/ identifies launchers with it). */
struct cb_exe_cache *server_exe_cache(void);
/* sandbox.h's serve/unserve (http/server.c). */
struct cb_sandbox;
void *server_sandbox_serve(struct cb_sandbox *sb);
int server_sandbox_add(void *h, int fd);
void server_sandbox_unserve(void *h);
/* Refusals of one uid recorded one by one per minute (0: all; server_reply.c). */
void server_set_refusals_recorded(unsigned n);
/* Is one more refusal of acct's (uid: said in the note) over that budget?
 * Then it is not recorded one by one (answered 429); the first one over it
 * writes the "refusals.quiet" record.  Any thread (sandbox/: forwarded and
 * tunnelled requests share the budget through cb_sandbox_ops). */
bool server_refusal_quiet(uid_t acct, uid_t uid);
