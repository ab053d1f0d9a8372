/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The credential injection proxy (DESIGN "Credential injection proxy").
 *
 *   reverse   ANY /v1/proxy/<secret>/<path>        token in Authorization,
 *   forward   ANY http://host[:port]/path (absolute form)   Proxy-Authorization
 *             or the template's header
 *
 * Everything that can refuse a request is decided on the server thread,
 * under no daemon-wide lock, before anything leaves the broker: token (scope proxy,
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
 * how a transfer ends); proxy_loop.c runs the transfers (the loops);
 * proxy_conn.c is the tool's side (the MHD callbacks); proxy_job.h is what
 * they share.
 */
#include <errno.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

#include <curl/curl.h>
#include <microhttpd.h>
#include <sodium.h>

#include "audit.h"
#include "audit_format.h" /* cb_json_string_lossy */
#include "error.h"
#include "metrics.h"
#include "proxy.h"
#include "proxy_job.h"
#include "wipe_alloc.h"


pthread_mutex_t proxy_jobs_mu = PTHREAD_MUTEX_INITIALIZER;
proxy_job *proxy_jobs[PROXY_MAX_JOBS];
size_t proxy_jobs_n;
bool proxy_stopping;

proxy_env proxy_cur;
cb_held_budget proxy_held = CB_HELD_BUDGET_INIT(PROXY_HELD_TOTAL);

void proxy_attach(const proxy_env *env) {
        proxy_cur = *env;
}
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
        int r = cb_wipe_alloc_install(); /* initialises libcurl */

        if (r < 0)
                return r;
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
        if (j->in_table) {                        /* its own slot: no walk over the table */
                proxy_jobs[j->slot] = NULL;
                j->in_table = false;
                proxy_jobs_n--;
        }
        pthread_mutex_unlock(&proxy_jobs_mu);
        if (j->url) {
                sodium_memzero(j->url, strlen(j->url));
                free(j->url);
        }
        proxy_slist_wipe_free(j->headers);
        if (j->ubuf) {
                sodium_memzero(j->ubuf, j->ucap);
                free(j->ubuf);
        }
        cb_scan_stream_free(j->leak_st);
        cb_matcher_free(j->leak_m);
        cb_held_give(&proxy_held, j->held_uid, j->held_charge);
        free(j->ca_file);
        free(j->pin);
        cb_ovscan_clear(&j->scan);
        cb_scan_stream_free(j->rs);
        cb_matcher_free(j->red);
        if (j->rout) {
                sodium_memzero(j->rout, j->rout_cap);
                free(j->rout);
        }
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

/* ---- the transfer's callbacks (on its loop's thread) ------------------------ */

void proxy_job_fail(proxy_job *j, int status, const char *code, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        /* curl's messages may quote the URL, which may carry the value. */
        char *clean = j->red ? cb_matcher_redact_string(j->red, msg, NULL) : NULL;
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
        memcpy(out, j->ubuf + j->ukept, want);
        j->ukept += want;                         /* kept for a rewind while there is room (proxy_feed) */
        j->ulen -= want;
        j->bytes_up += want;
        proxy_wake_later_locked(j);                                       /* room again: the client may send more */
        pthread_mutex_unlock(&j->mu);
        return want;
}

/* Back to the body's first byte, for a resend on a fresh connection;
 * false when bytes libcurl took are gone (the body outgrew the buffer). */
static bool upload_rewind(proxy_job *j) {
        pthread_mutex_lock(&j->mu);
        bool ok = !j->ulost && !j->cancelled;
        if (ok && j->ubuf) {
                j->ulen += j->ukept;
                j->bytes_up -= j->ukept;
                j->ukept = 0;
        }
        pthread_mutex_unlock(&j->mu);
        return ok;
}

/* libcurl rewinds the upload when it sends the request again (a reused
 * connection died before any byte of the answer came): only to the start,
 * and only while the broker still holds every byte of the body. */
static int on_seek(void *u, curl_off_t offset, int origin) {
        proxy_job *j = u;

        if (offset != 0 || origin != SEEK_SET)
                return CURL_SEEKFUNC_CANTSEEK;
        return upload_rewind(j) ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_CANTSEEK;
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
                /* Sized to what came, not 16 KiB up front: a small answer
                 * (most of them) then lives in a small chunk the thread's
                 * cache hands back, where a 16 KiB one grew the heap (page
                 * faults) and its free trimmed it again (madvise) on every
                 * request.  A big answer doubles its way up, once. */
                size_t nc = j->bcap ? j->bcap : 256;
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
        proxy_wake_later_locked(j);
        pthread_mutex_unlock(&j->mu);
        return true;
}

