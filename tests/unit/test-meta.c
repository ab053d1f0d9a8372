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

/* ---- ca_file (tag 7) and pin (tag 8) ---- */

#define PIN_A "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
#define PIN_B "sha256//ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs="

/* n entries of PIN_A joined by ';' (malloc'd). */
static char *pins(size_t n) {
        size_t len = n * (sizeof(PIN_A) - 1 + 1);
        char *s = calloc(1, len + 1);

        ASSERT_TRUE(s);
        for (size_t i = 0; i < n; i++) {
                if (i)
                        strcat(s, ";");
                strcat(s, PIN_A);
        }
        return s;
}

/* The top-level tags of an encoding, in order, into tags[] (at most 16). */
static size_t top_level_tags(const cb_buf *b, uint8_t tags[16]) {
        cb_reader rd = cb_reader_make(b->data, b->len);
        size_t n = 0;

        while (cb_reader_left(&rd) > 0) {
                const unsigned char *f;
                size_t fl;

                ASSERT_TRUE(n < 16);
                ASSERT_OK(cb_reader_u8(&rd, &tags[n++]));
                ASSERT_OK(cb_reader_lv(&rd, CB_META_MAX_ENCODED, &f, &fl));
        }
        return n;
}

TEST(ca_file_and_pin_round_trip) {
        static const char ca[] = "/etc/credbroker/ca/internal.pem";
        cb_meta m = { 0 }, *d;
        cb_buf b = CB_BUF_INIT;
        uint8_t tags[16];
        size_t n;

        m.inject = strdup("x-api-key: {}");
        ASSERT_OK(cb_strv_push(&m.hosts, "api.internal.example", 64));
        ASSERT_OK(cb_strv_push(&m.labels, "team=ml", 32));
        m.ca_file = strdup(ca);
        m.pin = strdup(PIN_A ";" PIN_B);
        round_trip(&m);
        ASSERT_OK(cb_meta_encode(&m, &b));
        /* Tags 7 and 8 come last: u8 tag, u32 big-endian length, the text. */
        n = top_level_tags(&b, tags);
        ASSERT_EQ(n, 5);
        ASSERT_EQ(tags[3], 7);
        ASSERT_EQ(tags[4], 8);
        size_t pin_len = strlen(m.pin), tail = 5 + strlen(ca) + 5 + pin_len;
        const unsigned char *t = b.data + b.len - tail;
        ASSERT_EQ(t[0], 7);
        ASSERT_EQ(cb_get_u32_at(t + 1), strlen(ca));
        ASSERT_MEMEQ(t + 5, ca, strlen(ca));
        t += 5 + strlen(ca);
        ASSERT_EQ(t[0], 8);
        ASSERT_EQ(cb_get_u32_at(t + 1), pin_len);
        ASSERT_MEMEQ(t + 5, m.pin, pin_len);

        ASSERT_OK(cb_meta_decode(b.data, b.len, &d));
        ASSERT_STREQ(d->ca_file, ca);
        ASSERT_STREQ(d->pin, PIN_A ";" PIN_B);
        ASSERT_STREQ(d->inject, "x-api-key: {}");
        cb_meta_free(d);
        cb_buf_free(&b);

        /* Each alone, and a copy keeps both. */
        cb_meta *c;
        ASSERT_OK(cb_meta_copy(&m, &c));
        ASSERT_STREQ(c->ca_file, ca);
        ASSERT_STREQ(c->pin, m.pin);
        cb_meta_free(c);
        free(m.pin);
        m.pin = NULL;
        round_trip(&m);
        free(m.ca_file);
        m.ca_file = NULL;
        m.pin = pins(CB_META_MAX_PINS);
        ASSERT_EQ(strlen(m.pin), CB_META_MAX_PIN);
        round_trip(&m);
        cb_meta_clear(&m);
        ASSERT_TRUE(!m.ca_file && !m.pin);
}

