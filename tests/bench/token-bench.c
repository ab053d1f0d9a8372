/* SPDX-License-Identifier: Apache-2.0 */
/*
 * token-bench: the measuring half of tests/bench/tokens.sh.  Raw sockets, no
 * client library, so the figures are the daemons' and the kernel's, not
 * libcurl's.
 *
 *   token-bench raw-echo-server PATH
 *        single-threaded epoll loop on a Unix socket: accept, read one
 *        request, write a fixed 100-byte reply, close (the limit: what one
 *        connect-per-request round trip costs with no work behind it)
 *
 *   token-bench mhd-floor-server PATH THREADS [identity]
 *        libmicrohttpd started exactly as credbrokerd starts its tools.sock
 *        server (broker/http/server.c start_one: the same flags, options and
 *        THREADS, a 0666 socket with the same backlog), answering every
 *        request with a fixed 201 and a token-shaped JSON body: no identity,
 *        no policy, no token.  The floor the HTTP library sets under the
 *        token path.
 *
 *   token-bench run KIND PATH CLIENTS SECONDS [MAX_OPS [UID_BASE]]
 *        CLIENTS threads, each looping connect / request / reply / close for
 *        SECONDS (or until MAX_OPS requests were made in all).  KIND:
 *          raw       ~60-byte request, read the reply until EOF
 *          token     HTTP/1.1 POST /v1/token {"secret":"bench","use":"redeem"}
 *                    with Connection: close, read until EOF, require 201
 *          sshagent  SSH2_AGENTC_REQUEST_IDENTITIES, require
 *                    SSH2_AGENT_IDENTITIES_ANSWER
 *        With UID_BASE (root only), thread i switches its own credentials to
 *        uid/gid UID_BASE+i first (the raw setresuid/setresgid syscalls act
 *        on the calling thread only), so each client is its own uid.
 *
 * Output: "key value" lines (ops, seconds, ops_per_s, p50_us, p90_us,
 * p99_us, max_us).  Any failed request (connect error, short reply, a status
 * other than 201 — a 429 included: cheap refusals must not count as work)
 * is printed to stderr and the exit status is 1.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "peer.h"
#include "sender.h"

#define REPLY_MAX  8192
#define WARMUP_OPS 20

enum kind { K_RAW, K_TOKEN, K_SSHAGENT };

static const char raw_request[] = "BENCH-ECHO-REQUEST 0123456789abcdef0123456789abcdef01234567\n";
static const char token_body[] = "{\"secret\":\"bench\",\"use\":\"redeem\"}";
static char token_request[512];
static size_t token_request_len;
static const unsigned char agent_request[5] = { 0, 0, 0, 1, 11 }; /* SSH2_AGENTC_REQUEST_IDENTITIES */

static struct sockaddr_un addr;
static socklen_t addr_len;
static enum kind kind;
static double run_seconds;
static long max_ops;
static long uid_base = -1;
static atomic_long ops_started;
static atomic_int failed;

struct worker {
        pthread_t th;
        int idx;
        uint32_t *lat_ns; /* per-request latency, nanoseconds */
        size_t n, cap;
        struct timespec end;
};

