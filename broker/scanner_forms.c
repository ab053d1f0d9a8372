/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The leak scanner's pattern set: the builder and the encoded forms of each
 * secret value (raw; base64 and base64url at the three alignments; hex;
 * the URL and JSON escapings libraries produce), written straight into
 * secure memory.  scanner.c compiles the set into the index and runs the
 * streaming matcher and redaction; scanner.h has the contract and design.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "scanner.h"
#include "scanner_internal.h"

#define POOL_MIN (64 * 1024)

/* ---- builder ------------------------------------------------------------ */

cb_matcher_builder *cb_matcher_builder_new(void) {
        return calloc(1, sizeof(cb_matcher_builder));
}

void cb_matcher_builder_free(cb_matcher_builder *b) {
        if (!b)
                return;
        if (b->pool)
                sodium_free(b->pool); /* wipes */
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
                unsigned char *np = sodium_malloc(nc);
                if (!np)
                        return NULL;
                if (b->pool) {
                        memcpy(np, b->pool, b->pool_len);
                        sodium_free(b->pool);
                }
                b->pool = np;
                b->pool_cap = nc;
        }
        return b->pool + b->pool_len;
}

/* Commit n bytes written at pool_reserve()'s pointer as a pattern. */
static int pool_commit(cb_matcher_builder *b, size_t n, enum cb_scan_kind kind) {
        if (n < CB_SCAN_MIN_SECRET) /* encodings of a long-enough value are never shorter; keep the invariant */
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

static bool unreserved(unsigned char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
               c == '_' || c == '~';
}

/* %XX escaping as a library does it: unreserved characters (RFC 3986)
 * kept, and those in keep; '~' escaped with tilde; ' ' as '+' with plus. */
static int add_url(cb_matcher_builder *b, const unsigned char *v, size_t len, const char *hex, const char *keep,
                   bool tilde, bool plus) {
        unsigned char *o = pool_reserve(b, 3 * len);
        size_t n = 0;

        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                if (plus && v[i] == ' ') {
                        o[n++] = '+';
                } else if ((unreserved(v[i]) && !(tilde && v[i] == '~')) || (v[i] && strchr(keep, v[i]))) {
                        o[n++] = v[i];
                } else {
                        o[n++] = '%';
                        o[n++] = (unsigned char)hex[v[i] >> 4];
                        o[n++] = (unsigned char)hex[v[i] & 15];
                }
        }
        return pool_commit(b, n, CB_SK_URL);
}

