/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client/mask.c: the streaming output equals a one-shot reference for every
 * way of cutting the input into chunks.  The reference below is written
 * from the definition in mask.h (all occurrences, union of their bytes,
 * maximal occurrences by pairwise containment), not from mask.c's loop.
 */
#include "cbtest.h"
#include "mask.h"

struct out {
        unsigned char *p;
        size_t n, cap;
        int fail_after; /* >0: the n-th call fails with -EPIPE */
        int calls;
};

static int collect(void *userdata, const void *p, size_t n) {
        struct out *o = userdata;

        if (o->fail_after && ++o->calls >= o->fail_after)
                return -EPIPE;
        if (o->n + n + 1 > o->cap) {
                o->cap = (o->n + n + 1) * 2;
                o->p = realloc(o->p, o->cap);
                if (!o->p)
                        abort();
        }
        memcpy(o->p + o->n, p, n);
        o->n += n;
        o->p[o->n] = 0;
        return 0;
}

static void out_reset(struct out *o) {
        free(o->p);
        memset(o, 0, sizeof(*o));
}

struct nd {
        const unsigned char *p;
        size_t len;
        const char *label;
};

#define ND(s, l) { (const unsigned char *)(s), sizeof(s) - 1, (l) }

/* One-shot reference. */
static void reference(const struct nd *nds, size_t nn, const unsigned char *in, size_t len, struct out *o) {
        bool *covered = calloc(len + 1, 1);
        int *longest = malloc((len + 1) * sizeof(int));
        char marker[256];

        ASSERT_TRUE(covered && longest);
        /* Every occurrence of every needle: mark its bytes; note the longest
         * needle starting at each position.  Equal needles: the first wins. */
        for (size_t p = 0; p < len; p++) {
                longest[p] = -1;
                for (size_t i = 0; i < nn; i++) {
                        if (nds[i].len > len - p || memcmp(in + p, nds[i].p, nds[i].len) != 0)
                                continue;
                        for (size_t k = 0; k < nds[i].len; k++)
                                covered[p + k] = true;
                        if (longest[p] < 0 || nds[i].len > nds[longest[p]].len)
                                longest[p] = (int)i;
                }
        }
        for (size_t p = 0; p < len; p++) {
                if (longest[p] >= 0) {
                        size_t end = p + nds[longest[p]].len;
                        bool contained = false;
                        /* Inside any occurrence that starts earlier? */
                        for (size_t q = p > 70000 ? p - 70000 : 0; q < p && !contained; q++)
                                for (size_t i = 0; i < nn && !contained; i++)
                                        if (nds[i].len <= len - q && memcmp(in + q, nds[i].p, nds[i].len) == 0 &&
                                            q + nds[i].len >= end)
                                                contained = true;
                        if (!contained) {
                                int k = snprintf(marker, sizeof(marker), "[REDACTED:%s]", nds[longest[p]].label);
                                collect(o, marker, (size_t)k);
                        }
                }
                if (!covered[p])
                        collect(o, in + p, 1);
        }
        free(covered);
        free(longest);
}

static mask *make_mask(const struct nd *nds, size_t nn) {
        mask *m;

        ASSERT_OK(mask_new(&m));
        for (size_t i = 0; i < nn; i++)
                ASSERT_OK(mask_add(m, nds[i].p, nds[i].len, nds[i].label));
        return m;
}

/* Feed in[0..len) cut at the given offsets (ascending), finish, compare. */
static void check_cuts(mask *m, const struct out *want, const unsigned char *in, size_t len, const size_t *cuts,
                       size_t ncuts) {
        struct out got = {};
        size_t prev = 0;

        for (size_t i = 0; i <= ncuts; i++) {
                size_t next = i < ncuts ? cuts[i] : len;
                ASSERT_OK(mask_feed(m, in + prev, next - prev, collect, &got));
                ASSERT_TRUE(mask_pending(m) < (mask_longest(m) ? mask_longest(m) : 1));
                prev = next;
        }
        ASSERT_OK(mask_finish(m, collect, &got));
        ASSERT_EQ(mask_pending(m), 0);
        if (got.n != want->n || (got.n && memcmp(got.p, want->p, got.n) != 0))
                cbtest_fail(__FILE__, __LINE__, "cuts (%zu of them, first %zu): got %zu bytes \"%.*s\", want %zu \"%.*s\"",
                            ncuts, ncuts ? cuts[0] : 0, got.n, (int)got.n, got.p ? (char *)got.p : "", want->n,
                            (int)want->n, want->p ? (char *)want->p : "");
        out_reset(&got);
}