static uint64_t ts_ns(const struct timespec *t) {
        return (uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec;
}

static uint64_t now_ns(void) {
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return ts_ns(&t);
}

static int set_path(const char *path) {
        if (strlen(path) >= sizeof(addr.sun_path)) {
                fprintf(stderr, "token-bench: socket path too long: %s\n", path);
                return -1;
        }
        memset(&addr, 0, sizeof(addr));
        addr.sun_family = AF_UNIX;
        strcpy(addr.sun_path, path);
        addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
        return 0;
}

static int write_all(int fd, const void *p, size_t n) {
        const char *c = p;

        while (n) {
                ssize_t w = write(fd, c, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        return -1;
                c += w;
                n -= (size_t)w;
        }
        return 0;
}

/* Read until EOF (or until want bytes, if want > 0).  Returns bytes read or -1. */
static ssize_t read_reply(int fd, char *buf, size_t cap, size_t want) {
        size_t got = 0;

        for (;;) {
                if (want && got >= want)
                        return (ssize_t)got;
                if (got == cap)
                        return -1;
                ssize_t r = read(fd, buf + got, want ? want - got : cap - got);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -1;
                if (r == 0)
                        return want ? -1 : (ssize_t)got;
                got += (size_t)r;
        }
}

static void fail(int idx, const char *what, const char *detail) {
        int first = atomic_fetch_add(&failed, 1) == 0;

        if (first)
                fprintf(stderr, "token-bench: client %d: %s%s%s\n", idx, what, detail ? ": " : "",
                        detail ? detail : "");
}

/* One request on a fresh connection.  Returns 0, or -1 after reporting. */
static int one_request(int idx) {
        char buf[REPLY_MAX + 1];
        ssize_t n;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0) {
                fail(idx, "socket", strerror(errno));
                return -1;
        }
        if (connect(fd, (const struct sockaddr *)&addr, addr_len) < 0) {
                fail(idx, "connect", strerror(errno));
                close(fd);
                return -1;
        }
        switch (kind) {
        case K_RAW:
                if (write_all(fd, raw_request, sizeof(raw_request) - 1) < 0) {
                        fail(idx, "write", strerror(errno));
                        break;
                }
                n = read_reply(fd, buf, REPLY_MAX, 0);
                if (n != 100) {
                        fail(idx, "raw echo: reply is not 100 bytes", NULL);
                        break;
                }
                close(fd);
                return 0;
        case K_TOKEN:
                if (write_all(fd, token_request, token_request_len) < 0) {
                        fail(idx, "write", strerror(errno));
                        break;
                }
                n = read_reply(fd, buf, REPLY_MAX, 0);
                if (n < 0) {
                        fail(idx, "token: reading the reply", errno ? strerror(errno) : "too long");
                        break;
                }
                buf[n] = 0;
                if (strncmp(buf, "HTTP/1.1 201", 12) != 0 || !strstr(buf, "\"token\":\"cbt_")) {
                        char *eol = strstr(buf, "\r\n\r\n");
                        const char *body = eol ? eol + 4 : "";
                        char line[400];
                        snprintf(line, sizeof(line), "%.*s | %.250s", (int)strcspn(buf, "\r\n"), buf, body);
                        fail(idx, "token: not a 201 with a token", line);
                        break;
                }
                close(fd);
                return 0;
        case K_SSHAGENT:
                if (write_all(fd, agent_request, sizeof(agent_request)) < 0) {
                        fail(idx, "write", strerror(errno));
                        break;
                }
                if (read_reply(fd, buf, REPLY_MAX, 4) != 4) {
                        fail(idx, "ssh-agent: short reply", NULL);
                        break;
                }
                {
                        uint32_t len = (uint32_t)(unsigned char)buf[0] << 24 | (uint32_t)(unsigned char)buf[1] << 16 |
                                       (uint32_t)(unsigned char)buf[2] << 8 | (uint32_t)(unsigned char)buf[3];
                        if (len < 5 || len > REPLY_MAX || read_reply(fd, buf, REPLY_MAX, len) != (ssize_t)len ||
                            buf[0] != 12) {
                                fail(idx, "ssh-agent: not an identities answer", NULL);
                                break;
                        }
                }
                close(fd);
                return 0;
        }
        close(fd);
        return -1;
}

static void *worker_main(void *arg) {
        struct worker *w = arg;

        if (uid_base >= 0) {
                long id = uid_base + w->idx;
                /* Raw syscalls: per thread (glibc's wrappers would change every thread). */
                if (syscall(SYS_setresgid, id, id, id) < 0 || syscall(SYS_setresuid, id, id, id) < 0) {
                        fail(w->idx, "setresuid", strerror(errno));
                        return NULL;
                }
        }
        /* Warm-up: first connections, exe hash cache, page faults.  Not timed. */
        for (int i = 0; i < WARMUP_OPS && !atomic_load(&failed); i++) {
                if (max_ops && atomic_fetch_add(&ops_started, 1) >= max_ops)
                        break;
                if (one_request(w->idx) < 0)
                        return NULL;
        }
        return w;
}

struct shared_start {
        uint64_t t0;
};
static struct shared_start start;
static pthread_barrier_t barrier;

static void *worker_thread(void *arg) {
        struct worker *w = arg;
        uint64_t deadline;

        if (!worker_main(w)) {
                pthread_barrier_wait(&barrier);
                return NULL;
        }
        pthread_barrier_wait(&barrier);
        deadline = start.t0 + (uint64_t)(run_seconds * 1e9);
        for (;;) {
                uint64_t a = now_ns();
                if (a >= deadline || atomic_load(&failed))
                        break;
                if (max_ops && atomic_fetch_add(&ops_started, 1) >= max_ops)
                        break;
                if (one_request(w->idx) < 0)
                        break;
                uint64_t b = now_ns();
                if (w->n == w->cap) {
                        size_t nc = w->cap ? w->cap * 2 : 65536;
                        uint32_t *nl = realloc(w->lat_ns, nc * sizeof(*nl));
                        if (!nl) {
                                fail(w->idx, "out of memory", NULL);
                                break;
                        }
                        w->lat_ns = nl;
                        w->cap = nc;
                }
                w->lat_ns[w->n++] = b - a > UINT32_MAX ? UINT32_MAX : (uint32_t)(b - a);
        }
        clock_gettime(CLOCK_MONOTONIC, &w->end);
        return NULL;
}

static int cmp_u32(const void *a, const void *b) {
        uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

        return x < y ? -1 : x > y;
}

static double pct_us(const uint32_t *v, size_t n, double p) {
        size_t i = (size_t)(p * (double)(n - 1) + 0.5);

        return v[i] / 1000.0;
}

static int run(int argc, char **argv) {
        int clients;
        char *end;

        if (argc < 6 || argc > 8)
                return 2;
        if (!strcmp(argv[2], "raw"))
                kind = K_RAW;
        else if (!strcmp(argv[2], "token"))
                kind = K_TOKEN;
        else if (!strcmp(argv[2], "sshagent"))
                kind = K_SSHAGENT;
        else
                return 2;
        if (set_path(argv[3]) < 0)
                return 1;
        clients = (int)strtol(argv[4], &end, 10);
        if (*end || clients < 1 || clients > 1024)
                return 2;
        run_seconds = strtod(argv[5], &end);
        if (*end || !(run_seconds > 0))
                return 2;
        if (argc > 6) {
                max_ops = strtol(argv[6], &end, 10);
                if (*end || max_ops < 0)
                        return 2;
        }
        if (argc > 7) {
                uid_base = strtol(argv[7], &end, 10);
                if (*end || uid_base < 1 || uid_base > 4000000000L)
                        return 2;
                if (geteuid() != 0) {
                        fprintf(stderr, "token-bench: UID_BASE needs root\n");
                        return 1;
                }
        }
        token_request_len = (size_t)snprintf(token_request, sizeof(token_request),
                                             "POST /v1/token HTTP/1.1\r\nHost: localhost\r\n"
                                             "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                                             "Connection: close\r\n\r\n%s",
                                             strlen(token_body), token_body);

        struct worker *ws = calloc((size_t)clients, sizeof(*ws));
        if (!ws || pthread_barrier_init(&barrier, NULL, (unsigned)clients + 1) != 0) {
                fprintf(stderr, "token-bench: out of memory\n");
                return 1;
        }
        for (int i = 0; i < clients; i++) {
                ws[i].idx = i;
                int e = pthread_create(&ws[i].th, NULL, worker_thread, &ws[i]);
                if (e) {
                        fprintf(stderr, "token-bench: pthread_create: %s\n", strerror(e));
                        return 1;
                }
        }
        /* Everyone has warmed up; the timed phase starts together. */
        start.t0 = now_ns();
        pthread_barrier_wait(&barrier);
        uint64_t t_end = start.t0;
        size_t total = 0;
        for (int i = 0; i < clients; i++) {
                pthread_join(ws[i].th, NULL);
                total += ws[i].n;
                if (ts_ns(&ws[i].end) > t_end)
                        t_end = ts_ns(&ws[i].end);
        }
        if (atomic_load(&failed)) {
                fprintf(stderr, "token-bench: %d request(s) failed (%zu timed requests had succeeded)\n",
                        atomic_load(&failed), total);
                return 1;
        }
        if (!total) {
                fprintf(stderr, "token-bench: no request completed\n");
                return 1;
        }
        uint32_t *all = malloc(total * sizeof(*all));
        if (!all) {
                fprintf(stderr, "token-bench: out of memory\n");
                return 1;
        }
        size_t k = 0;
        for (int i = 0; i < clients; i++) {
                memcpy(all + k, ws[i].lat_ns, ws[i].n * sizeof(*all));
                k += ws[i].n;
                free(ws[i].lat_ns);
        }
        qsort(all, total, sizeof(*all), cmp_u32);
        double secs = (double)(t_end - start.t0) / 1e9;
        printf("ops %zu\n", total);
        printf("warmup_ops %d\n", clients * WARMUP_OPS);
        printf("seconds %.3f\n", secs);
        printf("ops_per_s %.0f\n", (double)total / secs);
        printf("p50_us %.1f\n", pct_us(all, total, 0.50));
        printf("p90_us %.1f\n", pct_us(all, total, 0.90));
        printf("p99_us %.1f\n", pct_us(all, total, 0.99));
        printf("max_us %.1f\n", all[total - 1] / 1000.0);
        printf("stopped_by %s\n", max_ops && atomic_load(&ops_started) >= max_ops ? "max_ops" : "time");
        free(all);
        free(ws);
        return 0;
}

static int echo_server(const char *path) {
        char reply[100];
        struct epoll_event ev, evs[64];
        int lfd, ep;

        memset(reply, 'x', sizeof(reply));
        memcpy(reply, "BENCH-ECHO-REPLY ", 17);
        reply[sizeof(reply) - 1] = '\n';
        if (set_path(path) < 0)
                return 1;
        signal(SIGPIPE, SIG_IGN);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (lfd < 0 || bind(lfd, (const struct sockaddr *)&addr, addr_len) < 0 || listen(lfd, 128) < 0) {
                fprintf(stderr, "token-bench: echo server on %s: %s\n", path, strerror(errno));
                return 1;
        }
        ep = epoll_create1(EPOLL_CLOEXEC);
        ev.events = EPOLLIN;
        ev.data.fd = lfd;
        if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
                fprintf(stderr, "token-bench: epoll: %s\n", strerror(errno));
                return 1;
        }
        for (;;) {
                int n = epoll_wait(ep, evs, 64, -1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        fprintf(stderr, "token-bench: epoll_wait: %s\n", strerror(errno));
                        return 1;
                }
                for (int i = 0; i < n; i++) {
                        int fd = evs[i].data.fd;
                        if (fd == lfd) {
                                int c;
                                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                                        ev.events = EPOLLIN;
                                        ev.data.fd = c;
                                        if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0)
                                                close(c);
                                }
                                continue;
                        }
                        char buf[4096];
                        ssize_t r = read(fd, buf, sizeof(buf));
                        if (r < 0 && errno == EAGAIN)
                                continue;
                        if (r > 0)
                                (void)!write(fd, reply, sizeof(reply));
                        close(fd); /* also leaves the epoll set */
                }
        }
}