/* Decode one UTF-8 sequence at v[i..len): code point, or -1 if invalid. */
static long utf8_next(const unsigned char *v, size_t len, size_t *i) {
        unsigned char c = v[*i];
        size_t n;
        long cp;

        if (c < 0x80) {
                (*i)++;
                return c;
        }
        if (c >= 0xc2 && c <= 0xdf)
                n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
                n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
                n = 3, cp = c & 0x07;
        else
                return -1;
        if (*i + n >= len)
                return -1;
        for (size_t k = 1; k <= n; k++) {
                if ((v[*i + k] & 0xc0) != 0x80)
                        return -1;
                cp = cp << 6 | (v[*i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
                return -1;
        *i += n + 1;
        return cp;
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

/* JSON string escaping.  upper: \u00XX hex case; slash: also "\/";
 * ascii: non-ASCII as \uXXXX (UTF-16 surrogate pairs), skipped when v is
 * not valid UTF-8; html: < > & as \u003c \u003e \u0026 (Go). */
static int add_json(cb_matcher_builder *b, const unsigned char *v, size_t len, bool upper, bool slash, bool ascii,
                    bool html) {
        const char *hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
        unsigned char *o = pool_reserve(b, 12 * len);
        size_t n = 0, i = 0;

        if (!o)
                return -ENOMEM;
        while (i < len) {
                unsigned char c = v[i];
                long cp = c;

                if (ascii && c >= 0x80) {
                        cp = utf8_next(v, len, &i);
                        if (cp < 0)
                                return 0;
                        long units[2] = { cp, -1 };
                        if (cp >= 0x10000) {
                                units[0] = 0xd800 + ((cp - 0x10000) >> 10);
                                units[1] = 0xdc00 + ((cp - 0x10000) & 0x3ff);
                        }
                        for (int k = 0; k < 2 && units[k] >= 0; k++) {
                                o[n++] = '\\';
                                o[n++] = 'u';
                                for (int d = 12; d >= 0; d -= 4)
                                        o[n++] = (unsigned char)hex[(units[k] >> d) & 15];
                        }
                        continue;
                }
                i++;
                switch (c) {
                case '"': o[n++] = '\\'; o[n++] = '"'; continue;
                case '\\': o[n++] = '\\'; o[n++] = '\\'; continue;
                case '\b': o[n++] = '\\'; o[n++] = 'b'; continue;
                case '\f': o[n++] = '\\'; o[n++] = 'f'; continue;
                case '\n': o[n++] = '\\'; o[n++] = 'n'; continue;
                case '\r': o[n++] = '\\'; o[n++] = 'r'; continue;
                case '\t': o[n++] = '\\'; o[n++] = 't'; continue;
                case '/':
                        if (slash)
                                o[n++] = '\\';
                        o[n++] = '/';
                        continue;
                default:
                        break;
                }
                if (c < 0x20 || (html && (c == '<' || c == '>' || c == '&'))) {
                        memcpy(o + n, "\\u00", 4);
                        n += 4;
                        o[n++] = (unsigned char)hex[c >> 4];
                        o[n++] = (unsigned char)hex[c & 15];
                } else {
                        o[n++] = c;
                }
        }
        return pool_commit(b, n, CB_SK_JSON);
}

int cb_matcher_builder_add(cb_matcher_builder *b, const char *name, uint32_t version, const void *value,
                           size_t len) {
        const unsigned char *v = value;
        unsigned char *o;
        int r;

        if (len < CB_SCAN_MIN_SECRET)
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
        if ((r = add_hex(b, v, len, "0123456789abcdef")) < 0 || (r = add_hex(b, v, len, "0123456789ABCDEF")) < 0)
                return r;
        /* URL escapings: RFC 3986 (upper, lower hex); Python quote() keeping
         * '/'; JS encodeURIComponent keeping !*()'; PHP urlencode (~ as
         * %7E, ' ' as +); quote_plus (' ' as +); HTML forms (WHATWG: * kept,
         * ~ as %7E, ' ' as +).  Forms equal to another are kept once at
         * build: a value without such characters adds no pattern. */
        static const char UP[] = "0123456789ABCDEF";
        if ((r = add_url(b, v, len, UP, "", false, false)) < 0 ||
            (r = add_url(b, v, len, "0123456789abcdef", "", false, false)) < 0 ||
            (r = add_url(b, v, len, UP, "/", false, false)) < 0 ||
            (r = add_url(b, v, len, UP, "!*()'", false, false)) < 0 ||
            (r = add_url(b, v, len, UP, "", true, true)) < 0 || (r = add_url(b, v, len, UP, "", false, true)) < 0 ||
            (r = add_url(b, v, len, UP, "*", true, true)) < 0)
                return r;
        /* JSON: minimal; \u00XX upper; "\/"; ASCII-only (Python); ASCII-only
         * upper; "\/" + ASCII-only (PHP json_encode); HTML-safe (Go). */
        if ((r = add_json(b, v, len, false, false, false, false)) < 0 ||
            (r = add_json(b, v, len, true, false, false, false)) < 0 ||
            (r = add_json(b, v, len, false, true, false, false)) < 0 ||
            (r = add_json(b, v, len, false, false, true, false)) < 0 ||
            (r = add_json(b, v, len, true, false, true, false)) < 0 ||
            (r = add_json(b, v, len, false, true, true, false)) < 0 ||
            (r = add_json(b, v, len, false, false, false, true)) < 0)
                return r;
        return 0;
}
