/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proxy-floor: the floor under tests/bench/proxy.sh's credbroker figures.
 *
 *   proxy-floor LISTEN_PORT UPSTREAM_URL THREADS  < HEADER-LINE
 *
 * HEADER (one "Name: value" line, the injected credential) comes on stdin,
 * never in argv.
 * The smallest reverse proxy built the way credbrokerd builds its TCP proxy
 * (broker/http/server.c start_one and server_start, broker/proxy/proxy_loop.c,
 * broker/proxy/proxy_conn.c, broker/proxy/proxy.c proxy_job_setup), with nothing of
 * the broker in it: no token, no policy, no SSRF check, no redaction, no
 * audit.  What libmicrohttpd and libcurl alone cost in that design.
 *
 *   - one listening socket on 127.0.0.1:LISTEN_PORT (as main.c
 *     listen_loopback: SO_REUSEADDR, backlog 128); THREADS loops, each a
 *     thread with its own epoll, its own libmicrohttpd daemon without a
 *     thread of its own on a dup of the listening socket (start_one's
 *     flags and options, CB_CONN_MAX / THREADS connections), MHD's epoll
 *     fd inside the loop's epoll, driven with MHD_run;
 *   - its own CURLM driven by curl_multi_socket_action (socket and timer
 *     callbacks on the same epoll), easy handles kept and curl_easy_reset
 *     (64 per loop), the daemon's essential transfer options;
 *   - GET /v1/proxy/bench/<rest>: on the final access-handler call the
 *     transfer to UPSTREAM_URL<rest> (query dropped) starts, with HEADER
 *     added, and the connection is suspended; when curl is done, it is
 *     resumed and answered once, with the upstream's status and body (at
 *     most 1 MiB: 502 above).  Other paths 404, other methods 405.
 *
 * SIGTERM or SIGINT: a clean exit (transfers cut, daemons stopped).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <microhttpd.h>

#define PREFIX       "/v1/proxy/bench/"
#define BODY_MAX     (1024 * 1024)     /* a bigger answer is a 502 */
#define URL_MAX      8192
#define HANDLES_KEPT 64                /* as proxy_loop.c */
#define LOOPS_MAX    64
#define CONN_MAX     4096              /* broker/daemon.h CB_CONN_MAX, shared by the loops */
#define MAX_JOBS     512L              /* broker/proxy/proxy_job.h PROXY_MAX_JOBS: CURLMOPT_MAXCONNECTS */

#define EV_CURL 0u
#define EV_WAKE 1u
#define EV_MHD  2u
#define EV_DATA(kind, fd) (((uint64_t)(kind) << 32) | (uint32_t)(fd))

typedef struct loop {
        pthread_t thread;
        struct MHD_Daemon *d;
        CURLM *multi;
        int ep, wake_fd;
        uint64_t curl_due_ns;          /* curl's one-shot timer, 0: none */
        CURL *kept[HANDLES_KEPT];
        size_t n_kept;
        unsigned n_done;               /* transfers finished in this pass: resume, run MHD again */
        struct req *parked;            /* requests whose transfer runs (connection suspended) */
} loop;

/* One proxied request; its loop thread's only. */
typedef struct req {
        loop *l;
        struct MHD_Connection *conn;
        CURL *h;                       /* in the multi handle (and on l->parked) while set */
        struct req *prev, *next;       /* on l->parked */
        bool started, done, too_big;
        CURLcode rc;
        long status;                   /* the upstream's */
        char *body;
        size_t len, cap;
} req;

static char upstream[URL_MAX];
static struct curl_slist *headers;
static loop loops[LOOPS_MAX];
static unsigned n_loops;
static bool quit;                      /* set by main (atomic), read by the loops after a wake */

