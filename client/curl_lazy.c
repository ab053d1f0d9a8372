/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libcurl, loaded when first used rather than at start-up.
 *
 * libcurl brings some 30 shared libraries with it (OpenSSL, GnuTLS,
 * Kerberos, LDAP, SSH, ...): linked in, the dynamic loader maps and
 * relocates them all before main() of every credbroker command, which is
 * more than bubblewrap's whole start-up (`credbroker sandbox` without
 * --env/--proxy never talks HTTP; issue 17's start-up benchmark).  Here
 * are the few curl_* functions we call, under their own names but hidden
 * (-fvisibility=hidden: never exported, never interposing a program's own
 * libcurl); each resolves libcurl.so.4 with dlopen(3) on first use -- the
 * same library, found the same way (ld.so.cache, RUNPATH, LD_LIBRARY_PATH)
 * as a DT_NEEDED entry -- and a process that has libcurl loaded already
 * shares that instance (its curl_global_init state included).
 *
 * Compiled into libcredbroker and into the CLI (cli_scan.c), each with its
 * own copy.  When libcurl cannot be loaded, curl_global_init_mem() says so
 * (CURLE_FAILED_INIT) and curl_easy_init() returns NULL: no request is
 * made.
 */
#define CURL_DISABLE_TYPECHECK 1
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>

#include <curl/curl.h>

#include "curl_lazy.h"

#define CURL_SONAME "libcurl.so.4"

static struct {
        CURLcode (*global_init_mem)(long, curl_malloc_callback, curl_free_callback, curl_realloc_callback,
                                    curl_strdup_callback, curl_calloc_callback);
        CURL *(*easy_init)(void);
        CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
        CURLcode (*easy_perform)(CURL *);
        CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
        void (*easy_cleanup)(CURL *);
        const char *(*easy_strerror)(CURLcode);
        struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
        void (*slist_free_all)(struct curl_slist *);
} fn;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool loaded;

static void load(void) {
        /* RTLD_LOCAL: its symbols stay out of the global scope, as a
         * DT_NEEDED library's would not -- nothing else looks them up. */
        void *h = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);

        if (!h)
                return;
        /* The POSIX way to turn dlsym's void * into a function pointer. */
#define SYM(field, name)                                          \
        do {                                                      \
                void *p_ = dlsym(h, name);                        \
                if (!p_)                                          \
                        return;                                   \
                *(void **)&fn.field = p_;                         \
        } while (0)
        SYM(global_init_mem, "curl_global_init_mem");
        SYM(easy_init, "curl_easy_init");
        SYM(easy_setopt, "curl_easy_setopt");
        SYM(easy_perform, "curl_easy_perform");
        SYM(easy_getinfo, "curl_easy_getinfo");
        SYM(easy_cleanup, "curl_easy_cleanup");
        SYM(easy_strerror, "curl_easy_strerror");
        SYM(slist_append, "curl_slist_append");
        SYM(slist_free_all, "curl_slist_free_all");
#undef SYM
        loaded = true; /* the handle is never closed */
}

bool cb_curl_loaded(void) {
        pthread_once(&once, load);
        return loaded;
}

CURLcode curl_global_init_mem(long flags, curl_malloc_callback m, curl_free_callback f, curl_realloc_callback r,
                              curl_strdup_callback s, curl_calloc_callback c) {
        return cb_curl_loaded() ? fn.global_init_mem(flags, m, f, r, s, c) : CURLE_FAILED_INIT;
}

CURL *curl_easy_init(void) {
        return cb_curl_loaded() ? fn.easy_init() : NULL;
}

/* One argument after the option, whose type the option's number range
 * says (curl.h's CURLOPTTYPE_*; libcurl's own curl_easy_setopt reads it
 * the same way). */
CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...) {
        va_list ap;
        CURLcode rc;

        if (!cb_curl_loaded() || !h)
                return CURLE_BAD_FUNCTION_ARGUMENT;
        va_start(ap, opt);
        if (opt < CURLOPTTYPE_OBJECTPOINT) {
                long v = va_arg(ap, long);
                rc = fn.easy_setopt(h, opt, v);
        } else if (opt < CURLOPTTYPE_FUNCTIONPOINT) {
                void *v = va_arg(ap, void *);
                rc = fn.easy_setopt(h, opt, v);
        } else if (opt < CURLOPTTYPE_OFF_T) {
                void (*v)(void) = va_arg(ap, void (*)(void));
                rc = fn.easy_setopt(h, opt, v);
        } else if (opt < CURLOPTTYPE_BLOB) {
                curl_off_t v = va_arg(ap, curl_off_t);
                rc = fn.easy_setopt(h, opt, v);
        } else {
                void *v = va_arg(ap, void *);
                rc = fn.easy_setopt(h, opt, v);
        }
        va_end(ap);
        return rc;
}

CURLcode curl_easy_perform(CURL *h) {
        return cb_curl_loaded() ? fn.easy_perform(h) : CURLE_FAILED_INIT;
}

/* Every CURLINFO_* takes one pointer (to where the answer goes). */
CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...) {
        va_list ap;
        void *p;

        if (!cb_curl_loaded() || !h)
                return CURLE_BAD_FUNCTION_ARGUMENT;
        va_start(ap, info);
        p = va_arg(ap, void *);
        va_end(ap);
        return fn.easy_getinfo(h, info, p);
}

void curl_easy_cleanup(CURL *h) {
        if (h && cb_curl_loaded())
                fn.easy_cleanup(h);
}

const char *curl_easy_strerror(CURLcode rc) {
        return cb_curl_loaded() ? fn.easy_strerror(rc) : "libcurl (" CURL_SONAME ") could not be loaded";
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s) {
        return cb_curl_loaded() ? fn.slist_append(l, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *l) {
        if (l && cb_curl_loaded())
                fn.slist_free_all(l);
}
