/* SPDX-License-Identifier: Apache-2.0 */
#include <sodium.h>

#include "cbtest.h"
#include "codec.h"
#include "text.h"

/* Written out independently of codec.c so a reordered alphabet there fails. */
static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* randombytes_uniform works without it today, but libsodium documents
 * sodium_init() as a precondition; tests should not rely on less. */
static void setup(void) {
        if (sodium_init() < 0)
                cbtest_skip("sodium_init failed");
}

static int ref_value(unsigned char c) {
        const char *q = c ? memchr(alphabet, c, 62) : NULL;

        return q ? (int)(q - alphabet) : -1;
}

TEST(crc32_vectors) {
        static const char fox[] = "The quick brown fox jumps over the lazy dog";
        unsigned char all[256];

        /* Expected values from zlib.crc32(). */
        ASSERT_EQ(cb_crc32("123456789", 9), 0xCBF43926u);
        ASSERT_EQ(cb_crc32("", 0), 0u);
        ASSERT_EQ(cb_crc32("a", 1), 0xE8B7BE43u);
        ASSERT_EQ(cb_crc32("\0", 1), 0xD202EF8Du);
        ASSERT_EQ(cb_crc32(fox, strlen(fox)), 0x414FA339u);
        for (size_t i = 0; i < sizeof(all); i++)
                all[i] = (unsigned char)i;
        ASSERT_EQ(cb_crc32(all, sizeof(all)), 0x29058C73u);
        /* Length is honoured: the trailing byte must not be read. */
        ASSERT_EQ(cb_crc32("1234567890", 9), 0xCBF43926u);
}

TEST(base62_known) {
        static const struct {
                uint32_t v;
                const char *s;
        } vec[] = {
                { 0, "000000" },
                { 61, "00000z" },
                { 62, "000010" },
                { 916132831, "0zzzzz" }, /* 62^5 - 1 */
                { 916132832, "100000" }, /* 62^5 */
                { 0xCBF43926u, "3jZRME" },
                { UINT32_MAX, "4gfFC3" },
        };
        char out[CB_TOKEN_CRC_LEN + 1];

        for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
                uint32_t v = 12345;

                memset(out, '#', sizeof(out));
                cb_base62_u32(vec[i].v, out);
                /* Exactly 6 bytes written, no terminator. */
                ASSERT_EQ(out[CB_TOKEN_CRC_LEN], '#');
                out[CB_TOKEN_CRC_LEN] = '\0';
                ASSERT_STREQ(out, vec[i].s);
                ASSERT_OK(cb_base62_parse_u32(vec[i].s, &v));
                ASSERT_EQ(v, vec[i].v);
        }
}

TEST(base62_round_trip) {
        char out[CB_TOKEN_CRC_LEN];

        setup();
        for (int i = 0; i < 100000; i++) {
                uint32_t v = randombytes_random(), w = ~v;

                cb_base62_u32(v, out);
                for (size_t k = 0; k < CB_TOKEN_CRC_LEN; k++)
                        ASSERT_TRUE(ref_value((unsigned char)out[k]) >= 0);
                ASSERT_OK(cb_base62_parse_u32(out, &w));
                ASSERT_EQ(w, v);
        }
}

TEST(base62_rejects) {
        /* Out of range: 2^32 is the smallest, zzzzzz the largest. */
        static const char *const bad[] = {
                "4gfFC4", "4gfFD0", "500000", "zzzzzz",
                "00000-", "-00000", "000 00", "00_000", "0000+0", "000.00", "00000\xff", ("\x80" "00000"),
                "0000:0", "0000@0", "0000[0", "0000`0", "0000{0", "0000/0",
        };
        uint32_t v = 0xA5A5A5A5u;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                ASSERT_ERR(cb_base62_parse_u32(bad[i], &v), -EINVAL);
                ASSERT_EQ(v, 0xA5A5A5A5u); /* out-param untouched on failure */
        }
        /* An embedded NUL is a bad digit, not an early end. */
        ASSERT_ERR(cb_base62_parse_u32("00\0" "000", &v), -EINVAL);
        ASSERT_EQ(v, 0xA5A5A5A5u);
}