/* ---- mhd-floor-server ------------------------------------------------------- */

/* The shape of credbrokerd's 201 to POST /v1/token (40-character token,
 * 28-character accessor); the same two headers. */
static const char floor_body[] = "{\"token\":\"cbt_0123456789abcdefghijABCDEFGHIJ0123456789\","
                                 "\"accessor\":\"cba_0123456789abcdefghijABCD\",\"expires_in\":300}";
static int floor_request_marker;
/* "identity" floor: the same server plus exactly the caller identification
 * the daemon does (broker/identity/, the daemon's own code, called as
 * broker/http/server_conn.c and server_request.c call it): per-message
 * credentials on the listening socket (SO_PASSCRED, SO_PASSPIDFD) read by
 * sender.c's recv() in libmicrohttpd's place; at accept SO_PEERCRED and
 * the account uid (cb_peer_account_uid); per request the one-writer check,
 * the pidfd's pidfs inode (once per connection), the writer's pid claim
 * (cb_peer_writer_trusted), cb_peer_identify_pidfd (current credentials,
 * the executable's stat, its name kept per process, liveness) and the
 * hash from the cache; the SCM_PIDFD closed with the connection.  No
 * policy, no token, no JSON. */
static cb_exe_cache *floor_cache;

typedef struct floor_conn {
        struct ucred cred; /* SO_PEERCRED */
        uid_t acct;
        int fd;
        cb_sender snd;
} floor_conn;

