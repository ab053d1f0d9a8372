/* SPDX-License-Identifier: Apache-2.0 */
#include "buf.h"
#include "cbtest.h"

static bool all_zero(const unsigned char *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

/* Builds the same record every round-trip test reads back. */
static void build_record(cb_buf *b) {
        ASSERT_OK(cb_buf_put_u8(b, 0xAB));
        ASSERT_OK(cb_buf_put_u32(b, 0xDEADBEEFu));
        ASSERT_OK(cb_buf_put_u64(b, UINT64_C(0x0123456789ABCDEF)));
        ASSERT_OK(cb_buf_put_lv(b, "hello", 5));
        ASSERT_OK(cb_buf_put_lv(b, "", 0));
        ASSERT_OK(cb_buf_put(b, "xyz", 3));
        ASSERT_OK(cb_buf_put(b, "", 0));
        ASSERT_OK(cb_buf_put_lv(b, "name-1", 6));
}

TEST(layout_big_endian) {
        /* The wire format is fixed: a reader on another host must agree. */
        static const unsigned char want[] = {
                0xAB,
                0xDE, 0xAD, 0xBE, 0xEF,
                0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF,
                0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o',
                0, 0, 0, 0,
                'x', 'y', 'z',
                0, 0, 0, 6, 'n', 'a', 'm', 'e', '-', '1',
        };
        cb_buf b = CB_BUF_INIT;

        build_record(&b);
        ASSERT_EQ(b.len, sizeof(want));
        ASSERT_TRUE(b.cap >= b.len);
        ASSERT_MEMEQ(b.data, want, sizeof(want));
        cb_buf_free(&b);
}

TEST(round_trip) {
        cb_buf b = CB_BUF_INIT;
        cb_reader r;
        uint8_t u8;
        uint32_t u32;
        uint64_t u64;
        const unsigned char *p;
        size_t n;
        char *s = NULL;

        build_record(&b);
        r = cb_reader_make(b.data, b.len);
        ASSERT_EQ(cb_reader_left(&r), b.len);
        ASSERT_OK(cb_reader_u8(&r, &u8));
        ASSERT_EQ(u8, 0xAB);
        ASSERT_OK(cb_reader_u32(&r, &u32));
        ASSERT_EQ(u32, 0xDEADBEEFu);
        ASSERT_OK(cb_reader_u64(&r, &u64));
        ASSERT_TRUE(u64 == UINT64_C(0x0123456789ABCDEF));
        ASSERT_OK(cb_reader_lv(&r, 5, &p, &n));
        ASSERT_EQ(n, 5);
        ASSERT_MEMEQ(p, "hello", 5);
        ASSERT_TRUE(p >= b.data && p < b.data + b.len); /* points into the input */
        ASSERT_OK(cb_reader_lv(&r, 0, &p, &n));
        ASSERT_EQ(n, 0);
        ASSERT_OK(cb_reader_bytes(&r, 3, &p));
        ASSERT_MEMEQ(p, "xyz", 3);
        ASSERT_OK(cb_reader_text(&r, 6, &s));
        ASSERT_STREQ(s, "name-1");
        free(s);
        ASSERT_EQ(cb_reader_left(&r), 0);
        ASSERT_OK(cb_reader_end(&r));
        cb_buf_free(&b);
}

TEST(u32_u64_at) {
        unsigned char t[8];
        static const uint32_t v32[] = { 0, 1, 0x80000000u, 0xFFFFFFFFu, 0x01020304u };
        static const uint64_t v64[] = { 0, 1, UINT64_C(0x8000000000000000), UINT64_MAX,
                                        UINT64_C(0x0102030405060708) };

        cb_put_u32_at(t, 0x01020304u);
        ASSERT_MEMEQ(t, "\x01\x02\x03\x04", 4);
        cb_put_u64_at(t, UINT64_C(0x0102030405060708));
        ASSERT_MEMEQ(t, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
        for (size_t i = 0; i < sizeof(v32) / sizeof(v32[0]); i++) {
                cb_put_u32_at(t, v32[i]);
                ASSERT_EQ(cb_get_u32_at(t), v32[i]);
        }
        for (size_t i = 0; i < sizeof(v64) / sizeof(v64[0]); i++) {
                cb_put_u64_at(t, v64[i]);
                ASSERT_TRUE(cb_get_u64_at(t) == v64[i]);
        }
}

TEST(growth_keeps_contents) {
        cb_buf b = CB_BUF_INIT;
        unsigned char chunk[1024];
        size_t total = 0;

        /* Uneven chunk sizes so reallocation happens mid-chunk. */
        for (size_t k = 1; total < 200000; k = k % 997 + 13) {
                for (size_t i = 0; i < k; i++)
                        chunk[i] = (unsigned char)((total + i) * 31 + 7);
                ASSERT_OK(cb_buf_put(&b, chunk, k));
                total += k;
                ASSERT_EQ(b.len, total);
                ASSERT_TRUE(b.cap >= b.len && b.cap <= CB_BUF_MAX);
        }
        for (size_t i = 0; i < total; i++)
                if (b.data[i] != (unsigned char)(i * 31 + 7))
                        cbtest_fail(__FILE__, __LINE__, "byte %zu lost on growth", i);
        cb_buf_free(&b);
}

TEST(reset_and_free) {
        cb_buf b = CB_BUF_INIT;
        unsigned char *data;
        size_t cap;

        cb_buf_free(&b); /* on an empty buffer */
        ASSERT_OK(cb_buf_put(&b, "secret-ish", 10));
        data = b.data;
        cap = b.cap;
        cb_buf_reset(&b);
        ASSERT_EQ(b.len, 0);
        ASSERT_TRUE(b.data == data);
        ASSERT_EQ(b.cap, cap);
        ASSERT_TRUE(all_zero(b.data, 10)); /* wiped, not just forgotten */
        ASSERT_OK(cb_buf_put_u8(&b, 9));
        ASSERT_EQ(b.len, 1);
        ASSERT_EQ(b.data[0], 9);
        cb_buf_free(&b);
        ASSERT_TRUE(b.data == NULL);
        ASSERT_EQ(b.len, 0);
        ASSERT_EQ(b.cap, 0);
        cb_buf_free(&b); /* twice is fine */
}

TEST(reserve_caps) {
        cb_buf b = CB_BUF_INIT;
        unsigned char small[4] = { 1, 2, 3, 4 };
        unsigned char *data;
        size_t cap;

        /* Refused before any allocation: nothing changes. */
        ASSERT_ERR(cb_buf_reserve(&b, CB_BUF_MAX + 1), -E2BIG);
        ASSERT_ERR(cb_buf_reserve(&b, SIZE_MAX), -E2BIG);
        ASSERT_TRUE(b.data == NULL);
        ASSERT_EQ(b.cap, 0);

        ASSERT_OK(cb_buf_put(&b, "0123456789", 10));
        data = b.data;
        cap = b.cap;
        /* One byte over the cap counting what is already held. */
        ASSERT_ERR(cb_buf_reserve(&b, CB_BUF_MAX - 10 + 1), -E2BIG);
        /* len + extra would wrap around. */
        ASSERT_ERR(cb_buf_reserve(&b, SIZE_MAX - 5), -E2BIG);
        /* A huge put fails the same way and never reads its source. */
        ASSERT_ERR(cb_buf_put(&b, small, CB_BUF_MAX), -E2BIG);
        ASSERT_ERR(cb_buf_put(&b, small, SIZE_MAX), -E2BIG);
#if SIZE_MAX > UINT32_MAX
        /* The length prefix is 32 bits: refuse rather than truncate it. */
        ASSERT_ERR(cb_buf_put_lv(&b, small, (size_t)UINT32_MAX + 1), -E2BIG);
#endif
        ASSERT_TRUE(b.data == data);
        ASSERT_EQ(b.cap, cap);
        ASSERT_EQ(b.len, 10);
        ASSERT_MEMEQ(b.data, "0123456789", 10);

        /* An ordinary reservation still works and really reserves. */
        ASSERT_OK(cb_buf_reserve(&b, 1 << 20));
        ASSERT_TRUE(b.cap >= 10 + (1 << 20));
        ASSERT_EQ(b.len, 10);
        ASSERT_MEMEQ(b.data, "0123456789", 10);
        cb_buf_free(&b);
}

TEST(reader_short_input) {
        static const unsigned char in[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
        cb_reader r;
        uint8_t u8 = 0x5A;
        uint32_t u32 = 0x5A5A5A5Au;
        uint64_t u64 = 0x5A5A5A5Au;
        const unsigned char *p = NULL;
        unsigned char dst[8] = { 0 };

        r = cb_reader_make(in, 0);
        ASSERT_ERR(cb_reader_u8(&r, &u8), -EBADMSG);
        ASSERT_EQ(u8, 0x5A);
        ASSERT_OK(cb_reader_end(&r));

        r = cb_reader_make(in, 3);
        ASSERT_ERR(cb_reader_u32(&r, &u32), -EBADMSG);
        ASSERT_EQ(u32, 0x5A5A5A5Au);

        r = cb_reader_make(in, 7);
        ASSERT_ERR(cb_reader_u64(&r, &u64), -EBADMSG);
        ASSERT_EQ(u64, 0x5A5A5A5Au);

        r = cb_reader_make(in, 4);
        ASSERT_ERR(cb_reader_bytes(&r, 5, &p), -EBADMSG);
        ASSERT_TRUE(p == NULL);
        ASSERT_ERR(cb_reader_bytes(&r, SIZE_MAX, &p), -EBADMSG);
        ASSERT_TRUE(p == NULL);
        ASSERT_ERR(cb_reader_copy(&r, dst, 5), -EBADMSG);
        ASSERT_TRUE(all_zero(dst, sizeof(dst)));
        ASSERT_OK(cb_reader_bytes(&r, 0, &p));
        ASSERT_OK(cb_reader_copy(&r, dst, 4));
        ASSERT_MEMEQ(dst, in, 4);

        /* Short only after earlier reads consumed part of the input. */
        r = cb_reader_make(in, 6);
        ASSERT_OK(cb_reader_u32(&r, &u32));
        ASSERT_EQ(u32, 0x01020304u);
        ASSERT_EQ(cb_reader_left(&r), 2);
        ASSERT_ERR(cb_reader_u32(&r, &u32), -EBADMSG);
        ASSERT_EQ(u32, 0x01020304u);
        ASSERT_ERR(cb_reader_u64(&r, &u64), -EBADMSG);
        /* off + n must not wrap around to look in bounds. */
        p = NULL;
        ASSERT_ERR(cb_reader_bytes(&r, SIZE_MAX, &p), -EBADMSG);
        ASSERT_ERR(cb_reader_bytes(&r, SIZE_MAX - 3, &p), -EBADMSG);
        ASSERT_TRUE(p == NULL);
}

TEST(reader_lv_limits) {
        static const unsigned char ten[] = { 0, 0, 0, 10, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j' };
        static const unsigned char beyond[] = { 0, 0, 0, 5, 'a', 'b', 'c', 'd' };
        static const unsigned char huge[] = { 0xFF, 0xFF, 0xFF, 0xFF, 'a', 'b', 'c', 'd' };
        static const unsigned char cut[] = { 0, 0, 0 };
        const unsigned char *p = NULL;
        size_t n = 12345;
        cb_reader r;

        /* Longer than the caller's cap, though present in the input. */
        r = cb_reader_make(ten, sizeof(ten));
        ASSERT_ERR(cb_reader_lv(&r, 9, &p, &n), -EBADMSG);
        ASSERT_TRUE(p == NULL);
        ASSERT_EQ(n, 12345);
        r = cb_reader_make(ten, sizeof(ten));
        ASSERT_OK(cb_reader_lv(&r, 10, &p, &n));
        ASSERT_EQ(n, 10);
        ASSERT_MEMEQ(p, "abcdefghij", 10);
        ASSERT_OK(cb_reader_end(&r));

        /* Length claims more than is there, with and without a cap. */
        p = NULL;
        n = 12345;
        r = cb_reader_make(beyond, sizeof(beyond));
        ASSERT_ERR(cb_reader_lv(&r, SIZE_MAX, &p, &n), -EBADMSG);
        r = cb_reader_make(huge, sizeof(huge));
        ASSERT_ERR(cb_reader_lv(&r, SIZE_MAX, &p, &n), -EBADMSG);
        r = cb_reader_make(cut, sizeof(cut));
        ASSERT_ERR(cb_reader_lv(&r, SIZE_MAX, &p, &n), -EBADMSG);
        ASSERT_TRUE(p == NULL);
        ASSERT_EQ(n, 12345);
}

TEST(reader_text) {
        cb_buf b = CB_BUF_INIT;
        char printable[95 + 1], sentinel[] = "untouched";
        cb_reader r;
        char *s;

        /* Every printable ASCII character is accepted and copied exactly. */
        for (int c = 0x20; c < 0x7f; c++)
                printable[c - 0x20] = (char)c;
        printable[95] = '\0';
        ASSERT_OK(cb_buf_put_lv(&b, printable, 95));
        ASSERT_OK(cb_buf_put_lv(&b, "", 0));
        r = cb_reader_make(b.data, b.len);
        s = NULL;
        ASSERT_OK(cb_reader_text(&r, 95, &s));
        ASSERT_STREQ(s, printable);
        free(s);
        s = NULL;
        ASSERT_OK(cb_reader_text(&r, 0, &s));
        ASSERT_STREQ(s, "");
        free(s);
        ASSERT_OK(cb_reader_end(&r));
        cb_buf_free(&b);

        /* Any control character or NUL, at the start, middle or end. */
        for (int c = 0; c <= 0x7f; c = c == 0x1f ? 0x7f : c + 1)
                for (size_t pos = 0; pos < 3; pos++) {
                        char t[4] = "abc";

                        t[pos] = (char)c;
                        b = (cb_buf)CB_BUF_INIT;
                        ASSERT_OK(cb_buf_put_lv(&b, t, 3));
                        r = cb_reader_make(b.data, b.len);
                        s = sentinel;
                        ASSERT_ERR(cb_reader_text(&r, 16, &s), -EBADMSG);
                        ASSERT_TRUE(s == sentinel);
                        cb_buf_free(&b);
                }

        /* Over the cap, and a length beyond the input. */
        b = (cb_buf)CB_BUF_INIT;
        ASSERT_OK(cb_buf_put_lv(&b, "abcdef", 6));
        r = cb_reader_make(b.data, b.len);
        s = sentinel;
        ASSERT_ERR(cb_reader_text(&r, 5, &s), -EBADMSG);
        r = cb_reader_make(b.data, b.len - 1);
        ASSERT_ERR(cb_reader_text(&r, 100, &s), -EBADMSG);
        ASSERT_TRUE(s == sentinel);
        cb_buf_free(&b);
}

TEST(reader_end_trailing) {
        static const unsigned char in[5] = { 0, 0, 0, 1, 0xFF };
        cb_reader r = cb_reader_make(in, sizeof(in));
        uint32_t u32;
        uint8_t u8;

        ASSERT_ERR(cb_reader_end(&r), -EBADMSG);
        ASSERT_OK(cb_reader_u32(&r, &u32));
        ASSERT_EQ(u32, 1);
        ASSERT_ERR(cb_reader_end(&r), -EBADMSG); /* one byte left over */
        ASSERT_OK(cb_reader_u8(&r, &u8));
        ASSERT_EQ(u8, 0xFF);
        ASSERT_OK(cb_reader_end(&r));
        ASSERT_EQ(cb_reader_end(&r), 0);
}

TEST(zero_length_field_points_at_position) {
        /* Regression: a zero-length read once returned the buffer start,
         * and a caller stepping back from it read before the buffer. */
        const unsigned char in[] = { 0xaa, 0xbb, 0, 0, 0, 0, 0xcc };
        cb_reader r = cb_reader_make(in, sizeof(in));
        const unsigned char *p;
        size_t n;
        uint8_t b;

        ASSERT_OK(cb_reader_u8(&r, &b));
        ASSERT_OK(cb_reader_u8(&r, &b));
        ASSERT_OK(cb_reader_lv(&r, 16, &p, &n));
        ASSERT_EQ(n, 0);
        ASSERT_TRUE(p == in + 6);
        ASSERT_OK(cb_reader_bytes(&r, 0, &p));
        ASSERT_TRUE(p == in + 6);
}
