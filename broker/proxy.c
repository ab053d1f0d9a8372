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
 * prefix, header hygiene.  Then one worker thread per request resolves the
 * host, refuses private/loopback/metadata addresses unless the sealed entry
 * names that address, pins curl to the checked address (CURLOPT_RESOLVE:
 * no second lookup), injects the secret and runs the transfer with libcurl
 * (OpenSSL; verification on; redirects never followed).  The response
 * streams back through a bounded buffer: the MHD connection is suspended
 * while the buffer is empty and resumed by the worker, which in turn waits
 * while the buffer is full (a slow client slows the upstream, no more).
 * The secret value is replaced by "[REDACTED]" in response headers and
 * body (exact across chunks); Set-Cookie is dropped.
 *
 * Request bodies stream too: the request is decided on its headers, the
 * worker starts at once, and the body passes through a bounded buffer
 * (the connection is parked while it is full).  Nothing is buffered whole.
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <microhttpd.h>
#include <sodium.h>

#include "error.h"
#include "proxy.h"

#define PROXY_BUF        (64 * 1024)
#define PROXY_MAX_JOBS   512
#define PROXY_MAX_JOBS_PER_UID 128
#define CONNECT_TIMEOUT  10L
#define IDLE_TIMEOUT     300L  /* no byte from the upstream for this long */
#define TOTAL_TIMEOUT    3600L
#define MAX_RESP_HEADERS 200

typedef struct proxy_job {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        int refs;
        struct MHD_Connection *conn;  /* NULL once MHD is done with the request */
        bool suspended, headers_done, done, cancelled;
        bool finished;                /* the worker is through, audit written (atomic) */
        /* what to send */
        char method[32];
        char *url;                    /* may hold the value (query injection): wiped */
        struct curl_slist *headers;   /* may hold the value: wiped */
        unsigned char *ubuf;          /* request body on its way up (bounded) */
        size_t ulen;
        bool expect_body, ueof;
        long long content_length;     /* -1: none given (sent chunked) */
        cb_dest dest;
        CURL *h;
        char *ca_file, *pin;
        cb_redchain red;              /* the value and its injected/escaped forms */
        /* what came back */
        long status;
        char **rh;                    /* "Name: value", filtered and redacted */
        size_t nrh;
        unsigned char *buf;
        size_t blen;
        int fail_status;              /* set when it failed before headers */
        char fail_code[32], err[512];
        bool broken;                  /* failed after headers: end the body with an error */
        bool compressed;              /* the upstream sent Content-Encoding despite identity */
        /* audit */
        uint64_t t0_ns;
        uint64_t bytes_up, bytes_down;
        uid_t uid;
        pid_t pid;
        bool tcp;
        char exe_sha256_hex[65];
        char secret[CB_NAME_MAX + 1], client[65], accessor[CB_ACCESSOR_LEN + 1];
        char path[1024];              /* without the query */
} proxy_job;

static pthread_mutex_t jobs_mu = PTHREAD_MUTEX_INITIALIZER;
static proxy_job *jobs[PROXY_MAX_JOBS];
static bool stopping;
static CURLSH *share;
static pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];

static uint64_t now_ns(void) {
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
        /* Connection reuse across requests (TLS sessions too). */
        curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        return 0;
}

void proxy_slist_wipe_free(struct curl_slist *l) {
        for (struct curl_slist *p = l; p; p = p->next)
                sodium_memzero(p->data, strlen(p->data));
        curl_slist_free_all(l);
}

static void job_unref(proxy_job *j) {
        pthread_mutex_lock(&j->mu);
        bool last = --j->refs == 0;
        pthread_mutex_unlock(&j->mu);
        if (!last)
                return;
        pthread_mutex_lock(&jobs_mu);
        for (size_t i = 0; i < PROXY_MAX_JOBS; i++)
                if (jobs[i] == j)
                        jobs[i] = NULL;
        pthread_mutex_unlock(&jobs_mu);
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
                sodium_memzero(j->buf, PROXY_BUF);
                free(j->buf);
        }
        pthread_mutex_destroy(&j->mu);
        pthread_cond_destroy(&j->cv);
        free(j);
}

/* Wake the MHD side if it waits.  Called with j->mu held; resumes after
 * dropping it (MHD takes its own locks). */