static uint64_t now_ns(void) {
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void handle_put(loop *l, CURL *h) {
        if (l->n_kept < HANDLES_KEPT) {
                curl_easy_reset(h);
                l->kept[l->n_kept++] = h;
        } else {
                curl_easy_cleanup(h);
        }
}

/* The transfer is over: out of the multi handle, handle kept. */
static void transfer_end(req *r) {
        loop *l = r->l;

        if (!r->h)
                return;
        curl_multi_remove_handle(l->multi, r->h);
        handle_put(l, r->h);
        r->h = NULL;
        if (r->prev)
                r->prev->next = r->next;
        else
                l->parked = r->next;
        if (r->next)
                r->next->prev = r->prev;
        r->prev = r->next = NULL;
}

static size_t on_write(char *p, size_t size, size_t n, void *u) {
        req *r = u;
        size_t k = size * n;

        if (r->len + k > BODY_MAX) {
                r->too_big = true;
                return 0;                                 /* aborts the transfer */
        }
        if (r->len + k > r->cap) {
                size_t nc = r->cap ? r->cap : 16 * 1024; /* as proxy.c push() */
                while (nc < r->len + k)
                        nc *= 2;
                char *nb = realloc(r->body, nc);
                if (!nb)
                        return 0;
                r->body = nb;
                r->cap = nc;
        }
        memcpy(r->body + r->len, p, k);
        r->len += k;
        return k;
}

/* The options of broker/proxy/proxy.c proxy_job_setup that apply to a plain
 * HTTP GET (no SSRF socket callback, no share, no progress callback, no
 * header parsing: the broker's own work). */
static void transfer_setup(req *r, CURL *h, const char *url) {
        curl_easy_setopt(h, CURLOPT_PRIVATE, r);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_PROXY, "");
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 300L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 3600L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *msg) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(msg), (void *)msg, MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret;

        if (!resp)
                return MHD_NO;
        ret = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* The final call: start the transfer and park the connection. */
static enum MHD_Result start(req *r, const char *url) {
        char full[URL_MAX];
        loop *l = r->l;
        CURL *h;

        if ((size_t)snprintf(full, sizeof(full), "%s%s", upstream, url + strlen(PREFIX)) >= sizeof(full))
                return reply(r->conn, 414, "URI too long\n");
        h = l->n_kept ? l->kept[--l->n_kept] : curl_easy_init();
        if (!h)
                return reply(r->conn, 500, "libcurl: no handle\n");
        transfer_setup(r, h, full);
        if (curl_multi_add_handle(l->multi, h) != CURLM_OK) {
                handle_put(l, h);
                return reply(r->conn, 500, "libcurl: cannot start the transfer\n");
        }
        r->h = h;
        r->started = true;
        r->next = l->parked;
        if (r->next)
                r->next->prev = r;
        l->parked = r;
        MHD_suspend_connection(r->conn);
        return MHD_YES;
}

/* Called again once the loop resumed the connection: one answer. */
static enum MHD_Result answer(req *r) {
        struct MHD_Response *resp;
        enum MHD_Result ret;

        if (r->too_big)
                return reply(r->conn, 502, "upstream answer above 1 MiB\n");
        if (r->rc != CURLE_OK)
                return reply(r->conn, 502, "upstream request failed\n");
        resp = MHD_create_response_from_buffer(r->len, r->len ? r->body : (void *)"",
                                               r->len ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        if (r->len)
                r->body = NULL;                           /* the response frees it */
        ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
        MHD_destroy_response(resp);
        return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size,
                              void **con_cls) {
        req *r = *con_cls;

        (void)version, (void)upload_data;
        if (!r) {                                         /* headers in: as the daemon, answer once the body is */
                if (!(r = calloc(1, sizeof(*r))))
                        return MHD_NO;
                r->l = cls;
                r->conn = conn;
                *con_cls = r;
                return MHD_YES;
        }
        if (*upload_data_size) {
                *upload_data_size = 0;                    /* not forwarded: GET only */
                return MHD_YES;
        }
        if (r->done)
                return answer(r);
        if (r->started)
                return MHD_YES;
        if (strcmp(method, "GET") != 0)
                return reply(conn, 405, "GET only\n");
        if (strncmp(url, PREFIX, strlen(PREFIX)) != 0)
                return reply(conn, 404, "not under " PREFIX "\n");
        return start(r, url);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
        req *r = *con_cls;

        (void)cls, (void)conn, (void)toe;
        if (!r)
                return;
        transfer_end(r);                                  /* the client left mid-transfer */
        free(r->body);
        free(r);
        *con_cls = NULL;
}

static void conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode code) {
        (void)cls;
        *socket_context = NULL;
        if (code != MHD_CONNECTION_NOTIFY_STARTED)
                return;
        /* As server_conn.c conn_notify on the TCP listener (its peer lookup aside). */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        int one = 1;
        if (ci)
                (void)setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static size_t keep_escapes(void *cls, struct MHD_Connection *c, char *s) {
        (void)cls, (void)c;
        return strlen(s);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp) {
        loop *l = userp;
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
                        return -1;
        }
        if (!socketp)
                curl_multi_assign(l->multi, s, l);
        return 0;
}

