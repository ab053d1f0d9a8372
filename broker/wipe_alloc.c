/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wipe-on-free allocators for libcurl and OpenSSL (see wipe_alloc.h).
 *
 * The proxy hands the injected credential to libcurl (the request header
 * list, the request head libcurl builds from it, on TLS OpenSSL's record
 * buffers), and upstream answers, which may echo it, pass through both
 * libraries' buffers before the broker redacts them.  Those buffers are
 * plain heap: freed, they keep their bytes until glibc hands the chunk out
 * again.  Measured before this file: 31 copies of the secret in the daemon's
 * memory a second after a short burst of proxied requests had ended
 * (tests/integration/test-proxy.sh "lingers" checks the count is now 0).
 *
 * Every block either library frees is wiped first (its whole usable size),
 * and a realloc that moves a block wipes the old one.  The cost is a
 * memset of each freed block: 1.5 % of the daemon's perf samples under the
 * proxy benchmark's load (tests/bench/proxy.sh), throughput within noise.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "error.h"
#include "wipe_alloc.h"

void cb_wipe_free(void *p) {
        if (!p)
                return;
        sodium_memzero(p, malloc_usable_size(p));
        free(p);
}

void *cb_wipe_realloc(void *p, size_t n) {
        size_t old;
        void *q;

        if (!p)
                return malloc(n);
        if (n == 0) {       /* as glibc's realloc(p, 0): freed, NULL */
                cb_wipe_free(p);
                return NULL;
        }
        old = malloc_usable_size(p);
        if (n <= old)
                return p;   /* fits: the tail is wiped when the block is */
        q = malloc(n);
        if (!q)
                return NULL; /* p untouched, as realloc */
        memcpy(q, p, old);
        cb_wipe_free(p);
        return q;
}

static char *wipe_strdup(const char *s) {
        size_t n = strlen(s) + 1;
        char *d = malloc(n);

        if (d)
                memcpy(d, s, n);
        return d;
}

static void *ossl_malloc(size_t n, const char *file, int line) {
        (void)file, (void)line;
        return malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line) {
        (void)file, (void)line;
        return cb_wipe_realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line) {
        (void)file, (void)line;
        cb_wipe_free(p);
}

int cb_wipe_alloc_install(void) {
        /* OpenSSL refuses once it has allocated anything: this must run
         * before libcurl (or the TPM stack) first touches it. */
        if (!CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free))
                return cb_error_set(-EBUSY, "OpenSSL allocated memory before the broker could make it wipe what "
                                            "it frees; refusing to run without that");
        if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, cb_wipe_free, cb_wipe_realloc, wipe_strdup, calloc) !=
            CURLE_OK)
                return cb_error_set(-EIO, "libcurl failed to initialise");
        return 0;
}