static void wake_locked(proxy_job *j) {
        struct MHD_Connection *c = NULL;

        if (j->suspended && j->conn && !stopping) {
                j->suspended = false;
                c = j->conn;
        }
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        if (c)
                MHD_resume_connection(c);
        pthread_mutex_lock(&j->mu);
}

/* ---- the worker ---------------------------------------------------------- */

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

/* curl pulls the request body as the client sends it; waits while there is
 * none yet.  0 at its end. */
static size_t on_read(char *out, size_t size, size_t n, void *u) {
        proxy_job *j = u;
        size_t want = size * n;

        pthread_mutex_lock(&j->mu);
        while (j->ulen == 0 && !j->ueof && !j->cancelled)
                pthread_cond_wait(&j->cv, &j->mu);
        if (j->cancelled) {
                pthread_mutex_unlock(&j->mu);
                return CURL_READFUNC_ABORT;
        }
        if (want > j->ulen)
                want = j->ulen;
        memcpy(out, j->ubuf, want);
        memmove(j->ubuf, j->ubuf + want, j->ulen - want);
        j->ulen -= want;
        j->bytes_up += want;
        wake_locked(j);                                   /* room again: the client may send more */
        pthread_mutex_unlock(&j->mu);
        return want;
}

/* Push redacted bytes to the MHD side, waiting while the buffer is full. */
static bool push(proxy_job *j, const unsigned char *p, size_t n) {
        pthread_mutex_lock(&j->mu);
        while (n > 0) {
                while (j->blen == PROXY_BUF && !j->cancelled)
                        pthread_cond_wait(&j->cv, &j->mu);
                if (j->cancelled) {
                        pthread_mutex_unlock(&j->mu);
                        return false;
                }
                size_t k = PROXY_BUF - j->blen < n ? PROXY_BUF - j->blen : n;
                memcpy(j->buf + j->blen, p, k);
                j->blen += k;
                p += k;
                n -= k;
                wake_locked(j);
        }
        pthread_mutex_unlock(&j->mu);
        return true;
}

static size_t on_write(char *p, size_t size, size_t n, void *u) {
        proxy_job *j = u;
        const unsigned char *out;
        size_t len;

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
                wake_locked(j);
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
 * left, or the daemon is stopping). */
static int on_progress(void *u, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
        proxy_job *j = u;
        (void)dt, (void)dn, (void)ut, (void)un;
        return __atomic_load_n(&j->cancelled, __ATOMIC_RELAXED) ? 1 : 0;
}

/* Resolve dest, refuse addresses that must not be dialled, and pin curl to
 * the first address checked.  0, or fails the job and returns -1. */
static int pin_address(proxy_job *j, struct curl_slist **ret) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
        char addr[INET6_ADDRSTRLEN + 2], entry[CB_DEST_HOST_MAX + INET6_ADDRSTRLEN + 16];
        int r;

        if (j->dest.literal)
                return 0;                                 /* named as such in the sealed entry */
        r = getaddrinfo(j->dest.host, NULL, &hints, &res);
        if (r != 0) {
                fail(j, 502, "bad_gateway", "cannot resolve %s: %s", j->dest.host, gai_strerror(r));
                return -1;
        }
        for (struct addrinfo *a = res; a; a = a->ai_next) {
                const char *why = cb_addr_refusal(a->ai_addr);
                if (why) {
                        char txt[INET6_ADDRSTRLEN];
                        getnameinfo(a->ai_addr, a->ai_addrlen, txt, sizeof(txt), NULL, 0, NI_NUMERICHOST);
                        fail(j, 403, "forbidden",
                             "%s resolves to %s, a %s address: refused unless the sealed host names that address",
                             j->dest.host, txt, why);
                        freeaddrinfo(res);
                        return -1;
                }
        }
        getnameinfo(res->ai_addr, res->ai_addrlen, addr + 1, sizeof(addr) - 2, NULL, 0, NI_NUMERICHOST);
        if (res->ai_family == AF_INET6) {
                addr[0] = '[';
                strcat(addr, "]");
        } else {
                memmove(addr, addr + 1, strlen(addr + 1) + 1);
        }
        freeaddrinfo(res);
        snprintf(entry, sizeof(entry), "%s:%u:%s", j->dest.host, j->dest.port, addr);
        *ret = curl_slist_append(NULL, entry);
        if (!*ret) {
                fail(j, 500, "internal", "out of memory");
                return -1;
        }
        return 0;
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
        json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:I, s:I, s:I, s:i, s:i, s:s, s:s, s:s}",
                              "time", (json_int_t)time(NULL), "socket", j->tcp ? "tcp" : "tools", "route", "proxy.done", "method",
                              j->method, "host", j->dest.host, "path", j->path, "status",
                              j->status ? (int)j->status : j->fail_status, "decision",
                              j->status && !j->broken ? "allow" : "deny", "bytes_up", (json_int_t)j->bytes_up,
                              "bytes_down", (json_int_t)j->bytes_down, "ms",
                              (json_int_t)((now_ns() - j->t0_ns) / 1000000u), "uid", (int)j->uid, "pid", (int)j->pid,
                              "exe_sha256", j->exe_sha256_hex, "secret", j->secret, "accessor", j->accessor);
        if (!o)
                return;
        json_object_set_new(o, "port", json_integer(j->dest.port));
        if (j->err[0])
                json_object_set_new(o, "reason", json_string(j->err));
        if (j->client[0])
                json_object_set_new(o, "client", json_string(j->client));
        pthread_mutex_lock(&cbd.lock);
        (void)audit_emit(o);
        pthread_mutex_unlock(&cbd.lock);
        json_decref(o);
}

