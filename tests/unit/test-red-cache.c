/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proxy's cache of response-redaction matchers (broker/proxy/red_cache.c):
 * one matcher per (user, value), shared by reference; a different value or
 * basic-auth user never finds another's; the matcher redacts what a freshly
 * built one would; entries go at exit and references outlive eviction.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cbtest.h"
#include "red_cache.h"

TEST(same_value_shares_one_matcher) {
        cb_matcher *a = NULL, *b = NULL, *c = NULL, *d = NULL;

        ASSERT_OK(red_cache_get(NULL, "sk-alpha-0123456789", 19, &a));
        ASSERT_OK(red_cache_get(NULL, "sk-alpha-0123456789", 19, &b));
        ASSERT_TRUE(a == b);
        ASSERT_OK(red_cache_get(NULL, "sk-alpha-0123456780", 19, &c));
        ASSERT_TRUE(c != a);
        ASSERT_OK(red_cache_get("alice", "sk-alpha-0123456789", 19, &d));
        ASSERT_TRUE(d != a); /* the basic form is in it: not the plain value's matcher */
        cb_matcher_free(a);
        cb_matcher_free(b);
        cb_matcher_free(c);
        cb_matcher_free(d);
        red_cache_clear();
}

TEST(cached_matcher_redacts_every_form) {
        cb_matcher *m = NULL;
        const char *v = "sk-beta-abcdefghij/+=";
        char b64[64];
        size_t hits = 0;

        sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)v, strlen(v), sodium_base64_VARIANT_ORIGINAL);
        ASSERT_OK(red_cache_get(NULL, v, strlen(v), &m));
        cb_matcher_free(m);
        ASSERT_OK(red_cache_get(NULL, v, strlen(v), &m)); /* a hit */
        char in[256];
        snprintf(in, sizeof(in), "raw %s b64 %s pct sk-beta-abcdefghij%%2f%%2B%%3d", v, b64);
        char *out = cb_matcher_redact_string(m, in, &hits);
        ASSERT_TRUE(out != NULL);
        ASSERT_TRUE(strstr(out, v) == NULL);
        ASSERT_TRUE(strstr(out, b64) == NULL);
        ASSERT_TRUE(strstr(out, "abcdefghij%2f") == NULL);
        ASSERT_TRUE(hits >= 3);
        free(out);
        cb_matcher_free(m);
        red_cache_clear();
}

TEST(short_value_refused_as_before) {
        cb_matcher *m = NULL;

        ASSERT_ERR(red_cache_get(NULL, "ab", 2, &m), -EMSGSIZE);
        ASSERT_TRUE(m == NULL);
}

TEST(references_outlive_eviction) {
        cb_matcher *keep = NULL, *m = NULL;
        char v[32];

        ASSERT_OK(red_cache_get(NULL, "sk-keep-0000000000", 18, &keep));
        for (int i = 0; i < 3 * RED_CACHE_N; i++) { /* evicts "keep" from the cache */
                snprintf(v, sizeof(v), "sk-fill-%010d", i);
                ASSERT_OK(red_cache_get(NULL, v, strlen(v), &m));
                cb_matcher_free(m);
        }
        size_t hits = 0;
        char *out = cb_matcher_redact_string(keep, "x sk-keep-0000000000 y", &hits);
        ASSERT_TRUE(out != NULL && hits == 1);
        free(out);
        cb_matcher_free(keep);
        red_cache_clear();
}
