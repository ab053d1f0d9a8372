/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The credential injection proxy (DESIGN "Credential injection proxy").
 *
 *   reverse   ANY /v1/proxy/<secret>/<path>        token in Authorization,
 *   forward   ANY http://host[:port]/path (absolute form)   Proxy-Authorization
 *             or the template's header
 *
 * Everything that can refuse a request is decided on the server thread,
 * under cbd.lock, before anything leaves the broker: token (scope proxy,
 * this caller, this secret), the grant, the sealed host, method and path
 * prefix, header hygiene.  Then the job goes to a transfer loop: a thread
 * running libcurl's multi interface (OpenSSL; verification on; redirects
 * never followed; upstream connections kept and reused).  Every socket curl
 * dials is opened here, with the address it is about to connect to: a
 * private, loopback or metadata address is refused unless the sealed
 * entry names that address, so the address checked is the address dialled
 * (no second lookup).  The response streams back through a bounded
 * buffer: the MHD connection is suspended while the buffer is empty and
 * resumed by the loop, whose transfer pauses while the buffer is full (a
 * slow client slows the upstream, no more).  The secret value is replaced
 * by "[REDACTED]" in response headers and body (exact across chunks);
 * Set-Cookie is dropped.
 *
 * Request bodies stream too: the request is decided on its headers, the
 * transfer starts at once, and the body passes through a bounded buffer
 * (the connection is parked while it is full, the upload paused while it
 * is empty).  Nothing is buffered whole.
 *
 * Each loop also runs one server of the TCP listener (libmicrohttpd with
 * no thread of its own), so a request there is read, decided, sent
 * upstream and answered on one thread, as an event-driven proxy does;
 * requests on tools.sock are handed over from its server threads.
 *
 * This file is the upstream side (job lifecycle, the libcurl callbacks,
 * the loops); proxy_conn.c is the tool's side (the MHD callbacks);
 * proxy_job.h is what they share.
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#include <curl/curl.h>
#include <microhttpd.h>
#include <sodium.h>

#include "audit.h"
#include "audit_format.h" /* cb_json_string_lossy */
#include "error.h"
#include "proxy.h"
#include "proxy_job.h"


pthread_mutex_t proxy_jobs_mu = PTHREAD_MUTEX_INITIALIZER;
proxy_job *proxy_jobs[PROXY_MAX_JOBS];
bool proxy_stopping;
static CURLSH *share;
static pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

uint64_t proxy_now_ns(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u) {
        (void)h, (void)a, (void)u;
        pthread_mutex_lock(&share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *u) {
        (void)h, (void)u;
        pthread_mutex_unlock(&share_mu[d]);
}

int proxy_init(void) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return cb_error_set(-EIO, "libcurl failed to initialise");
        share = curl_share_init();
        if (!share)
                return cb_error_set(-ENOMEM, "libcurl: no share handle");
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
                pthread_mutex_init(&share_mu[i], NULL);
        /* TLS sessions resumed across handles; connections are reused
         * through the loop's multi handle. */
        curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        return 0;
}

void proxy_slist_wipe_free(struct curl_slist *l) {
        for (struct curl_slist *p = l; p; p = p->next)
                sodium_memzero(p->data, strlen(p->data));
        curl_slist_free_all(l);
}

void proxy_job_unref(proxy_job *j) {
        pthread_mutex_lock(&j->mu);
        bool last = --j->refs == 0;
        pthread_mutex_unlock(&j->mu);
        if (!last)
                return;
        pthread_mutex_lock(&proxy_jobs_mu);
        for (size_t i = 0; i < PROXY_MAX_JOBS; i++)
                if (proxy_jobs[i] == j)
                        proxy_jobs[i] = NULL;
        pthread_mutex_unlock(&proxy_jobs_mu);
        if (j->url) {
                sodium_memzero(j->url, strlen(j->url));
                free(j->url);
        }
        proxy_slist_wipe_free(j->headers);
        if (j->ubuf) {
                sodium_memzero(j->ubuf, PROXY_BUF);
                free(j->ubuf);
        }
        free(j->ca_file);
        free(j->pin);
        cb_redchain_clear(&j->red);
        for (size_t i = 0; i < j->nrh; i++)
                free(j->rh[i]);
        free(j->rh);
        if (j->buf) {
                sodium_memzero(j->buf, j->bhigh);
                free(j->buf);
        }
        pthread_mutex_destroy(&j->mu);
        free(j);
}