static int on_timer(CURLM *m, long ms, void *userp) {
        loop *l = userp;

        (void)m;
        l->curl_due_ns = ms < 0 ? 0 : now_ns() + (uint64_t)ms * 1000000u;
        return 0;
}

/* Finished transfers: status kept, handle back, connection resumed. */
static void finish_done(loop *l) {
        CURLMsg *m;
        int left;

        while ((m = curl_multi_info_read(l->multi, &left))) {
                req *r = NULL;

                if (m->msg != CURLMSG_DONE)
                        continue;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
                if (!r)
                        continue;
                r->rc = m->data.result;
                curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
                transfer_end(r);                          /* m is invalid from here */
                if (r->status < 200 || r->status > 599)
                        r->rc = CURLE_WEIRD_SERVER_REPLY;
                r->done = true;
                l->n_done++;
                MHD_resume_connection(r->conn);
        }
}

static void *loop_main(void *arg) {
        loop *l = arg;
        struct epoll_event evs[64];
        int running;

        for (;;) {
                int timeout = 1000, n;
                bool mhd_due = false, mhd_ready = false;
                MHD_UNSIGNED_LONG_LONG mt;

                if (l->curl_due_ns) {
                        uint64_t now = now_ns();
                        uint64_t left = l->curl_due_ns > now ? (l->curl_due_ns - now + 999999u) / 1000000u : 0;
                        if (left < (uint64_t)timeout)
                                timeout = (int)left;
                }
                if (MHD_get_timeout(l->d, &mt) == MHD_YES && mt <= (MHD_UNSIGNED_LONG_LONG)timeout) {
                        timeout = (int)mt;
                        mhd_due = true;
                }
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
                if (__atomic_load_n(&quit, __ATOMIC_ACQUIRE))
                        break;
                if (mhd_ready || mhd_due)
                        MHD_run(l->d);                    /* may start transfers (curl's timer due now) */
                if (l->curl_due_ns && now_ns() >= l->curl_due_ns) {
                        l->curl_due_ns = 0;
                        curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
                }
                l->n_done = 0;
                finish_done(l);
                if (l->n_done)
                        MHD_run(l->d);                    /* answer what was just resumed, this pass */
        }
        /* Quit: MHD_stop_daemon panics on a suspended connection, so every
         * parked one is cut and resumed first (the stop closes it,
         * completed() frees its request). */
        while (l->parked) {
                req *r = l->parked;
                transfer_end(r);
                r->rc = CURLE_ABORTED_BY_CALLBACK;
                r->done = true;
                MHD_resume_connection(r->conn);
        }
        MHD_stop_daemon(l->d);
        l->d = NULL;
        while (l->n_kept)
                curl_easy_cleanup(l->kept[--l->n_kept]);
        return NULL;
}

static int listen_tcp(const char *port_arg) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        char *end;
        long port = strtol(port_arg, &end, 10);
        int one = 1, fd;

        if (*end || port < 1 || port > 65535) {
                fprintf(stderr, "proxy-floor: bad port '%s'\n", port_arg);
                return -1;
        }
        a.sin_port = htons((uint16_t)port);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 128) < 0) {
                fprintf(stderr, "proxy-floor: 127.0.0.1:%ld: %s\n", port, strerror(errno));
                close(fd);
                return -1;
        }
        return fd;
}

