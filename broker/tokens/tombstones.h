/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tombstones: what a token that is no longer alive leaves behind so that its
 * holder hears why ("expired", "revoked", "exited", "used up") rather than "unknown".
 *
 * A fixed number of bytes, given at creation: a 4-way set-associative array
 * of 32-byte records (a prefix of the token's keyed hash, the accessor, the
 * reason, when), in its own anonymous mapping.  A record answers for
 * `linger` seconds; a full set forgets its oldest record first.  A page
 * whose records have all outlived `linger` is given back to the kernel by
 * the sweep, so an idle broker holds none of it.  Nothing here ever refuses
 * anything: the store only explains refusals.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define CB_TOMBS_BYTES_DEFAULT ((size_t)4 << 20) /* 131,072 records */
#define CB_TOMBS_BYTES_MIN ((size_t)4096)
#define CB_TOMBS_BYTES_MAX ((size_t)1 << 30)
#define CB_TOMBS_LINGER_DEFAULT 60
#define CB_TOMBS_RECORD_BYTES 32
#define CB_TOMBS_HASH_LEN 32   /* what callers pass; a prefix is kept */
#define CB_TOMBS_ACC_LEN 12    /* the accessor's binary bytes */

typedef enum cb_tomb_reason {
        CB_TOMB_NONE = 0,
        CB_TOMB_EXPIRED = 1,
        CB_TOMB_REVOKED = 2,
        CB_TOMB_EXITED = 3,    /* bound to a process that exited (orphaned) */
        CB_TOMB_USED_UP = 4,   /* its last use (max_uses) was spent */
} cb_tomb_reason;

typedef struct cb_tombs cb_tombs;

/* A store of `bytes` (0: the default; rounded down to whole pages, clamped
 * to [CB_TOMBS_BYTES_MIN, CB_TOMBS_BYTES_MAX]) whose records answer for
 * linger_s seconds (0: the default).  NULL on ENOMEM.  Free with
 * cb_tombs_free. */
cb_tombs *cb_tombs_new(size_t bytes, uint32_t linger_s);
void cb_tombs_free(cb_tombs *s);

/* Record that the token whose keyed hash is `hash` is gone for `reason`,
 * at `now` (unix seconds).  Never fails: a full set forgets its oldest. */
void cb_tombs_put(cb_tombs *s, const unsigned char hash[CB_TOMBS_HASH_LEN],
                  const unsigned char acc[CB_TOMBS_ACC_LEN], cb_tomb_reason reason, uint64_t now);

/* The reason recorded for `hash` if its record is younger than linger at
 * `now`, with its accessor in ret_acc (may be NULL); CB_TOMB_NONE if none. */
cb_tomb_reason cb_tombs_get(const cb_tombs *s, const unsigned char hash[CB_TOMBS_HASH_LEN], uint64_t now,
                            unsigned char ret_acc[CB_TOMBS_ACC_LEN]);

/* Give back the pages whose records have all outlived linger at `now`
 * (madvise MADV_DONTNEED: the kernel frees them, they read as zero
 * again).  O(pages).  Returns how many bytes it gave back. */
size_t cb_tombs_sweep(cb_tombs *s, uint64_t now);

/* The store's size, and the bytes of it holding records (resident). */
size_t cb_tombs_bytes(const cb_tombs *s);
size_t cb_tombs_bytes_held(const cb_tombs *s);
/* Records forgotten before their linger was over (a full set). */
uint64_t cb_tombs_evicted(const cb_tombs *s);
