/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wipe-on-free allocators for libcurl and OpenSSL (see wipe_alloc.h).
 *
 * The proxy hands the injected credential to libcurl (the request header
 * list, the request head libcurl builds from it, on TLS OpenSSL's record
 * buffers), and upstream answers, which may echo it, pass through both
 * libraries' buffers before the broker redacts them.  Those buffers are
 * plain heap: freed, they keep their bytes until glibc hands the chunk out
 * again.  Measured before this file: 14-31 copies of the secret in the
 * daemon's memory a second after proxied requests had ended; test-proxy
 * ("no value lingers in the daemon's memory") checks there are none now.
 *
 * Every block either library frees is wiped first (its whole usable size),
 * and a realloc that moves a block wipes the old one (keys/wipe_heap.c, the
 * same hooks libcredbroker gives jansson and libcurl).  The cost is a
 * memset of each freed block: 1.5 % of the daemon's perf samples under the
 * proxy benchmark's load (tests/bench/proxy.sh), throughput within noise.
 */
#include <errno.h>
#include <stdlib.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "error.h"
#include "wipe_alloc.h"
#include "wipe_heap.h"

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
        if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, cb_wipe_free, cb_wipe_realloc, cb_wipe_strdup, calloc) !=
            CURLE_OK)
                return cb_error_set(-EIO, "libcurl failed to initialise");
        return 0;
}