/* Wake the MHD side if it waits.  Called with j->mu held; resumes after
 * dropping it (MHD takes its own locks). */
void proxy_job_wake_locked(proxy_job *j) {
        struct MHD_Connection *c = NULL;

        if (j->suspended && j->conn && !proxy_is_stopping()) {
                j->suspended = false;
                c = j->conn;
        }
        pthread_mutex_unlock(&j->mu);
        if (c)
                MHD_resume_connection(c);
        pthread_mutex_lock(&j->mu);
}

/* ---- the worker ---------------------------------------------------------- */

/* Wakes are batched: the loop's callbacks queue them (wake_later_locked,
 * j->mu held) and the loop delivers them once per pass, after curl is
 * through with what arrived.  A small answer whose head and body came in
 * one read is then complete when the MHD side resumes, and goes out in one
 * write with its length instead of chunk by chunk; a stream still reaches
 * the tool piece by piece, each pass.  Each loop thread's own. */
static _Thread_local proxy_job *wake_head;

static void wake_later_locked(proxy_job *j) {
        if (j->wake_queued)
                return;
        j->wake_queued = true;
        j->refs++;                                        /* dropped in wake_all */
        j->next_wake = wake_head;
        wake_head = j;
}

static void wake_all(void) {
        while (wake_head) {
                proxy_job *j = wake_head;
                wake_head = j->next_wake;
                pthread_mutex_lock(&j->mu);
                j->wake_queued = false;
                proxy_job_wake_locked(j);
                pthread_mutex_unlock(&j->mu);
                proxy_job_unref(j);
        }
}

