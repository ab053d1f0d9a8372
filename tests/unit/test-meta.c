/* SPDX-License-Identifier: Apache-2.0 */
/* Metadata: validation, canonical encoding, strict decoding. */
#include "cbtest.h"
#include "error.h"
#include "meta.h"

static void round_trip(cb_meta *m) {
        cb_buf a = CB_BUF_INIT, b = CB_BUF_INIT;
        cb_meta *d;

        ASSERT_OK(cb_meta_validate(m));
        ASSERT_OK(cb_meta_encode(m, &a));
        ASSERT_OK(cb_meta_decode(a.data, a.len, &d));
        ASSERT_OK(cb_meta_encode(d, &b));
        ASSERT_EQ(a.len, b.len);
        if (a.len)
                ASSERT_MEMEQ(a.data, b.data, a.len);
        cb_meta_free(d);
        cb_buf_free(&a);
        cb_buf_free(&b);
}

TEST(empty_and_full_round_trip) {
        cb_meta m = { 0 };

        round_trip(&m);
        m.inject = strdup("x-api-key: {}");
        ASSERT_OK(cb_strv_push(&m.hosts, "api.openai.com", 64));
        ASSERT_OK(cb_strv_push(&m.hosts, "http://localhost:8080", 64));
        ASSERT_OK(cb_strv_push(&m.hosts, "[::1]:8443", 64));
        ASSERT_OK(cb_strv_push(&m.methods, "POST", 16));
        ASSERT_OK(cb_strv_push(&m.path_prefixes, "/v1/", 64));
        ASSERT_OK(cb_strv_push(&m.labels, "team=ml", 32));
        m.not_after = 1;
        round_trip(&m);
        cb_meta_clear(&m);
}

TEST(templates) {
        const char *good[] = { "Authorization: Bearer {}", "x-api-key: {}", "basic:alice", "query:key",
                               "X-Token: pre-{}-post", NULL };
        const char *bad[] = { "Authorization Bearer {}", ": {}", "x-api-key: {} {}", "x-api-key: none",
                              "basic:", "basic:a:b", "query:", "query:a b", "X-T\001k: {}", "Bad Header: {}", NULL };

        for (size_t i = 0; good[i]; i++) {
                cb_meta m = { 0 };
                m.inject = strdup(good[i]);
                ASSERT_OK(cb_meta_validate(&m));
                cb_meta_clear(&m);
        }
        for (size_t i = 0; bad[i]; i++) {
                cb_meta m = { 0 };
                m.inject = strdup(bad[i]);
                if (cb_meta_validate(&m) != -EINVAL)
                        cbtest_fail(__FILE__, __LINE__, "template accepted: %s", bad[i]);
                ASSERT_CONTAINS(cb_error_last(), "template");
                cb_meta_clear(&m);
        }
}

TEST(hosts) {
        const char *good[] = { "example.com", "a.b-c.d", "example.com:443", "http://example.com",
                               "http://127.0.0.1:8080", "10.0.0.1", "[fd00::1]:443", "EXAMPLE.COM", NULL };
        const char *bad[] = { "https://example.com", "ftp://x", "exa mple.com", "-a.com", "a-.com", "a..com",
                              "example.com:0", "example.com:65536", "example.com:", "example.com:8x", "[zz::1]",
                              "[::1", "", "a/b", "*.example.com", "http://", NULL };

        for (size_t i = 0; good[i]; i++) {
                cb_meta m = { 0 };
                ASSERT_OK(cb_strv_push(&m.hosts, good[i], 8));
                if (cb_meta_validate(&m) < 0)
                        cbtest_fail(__FILE__, __LINE__, "host refused: %s: %s", good[i], cb_error_last());
                cb_meta_clear(&m);
        }
        for (size_t i = 0; bad[i]; i++) {
                cb_meta m = { 0 };
                ASSERT_OK(cb_strv_push(&m.hosts, bad[i], 8));
                if (cb_meta_validate(&m) != -EINVAL)
                        cbtest_fail(__FILE__, __LINE__, "host accepted: %s", bad[i]);
                cb_meta_clear(&m);
        }
        /* Normalised to lower case. */
        cb_meta m = { 0 };
        ASSERT_OK(cb_strv_push(&m.hosts, "API.Example.COM", 8));
        ASSERT_OK(cb_meta_validate(&m));
        ASSERT_STREQ(m.hosts.v[0], "api.example.com");
        cb_meta_clear(&m);
}

