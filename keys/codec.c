/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "codec.h"

static const char base62_alphabet[] =
        "0123456789"
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        "abcdefghijklmnopqrstuvwxyz";
_Static_assert(sizeof(base62_alphabet) == 62 + 1, "base62 alphabet");

/* Explicit ranges rather than isalnum(): the token format must not depend on
 * the locale, and c may be a negative char or EOF. */
static int base62_value(int c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'A' && c <= 'Z')
                return c - 'A' + 10;
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 36;
        return -1;
}

int cb_is_base62(int c) {
        return base62_value(c) >= 0;
}

/* Bitwise, reflected polynomial 0xEDB88320, init and final xor ~0: the zlib
 * CRC.  A token checksum covers 30 bytes and cb_token_check computes one only
 * after the cheap prefix and alphabet checks pass, so a 1 KiB table would buy
 * nothing measurable; the loop is easier to audit. */
uint32_t cb_crc32(const void *p, size_t n) {
        const unsigned char *b = p;
        uint32_t crc = UINT32_MAX;

        for (size_t i = 0; i < n; i++) {
                crc ^= b[i];
                for (int k = 0; k < 8; k++)
                        crc = (crc >> 1) ^ (UINT32_C(0xEDB88320) & (0U - (crc & 1U)));
        }
        return ~crc;
}

void cb_base62_u32(uint32_t v, char out[CB_TOKEN_CRC_LEN]) {
        for (int i = CB_TOKEN_CRC_LEN - 1; i >= 0; i--) {
                out[i] = base62_alphabet[v % 62];
                v /= 62;
        }
}

int cb_base62_parse_u32(const char in[CB_TOKEN_CRC_LEN], uint32_t *ret) {
        /* 62^6 - 1 fits easily in 64 bits, so accumulate wide and range-check
         * once instead of testing for overflow per digit. */
        uint64_t v = 0;

        for (size_t i = 0; i < CB_TOKEN_CRC_LEN; i++) {
                int d = base62_value((unsigned char)in[i]);

                if (d < 0)
                        return -EINVAL;
                v = v * 62 + (uint64_t)d;
        }
        if (v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t)v;
        return 0;
}

void cb_token_generate(char out[CB_TOKEN_LEN + 1]) {
        cb_token_generate_extra(out, NULL, 0);
}

void cb_token_generate_extra(char out[CB_TOKEN_LEN + 1], unsigned char *extra, size_t extra_len) {
        char *body = out + CB_TOKEN_PREFIX_LEN;
        unsigned char pool[64];
        size_t used = 0;

        if (extra_len > CB_TOKEN_EXTRA_MAX)
                abort(); /* a caller bug; the pool must keep room for the token */
        randombytes_buf(pool, sizeof(pool));
        /* The extra bytes come off the end; the token uses the rest and
         * draws again only in the rare case it runs out. */
        if (extra_len) {
                memcpy(extra, pool + sizeof(pool) - extra_len, extra_len);
                sodium_memzero(pool + sizeof(pool) - extra_len, extra_len);
        }
        size_t avail = sizeof(pool) - extra_len;

        memcpy(out, CB_TOKEN_PREFIX, CB_TOKEN_PREFIX_LEN);
        /* Rejection sampling on random bytes, not a byte mod 62 (256 is not
         * a multiple of 62: the modulo would favour the first 8 characters):
         * bytes >= 248 (= 4 * 62) are discarded, the rest taken mod 62.
         * Drawn 64 bytes at a time: one getrandom per token instead of one
         * per character (~3% of bytes are discarded). */
        for (size_t i = 0; i < CB_TOKEN_BODY_LEN;) {
                if (used == avail) {
                        randombytes_buf(pool, sizeof(pool));
                        used = 0;
                        avail = sizeof(pool);
                }
                unsigned char b = pool[used++];
                if (b < 248)
                        body[i++] = base62_alphabet[b % 62];
        }
        sodium_memzero(pool, sizeof(pool));
        cb_base62_u32(cb_crc32(body, CB_TOKEN_BODY_LEN), body + CB_TOKEN_BODY_LEN);
        out[CB_TOKEN_LEN] = '\0';
}

int cb_token_check(const char *s, size_t len) {
        const char *body;
        char crc[CB_TOKEN_CRC_LEN];
        int r;

        if (len != CB_TOKEN_LEN || !s)
                return -EINVAL;
        body = s + CB_TOKEN_PREFIX_LEN;
        if (memcmp(s, CB_TOKEN_PREFIX, CB_TOKEN_PREFIX_LEN) != 0)
                return -EINVAL;
        for (size_t i = CB_TOKEN_PREFIX_LEN; i < CB_TOKEN_LEN; i++)
                if (!cb_is_base62((unsigned char)s[i]))
                        return -EINVAL;

        /* Compare the canonical encoding rather than the parsed value: a
         * checksum field above UINT32_MAX (e.g. "zzzzzz") is in-alphabet, so
         * it is a checksum mismatch (-EBADMSG), not a format error. */
        cb_base62_u32(cb_crc32(body, CB_TOKEN_BODY_LEN), crc);
        r = memcmp(crc, body + CB_TOKEN_BODY_LEN, CB_TOKEN_CRC_LEN) == 0 ? 0 : -EBADMSG;
        /* 32 bits derived from a live token: do not leave them on the stack. */
        sodium_memzero(crc, sizeof(crc));
        return r;
}
