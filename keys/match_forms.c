/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one place a value's forms are made: the builder and the literal
 * patterns of each value (raw; base64 and base64url at the three
 * alignments; basic user:value; hex (matched in any case); ' ' as '+'), written
 * straight into secure memory.  Percent- and JSON-escaped spellings are not
 * enumerated here: the streams decode the text instead (match_stream.c).
 * match_build.c compiles the set; match.h has the contract.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "match.h"
#include "match_internal.h"

/* The pool is transient (cb_matcher_build copies it into the matcher's
 * sodium_malloc block and frees it): plain heap memory, wiped whenever it
 * is freed or moved.  A sodium_malloc per build cost the proxy, which
 * builds one matcher per request, an mmap/munmap pair and its TLB
 * shootdowns each time. */
#define POOL_MIN 1024

/* ---- builder ------------------------------------------------------------ */

static void pool_free(unsigned char *p, size_t cap) {
        sodium_memzero(p, cap);
        free(p);
}

cb_matcher_builder *cb_matcher_builder_new(unsigned flags) {
        cb_matcher_builder *b = calloc(1, sizeof(cb_matcher_builder));

        if (b)
                b->flags = flags;
        return b;
}

void cb_matcher_builder_free(cb_matcher_builder *b) {
        if (!b)
                return;
        if (b->pool)
                pool_free(b->pool, b->pool_cap);
        free(b->pats);
        for (size_t i = 0; i < b->n_secrets; i++)
                free(b->secrets[i].name);
        free(b->secrets);
        free(b);
}

/* Room for n more pool bytes; returns where they go, or NULL. */
static unsigned char *pool_reserve(cb_matcher_builder *b, size_t n) {
        if (b->pool_len + n > b->pool_cap) {
                size_t nc = b->pool_cap ? b->pool_cap : POOL_MIN;
                while (nc < b->pool_len + n)
                        nc *= 2;
                unsigned char *np = malloc(nc);
                if (!np)
                        return NULL;
                if (b->pool) {
                        memcpy(np, b->pool, b->pool_len);
                        pool_free(b->pool, b->pool_cap);
                }
                b->pool = np;
                b->pool_cap = nc;
        }
        return b->pool + b->pool_len;
}

/* Commit n bytes written at pool_reserve()'s pointer as a pattern (an
 * encoded form shorter than CB_MATCH_MIN_FORM is dropped: it would hit
 * unrelated text; the raw form of an accepted value never is). */
static int pool_commit(cb_matcher_builder *b, size_t n, enum cb_scan_kind kind) {
        if (n < (kind == CB_SK_RAW ? GRAM : CB_MATCH_MIN_FORM))
                return 0;
        if (b->n_pats == b->cap_pats) {
                size_t nc = b->cap_pats ? b->cap_pats * 2 : 64;
                pat *np = realloc(b->pats, nc * sizeof(*np));
                if (!np)
                        return -ENOMEM;
                b->pats = np;
                b->cap_pats = nc;
        }
        b->pats[b->n_pats++] = (pat){ .off = b->pool_len, .len = (uint32_t)n, .kind = (uint16_t)kind,
                                      .secret = (uint32_t)(b->n_secrets - 1) };
        b->pool_len += n;
        return 0;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Base64 of (a zero bytes + v), keeping only the characters that depend on
 * v alone: character i covers stream bits [6i, 6i+6); it is kept when they
 * lie within v's bits [8a, 8(a+len)). */
static int add_base64(cb_matcher_builder *b, const unsigned char *v, size_t len, unsigned a, const char *alpha,
                      enum cb_scan_kind kind) {
        size_t first = (8 * a + 5) / 6, bits = 8 * (a + len), n = 0;
        unsigned char *o = pool_reserve(b, len * 4 / 3 + 4);

        if (!o)
                return -ENOMEM;
        for (size_t i = first; 6 * i + 6 <= bits; i++) {
                size_t bit = 6 * i - 8 * a; /* bit offset inside v */
                size_t byte = bit / 8, shift = bit % 8;
                unsigned w = (unsigned)v[byte] << 8 | (byte + 1 < len ? v[byte + 1] : 0);
                o[n++] = (unsigned char)alpha[(w >> (10 - shift)) & 63];
        }
        return pool_commit(b, n, kind);
}

/* The value with each ' ' as '+' (HTML forms, quote_plus), when it has a
 * space: the percent-decoding view leaves '+' alone (a raw '+' is far more
 * common than a '+' for a space). */
static int add_plus(cb_matcher_builder *b, const unsigned char *v, size_t len) {
        unsigned char *o;

        if (!memchr(v, ' ', len))
                return 0;
        if (!(o = pool_reserve(b, len)))
                return -ENOMEM;
        for (size_t i = 0; i < len; i++)
                o[i] = v[i] == ' ' ? '+' : v[i];
        return pool_commit(b, len, CB_SK_URL);
}

/* Hex of every byte (lower or upper case digits). */
static int add_hex(cb_matcher_builder *b, const unsigned char *v, size_t len, const char *hex) {
        unsigned char *o = pool_reserve(b, 2 * len);

        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                o[2 * i] = (unsigned char)hex[v[i] >> 4];
                o[2 * i + 1] = (unsigned char)hex[v[i] & 15];
        }
        return pool_commit(b, 2 * len, CB_SK_HEX);
}

