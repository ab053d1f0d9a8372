/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"

void cb_buf_free(cb_buf *b) {
        if (b->data) {
                sodium_memzero(b->data, b->cap);
                free(b->data);
        }
        *b = (cb_buf)CB_BUF_INIT;
}

void cb_buf_reset(cb_buf *b) {
        if (b->data)
                sodium_memzero(b->data, b->len);
        b->len = 0;
}

int cb_buf_reserve(cb_buf *b, size_t extra) {
        size_t need, ncap;
        unsigned char *n;

        if (extra > CB_BUF_MAX - b->len)
                return -E2BIG;
        need = b->len + extra;
        if (need <= b->cap)
                return 0;
        ncap = b->cap ? b->cap : 256;
        while (ncap < need)
                ncap = ncap > CB_BUF_MAX / 2 ? CB_BUF_MAX : ncap * 2;
        /* No realloc: the old block may hold sensitive bytes and must be
         * wiped, which realloc would not do. */
        n = malloc(ncap);
        if (!n)
                return -ENOMEM;
        if (b->data) {
                memcpy(n, b->data, b->len);
                sodium_memzero(b->data, b->cap);
                free(b->data);
        }
        b->data = n;
        b->cap = ncap;
        return 0;
}

int cb_buf_put(cb_buf *b, const void *p, size_t n) {
        int r;

        if (n == 0)
                return 0;
        r = cb_buf_reserve(b, n);
        if (r < 0)
                return r;
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
}

int cb_buf_put_u8(cb_buf *b, uint8_t v) {
        return cb_buf_put(b, &v, 1);
}

void cb_put_u32_at(unsigned char *p, uint32_t v) {
        p[0] = (unsigned char)(v >> 24);
        p[1] = (unsigned char)(v >> 16);
        p[2] = (unsigned char)(v >> 8);
        p[3] = (unsigned char)v;
}

uint32_t cb_get_u32_at(const unsigned char *p) {
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void cb_put_u64_at(unsigned char *p, uint64_t v) {
        cb_put_u32_at(p, (uint32_t)(v >> 32));
        cb_put_u32_at(p + 4, (uint32_t)v);
}

uint64_t cb_get_u64_at(const unsigned char *p) {
        return (uint64_t)cb_get_u32_at(p) << 32 | cb_get_u32_at(p + 4);
}

int cb_buf_put_u32(cb_buf *b, uint32_t v) {
        unsigned char t[4];

        cb_put_u32_at(t, v);
        return cb_buf_put(b, t, sizeof(t));
}

int cb_buf_put_u64(cb_buf *b, uint64_t v) {
        unsigned char t[8];

        cb_put_u64_at(t, v);
        return cb_buf_put(b, t, sizeof(t));
}

int cb_buf_put_lv(cb_buf *b, const void *p, size_t n) {
        int r;

        if (n > UINT32_MAX)
                return -E2BIG;
        r = cb_buf_put_u32(b, (uint32_t)n);
        if (r < 0)
                return r;
        return cb_buf_put(b, p, n);
}

int cb_reader_bytes(cb_reader *r, size_t n, const unsigned char **ret) {
        if (n > cb_reader_left(r))
                return -EBADMSG;
        if (!r->p) { /* an empty input may have p == NULL: NULL + 0 is undefined */
                *ret = NULL;
                return 0;
        }
        *ret = r->p + r->off;
        r->off += n;
        return 0;
}

int cb_reader_copy(cb_reader *r, void *dst, size_t n) {
        const unsigned char *p;

        if (cb_reader_bytes(r, n, &p) < 0)
                return -EBADMSG;
        memcpy(dst, p, n);
        return 0;
}

int cb_reader_u8(cb_reader *r, uint8_t *ret) {
        const unsigned char *p;

        if (cb_reader_bytes(r, 1, &p) < 0)
                return -EBADMSG;
        *ret = p[0];
        return 0;
}

int cb_reader_u32(cb_reader *r, uint32_t *ret) {
        const unsigned char *p;

        if (cb_reader_bytes(r, 4, &p) < 0)
                return -EBADMSG;
        *ret = cb_get_u32_at(p);
        return 0;
}

int cb_reader_u64(cb_reader *r, uint64_t *ret) {
        const unsigned char *p;

        if (cb_reader_bytes(r, 8, &p) < 0)
                return -EBADMSG;
        *ret = cb_get_u64_at(p);
        return 0;
}

int cb_reader_lv(cb_reader *r, size_t max, const unsigned char **ret, size_t *ret_len) {
        size_t save = r->off;
        uint32_t n;
        const unsigned char *p;

        if (cb_reader_u32(r, &n) < 0 || n > max || cb_reader_bytes(r, n, &p) < 0) {
                r->off = save;
                return -EBADMSG;
        }
        *ret = p;
        *ret_len = n;
        return 0;
}

int cb_reader_text(cb_reader *r, size_t max, char **ret) {
        const unsigned char *p;
        size_t n;
        char *s;

        if (cb_reader_lv(r, max, &p, &n) < 0)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++)
                if (p[i] < 0x20 || p[i] == 0x7f)
                        return -EBADMSG;
        s = malloc(n + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, p, n);
        s[n] = '\0';
        *ret = s;
        return 0;
}

int cb_reader_end(const cb_reader *r) {
        return r->off == r->len ? 0 : -EBADMSG;
}