TEST(is_base62) {
        int n = 0;

        for (int c = -128; c < 256; c++) {
                int want = c >= 0 && ref_value((unsigned char)c) >= 0;

                ASSERT_EQ(!!cb_is_base62(c), want);
                n += want;
        }
        ASSERT_EQ(n, 62);
        ASSERT_FALSE(cb_is_base62(EOF));
}

/* Pins the exact format against an outside reference (Python's zlib.crc32
 * and a by-hand base62), so a self-consistent but different encoding fails. */
TEST(token_known_answer) {
        static const char *const good[] = {
                "cbt_0123456789ABCDEFGHIJKLMNOPQRST4PMbyp",
                "cbt_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz4IlJEz",
                "cbt_0000000000000000000000000000002C8GjS",
        };

        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                ASSERT_EQ(strlen(good[i]), CB_TOKEN_LEN);
                ASSERT_EQ(cb_token_check(good[i], CB_TOKEN_LEN), 0);
        }
        ASSERT_ERR(cb_token_check("cbt_0123456789ABCDEFGHIJKLMNOPQRST4PMbyq", CB_TOKEN_LEN), -EBADMSG);
        /* In alphabet but above UINT32_MAX: a wrong checksum, not bad syntax. */
        ASSERT_ERR(cb_token_check("cbt_0123456789ABCDEFGHIJKLMNOPQRSTzzzzzz", CB_TOKEN_LEN), -EBADMSG);
}

static int cmp_tok(const void *a, const void *b) {
        return memcmp(a, b, CB_TOKEN_LEN + 1);
}

TEST(token_generate_10000) {
        enum { N = 10000 };
        char (*t)[CB_TOKEN_LEN + 1] = malloc(N * sizeof(*t));

        setup();
        ASSERT_TRUE(t);
        for (size_t i = 0; i < N; i++) {
                /* An exact-size heap block so ASan catches a write past the NUL. */
                char *one = malloc(CB_TOKEN_LEN + 1);
                uint32_t crc = 0;

                ASSERT_TRUE(one);
                cb_token_generate(one);
                ASSERT_EQ(strlen(one), CB_TOKEN_LEN);
                ASSERT_MEMEQ(one, "cbt_", 4);
                for (size_t k = CB_TOKEN_PREFIX_LEN; k < CB_TOKEN_LEN; k++)
                        ASSERT_TRUE(ref_value((unsigned char)one[k]) >= 0);
                /* MSB first: 2^32 / 62^5 < 5, so the leading CRC digit is 0-4. */
                ASSERT_TRUE(one[CB_TOKEN_PREFIX_LEN + CB_TOKEN_BODY_LEN] >= '0' &&
                            one[CB_TOKEN_PREFIX_LEN + CB_TOKEN_BODY_LEN] <= '4');
                ASSERT_OK(cb_base62_parse_u32(one + CB_TOKEN_PREFIX_LEN + CB_TOKEN_BODY_LEN, &crc));
                ASSERT_EQ(crc, cb_crc32(one + CB_TOKEN_PREFIX_LEN, CB_TOKEN_BODY_LEN));
                ASSERT_EQ(cb_token_check(one, CB_TOKEN_LEN), 0);
                memcpy(t[i], one, CB_TOKEN_LEN + 1);
                free(one);
        }
        qsort(t, N, sizeof(*t), cmp_tok);
        for (size_t i = 1; i < N; i++)
                ASSERT_TRUE(memcmp(t[i - 1], t[i], CB_TOKEN_LEN) != 0);
        free(t);
}

TEST(token_single_substitution) {
        setup();
        for (int n = 0; n < 200; n++) {
                char tok[CB_TOKEN_LEN + 1];

                cb_token_generate(tok);
                for (size_t pos = 0; pos < CB_TOKEN_LEN; pos++) {
                        char orig = tok[pos];

                        for (int c = 0; c < 256; c++) {
                                int r;

                                if ((char)c == orig)
                                        continue;
                                tok[pos] = (char)c;
                                r = cb_token_check(tok, CB_TOKEN_LEN);
                                /* CRC32 catches every burst of <= 32 bits, so
                                 * one changed character in the body can never
                                 * pass; a changed checksum digit changes the
                                 * value it encodes. */
                                if (pos < CB_TOKEN_PREFIX_LEN || ref_value((unsigned char)c) < 0)
                                        ASSERT_ERR(r, -EINVAL);
                                else
                                        ASSERT_ERR(r, -EBADMSG);
                        }
                        tok[pos] = orig;
                }
                ASSERT_EQ(cb_token_check(tok, CB_TOKEN_LEN), 0);
        }
}

