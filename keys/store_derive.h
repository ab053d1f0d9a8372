/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keys derived from an open store's KEK for uses outside the store (the
 * broker's audit log).  A derived key is as strong as the KEK and changes
 * only when the store does; whoever cannot unlock the store cannot compute
 * it.  Each purpose has its own 8-character context, so no two uses ever
 * share a key.
 */
#pragma once

#include <stdint.h>

#include "store.h"

#define CB_DERIVED_KEY_LEN 32

/* Derive CB_DERIVED_KEY_LEN bytes into out (caller-owned; put it in
 * sodium_malloc memory and wipe it) for context ctx (exactly 8 characters,
 * e.g. "cbaudit1") and subkey number id.  0, or -EINVAL for a bad context. */
int cb_store_derive_key(const cb_store *s, const char *ctx, uint64_t id, unsigned char out[CB_DERIVED_KEY_LEN])
        __attribute__((warn_unused_result));