/* A loop: its daemon on fd (MHD closes it at stop), epoll, eventfd, CURLM. */
static int loop_init(loop *l, int fd, unsigned conn_limit) {
        unsigned flags = MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
        const union MHD_DaemonInfo *di;
        struct epoll_event ev = { .events = EPOLLIN };

        l->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, l, MHD_OPTION_LISTEN_SOCKET, fd,
                                MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_NOTIFY_CONNECTION,
                                conn_notify, NULL, MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL,
                                MHD_OPTION_CONNECTION_LIMIT, conn_limit, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_END);
        if (!l->d || !(di = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_EPOLL_FD)))
                return -1;
        l->ep = epoll_create1(EPOLL_CLOEXEC);
        l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->ep < 0 || l->wake_fd < 0)
                return -1;
        ev.data.u64 = EV_DATA(EV_WAKE, l->wake_fd);
        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0)
                return -1;
        ev.data.u64 = EV_DATA(EV_MHD, di->epoll_fd);
        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, di->epoll_fd, &ev) < 0)
                return -1;
        if (!(l->multi = curl_multi_init()))
                return -1;
        curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
        curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
        curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, on_timer);
        curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
        curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, MAX_JOBS);
        curl_multi_setopt(l->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
        return 0;
}

int main(int argc, char **argv) {
        sigset_t sigs;
        char *end;
        long threads;
        int lfd, sig, r = 1;
        unsigned started = 0;
        struct curl_slist *hl;
        char header[4096];

        if (argc != 4) {
                fprintf(stderr, "usage: proxy-floor LISTEN_PORT UPSTREAM_URL THREADS  < HEADER-LINE\n");
                return 2;
        }
        if (!fgets(header, sizeof(header), stdin)) {
                fprintf(stderr, "proxy-floor: no header line on stdin\n");
                return 2;
        }
        header[strcspn(header, "\n")] = '\0';
        threads = strtol(argv[3], &end, 10);
        if (*end || threads < 1 || threads > LOOPS_MAX) {
                fprintf(stderr, "proxy-floor: THREADS: 1-%d\n", LOOPS_MAX);
                return 2;
        }
        if (strlen(argv[2]) >= sizeof(upstream) / 2 || strchr(header, '\r') || !strchr(header, ':')) {
                fprintf(stderr, "proxy-floor: UPSTREAM_URL too long or HEADER not one 'Name: value' line\n");
                return 2;
        }
        snprintf(upstream, sizeof(upstream), "%s", argv[2]);
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return 1;
        /* The daemon's extra request headers (proxy_route.c), the injected one first. */
        hl = curl_slist_append(NULL, header);
        hl = hl ? curl_slist_append(hl, "Accept-Encoding: identity") : NULL;
        hl = hl ? curl_slist_append(hl, "Expect:") : NULL;
        if (!(headers = hl))
                return 1;
        signal(SIGPIPE, SIG_IGN);
        if ((lfd = listen_tcp(argv[1])) < 0)
                return 1;
        n_loops = (unsigned)threads;
        for (unsigned i = 0; i < n_loops; i++) {
                int fd = i == 0 ? lfd : fcntl(lfd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0 || loop_init(&loops[i], fd, CONN_MAX / n_loops) < 0) {
                        fprintf(stderr, "proxy-floor: cannot start loop %u\n", i);
                        goto out;
                }
        }
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);          /* the loops inherit the mask */
        for (; started < n_loops; started++)
                if (pthread_create(&loops[started].thread, NULL, loop_main, &loops[started]) != 0)
                        goto out;
        fprintf(stderr, "proxy-floor: 127.0.0.1:%s -> %s, %u loops\n", argv[1], upstream, n_loops);
        while (sigwait(&sigs, &sig) != 0)
                ;
        r = 0;
out:
        __atomic_store_n(&quit, true, __ATOMIC_RELEASE);
        for (unsigned i = 0; i < started; i++) {
                uint64_t one = 1;
                (void)!write(loops[i].wake_fd, &one, sizeof(one));
        }
        for (unsigned i = 0; i < started; i++)
                pthread_join(loops[i].thread, NULL);
        for (unsigned i = 0; i < n_loops; i++) {
                if (loops[i].d)
                        MHD_stop_daemon(loops[i].d);      /* never ran */
                if (loops[i].multi)
                        curl_multi_cleanup(loops[i].multi);
                if (loops[i].ep > 0)
                        close(loops[i].ep);
                if (loops[i].wake_fd > 0)
                        close(loops[i].wake_fd);
        }
        curl_slist_free_all(headers);
        curl_global_cleanup();
        return r;
}
