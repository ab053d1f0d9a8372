/* SPDX-License-Identifier: Apache-2.0 */
/* Response-redaction matchers, cached by keyed hash of the value (red_cache.h). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "red_cache.h"

typedef struct {
        unsigned char key[crypto_generichash_BYTES];
        cb_matcher *m; /* NULL: a free slot */
        uint64_t used; /* the cache's clock at the last hit */
        time_t born;   /* CLOCK_MONOTONIC seconds */
        time_t last;   /* ... at the last hit */
} entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static entry ents[RED_CACHE_N];
static uint64_t clock_now;
static unsigned char hkey[crypto_generichash_KEYBYTES];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_key(void) {
        crypto_generichash_keygen(hkey);
}

static time_t mono_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec;
}

static void hash(const char *user, const void *value, size_t len, unsigned char out[crypto_generichash_BYTES]) {
        crypto_generichash_state st;
        uint32_t ul = user ? (uint32_t)strlen(user) + 1 : 0; /* 0: no user; else its length + 1 */
        unsigned char ulb[4] = { (unsigned char)ul, (unsigned char)(ul >> 8), (unsigned char)(ul >> 16),
                                 (unsigned char)(ul >> 24) };

        crypto_generichash_init(&st, hkey, sizeof(hkey), crypto_generichash_BYTES);
        crypto_generichash_update(&st, ulb, sizeof(ulb));
        if (user)
                crypto_generichash_update(&st, (const unsigned char *)user, ul - 1);
        crypto_generichash_update(&st, value, len);
        crypto_generichash_final(&st, out, crypto_generichash_BYTES);
        sodium_memzero(&st, sizeof(st));
}

static int build(const char *user, const void *value, size_t len, cb_matcher **ret) {
        cb_matcher_builder *b = cb_matcher_builder_new(CB_MATCH_SHORT);
        int r = b ? cb_matcher_builder_add(b, "", 0, value, len) : -ENOMEM;

        if (r == 0 && user)
                r = cb_matcher_builder_add_user(b, user, value, len);
        if (r == 0)
                return cb_matcher_build(b, ret); /* consumes b */
        cb_matcher_builder_free(b);
        return r;
}

int red_cache_get(const char *user, const void *value, size_t len, cb_matcher **ret) {
        unsigned char k[crypto_generichash_BYTES];
        cb_matcher *m = NULL, *drop = NULL;
        time_t now = mono_s();
        int r;

        pthread_once(&once, init_key);
        hash(user, value, len, k);
        pthread_mutex_lock(&mu);
        for (size_t i = 0; i < RED_CACHE_N; i++)
                if (ents[i].m && now - ents[i].born < RED_CACHE_MAX_AGE && sodium_memcmp(ents[i].key, k, sizeof(k)) == 0) {
                        ents[i].used = ++clock_now;
                        ents[i].last = now;
                        m = cb_matcher_ref(ents[i].m);
                        break;
                }
        pthread_mutex_unlock(&mu);
        if (m) {
                *ret = m;
                return 0;
        }
        r = build(user, value, len, &m);
        if (r < 0)
                return r;
        pthread_mutex_lock(&mu);
        /* The slot: this key's (built meanwhile by another thread, or
         * too old), else a free one, an expired one, or the least
         * recently used. */
        size_t v = RED_CACHE_N;
        for (size_t i = 0; i < RED_CACHE_N && v == RED_CACHE_N; i++)
                if (ents[i].m && sodium_memcmp(ents[i].key, k, sizeof(k)) == 0)
                        v = i;
        for (size_t i = 0; i < RED_CACHE_N && v == RED_CACHE_N; i++)
                if (!ents[i].m || now - ents[i].born >= RED_CACHE_MAX_AGE)
                        v = i;
        if (v == RED_CACHE_N) {
                v = 0;
                for (size_t i = 1; i < RED_CACHE_N; i++)
                        if (ents[i].used < ents[v].used)
                                v = i;
        }
        drop = ents[v].m;
        memcpy(ents[v].key, k, sizeof(k));
        ents[v].m = cb_matcher_ref(m);
        ents[v].used = ++clock_now;
        ents[v].born = now;
        ents[v].last = now;
        pthread_mutex_unlock(&mu);
        cb_matcher_free(drop); /* wiped unless a request still holds it */
        *ret = m;
        return 0;
}

void red_cache_sweep(void) {
        cb_matcher *old[RED_CACHE_N];
        size_t n = 0;
        time_t now = mono_s();

        pthread_mutex_lock(&mu);
        for (size_t i = 0; i < RED_CACHE_N; i++)
                if (ents[i].m && (now - ents[i].born >= RED_CACHE_MAX_AGE || now - ents[i].last >= RED_CACHE_IDLE)) {
                        old[n++] = ents[i].m;
                        ents[i].m = NULL;
                        sodium_memzero(ents[i].key, sizeof(ents[i].key));
                }
        pthread_mutex_unlock(&mu);
        for (size_t i = 0; i < n; i++)
                cb_matcher_free(old[i]);
}

void red_cache_clear(void) {
        cb_matcher *all[RED_CACHE_N];

        pthread_mutex_lock(&mu);
        for (size_t i = 0; i < RED_CACHE_N; i++) {
                all[i] = ents[i].m;
                ents[i].m = NULL;
                sodium_memzero(ents[i].key, sizeof(ents[i].key));
        }
        pthread_mutex_unlock(&mu);
        for (size_t i = 0; i < RED_CACHE_N; i++)
                cb_matcher_free(all[i]);
}
