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

/* Reflected polynomial 0xEDB88320, init and final xor ~0: the zlib CRC, four
 * bits a step from a 16-entry table.  The bitwise loop took ~0.4 us per
 * token, and a proxied request checks its token twice (perf, issue 18: ~0.8
 * of ~60 us).  The table is 64 bytes on one 64-byte line: which entries a
 * token's bytes pick shows in no cache line (a 1 KiB byte table would).  The
 * fuzz harness compares it with the bitwise form. */
uint32_t cb_crc32(const void *p, size_t n) {
        static const uint32_t t[16] __attribute__((aligned(64))) = {
                0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4, 0x4DB26158, 0x5005713C,
                0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C,
        };
        const unsigned char *b = p;
        uint32_t crc = UINT32_MAX;

        for (size_t i = 0; i < n; i++) {
                crc ^= b[i];
                crc = (crc >> 4) ^ t[crc & 15];
                crc = (crc >> 4) ^ t[crc & 15];
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
