/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A budget of request bodies held in memory while the outbound leak guard
 * scans them (sandbox/forward.c, proxy/proxy_conn.c): bytes are charged as
 * they are held (a buffer grows, its growth is charged), against a total
 * and against each charging uid's share of it, so that one user's
 * sandboxes can hold at most CB_HELD_UID_SHARE of the total and never
 * every other user's request bodies out.  Any thread; a small mutex of its
 * own, held only for the arithmetic.
 */
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#define CB_HELD_UIDS 64        /* uids holding bodies at once */
#define CB_HELD_UID_SHARE 4    /* a uid may hold at most total / 4 */

typedef struct cb_held_budget {
        pthread_mutex_t mu;
        uint64_t total, cap;
        struct {
                uid_t uid;
                uint64_t n;    /* 0: a free entry */
        } u[CB_HELD_UIDS];
} cb_held_budget;

#define CB_HELD_BUDGET_INIT(cap_bytes) { .mu = PTHREAD_MUTEX_INITIALIZER, .cap = (cap_bytes) }

/* Charge n more bytes to uid.  0; -EDQUOT: over uid's share (cap /
 * CB_HELD_UID_SHARE); -EBUSY: over the total (or CB_HELD_UIDS uids hold
 * bodies already).  Nothing is charged on failure. */
int cb_held_take(cb_held_budget *b, uid_t uid, uint64_t n) __attribute__((warn_unused_result));

/* Give back n bytes uid was charged (0: nothing). */
void cb_held_give(cb_held_budget *b, uid_t uid, uint64_t n);

/* Bytes charged now: in all, and to uid. */
uint64_t cb_held_now(cb_held_budget *b, uid_t uid, uint64_t *ret_uid);
