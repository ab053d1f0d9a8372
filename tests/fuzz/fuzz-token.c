/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cb_token_check on arbitrary bytes, as the leak scanner will call it: on the
 * whole input and on every CB_TOKEN_LEN window of it.  Each verdict is checked
 * against a reference written here from the format in codec.h, so a check
 * that accepts a look-alike (or rejects a real token) aborts, not just one
 * that crashes.  Also round-trips cb_base62_parse_u32 on every 6-byte window
 * and compares cb_crc32 (a nibble table) with a differently built (bitwise) CRC.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* Work is linear in the input (one check per window); the cap keeps every
 * run fast so the fuzzer spends its time on variety, not on size. */
#define FUZZ_TOKEN_MAX (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* zlib's CRC32 four bits at a time: a different construction from codec.c's,
 * so a shared mistake is unlikely. */
static uint32_t ref_crc32(const uint8_t *p, size_t n) {
        uint32_t crc = UINT32_MAX;

        for (size_t i = 0; i < n; i++) {
                crc ^= p[i];
                for (int k = 0; k < 8; k++)
                        crc = (crc >> 1) ^ (UINT32_C(0xEDB88320) & (0U - (crc & 1U)));
        }
        return ~crc;
}

static int ref_digit(uint8_t c) {
        const char *q = c ? memchr(alphabet, c, 62) : NULL;

        return q ? (int)(q - alphabet) : -1;
}

/* The 6 digits as a number, or -1 on a bad digit; no range check. */
static int64_t ref_base62(const uint8_t *p) {
        int64_t v = 0;

        for (size_t i = 0; i < CB_TOKEN_CRC_LEN; i++) {
                int d = ref_digit(p[i]);

                if (d < 0)
                        return -1;
                v = v * 62 + d;
        }
        return v;
}

static void check_base62(const uint8_t *p) {
        int64_t want = ref_base62(p);
        uint32_t v = 0xA5A5A5A5u;
        char again[CB_TOKEN_CRC_LEN];
        int r = cb_base62_parse_u32((const char *)p, &v);

        if (want < 0 || want > (int64_t)UINT32_MAX) {
                if (r != -EINVAL || v != 0xA5A5A5A5u)
                        abort();
                return;
        }
        if (r != 0 || v != (uint32_t)want)
                abort();
        /* Encoding is canonical: exactly one 6-digit form per value. */
        cb_base62_u32(v, again);
        if (memcmp(again, p, CB_TOKEN_CRC_LEN) != 0)
                abort();
}

static void check_token(const uint8_t *p, size_t n) {
        int r = cb_token_check((const char *)p, n);
        int64_t crc;
        bool syntax_ok;

        syntax_ok = n == CB_TOKEN_LEN && memcmp(p, CB_TOKEN_PREFIX, CB_TOKEN_PREFIX_LEN) == 0;
        for (size_t i = CB_TOKEN_PREFIX_LEN; syntax_ok && i < CB_TOKEN_LEN; i++)
                syntax_ok = ref_digit(p[i]) >= 0;
        if (!syntax_ok) {
                if (r != -EINVAL)
                        abort();
                return;
        }
        crc = ref_base62(p + CB_TOKEN_PREFIX_LEN + CB_TOKEN_BODY_LEN);
        if (crc < 0)
                abort(); /* syntax_ok implied every digit is valid */
        /* Only the checksum is left to decide: valid iff it matches. */
        if (crc == (int64_t)ref_crc32(p + CB_TOKEN_PREFIX_LEN, CB_TOKEN_BODY_LEN)) {
                if (r != 0)
                        abort();
        } else if (r != -EBADMSG) {
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > FUZZ_TOKEN_MAX)
                size = FUZZ_TOKEN_MAX;

        if (cb_crc32(data, size) != ref_crc32(data, size))
                abort();
        check_token(data, size);
        for (size_t i = 0; i + CB_TOKEN_LEN <= size; i++)
                check_token(data + i, CB_TOKEN_LEN);
        for (size_t i = 0; i + CB_TOKEN_CRC_LEN <= size; i++)
                check_base62(data + i);
        return 0;
}
