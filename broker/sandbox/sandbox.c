/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sandbox hand-over and table (sandbox.h has the contract).
 *
 * The wire, on sandbox.sock: the launcher sends one line of JSON,
 *   {"client": "NAME" | "", "cmd": "what it runs (display only)"}\n
 * with the listening socket attached (SCM_RIGHTS, exactly one descriptor,
 * in the same sendmsg as the line's first byte), and reads one line back:
 *   {"sandbox": "sb_...", "listen": "127.0.0.1:PORT"}\n   or
 *   {"error": "code", "message": "..."}\n
 * then keeps the connection open for the sandbox's life.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "error.h"
#include "http1.h"
#include "log.h"
#include "peer.h"
#include "sandbox.h"
#include "sandbox_internal.h"

#define HANDSHAKE_TIMEOUT_MS 5000

typedef struct slot {
        pthread_mutex_t cmu;  /* guards cfd[] and nconn */
        int cfd[CB_SANDBOX_CONNS]; /* connections whose threads run (-1: free) */
        unsigned nconn;
        void *handle;         /* the proxy's server for it */
        bool used;            /* a handler thread owns it */
        bool live;            /* registered: listed, served */
        bool authorized;      /* its launcher passed the policy (until then: pending) */
        uid_t uid;            /* whom it is charged to (cb_peer_account_uid) */
        int conn;             /* the launcher's connection */
        pthread_t thread;
        cb_sandbox sb;
} slot;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static slot slots[CB_SANDBOX_MAX];
static cb_sandbox_ops ops;
static int listen_fd = -1, stop_fd = -1;
static pthread_t acceptor;
static bool running, stopping;

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void reply(int fd, json_t *o) {
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

        if (s) {
                size_t n = strlen(s);
                s[n] = '\n'; /* json_dumps leaves room for the NUL: reuse it */
                (void)send(fd, s, n + 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                free(s);
        }
        json_decref(o);
}

static void reply_err(int fd, const char *code, const char *msg) {
        reply(fd, json_pack("{s:s, s:s}", "error", code, "message", msg));
}

/* Read the request line and the descriptor sent with it. */
static int read_request(int fd, char *buf, size_t cap, int *ret_fd) {
        size_t n = 0;
        uint64_t deadline = now_ms() + HANDSHAKE_TIMEOUT_MS;

        *ret_fd = -1;
        while (n < cap - 1) {
                union {
                        struct cmsghdr align;
                        char b[CMSG_SPACE(sizeof(int))];
                } ctl;
                struct iovec iov = { .iov_base = buf + n, .iov_len = cap - 1 - n };
                struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                                    .msg_controllen = sizeof(ctl.b) };
                struct pollfd pf = { .fd = fd, .events = POLLIN };
                uint64_t now = now_ms();
                if (now >= deadline || poll(&pf, 1, (int)(deadline - now)) <= 0)
                        return cb_error_set(-ETIMEDOUT, "no complete request within %d ms", HANDSHAKE_TIMEOUT_MS);
                ssize_t k = recvmsg(fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (k <= 0)
                        return cb_error_set(k < 0 ? -errno : -ECONNRESET, "the launcher went away");
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
                        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                                continue;
                        size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < nfd; i++) {
                                int x;
                                memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                                if (*ret_fd < 0 && n == 0 && i == 0)
                                        *ret_fd = x;
                                else
                                        close(x); /* this thread's own: only its launcher waits */
                        }
                }
                if (m.msg_flags & MSG_CTRUNC)
                        return cb_error_set(-EPROTO, "more than one descriptor sent");
                n += (size_t)k;
                buf[n] = '\0';
                if (memchr(buf, '\n', n))
                        return 0;
        }
        return cb_error_set(-E2BIG, "request longer than %zu bytes", cap - 1);
}

