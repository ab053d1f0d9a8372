/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A naive reference for keys/match*.c, written from the definition in
 * match.h and independently of the streams: decode the whole text into each
 * view at once (one byte at a time, every escape by its full spelling), then
 * memcmp every pattern at every offset of every view.  Used by the unit
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

/* Decode view (0 raw, 1 percent, 2 JSON): d[k] came from text [ss[k], se[k]). */
static size_t match_ref_decode(int view, const unsigned char *t, size_t n, unsigned char *d, size_t *ss, size_t *se) {
        size_t k = 0;
        for (size_t i = 0; i < n;) {
                unsigned char o[4];
                size_t on = 0, in = 0;
                if (view == 1 && t[i] == '%' && i + 2 < n && match_ref_hex(t[i + 1]) >= 0 && match_ref_hex(t[i + 2]) >= 0) {
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

/* Every sighting of every pattern of m (and, with tokens, every token) in
 * t[0..n), in any view, as text offsets; f called for each. */
static void match_ref_sightings(const cb_matcher *m, const unsigned char *t, size_t n, bool tokens, match_ref_fn f,
                                void *ctx) {
        unsigned char *d = malloc(n + 1);
        size_t *ss = malloc((n + 1) * sizeof(*ss)), *se = malloc((n + 1) * sizeof(*se));
        for (int view = 0; view < 3; view++) {
                size_t dn = match_ref_decode(view, t, n, d, ss, se);
                for (size_t i = 0; i < cb_matcher_n_patterns(m); i++) {
                        const unsigned char *b;
                        size_t len;
                        enum cb_scan_kind k;
                        const char *name;
                        cb_matcher_pattern(m, i, &b, &len, &k, &name);
                        for (size_t at = 0; at + len <= dn; at++) {
                                if (memcmp(d + at, b, len) != 0)
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