/* The redacting stream's output: collected, then pushed as one piece. */
static int red_out(void *u, const void *p, size_t n) {
        proxy_job *j = u;

        if (j->rout_len + n > j->rout_cap) {
                size_t nc = j->rout_cap ? j->rout_cap : 256; /* as push(): sized to what comes */
                while (nc < j->rout_len + n)
                        nc *= 2;
                unsigned char *b = malloc(nc);
                if (!b)
                        return -ENOMEM;
                if (j->rout) {
                        memcpy(b, j->rout, j->rout_len);
                        sodium_memzero(j->rout, j->rout_cap);
                        free(j->rout);
                }
                j->rout = b;
                j->rout_cap = nc;
        }
        memcpy(j->rout + j->rout_len, p, n);
        j->rout_len += n;
        return 0;
}

/* Run a piece of the body (NULL: its end) through the redactor, which
 * holds back only what may still become the value (SSE events go out at
 * once); false on ENOMEM. */
static bool redact_push(proxy_job *j, const void *p, size_t n) {
        if (!j->rs) {
                if (!(j->rs = cb_scan_stream_new(j->red, NULL, red_out, j)))
                        return false;
                cb_scan_stream_eager(j->rs);
        }
        j->rout_len = 0;
        if ((p ? cb_scan_stream_feed(j->rs, p, n) : cb_scan_stream_finish(j->rs)) < 0)
                return false;
        return j->rout_len == 0 || push(j, j->rout, j->rout_len);
}