static void run_job(proxy_job *j) {
        struct curl_slist *resolve = NULL;
        char errbuf[CURL_ERROR_SIZE] = "";
        CURLcode c;

        if (pin_address(j, &resolve) < 0)
                goto out;
        j->h = curl_easy_init();
        if (!j->h) {
                fail(j, 500, "internal", "libcurl: no handle");
                goto out;
        }
        CURL *h = j->h;
        curl_easy_setopt(h, CURLOPT_URL, j->url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, j->dest.https ? "https" : "http");
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_PROXY, "");           /* never an *_proxy from the environment */
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
        if (j->ca_file)
        {
                /* The sealed bundle replaces the system's: no CA directory. */
                curl_easy_setopt(h, CURLOPT_CAINFO, j->ca_file);
                curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        }
        if (j->pin)
                curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, j->pin);
        if (resolve)
                curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
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
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
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
        c = curl_easy_perform(h);
        if (c == CURLE_OK) {
                const unsigned char *tail;
                size_t tl;
                if (cb_redchain_finish(&j->red, &tail, &tl) == 0 && tl)
                        (void)push(j, tail, tl);
        } else if (j->compressed) {
                fail(j, 502, "bad_gateway", "upstream %s:%u sent a compressed response (Content-Encoding) although "
                                            "asked for identity: it cannot be checked for the secret, refused",
                     j->dest.host, j->dest.port);
        } else if (!j->cancelled) {
                int status;
                const char *code = curl_fail_code(c, &status);
                fail(j, status, code, "upstream %s:%u: %s%s%s", j->dest.host, j->dest.port, curl_easy_strerror(c),
                     errbuf[0] ? ": " : "", errbuf);
        }
out:
        pthread_mutex_lock(&j->mu);
        if (j->h) {
                curl_easy_cleanup(j->h);
                j->h = NULL;
        }
        j->done = true;
        wake_locked(j);
        pthread_mutex_unlock(&j->mu);
        curl_slist_free_all(resolve);
        audit_done(j);
        __atomic_store_n(&j->finished, true, __ATOMIC_RELEASE);
        job_unref(j);
}

/* ---- the worker pool -------------------------------------------------------
 * Threads are made on demand, up to one per job in flight, and kept while
 * there is work: a thread per request would cost a clone and, at its exit,
 * an munmap of its stack — a TLB shootdown on every CPU. */
#define POOL_IDLE_SECONDS 30

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static proxy_job *queue[PROXY_MAX_JOBS];
static size_t q_head, q_len, n_threads, n_idle;

static void *pool_thread(void *arg) {
        (void)arg;
        pthread_mutex_lock(&pool_mu);
        for (;;) {
                while (q_len == 0) {
                        struct timespec until;
                        clock_gettime(CLOCK_REALTIME, &until);
                        until.tv_sec += POOL_IDLE_SECONDS;
                        n_idle++;
                        int r = pthread_cond_timedwait(&pool_cv, &pool_mu, &until);
                        n_idle--;
                        if (r == ETIMEDOUT && q_len == 0) {
                                n_threads--;
                                pthread_mutex_unlock(&pool_mu);
                                return NULL;
                        }
                }
                proxy_job *j = queue[q_head];
                q_head = (q_head + 1) % PROXY_MAX_JOBS;
                q_len--;
                pthread_mutex_unlock(&pool_mu);
                run_job(j);
                pthread_mutex_lock(&pool_mu);
        }
}

