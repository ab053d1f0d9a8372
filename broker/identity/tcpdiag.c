/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "tcpdiag.h"

/* The v4 address a (4 bytes, network order) as ::ffff:a.b.c.d. */
static void v4_mapped(const void *a, uint32_t out[4]) {
        out[0] = out[1] = 0;
        out[2] = htonl(0xffff);
        memcpy(&out[3], a, 4);
}

/* Is m the socket asked for in q?  Same ports and addresses; a client that
 * used an AF_INET6 socket on a v4 address (v4-mapped, dual stack) is
 * found by an AF_INET query and answered in AF_INET6 with the mapped
 * forms of the same addresses. */
static bool same_socket(const struct inet_diag_msg *m, const struct inet_diag_req_v2 *q) {
        if (m->id.idiag_sport != q->id.idiag_sport || m->id.idiag_dport != q->id.idiag_dport)
                return false;
        if (m->idiag_family == q->sdiag_family) {
                size_t alen = q->sdiag_family == AF_INET ? 4 : 16;
                return memcmp(m->id.idiag_src, q->id.idiag_src, alen) == 0 &&
                       memcmp(m->id.idiag_dst, q->id.idiag_dst, alen) == 0;
        }
        if (q->sdiag_family == AF_INET && m->idiag_family == AF_INET6) {
                uint32_t src[4], dst[4];
                v4_mapped(q->id.idiag_src, src);
                v4_mapped(q->id.idiag_dst, dst);
                return memcmp(m->id.idiag_src, src, 16) == 0 && memcmp(m->id.idiag_dst, dst, 16) == 0;
        }
        return false;
}

int cb_tcp_peer_uid(int fd, uid_t *ret) {
        struct sockaddr_storage local, peer;
        socklen_t ll = sizeof(local), pl = sizeof(peer);
        struct {
                struct nlmsghdr nlh;
                struct inet_diag_req_v2 r;
        } req;
        union {
                struct nlmsghdr nlh;
                char buf[8192];
        } ans;
        struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
        int nl, r = 0;
        ssize_t n;

        if (getsockname(fd, (struct sockaddr *)&local, &ll) < 0 || getpeername(fd, (struct sockaddr *)&peer, &pl) < 0)
                return cb_error_set(-errno, "TCP peer: %s", strerror(errno));
        if (local.ss_family != peer.ss_family || (local.ss_family != AF_INET && local.ss_family != AF_INET6))
                return cb_error_set(-EPROTO, "TCP peer: not an IP socket");
        /* A client that connected with AF_INET to a dual-stack AF_INET6
         * listener shows up here v4-mapped (::ffff:a.b.c.d); its own socket
         * is AF_INET, and sock_diag must be asked in that family. */
        if (local.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&local)->sin6_addr) &&
            IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&peer)->sin6_addr)) {
                struct sockaddr_in6 l6 = *(struct sockaddr_in6 *)&local, p6 = *(struct sockaddr_in6 *)&peer;
                struct sockaddr_in *l4 = (struct sockaddr_in *)&local, *p4 = (struct sockaddr_in *)&peer;

                memset(&local, 0, sizeof(local));
                memset(&peer, 0, sizeof(peer));
                l4->sin_family = p4->sin_family = AF_INET;
                l4->sin_port = l6.sin6_port;
                p4->sin_port = p6.sin6_port;
                memcpy(&l4->sin_addr, &l6.sin6_addr.s6_addr[12], 4);
                memcpy(&p4->sin_addr, &p6.sin6_addr.s6_addr[12], 4);
        }
        memset(&req, 0, sizeof(req));
        req.nlh.nlmsg_len = sizeof(req);
        req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
        req.nlh.nlmsg_flags = NLM_F_REQUEST;   /* one socket, by its exact 4-tuple */
        req.nlh.nlmsg_seq = 1;
        req.r.sdiag_family = (unsigned char)local.ss_family;
        req.r.sdiag_protocol = IPPROTO_TCP;
        /* ESTABLISHED only: a client that closed before we accepted leaves
         * a FIN-WAIT/TIME-WAIT socket, whose "uid" sock_diag reports as 0
         * (a time-wait socket has no owner) -- root. */
        req.r.idiag_states = 1u << 1; /* TCP_ESTABLISHED */
        req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
        req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
        /* The peer's socket: its source is our peer, its destination us. */
        if (local.ss_family == AF_INET) {
                const struct sockaddr_in *l4 = (const void *)&local, *p4 = (const void *)&peer;
                req.r.id.idiag_sport = p4->sin_port;
                req.r.id.idiag_dport = l4->sin_port;
                memcpy(req.r.id.idiag_src, &p4->sin_addr, 4);
                memcpy(req.r.id.idiag_dst, &l4->sin_addr, 4);
        } else {
                const struct sockaddr_in6 *l6 = (const void *)&local, *p6 = (const void *)&peer;
                req.r.id.idiag_sport = p6->sin6_port;
                req.r.id.idiag_dport = l6->sin6_port;
                memcpy(req.r.id.idiag_src, &p6->sin6_addr, 16);
                memcpy(req.r.id.idiag_dst, &l6->sin6_addr, 16);
        }
        nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (nl < 0)
                return cb_error_set(-errno, "sock_diag: %s", strerror(errno));
        if (sendto(nl, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) != (ssize_t)sizeof(req)) {
                r = cb_error_set(-errno, "sock_diag: send: %s", strerror(errno));
                goto out;
        }
        do
                n = recv(nl, &ans, sizeof(ans), 0);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                r = cb_error_set(-errno, "sock_diag: recv: %s", strerror(errno));
                goto out;
        }
        if (!NLMSG_OK(&ans.nlh, (size_t)n)) {
                r = cb_error_set(-EPROTO, "sock_diag: short answer");
                goto out;
        }
        if (ans.nlh.nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(&ans.nlh);
                r = e->error ? e->error : -EPROTO;
                r = cb_error_set(r, "sock_diag: the peer socket was not found: %s", strerror(-r));
                goto out;
        }
        if (ans.nlh.nlmsg_type != SOCK_DIAG_BY_FAMILY ||
            ans.nlh.nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg))) {
                r = cb_error_set(-EPROTO, "sock_diag: unexpected answer");
                goto out;
        }
        const struct inet_diag_msg *m = NLMSG_DATA(&ans.nlh);
        /* It must be the socket we asked about. */
        if (!same_socket(m, &req.r)) {
                r = cb_error_set(-EPROTO, "sock_diag: answer for another socket");
                goto out;
        }
        /* A live, owned socket: established, with an inode (an orphaned or
         * time-wait socket has none, and no owner). */
        if (m->idiag_state != 1 || m->idiag_inode == 0) {
                r = cb_error_set(-ESRCH, "TCP peer: its socket is no longer open (state %u, inode %u): the client "
                                         "closed before the broker accepted; refused", (unsigned)m->idiag_state,
                                 (unsigned)m->idiag_inode);
                goto out;
        }
        *ret = m->idiag_uid;
out:
        close(nl);
        return r;
}
