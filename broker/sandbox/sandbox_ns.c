/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Is a handed-over listening socket outside our network namespace?
 *
 * Asking the socket for its namespace (SIOCGSKNS) needs CAP_NET_ADMIN over
 * it, which the packaged daemon does not have.  Instead: our own
 * namespace's table of listening TCP sockets (sock_diag, unprivileged)
 * is searched for the socket's inode.  Found: it listens in our namespace,
 * where every local process could connect to it and pass as the sandbox --
 * refused.  Not found: it lives in another namespace.  A dump of listeners
 * is bounded by what the host listens on (a few hundred at most).
 */
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "sandbox.h"

#define DUMP_MSGS_MAX 100000 /* listeners looked at, at most */

int cb_sandbox_listener_foreign(int fd) {
        struct {
                struct nlmsghdr nlh;
                struct inet_diag_req_v2 r;
        } req;
        union {
                struct nlmsghdr nlh;
                char buf[32768];
        } ans;
        struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
        struct stat st;
        size_t seen = 0;
        int nl, r = -EPROTO;

        if (fstat(fd, &st) < 0)
                return cb_error_set(-errno, "fstat: %s", strerror(errno));
        nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (nl < 0)
                return cb_error_set(-errno, "sock_diag: %s", strerror(errno));
        memset(&req, 0, sizeof(req));
        req.nlh.nlmsg_len = sizeof(req);
        req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
        req.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        req.nlh.nlmsg_seq = 1;
        req.r.sdiag_family = AF_INET;
        req.r.sdiag_protocol = IPPROTO_TCP;
        req.r.idiag_states = 1u << 10; /* TCP_LISTEN */
        if (sendto(nl, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) != (ssize_t)sizeof(req)) {
                r = cb_error_set(-errno, "sock_diag: send: %s", strerror(errno));
                goto out;
        }
        for (;;) {
                ssize_t n = recv(nl, &ans, sizeof(ans), 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = cb_error_set(n < 0 ? -errno : -EPROTO, "sock_diag: recv: %s",
                                         n < 0 ? strerror(errno) : "end of data");
                        goto out;
                }
                for (struct nlmsghdr *h = &ans.nlh; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
                        if (h->nlmsg_type == NLMSG_DONE) {
                                r = 0; /* not ours */
                                goto out;
                        }
                        if (h->nlmsg_type == NLMSG_ERROR) {
                                const struct nlmsgerr *e = NLMSG_DATA(h);
                                r = cb_error_set(e->error ? e->error : -EPROTO, "sock_diag: %s",
                                                 strerror(e->error ? -e->error : EPROTO));
                                goto out;
                        }
                        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
                            h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                                continue;
                        const struct inet_diag_msg *m = NLMSG_DATA(h);
                        if ((ino_t)m->idiag_inode == st.st_ino) {
                                r = cb_error_set(-EEXIST, "the socket listens in the broker's own network "
                                                          "namespace, where any local process could reach it");
                                goto out;
                        }
                        if (++seen > DUMP_MSGS_MAX) {
                                r = cb_error_set(-E2BIG, "sock_diag: more than %d listeners", DUMP_MSGS_MAX);
                                goto out;
                        }
                }
        }
out:
        close(nl);
        return r;
}