TEST(ca_file_validation) {
        const char *good[] = { "/etc/ssl/certs/ca-certificates.crt", "/ca.pem", "/srv/ünïcode/ca.pem", NULL };
        const char *bad[] = { "ca.pem", "./ca.pem", "etc/ssl/ca.pem", "~/ca.pem", "", "/etc/ca\n.pem",
                              "/etc/\tca.pem", "/etc/ca\x7f.pem", "/etc/\x1b[31mca.pem", NULL };
        char longest[CB_META_MAX_CA_FILE + 2];

        for (size_t i = 0; good[i]; i++) {
                cb_meta m = { 0 };
                m.ca_file = strdup(good[i]);
                if (cb_meta_validate(&m) < 0)
                        cbtest_fail(__FILE__, __LINE__, "ca_file refused: %s: %s", good[i], cb_error_last());
                cb_meta_clear(&m);
        }
        for (size_t i = 0; bad[i]; i++) {
                cb_meta m = { 0 };
                m.ca_file = strdup(bad[i]);
                if (cb_meta_validate(&m) != -EINVAL)
                        cbtest_fail(__FILE__, __LINE__, "ca_file accepted: %s", bad[i]);
                ASSERT_CONTAINS(cb_error_last(), "ca_file");
                cb_meta_clear(&m);
        }
        /* Exactly the cap passes (and round-trips); one byte more does not. */
        cb_meta m = { 0 };
        longest[0] = '/';
        memset(longest + 1, 'a', CB_META_MAX_CA_FILE - 1);
        longest[CB_META_MAX_CA_FILE] = 0;
        m.ca_file = strdup(longest);
        round_trip(&m);
        cb_meta_clear(&m);
        longest[CB_META_MAX_CA_FILE] = 'a';
        longest[CB_META_MAX_CA_FILE + 1] = 0;
        m.ca_file = strdup(longest);
        ASSERT_ERR(cb_meta_validate(&m), -EINVAL);
        ASSERT_CONTAINS(cb_error_last(), "longer than");
        cb_meta_clear(&m);
}

TEST(pin_validation) {
        const char *good[] = {
                PIN_A,
                PIN_A ";" PIN_B,
                "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                "sha256//++++++++++++++++++++++++++++++++++++++++++8=",
                NULL,
        };
        const char *bad[] = {
                "",
                /* wrong prefix */
                "sha1//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                "SHA256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                "/etc/ssl/pubkey.pem",
                " " PIN_A,
                /* wrong length */
                "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF=",
                "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFUA=",
                "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
                "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU==",
                "sha256//",
                /* bad base64 */
                "sha256//47DEQpj8HBSa-_TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hS FU=",
                "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSu=U=",
                "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFUA",
                "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=", /* non-zero trailing bits */
                "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF\xc3\xa9",
                /* separators */
                PIN_A ";",
                ";" PIN_A,
                PIN_A ";;" PIN_B,
                PIN_A "; " PIN_B,
                PIN_A "," PIN_B,
                PIN_A ";sha256//",
                NULL,
        };

        for (size_t i = 0; good[i]; i++) {
                cb_meta m = { 0 };
                m.pin = strdup(good[i]);
                if (cb_meta_validate(&m) < 0)
                        cbtest_fail(__FILE__, __LINE__, "pin refused: %s: %s", good[i], cb_error_last());
                cb_meta_clear(&m);
        }
        for (size_t i = 0; bad[i]; i++) {
                cb_meta m = { 0 };
                m.pin = strdup(bad[i]);
                if (cb_meta_validate(&m) != -EINVAL)
                        cbtest_fail(__FILE__, __LINE__, "pin accepted: %s", bad[i]);
                ASSERT_CONTAINS(cb_error_last(), "pin");
                cb_meta_clear(&m);
        }
        /* 16 entries pass, 17 do not. */
        cb_meta m = { 0 };
        m.pin = pins(CB_META_MAX_PINS);
        ASSERT_OK(cb_meta_validate(&m));
        cb_meta_clear(&m);
        m.pin = pins(CB_META_MAX_PINS + 1);
        ASSERT_ERR(cb_meta_validate(&m), -EINVAL);
        ASSERT_CONTAINS(cb_error_last(), "more than 16 entries");
        cb_meta_clear(&m);
}