static void fail(proxy_job *j, int status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void fail(proxy_job *j, int status, const char *code, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        /* curl's messages may quote the URL, which may carry the value. */
        char *clean = cb_redchain_string(&j->red, msg);
        pthread_mutex_lock(&j->mu);
        if (!j->headers_done) {
                j->fail_status = status;
                snprintf(j->fail_code, sizeof(j->fail_code), "%s", code);
        } else {
                j->broken = true;
        }
        snprintf(j->err, sizeof(j->err), "%s", clean ? clean : "upstream request failed");
        pthread_mutex_unlock(&j->mu);
        free(clean);
}

/* curl pulls the request body as the client sends it; with nothing yet,
 * the upload pauses until proxy_feed pokes the loop.  0 at its end. */
static size_t on_read(char *out, size_t size, size_t n, void *u) {
        proxy_job *j = u;
        size_t want = size * n;

        pthread_mutex_lock(&j->mu);
        if (j->cancelled) {
                pthread_mutex_unlock(&j->mu);
                return CURL_READFUNC_ABORT;
        }
        if (j->ulen == 0 && !j->ueof) {
                j->send_paused = true;
                pthread_mutex_unlock(&j->mu);
                return CURL_READFUNC_PAUSE;
        }
        if (want > j->ulen)
                want = j->ulen;
        memcpy(out, j->ubuf, want);
        memmove(j->ubuf, j->ubuf + want, j->ulen - want);
        j->ulen -= want;
        j->bytes_up += want;
        wake_later_locked(j);                                       /* room again: the client may send more */
        pthread_mutex_unlock(&j->mu);
        return want;
}

/* Append redacted bytes for the MHD side (which it drains) and wake it.
 * Never waits: on_write pauses the transfer instead while the buffer is
 * full, so it holds at most PROXY_BUF plus one piece. */
static bool push(proxy_job *j, const unsigned char *p, size_t n) {
        pthread_mutex_lock(&j->mu);
        if (j->cancelled) {
                pthread_mutex_unlock(&j->mu);
                return false;
        }
        if (j->blen + n > j->bcap) {
                size_t nc = j->bcap ? j->bcap : 16 * 1024;
                while (nc < j->blen + n)
                        nc *= 2;
                unsigned char *nb = malloc(nc);
                if (!nb) {
                        pthread_mutex_unlock(&j->mu);
                        return false;
                }
                if (j->buf) {
                        memcpy(nb, j->buf, j->blen);
                        sodium_memzero(j->buf, j->bhigh);
                        free(j->buf);
                }
                j->buf = nb;
                j->bcap = nc;
                j->bhigh = j->blen;
        }
        memcpy(j->buf + j->blen, p, n);
        j->blen += n;
        if (j->blen > j->bhigh)
                j->bhigh = j->blen;
        wake_later_locked(j);
        pthread_mutex_unlock(&j->mu);
        return true;
}

static size_t on_write(char *p, size_t size, size_t n, void *u) {
        proxy_job *j = u;
        const unsigned char *out;
        size_t len;

        /* Full: curl keeps this piece and hands it again once the MHD
         * side drained the buffer and poked the loop (a slow client slows
         * the upstream, no more). */
        pthread_mutex_lock(&j->mu);
        bool full = j->blen >= PROXY_BUF && !j->cancelled;
        if (full)
                j->recv_paused = true;
        pthread_mutex_unlock(&j->mu);
        if (full)
                return CURL_WRITEFUNC_PAUSE;
        if (cb_redchain_feed(&j->red, p, size * n, &out, &len) < 0)
                return 0;
        j->bytes_down += size * n;
        return push(j, out, len) ? size * n : 0;
}

static bool resp_header_dropped(const char *name, size_t nl) {
        static const char *const drop[] = { "connection", "keep-alive", "proxy-connection", "te", "trailer",
                                            "transfer-encoding", "upgrade", "content-length", "set-cookie",
                                            "set-cookie2", "proxy-authenticate", "date", NULL };
        for (size_t i = 0; drop[i]; i++)
                if (strlen(drop[i]) == nl && strncasecmp(name, drop[i], nl) == 0)
                        return true;
        return false;
}

static size_t on_header(char *p, size_t size, size_t n, void *u) {
        proxy_job *j = u;
        size_t len = size * n;

        /* Once the response head is out, the MHD side reads j->rh: later
         * lines (trailers) are dropped, never added. */
        if (j->headers_done)
                return len;
        /* A compressed body could not be checked for the secret: refused
         * (Accept-Encoding: identity was asked for). */
        if (len > 17 && strncasecmp(p, "content-encoding:", 17) == 0) {
                const char *v = p + 17;
                while (*v == ' ' || *v == '\t')
                        v++;
                if (strncasecmp(v, "identity", 8) != 0) {
                        j->compressed = true;
                        return 0;                         /* aborts the transfer */
                }
        }
        if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {   /* a status line: a new response (1xx before) */
                for (size_t i = 0; i < j->nrh; i++)
                        free(j->rh[i]);
                j->nrh = 0;
                return len;
        }
        if (len <= 2 && (len == 0 || p[0] == '\r' || p[0] == '\n')) {
                long code = 0;

                curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &code);
                if (code < 200)
                        return len;                       /* 100 Continue and friends */
                pthread_mutex_lock(&j->mu);
                j->status = code;
                j->headers_done = true;
                wake_later_locked(j);
                pthread_mutex_unlock(&j->mu);
                return len;
        }
        const char *colon = memchr(p, ':', len);
        if (!colon || colon == p)
                return len;                               /* obs-fold or junk: dropped */
        size_t nl = (size_t)(colon - p);
        if (resp_header_dropped(p, nl) || j->nrh >= MAX_RESP_HEADERS)
                return len;
        const char *v = colon + 1, *end = p + len;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
                end--;
        char *line = malloc(nl + 2 + (size_t)(end - v) + 1);
        if (!line)
                return 0;
        memcpy(line, p, nl);
        memcpy(line + nl, ": ", 2);
        memcpy(line + nl + 2, v, (size_t)(end - v));
        line[nl + 2 + (end - v)] = '\0';
        char *clean = cb_redchain_string(&j->red, line);
        sodium_memzero(line, strlen(line));
        free(line);
        if (!clean)
                return 0;
        char **nr = realloc(j->rh, (j->nrh + 1) * sizeof(*nr));
        if (!nr) {
                free(clean);
                return 0;
        }
        j->rh = nr;
        j->rh[j->nrh++] = clean;
        return len;
}

/* Called often during a transfer: a non-zero return aborts it (the client
 * left, or the daemon is proxy_stopping). */
static int on_progress(void *u, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
        proxy_job *j = u;
        (void)dt, (void)dn, (void)ut, (void)un;
        return __atomic_load_n(&j->cancelled, __ATOMIC_RELAXED) ? 1 : 0;
}

/* curl opens every socket it dials through here, with the address it is
 * about to connect to — the very address resolution gave it, so what is
 * checked is what is dialled (no second lookup).  Private, loopback,
 * link-local and metadata addresses are refused unless the sealed entry
 * names the address itself; once one address of a name is refused, the
 * others are too (the request fails, 403). */
