/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A connection (split from server.c, issue 18): its socket_context, set up
 * at accept (conn_notify: SO_PEERCRED or, over TCP, sock_diag; the sender
 * tracked), the per-uid and per-socket connection caps, the 429/503
 * refusal sent before MHD reads a byte, and the refusal counters.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "daemon.h"
#include "sender.h"
#include "tcpdiag.h"
#include "sandbox.h"
#include "server_internal.h"

conn_ctx *conn_ctx_of(struct MHD_Connection *conn) {
        const union MHD_ConnectionInfo *sc = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

        return sc ? sc->socket_context : NULL;
}

static uint64_t conn_refused;  /* connections refused over CB_CONN_PER_UID (atomic) */
static uid_t conn_refused_uid; /* the last uid refused (atomic) */
static uint64_t conn_refused_full; /* of conn_refused: over a socket's CB_CONN_MAX (atomic) */

uint64_t server_conn_refused_full(void) {
        return __atomic_load_n(&conn_refused_full, __ATOMIC_RELAXED);
}

uint64_t server_conn_refused(uid_t *ret_uid) {
        if (ret_uid)
                *ret_uid = __atomic_load_n(&conn_refused_uid, __ATOMIC_RELAXED);
        return __atomic_load_n(&conn_refused, __ATOMIC_RELAXED);
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

void conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
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
         * per-uid cap); a sandbox's, to whom sandbox/ charges it (its held
         * bodies and refusals are that user's on every route). */
        uid_t acct = sbx ? sbx->acct : cls == &tcp_marker ? tcp_account_uid(uc.uid) : cb_peer_account_uid(uc.pid, uc.uid);
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

