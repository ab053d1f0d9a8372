/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pattern-set builder's layout, shared by scanner_forms.c (which fills
 * it with every encoded form of each value) and scanner.c (whose
 * cb_matcher_build() indexes it and takes over its secret list).  Not an
 * API: callers use scanner.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scanner.h"

/* One pattern: pool[off .. off + len) is the byte string, kind the form it
 * is in, secret the index into cb_matcher_builder.secrets of the value it
 * came from.  Invariant (scanner_forms.c keeps it, cb_matcher_build relies
 * on it for its stride): len >= CB_SCAN_MIN_SECRET. */
typedef struct pat {
        size_t off;      /* into the pool */
        uint32_t len;
        uint16_t kind;
        uint32_t secret; /* index into secrets */
} pat;

/* Who a pattern belongs to.  name is malloc'd and owned by whichever holds
 * the array: the builder, then (after cb_matcher_build) the matcher. */
typedef struct secret_ref {
        char *name;
        uint32_t version;
} secret_ref;

/* Made by cb_matcher_builder_new(), filled by cb_matcher_builder_add(),
 * consumed by cb_matcher_build() (which moves secrets out and frees the
 * rest with cb_matcher_builder_free()).  pool holds pattern bytes, i.e.
 * secret material: sodium_malloc'd, wiped when freed or grown. */
struct cb_matcher_builder {
        unsigned char *pool; /* sodium_malloc */
        size_t pool_len, pool_cap;
        pat *pats;
        size_t n_pats, cap_pats;
        secret_ref *secrets;
        size_t n_secrets, cap_secrets;
        bool failed;
};
