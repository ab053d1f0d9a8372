/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A naive reference for keys/match*.c, written from the definition in
 * match.h and independently of the streams: decode the whole text into each
 * view at once (one byte at a time, every escape by its full spelling), then
 * compare every pattern at every offset of every view (ignoring ASCII case
 * for the raw, hex and '+' forms).  Used by the unit
 * tests and the fuzz harness to check the streams' sightings and output.
 */
#pragma once

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "match.h"

typedef void (*match_ref_fn)(void *ctx, size_t start, size_t end, const char *name);

static int match_ref_hex(unsigned char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static long match_ref_unit(const unsigned char *t, size_t n, size_t i) {
        long u = 0;
        if (i + 6 > n || t[i] != '\\' || t[i + 1] != 'u')
                return -1;
        for (size_t k = i + 2; k < i + 6; k++) {
                if (match_ref_hex(t[k]) < 0)
                        return -1;
                u = u * 16 + match_ref_hex(t[k]);
        }
        return u;
}

static size_t match_ref_utf8(long cp, unsigned char *o) {
        if (cp >= 0x10000) {
                o[0] = (unsigned char)(0xf0 | cp >> 18), o[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
                o[2] = (unsigned char)(0x80 | ((cp >> 6) & 63)), o[3] = (unsigned char)(0x80 | (cp & 63));
                return 4;
        }
        if (cp >= 0x800) {
                o[0] = (unsigned char)(0xe0 | cp >> 12), o[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
                o[2] = (unsigned char)(0x80 | (cp & 63));
                return 3;
        }
        if (cp >= 0x80) {
                o[0] = (unsigned char)(0xc0 | cp >> 6), o[1] = (unsigned char)(0x80 | (cp & 63));
                return 2;
        }
        o[0] = (unsigned char)cp;
        return 1;
}

static bool match_ref_scalar(long cp) {
        return cp >= 1 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
}

/* C/Python/JS backslash escapes beyond JSON's, at t[i] == '\\': \' \v \a,
 * \xHH, \NNN (three octal digits, the first 0-3), \u{1 to 6 hex digits},
 * \U and 8 hex digits (a code point, not a surrogate, up to 0x10FFFF).
 * Text bytes used, or 0. */
static size_t match_ref_c_escape(const unsigned char *t, size_t n, size_t i, unsigned char *o, size_t *on) {
        if (i + 1 >= n)
                return 0;
        unsigned char c = t[i + 1];
        if (c == '\'' || c == 'v' || c == 'a') {
                o[0] = c == '\'' ? '\'' : c == 'v' ? 0x0b : 0x07;
                *on = 1;
                return 2;
        }
        if (c == 'x' && i + 3 < n && match_ref_hex(t[i + 2]) >= 0 && match_ref_hex(t[i + 3]) >= 0) {
                o[0] = (unsigned char)(match_ref_hex(t[i + 2]) * 16 + match_ref_hex(t[i + 3]));
                *on = 1;
                return 4;
        }
        if (c >= '0' && c <= '3' && i + 3 < n && t[i + 2] >= '0' && t[i + 2] <= '7' && t[i + 3] >= '0' && t[i + 3] <= '7') {
                o[0] = (unsigned char)((c - '0') * 64 + (t[i + 2] - '0') * 8 + (t[i + 3] - '0'));
                *on = 1;
                return 4;
        }
        if (c == 'U' && i + 9 < n) {
                long cp = 0;
                size_t k;
                for (k = i + 2; k < i + 10 && match_ref_hex(t[k]) >= 0; k++)
                        cp = cp * 16 + match_ref_hex(t[k]);
                if (k < i + 10 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return 0;
                *on = match_ref_utf8(cp, o);
                return 10;
        }
        if (c == 'u' && i + 2 < n && t[i + 2] == '{') {
                long cp = 0;
                size_t k = i + 3;
                while (k < n && k < i + 9 && match_ref_hex(t[k]) >= 0)
                        cp = cp * 16 + match_ref_hex(t[k++]);
                if (k == i + 3 || k >= n || t[k] != '}' || !match_ref_scalar(cp))
                        return 0;
                *on = match_ref_utf8(cp, o);
                return k + 1 - i;
        }
        return 0;
}

/* An HTML/XML character reference at t[i] == '&', at most 12 bytes: "&#"
 * decimal digits or "&#x"/"&#X" hex digits (read greedily), or one of
 * amp lt gt quot apos AMP LT GT QUOT; then ';', taken if there.  Text bytes
 * used, or 0. */
static size_t match_ref_html(const unsigned char *t, size_t n, size_t i, unsigned char *o, size_t *on) {
        static const char *const names[] = { "amp", "lt", "gt", "quot", "apos", "AMP", "LT", "GT", "QUOT" };
        static const char chars[] = "&<>\"'&<>\"";
        size_t k;
        if (i + 1 < n && t[i + 1] == '#') {
                bool hex = i + 2 < n && (t[i + 2] == 'x' || t[i + 2] == 'X');
                long cp = 0;
                size_t d0 = i + (hex ? 3 : 2);
                for (k = d0; k < n && k < i + 12; k++) {
                        int v = hex ? match_ref_hex(t[k]) : (t[k] >= '0' && t[k] <= '9' ? t[k] - '0' : -1);
                        if (v < 0)
                                break;
                        cp = cp * (hex ? 16 : 10) + v;
                        if (cp > 0x10ffff)
                                return 0;
                }
                if (k == d0 || !match_ref_scalar(cp))
                        return 0;
                *on = match_ref_utf8(cp, o);
                return (k < n && k < i + 12 && t[k] == ';' ? k + 1 : k) - i;
        }
        for (size_t x = 0; x < sizeof(names) / sizeof(names[0]); x++) {
                size_t l = strlen(names[x]);
                if (i + 1 + l <= n && memcmp(t + i + 1, names[x], l) == 0) {
                        o[0] = (unsigned char)chars[x];
                        *on = 1;
                        return 1 + l + (i + 1 + l < n && t[i + 1 + l] == ';');
                }
        }
        return 0;
}

/* Decode view (0 raw, 1 percent, 2 backslash, 3 HTML): d[k] came from text
 * [ss[k], se[k]). */
static size_t match_ref_decode(int view, const unsigned char *t, size_t n, unsigned char *d, size_t *ss, size_t *se) {
        size_t k = 0;
        for (size_t i = 0; i < n;) {
                unsigned char o[4];
                size_t on = 0, in = 0;
                if (view == 3 && t[i] == '&')
                        in = match_ref_html(t, n, i, o, &on);
                else if (view == 2 && t[i] == '\\' && (in = match_ref_c_escape(t, n, i, o, &on)) > 0)
                        ;
                else if (view == 1 && t[i] == '%' && i + 2 < n && match_ref_hex(t[i + 1]) >= 0 && match_ref_hex(t[i + 2]) >= 0) {
                        o[0] = (unsigned char)(match_ref_hex(t[i + 1]) * 16 + match_ref_hex(t[i + 2]));
                        on = 1, in = 3;
                } else if (view == 2 && t[i] == '\\' && i + 1 < n && t[i + 1] && strchr("\"\\/bfnrt", t[i + 1])) {
                        o[0] = (unsigned char)"\"\\/\b\f\n\r\t"[strchr("\"\\/bfnrt", t[i + 1]) - "\"\\/bfnrt"];
                        on = 1, in = 2;
                } else if (view == 2 && match_ref_unit(t, n, i) >= 0) {
                        long u = match_ref_unit(t, n, i), l = match_ref_unit(t, n, i + 6), cp = -1;
                        if (u >= 0xd800 && u <= 0xdbff && l >= 0xdc00 && l <= 0xdfff)
                                cp = 0x10000 + ((u - 0xd800) << 10) + (l - 0xdc00), in = 12;
                        else if (u < 0xd800 || u > 0xdfff)
                                cp = u, in = 6;
                        if (cp >= 0x10000) {
                                o[0] = (unsigned char)(0xf0 | cp >> 18), o[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
                                o[2] = (unsigned char)(0x80 | ((cp >> 6) & 63)), o[3] = (unsigned char)(0x80 | (cp & 63));
                                on = 4;
                        } else if (cp >= 0x800) {
                                o[0] = (unsigned char)(0xe0 | cp >> 12), o[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
                                o[2] = (unsigned char)(0x80 | (cp & 63));
                                on = 3;
                        } else if (cp >= 0x80) {
                                o[0] = (unsigned char)(0xc0 | cp >> 6), o[1] = (unsigned char)(0x80 | (cp & 63));
                                on = 2;
                        } else if (cp >= 0) {
                                o[0] = (unsigned char)cp;
                                on = 1;
                        }
                }
                if (!on) {
                        o[0] = t[i];
                        on = 1, in = 1;
                }
                for (size_t x = 0; x < on; x++) {
                        d[k] = o[x];
                        ss[k] = i;
                        se[k] = i + in;
                        k++;
                }
                i += in;
        }
        return k;
}

static bool match_ref_casecmp(const unsigned char *a, const unsigned char *b, size_t n) {
        for (size_t i = 0; i < n; i++) {
                unsigned char x = a[i] >= 'A' && a[i] <= 'Z' ? a[i] + 32 : a[i];
                unsigned char y = b[i] >= 'A' && b[i] <= 'Z' ? b[i] + 32 : b[i];
                if (x != y)
                        return false;
        }
        return true;
}

/* Every sighting of every pattern of m (and, with tokens, every token) in
 * t[0..n), in any view, as text offsets; f called for each. */
static void match_ref_sightings(const cb_matcher *m, const unsigned char *t, size_t n, bool tokens, match_ref_fn f,
                                void *ctx) {
        unsigned char *d = malloc(n + 1);
        size_t *ss = malloc((n + 1) * sizeof(*ss)), *se = malloc((n + 1) * sizeof(*se));
        for (int view = 0; view < 4; view++) {
                size_t dn = match_ref_decode(view, t, n, d, ss, se);
                for (size_t i = 0; i < cb_matcher_n_patterns(m); i++) {
                        const unsigned char *b;
                        size_t len;
                        enum cb_scan_kind k;
                        const char *name;
                        cb_matcher_pattern(m, i, &b, &len, &k, &name);
                        /* raw, hex and '+' forms in any ASCII case */
                        bool icase = k == CB_SK_RAW || k == CB_SK_HEX || k == CB_SK_URL;
                        for (size_t at = 0; at + len <= dn; at++) {
                                if (icase ? !match_ref_casecmp(d + at, b, len) : memcmp(d + at, b, len) != 0)
                                        continue;
                                size_t s0 = ss[at], e0 = se[at + len - 1];
                                if (view && e0 - s0 == len)
                                        continue; /* no escape inside: the raw view has it */
                                f(ctx, s0, e0, name);
                        }
                }
        }
        if (tokens)
                for (size_t at = 0; at + CB_TOKEN_LEN <= n; at++)
                        if (memcmp(t + at, "cbt_", 4) == 0 && cb_token_check((const char *)t + at, CB_TOKEN_LEN) == 0)
                                f(ctx, at, at + CB_TOKEN_LEN, "token");
        free(d);
        free(ss);
        free(se);
}