static enum MHD_Result floor_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                    const char *version, const char *upload_data, size_t *upload_data_size,
                                    void **con_cls) {
        struct MHD_Response *resp;
        enum MHD_Result ret;

        (void)cls, (void)url, (void)method, (void)version, (void)upload_data;
        if (!*con_cls) { /* headers: as credbrokerd, answer once the body is in */
                *con_cls = &floor_request_marker;
                return MHD_YES;
        }
        if (*upload_data_size) {
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (floor_cache) {
                const union MHD_ConnectionInfo *si = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
                floor_conn *fc = si ? si->socket_context : NULL;
                unsigned char sha[32];
                cb_peer peer;

                /* server_request.c sender_of(): one writer, credentials on every read */
                if (!fc || fc->snd.err < 0 || fc->snd.reads == 0 || fc->snd.other_pid)
                        return MHD_NO; /* the harness counts the failure */
                if (fc->snd.pidfd >= 0 && !fc->snd.pidfd_ino)
                        fc->snd.pidfd_ino = cb_pidfd_ino(fc->snd.pidfd);
                if (cb_peer_writer_trusted(fc->snd.first.pid, fc->snd.pidfd, fc->snd.pidfd_ino, fc->cred.pid) < 0 ||
                    cb_peer_identify_pidfd(&fc->snd.first, fc->snd.pidfd, fc->snd.pidfd_ino, floor_cache,
                                           CB_PEER_SKIP_HASH, &peer) < 0)
                        return MHD_NO;
                if (!cb_exe_cache_get(floor_cache, &peer.exe_st, sha)) {
                        /* The daemon hashes off the serving thread; the
                         * floor, once, here (then cached). */
                        cb_peer_done(&peer);
                        if (cb_peer_identify_pidfd(&fc->snd.first, fc->snd.pidfd, fc->snd.pidfd_ino, floor_cache, 0,
                                                   &peer) < 0)
                                return MHD_NO;
                }
                cb_peer_done(&peer);
        }
        resp = MHD_create_response_from_buffer(sizeof(floor_body) - 1, (void *)floor_body, MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", "application/json");
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        ret = MHD_queue_response(conn, 201, resp);
        MHD_destroy_response(resp);
        return ret;
}

static void floor_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                            enum MHD_RequestTerminationCode toe) {
        (void)cls, (void)conn, (void)toe;
        *con_cls = NULL;
}

static void floor_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode code) {
        (void)cls;
        if (!floor_cache || code != MHD_CONNECTION_NOTIFY_STARTED) {
                floor_conn *fc = *socket_context;
                if (fc) {
                        cb_sender_untrack(fc->fd, &fc->snd);
                        free(fc);
                }
                *socket_context = NULL;
                return;
        }
        /* As broker/http/server_conn.c: the peer's credentials once per
         * connection, the uid it is charged to, its reads tracked. */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        floor_conn *fc = malloc(sizeof(*fc));

        *socket_context = NULL;
        if (!fc)
                return;
        if (!ci || cb_peer_cred_read(ci->connect_fd, &fc->cred) < 0 || cb_sender_track(ci->connect_fd, &fc->snd) < 0) {
                free(fc);
                return;
        }
        fc->fd = ci->connect_fd;
        fc->acct = cb_peer_account_uid(fc->cred.pid, fc->cred.uid);
        *socket_context = fc;
}

