/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Token-issue rate limits from grants ("rate": "N/s|m|h"): a fixed window
 * per (client, secret).  The table is bounded; when full, the entry whose
 * window started longest ago is reused (it is the least likely to still be
 * limiting anyone).
 *
 * Thread-safe: the table guards itself (a mutex held for one take, memory
 * work only); callers need no lock of their own.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cb_ratelimit cb_ratelimit;

cb_ratelimit *cb_ratelimit_new(size_t max_entries);
void cb_ratelimit_free(cb_ratelimit *rl);

/* Count one event for (client, secret) at time now against n per window
 * seconds.  true = allowed (and counted); false = over the limit.
 * *ret_retry_after (may be NULL) gets the seconds until the window ends. */
bool cb_ratelimit_take(cb_ratelimit *rl, const char *client, const char *secret, uint32_t n, uint32_t window,
                       uint64_t now, uint32_t *ret_retry_after);
