/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the proxy's carrying half: one proxied request in flight (a job),
 * shared by its two sides — proxy.c (the upstream: a libcurl transfer on a
 * transfer loop) and proxy_conn.c (the tool's connection: MHD callbacks).
 * The job's mutex guards everything below it; a job lives until both sides
 * dropped their reference.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include "daemon.h"
#include "egress.h"
#include "held.h"
#include "proxy_request.h"
#include "tokens.h"

#define PROXY_BUF        (64 * 1024)
#define PROXY_HELD_TOTAL (64 * 1024 * 1024) /* such bodies held at once (a uid: a quarter, held.h) */
#define PROXY_HELD_TIMEOUT_NS (60ull * 1000000000ull) /* a held body must be in within 60 s */
extern cb_held_budget proxy_held;           /* bodies held by the leak guard now, charged as they grow */
#define PROXY_MAX_JOBS   512
#define PROXY_MAX_JOBS_PER_UID 128
#define CONNECT_TIMEOUT  10L
#define IDLE_TIMEOUT     300L  /* no byte from the upstream for this long */
#define TOTAL_TIMEOUT    3600L
#define MAX_RESP_HEADERS 200
#define UPSTREAM_MAX_IDLE 50L  /* seconds a pooled upstream connection may idle and be reused */

typedef struct proxy_loop proxy_loop;

typedef struct proxy_job {
        pthread_mutex_t mu;
        int refs;
        struct MHD_Connection *conn;  /* NULL once MHD is done with the request */
        bool suspended, headers_done, done, cancelled;
        bool recv_paused;             /* the loop paused the download: the buffer is full */
        bool send_paused;             /* the loop paused the upload: nothing to send yet */
        bool err_round;               /* the reader parked once before ending in an error */
        bool finished;                /* the transfer is over, audit written (atomic) */
        /* what to send */
        char method[32];
        char *url;                    /* may hold the value (query injection): wiped */
        struct curl_slist *headers;   /* may hold the value: wiped */
        unsigned char *ubuf;          /* request body on its way up (bounded); set iff expect_body */
        size_t ukept;                 /* bytes at its start already handed to libcurl, kept for a
                                       * rewind (the body's first bytes, while it fits) */
        size_t ulen;                  /* bytes after those, not yet handed to libcurl */
        bool ulost;                   /* bytes handed to libcurl were dropped: no rewind possible */
        size_t ucap;                  /* ubuf's size: PROXY_BUF, or the held body's cap */
        /* The outbound leak guard (a sandbox's request): the body is kept
         * in ubuf (lpend bytes, not handed to libcurl) and scanned; only
         * once all of it is in and clean does it become ulen. */
        cb_matcher *leak_m;
        cb_scan_stream *leak_st;
        size_t lpend, held_charge;
        bool leak_found;
        char leak_name[CB_NAME_MAX + 1];
        int leak_kind;
        bool expect_body, ueof;
        long long content_length;     /* -1: none given (sent chunked) */
        bool scan_on;                 /* methods sealed: the body is scanned for overrides (the MHD side's) */
        cb_ovscan scan;
        cb_dest dest;
        CURL *h;                      /* the loop thread's only */
        bool in_multi;                /* the loop thread's: in the multi handle, not yet finished */
        bool refused;                 /* the loop thread's: an address was refused (SSRF) */
        bool foreign_conn;            /* the loop thread's: libcurl handed it another uid's connection */
        bool fresh;                   /* the loop thread's: restarted on a fresh connection once */
        unsigned attempts;            /* the loop thread's: requests libcurl began to send (on_prereq) */
        bool replay_refused;          /* the loop thread's: a resend was stopped (not safe to repeat) */
        char refusal[512];            /* the loop thread's: which, and why */
        size_t active_idx;            /* the loop thread's: slot in its table of transfers */
        proxy_loop *loop;             /* the loop running it (set under the inbox lock) */
        struct proxy_job *next_new;   /* on the loop's inbox (under its lock) */
        struct proxy_job *next_poke;  /* on the loop's poke list (under its lock) */
        bool poked;                   /* on the poke list (under its lock) */
        bool wake_queued;             /* the loop thread's: a wake is queued (wake_later_locked) */
        struct proxy_job *next_wake;  /* the loop thread's */
        char errbuf[CURL_ERROR_SIZE];
        char *ca_file, *pin;
        cb_matcher *red;              /* the value's forms (keys/match.h) */
        cb_scan_stream *rs;           /* the response body through red (the loop thread's) */
        unsigned char *rout;          /* what rs let through of the last piece */
        size_t rout_len, rout_cap;
        /* what came back */
        long status;
        char **rh;                    /* "Name: value", filtered and redacted */
        size_t nrh;
        unsigned char *buf;           /* grows on demand; ~PROXY_BUF + one piece at most */
        size_t blen, bcap, bhigh;     /* bhigh: the most it ever held (wiped at the end) */
        int fail_status;              /* set when it failed before headers */
        char fail_code[32], err[512];
        bool broken;                  /* failed after headers: end the body with an error */
        cb_rframe rframe;             /* the response head's framing (the loop thread's) */
        const char *resp_bad;         /* why the response head was refused (static text), or NULL */
        /* audit */
        uint64_t t0_ns;
        uint64_t bytes_up, bytes_down;
        uid_t uid;
        pid_t pid;
        bool tcp;
        char sandbox[24];             /* on a sandbox's listener: its id ("" otherwise) */
        uid_t held_uid;               /* whom held_charge is charged to (proxy_held) */
        uint64_t held_deadline_ns;    /* the held body must be in by then (0: none) */
        char exe_sha256_hex[65];
        char secret[CB_NAME_MAX + 1], client[65], accessor[CB_ACCESSOR_LEN + 1];
        char path[1024];              /* without the query */
        char request_id[32];          /* the decision record's (metrics_request_id) */
        size_t slot;                  /* its index in proxy_jobs, when in_table (under proxy_jobs_mu) */
        bool in_table;
} proxy_job;
/* Every job in flight (a slot per job), guarded by proxy_jobs_mu;
 * proxy_stopping is set once at shutdown, under the same lock. */
extern pthread_mutex_t proxy_jobs_mu;
extern proxy_job *proxy_jobs[PROXY_MAX_JOBS];
extern size_t proxy_jobs_n;                 /* slots taken (under proxy_jobs_mu) */
extern bool proxy_stopping;
static inline bool proxy_is_stopping(void) {
        return __atomic_load_n(&proxy_stopping, __ATOMIC_ACQUIRE);
}

uint64_t proxy_now_ns(void);

/* Drop a reference; the last one wipes and frees the job. */
void proxy_job_unref(proxy_job *j);

/* Wake the MHD side if it waits.  Called with j->mu held (dropped and
 * retaken around MHD_resume_connection). */
void proxy_job_wake_locked(proxy_job *j);

/* proxy.c: the transfer's options on handle h; its end (c: its result,
 * the handle already gone) — failure said, answer woken, audit written,
 * the loop's reference dropped; a failure before the headers (status,
 * code, message: the message may be redacted, never holds the value). */
void proxy_job_setup(proxy_job *j, CURL *h);
/* May its upstream connection be reused (a clean, well-framed exchange)? */
bool proxy_job_reusable(const proxy_job *j);
void proxy_job_finished(proxy_job *j, CURLcode c);
/* An upstream socket is being closed or replaced: the uid that owned its
 * connection (its local port) owns nothing now. */
void proxy_conn_forget(curl_socket_t s);
void proxy_job_fail(proxy_job *j, int status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* proxy_loop.c: queue a wake of the MHD side, delivered once per loop
 * pass (j->mu held; on a loop thread, or after the loops ended). */
void proxy_wake_later_locked(proxy_job *j);

/* Hand a job to the transfer loop (which runs the transfer and drops the
 * loop's reference); 0 or a positive errno. */
int proxy_pool_submit(proxy_job *j);

/* Tell the transfer loop to look at j again: unpause its transfer (room
 * in the response buffer, or request body to send), when cancelled, end
 * it, and once it is finished, resume the MHD side.  Called with j->mu
 * held; takes a reference the loop drops. */
bool proxy_job_poke_locked(proxy_job *j);   /* false: no loop runs (stopping) */
