/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Secret buffers.  A cb_secbuf's bytes live in sodium_malloc memory: guard
 * pages on both sides, mlock'd where the limit allows, excluded from core
 * dumps (MADV_DONTDUMP), and wiped by sodium_free.  Everything that holds a
 * key or a plaintext value for longer than one function call lives in one.
 */
#pragma once

#include <stddef.h>

typedef struct cb_secbuf cb_secbuf;

/* A new buffer of len bytes (len may be 0), zero-filled.  NULL on ENOMEM.
 * Free with cb_secbuf_free(). */
cb_secbuf *cb_secbuf_new(size_t len);

/* A new buffer holding a copy of p[0..len). */
cb_secbuf *cb_secbuf_dup(const void *p, size_t len);

unsigned char *cb_secbuf_data(const cb_secbuf *s);
size_t cb_secbuf_len(const cb_secbuf *s);

/* Shrink the visible length (bytes past it are wiped).  For readers that
 * allocate a cap and fill less. */
void cb_secbuf_truncate(cb_secbuf *s, size_t len);

/* Wipe and free; NULL is a no-op. */
void cb_secbuf_free(cb_secbuf *s);

/* Wipe a stack or heap copy.  Not optimised away. */
void cb_wipe(void *p, size_t n);

/* Constant-time comparison of equal-length buffers: 0 when equal, like
 * memcmp (so `if (cb_memcmp_ct(a, b, n) != 0)` means "different"). */
int cb_memcmp_ct(const void *a, const void *b, size_t n);

static inline void cb_secbuf_freep(cb_secbuf **s) {
        cb_secbuf_free(*s);
        *s = NULL;
}