TEST(ca_file_and_pin_strict_decoding) {
        cb_meta *d;
        cb_buf b = CB_BUF_INIT;

        /* Well-formed, each alone and both in order. */
        const unsigned char ca[] = { 7, 0, 0, 0, 3, '/', 'c', 'a' };
        ASSERT_OK(cb_meta_decode(ca, sizeof(ca), &d));
        ASSERT_STREQ(d->ca_file, "/ca");
        ASSERT_TRUE(!d->pin);
        cb_meta_free(d);
        const unsigned char both[] = { 6, 0, 0, 0, 7, 0, 0, 0, 3, 'k', '=', 'v', 7, 0, 0, 0, 1, '/', 8, 0, 0, 0, 1, 'p' };
        ASSERT_OK(cb_meta_decode(both, sizeof(both), &d));
        ASSERT_STREQ(d->ca_file, "/");
        ASSERT_STREQ(d->pin, "p"); /* syntax is cb_meta_validate's, as for inject */
        ASSERT_ERR(cb_meta_validate(d), -EINVAL);
        cb_meta_free(d);

        /* Empty strings are absence, never encoded. */
        const unsigned char empty_ca[] = { 7, 0, 0, 0, 0 };
        ASSERT_ERR(cb_meta_decode(empty_ca, sizeof(empty_ca), &d), -EBADMSG);
        const unsigned char empty_pin[] = { 8, 0, 0, 0, 0 };
        ASSERT_ERR(cb_meta_decode(empty_pin, sizeof(empty_pin), &d), -EBADMSG);
        /* Repeated, out of order, and a tag past the last known one. */
        const unsigned char ca_twice[] = { 7, 0, 0, 0, 1, '/', 7, 0, 0, 0, 1, '/' };
        ASSERT_ERR(cb_meta_decode(ca_twice, sizeof(ca_twice), &d), -EBADMSG);
        const unsigned char pin_twice[] = { 8, 0, 0, 0, 1, 'p', 8, 0, 0, 0, 1, 'p' };
        ASSERT_ERR(cb_meta_decode(pin_twice, sizeof(pin_twice), &d), -EBADMSG);
        const unsigned char pin_ca[] = { 8, 0, 0, 0, 1, 'p', 7, 0, 0, 0, 1, '/' };
        ASSERT_ERR(cb_meta_decode(pin_ca, sizeof(pin_ca), &d), -EBADMSG);
        const unsigned char ca_labels[] = { 7, 0, 0, 0, 1, '/', 6, 0, 0, 0, 7, 0, 0, 0, 3, 'k', '=', 'v' };
        ASSERT_ERR(cb_meta_decode(ca_labels, sizeof(ca_labels), &d), -EBADMSG);
        const unsigned char pin_inject[] = { 8, 0, 0, 0, 1, 'p', 1, 0, 0, 0, 1, 'x' };
        ASSERT_ERR(cb_meta_decode(pin_inject, sizeof(pin_inject), &d), -EBADMSG);
        const unsigned char tag9[] = { 8, 0, 0, 0, 1, 'p', 9, 0, 0, 0, 1, 'x' };
        ASSERT_ERR(cb_meta_decode(tag9, sizeof(tag9), &d), -EBADMSG);
        /* Control characters and NUL inside. */
        const unsigned char ca_nl[] = { 7, 0, 0, 0, 3, '/', '\n', 'a' };
        ASSERT_ERR(cb_meta_decode(ca_nl, sizeof(ca_nl), &d), -EBADMSG);
        const unsigned char ca_nul[] = { 7, 0, 0, 0, 3, '/', 0, 'a' };
        ASSERT_ERR(cb_meta_decode(ca_nul, sizeof(ca_nul), &d), -EBADMSG);
        const unsigned char pin_del[] = { 8, 0, 0, 0, 2, 'p', 0x7f };
        ASSERT_ERR(cb_meta_decode(pin_del, sizeof(pin_del), &d), -EBADMSG);
        /* Length caps: the field length is checked before anything is copied. */
        ASSERT_OK(cb_buf_put_u8(&b, 7));
        ASSERT_OK(cb_buf_put_u32(&b, CB_META_MAX_CA_FILE + 1));
        ASSERT_OK(cb_buf_put_u8(&b, '/'));
        for (size_t i = 0; i < CB_META_MAX_CA_FILE; i++)
                ASSERT_OK(cb_buf_put_u8(&b, 'a'));
        ASSERT_ERR(cb_meta_decode(b.data, b.len, &d), -EBADMSG);
        cb_buf_reset(&b);
        ASSERT_OK(cb_buf_put_u8(&b, 8));
        ASSERT_OK(cb_buf_put_u32(&b, CB_META_MAX_PIN + 1));
        for (size_t i = 0; i < CB_META_MAX_PIN + 1; i++)
                ASSERT_OK(cb_buf_put_u8(&b, 'p'));
        ASSERT_ERR(cb_meta_decode(b.data, b.len, &d), -EBADMSG);
        cb_buf_free(&b);

        /* Every cut through a ca_file + pin encoding is refused, except at
         * the field boundary; so is a trailing byte. */
        cb_meta m = { 0 };
        m.ca_file = strdup("/etc/ca.pem");
        m.pin = strdup(PIN_A);
        ASSERT_OK(cb_meta_encode(&m, &b));
        size_t boundary = 5 + strlen(m.ca_file);
        for (size_t n = 1; n < b.len; n++)
                if (n != boundary)
                        ASSERT_ERR(cb_meta_decode(b.data, n, &d), -EBADMSG);
        ASSERT_OK(cb_buf_put_u8(&b, 0));
        ASSERT_ERR(cb_meta_decode(b.data, b.len, &d), -EBADMSG);
        cb_buf_free(&b);
        cb_meta_clear(&m);
}

