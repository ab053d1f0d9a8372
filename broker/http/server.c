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
 * Identification runs in parallel on the server threads; then every
 * tools.sock (and TCP) route runs without any daemon-wide lock (each
 * subsystem it touches guards its own state, docs/architecture.md
 * "Locks"), and every admin.sock route under the admin lock (srv.admin_lock,
 * main.c's cbd.admin_lock), which serialises admin work and the sweeps
 * among themselves and which no tools.sock route takes.
 * This file: the servers (MHD's options, start, stop, the sandboxes'
 * listeners); the rest is in server_conn.c, server_request.c and
 * server_reply.c (server_internal.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"
#include "audit.h"
#include "daemon.h"
#include "error.h"
#include "sender.h"
#include "sandbox.h"
#include "server_internal.h"

int admin_marker, tcp_marker; /* the servers' cls: tools.sock has NULL */

/* http/'s own state: the servers (started and stopped by main.c's thread
 * only), the executables' hash cache (its own lock), the refusals of the
 * per-uid cap (atomic; server_conn.c). */
static struct MHD_Daemon *tool_mhd, *admin_mhd;
static struct MHD_Daemon *tcp_mhd[64]; /* one per proxy loop (--threads), which runs it */
cb_exe_cache *exe_cache;
server_env srv;         /* what main.c hands us (server_attach), before the servers */

void server_attach(const server_env *env) {
        srv = *env;
}

cb_exe_cache *server_exe_cache(void) {
        return exe_cache;
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
