/* SPDX-License-Identifier: Apache-2.0 */
/* Crash-safe file primitives for the store.  All fds are O_CLOEXEC. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* pwrite all of p[0..n) at off; a short write is continued and EINTR
 * retried, so the error that stopped it (ENOSPC) is what the caller sees. */
int cb_pwrite_all(int fd, const void *p, size_t n, off_t off);

/* pread exactly n bytes at off; -EBADMSG if the file is shorter. */
int cb_pread_all(int fd, void *p, size_t n, off_t off);

/* Replace dirfd/name atomically with p[0..n): write "name.tmp" (0600,
 * O_EXCL after removing a stale one), fsync it, rename over name, fsync the
 * directory.  On any failure the old file is untouched and the temp file
 * removed. */
int cb_atomic_replace(int dirfd, const char *name, const void *p, size_t n);

int cb_fsync_dir(int dirfd);

/* Read a whole regular file of at most max bytes (malloc'd).  -EFBIG when
 * larger, -ENOENT etc. */
int cb_read_file_at(int dirfd, const char *name, size_t max, unsigned char **ret, size_t *ret_len);

/* Take an flock on dirfd/"lock" (created 0600).  exclusive: LOCK_EX else
 * LOCK_SH.  Blocks.  Returns the lock fd (close it to unlock) or -errno. */
int cb_lock_dir(int dirfd, int exclusive);

/* Take the exclusive lifetime lock dir/name (an OFD write lock on a 0600
 * regular file of our uid, O_CLOEXEC) and write our pid into it.  Never
 * blocks.  On success *ret_fd holds the lock until closed (or the process
 * ends).  -EBUSY with a message naming the holder's pid when another
 * process holds it; what names the directory in messages ("state
 * directory", "run directory"). */
int cb_lock_owner(const char *dir, const char *name, const char *what, int *ret_fd) __attribute__((warn_unused_result));