/* The descriptor: a listening IPv4 TCP socket on 127.0.0.1, elsewhere. */
static int check_listener(int fd, char *desc, size_t cap) {
        struct stat st;
        int v = 0;
        socklen_t vl = sizeof(v);
        struct sockaddr_in a;
        socklen_t al = sizeof(a);
        int r;

        if (fd < 0)
                return cb_error_set(-EBADF, "no listening socket was sent (SCM_RIGHTS with the request)");
        if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
                return cb_error_set(-ENOTSOCK, "the descriptor sent is not a socket");
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &vl) < 0 || v != AF_INET)
                return cb_error_set(-EAFNOSUPPORT, "the socket sent is not AF_INET");
        vl = sizeof(v);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &vl) < 0 || v != SOCK_STREAM)
                return cb_error_set(-EPROTOTYPE, "the socket sent is not a stream socket");
        vl = sizeof(v);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) < 0 || v != 1)
                return cb_error_set(-EINVAL, "the socket sent is not listening");
        if (getsockname(fd, (struct sockaddr *)&a, &al) < 0 || a.sin_family != AF_INET ||
            a.sin_addr.s_addr != htonl(INADDR_LOOPBACK))
                return cb_error_set(-EADDRNOTAVAIL, "the socket sent is not bound to 127.0.0.1");
        r = cb_sandbox_listener_foreign(fd);
        if (r < 0)
                return r;
        snprintf(desc, cap, "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
        return 0;
}

static void audit_sandbox(const char *type, const cb_sandbox *sb, const char *decision, const char *reason) {
        json_t *o = json_pack("{s:s, s:I, s:s, s:s, s:I, s:I, s:s, s:s, s:s}", "type", type, "time",
                              (json_int_t)time(NULL), "socket", "sandbox", "id", sb->id, "uid", (json_int_t)sb->uid,
                              "pid", (json_int_t)sb->launcher_pid, "client", sb->client, "cmd", sb->cmd, "decision",
                              decision);
        if (!o)
                return;
        if (sb->listen[0])
                json_object_set_new(o, "listen", json_string(sb->listen));
        if (reason)
                json_object_set_new(o, "reason", json_string(reason));
        if (strcmp(type, "sandbox_close") == 0) {
                json_object_set_new(o, "connections",
                                    json_integer((json_int_t)__atomic_load_n(&sb->connections, __ATOMIC_RELAXED)));
                json_object_set_new(o, "refused",
                                    json_integer((json_int_t)__atomic_load_n(&sb->refused, __ATOMIC_RELAXED)));
                json_object_set_new(o, "leaks",
                                    json_integer((json_int_t)__atomic_load_n(&sb->leaks, __ATOMIC_RELAXED)));
        }
        if (ops.audit)
                ops.audit(o);
        json_decref(o);
}

struct cb_matcher *cb_sandbox_matcher(void) {
        return ops.matcher ? ops.matcher() : NULL;
}

void cb_sandbox_audit(json_t *o) {
        if (ops.audit)
                ops.audit(o);
}

/* The client's egress.allow, and, when the launcher gave --allow-host,
 * one of those too: the launcher can narrow its policy, never widen it. */
bool cb_sandbox_egress_allows(const cb_sandbox *sb, const char *host, unsigned port) {
        if (!ops.egress_allows || !ops.egress_allows(sb->client, host, port))
                return false;
        if (sb->n_allow == 0)
                return true;
        size_t hl = strlen(host);
        for (unsigned i = 0; i < sb->n_allow; i++) {
                const char *a = sb->allow[i], *colon = strrchr(a, ':');
                size_t al = colon ? (size_t)(colon - a) : strlen(a);
                if (al == hl && strncasecmp(a, host, hl) == 0 &&
                    (!colon || strtoul(colon + 1, NULL, 10) == port))
                        return true;
        }
        return false;
}

void cb_sandbox_note_refusal(cb_sandbox *sb, const char *method, const char *route, unsigned status,
                             const char *reason) {
        if (__atomic_fetch_add(&sb->refused, 1, __ATOMIC_RELAXED) != 0 || !ops.alert)
                return; /* coalesced: counted into sandbox_close */
        if (!sb->alert_on_deny)
                return; /* the client's egress.alert_on_deny is false (at the sandbox's start) */
        json_t *ev = json_pack("{s:s, s:I, s:s, s:s, s:I, s:s}", "sandbox", sb->id, "uid", (json_int_t)sb->uid,
                               "client", sb->client, "cmd", sb->cmd, "status", (json_int_t)status, "note",
                               "the first refusal of this sandbox; later ones are counted in its sandbox_close "
                               "audit record (\"refused\")");
        if (!ev)
                return;
        /* Peer-supplied text: kept only if it is clean UTF-8 (json_string). */
        json_t *m = method ? json_string(method) : NULL, *rt = route ? json_string(route) : NULL,
               *why = reason ? json_string(reason) : NULL;
        if (m)
                json_object_set_new(ev, "method", m);
        if (rt)
                json_object_set_new(ev, "route", rt);
        if (why)
                json_object_set_new(ev, "reason", why);
        ops.alert("egress_denied", ev);
        json_decref(ev);
}

