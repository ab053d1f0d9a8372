/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker sandbox: the broker's listener inside the sandbox, made in its
 * network namespace and handed to the broker on sandbox.sock.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <unistd.h>

#include <linux/nsfs.h>

#include <jansson.h>

#include "cli.h"
#include "cli_sandbox_internal.h"

/* Send buf[0..len) with a copy of fd (SCM_RIGHTS) on sock: sendmsg(2)'s
 * result.  Async-signal-safe (the listener's child calls it). */
static ssize_t send_fd(int sock, void *buf, size_t len, int fd) {
        union {
                struct cmsghdr align;
                char b[CMSG_SPACE(sizeof(int))];
        } ctl = { 0 };
        struct iovec iov = { .iov_base = buf, .iov_len = len };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        return sendmsg(sock, &m, MSG_NOSIGNAL);
}

/* A child enters the sandbox's user and network namespaces (by pidfd: the
 * process bwrap holds on --block-fd, so the pid cannot have been reused),
 * makes the listening socket on 127.0.0.1:SB_PORT there and sends it back.
 * Only the launcher's own forked child ever runs in those namespaces
 * before CMD; nothing of the sandbox runs here. */
int sb_make_listener(pid_t spid, int *ret_fd) {
        int sv[2], fd = -1, st = 0;
        pid_t c;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -cli_fail(-errno, "sandbox: socketpair: %s", strerror(errno));
        c = fork();
        if (c < 0) {
                close(sv[0]);
                close(sv[1]);
                return -cli_fail(-errno, "sandbox: fork: %s", strerror(errno));
        }
        if (c == 0) {
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(SB_PORT),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                char nsp[64];
                const char *step = "pidfd_open";
                int pfd = (int)syscall(SYS_pidfd_open, spid, 0), nfd = -1, ufd = -1, l;
                snprintf(nsp, sizeof(nsp), "/proc/%d/ns/net", (int)spid);
                /* The network namespace, then the user namespace that owns
                 * it (bwrap's outer one: with --disable-userns the process
                 * itself sits in a nested one, which holds no power over
                 * that network namespace); the pidfd shows the pid was
                 * still bwrap's child when the namespace was opened. */
                if (pfd >= 0 && (step = "open ns/net", (nfd = open(nsp, O_RDONLY | O_CLOEXEC)) >= 0) &&
                    (step = "pidfd", poll(&(struct pollfd){ .fd = pfd, .events = POLLIN }, 1, 0) == 0) &&
                    (step = "NS_GET_USERNS", (ufd = ioctl(nfd, NS_GET_USERNS)) >= 0) &&
                    (step = "setns user", getuid() == 0 || setns(ufd, CLONE_NEWUSER) == 0) &&
                    (step = "setns net", setns(nfd, CLONE_NEWNET) == 0)) {
                        {
                                /* bwrap brings lo up (and gives it
                                 * 127.0.0.1) in the sandbox's child, which
                                 * may not have done so yet: --info-fd is
                                 * written at once.  Doing it from here
                                 * makes bwrap's own RTM_NEWADDR fail, so a
                                 * bind that finds no address yet is retried
                                 * for up to a second instead. */
                                int br = -1;
                                step = "socket";
                                l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                                for (int i = 0; l >= 0 && i < 1000; i++) {
                                        br = bind(l, (struct sockaddr *)&a, sizeof(a));
                                        if (br == 0 || errno != EADDRNOTAVAIL)
                                                break;
                                        usleep(1000);
                                }
                                if (l >= 0 && (step = "bind", br == 0) &&
                                    (step = "listen", listen(l, 128) == 0)) {
                                        char one = 'L';
                                        _exit(send_fd(sv[1], &one, 1, l) == 1 ? 0 : 3);
                                }
                        }
                }
                dprintf(STDERR_FILENO, "credbroker: sandbox: the listener inside the sandbox: %s: %s\n", step,
                        strerror(errno));
                _exit(2);
        }
        close(sv[1]);
        {
                union {
                        struct cmsghdr align;
                        char b[CMSG_SPACE(sizeof(int))];
                } ctl;
                char b;
                struct iovec iov = { .iov_base = &b, .iov_len = 1 };
                struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                                    .msg_controllen = sizeof(ctl.b) };
                if (recvmsg(sv[0], &m, MSG_CMSG_CLOEXEC) == 1) {
                        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
                        if (cm && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int)))
                                memcpy(&fd, CMSG_DATA(cm), sizeof(int));
                }
        }
        close(sv[0]);
        while (waitpid(c, &st, 0) < 0 && errno == EINTR)
                ;
        if (fd < 0)
                return -cli_fail(-EIO, "sandbox: could not make the broker's listener inside the sandbox");
        *ret_fd = fd;
        return 0;
}