/* Every single cut, every pair of cuts (short inputs), every chunk size. */
static void check_all_splits(const struct nd *nds, size_t nn, const void *input, size_t len) {
        const unsigned char *in = input;
        struct out want = {};
        mask *m = make_mask(nds, nn);
        size_t cuts[2];

        reference(nds, nn, in, len, &want);
        check_cuts(m, &want, in, len, NULL, 0);
        for (size_t a = 0; a <= len; a++) {
                cuts[0] = a;
                check_cuts(m, &want, in, len, cuts, 1);
                if (len <= 96)
                        for (size_t b = a; b <= len; b++) {
                                cuts[1] = b;
                                check_cuts(m, &want, in, len, cuts, 2);
                        }
        }
        for (size_t chunk = 1; chunk <= len; chunk++) {
                struct out got = {};
                for (size_t p = 0; p < len; p += chunk)
                        ASSERT_OK(mask_feed(m, in + p, p + chunk <= len ? chunk : len - p, collect, &got));
                ASSERT_OK(mask_finish(m, collect, &got));
                ASSERT_EQ(got.n, want.n);
                if (want.n)
                        ASSERT_MEMEQ(got.p, want.p, want.n);
                out_reset(&got);
        }
        mask_free(m);
        out_reset(&want);
}

/* One-shot output as a string (for the hand-written expectations). */
static char *one_shot(const struct nd *nds, size_t nn, const char *in) {
        struct out got = {};
        mask *m = make_mask(nds, nn);

        ASSERT_OK(mask_feed(m, in, strlen(in), collect, &got));
        ASSERT_OK(mask_finish(m, collect, &got));
        mask_free(m);
        if (!got.p)
                return strdup("");
        return (char *)got.p;
}

static void expect(const struct nd *nds, size_t nn, const char *in, const char *want) {
        char *got = one_shot(nds, nn, in);
        struct out ref = {};

        ASSERT_STREQ(got, want);
        reference(nds, nn, (const unsigned char *)in, strlen(in), &ref);
        ASSERT_STREQ(ref.p ? (char *)ref.p : "", want);
        free(got);
        out_reset(&ref);
        check_all_splits(nds, nn, in, strlen(in));
}

TEST(semantics_by_example) {
        const struct nd s[] = { ND("SECRET", "s") };
        const struct nd ab[] = { ND("abab", "a") };
        const struct nd pre[] = { ND("abc", "A"), ND("abcdef", "B") };
        const struct nd ovl[] = { ND("key123", "A"), ND("123pass", "B") };
        const struct nd inner[] = { ND("abcdef", "B"), ND("cde", "C") };
        const struct nd one[] = { ND("x", "X") };

        expect(s, 1, "", "");
        expect(s, 1, "no secret here", "no secret here");
        expect(s, 1, "x SECRET y", "x [REDACTED:s] y");
        expect(s, 1, "SECRETSECRET", "[REDACTED:s][REDACTED:s]");
        expect(s, 1, "SECRE SECRET SECRETS", "SECRE [REDACTED:s] [REDACTED:s]S");
        expect(s, 1, "SSECRETT", "S[REDACTED:s]T");
        expect(ab, 1, "ababab", "[REDACTED:a][REDACTED:a]");
        expect(ab, 1, "abababa", "[REDACTED:a][REDACTED:a]a");
        expect(ab, 1, "aba", "aba");
        expect(pre, 2, "abcdef abc abcde", "[REDACTED:B] [REDACTED:A] [REDACTED:A]de");
        expect(pre, 2, "abcabcdef", "[REDACTED:A][REDACTED:B]");
        expect(ovl, 2, "key123pass", "[REDACTED:A][REDACTED:B]");
        expect(ovl, 2, "123pass key123", "[REDACTED:B] [REDACTED:A]");
        expect(inner, 2, "xabcdefx cde", "x[REDACTED:B]x [REDACTED:C]");
        /* A one-byte value: every occurrence goes (documented false positives). */
        expect(one, 1, "xx box", "[REDACTED:X][REDACTED:X] bo[REDACTED:X]");
}

