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

/* cb_atomic_replace that needs no new disk block when dirfd/spare (a file
 * of at least n bytes, already allocated) exists: p is written into the
 * spare, which then trades places with name (renameat2 RENAME_EXCHANGE),
 * so the old file becomes the next spare.  Without a usable spare (or
 * where the exchange is unsupported) it is cb_atomic_replace, and a spare
 * of reserve bytes is then created for next time (best effort).  So a
 * commit still succeeds on a full file system, once: what a leak mark
 * needs.  Same failure contract as cb_atomic_replace. */
int cb_atomic_replace_spare(int dirfd, const char *name, const char *spare, const void *p, size_t n, size_t reserve);

/* Make sure fd has at least `want` bytes of allocated space past `len`
 * without changing its size (fallocate KEEP_SIZE), so appends up to it
 * need no new block.  Best effort: where unsupported, nothing. */
void cb_reserve_tail(int fd, off_t len, off_t want);

int cb_fsync_dir(int dirfd);

/* Read a whole regular file of at most max bytes (malloc'd).  -EFBIG when
 * larger, -ENOENT etc. */
int cb_read_file_at(int dirfd, const char *name, size_t max, unsigned char **ret, size_t *ret_len);

/* Take an flock on dirfd/"lock" (created 0600).  exclusive: LOCK_EX else
 * LOCK_SH.  Blocks.  Returns the lock fd (close it to unlock) or -errno. */
int cb_lock_dir(int dirfd, int exclusive);

/* Is path safe to trust, the way OpenSSH's StrictModes checks a file's
 * directories: every directory from path's parent up to "/" -- along the
 * path as written and along its resolved form (symlinks followed), so a
 * symlink cannot lead through a directory someone else controls -- is
 * owned by root or by `owner`, and not writable by group or others unless
 * it is sticky and root-owned (like /tmp: there, only an entry's owner may
 * rename or remove it).  The object itself is the caller's to check.
 * `what` names it in the message ("run dir", "policy").  0, or -EPERM
 * (with cb_error_set) naming the directory and why; -errno when a
 * directory cannot be examined. */
int cb_path_check_trusted(const char *path, uid_t owner, const char *what) __attribute__((warn_unused_result));

/* Take the exclusive lifetime lock dir/name (an OFD write lock on a 0600
 * regular file of our uid, O_CLOEXEC) and write our pid into it.  Never
 * blocks.  On success *ret_fd holds the lock until closed (or the process
 * ends).  -EBUSY with a message naming the holder's pid when another
 * process holds it; what names the directory in messages ("state
 * directory", "run directory"). */
int cb_lock_owner(const char *dir, const char *name, const char *what, int *ret_fd) __attribute__((warn_unused_result));
