/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-message credentials under libmicrohttpd (see sender.h).
 *
 * recv() here is the only definition the daemon's libraries see (it is
 * exported from the executable; libmicrohttpd imports recv from libc).  A
 * descriptor not in the table is passed to recvfrom() unchanged: one
 * atomic load more than libc's recv.  A tracked one is read with
 * recvmsg(): same bytes, same flags, plus the control messages.
 *
 * One connection is read and served by one libmicrohttpd thread, which
 * also runs its connect and close notifications, so a cb_sender is only
 * ever touched by that thread; the table slot is atomic only because other
 * threads' recv() calls look at the table.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "sender.h"

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76   /* Linux 6.5; glibc headers before 2.39 lack it */
#endif
#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif
#ifndef SO_PASSRIGHTS
#define SO_PASSRIGHTS 83  /* Linux 6.16 */
#endif

static _Atomic(cb_sender *) *table;
static size_t table_n;
/* The control buffer holds SCM_CREDENTIALS and, with SO_PASSPIDFD, one
 * SCM_PIDFD -- and never room for a descriptor of SCM_RIGHTS: the kernel
 * then installs none (MSG_CTRUNC) and the read is refused.  Closing a
 * descriptor a caller sent would run its file's flush on the serving
 * thread (a FUSE file of the caller's own mount can hold that forever). */
static _Atomic size_t ctl_len = CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int));

int cb_sender_init(size_t max_fd) {
        if (table)
                return 0;
        table = calloc(max_fd, sizeof(*table));
        if (!table)
                return cb_error_set(-ENOMEM, "out of memory");
        table_n = max_fd;
        return 0;
}

int cb_sender_listen(int listen_fd, bool *ret_pidfd, bool *ret_norights) {
        int one = 1, zero = 0;

        if (setsockopt(listen_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
                return cb_error_set(-errno, "SO_PASSCRED: %s", strerror(errno));
        /* Descriptors are refused at the sender's sendmsg() (EPERM), so
         * none ever reaches the daemon; accepted sockets inherit it. */
        if (setsockopt(listen_fd, SOL_SOCKET, SO_PASSRIGHTS, &zero, sizeof(zero)) == 0)
                *ret_norights = true;
        else if (errno == ENOPROTOOPT)
                *ret_norights = false;
        else
                return cb_error_set(-errno, "SO_PASSRIGHTS: %s", strerror(errno));
        if (setsockopt(listen_fd, SOL_SOCKET, SO_PASSPIDFD, &one, sizeof(one)) == 0) {
                *ret_pidfd = true;
                return 0;
        }
        if (errno != ENOPROTOOPT)
                return cb_error_set(-errno, "SO_PASSPIDFD: %s", strerror(errno));
        *ret_pidfd = false;
        atomic_store(&ctl_len, CMSG_SPACE(sizeof(struct ucred)));  /* no SCM_PIDFD: no int of room at all */
        return 0;
}

int cb_sender_track(int fd, cb_sender *s) {
        memset(s, 0, sizeof(*s));
        s->pidfd = -1;
        if (fd < 0 || (size_t)fd >= table_n)
                return cb_error_set(-EMFILE, "descriptor %d is beyond the %zu the daemon tracks", fd, table_n);
        atomic_store_explicit(&table[fd], s, memory_order_release);
        return 0;
}

void cb_sender_untrack(int fd, cb_sender *s) {
        if (fd >= 0 && (size_t)fd < table_n && atomic_load_explicit(&table[fd], memory_order_relaxed) == s)
                atomic_store_explicit(&table[fd], NULL, memory_order_release);
        if (s->pidfd >= 0)
                close(s->pidfd);
        s->pidfd = -1;
}

/* Fold one read's control messages into *s. */
static void note(cb_sender *s, struct msghdr *m, bool record) {
        struct ucred uc;
        bool have_cred = false;
        int pidfd = -1;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
                if (c->cmsg_level != SOL_SOCKET)
                        continue;
                if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(uc))) {
                        memcpy(&uc, CMSG_DATA(c), sizeof(uc));
                        have_cred = true;
                } else if (c->cmsg_type == SCM_PIDFD && c->cmsg_len == CMSG_LEN(sizeof(int))) {
                        memcpy(&pidfd, CMSG_DATA(c), sizeof(int));
                } else if (c->cmsg_type == SCM_RIGHTS) {
                        /* Cannot happen (no room for one, see ctl_len);
                         * should a kernel install one anyway, drop it. */
                        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < k; i++) {
                                int x;
                                memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                                close(x);
                        }
                }
        }
        if (!record) {
                /* A peek: the bytes are read (and noted) again later. */
                if (pidfd >= 0)
                        close(pidfd);
                return;
        }
        if (m->msg_flags & MSG_CTRUNC)
                s->err = -EPROTO;
        else if (!have_cred)
                s->err = -ENOMSG;
        if (have_cred) {
                if (s->reads == 0) {
                        s->first = uc;
                        s->pidfd = pidfd;
                        pidfd = -1;
                } else if (uc.pid != s->first.pid || uc.uid != s->first.uid || uc.gid != s->first.gid) {
                        /* Same pid with the first writer alive is the same
                         * process (server_request.c checks it is alive): no pidfd
                         * comparison needed. */
                        if (!s->other_pid) {
                                s->other_pid = uc.pid ? uc.pid : -1;
                                s->other_uid = uc.uid;
                        }
                }
        }
        if (pidfd >= 0)
                close(pidfd);
        s->reads++;
}

/* Interposes libc's recv() for the whole daemon (see the top). */
__attribute__((visibility("default"))) ssize_t recv(int fd, void *buf, size_t len, int flags);

ssize_t recv(int fd, void *buf, size_t len, int flags) {
        cb_sender *s = NULL;

        if (fd >= 0 && (size_t)fd < table_n)
                s = atomic_load_explicit(&table[fd], memory_order_acquire);
        if (!s)
                return recvfrom(fd, buf, len, flags, NULL, NULL);

        union {
                struct cmsghdr align;
                char b[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int))];
        } ctl;
        struct iovec iov = { .iov_base = buf, .iov_len = len };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                            .msg_controllen = atomic_load_explicit(&ctl_len, memory_order_relaxed) };
        ssize_t n = recvmsg(fd, &m, flags | MSG_CMSG_CLOEXEC);

        if (n > 0)
                note(s, &m, !(flags & MSG_PEEK));
        else if (n == 0 && len > 0 && !(flags & MSG_PEEK) && __atomic_load_n(&s->hold_eof, __ATOMIC_ACQUIRE)) {
                s->eof_held = true; /* see cb_sender.hold_eof */
                errno = EAGAIN;
                return -1;
        }
        return n;
}
