/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Response-redaction matchers for proxied values, cached.  A value's
 * matcher holds every encoded form of it (keys/match.h): building one
 * costs a secure-memory blob (mmap, mprotect, wipe) and the encodings,
 * about as much as the rest of a proxied request's decision, and the same
 * few values are proxied over and over.
 *
 * Keyed by a BLAKE2b hash, under a random per-process key, of the
 * basic-auth user (if any) and the value: never by name and version, so a
 * rotated or re-put value can never find another value's forms.  An entry
 * is as sensitive as the value: its matcher lives in wiped secure memory,
 * at most RED_CACHE_N entries are kept (least recently used evicted), an
 * entry unused for RED_CACHE_IDLE seconds is wiped by the next
 * once-a-second sweep, and none is used or kept past RED_CACHE_MAX_AGE
 * seconds: the forms of a value stay in the daemon's memory only while it
 * is being proxied, and a few seconds after.  Thread-safe; the cache's lock is held only to look up and
 * insert, never while a matcher is built or freed.
 */
#ifndef CB_RED_CACHE_H
#define CB_RED_CACHE_H

#include <stddef.h>

#include "match.h"

#define RED_CACHE_N 64
#define RED_CACHE_MAX_AGE 60
#define RED_CACHE_IDLE 2

/* The matcher for value[0..len) (plus base64("user:value") whole when user
 * is not NULL): a reference the caller releases with cb_matcher_free.
 * 0, or what cb_matcher_builder_add/build returned (-EMSGSIZE: shorter
 * than CB_MATCH_MIN_VALUE; -ENOMEM). */
int red_cache_get(const char *user, const void *value, size_t len, cb_matcher **ret);

/* Drop the entries past RED_CACHE_MAX_AGE or unused for RED_CACHE_IDLE
 * seconds (the daemon's once-a-second housekeeping): a value no longer
 * proxied leaves no forms behind. */
void red_cache_sweep(void);

/* Drop every entry (wiping what no request still holds): at exit. */
void red_cache_clear(void);

#endif