/* May uid serve sandbox.sock?  The rule the library applies to tools.sock:
 * root, our own uid, or the broker's (--broker-uid, $CREDBROKER_BROKER_UID,
 * else the system user "credbroker"). */
static bool server_uid_ok(uid_t uid) {
        const char *bu = secure_getenv("CREDBROKER_BROKER_UID");
        struct passwd *pw;

        if (uid == 0 || uid == getuid())
                return true;
        if (bu && *bu)
                return strtoul(bu, NULL, 10) == (unsigned long)uid;
        pw = getpwnam("credbroker");
        return pw && pw->pw_uid == uid;
}

/* Hand the listener to the broker on sandbox.sock (next to tools.sock) and
 * keep the connection: the sandbox lives as long as it does. */
int sb_hand_over(struct sb_state *st, int lfd) {
        const char *ts = cli_socket ? cli_socket : secure_getenv("CREDBROKER_SOCKET");
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        char path[sizeof(a.sun_path)], reply[SB_REPLY_MAX + 1], *line = NULL;
        const char *slash;
        struct ucred uc;
        socklen_t ul = sizeof(uc);
        json_t *o = NULL;
        size_t n = 0;
        int c = -1, r;

        if (!ts || !*ts)
                ts = "/run/credbroker/tools.sock";
        slash = strrchr(ts, '/');
        if (!slash || (size_t)(slash - ts) + sizeof("/sandbox.sock") > sizeof(path))
                return -cli_usage("sandbox: the broker's socket path %.256s has no usable directory", ts);
        snprintf(path, sizeof(path), "%.*s/sandbox.sock", (int)(slash - ts), ts);
        strcpy(a.sun_path, path);
        c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0) {
                r = -cli_fail(-ECONNREFUSED, "sandbox: cannot reach the broker at %s: %s", path, strerror(errno));
                goto out;
        }
        if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0 || !server_uid_ok(uc.uid)) {
                r = -cli_fail(-EPERM, "sandbox: %s is served by uid %u, not the broker: refused", path,
                              (unsigned)uc.uid);
                goto out;
        }
        o = json_pack("{s:s, s:s}", "client", st->client ? st->client : "", "cmd", st->cmdline);
        if (o && st->nallow) {
                json_t *arr = json_array();
                for (size_t i = 0; arr && i < st->nallow; i++)
                        json_array_append_new(arr, json_string(st->allow[i]));
                json_object_set_new(o, "allow", arr);
        }
        line = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        o = NULL;
        if (!line) {
                r = -cli_fail(-ENOMEM, "out of memory");
                goto out;
        }
        {
                size_t ll = strlen(line);
                char *l2 = realloc(line, ll + 2);
                if (!l2) {
                        r = -cli_fail(-ENOMEM, "out of memory");
                        goto out;
                }
                line = l2;
                line[ll] = '\n';
                line[ll + 1] = '\0';
                if (send_fd(c, line, ll + 1, lfd) != (ssize_t)(ll + 1)) {
                        r = -cli_fail(-errno, "sandbox: cannot send to the broker: %s", strerror(errno));
                        goto out;
                }
        }
        while (n < SB_REPLY_MAX && !memchr(reply, '\n', n)) {
                struct pollfd pf = { .fd = c, .events = POLLIN };
                int k = poll(&pf, 1, SB_REPLY_TIMEOUT_MS);
                if (k < 0 && errno == EINTR)
                        continue;
                ssize_t m = k > 0 ? read(c, reply + n, SB_REPLY_MAX - n) : -1;
                if (m <= 0) {
                        r = -cli_fail(-EIO, "sandbox: the broker did not answer the hand-over");
                        goto out;
                }
                n += (size_t)m;
        }
        reply[n] = '\0';
        o = json_loadb(reply, n, JSON_DISABLE_EOF_CHECK, NULL);
        const char *id = NULL, *msg = NULL;
        if (o && json_unpack(o, "{s:s}", "sandbox", &id) == 0) {
                st->broker_conn = c;
                c = -1;
                r = 0;
        } else if (o && json_unpack(o, "{s:s}", "message", &msg) == 0) {
                r = -cli_fail(-EPERM, "sandbox: the broker refused the sandbox: %.512s", msg);
        } else {
                r = -cli_fail(-EPROTO, "sandbox: the broker's answer is not understood");
        }
out:
        json_decref(o);
        free(line);
        if (c >= 0)
                close(c);
        return r;
}
