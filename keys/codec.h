/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Text codecs shared by the broker and the client: tool tokens.
 *
 * Token: "cbt_" + 30 base62 characters drawn uniformly at random (30 *
 * log2(62) = 178.6 bits) + the CRC32 (IEEE) of those 30 characters written as
 * 6 base62 digits, most significant first, zero-padded ('0').  The checksum
 * lets a scanner reject random look-alikes offline, as GitHub's ghp_ does.
 * Alphabet: 0-9 A-Z a-z (in that order, digit value = index).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define CB_TOKEN_PREFIX     "cbt_"
#define CB_TOKEN_PREFIX_LEN 4
#define CB_TOKEN_BODY_LEN   30
#define CB_TOKEN_CRC_LEN    6
#define CB_TOKEN_LEN        (CB_TOKEN_PREFIX_LEN + CB_TOKEN_BODY_LEN + CB_TOKEN_CRC_LEN)

/* IEEE 802.3 CRC32 (same as zlib's crc32()). */
uint32_t cb_crc32(const void *p, size_t n);

/* v as exactly 6 base62 digits (62^6 > 2^32). */
void cb_base62_u32(uint32_t v, char out[CB_TOKEN_CRC_LEN]);

/* Parse 6 base62 digits; -EINVAL on a bad digit or a value above UINT32_MAX. */
int cb_base62_parse_u32(const char in[CB_TOKEN_CRC_LEN], uint32_t *ret);

/* A fresh random token, NUL-terminated, into out (CB_TOKEN_LEN + 1 bytes).
 * The caller must wipe it (cb_wipe) when done. */
void cb_token_generate(char out[CB_TOKEN_LEN + 1]);

/* The same, and also extra_len (at most CB_TOKEN_EXTRA_MAX) further random
 * bytes, independent of the token, from the same draw of the system RNG
 * (the broker's token accessor: one getrandom per issue instead of two). */
#define CB_TOKEN_EXTRA_MAX 16
void cb_token_generate_extra(char out[CB_TOKEN_LEN + 1], unsigned char *extra, size_t extra_len);

/* Check that s[0..len) is exactly a well-formed token: 0 if so; -EINVAL for
 * wrong length/prefix/alphabet; -EBADMSG when only the checksum is wrong. */
int cb_token_check(const char *s, size_t len);

/* 1 if c is a base62 character. */
int cb_is_base62(int c);