TEST(binary_values_with_nul) {
        static const unsigned char v1[] = { 0, 1, 0 };
        static const unsigned char v2[] = { 'a', 0, 'b', 0xff };
        static const unsigned char v3[] = { 0 , 1, 0, 1, 0 };
        const struct nd nds[] = { { v1, sizeof(v1), "n1" }, { v2, sizeof(v2), "n2" }, { v3, sizeof(v3), "n3" } };
        static const unsigned char in[] = { 'x', 0, 1, 0, 1, 0, 1, 0, 'a', 0, 'b', 0xff, 0, 1, 'a', 0, 'b',
                                            0,   0, 1, 0, 'a', 0, 'b', 0xff, 0xff, 0, 0, 1, 0 };

        check_all_splits(nds, 3, in, sizeof(in));
}

TEST(overlapping_adjacent_prefix_mix) {
        const struct nd nds[] = { ND("aa", "two"), ND("aaa", "three"), ND("ab", "ab"), ND("ba", "ba"),
                                  ND("abba", "abba") };

        check_all_splits(nds, 5, "aaaaabaabbaaabababbbaaab", 24);
        check_all_splits(nds, 5, "abbabbaabbaaaa", 14);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return (uint32_t)(rng_state >> 11);
}

TEST(random_small_alphabet) {
        /* Alphabet {a, b, NUL}: overlaps, prefixes and adjacency galore. */
        static const unsigned char alpha[] = { 'a', 'b', 0 };
        static char labels[6][24];
        unsigned char nb[6][6], in[48];
        struct nd nds[6];

        for (int round = 0; round < 300; round++) {
                size_t nn = 1 + rnd() % 4, len = rnd() % sizeof(in);
                for (size_t i = 0; i < nn; i++) {
                        nds[i].len = 1 + rnd() % 5;
                        for (size_t k = 0; k < nds[i].len; k++)
                                nb[i][k] = alpha[rnd() % 3];
                        nds[i].p = nb[i];
                        snprintf(labels[i], sizeof(labels[i]), "L%zu", i);
                        nds[i].label = labels[i];
                }
                /* mask_add keeps the first of equal needles; so does the
                 * reference (strictly longer wins), but drop exact duplicates
                 * so labels agree trivially. */
                for (size_t i = 1; i < nn; i++)
                        for (size_t j = 0; j < i; j++)
                                if (nds[i].len == nds[j].len && memcmp(nds[i].p, nds[j].p, nds[i].len) == 0) {
                                        nds[i] = nds[--nn];
                                        i--;
                                        break;
                                }
                for (size_t k = 0; k < len; k++)
                        in[k] = alpha[rnd() % 3];
                check_all_splits(nds, nn, in, len);
        }
}

TEST(large_stream_crosses_internal_buffer) {
        const struct nd nds[] = { ND("sk-live-0123456789abcdefghijklmnopqrstuvwxyz", "api"), ND("hunter2", "pw"),
                                  ND("sk-live-0123", "short") };
        size_t len = 200000, chunks[] = { 1, 7, 4095, 16384, 16385, 16427, 65536, 200000 };
        unsigned char *in = malloc(len);
        struct out want = {};

        ASSERT_TRUE(in != NULL);
        for (size_t i = 0; i < len; i++)
                in[i] = (unsigned char)("0123456789abcdef sk-liveh\n"[rnd() % 26]);
        for (size_t p = 100; p + 50 < len; p += 997 + rnd() % 5000) {
                const struct nd *n = &nds[rnd() % 3];
                memcpy(in + p, n->p, n->len);
        }
        /* Straddle the 16 KiB internal chunk boundary exactly. */
        memcpy(in + 16384 - 5, nds[0].p, nds[0].len);
        reference(nds, 3, in, len, &want);
        ASSERT_TRUE(want.n < len); /* something was masked */
        for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
                struct out got = {};
                mask *m = make_mask(nds, 3);
                for (size_t p = 0; p < len; p += chunks[c]) {
                        ASSERT_OK(mask_feed(m, in + p, p + chunks[c] <= len ? chunks[c] : len - p, collect, &got));
                        ASSERT_TRUE(mask_pending(m) <= mask_longest(m) - 1);
                }
                ASSERT_OK(mask_finish(m, collect, &got));
                ASSERT_EQ(got.n, want.n);
                ASSERT_MEMEQ(got.p, want.p, want.n);
                out_reset(&got);
                mask_free(m);
        }
        out_reset(&want);
        free(in);
}