/* Queue a job; 0 or a positive errno (no thread could be made). */
static int pool_submit(proxy_job *j) {
        int r = 0;

        pthread_mutex_lock(&pool_mu);
        if (q_len == PROXY_MAX_JOBS) {
                pthread_mutex_unlock(&pool_mu);
                return EAGAIN; /* cannot happen: jobs[] caps jobs in flight first */
        }
        queue[(q_head + q_len) % PROXY_MAX_JOBS] = j;
        q_len++;
        if (n_idle < q_len && n_threads < PROXY_MAX_JOBS) {
                pthread_t th;
                pthread_attr_t at;
                pthread_attr_init(&at);
                pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
                pthread_attr_setstacksize(&at, 256 * 1024);
                r = pthread_create(&th, &at, pool_thread, NULL);
                pthread_attr_destroy(&at);
                if (r == 0)
                        n_threads++;
                else if (n_threads > 0)
                        r = 0;         /* the existing threads will get to it */
                else
                        q_len--;       /* nobody would: take it back */
        }
        pthread_cond_signal(&pool_cv);
        pthread_mutex_unlock(&pool_mu);
        return r;
}

/* ---- the MHD side --------------------------------------------------------- */

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max) {
        proxy_job *j = cls;
        ssize_t n;

        (void)pos;
        pthread_mutex_lock(&j->mu);
        if (j->blen) {
                size_t k = j->blen < max ? j->blen : max;
                memcpy(out, j->buf, k);
                memmove(j->buf, j->buf + k, j->blen - k);
                sodium_memzero(j->buf + j->blen - k, k);
                j->blen -= k;
                pthread_cond_broadcast(&j->cv);
                n = (ssize_t)k;
        } else if (j->done) {
                n = j->broken ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
        } else if (j->cancelled || stopping) {
                n = MHD_CONTENT_READER_END_WITH_ERROR;    /* never park a connection while stopping */
        } else {
                /* Nothing yet: park the connection; the worker resumes it. */
                j->suspended = true;
                MHD_suspend_connection(j->conn);
                n = 0;
        }
        pthread_mutex_unlock(&j->mu);
        return n;
}

static void reader_free(void *cls) {
        job_unref(cls);
}

