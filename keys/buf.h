/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cb_buf: a growable byte buffer for building wire/file formats.
 * cb_reader: the one bounds-checked reader every parser in keys/ goes
 * through.  All integers are big-endian.  A reader never reads past its
 * end; every length is checked against a caller-supplied cap before use.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hard cap on any single buffer: larger input is refused, not allocated. */
#define CB_BUF_MAX ((size_t)1 << 30)

typedef struct cb_buf {
        unsigned char *data;
        size_t len;
        size_t cap;
} cb_buf;

#define CB_BUF_INIT { NULL, 0, 0 }

/* Free the buffer, wiping its contents first (buffers may hold wrapped keys
 * or, briefly, plaintext records; wiping is cheap relative to I/O). */
void cb_buf_free(cb_buf *b);
void cb_buf_reset(cb_buf *b); /* wipe and set len 0, keep allocation */

/* Each returns 0 or -ENOMEM / -E2BIG (would exceed CB_BUF_MAX). */
int cb_buf_reserve(cb_buf *b, size_t extra) __attribute__((warn_unused_result));
int cb_buf_put(cb_buf *b, const void *p, size_t n) __attribute__((warn_unused_result));
int cb_buf_put_u8(cb_buf *b, uint8_t v) __attribute__((warn_unused_result));
int cb_buf_put_u32(cb_buf *b, uint32_t v) __attribute__((warn_unused_result));
int cb_buf_put_u64(cb_buf *b, uint64_t v) __attribute__((warn_unused_result));
/* u32 length prefix + bytes. */
int cb_buf_put_lv(cb_buf *b, const void *p, size_t n) __attribute__((warn_unused_result));

void cb_put_u32_at(unsigned char *p, uint32_t v);
uint32_t cb_get_u32_at(const unsigned char *p);
void cb_put_u64_at(unsigned char *p, uint64_t v);
uint64_t cb_get_u64_at(const unsigned char *p);

typedef struct cb_reader {
        const unsigned char *p;
        size_t len;
        size_t off;
} cb_reader;

static inline cb_reader cb_reader_make(const void *p, size_t len) {
        return (cb_reader){ (const unsigned char *)p, len, 0 };
}
static inline size_t cb_reader_left(const cb_reader *r) {
        return r->len - r->off;
}

/* All return 0 on success, -EBADMSG on short or malformed input.  On
 * failure the reader position is unspecified and out-params untouched. */
int cb_reader_u8(cb_reader *r, uint8_t *ret);
int cb_reader_u32(cb_reader *r, uint32_t *ret);
int cb_reader_u64(cb_reader *r, uint64_t *ret);
int cb_reader_bytes(cb_reader *r, size_t n, const unsigned char **ret);
int cb_reader_copy(cb_reader *r, void *dst, size_t n);
/* u32 length (must be <= max) + bytes; ret points into the input. */
int cb_reader_lv(cb_reader *r, size_t max, const unsigned char **ret, size_t *ret_len);
/* Like cb_reader_lv, but the bytes must be text: no NUL and no ASCII
 * control characters (bytes >= 0x80 pass; callers that need ASCII check).
 * Returns a malloc'd NUL-terminated copy. */
int cb_reader_text(cb_reader *r, size_t max, char **ret);
/* 0 if every byte was consumed, -EBADMSG on trailing bytes. */
int cb_reader_end(const cb_reader *r);
