/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "tcpdiag.h"

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
        memset(&req, 0, sizeof(req));
        req.nlh.nlmsg_len = sizeof(req);
        req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
        req.nlh.nlmsg_flags = NLM_F_REQUEST;   /* one socket, by its exact 4-tuple */
        req.nlh.nlmsg_seq = 1;
        req.r.sdiag_family = (unsigned char)local.ss_family;
        req.r.sdiag_protocol = IPPROTO_TCP;
        req.r.idiag_states = ~0u;
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
        if (m->id.idiag_sport != req.r.id.idiag_sport || m->id.idiag_dport != req.r.id.idiag_dport ||
            memcmp(m->id.idiag_src, req.r.id.idiag_src, local.ss_family == AF_INET ? 4 : 16) != 0) {
                r = cb_error_set(-EPROTO, "sock_diag: answer for another socket");
                goto out;
        }
        *ret = m->idiag_uid;
out:
        close(nl);
        return r;
}