void cb_sandbox_note_leak(cb_sandbox *sb, const char *route, unsigned status, const char *reason) {
        __atomic_fetch_add(&sb->refused, 1, __ATOMIC_RELAXED);
        if (__atomic_fetch_add(&sb->leaks, 1, __ATOMIC_RELAXED) != 0 || !ops.alert)
                return; /* coalesced per sandbox: counted into sandbox_close ("leaks") */
        json_t *ev = json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:s}", "source", "sandbox_leak_guard", "sandbox", sb->id,
                               "uid", (json_int_t)sb->uid, "client", sb->client, "cmd", sb->cmd, "status",
                               (json_int_t)status, "note",
                               "the first request of this sandbox refused by the outbound leak guard; later ones "
                               "are counted in its sandbox_close audit record (\"leaks\")");
        if (!ev)
                return;
        json_t *rt = route ? json_string(route) : NULL, *why = reason ? json_string(reason) : NULL;
        if (rt)
                json_object_set_new(ev, "route", rt);
        if (why)
                json_object_set_new(ev, "reason", why);
        ops.alert("leak", ev);
        json_decref(ev);
}

bool cb_sandbox_refusal_quiet(const cb_sandbox *sb) {
        return ops.refusal_quiet && ops.refusal_quiet(sb->acct, sb->uid);
}

/* One connection of a sandbox's listener: CONNECT is a tunnel, anything
 * else the proxy's.  Its own thread: peeking and tunnelling block. */
typedef struct conn_arg {
        slot *s;
        int fd, ix;
} conn_arg;

/* Is the request on fd a plain-HTTP absolute-form one ("METHOD http://...")
 * without Proxy-Authorization (a token: the injection proxy's forward
 * form)?  Peeks, never consumes, until the head is complete, woken only
 * when more bytes came (SO_RCVLOWAT).  The head's length, or 0: hand the
 * connection to the proxy's server (decided as soon as the target is seen
 * not to start with "http://"). */