static curl_socket_t on_opensocket(void *u, curlsocktype purpose, struct curl_sockaddr *a) {
        proxy_job *j = u;

        if (purpose != CURLSOCKTYPE_IPCXN)
                return CURL_SOCKET_BAD;
        if (!j->dest.literal) {
                if (j->refused)
                        return CURL_SOCKET_BAD;
                const char *why = cb_addr_refusal(&a->addr);
                if (why) {
                        char txt[INET6_ADDRSTRLEN] = "?";
                        getnameinfo(&a->addr, a->addrlen, txt, sizeof(txt), NULL, 0, NI_NUMERICHOST);
                        /* Said only if the request fails for it (another
                         * address may connect first: happy eyeballs). */
                        snprintf(j->refusal, sizeof(j->refusal),
                                 "%s resolves to %s, a %s address: refused unless the sealed host names that address",
                                 j->dest.host, txt, why);
                        j->refused = true;
                        return CURL_SOCKET_BAD;
                }
        }
        return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static const char *curl_fail_code(CURLcode c, int *status) {
        switch (c) {
        case CURLE_OPERATION_TIMEDOUT:
                *status = 504;
                return "gateway_timeout";
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_CONNECT_ERROR:
        default:
                *status = 502;
                return "bad_gateway";
        }
}

/* The completion record: status, bytes, duration (the decision record was
 * written before anything was sent). */
static void audit_done(proxy_job *j) {
        pthread_mutex_lock(&cbd.lock);
        bool on = audit_enabled();
        pthread_mutex_unlock(&cbd.lock);
        if (!on)
                return;                                   /* nothing would be written */
        /* method and path come from the client: not necessarily UTF-8 */
        json_t *o = json_pack("{s:I, s:s, s:s, s:o*, s:o*, s:o*, s:i, s:s, s:I, s:I, s:I, s:i, s:i, s:s, s:s, s:s}",
                              "time", (json_int_t)time(NULL), "socket", j->tcp ? "tcp" : "tools", "route", "proxy.done", "method",
                              cb_json_string_lossy(j->method), "host", cb_json_string_lossy(j->dest.host), "path",
                              cb_json_string_lossy(j->path), "status",
                              j->status ? (int)j->status : j->fail_status, "decision",
                              j->status && !j->broken ? "allow" : "deny", "bytes_up", (json_int_t)j->bytes_up,
                              "bytes_down", (json_int_t)j->bytes_down, "ms",
                              (json_int_t)((proxy_now_ns() - j->t0_ns) / 1000000u), "uid", (int)j->uid, "pid", (int)j->pid,
                              "exe_sha256", j->exe_sha256_hex, "secret", j->secret, "accessor", j->accessor);
        if (!o)
                return;
        json_object_set_new(o, "port", json_integer(j->dest.port));
        if (j->err[0])
                json_object_set_new(o, "reason", cb_json_string_lossy(j->err));
        if (j->client[0])
                json_object_set_new(o, "client", json_string(j->client));
        pthread_mutex_lock(&cbd.lock);
        (void)audit_emit(o);
        pthread_mutex_unlock(&cbd.lock);
        json_decref(o);
}

/* ---- the transfer loops -------------------------------------------------------
 * Loop threads (as many as tools.sock has server threads) run every
 * upstream transfer, each on its own libcurl multi handle (whose
 * connection cache keeps upstream connections open across requests).
 * The MHD threads hand them jobs (proxy_pool_submit, round robin) and poke
 * a job's loop when its paused transfer may go on or it was cancelled;
 * both write the loop's eventfd.  A loop waits in epoll on curl's sockets
 * (curl_multi_socket_action: only the transfer whose socket is ready runs,
 * and curl polls no socket itself), its eventfd and the TCP server's.  Each loop also runs one server of the TCP
 * listener (MHD without a thread of its own), so a proxied request over
 * TCP is read, decided, sent upstream and answered on one thread.
 * Callbacks never wait: a full response buffer pauses the download, an
 * empty request buffer the upload. */
#define HANDLES_KEPT 64
#define LOOPS_MAX 64

struct proxy_loop {
        pthread_t thread;
        CURLM *multi;
        int ep;                               /* its epoll: curl's sockets, wake_fd, driven_fd */
        int wake_fd;                          /* eventfd: written to wake the loop */
        uint64_t curl_due_ns;                 /* curl's one-shot timer (0: none), the loop thread's */
        struct MHD_Daemon *driven;            /* a TCP listener's server it runs, or NULL */
        int driven_fd;                        /* its epoll fd */
        /* under inbox_mu */
        proxy_job *new_head, **new_tail, *poke_head;
        /* the loop thread's own */
        proxy_job *active[PROXY_MAX_JOBS];
        size_t n_active;
        CURL *kept[HANDLES_KEPT];
        size_t n_kept;
};

static proxy_loop loops[LOOPS_MAX];
static unsigned n_loops, next_loop;                      /* under inbox_mu */
static unsigned n_threads;                              /* loop threads running */
static bool loops_started, loops_quit;                  /* under inbox_mu */
static pthread_mutex_t inbox_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local proxy_loop *this_loop;

static void handle_put(proxy_loop *l, CURL *h) {
        if (l->n_kept < HANDLES_KEPT) {
                curl_easy_reset(h);
                l->kept[l->n_kept++] = h;
        } else {
                curl_easy_cleanup(h);
        }
}

/* The transfer is over (c: its result): answer, audit, drop the loop's
 * reference. */
static void job_finish(proxy_loop *l, proxy_job *j, CURLcode c) {
        if (j->in_multi) {
                curl_multi_remove_handle(l->multi, j->h);
                j->in_multi = false;
                l->active[j->active_idx] = l->active[--l->n_active];
                l->active[j->active_idx]->active_idx = j->active_idx;
        }
        if (c == CURLE_OK) {
                const unsigned char *tail;
                size_t tl;
                if (cb_redchain_finish(&j->red, &tail, &tl) == 0 && tl)
                        (void)push(j, tail, tl);
        } else if (j->refused && !j->headers_done) {
                fail(j, 403, "forbidden", "%s", j->refusal);
        } else if (j->compressed) {
                fail(j, 502, "bad_gateway", "upstream %s:%u sent a compressed response (Content-Encoding) although "
                                            "asked for identity: it cannot be checked for the secret, refused",
                     j->dest.host, j->dest.port);
        } else if (!j->cancelled) {
                int status;
                const char *code = curl_fail_code(c, &status);
                fail(j, status, code, "upstream %s:%u: %s%s%s", j->dest.host, j->dest.port, curl_easy_strerror(c),
                     j->errbuf[0] ? ": " : "", j->errbuf);
        }
        if (j->h) {
                handle_put(l, j->h);
                j->h = NULL;
        }
        sodium_memzero(j->errbuf, sizeof(j->errbuf));
        pthread_mutex_lock(&j->mu);
        j->done = true;
        wake_later_locked(j);
        pthread_mutex_unlock(&j->mu);
        audit_done(j);
        __atomic_store_n(&j->finished, true, __ATOMIC_RELEASE);
        proxy_job_unref(j);
}

static void job_start(proxy_loop *l, proxy_job *j) {
        CURL *h;

        if (__atomic_load_n(&j->cancelled, __ATOMIC_RELAXED)) {
                job_finish(l, j, CURLE_ABORTED_BY_CALLBACK);
                return;
        }
        h = l->n_kept ? l->kept[--l->n_kept] : curl_easy_init();
        if (!h) {
                fail(j, 500, "internal", "libcurl: no handle");
                job_finish(l, j, CURLE_OUT_OF_MEMORY);
                return;
        }
        j->h = h;
        j->errbuf[0] = '\0';
        curl_easy_setopt(h, CURLOPT_PRIVATE, j);
        curl_easy_setopt(h, CURLOPT_URL, j->url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, j->dest.https ? "https" : "http");
        /* HTTP/1.1 upstream: with HTTP/2 the loop's transfers to one host
         * would share a connection, and a paused stream (a slow client)
         * would hold up the others or make libcurl buffer it unbounded. */
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_PROXY, "");           /* never an *_proxy from the environment */
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
        if (j->ca_file) {
                /* The sealed bundle replaces the system's: no CA directory. */
                curl_easy_setopt(h, CURLOPT_CAINFO, j->ca_file);
                curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        }
        if (j->pin)
                curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, j->pin);
        curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
        curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, j);
        curl_easy_setopt(h, CURLOPT_SHARE, share);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, IDLE_TIMEOUT);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, TOTAL_TIMEOUT);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, j->headers);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, j);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, j);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, j->errbuf);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, j);
        if (strcmp(j->method, "HEAD") == 0) {
                curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        } else if (j->expect_body || strcmp(j->method, "POST") == 0 || strcmp(j->method, "PUT") == 0 ||
                   strcmp(j->method, "PATCH") == 0) {
                /* Streamed: the length the client announced, else chunked. */
                curl_easy_setopt(h, CURLOPT_POST, 1L);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                                 (curl_off_t)(j->expect_body ? j->content_length : 0));
                curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
                curl_easy_setopt(h, CURLOPT_READDATA, j);
                if (strcmp(j->method, "POST") != 0)
                        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, j->method);
        } else if (strcmp(j->method, "GET") != 0) {
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, j->method);
        }
        if (curl_multi_add_handle(l->multi, h) != CURLM_OK) {
                fail(j, 500, "internal", "libcurl: cannot start the transfer");
                job_finish(l, j, CURLE_FAILED_INIT);
                return;
        }
        j->in_multi = true;
        j->active_idx = l->n_active;
        l->active[l->n_active++] = j;
}