static size_t floor_keep_escapes(void *cls, struct MHD_Connection *c, char *s) {
        (void)cls, (void)c;
        return strlen(s);
}

static int mhd_floor_server(const char *path, const char *threads_arg, bool identity) {
        /* Keep in step with broker/http/server.c start_one() and broker/main.c
         * listen_unix(): the same flags, options and listen backlog. */
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ERROR_LOG |
                         MHD_ALLOW_SUSPEND_RESUME;
        struct MHD_Daemon *d;
        char *end;
        long threads = strtol(threads_arg, &end, 10);
        sigset_t sigs;
        int fd, sig;

        if (*end || threads < 1 || threads > 64)
                return 2;
        if (set_path(path) < 0)
                return 1;
        if (identity && !(floor_cache = cb_exe_cache_new(256))) {
                fprintf(stderr, "token-bench: out of memory\n");
                return 1;
        }
        /* The handler allocates nothing, so each connection's 32 KiB pool
         * is the server thread's arena's top chunk: freed, the arena trims
         * it (madvise) and the next connection faults its pages in again --
         * 1.4-3 page faults per request, a malloc artefact the daemon (whose
         * requests allocate) does not pay.  No trimming: the floor is the
         * library's cost. */
        mallopt(M_TRIM_THRESHOLD, 64 << 20);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        (void)unlink(path);
        if (fd < 0 || bind(fd, (const struct sockaddr *)&addr, addr_len) < 0 || chmod(path, 0666) < 0 ||
            listen(fd, 128) < 0) {
                fprintf(stderr, "token-bench: mhd floor server on %s: %s\n", path, strerror(errno));
                return 1;
        }
        if (identity) {
                /* As broker/http/server.c server_start(). */
                bool have_pidfd = false, norights = false;
                if (cb_sender_init(65536) < 0 || cb_sender_listen(fd, &have_pidfd, &norights) < 0) {
                        fprintf(stderr, "token-bench: per-message credentials on %s failed\n", path);
                        return 1;
                }
        }
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* the server threads inherit the mask */
        d = MHD_start_daemon(flags, 0, NULL, NULL, floor_handle, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
                             MHD_OPTION_NOTIFY_COMPLETED, floor_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION,
                             floor_conn_notify, NULL, MHD_OPTION_UNESCAPE_CALLBACK, floor_keep_escapes, NULL,
                             MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                             MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
                             threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (unsigned)threads,
                             MHD_OPTION_END);
        if (!d) {
                fprintf(stderr, "token-bench: cannot start libmicrohttpd on %s\n", path);
                close(fd);
                return 1;
        }
        while (sigwait(&sigs, &sig) != 0)
                ;
        MHD_stop_daemon(d);
        cb_exe_cache_free(floor_cache);
        close(fd);
        (void)unlink(path);
        return 0;
}

int main(int argc, char **argv) {
        int r = 2;

        if (argc == 3 && !strcmp(argv[1], "raw-echo-server"))
                r = echo_server(argv[2]);
        else if (argc == 4 && !strcmp(argv[1], "mhd-floor-server"))
                r = mhd_floor_server(argv[2], argv[3], false);
        else if (argc == 5 && !strcmp(argv[1], "mhd-floor-server") && !strcmp(argv[4], "identity"))
                r = mhd_floor_server(argv[2], argv[3], true);
        else if (argc >= 2 && !strcmp(argv[1], "run"))
                r = run(argc, argv);
        if (r == 2)
                fprintf(stderr, "usage: token-bench raw-echo-server PATH\n"
                                "       token-bench mhd-floor-server PATH THREADS [identity]\n"
                                "       token-bench run raw|token|sshagent PATH CLIENTS SECONDS [MAX_OPS [UID_BASE]]\n");
        return r;
}