static size_t forward_head(int fd, uint64_t deadline) {
        char *buf = malloc(CB_H1_HEAD_MAX);
        size_t n = 0, hl = 0;
        int one = 1;

        if (!buf)
                return 0;
        for (;;) {
                ssize_t k = recv(fd, buf, CB_H1_HEAD_MAX, MSG_PEEK | MSG_DONTWAIT);
                if (k > 0)
                        n = (size_t)k;
                const char *sp = memchr(buf, ' ', n);
                if (sp) {
                        size_t t = (size_t)(sp + 1 - buf), avail = n - t;
                        /* http:// is forwarded; https:// in absolute form is refused there (CONNECT). */
                        if (strncasecmp(buf + t, "http://", avail < 7 ? avail : 7) != 0 &&
                            strncasecmp(buf + t, "https://", avail < 8 ? avail : 8) != 0)
                                break; /* origin-form (or anything else): the proxy's */
                } else if (n >= 32) {
                        break;
                }
                if ((hl = cb_h1_head_end(buf, n)) || n == CB_H1_HEAD_MAX || k == 0 || (k < 0 && errno != EAGAIN))
                        break;
                /* A head ended by bare LFs is forward.c's to refuse (400), not
                 * the HTTP server's to read leniently. */
                const char *ll = memmem(buf, n, "\n\n", 2);
                if (ll) {
                        hl = (size_t)(ll - buf) + 2;
                        break;
                }
                int lowat = (int)n + 1;
                (void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
                struct pollfd pf = { .fd = fd, .events = POLLIN | POLLRDHUP };
                uint64_t now = now_ms();
                if (now >= deadline || poll(&pf, 1, (int)(deadline - now)) <= 0)
                        break;
                if ((pf.revents & (POLLHUP | POLLERR | POLLNVAL)) && !(pf.revents & POLLIN))
                        break;
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
        /* A broker token rides in Proxy-Authorization: the injection proxy's. */
        for (size_t i = 0; hl && i + 22 <= hl; i++)
                if (buf[i] == '\n' && strncasecmp(buf + i + 1, "proxy-authorization:", 20) == 0)
                        hl = 0;
        sodium_memzero(buf, CB_H1_HEAD_MAX); /* a head may hold a token or a value */
        free(buf);
        return hl;
}

static void *conn_main(void *arg) {
        conn_arg *a = arg;
        slot *s = a->s;
        char peek[8];
        ssize_t n = 0;
        uint64_t deadline = now_ms() + HANDSHAKE_TIMEOUT_MS * 2;
        bool tunnel = false, handed = false;

        /* Woken only once 8 bytes are there (or the peer hangs up, or
         * teardown shuts the socket down): a client sending a prefix of
         * "CONNECT " a byte at a time costs a wake-up per byte, never a
         * spin.  Put back to 1 before the connection is handed on. */
        int lowat = (int)sizeof(peek), one = 1;
        (void)setsockopt(a->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
        for (;;) {
                struct pollfd pf = { .fd = a->fd, .events = POLLIN | POLLRDHUP };
                uint64_t now = now_ms();
                if (now >= deadline || poll(&pf, 1, (int)(deadline - now)) <= 0)
                        break;
                n = recv(a->fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
                if (n <= 0 && !(n < 0 && errno == EAGAIN))
                        break;
                if (n > 0 && ((size_t)n == sizeof(peek) || memcmp(peek, "CONNECT ", (size_t)n) != 0)) {
                        tunnel = (size_t)n == sizeof(peek) && memcmp(peek, "CONNECT ", 8) == 0;
                        handed = !tunnel;
                        break;
                }
                if (pf.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
                        break; /* a prefix of "CONNECT ", then nothing more will come */
                usleep(1000); /* woken early (a kernel that ignores SO_RCVLOWAT here): wait for the rest */
        }
        (void)setsockopt(a->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
        size_t fwd_head = handed ? forward_head(a->fd, deadline) : 0;
        if (tunnel) {
                __atomic_add_fetch(&s->sb.tunnels, 1, __ATOMIC_RELAXED);
                cb_sandbox_tunnel(&s->sb, a->fd);
        } else if (fwd_head) {
                handed = false;
                cb_sandbox_forward(&s->sb, a->fd, fwd_head);
        }
        /* Out of the table first (teardown must not shut down a number
         * the server may have closed and reused), still counted until the
         * server has it: teardown waits for the count before it stops the
         * server. */
        pthread_mutex_lock(&s->cmu);
        s->cfd[a->ix] = -1;
        pthread_mutex_unlock(&s->cmu);
        if (handed)
                (void)ops.add_conn(s->handle, a->fd); /* the server's now (closed by it on failure) */
        else
                close(a->fd);
        pthread_mutex_lock(&s->cmu);
        s->nconn--;
        pthread_mutex_unlock(&s->cmu);
        free(a);
        return NULL;
}

/* A new connection on the listener: a thread for it, or refused. */
static void conn_new(slot *s, int fd) {
        conn_arg *a = malloc(sizeof(*a));
        pthread_attr_t at;
        pthread_t t;
        int ix = -1;

        pthread_mutex_lock(&s->cmu);
        for (int i = 0; i < CB_SANDBOX_CONNS && a; i++)
                if (s->cfd[i] < 0) {
                        ix = i;
                        break;
                }
        if (ix >= 0) {
                s->cfd[ix] = fd;
                s->nconn++;
        }
        pthread_mutex_unlock(&s->cmu);
        if (ix < 0) {
                free(a);
                close(fd); /* over the cap: the tool sees the connection closed */
                return;
        }
        *a = (conn_arg){ .s = s, .fd = fd, .ix = ix };
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, conn_main, a) != 0) {
                pthread_mutex_lock(&s->cmu);
                s->cfd[ix] = -1;
                s->nconn--;
                pthread_mutex_unlock(&s->cmu);
                close(fd);
                free(a);
        }
        pthread_attr_destroy(&at);
}

/* The sandbox is gone: end its connections' threads (their sockets shut
 * down: a peek or a tunnel returns at once) and wait for them. */
static void conns_end(slot *s) {
        for (int i = 0; i < 1500; i++) {
                pthread_mutex_lock(&s->cmu);
                unsigned left = s->nconn;
                for (int k = 0; k < CB_SANDBOX_CONNS; k++)
                        if (s->cfd[k] >= 0)
                                (void)shutdown(s->cfd[k], SHUT_RDWR);
                pthread_mutex_unlock(&s->cmu);
                if (!left)
                        return;
                usleep(10000);
        }
}

static void *handler(void *arg) {
        slot *s = arg;
        cb_sandbox *sb = &s->sb;
        char req[CB_SANDBOX_REQ_MAX + 1], err[512];
        int lfd = -1, r;
        cb_peer peer = { .pidfd = -1 };
        json_t *o = NULL;
        void *handle = NULL;
        const char *want = "";

        /* Who connected: the whole identity, as on tools.sock (hashing the
         * executable here blocks only this launcher). */
        r = cb_peer_identify(s->conn, ops.exe_cache, CB_PEER_CGROUP, &peer);
        if (r < 0) {
                snprintf(err, sizeof(err), "launcher not identified: %s", cb_error_last());
                reply_err(s->conn, "forbidden", err);
                goto out;
        }
        sb->uid = peer.uid;
        sb->gid = peer.gid;
        sb->launcher_pid = peer.pid;
        r = read_request(s->conn, req, sizeof(req), &lfd);
        if (r == 0) {
                json_error_t je;
                o = json_loads(req, JSON_DISABLE_EOF_CHECK, &je);
                const char *client = NULL, *cmd = NULL;
                json_t *allow = NULL;
                if (!o || json_unpack(o, "{s?s, s?s, s?o !}", "client", &client, "cmd", &cmd, "allow", &allow) < 0) {
                        r = cb_error_set(-EINVAL, "the request is not {\"client\", \"cmd\", \"allow\"}");
                } else if (allow && (!json_is_array(allow) || json_array_size(allow) > CB_SANDBOX_ALLOW_MAX)) {
                        r = cb_error_set(-EINVAL, "\"allow\": at most %d host[:port] strings", CB_SANDBOX_ALLOW_MAX);
                } else {
                        for (size_t i = 0; allow && i < json_array_size(allow) && r == 0; i++) {
                                const char *h = json_string_value(json_array_get(allow, i));
                                if (!h || !*h || strlen(h) > CB_SANDBOX_ALLOW_LEN)
                                        r = cb_error_set(-EINVAL, "\"allow\": entry %zu is not a host[:port]", i);
                                else
                                        snprintf(sb->allow[sb->n_allow++], CB_SANDBOX_ALLOW_LEN + 1, "%s", h);
                        }
                        want = client ? client : "";
                        snprintf(sb->cmd, sizeof(sb->cmd), "%s", cmd ? cmd : "");
                        for (char *p = sb->cmd; *p; p++)
                                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                                        *p = '?';
                }
        }
        if (r == 0)
                r = check_listener(lfd, sb->listen, sizeof(sb->listen));
        if (r < 0) {
                snprintf(err, sizeof(err), "%s", cb_error_last());
                reply_err(s->conn, "bad_request", err);
                audit_sandbox("sandbox_open", sb, "deny", err);
                goto out;
        }
        r = ops.authorize(&peer, want, sb->client);
        if (r < 0) {
                snprintf(err, sizeof(err), "%s", cb_error_last());
                reply_err(s->conn, "forbidden", err);
                snprintf(sb->client, sizeof(sb->client), "%s", want);
                audit_sandbox("sandbox_open", sb, "deny", err);
                goto out;
        }
        pthread_mutex_lock(&mu);
        s->authorized = true;
        pthread_mutex_unlock(&mu);
        sb->started = (uint64_t)time(NULL);
        /* Read once, here, where no lock is held: a refusal is noted from
         * the proxy's server (once under the old request lock, which
         * ops.egress_alert took: asking it there deadlocked the daemon at a
         * sandbox's first proxy refusal; kept off the request path). */
        sb->alert_on_deny = !ops.egress_alert || ops.egress_alert(sb->client);
        /* Queued before anything is served on it (not waited for: the
         * writer is shared, and a launcher must not hold it up). */
        audit_sandbox("sandbox_open", sb, "allow", NULL);
        handle = ops.serve(sb);
        s->handle = handle;
        if (!handle) {
                snprintf(err, sizeof(err), "cannot serve the listener: %s", cb_error_last());
                reply_err(s->conn, "internal", err);
                audit_sandbox("sandbox_close", sb, "error", err);
                goto out;
        }
        pthread_mutex_lock(&mu);
        s->live = true;
        pthread_mutex_unlock(&mu);
        cb_log(CB_LOG_INFO, "sandbox %s opened: uid %u, client %s, listener %s, cmd %s", sb->id, (unsigned)sb->uid,
               sb->client, sb->listen, sb->cmd);
        reply(s->conn, json_pack("{s:s, s:s, s:s}", "sandbox", sb->id, "listen", sb->listen, "client", sb->client));
        /* The sandbox lives as long as this connection; its listener's
         * connections are accepted here. */
        (void)fcntl(lfd, F_SETFL, O_NONBLOCK);
        for (;;) {
                struct pollfd pf[3] = { { .fd = s->conn, .events = POLLIN }, { .fd = stop_fd, .events = POLLIN },
                                        { .fd = lfd, .events = POLLIN } };
                char sink[256];
                if (poll(pf, 3, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (pf[1].revents)
                        break;
                if (pf[2].revents & POLLIN) {
                        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                        if (c >= 0) {
                                __atomic_add_fetch(&sb->connections, 1, __ATOMIC_RELAXED);
                                conn_new(s, c);
                        }
                }
                if (pf[0].revents) {
                        ssize_t k = recv(s->conn, sink, sizeof(sink), MSG_DONTWAIT);
                        if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN))
                                break; /* the launcher is gone */
                }
        }
        pthread_mutex_lock(&mu);
        s->live = false;
        pthread_mutex_unlock(&mu);
        close(lfd);
        lfd = -1;
        conns_end(s);
        ops.unserve(handle);
        audit_sandbox("sandbox_close", sb, "allow", NULL);
        cb_log(CB_LOG_INFO, "sandbox %s closed (%" PRIu64 " connections)", sb->id,
               __atomic_load_n(&sb->connections, __ATOMIC_RELAXED));
out:
        json_decref(o);
        if (lfd >= 0)
                close(lfd);
        cb_peer_done(&peer);
        close(s->conn);
        pthread_mutex_lock(&mu);
        s->conn = -1;
        s->used = false;
        pthread_mutex_unlock(&mu);
        return NULL;
}

static void *accept_main(void *arg) {
        (void)arg;
        for (;;) {
                struct pollfd pf[2] = { { .fd = listen_fd, .events = POLLIN }, { .fd = stop_fd, .events = POLLIN } };
                if (poll(pf, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (pf[1].revents)
                        break;
                int c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (c < 0)
                        continue;
                struct ucred uc;
                socklen_t ul = sizeof(uc);
                if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0) {
                        close(c);
                        continue;
                }
                /* Charged to the user behind the uid (its subordinate
                 * uids are its own), and a user may have only a few
                 * hand-overs pending (not yet past the policy): idle
                 * connections of users no client selects must not take
                 * the slots of those it does. */
                uid_t acct = cb_peer_account_uid(uc.pid, uc.uid);
                pthread_mutex_lock(&mu);
                size_t free_i = CB_SANDBOX_MAX, of_uid = 0, pending = 0;
                for (size_t i = 0; i < CB_SANDBOX_MAX; i++) {
                        if (slots[i].used && slots[i].uid == acct) {
                                of_uid++;
                                pending += !slots[i].authorized;
                        } else if (!slots[i].used && free_i == CB_SANDBOX_MAX) {
                                free_i = i;
                        }
                }
                if (free_i == CB_SANDBOX_MAX || of_uid >= CB_SANDBOX_PER_UID || pending >= CB_SANDBOX_PENDING_PER_UID ||
                    stopping) {
                        pthread_mutex_unlock(&mu);
                        char msg[160];
                        snprintf(msg, sizeof(msg), "too many sandboxes (%d in all, %d per user, %d not yet authorized "
                                 "per user)", CB_SANDBOX_MAX, CB_SANDBOX_PER_UID, CB_SANDBOX_PENDING_PER_UID);
                        reply_err(c, "too_many_sandboxes", msg);
                        close(c);
                        continue;
                }
                slot *s = &slots[free_i];
                memset(&s->sb, 0, sizeof(s->sb));
                for (int k = 0; k < CB_SANDBOX_CONNS; k++)
                        s->cfd[k] = -1;
                s->nconn = 0;
                s->handle = NULL;
                s->sb.magic = CB_SANDBOX_MAGIC;
                unsigned char rnd[8];
                randombytes_buf(rnd, sizeof(rnd));
                memcpy(s->sb.id, "sb_", 3);
                sodium_bin2hex(s->sb.id + 3, sizeof(s->sb.id) - 3, rnd, sizeof(rnd));
                s->used = true;
                s->live = false;
                s->authorized = false;
                s->uid = acct;
                s->sb.acct = acct;
                s->conn = c;
                /* Detached: it clears its slot when done; stop waits for the slots. */
                pthread_attr_t at;
                pthread_attr_init(&at);
                pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
                int e = pthread_create(&s->thread, &at, handler, s);
                pthread_attr_destroy(&at);
                if (e != 0) {
                        s->used = false;
                        s->conn = -1;
                        pthread_mutex_unlock(&mu);
                        reply_err(c, "internal", "cannot start a thread for the sandbox");
                        close(c);
                        continue;
                }
                pthread_mutex_unlock(&mu);
        }
        return NULL;
}

int cb_sandbox_start(const char *path, const cb_sandbox_ops *o) {
        for (size_t i = 0; i < CB_SANDBOX_MAX; i++)
                pthread_mutex_init(&slots[i].cmu, NULL);
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        mode_t old;
        sigset_t all, prev;
        int r;

        if (!o || !o->authorize || !o->serve || !o->add_conn || !o->unserve)
                return cb_error_set(-EINVAL, "sandbox: no operations");
        if (strlen(path) >= sizeof(a.sun_path))
                return cb_error_set(-ENAMETOOLONG, "socket path %s is too long", path);
        ops = *o;
        strcpy(a.sun_path, path);
        listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        stop_fd = eventfd(0, EFD_CLOEXEC);
        if (listen_fd < 0 || stop_fd < 0) {
                r = cb_error_set(-errno, "sandbox socket: %s", strerror(errno));
                goto fail;
        }
        (void)unlink(path); /* the run dir is ours and locked (main.c) */
        old = umask(0177);
        r = bind(listen_fd, (struct sockaddr *)&a, sizeof(a));
        umask(old);
        if (r < 0 || chmod(path, 0666) < 0 || listen(listen_fd, 64) < 0) {
                r = cb_error_set(-errno, "cannot listen on %s: %s", path, strerror(errno));
                goto fail;
        }
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &prev); /* the main thread takes the signals */
        r = pthread_create(&acceptor, NULL, accept_main, NULL);
        pthread_sigmask(SIG_SETMASK, &prev, NULL);
        if (r != 0) {
                r = cb_error_set(-r, "cannot start the sandbox acceptor: %s", strerror(r));
                goto fail;
        }
        running = true;
        return 0;
fail:
        if (listen_fd >= 0)
                close(listen_fd);
        if (stop_fd >= 0)
                close(stop_fd);
        listen_fd = stop_fd = -1;
        return r;
}

void cb_sandbox_stop(void) {
        uint64_t one = 1;

        if (!running)
                return;
        pthread_mutex_lock(&mu);
        stopping = true;
        pthread_mutex_unlock(&mu);
        (void)!write(stop_fd, &one, sizeof(one)); /* the eventfd stays readable: every poller sees it */
        pthread_join(acceptor, NULL);
        /* Handlers see stop_fd too and tear their sandbox down. */
        for (int i = 0; i < 3000; i++) {
                bool any = false;
                pthread_mutex_lock(&mu);
                for (size_t k = 0; k < CB_SANDBOX_MAX; k++)
                        any |= slots[k].used;
                pthread_mutex_unlock(&mu);
                if (!any)
                        break;
                usleep(10000);
        }
        close(listen_fd);
        listen_fd = -1;
        running = false;
        /* stop_fd stays open: a handler still running (stuck identifying
         * past 30 s) may poll it. */
}

json_t *cb_sandbox_list_json(void) {
        json_t *a = json_array();

        pthread_mutex_lock(&mu);
        for (size_t i = 0; a && i < CB_SANDBOX_MAX; i++) {
                const cb_sandbox *sb = &slots[i].sb;
                if (!slots[i].live)
                        continue;
                json_array_append_new(
                        a, json_pack("{s:s, s:I, s:s, s:s, s:s, s:I, s:I}", "id", sb->id, "uid", (json_int_t)sb->uid,
                                     "client", sb->client, "cmd", sb->cmd, "listen", sb->listen, "started",
                                     (json_int_t)sb->started, "connections",
                                     (json_int_t)__atomic_load_n(&sb->connections, __ATOMIC_RELAXED)));
        }
        pthread_mutex_unlock(&mu);
        return a;
}
