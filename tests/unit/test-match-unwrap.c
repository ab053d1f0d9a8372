/* SPDX-License-Identifier: Apache-2.0 */
/* keys/match_unwrap.c (red team rt7 F9): a value's base64 wrapped as MIME
 * (CRLF every 76) or PEM (LF every 64) at every position of the break
 * across it is found once the breaks are left out, and not by a plain scan
 * when a break falls inside (so the pass is what finds it); text around it
 * that does not carry the value is not. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cbtest.h"
#include "match.h"
#include "match_unwrap.h"

static int count(void *ctx, const cb_scan_hit *hit, char label[CB_SCAN_LABEL_MAX]) {
        (void)label;
        if (hit->name && strcmp(hit->name, "v") == 0 && hit->kind == CB_SK_BASE64)
                (*(unsigned *)ctx)++;
        return 0;
}

static unsigned plain(const cb_matcher *m, const char *t, size_t n) {
        unsigned hits = 0;
        cb_scan_stream *st = cb_scan_stream_new(m, count, NULL, &hits);
        ASSERT_TRUE(st != NULL);
        ASSERT_OK(cb_scan_stream_feed(st, t, n));
        ASSERT_OK(cb_scan_stream_finish(st));
        cb_scan_stream_free(st);
        return hits;
}

/* base64 of pre bytes, the value, 20 bytes; wrapped every width with nl. */
static size_t wrap(const unsigned char *v, size_t vl, size_t pre, size_t width, const char *nl, char *out) {
        unsigned char in[256];
        char b[512];
        size_t il = 0, n = 0;

        memset(in, 'A', pre);
        il = pre;
        memcpy(in + il, v, vl);
        il += vl;
        memset(in + il, 'z', 20);
        il += 20;
        sodium_bin2base64(b, sizeof(b), in, il, sodium_base64_VARIANT_ORIGINAL);
        for (size_t i = 0, bl = strlen(b); i < bl; i += width) {
                size_t k = bl - i < width ? bl - i : width;
                memcpy(out + n, b + i, k);
                n += k;
                memcpy(out + n, nl, strlen(nl));
                n += strlen(nl);
        }
        return n;
}

TEST(wrapped_base64_at_every_break) {
        static const unsigned char v[] = "rt7-wrapped-0e325e4bd68db0757e0142ad";
        cb_matcher_builder *b = cb_matcher_builder_new(0);
        cb_matcher *m = NULL;
        char t[1024];
        unsigned inside = 0;

        ASSERT_OK(cb_matcher_builder_add(b, "v", 1, v, sizeof(v) - 1));
        ASSERT_OK(cb_matcher_build(b, &m));
        for (size_t pre = 0; pre < 90; pre++) {
                for (int pem = 0; pem < 2; pem++) {
                        size_t n = wrap(v, sizeof(v) - 1, pre, pem ? 64 : 76, pem ? "\n" : "\r\n", t);
                        unsigned hits = 0;
                        ASSERT_TRUE(cb_scan_has_breaks(t, n));
                        ASSERT_OK(cb_scan_unwrapped(m, t, n, count, &hits));
                        ASSERT_TRUE(hits >= 1);
                        inside += plain(m, t, n) == 0; /* a break inside its base64: only the pass finds it */
                }
        }
        ASSERT_TRUE(inside > 50);
        /* Another value's wrapped base64: nothing. */
        static const unsigned char w[] = "rt7-other-value-00000000000000000000";
        unsigned hits = 0;
        size_t n = wrap(w, sizeof(w) - 1, 45, 76, "\r\n", t);
        ASSERT_OK(cb_scan_unwrapped(m, t, n, count, &hits));
        ASSERT_EQ(hits, 0);
        ASSERT_FALSE(cb_scan_has_breaks("abc", 3));
        cb_matcher_free(m);
}