int cb_matcher_builder_add(cb_matcher_builder *b, const char *name, uint32_t version, const void *value,
                           size_t len) {
        const unsigned char *v = value;
        unsigned char *o;
        int r;

        if (len < ((b->flags & CB_MATCH_SHORT) ? CB_MATCH_MIN_VALUE : CB_SCAN_MIN_SECRET))
                return -EMSGSIZE;
        if (b->n_secrets >= CB_SCAN_MAX_SECRETS)
                return -E2BIG;
        if (b->n_secrets == b->cap_secrets) {
                size_t nc = b->cap_secrets ? b->cap_secrets * 2 : 16;
                secret_ref *ns = realloc(b->secrets, nc * sizeof(*ns));
                if (!ns)
                        return -ENOMEM;
                b->secrets = ns;
                b->cap_secrets = nc;
        }
        char *nm = strdup(name);
        if (!nm)
                return -ENOMEM;
        b->secrets[b->n_secrets++] = (secret_ref){ nm, version };

        /* Raw first: when forms coincide the earliest added names the kind. */
        if (!(o = pool_reserve(b, len)))
                return -ENOMEM;
        memcpy(o, v, len);
        if ((r = pool_commit(b, len, CB_SK_RAW)) < 0)
                return r;
        for (unsigned a = 0; a < 3; a++)
                if ((r = add_base64(b, v, len, a, B64, CB_SK_BASE64)) < 0 ||
                    (r = add_base64(b, v, len, a, B64URL, CB_SK_BASE64URL)) < 0)
                        return r;
        /* One hex form: it matches in any case (match_internal.h), so
         * upper, lower and mixed-case digits alike. */
        if ((r = add_hex(b, v, len, "0123456789abcdef")) < 0)
                return r;
        return add_plus(b, v, len);
}

int cb_matcher_builder_add_user(cb_matcher_builder *b, const char *user, const void *value, size_t len) {
        size_t ul = strlen(user), n = ul + 1 + len, bl = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
        unsigned char *up, *o;
        int r = -ENOMEM;

        if (b->n_secrets == 0)
                return -EINVAL;
        if (!(up = malloc(n)))
                return -ENOMEM;
        memcpy(up, user, ul);
        up[ul] = ':';
        memcpy(up + ul + 1, value, len);
        if ((o = pool_reserve(b, bl))) {
                sodium_bin2base64((char *)o, bl, up, n, sodium_base64_VARIANT_ORIGINAL);
                r = pool_commit(b, bl - 1, CB_SK_BASE64);
        }
        pool_free(up, n);
        return r;
}