TEST(caps) {
        cb_meta m = { 0 };
        char buf[64];

        for (int i = 0; i < CB_META_MAX_HOSTS; i++) {
                snprintf(buf, sizeof(buf), "h%d.example.com", i);
                ASSERT_OK(cb_strv_push(&m.hosts, buf, CB_META_MAX_HOSTS));
        }
        ASSERT_ERR(cb_strv_push(&m.hosts, "one-more.example.com", CB_META_MAX_HOSTS), -E2BIG);
        ASSERT_OK(cb_meta_validate(&m));
        cb_meta_clear(&m);
        ASSERT_OK(cb_strv_push(&m.path_prefixes, "no-slash", 8));
        ASSERT_ERR(cb_meta_validate(&m), -EINVAL);
        cb_meta_clear(&m);
        ASSERT_OK(cb_strv_push(&m.path_prefixes, "/a/../b", 8));
        ASSERT_ERR(cb_meta_validate(&m), -EINVAL);
        cb_meta_clear(&m);
        ASSERT_OK(cb_strv_push(&m.labels, "novalue", 8));
        ASSERT_ERR(cb_meta_validate(&m), -EINVAL);
        cb_meta_clear(&m);
        ASSERT_OK(cb_strv_push(&m.methods, "GET ", 8));
        ASSERT_ERR(cb_meta_validate(&m), -EINVAL);
        cb_meta_clear(&m);
}

TEST(strict_decoding) {
        cb_meta m = { 0 }, *d;
        cb_buf b = CB_BUF_INIT;

        m.inject = strdup("x-api-key: {}");
        ASSERT_OK(cb_strv_push(&m.hosts, "a.example", 8));
        ASSERT_OK(cb_meta_encode(&m, &b));
        /* Every prefix that cuts a field is refused (a prefix ending on a
         * field boundary is a valid, shorter encoding); so is a trailing byte. */
        size_t boundary = 1 + 4 + strlen(m.inject);
        for (size_t n = 1; n < b.len; n++)
                if (n != boundary)
                        ASSERT_ERR(cb_meta_decode(b.data, n, &d), -EBADMSG);
        ASSERT_OK(cb_buf_put_u8(&b, 0));
        ASSERT_ERR(cb_meta_decode(b.data, b.len, &d), -EBADMSG);
        /* Unknown tag, repeated tag, out-of-order tags. */
        const unsigned char unknown[] = { 99, 0, 0, 0, 0 };
        ASSERT_ERR(cb_meta_decode(unknown, sizeof(unknown), &d), -EBADMSG);
        const unsigned char twice[] = { 1, 0, 0, 0, 1, 'x', 1, 0, 0, 0, 1, 'y' };
        ASSERT_ERR(cb_meta_decode(twice, sizeof(twice), &d), -EBADMSG);
        const unsigned char order[] = { 5, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 'x' };
        ASSERT_ERR(cb_meta_decode(order, sizeof(order), &d), -EBADMSG);
        /* not_after must be 8 bytes and non-zero (zero is encoded as absence). */
        const unsigned char zero_na[] = { 5, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0 };
        ASSERT_ERR(cb_meta_decode(zero_na, sizeof(zero_na), &d), -EBADMSG);
        /* Empty list encodings are not canonical. */
        const unsigned char empty_hosts[] = { 2, 0, 0, 0, 0 };
        ASSERT_ERR(cb_meta_decode(empty_hosts, sizeof(empty_hosts), &d), -EBADMSG);
        /* Control characters inside strings. */
        const unsigned char ctl[] = { 1, 0, 0, 0, 2, 'a', '\n' };
        ASSERT_ERR(cb_meta_decode(ctl, sizeof(ctl), &d), -EBADMSG);
        cb_buf_free(&b);
        cb_meta_clear(&m);
}
