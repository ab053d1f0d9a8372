/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by peer.c and peer_hash.c.  Not an API. */
#pragma once

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "peer.h"

/* The per-uid hashing budget (peer.c): one hash in progress per uid and
 * HASH_BYTES_PER_MIN per minute.  0 (taken) or -EBUSY with cb_error_set. */
int cb_peer_budget_take(uid_t uid, uint64_t size, pid_t pid);
void cb_peer_budget_put(uid_t uid);

/* Open exe (/proc/<pid>/exe), check it is the file *st describes, hash
 * it, check it did not change meanwhile, cache it unless it changed in the
 * last CACHE_RACY_SEC.  0 or -errno with cb_error_set. */
int cb_peer_hash_file(const char *exe, const struct stat *st, cb_exe_cache *cache, pid_t pid, unsigned char out[32]);

/* peer.c: is the process behind pidfd still running?  1 or 0. */
int cb_pidfd_alive(int pidfd);

/* peer_proc.c: what is kept of a running process under its pidfs inode
 * (ino from cb_pidfd_ino; 0 keeps and finds nothing).  Set only after a
 * liveness check through the pidfd. */
bool cb_proc_pidns_ours(uint64_t ino);
void cb_proc_set_pidns_ours(uint64_t ino);
/* The name its executable showed, if *st (a fresh stat of /proc/PID/exe)
 * is the file it was read for: true and out filled, else false. */
bool cb_proc_exe_path_get(uint64_t ino, const struct stat *st, char *out, size_t out_len);
void cb_proc_exe_path_set(uint64_t ino, const struct stat *st, const char *path);