/* A poke: unpause (both ways: a side with nothing to do pauses again at
 * once) or, cancelled, end the transfer.  Drops the poke's reference. */
static void job_poked(proxy_loop *l, proxy_job *j) {
        pthread_mutex_lock(&inbox_mu);
        j->poked = false;
        pthread_mutex_unlock(&inbox_mu);
        pthread_mutex_lock(&j->mu);
        bool cancelled = j->cancelled;
        if (j->in_multi)
                j->recv_paused = j->send_paused = false;
        else
                wake_later_locked(j);                     /* finished: the MHD side asks to go on */
        pthread_mutex_unlock(&j->mu);
        if (j->in_multi) {
                CURLcode rc = CURLE_OK;
                if (cancelled)
                        job_finish(l, j, CURLE_ABORTED_BY_CALLBACK);
                else if ((rc = curl_easy_pause(j->h, CURLPAUSE_CONT)) != CURLE_OK && j->in_multi)
                        job_finish(l, j, rc);             /* the held data could not be delivered */
        }
        proxy_job_unref(j);
}

static void finish_done(proxy_loop *l) {
        CURLMsg *m;
        int left;

        while ((m = curl_multi_info_read(l->multi, &left))) {
                if (m->msg != CURLMSG_DONE)
                        continue;
                proxy_job *j = NULL;
                CURLcode c = m->data.result;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
                if (j)
                        job_finish(l, j, c);
        }
}