static size_t on_write(char *p, size_t size, size_t n, void *u) {
        proxy_job *j = u;

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
        j->bytes_down += size * n;
        return redact_push(j, p, size * n) ? size * n : 0;
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
        if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {   /* a status line: a new response (1xx before) */
                for (size_t i = 0; i < j->nrh; i++)
                        free(j->rh[i]);
                j->nrh = 0;
                cb_rframe_reset(&j->rframe);
                return len;
        }
        if (len <= 2 && (len == 0 || p[0] == '\r' || p[0] == '\n')) {
                long code = 0;

                curl_easy_getinfo(j->h, CURLINFO_RESPONSE_CODE, &code);
                if (code == 101) {
                        /* Switching Protocols, never asked for (Upgrade is
                         * hop-by-hop and not forwarded): what follows is
                         * no HTTP response.  Refused (502), the connection
                         * closed; it used to leave the tool unanswered and
                         * its in-flight slot taken. */
                        j->resp_bad = "an upstream switched protocols (101) without being asked to";
                        return 0;
                }
                if (code < 200)
                        return len;                       /* 100 Continue and friends */
                /* Framed as RFC 9112 says, or refused (502): returning 0
                 * aborts the transfer, and libcurl closes a connection
                 * whose transfer ended early rather than pool it. */
                if (cb_rframe_end(&j->rframe) < 0) {
                        j->resp_bad = j->rframe.why;
                        return 0;
                }
                pthread_mutex_lock(&j->mu);
                j->status = code;
                j->headers_done = true;
                proxy_wake_later_locked(j);
                pthread_mutex_unlock(&j->mu);
                return len;
        }
        /* Each line against the framing rules: two lengths, a coding
         * other than chunked, Content-Length with Transfer-Encoding,
         * obs-fold, and any Content-Encoding but identity (a compressed
         * body could not be checked for the secret) are refused. */
        if (cb_rframe_line(&j->rframe, p, len) < 0) {
                j->resp_bad = j->rframe.why;
                return 0;
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
        char *clean = cb_matcher_redact_string(j->red, line, NULL);
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
static void up_add(int fd); /* the upstream socket table, below */

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
        int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
        if (fd >= 0)
                up_add(fd);
        return fd;
}

/* Upstream connections are not shared between uids: a pooled connection
 * belongs to the uid whose request first went out on it, and another uid's
 * transfer that libcurl hands it is stopped here, before a byte is sent,
 * and started again on a fresh connection (job_finish).  So whatever an
 * upstream leaves on a connection — an unsolicited second answer timed to
 * meet the next request — reaches only the uid that talked to it.
 *
 * A connection is known by its descriptor, from the moment libcurl opens
 * it (on_opensocket) to the moment it closes it (on_closesocket): no
 * other connection can hold that key meanwhile.  libcurl 7.88 tells the
 * pre-request callback only the connection's addresses, so the descriptor
 * is found by its full 4-tuple (unique among open TCP sockets), learnt
 * once per socket with getsockname/getpeername.  (A local port alone is
 * not a key: Linux gives one port to connections to different
 * destinations, and closing one of them cleared the other's owner.)  A
 * transfer on a connection the table does not know is refused like a
 * foreign one, unless it is a fresh connection, which is its own. */
typedef struct up_key {
        sa_family_t family;
        in_port_t lport, rport;       /* network order */
        unsigned char laddr[16], raddr[16];
} up_key;

typedef struct up_sock {
        int fd;
        bool known;                   /* key was learnt */
        up_key key;
        uint32_t owner;               /* uid + 1; 0 for none yet */
} up_sock;

static pthread_mutex_t up_mu = PTHREAD_MUTEX_INITIALIZER; /* memory and two getsockname-like calls only */
static up_sock *up_socks;
static size_t up_n, up_cap;

static bool sa_key(const struct sockaddr_storage *ss, unsigned char addr[16], in_port_t *port) {
        memset(addr, 0, 16);
        if (ss->ss_family == AF_INET) {
                const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
                memcpy(addr, &a->sin_addr, 4);
                *port = a->sin_port;
                return true;
        }
        if (ss->ss_family == AF_INET6) {
                const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
                memcpy(addr, &a->sin6_addr, 16);
                *port = a->sin6_port;
                return true;
        }
        return false;
}

static bool sock_key(int fd, up_key *k) {
        struct sockaddr_storage l, r;
        socklen_t ll = sizeof(l), rl = sizeof(r);

        memset(k, 0, sizeof(*k));
        if (getsockname(fd, (struct sockaddr *)&l, &ll) < 0 || getpeername(fd, (struct sockaddr *)&r, &rl) < 0 ||
            l.ss_family != r.ss_family)
                return false;
        k->family = l.ss_family;
        return sa_key(&l, k->laddr, &k->lport) && sa_key(&r, k->raddr, &k->rport);
}

static bool str_key(const char *ip, int port, const char *local_ip, int local_port, up_key *k) {
        memset(k, 0, sizeof(*k));
        if (!ip || !local_ip || port <= 0 || port > 65535 || local_port <= 0 || local_port > 65535)
                return false;
        k->family = strchr(ip, ':') ? AF_INET6 : AF_INET;
        if (inet_pton(k->family, ip, k->raddr) != 1 || inet_pton(k->family, local_ip, k->laddr) != 1)
                return false;
        k->rport = htons((uint16_t)port);
        k->lport = htons((uint16_t)local_port);
        return true;
}

static bool key_eq(const up_key *a, const up_key *b) {
        return a->family == b->family && a->lport == b->lport && a->rport == b->rport &&
               memcmp(a->laddr, b->laddr, 16) == 0 && memcmp(a->raddr, b->raddr, 16) == 0;
}

static void up_add(int fd) {
        pthread_mutex_lock(&up_mu);
        if (up_n == up_cap) {
                size_t cap = up_cap ? 2 * up_cap : 64;
                up_sock *n = realloc(up_socks, cap * sizeof(*n));
                if (!n) {
                        pthread_mutex_unlock(&up_mu); /* unknown: its transfers are refused (fresh ones excepted) */
                        return;
                }
                up_socks = n;
                up_cap = cap;
        }
        up_socks[up_n++] = (up_sock){ .fd = fd };
        pthread_mutex_unlock(&up_mu);
}

static void up_remove(int fd) {
        pthread_mutex_lock(&up_mu);
        for (size_t i = 0; i < up_n; i++)
                if (up_socks[i].fd == fd) {
                        up_socks[i] = up_socks[--up_n];
                        break;
                }
        pthread_mutex_unlock(&up_mu);
}

/* The open socket with key k (learning the keys not known yet), or NULL. */
static up_sock *up_find_locked(const up_key *k) {
        for (size_t i = 0; i < up_n; i++)
                if (up_socks[i].known && key_eq(&up_socks[i].key, k))
                        return &up_socks[i];
        for (size_t i = 0; i < up_n; i++)
                if (!up_socks[i].known && (up_socks[i].known = sock_key(up_socks[i].fd, &up_socks[i].key)) &&
                    key_eq(&up_socks[i].key, k))
                        return &up_socks[i];
        return NULL;
}

/* RFC 9110 9.2.2: a request the upstream may repeat without harm. */
static bool method_idempotent(const char *m) {
        static const char *const ok[] = { "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE", NULL };
        for (size_t i = 0; ok[i]; i++)
                if (strcmp(m, ok[i]) == 0)
                        return true;
        return false;
}

/* A second (or later) request for one job: libcurl sends it again because
 * the reused connection it went out on died before a byte of the answer
 * came (or the broker restarts it off another uid's connection).  Safe
 * when no byte of it reached a socket (the connection was already dead:
 * EPIPE, reset), or when the method is idempotent; a POST, PATCH or other
 * method the upstream may have received and acted on is never sent twice
 * (RFC 9110 9.2.2): the tool gets a 502 and decides.  The body goes again
 * from its first byte, or not at all. */
static bool resend_ok(proxy_job *j) {
        long sent = 0;                            /* request bytes written so far, all attempts */

        if (curl_easy_getinfo(j->h, CURLINFO_REQUEST_SIZE, &sent) != CURLE_OK)
                sent = 1;                         /* unknown: as if it went out */
        if (sent > 0 && !method_idempotent(j->method))
                return false;
        return upload_rewind(j);
}

static int on_prereq(void *u, char *ip, char *local_ip, int port, int local_port) {
        proxy_job *j = u;
        uint32_t me = (uint32_t)j->uid + 1;
        up_key k;
        bool ours = false;

        if (j->attempts++ > 0 && !resend_ok(j)) {
                j->replay_refused = true;
                return CURL_PREREQFUNC_ABORT;
        }
        pthread_mutex_lock(&up_mu);
        up_sock *s = str_key(ip, port, local_ip, local_port, &k) ? up_find_locked(&k) : NULL;
        if (s && (s->owner == 0 || s->owner == me || j->fresh)) { /* a fresh one is ours */
                s->owner = me;
                ours = true;
        } else if (!s && j->fresh) {
                ours = true;
        }
        pthread_mutex_unlock(&up_mu);
        if (ours)
                return CURL_PREREQFUNC_OK;
        j->foreign_conn = true;                   /* another uid's (or unknown): job_finish restarts it on a fresh one */
        return CURL_PREREQFUNC_ABORT;
}

/* proxy_loop.c's conn_kill closed the connection behind s (the descriptor
 * stays, an unconnected socket, until libcurl closes it): its key and
 * owner go, so a new connection with the same addresses is never taken
 * for it. */
void proxy_conn_forget(curl_socket_t s) {
        pthread_mutex_lock(&up_mu);
        for (size_t i = 0; i < up_n; i++)
                if (up_socks[i].fd == s) {
                        up_socks[i].known = false;  /* its key is not learnt again: no peer now */
                        up_socks[i].owner = 0;
                        memset(&up_socks[i].key, 0, sizeof(up_socks[i].key));
                }
        pthread_mutex_unlock(&up_mu);
}

/* libcurl closes an upstream socket: it is nobody's now.  No job pointer
 * here (the connection may outlive the job that opened it). */
static int on_closesocket(void *u, curl_socket_t s) {
        (void)u;
        up_remove(s);
        return close(s);
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
        metrics_proxy_done(j->secret, j->status, proxy_now_ns() - j->t0_ns);
        if (!audit_enabled())
                return;                                   /* nothing would be written; no lock taken */
        /* method and path come from the client: not necessarily UTF-8 */
        json_t *o = json_pack("{s:I, s:s, s:s, s:o*, s:o*, s:o*, s:i, s:s, s:I, s:I, s:I, s:i, s:i, s:s, s:s, s:s}",
                              "time", (json_int_t)time(NULL), "socket", j->sandbox[0] ? "sandbox" : j->tcp ? "tcp" : "tools", "route", "proxy.done", "method",
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
        if (j->sandbox[0])
                json_object_set_new(o, "sandbox", json_string(j->sandbox));
        if (j->err[0])
                json_object_set_new(o, "reason", cb_json_string_lossy(j->err));
        if (j->client[0])
                json_object_set_new(o, "client", json_string(j->client));
        if (j->request_id[0])
                json_object_set_new(o, "request_id", json_string(j->request_id));
        (void)audit_emit(o); /* any thread (audit.h): no request waits on this loop for it */
        json_decref(o);
}

/* May the upstream connection of a finished exchange go back to the pool?
 * Only after a response framed by a length or chunked: one without a body
 * by its status (204, 304) or method (HEAD) ends where the upstream says,
 * and bytes it sends after it (late or in the same packet) would be read
 * as the answer to the next request on that connection — another tool's.
 * libcurl 7.88 pools such a connection and reuses it with bytes pending. */
bool proxy_job_reusable(const proxy_job *j) {
        return !j->resp_bad && j->status >= 200 && j->status != 204 && j->status != 304 &&
               strcmp(j->method, "HEAD") != 0 && (j->rframe.ncl || j->rframe.nte);
}

/* The transfer is over (c: its result; its handle already gone): say
 * what failed, answer, audit, drop the loop's reference. */
void proxy_job_finished(proxy_job *j, CURLcode c) {
        if (c == CURLE_OK) {
                if (!redact_push(j, NULL, 0))
                        proxy_job_fail(j, 502, "bad_gateway", "out of memory redacting the response's end");
        } else if (j->refused && !j->headers_done) {
                proxy_job_fail(j, 403, "forbidden", "%s", j->refusal);
        } else if (j->replay_refused && !j->headers_done) {
                proxy_job_fail(j, 502, "bad_gateway",
                               "upstream %s:%u closed a kept-alive connection after the %s request was sent, "
                               "without a byte of answer: not sent again (the upstream may have acted on it)%s%s",
                               j->dest.host, j->dest.port, j->method, j->errbuf[0] ? ": " : "", j->errbuf);
        } else if (j->resp_bad) {
                proxy_job_fail(j, 502, "bad_gateway", "upstream %s:%u answered with %s%s: refused", j->dest.host,
                               j->dest.port, j->resp_bad,
                               j->rframe.coded ? " although asked for identity (it could not be checked for the "
                                                 "secret)" : "");
        } else if (!j->cancelled) {
                int status;
                const char *code = curl_fail_code(c, &status);
                proxy_job_fail(j, status, code, "upstream %s:%u: %s%s%s", j->dest.host, j->dest.port,
                               curl_easy_strerror(c), j->errbuf[0] ? ": " : "", j->errbuf);
        }
        sodium_memzero(j->errbuf, sizeof(j->errbuf));
        pthread_mutex_lock(&j->mu);
        j->done = true;
        proxy_wake_later_locked(j);
        pthread_mutex_unlock(&j->mu);
        audit_done(j);
        __atomic_store_n(&j->finished, true, __ATOMIC_RELEASE);
        proxy_job_unref(j);
}

/* Every option of j's transfer on a fresh (or reset) handle h. */
void proxy_job_setup(proxy_job *j, CURL *h) {
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
        curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, on_prereq);
        curl_easy_setopt(h, CURLOPT_PREREQDATA, j);
        curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_closesocket);
        curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, NULL);
        curl_easy_setopt(h, CURLOPT_SHARE, share);
        /* A connection idle this long is not reused: upstreams close idle
         * ones after a timeout of their own (nginx 75 s, ALBs 60 s, Go 90 s),
         * and one reused as its upstream closes it fails the request, or
         * costs a resend (on_prereq).  Under load connections are reused
         * within milliseconds; after a pause the next request makes a new
         * one (TLS resumed). */
        curl_easy_setopt(h, CURLOPT_MAXAGE_CONN, UPSTREAM_MAX_IDLE);
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
                /* Streamed, framed by the broker: the length MHD framed
                 * the body by (one valid Content-Length), else chunked
                 * (-1); never a length the client merely announced. */
                curl_easy_setopt(h, CURLOPT_POST, 1L);
                /* Never pooled after a body: an upstream may answer without
                 * reading it (Python's http.server does, on every route
                 * that ignores its body), and then reads the body as the
                 * next request on the connection -- a request the tool
                 * wrote in full, completed by the next request's headers
                 * and its injected credential.  Closed, the leftover bytes
                 * meet no credential.  Cost: one connection (TLS
                 * handshake) per request with a body. */
                if (j->expect_body)
                        curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                                 (curl_off_t)(j->expect_body ? j->content_length : 0));
                curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
                curl_easy_setopt(h, CURLOPT_READDATA, j);
                curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
                curl_easy_setopt(h, CURLOPT_SEEKDATA, j);
                if (strcmp(j->method, "POST") != 0)
                        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, j->method);
        } else if (strcmp(j->method, "GET") != 0) {
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, j->method);
        }
}
