/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cb_tcp_peer_uid (broker/identity/tcpdiag.c) against real loopback sockets: a
 * client of another uid is identified, also when it reaches an AF_INET6
 * listener v4-mapped; a client that closed before accept() is refused,
 * never taken for uid 0 (its orphaned FIN-WAIT socket has no owner).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbtest.h"
#include "tcpdiag.h"

#define U 1001

/* A listener on loopback: AF_INET 127.0.0.1, or AF_INET6 on ::ffff:127.0.0.1
 * (v4 clients then appear v4-mapped); *ret_port gets its port. */
static int listen_lo(bool v6mapped, unsigned short *ret_port) {
        struct sockaddr_storage ss = { 0 };
        socklen_t sl;
        int fd, zero = 0;

        if (v6mapped) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
                a->sin6_family = AF_INET6;
                ASSERT_EQ(inet_pton(AF_INET6, "::ffff:127.0.0.1", &a->sin6_addr), 1);
                sl = sizeof(*a);
        } else {
                struct sockaddr_in *a = (struct sockaddr_in *)&ss;
                a->sin_family = AF_INET;
                a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                sl = sizeof(*a);
        }
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(fd >= 0);
        if (v6mapped)
                ASSERT_OK(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)));
        ASSERT_OK(bind(fd, (struct sockaddr *)&ss, sl));
        ASSERT_OK(listen(fd, 16));
        sl = sizeof(ss);
        ASSERT_OK(getsockname(fd, (struct sockaddr *)&ss, &sl));
        *ret_port = ntohs(v6mapped ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
        return fd;
}

/* A child of uid U connects to 127.0.0.1:port (AF_INET, or with dual6 an
 * AF_INET6 socket to ::ffff:127.0.0.1), sends, then either waits for
 * SIGTERM (stay) or closes and exits. */
static pid_t client_as(unsigned short port, bool stay, bool dual6) {
        pid_t pid = fork();

        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
                int s, zero = 0;
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion must not leave it behind */
                if (setgid(U) < 0 || setuid(U) < 0)
                        _exit(3);
                inet_pton(AF_INET6, "::ffff:127.0.0.1", &a6.sin6_addr);
                s = socket(dual6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
                if (s < 0 || (dual6 && setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0))
                        _exit(4);
                if ((dual6 ? connect(s, (struct sockaddr *)&a6, sizeof(a6)) : connect(s, (struct sockaddr *)&a, sizeof(a))) < 0 ||
                    write(s, "GET /\r\n\r\n", 9) != 9)
                        _exit(4);
                if (stay)
                        pause();
                close(s);
                _exit(0);
        }
        return pid;
}

static pid_t client(unsigned short port, bool stay) {
        return client_as(port, stay, false);
}

static void identified(bool v6mapped, bool dual6_client) {
        unsigned short port;
        int lfd = listen_lo(v6mapped, &port), c;
        pid_t pid = client_as(port, true, dual6_client);
        uid_t uid = 0;

        c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        ASSERT_TRUE(c >= 0);
        ASSERT_OK(cb_tcp_peer_uid(c, &uid));
        ASSERT_EQ(uid, U);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        close(c);
        close(lfd);
}

TEST(ipv4_client_identified) {
        if (geteuid() != 0)
                cbtest_skip("missing prerequisite: root (to run a client as uid %d)", U);
        identified(false, false);
}

/* A dual-stack client (AF_INET6 socket, v4-mapped address) of a v4
 * listener: sock_diag answers for it in AF_INET6. */
TEST(dual_stack_client_of_v4_listener_identified) {
        if (geteuid() != 0)
                cbtest_skip("missing prerequisite: root (to run a client as uid %d)", U);
        identified(false, true);
}

TEST(v4_mapped_client_identified_not_refused) {
        if (geteuid() != 0)
                cbtest_skip("missing prerequisite: root (to run a client as uid %d)", U);
        identified(true, false);
}

TEST(closed_before_accept_is_refused_never_root) {
        if (geteuid() != 0)
                cbtest_skip("missing prerequisite: root (to run a client as uid %d)", U);
        for (int v = 0; v < 2; v++) {
                unsigned short port;
                int lfd = listen_lo(v, &port), c, status, r;
                pid_t pid = client(port, false);
                uid_t uid = 4242;

                ASSERT_EQ(waitpid(pid, &status, 0), pid);  /* connected, sent and closed: FIN-WAIT now */
                ASSERT_EQ(status, 0);
                c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                ASSERT_TRUE(c >= 0);
                r = cb_tcp_peer_uid(c, &uid);
                ASSERT_TRUE(r < 0);
                ASSERT_EQ(uid, 4242);            /* untouched: never 0 */
                close(c);
                close(lfd);
        }
}