/* Tags in the loop's epoll data: what became ready. */
#define EV_CURL  0u
#define EV_WAKE  1u
#define EV_MHD   2u
#define EV_DATA(kind, fd) (((uint64_t)(kind) << 32) | (uint32_t)(fd))

/* curl tells which sockets it wants watched, and how. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
        proxy_loop *l = userp;
        struct epoll_event ev = { .data.u64 = EV_DATA(EV_CURL, s) };

        (void)e;
        if (what == CURL_POLL_REMOVE) {
                if (socketp) {
                        (void)epoll_ctl(l->ep, EPOLL_CTL_DEL, s, NULL);
                        curl_multi_assign(l->multi, s, NULL);
                }
                return 0;
        }
        ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
        if (epoll_ctl(l->ep, socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev) < 0) {
                if (errno == EEXIST)
                        (void)epoll_ctl(l->ep, EPOLL_CTL_MOD, s, &ev);
                else if (errno == ENOENT)
                        (void)epoll_ctl(l->ep, EPOLL_CTL_ADD, s, &ev);
                else
                        return -1;                        /* curl fails the transfer */
        }
        if (!socketp)
                curl_multi_assign(l->multi, s, l);
        return 0;
}

/* curl's timer: one shot, due ms from now (-1: none). */
static int on_timer(CURLM *m, long ms, void *userp) {
        proxy_loop *l = userp;

        (void)m;
        l->curl_due_ns = ms < 0 ? 0 : proxy_now_ns() + (uint64_t)ms * 1000000u;
        if (l->curl_due_ns == 0)
                l->curl_due_ns = 1;
        return 0;
}

