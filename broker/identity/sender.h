/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who wrote a connection's bytes: per-message credentials on the daemon's
 * Unix sockets (SO_PASSCRED -> SCM_CREDENTIALS, SO_PASSPIDFD -> SCM_PIDFD).
 *
 * libmicrohttpd reads a connection with plain recv(), which drops the
 * credentials the kernel attaches to each write.  So the daemon defines
 * recv() itself (sender.c): libmicrohttpd's calls bind to it (the
 * executable's definition comes first in symbol lookup), and on a socket
 * registered here it becomes the same single recvmsg() that also collects
 * the writer's credentials.  No extra copy, no extra system call.
 * Every other descriptor (libcurl's, netlink, ...) goes straight to the
 * kernel.
 *
 * With SO_PASSCRED set the kernel never returns the bytes of two writers
 * in one read on a stream socket (unix_stream_read_generic stops at a
 * change of credentials), so each read has exactly one writer.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* What the reads of one connection so far say about its writers.  Owned by
 * the connection; touched only by the thread that reads it. */
typedef struct cb_sender {
        struct ucred first;  /* credentials of the first bytes (pid in our pid namespace) */
        int pidfd;           /* SCM_PIDFD of the first bytes, -1 if none (owned) */
        uint64_t pidfd_ino;  /* its pidfs inode (cb_pidfd_ino), 0 until the server takes it */
        pid_t other_pid;     /* a later writer whose credentials differ (0: none yet) */
        uid_t other_uid;
        int err;             /* negative errno: a read came without (whole) credentials */
        uint64_t reads;      /* reads that returned bytes */
        /* Set (atomic) while the connection waits, suspended, for its
         * answer: an end of file read then is reported as EAGAIN and
         * remembered in eof_held.  libmicrohttpd 0.9.75 may read a resumed
         * connection once more before it calls the handler again, and
         * takes a client's half-close (shutdown(SHUT_WR) after its request)
         * for an abort: the answer would never be sent.  The server sends
         * it with Connection: close instead. */
        int hold_eof;
        bool eof_held;
} cb_sender;

/* Ask for per-message credentials on a listening Unix socket and refuse
 * descriptor passing to it (accepted sockets inherit both).  0 or -errno.
 * *ret_pidfd says whether SCM_PIDFD is available (Linux >= 6.5); without
 * it the caller falls back to pidfd_open() on the credentials' pid.
 * *ret_norights says whether the kernel refuses SCM_RIGHTS at the sender
 * (SO_PASSRIGHTS, Linux >= 6.16); without it a read carrying descriptors
 * is refused and the kernel drops them (see sender.c). */
int cb_sender_listen(int listen_fd, bool *ret_pidfd, bool *ret_norights) __attribute__((warn_unused_result));

/* Start collecting the writers of connected socket fd into *s (which must
 * outlive cb_sender_untrack).  -EMFILE when fd is above the table the
 * daemon sized at cb_sender_init (the connection must then be refused). */
int cb_sender_track(int fd, cb_sender *s) __attribute__((warn_unused_result));

/* Stop collecting for fd and close s->pidfd.  Call before fd is closed. */
void cb_sender_untrack(int fd, cb_sender *s);

/* Size the fd table (descriptors 0..max_fd-1 can be tracked); once, before
 * any track.  0 or -ENOMEM. */
int cb_sender_init(size_t max_fd) __attribute__((warn_unused_result));