/* A secret stored before tags 7 and 8 existed must re-encode to the same
 * bytes: the encoding is the AEAD's associated data. */
TEST(old_encoding_unchanged) {
        /* Produced by the encoder as it was before ca_file and pin (commit
         * 808224c) for the meta built below. */
        static const unsigned char before[] = {
                0x01, 0x00, 0x00, 0x00, 0x18, 0x41, 0x75, 0x74, 0x68, 0x6f, 0x72, 0x69, 0x7a, 0x61, 0x74, 0x69,
                0x6f, 0x6e, 0x3a, 0x20, 0x42, 0x65, 0x61, 0x72, 0x65, 0x72, 0x20, 0x7b, 0x7d, 0x02, 0x00, 0x00,
                0x00, 0x2c, 0x00, 0x00, 0x00, 0x0f, 0x61, 0x70, 0x69, 0x2e, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c,
                0x65, 0x2e, 0x63, 0x6f, 0x6d, 0x00, 0x00, 0x00, 0x15, 0x68, 0x74, 0x74, 0x70, 0x3a, 0x2f, 0x2f,
                0x31, 0x32, 0x37, 0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x31, 0x3a, 0x38, 0x30, 0x38, 0x30, 0x03, 0x00,
                0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x04, 0x50, 0x4f, 0x53, 0x54, 0x04, 0x00, 0x00, 0x00, 0x08,
                0x00, 0x00, 0x00, 0x04, 0x2f, 0x76, 0x31, 0x2f, 0x05, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00,
                0x00, 0xf4, 0x86, 0x57, 0x00, 0x06, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x07, 0x74, 0x65,
                0x61, 0x6d, 0x3d, 0x6d, 0x6c,
        };
        cb_meta m = { 0 }, *d;
        cb_buf b = CB_BUF_INIT, again = CB_BUF_INIT;
        uint8_t tags[16];
        size_t n;

        m.inject = strdup("Authorization: Bearer {}");
        ASSERT_OK(cb_strv_push(&m.hosts, "api.example.com", 64));
        ASSERT_OK(cb_strv_push(&m.hosts, "http://127.0.0.1:8080", 64));
        ASSERT_OK(cb_strv_push(&m.methods, "POST", 16));
        ASSERT_OK(cb_strv_push(&m.path_prefixes, "/v1/", 64));
        m.not_after = 4102444800ULL;
        ASSERT_OK(cb_strv_push(&m.labels, "team=ml", 32));
        ASSERT_OK(cb_meta_validate(&m));
        ASSERT_OK(cb_meta_encode(&m, &b));
        ASSERT_EQ(b.len, sizeof(before));
        ASSERT_MEMEQ(b.data, before, sizeof(before));
        n = top_level_tags(&b, tags);
        ASSERT_EQ(n, 6);
        for (size_t i = 0; i < n; i++)
                ASSERT_TRUE(tags[i] != 7 && tags[i] != 8);

        /* The old bytes decode as before: no ca_file, no pin, same fields. */
        ASSERT_OK(cb_meta_decode(before, sizeof(before), &d));
        ASSERT_TRUE(!d->ca_file && !d->pin);
        ASSERT_STREQ(d->inject, m.inject);
        ASSERT_EQ(d->hosts.n, 2);
        ASSERT_STREQ(d->hosts.v[1], "http://127.0.0.1:8080");
        ASSERT_EQ(d->not_after, m.not_after);
        ASSERT_STREQ(d->labels.v[0], "team=ml");
        ASSERT_OK(cb_meta_encode(d, &again));
        ASSERT_EQ(again.len, sizeof(before));
        ASSERT_MEMEQ(again.data, before, sizeof(before));
        cb_meta_free(d);
        cb_buf_free(&again);
        cb_buf_free(&b);
        cb_meta_clear(&m);
}