/* Run curl's timer if it is due (it is consumed: curl sets the next). */
static void curl_timer_run(proxy_loop *l) {
        int running;

        if (l->curl_due_ns && proxy_now_ns() >= l->curl_due_ns) {
                l->curl_due_ns = 0;
                curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
}

static void loop_wake(proxy_loop *l) {
        uint64_t one = 1;

        (void)!write(l->wake_fd, &one, sizeof(one));       /* full (2^64-2): it is awake anyway */
}

static void *loop_main(void *arg) {
        proxy_loop *l = arg;
        struct epoll_event evs[64];

        this_loop = l;
        for (;;) {
                int running = 0, timeout = 1000, n;
                bool mhd_due = false, mhd_ready = false;

                if (l->curl_due_ns) {
                        uint64_t now = proxy_now_ns();
                        uint64_t left = l->curl_due_ns > now ? (l->curl_due_ns - now + 999999u) / 1000000u : 0;
                        if (left < (uint64_t)timeout)
                                timeout = (int)left;
                }
                if (l->driven) {
                        MHD_UNSIGNED_LONG_LONG mt;
                        if (MHD_get_timeout(l->driven, &mt) == MHD_YES && mt <= (MHD_UNSIGNED_LONG_LONG)timeout) {
                                timeout = (int)mt;
                                mhd_due = true;
                        }
                }
                /* Work this thread queued for itself (a request decided or
                 * a poke made in the last MHD_run) has no wake: no wait. */
                pthread_mutex_lock(&inbox_mu);
                if (l->new_head || l->poke_head)
                        timeout = 0;
                pthread_mutex_unlock(&inbox_mu);
                n = epoll_wait(l->ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), timeout);
                for (int i = 0; i < n; i++) {
                        unsigned kind = (unsigned)(evs[i].data.u64 >> 32);
                        int fd = (int)(uint32_t)evs[i].data.u64;
                        if (kind == EV_WAKE) {
                                uint64_t v;
                                (void)!read(l->wake_fd, &v, sizeof(v));
                        } else if (kind == EV_MHD) {
                                mhd_ready = true;
                        } else {
                                int mask = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
                                           ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                                           ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
                                curl_multi_socket_action(l->multi, fd, mask, &running);
                        }
                }
                if (l->driven && (mhd_ready || mhd_due))
                        MHD_run(l->driven);               /* may decide requests: jobs for the inbox */
                pthread_mutex_lock(&inbox_mu);
                proxy_job *nj = l->new_head, *pj = l->poke_head;
                l->new_head = NULL;
                l->new_tail = &l->new_head;
                l->poke_head = NULL;
                bool quit = loops_quit;
                pthread_mutex_unlock(&inbox_mu);
                while (nj) {
                        proxy_job *next = nj->next_new;
                        job_start(l, nj);
                        nj = next;
                }
                while (pj) {
                        proxy_job *next = pj->next_poke;
                        job_poked(l, pj);
                        pj = next;
                }
                /* New and unpaused transfers are due at once (curl set
                 * its timer to 0 for them); so is an expired timer. */
                curl_timer_run(l);
                finish_done(l);
                if (quit) {
                        while (l->n_active)
                                job_finish(l, l->active[0], CURLE_ABORTED_BY_CALLBACK);
                        wake_all();
                        break;
                }
                bool woke = wake_head != NULL;
                wake_all();
                /* Answer what was just resumed in this same pass. */
                if (l->driven && woke)
                        MHD_run(l->driven);
        }
        while (l->n_kept)
                curl_easy_cleanup(l->kept[--l->n_kept]);
        return NULL;
}

int proxy_loop_start(unsigned n, struct MHD_Daemon *const *drive) {
        sigset_t all, old;
        int r = 0;

        if (n == 0 || n > LOOPS_MAX)
                return cb_error_set(-EINVAL, "proxy loops: %u (1-%d)", n, LOOPS_MAX);
        for (unsigned i = 0; i < n; i++) {
                proxy_loop *l = &loops[i];
                l->new_head = l->poke_head = NULL;
                l->new_tail = &l->new_head;
                l->driven = NULL;
                l->driven_fd = -1;
                if (drive && drive[i]) {
                        const union MHD_DaemonInfo *di = MHD_get_daemon_info(drive[i], MHD_DAEMON_INFO_EPOLL_FD);
                        if (!di)
                                return cb_error_set(-EIO, "libmicrohttpd: no epoll fd for the TCP listener");
                        l->driven = drive[i];
                        l->driven_fd = di->epoll_fd;
                }
                l->curl_due_ns = 0;
                l->ep = epoll_create1(EPOLL_CLOEXEC);
                l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (l->ep < 0 || l->wake_fd < 0)
                        return cb_error_set(-errno, "proxy loop: epoll/eventfd: %s", strerror(errno));
                struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_DATA(EV_WAKE, l->wake_fd) };
                if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0)
                        return cb_error_set(-errno, "proxy loop: epoll_ctl: %s", strerror(errno));
                if (l->driven) {
                        ev.data.u64 = EV_DATA(EV_MHD, l->driven_fd);
                        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->driven_fd, &ev) < 0)
                                return cb_error_set(-errno, "proxy loop: epoll_ctl: %s", strerror(errno));
                }
                l->multi = curl_multi_init();
                if (!l->multi)
                        return cb_error_set(-ENOMEM, "libcurl: no multi handle");
                curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
                curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
                curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, on_timer);
                curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
                /* Keep idle upstream connections for the jobs in flight. */
                curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, (long)PROXY_MAX_JOBS);
                curl_multi_setopt(l->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
        }
        pthread_mutex_lock(&inbox_mu);
        loops_started = true;                             /* jobs may come from the first pass on */
        loops_quit = false;
        pthread_mutex_unlock(&inbox_mu);
        /* No signal for these threads: the main thread takes them all. */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        pthread_mutex_lock(&inbox_mu);
        n_loops = n;                                      /* jobs may queue for a loop not yet running */
        pthread_mutex_unlock(&inbox_mu);
        for (n_threads = 0; n_threads < n; n_threads++) {
                r = pthread_create(&loops[n_threads].thread, NULL, loop_main, &loops[n_threads]);
                if (r != 0)
                        break;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r != 0) {
                proxy_loop_stop();
                return cb_error_set(-r, "cannot start the proxy's transfer threads: %s", strerror(r));
        }
        return 0;
}

