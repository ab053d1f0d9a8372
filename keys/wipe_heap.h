/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Heap blocks wiped before they are freed: the allocator hooks for the
 * libraries a value or a token passes through (jansson, libcurl, OpenSSL),
 * in the daemon and in libcredbroker.  Plain malloc'd memory, not
 * sodium_malloc: these hooks serve every allocation of those libraries.
 */
#pragma once

#include <stddef.h>

/* free() that first wipes the block's whole usable size; NULL is a no-op. */
void cb_wipe_free(void *p);

/* realloc() whose old block, when the data moves, is wiped before it is
 * freed.  A block that fits stays where it is (its tail is wiped with it
 * later).  n == 0 yields a fresh 1-byte block, never NULL-after-free, so a
 * caller that reads NULL as "failed, p still valid" stays safe. */
void *cb_wipe_realloc(void *p, size_t n);

/* strdup() through malloc, for hooks that take one (curl_global_init_mem). */
char *cb_wipe_strdup(const char *s);