/* Called again by handle() once the worker resumed the connection. */
int proxy_continue(request *rq) {
        proxy_job *j = rq->proxy;
        struct MHD_Response *resp;
        int ret;

        pthread_mutex_lock(&j->mu);
        if (!j->headers_done && !j->done && !j->cancelled && !stopping) { /* woken early: wait on */
                j->suspended = true;
                MHD_suspend_connection(rq->conn);
                pthread_mutex_unlock(&j->mu);
                return MHD_YES;
        }
        if (!j->headers_done) {
                int status = j->fail_status ? j->fail_status : 502;
                char code[32], msg[512];
                snprintf(code, sizeof(code), "%s", j->fail_code[0] ? j->fail_code : "bad_gateway");
                snprintf(msg, sizeof(msg), "%s", j->err[0] ? j->err : "the upstream request failed");
                pthread_mutex_unlock(&j->mu);
                rq->no_audit = true;                     /* the worker's record says it */
                pthread_mutex_lock(&cbd.lock);
                ret = reply_error(rq, (unsigned)status, code, "%s", msg);
                pthread_mutex_unlock(&cbd.lock);
                return ret;
        }
        j->refs++;                                        /* the response's reader holds one */
        pthread_mutex_unlock(&j->mu);
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, j, reader_free);
        if (!resp) {
                job_unref(j);
                return MHD_NO;
        }
        for (size_t i = 0; i < j->nrh; i++) {
                char *colon = strchr(j->rh[i], ':');
                if (!colon)
                        continue;
                *colon = '\0';
                MHD_add_response_header(resp, j->rh[i], colon + 2);
                *colon = ':';
        }
        ret = MHD_queue_response(rq->conn, (unsigned)j->status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* A piece of the request body: into the upload buffer as far as it fits;
 * when full, park the connection until the worker has sent some (MHD then
 * hands us the rest again).  Once the upstream transfer has ended (failed
 * early), the rest is read and dropped. */
int proxy_feed(request *rq, const char *data, size_t *size) {
        proxy_job *j = rq->proxy;

        pthread_mutex_lock(&j->mu);
        if (j->done || j->cancelled) {
                *size = 0;
        } else {
                size_t n = PROXY_BUF - j->ulen < *size ? PROXY_BUF - j->ulen : *size;
                memcpy(j->ubuf + j->ulen, data, n);
                j->ulen += n;
                *size -= n;
                pthread_cond_broadcast(&j->cv);
                if (*size && !stopping) {
                        j->suspended = true;
                        MHD_suspend_connection(rq->conn);
                } else if (*size) {
                        *size = 0;                        /* stopping: dropped */
                }
        }
        pthread_mutex_unlock(&j->mu);
        return MHD_YES;
}

/* The body is complete (MHD's final call): tell the worker. */
void proxy_body_done(request *rq) {
        proxy_job *j = rq->proxy;

        pthread_mutex_lock(&j->mu);
        if (!j->ueof) {
                j->ueof = true;
                pthread_cond_broadcast(&j->cv);
        }
        pthread_mutex_unlock(&j->mu);
}

/* The request is over for MHD (answered, failed or the client left). */
void proxy_request_done(request *rq) {
        proxy_job *j = rq->proxy;

        if (!j)
                return;
        pthread_mutex_lock(&j->mu);
        j->cancelled = true;
        j->conn = NULL;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
        rq->proxy = NULL;
        job_unref(j);
}

size_t proxy_cancel_secret(const char *secret, const char *why) {
        size_t n = 0;

        pthread_mutex_lock(&jobs_mu);
        for (size_t i = 0; i < PROXY_MAX_JOBS; i++) {
                proxy_job *j = jobs[i];
                if (!j || strcmp(j->secret, secret) != 0)
                        continue;
                pthread_mutex_lock(&j->mu);
                if (!j->cancelled && !j->done) {
                        j->cancelled = true;                 /* the transfer aborts at its next progress call */
                        if (!j->headers_done && !j->fail_status) {
                                j->fail_status = 403;
                                snprintf(j->fail_code, sizeof(j->fail_code), "revoked");
                                snprintf(j->err, sizeof(j->err), "secret '%s': %s", secret, why);
                        }
                        j->broken = true;                    /* a started body ends in an error, not cleanly */
                        if (j->blen)
                                sodium_memzero(j->buf, j->blen);
                        j->blen = 0;
                        if (j->suspended && j->conn) {
                                j->suspended = false;
                                MHD_resume_connection(j->conn);
                        }
                        pthread_cond_broadcast(&j->cv);
                        n++;
                }
                pthread_mutex_unlock(&j->mu);
        }
        pthread_mutex_unlock(&jobs_mu);
        return n;
}

/* Before MHD_stop_daemon: no connection may stay suspended. */
void proxy_stop(void) {
        pthread_mutex_lock(&jobs_mu);
        stopping = true;
        for (size_t i = 0; i < PROXY_MAX_JOBS; i++) {
                proxy_job *j = jobs[i];
                if (!j)
                        continue;
                pthread_mutex_lock(&j->mu);
                j->cancelled = true;
                if (j->suspended && j->conn) {
                        j->suspended = false;
                        MHD_resume_connection(j->conn);
                }
                pthread_cond_broadcast(&j->cv);
                pthread_mutex_unlock(&j->mu);
        }
        pthread_mutex_unlock(&jobs_mu);
        /* Let the workers see it (their transfers abort at the next
         * progress call) before the servers and the store go away. */
        for (int tries = 0; tries < 50; tries++) {
                bool busy = false;
                pthread_mutex_lock(&jobs_mu);
                for (size_t i = 0; i < PROXY_MAX_JOBS && !busy; i++)
                        busy = jobs[i] && !__atomic_load_n(&jobs[i]->finished, __ATOMIC_ACQUIRE);
                pthread_mutex_unlock(&jobs_mu);
                if (!busy)
                        break;
                struct timespec t = { 0, 100 * 1000 * 1000 };
                nanosleep(&t, NULL);
        }
}

/* Take over a decided request: start its worker and park the connection
 * until the upstream answers (or, when a body follows, let MHD deliver it
 * to proxy_feed).  Takes sp->url and sp->headers. */
int proxy_start(request *rq, proxy_spec *sp) {
        proxy_job *j;
        int r, ret;

        j = calloc(1, sizeof(*j));
        if (!j) {
                ret = reply_error(rq, 503, "unavailable", "out of memory");
                goto out;
        }
        pthread_mutex_init(&j->mu, NULL);
        pthread_cond_init(&j->cv, NULL);
        j->refs = 1;                                      /* ours until the worker starts */
        r = 0;
        for (size_t i = 0; i < sp->nforms && r == 0; i++)
                r = cb_redchain_add(&j->red, sp->forms[i], sp->form_lens[i]);
        if (r < 0 || !(j->buf = malloc(PROXY_BUF))) {
                ret = reply_error(rq, 503, "unavailable", "out of memory");
                goto out;
        }
        j->conn = rq->conn;
        memcpy(j->method, sp->method, sizeof(j->method));
        j->url = sp->url, sp->url = NULL;
        j->headers = sp->headers, sp->headers = NULL;
        j->expect_body = sp->expect_body;
        j->content_length = sp->content_length;
        j->ueof = !sp->expect_body;
        if (sp->expect_body && !(j->ubuf = malloc(PROXY_BUF))) {
                ret = reply_error(rq, 503, "unavailable", "out of memory");
                goto out;
        }
        j->dest = sp->dest;
        j->ca_file = sp->ca_file ? strdup(sp->ca_file) : NULL;
        j->pin = sp->pin ? strdup(sp->pin) : NULL;
        if ((sp->ca_file && !j->ca_file) || (sp->pin && !j->pin)) {
                ret = reply_error(rq, 503, "unavailable", "out of memory");
                goto out;
        }
        j->t0_ns = now_ns();
        j->uid = rq->peer.uid;
        j->pid = rq->peer.pid;
        j->tcp = rq->tcp;
        memcpy(j->exe_sha256_hex, rq->peer.exe_sha256_hex, sizeof(j->exe_sha256_hex));
        memcpy(j->secret, rq->secret, sizeof(j->secret));
        memcpy(j->client, rq->client, sizeof(j->client));
        memcpy(j->accessor, rq->accessor, sizeof(j->accessor));
        memcpy(j->path, sp->path, sizeof(j->path));
        {
                size_t slot = PROXY_MAX_JOBS, mine = 0;
                pthread_mutex_lock(&jobs_mu);
                for (size_t i = 0; i < PROXY_MAX_JOBS; i++) {
                        if (!jobs[i] && slot == PROXY_MAX_JOBS)
                                slot = i;
                        else if (jobs[i] && jobs[i]->uid == j->uid)
                                mine++;
                }
                /* One uid may not take every worker (streams can be long). */
                if (mine >= PROXY_MAX_JOBS_PER_UID) {
                        pthread_mutex_unlock(&jobs_mu);
                        ret = reply_error(rq, 429, "too_many_requests", "uid %u has %d proxied requests in flight "
                                          "already", (unsigned)j->uid, PROXY_MAX_JOBS_PER_UID);
                        goto out;
                }
                if (slot < PROXY_MAX_JOBS && !stopping)
                        jobs[slot] = j;
                pthread_mutex_unlock(&jobs_mu);
                if (slot == PROXY_MAX_JOBS) {
                        ret = reply_error(rq, 503, "unavailable", "%d proxied requests in flight already",
                                          PROXY_MAX_JOBS);
                        goto out;
                }
        }
        j->refs = 2;                                      /* this request, the worker */
        r = pool_submit(j);
        if (r != 0) {
                j->refs = 1;
                ret = reply_error(rq, 503, "unavailable", "cannot start a worker: %s", strerror(r));
                goto out;
        }
        rq->proxy = j;
        j = NULL;
        /* MHD calls again: with the body's pieces (proxy_feed), then once
         * more at its end, where proxy_continue parks the connection until
         * the upstream answers.  Not here: this runs under cbd.lock, which
         * proxy_continue takes to answer a failure. */
        ret = MHD_YES;
out:
        if (j)
                job_unref(j);
        if (sp->url) {
                sodium_memzero(sp->url, strlen(sp->url));
                free(sp->url);
                sp->url = NULL;
        }
        proxy_slist_wipe_free(sp->headers);
        sp->headers = NULL;
        return ret;
}