/* After proxy_stop cancelled every job: end the loops (what they still
 * hold is finished as cancelled). */
void proxy_loop_stop(void) {
        pthread_mutex_lock(&inbox_mu);
        bool started = loops_started;
        loops_quit = true;
        pthread_mutex_unlock(&inbox_mu);
        if (!started)
                return;
        for (unsigned i = 0; i < n_threads; i++)
                loop_wake(&loops[i]);
        for (unsigned i = 0; i < n_threads; i++)
                pthread_join(loops[i].thread, NULL);
        n_threads = 0;
        pthread_mutex_lock(&inbox_mu);
        loops_started = false;
        pthread_mutex_unlock(&inbox_mu);
        for (unsigned i = 0; i < LOOPS_MAX && loops[i].multi; i++) {
                proxy_loop *l = &loops[i];
                /* Jobs queued after the loop's last look: never started. */
                proxy_job *nj = l->new_head, *pj = l->poke_head;
                l->new_head = l->poke_head = NULL;
                l->new_tail = &l->new_head;
                while (nj) {
                        proxy_job *next = nj->next_new;
                        __atomic_store_n(&nj->cancelled, true, __ATOMIC_RELAXED);
                        job_finish(l, nj, CURLE_ABORTED_BY_CALLBACK);
                        nj = next;
                }
                wake_all();
                while (pj) {
                        proxy_job *next = pj->next_poke;
                        proxy_job_unref(pj);
                        pj = next;
                }
                curl_multi_cleanup(l->multi);
                l->multi = NULL;
                close(l->ep);
                close(l->wake_fd);
                l->ep = l->wake_fd = -1;
                l->driven = NULL;                         /* server_stop stops it */
                l->driven_fd = -1;
        }
        pthread_mutex_lock(&inbox_mu);
        n_loops = 0;
        pthread_mutex_unlock(&inbox_mu);
}

/* Queue a job for a loop (the caller's own when it is one, else the next
 * in turn); 0 or a positive errno. */
int proxy_pool_submit(proxy_job *j) {
        pthread_mutex_lock(&inbox_mu);
        if (loops_quit || !loops_started || n_loops == 0) {
                pthread_mutex_unlock(&inbox_mu);
                return ESHUTDOWN;
        }
        proxy_loop *l = this_loop ? this_loop : &loops[next_loop++ % n_loops];
        j->loop = l;
        j->next_new = NULL;
        *l->new_tail = j;
        l->new_tail = &j->next_new;
        /* Under the lock: the loop's descriptors are closed only once
         * loops_quit is set under it (an eventfd write never waits). */
        if (this_loop != l)                               /* else it takes the inbox next */
                loop_wake(l);
        pthread_mutex_unlock(&inbox_mu);
        return 0;
}

bool proxy_job_poke_locked(proxy_job *j) {
        pthread_mutex_lock(&inbox_mu);
        proxy_loop *l = j->loop;
        if (!l || loops_quit || !loops_started) {
                pthread_mutex_unlock(&inbox_mu);
                return false;
        }
        if (j->poked) {
                pthread_mutex_unlock(&inbox_mu);
                return true;                              /* already on its way */
        }
        j->poked = true;
        j->refs++;                                        /* the loop drops it (job_poked) */
        j->next_poke = l->poke_head;
        l->poke_head = j;
        if (this_loop != l)
                loop_wake(l);                             /* under the lock: see proxy_pool_submit */
        pthread_mutex_unlock(&inbox_mu);
        return true;
}