TEST(token_adjacent_swap) {
        setup();
        for (int n = 0; n < 2000; n++) {
                char tok[CB_TOKEN_LEN + 1];

                cb_token_generate(tok);
                for (size_t pos = CB_TOKEN_PREFIX_LEN; pos + 1 < CB_TOKEN_PREFIX_LEN + CB_TOKEN_BODY_LEN; pos++) {
                        char a = tok[pos], b = tok[pos + 1];

                        if (a == b)
                                continue;
                        tok[pos] = b;
                        tok[pos + 1] = a;
                        /* A transposition is a burst of at most 16 bits. */
                        ASSERT_ERR(cb_token_check(tok, CB_TOKEN_LEN), -EBADMSG);
                        tok[pos] = a;
                        tok[pos + 1] = b;
                }
        }
}

TEST(token_malformed) {
        char tok[CB_TOKEN_LEN + 2];
        char *exact;

        setup();
        cb_token_generate(tok);
        ASSERT_EQ(cb_token_check(tok, CB_TOKEN_LEN), 0);

        /* Length. */
        ASSERT_ERR(cb_token_check(tok, 0), -EINVAL);
        ASSERT_ERR(cb_token_check("", 0), -EINVAL);
        ASSERT_ERR(cb_token_check(NULL, 0), -EINVAL);
        ASSERT_ERR(cb_token_check(tok, CB_TOKEN_LEN - 1), -EINVAL);
        ASSERT_ERR(cb_token_check(tok, CB_TOKEN_PREFIX_LEN), -EINVAL);
        tok[CB_TOKEN_LEN] = '0';
        tok[CB_TOKEN_LEN + 1] = '\0';
        ASSERT_ERR(cb_token_check(tok, CB_TOKEN_LEN + 1), -EINVAL);
        ASSERT_ERR(cb_token_check(tok, SIZE_MAX), -EINVAL);
        ASSERT_EQ(cb_token_check(tok, CB_TOKEN_LEN), 0);
        tok[CB_TOKEN_LEN] = '\0';

        /* Prefix: case, lookalikes, another vendor's. */
        static const char *const prefixes[] = { "CBT_", "cbT_", "cbt-", "cbt.", "cbu_", "ghp_", "\0bt_" };
        for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
                char t2[CB_TOKEN_LEN + 1];

                memcpy(t2, tok, sizeof(t2));
                memcpy(t2, prefixes[i], CB_TOKEN_PREFIX_LEN);
                ASSERT_ERR(cb_token_check(t2, CB_TOKEN_LEN), -EINVAL);
        }

        /* Non-base62 characters in the body and in the checksum. */
        static const char badc[] = { '-', '_', ' ', '\0', '\n', '+', '/', '=', '~', (char)0xff, (char)0x80 };
        for (size_t i = 0; i < sizeof(badc); i++)
                for (size_t pos = CB_TOKEN_PREFIX_LEN; pos < CB_TOKEN_LEN; pos += 7) {
                        char t2[CB_TOKEN_LEN + 1];

                        memcpy(t2, tok, sizeof(t2));
                        t2[pos] = badc[i];
                        ASSERT_ERR(cb_token_check(t2, CB_TOKEN_LEN), -EINVAL);
                }

        /* Not NUL-terminated, in an exact-size block: check must stay inside
         * [s, s + len) (ASan reports any overread). */
        exact = malloc(CB_TOKEN_LEN);
        ASSERT_TRUE(exact);
        memcpy(exact, tok, CB_TOKEN_LEN);
        ASSERT_EQ(cb_token_check(exact, CB_TOKEN_LEN), 0);
        free(exact);
}

/* Pearson's chi-square against the uniform distribution over 62 symbols. */
static double chi_square(const unsigned long counts[62], unsigned long total) {
        double e = (double)total / 62, x = 0;

        for (size_t i = 0; i < 62; i++) {
                double d = (double)counts[i] - e;

                x += d * d / e;
        }
        return x;
}