TEST(holds_back_only_a_possible_prefix) {
        const struct nd nds[] = { ND("SECRET", "s") };
        struct out got = {};
        mask *m = make_mask(nds, 1);

        /* A prompt that cannot start the value is written at once. */
        ASSERT_OK(mask_feed(m, "Password: ", 10, collect, &got));
        ASSERT_EQ(mask_pending(m), 0);
        ASSERT_EQ(got.n, 10);
        ASSERT_OK(mask_feed(m, "SECR", 4, collect, &got));
        ASSERT_EQ(mask_pending(m), 4);
        ASSERT_EQ(got.n, 10);
        ASSERT_OK(mask_feed(m, "EX", 2, collect, &got));
        ASSERT_EQ(mask_pending(m), 0);
        ASSERT_STREQ((char *)got.p, "Password: SECREX");
        ASSERT_OK(mask_feed(m, "SECRE", 5, collect, &got));
        ASSERT_EQ(mask_pending(m), 5);
        ASSERT_OK(mask_feed(m, "T", 1, collect, &got));
        ASSERT_EQ(mask_pending(m), 0);
        ASSERT_STREQ((char *)got.p, "Password: SECREX[REDACTED:s]");
        /* A truncated value at the end of the stream is written as is. */
        ASSERT_OK(mask_feed(m, "SECRE", 5, collect, &got));
        ASSERT_OK(mask_finish(m, collect, &got));
        ASSERT_STREQ((char *)got.p, "Password: SECREX[REDACTED:s]SECRE");
        out_reset(&got);
        mask_free(m);
}

TEST(no_needles_pass_through) {
        struct out got = {};
        mask *m;

        ASSERT_OK(mask_new(&m));
        ASSERT_OK(mask_feed(m, "a\0b", 3, collect, &got));
        ASSERT_OK(mask_finish(m, collect, &got));
        ASSERT_EQ(got.n, 3);
        ASSERT_MEMEQ(got.p, "a\0b", 3);
        out_reset(&got);
        mask_free(m);
}

TEST(bad_input_and_errors) {
        struct out got = {};
        mask *m;

        ASSERT_OK(mask_new(&m));
        ASSERT_ERR(mask_add(m, "", 0, "x"), -EINVAL);
        ASSERT_ERR(mask_add(m, "v", 1, ""), -EINVAL);
        ASSERT_ERR(mask_add(m, "v", 1, "a]b"), -EINVAL);
        ASSERT_ERR(mask_add(m, "v", 1, "tab\there"), -EINVAL);
        ASSERT_ERR(mask_add(m, "v", 1, NULL), -EINVAL);
        ASSERT_OK(mask_add(m, "value", 5, "v"));
        ASSERT_OK(mask_add(m, "value", 5, "dup")); /* same bytes: first label kept */
        for (int i = 1; i < MASK_NEEDLES_MAX; i++) {
                char b[16];
                int k = snprintf(b, sizeof(b), "n%d", i);
                ASSERT_OK(mask_add(m, b, (size_t)k, "n"));
        }
        ASSERT_ERR(mask_add(m, "one more", 8, "x"), -E2BIG);
        ASSERT_OK(mask_feed(m, "a value", 7, collect, &got));
        ASSERT_ERR(mask_add(m, "late", 4, "x"), -EINVAL);
        ASSERT_OK(mask_finish(m, collect, &got));
        ASSERT_STREQ((char *)got.p, "a [REDACTED:v]");
        out_reset(&got);
        /* A failing sink stops the feed with its error. */
        got.fail_after = 2;
        ASSERT_ERR(mask_feed(m, "x value y", 9, collect, &got), -EPIPE);
        out_reset(&got);
        mask_free(m);
        mask_free(NULL);

        ASSERT_OK(mask_new(&m));
        {
                unsigned char *big = calloc(1, MASK_NEEDLE_MAX + 1);
                ASSERT_TRUE(big != NULL);
                ASSERT_ERR(mask_add(m, big, MASK_NEEDLE_MAX + 1, "big"), -E2BIG);
                free(big);
        }
        mask_free(m);
}
