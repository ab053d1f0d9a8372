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