TEST(token_body_uniform) {
        enum { N = 20000 };
        /* 61 degrees of freedom: mean 61, sd ~11; P(chi2 > 200) ~ 1e-16, so
         * this never flakes, while a byte-mod-62 generator scores ~3800 on
         * the pooled counts and a stuck position scores ~1.2e6. */
        const double bound = 200.0;
        static unsigned long pooled[62], per_pos[CB_TOKEN_BODY_LEN][62];

        setup();
        memset(pooled, 0, sizeof(pooled));
        memset(per_pos, 0, sizeof(per_pos));
        for (int n = 0; n < N; n++) {
                char tok[CB_TOKEN_LEN + 1];

                cb_token_generate(tok);
                for (size_t k = 0; k < CB_TOKEN_BODY_LEN; k++) {
                        int v = ref_value((unsigned char)tok[CB_TOKEN_PREFIX_LEN + k]);

                        ASSERT_TRUE(v >= 0);
                        pooled[v]++;
                        per_pos[k][v]++;
                }
        }
        double x = chi_square(pooled, (unsigned long)N * CB_TOKEN_BODY_LEN);
        printf("     pooled chi2 = %.1f (df 61)\n", x);
        if (!(x < bound))
                cbtest_fail(__FILE__, __LINE__, "pooled chi-square %.1f >= %.1f", x, bound);
        for (size_t k = 0; k < CB_TOKEN_BODY_LEN; k++) {
                x = chi_square(per_pos[k], N);
                if (!(x < bound))
                        cbtest_fail(__FILE__, __LINE__, "position %zu chi-square %.1f >= %.1f", k, x, bound);
        }
}

TEST(token_with_extra_bytes) {
        unsigned char a[CB_TOKEN_EXTRA_MAX], b[CB_TOKEN_EXTRA_MAX];
        char t1[CB_TOKEN_LEN + 1], t2[CB_TOKEN_LEN + 1];

        cb_token_generate_extra(t1, a, sizeof(a));
        cb_token_generate_extra(t2, b, sizeof(b));
        ASSERT_OK(cb_token_check(t1, strlen(t1)));
        ASSERT_OK(cb_token_check(t2, strlen(t2)));
        ASSERT_TRUE(strcmp(t1, t2) != 0);
        ASSERT_TRUE(memcmp(a, b, sizeof(a)) != 0);
        /* Filled (not left zero), and NULL/0 asks for none. */
        unsigned char zero[CB_TOKEN_EXTRA_MAX] = { 0 };
        ASSERT_TRUE(memcmp(a, zero, sizeof(a)) != 0);
        cb_token_generate_extra(t1, NULL, 0);
        ASSERT_OK(cb_token_check(t1, strlen(t1)));
}

/* Names a caller chose reach the operator's terminal only as inert text. */
TEST(text_safe_for_terminals) {
        static const struct {
                const char *in, *out;
                size_t bad;
        } cases[] = {
                { "/usr/bin/python3.11", "/usr/bin/python3.11", 0 },
                { "caf\xc3\xa9 \xe2\x88\x95usr", "caf\xc3\xa9 \xe2\x88\x95usr", 0 }, /* printable UTF-8 stays */
                { "a\nb\rc\x1b[2Kd\x7f", "a?b?c?[2Kd?", 4 },
                { "x\xc2\x9b" "2K\xc2\x85y", "x??2K??y", 4 },                     /* C1 CSI, NEL */
                { "\xe2\x80\xae" "gpj.exe", "???gpj.exe", 3 },                    /* RIGHT-TO-LEFT OVERRIDE */
                { "\xe2\x81\xa6" "a", "???a", 3 },                                 /* LRI */
                { "lone \x9b csi", "lone ? csi", 1 },                              /* 8-bit CSI byte */
                { "\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80", "?? ??? ????", 9 },   /* overlong, surrogate, > U+10FFFF */
                { "cut \xe2\x82", "cut ??", 2 },                                   /* truncated sequence */
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char b[64];
                size_t n = strlen(cases[i].in);

                memcpy(b, cases[i].in, n + 1);
                ASSERT_EQ(cb_text_safe(b, n), cases[i].bad);
                ASSERT_STREQ(b, cases[i].out);
        }
}
