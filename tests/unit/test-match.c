/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keys/match*.c, the one matcher the proxy, exec and the scanner share:
 * every form match.h claims, spelled here independently of the module, for
 * values holding + / = : % " \ newline and non-ASCII bytes, embedded in
 * text, redacted by an eager stream split at every offset and fed one byte
 * at a time; the output must equal the naive reference (tests/helper/
 * match-ref.h) and hide the form.  Plus what an eager stream holds back,
 * and near misses that must stay.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cbtest.h"
#include "codec.h"
#include "match.h"
#include "match-ref.h"

typedef struct sink {
        char *p;
        size_t n, cap;
} sink;

static int sink_out(void *ctx, const void *p, size_t n) {
        sink *k = ctx;
        if (k->n + n + 1 > k->cap) {
                k->cap = (k->n + n + 1) * 2;
                k->p = realloc(k->p, k->cap);
        }
        memcpy(k->p + k->n, p, n);
        k->n += n;
        k->p[k->n] = '\0';
        return 0;
}

typedef struct occs {
        struct {
                size_t s, e;
                const char *name;
        } v[256];
        size_t n;
} occs;

static void ref_add(void *ctx, size_t s, size_t e, const char *name) {
        occs *o = ctx;
        if (o->n < 256) {
                o->v[o->n].s = s, o->v[o->n].e = e, o->v[o->n].name = name;
                o->n++;
        }
}

/* The reference output: sightings merged, longest first at a start. */
static void reference(const cb_matcher *m, const char *t, size_t n, sink *out) {
        occs o = { .n = 0 };
        match_ref_sightings(m, (const unsigned char *)t, n, false, ref_add, &o);
        for (size_t i = 1; i < o.n; i++)
                for (size_t k = i; k > 0 && (o.v[k].s < o.v[k - 1].s || (o.v[k].s == o.v[k - 1].s && o.v[k].e > o.v[k - 1].e)); k--) {
                        __typeof__(o.v[0]) x = o.v[k];
                        o.v[k] = o.v[k - 1];
                        o.v[k - 1] = x;
                }
        size_t em = 0;
        out->n = 0;
        sink_out(out, "", 0);
        for (size_t i = 0; i < o.n; i++) {
                if (o.v[i].s >= em) {
                        sink_out(out, t + em, o.v[i].s - em);
                        sink_out(out, "[REDACTED:", 10);
                        sink_out(out, o.v[i].name, strlen(o.v[i].name));
                        sink_out(out, "]", 1);
                        em = o.v[i].e;
                } else if (o.v[i].e > em) {
                        em = o.v[i].e;
                }
        }
        sink_out(out, t + em, n - em);
}

/* An eager stream over t, cut at the offsets in cuts (ascending), or in
 * 1-byte pieces when cuts is NULL and ncuts is 1. */
static void redact(const cb_matcher *m, const char *t, size_t n, const size_t *cuts, size_t ncuts, bool eager,
                   sink *out) {
        cb_scan_stream *s = cb_scan_stream_new(m, NULL, sink_out, out);
        size_t at = 0;
        ASSERT_TRUE(s != NULL);
        if (eager)
                cb_scan_stream_eager(s);
        out->n = 0;
        sink_out(out, "", 0);
        if (!cuts && ncuts == 1) {
                for (; at < n; at++)
                        ASSERT_OK(cb_scan_stream_feed(s, t + at, 1));
        } else {
                for (size_t i = 0; i <= ncuts; i++) {
                        size_t end = i < ncuts ? cuts[i] : n;
                        ASSERT_OK(cb_scan_stream_feed(s, t + at, end - at));
                        at = end;
                }
        }
        ASSERT_OK(cb_scan_stream_finish(s));
        cb_scan_stream_free(s);
}

static const unsigned char values[][40] = {
        "sk-live-4f+9/aZ=Q1:%\"\\\nend",       /* + / = : % " \ newline */
        "AKIAIOSFODNN7EXAMPLE/wJalrXUtnFEMI+K=", /* AWS-style with + / = */
        "p\xc3\xa9ss w\xc3\xb6rd \xf0\x9f\x94\x91 &x", /* UTF-8 incl. a 4-byte character, spaces */
        "raw\x01\xff\x80 bytes<>'",                /* control and invalid UTF-8 bytes */
};

static size_t b64(char *o, const unsigned char *p, size_t n, bool url, bool pad) {
        const char *a = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                            : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t k = 0, i;
        for (i = 0; i + 2 < n; i += 3) {
                unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
                for (int s = 18; s >= 0; s -= 6)
                        o[k++] = a[(v >> s) & 63];
        }
        if (n - i == 1 || n - i == 2) {
                unsigned v = (unsigned)p[i] << 16 | (n - i == 2 ? (unsigned)p[i + 1] << 8 : 0);
                o[k++] = a[v >> 18];
                o[k++] = a[(v >> 12) & 63];
                if (n - i == 2)
                        o[k++] = a[(v >> 6) & 63];
                for (size_t x = n - i; pad && x < 3; x++)
                        o[k++] = '=';
        }
        o[k] = '\0';
        return k;
}

static bool unreserved(unsigned char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~", c);
}

/* Percent: mode 0 every byte escaped upper, 1 every byte lower, 2 RFC 3986
 * (unreserved kept) mixed case, 3 Python quote (also '/' kept), 4 random
 * per byte: raw, upper or lower; 5 quote_plus (' ' as '+'). */
static size_t pct(char *o, const unsigned char *v, size_t n, int mode) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = v[i];
                int how = mode == 0 ? 1 : mode == 1 ? 2 : (int)(randombytes_uniform(2) + 1);
                if ((mode == 2 || mode == 3 || mode == 5) && unreserved(c))
                        how = 0;
                if (mode == 3 && c == '/')
                        how = 0;
                if (mode == 4)
                        how = (int)randombytes_uniform(3);
                if (mode == 5 && c == ' ') {
                        o[k++] = '+';
                        continue;
                }
                if (how == 0)
                        o[k++] = (char)c;
                else
                        k += (size_t)(how == 1 ? sprintf(o + k, "%%%02X", c) : sprintf(o + k, "%%%02x", c));
        }
        o[k] = '\0';
        return k;
}

/* JSON: mode 0 minimal, 1 also "\/", 2 ASCII-only (\uXXXX, surrogate
 * pairs) lower hex, 3 the same upper hex, 4 every ASCII byte as \u00XX. */
static size_t json(char *o, const unsigned char *v, size_t n, int mode) {
        size_t k = 0;
        for (size_t i = 0; i < n;) {
                unsigned char c = v[i];
                if (c >= 0x80 && mode >= 2) {
                        unsigned long cp;
                        size_t l = c >= 0xf8 ? 0 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
                        if (!l || i + l > n)
                                return 0; /* not UTF-8: no such spelling */
                        for (size_t x = 1; x < l; x++)
                                if ((v[i + x] & 0xc0) != 0x80)
                                        return 0;
                        cp = c & (0x7f >> l);
                        for (size_t x = 1; x < l; x++)
                                cp = cp << 6 | (v[i + x] & 0x3f);
                        unsigned long u1 = cp >= 0x10000 ? 0xd800 + ((cp - 0x10000) >> 10) : cp;
                        unsigned long u2 = cp >= 0x10000 ? 0xdc00 + ((cp - 0x10000) & 0x3ff) : 0;
                        k += (size_t)(mode == 3 ? sprintf(o + k, "\\u%04lX", u1) : sprintf(o + k, "\\u%04lx", u1));
                        if (u2)
                                k += (size_t)(mode == 3 ? sprintf(o + k, "\\u%04lX", u2) : sprintf(o + k, "\\u%04lx", u2));
                        i += l;
                        continue;
                }
                i++;
                if (mode == 4 && c < 0x80)
                        k += (size_t)sprintf(o + k, "\\u%04x", c);
                else if (c == '"' || c == '\\' || (c == '/' && mode >= 1))
                        o[k++] = '\\', o[k++] = (char)c;
                else if (c == '\n')
                        o[k++] = '\\', o[k++] = 'n';
                else if (c < 0x20)
                        k += (size_t)sprintf(o + k, mode == 3 ? "\\u%04X" : "\\u%04x", c);
                else
                        o[k++] = (char)c;
        }
        o[k] = '\0';
        return k;
}

static size_t hex(char *o, const unsigned char *v, size_t n, bool upper) {
        for (size_t i = 0; i < n; i++)
                (void)(upper ? sprintf(o + 2 * i, "%02X", v[i]) : sprintf(o + 2 * i, "%02x", v[i]));
        return 2 * n;
}

/* Case: mode 0 ASCII upper-cased, 1 lower-cased, 2 each letter's case at
 * random; 3 hex with each digit's case at random. */
static size_t cased(char *o, const unsigned char *v, size_t n, int mode) {
        size_t k = mode == 3 ? hex(o, v, n, false) : n;
        if (mode != 3)
                memcpy(o, v, n);
        for (size_t i = 0; i < k; i++) {
                unsigned char c = (unsigned char)o[i];
                bool up = mode == 0 || (mode >= 2 && randombytes_uniform(2));
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                        o[i] = (char)(up ? c & ~0x20 : c | 0x20);
        }
        o[k] = '\0';
        return k;
}

/* The code points of UTF-8 v[0..n) into cp[], their number; 0 if not UTF-8. */
static size_t code_points(const unsigned char *v, size_t n, unsigned long *cp) {
        size_t k = 0;
        for (size_t i = 0; i < n;) {
                unsigned char c = v[i];
                size_t l = c < 0x80 ? 1 : c >= 0xf8 ? 0 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
                if (!l || i + l > n)
                        return 0;
                cp[k] = l == 1 ? c : c & (0x7f >> l);
                for (size_t x = 1; x < l; x++) {
                        if ((v[i + x] & 0xc0) != 0x80)
                                return 0;
                        cp[k] = cp[k] << 6 | (v[i + x] & 0x3f);
                }
                k++;
                i += l;
        }
        return k;
}

/* HTML/XML: mode 0 every character "&#DDD;", 1 "&#xhh;", 2 "&#XHH;", 3
 * "&#DDD" without ';' (each is followed by '&' or the end), 4 zero-padded
 * "&#x00HH;", 5 html.escape() (& < > " as named, ' as &#x27;, the rest
 * raw), 6 each character at random raw, decimal, hex or (& < > " ') named. */
static size_t htmlf(char *o, const unsigned char *v, size_t n, int mode) {
        unsigned long cp[64];
        size_t k = 0, nc = mode == 5 ? 0 : code_points(v, n, cp);
        if (mode == 5) {
                for (size_t i = 0; i < n; i++) {
                        const char *e = v[i] == '&' ? "&amp;" : v[i] == '<' ? "&lt;" : v[i] == '>' ? "&gt;"
                                      : v[i] == '"' ? "&quot;" : v[i] == '\'' ? "&#x27;" : NULL;
                        if (e)
                                k += (size_t)sprintf(o + k, "%s", e);
                        else
                                o[k++] = (char)v[i];
                }
                o[k] = '\0';
                return k;
        }
        if (!nc)
                return 0; /* not UTF-8: references name characters, not bytes */
        for (size_t i = 0; i < nc; i++) {
                int how = mode == 6 ? (int)randombytes_uniform(4) : mode;
                const char *named = cp[i] == '&' ? "&amp;" : cp[i] == '<' ? "&LT;" : cp[i] == '>' ? "&gt"
                                  : cp[i] == '"' ? "&quot;" : cp[i] == '\'' ? "&apos;" : NULL;
                if (mode == 6 && how == 3 && named) {
                        k += (size_t)sprintf(o + k, "%s", named);
                } else if (mode == 6 && (how == 0 || how == 3)) {
                        unsigned char u[4];
                        size_t ul = cp[i] < 0x80 ? 1 : cp[i] < 0x800 ? 2 : cp[i] < 0x10000 ? 3 : 4;
                        /* raw: re-encode the character */
                        if (ul == 1)
                                u[0] = (unsigned char)cp[i];
                        else if (ul == 2)
                                u[0] = (unsigned char)(0xc0 | cp[i] >> 6), u[1] = (unsigned char)(0x80 | (cp[i] & 63));
                        else if (ul == 3)
                                u[0] = (unsigned char)(0xe0 | cp[i] >> 12), u[1] = (unsigned char)(0x80 | ((cp[i] >> 6) & 63)),
                                u[2] = (unsigned char)(0x80 | (cp[i] & 63));
                        else
                                u[0] = (unsigned char)(0xf0 | cp[i] >> 18), u[1] = (unsigned char)(0x80 | ((cp[i] >> 12) & 63)),
                                u[2] = (unsigned char)(0x80 | ((cp[i] >> 6) & 63)), u[3] = (unsigned char)(0x80 | (cp[i] & 63));
                        if (cp[i] == 0 || (ul == 1 && cp[i] == '&')) /* a raw '&' could start a reference */
                                k += (size_t)sprintf(o + k, "&#%lu;", cp[i]);
                        else
                                memcpy(o + k, u, ul), k += ul;
                } else if (how == 0 || (mode == 6 && how == 1)) {
                        k += (size_t)sprintf(o + k, "&#%lu;", cp[i]);
                } else if (how == 1) {
                        k += (size_t)sprintf(o + k, "&#x%lx;", cp[i]);
                } else if (how == 2) {
                        k += (size_t)sprintf(o + k, "&#X%lX;", cp[i]);
                } else if (how == 3) {
                        k += (size_t)sprintf(o + k, "&#%lu", cp[i]);
                } else {
                        k += (size_t)sprintf(o + k, "&#x%06lx;", cp[i]);
                }
        }
        o[k] = '\0';
        return k;
}

/* Backslash escapes beyond JSON: mode 0 every byte "\xhh", 1 "\xHH", 2
 * every byte octal "\NNN", 3 Python's repr() of bytes (printable ASCII
 * raw, \\ \' \t \n \r, the rest \xhh), 4 JS "\u{X}" per character, 5
 * each byte at random raw, \xHH or octal, 6 Python "\UXXXXXXXX" per
 * character. */
static size_t cesc(char *o, const unsigned char *v, size_t n, int mode) {
        size_t k = 0;
        if (mode == 4 || mode == 6) {
                unsigned long cp[64];
                size_t nc = code_points(v, n, cp);
                if (!nc)
                        return 0;
                for (size_t i = 0; i < nc; i++)
                        k += (size_t)sprintf(o + k, mode == 4 ? "\\u{%lX}" : "\\U%08lx", cp[i]);
                o[k] = '\0';
                return k;
        }
        for (size_t i = 0; i < n; i++) {
                unsigned char c = v[i];
                int how = mode == 5 ? (int)randombytes_uniform(3) : mode;
                if (mode == 3) {
                        if (c == '\\' || c == '\'')
                                o[k++] = '\\', o[k++] = (char)c;
                        else if (c == '\t' || c == '\n' || c == '\r')
                                o[k++] = '\\', o[k++] = c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
                        else if (c >= 0x20 && c < 0x7f)
                                o[k++] = (char)c;
                        else
                                k += (size_t)sprintf(o + k, "\\x%02x", c);
                } else if (mode == 5 && how == 2 && c != '\\') {
                        o[k++] = (char)c;
                } else if (how == 0) {
                        k += (size_t)sprintf(o + k, "\\x%02x", c);
                } else if (how == 1) {
                        k += (size_t)sprintf(o + k, "\\x%02X", c);
                } else {
                        k += (size_t)sprintf(o + k, "\\%03o", c);
                }
        }
        o[k] = '\0';
        return k;
}

/* Check one embedded form: reference equal to the streams at every split
 * and byte by byte, and the form hidden (wholly, or for a base64 form of a
 * value inside a longer text (partial: 1 + the characters the bytes before
 * it fill) all but the characters that also depend on the neighbours). */
static void check_form(const cb_matcher *m, const char *what, const char *form, size_t fl, int partial) {
        char text[1024];
        int n = snprintf(text, sizeof(text), "{\"echo\": \"%.*s\"}\n", (int)fl, form);
        sink ref = { 0 }, got = { 0 };
        ASSERT_TRUE(n > 0 && (size_t)n < sizeof(text));
        reference(m, text, (size_t)n, &ref);
        if (!strstr(ref.p, "[REDACTED:v]"))
                cbtest_fail(__FILE__, __LINE__, "%s: not found: %s", what, text);
        if (!partial && !strstr(ref.p, "{\"echo\": \"[REDACTED:v]\"}\n"))
                cbtest_fail(__FILE__, __LINE__, "%s: not wholly hidden: %s", what, ref.p);
        if (partial) {
                const char *a = strstr(ref.p, "\"echo\": \"") + 9, *z = strstr(ref.p, "[REDACTED:v]");
                const char *e = z + 12, *q = strchr(e, '"');
                /* left: the characters of what precedes the value (8a/6
                 * rounded up, passed as partial - 1); right: one mixed
                 * character and padding */
                if (z - a > partial - 1 || q - e > (memchr(form, '%', fl) ? 9 : 3))
                        cbtest_fail(__FILE__, __LINE__, "%s: more than the neighbours' characters left: %s", what,
                                    ref.p);
        }
        redact(m, text, (size_t)n, NULL, 1, true, &got);
        if (strcmp(got.p, ref.p) != 0)
                cbtest_fail(__FILE__, __LINE__, "%s: 1-byte chunks: %s", what, got.p);
        for (size_t c = 0; c <= (size_t)n; c++) {
                size_t cut[1] = { c };
                redact(m, text, (size_t)n, cut, 1, true, &got);
                if (strcmp(got.p, ref.p) != 0)
                        cbtest_fail(__FILE__, __LINE__, "%s: split at %zu: %s", what, c, got.p);
                redact(m, text, (size_t)n, cut, 1, false, &got);
                if (strcmp(got.p, ref.p) != 0)
                        cbtest_fail(__FILE__, __LINE__, "%s: split at %zu (not eager): %s", what, c, got.p);
        }
        free(ref.p);
        free(got.p);
}

static cb_matcher *one(const unsigned char *v, size_t vl, const char *user) {
        cb_matcher_builder *b = cb_matcher_builder_new(CB_MATCH_SHORT);
        cb_matcher *m;
        ASSERT_OK(cb_matcher_builder_add(b, "v", 1, v, vl));
        if (user)
                ASSERT_OK(cb_matcher_builder_add_user(b, user, v, vl));
        ASSERT_OK(cb_matcher_build(b, &m));
        return m;
}

TEST(every_form_every_split) {
        ASSERT_TRUE(sodium_init() >= 0);
        for (size_t vi = 0; vi < sizeof(values) / sizeof(values[0]); vi++) {
                const unsigned char *v = values[vi];
                size_t vl = strlen((const char *)v);
                cb_matcher *m = one(v, vl, "alice");
                char f[512], what[64];
                unsigned char up[128];
                size_t fl;

                check_form(m, "raw", (const char *)v, vl, 0);
                for (int url = 0; url < 2; url++)
                        for (int pad = 0; pad < 2; pad++)
                                for (size_t a = 0; a < 3; a++) {
                                        /* a bytes of something else before the value */
                                        memcpy(up, "xy", a);
                                        memcpy(up + a, v, vl);
                                        fl = b64(f, up, a + vl, url, pad);
                                        snprintf(what, sizeof(what), "base64 url=%d pad=%d align=%zu", url, pad, a);
                                        check_form(m, what, f, fl, 1 + (int)(8 * a + 5) / 6);
                                }
                /* basic: any user (alignment), the configured user wholly */
                memcpy(up, "bob:", 4);
                memcpy(up + 4, v, vl);
                fl = b64(f, up, 4 + vl, false, true);
                check_form(m, "basic bob:", f, fl, 1 + 6);
                memcpy(up, "alice:", 6);
                memcpy(up + 6, v, vl);
                fl = b64(f, up, 6 + vl, false, true);
                check_form(m, "basic alice: (configured)", f, fl, 0);
                for (int mode = 0; mode < 6; mode++) {
                        fl = pct(f, v, vl, mode);
                        if (mode == 5 && !memchr(v, ' ', vl))
                                continue;
                        snprintf(what, sizeof(what), "percent mode %d", mode);
                        check_form(m, what, f, fl, 0);
                }
                for (int mode = 0; mode < 5; mode++) {
                        fl = json(f, v, vl, mode);
                        if (!fl)
                                continue;
                        snprintf(what, sizeof(what), "json mode %d", mode);
                        check_form(m, what, f, fl, 0);
                }
                fl = hex(f, v, vl, false);
                check_form(m, "hex lower", f, fl, 0);
                fl = hex(f, v, vl, true);
                check_form(m, "hex upper", f, fl, 0);
                for (int mode = 0; mode < 4; mode++) {
                        fl = cased(f, v, vl, mode);
                        snprintf(what, sizeof(what), "case mode %d", mode);
                        check_form(m, what, f, fl, 0);
                }
                /* a case change under one level of escaping */
                cased((char *)up, v, vl, 0);
                fl = pct(f, up, vl, 4);
                check_form(m, "upper-cased, percent-escaped", f, fl, 0);
                fl = json(f, up, vl, 2);
                if (fl)
                        check_form(m, "upper-cased, JSON-escaped", f, fl, 0);
                for (int mode = 0; mode < 7; mode++) {
                        fl = htmlf(f, v, vl, mode);
                        if (!fl)
                                continue;
                        snprintf(what, sizeof(what), "html mode %d", mode);
                        check_form(m, what, f, fl, 0);
                }
                for (int mode = 0; mode < 7; mode++) {
                        fl = cesc(f, v, vl, mode);
                        if (!fl)
                                continue;
                        snprintf(what, sizeof(what), "backslash mode %d", mode);
                        check_form(m, what, f, fl, 0);
                }
                /* base64 escaped in JSON ("\/") and percent-escaped */
                fl = b64(f, v, vl, false, true);
                char g[512];
                size_t gl = json(g, (const unsigned char *)f, fl, 1);
                check_form(m, "base64 in JSON with \\/", g, gl, 1 + 1);
                gl = pct(g, (const unsigned char *)f, fl, 0);
                check_form(m, "base64 percent-escaped", g, gl, 1 + 3);
                cb_matcher_free(m);
        }
}

TEST(eager_holds_only_a_possible_prefix) {
        cb_matcher *m = one((const unsigned char *)"secret-value", 12, NULL);
        sink got = { 0 };
        cb_scan_stream *s = cb_scan_stream_new(m, NULL, sink_out, &got);
        cb_scan_stream_eager(s);
        sink_out(&got, "", 0);
        ASSERT_OK(cb_scan_stream_feed(s, "data: 1\n\n", 9));
        ASSERT_STREQ(got.p, "data: 1\n\n"); /* an SSE event goes out whole */
        ASSERT_OK(cb_scan_stream_feed(s, "data: secr", 10));
        ASSERT_STREQ(got.p, "data: 1\n\ndata: "); /* "secr" may become the value */
        ASSERT_OK(cb_scan_stream_feed(s, "et\n", 3));
        ASSERT_STREQ(got.p, "data: 1\n\ndata: secret\n");
        ASSERT_OK(cb_scan_stream_feed(s, "x %73ecret-valu", 15)); /* an escape, then a prefix */
        ASSERT_STREQ(got.p, "data: 1\n\ndata: secret\nx ");
        ASSERT_OK(cb_scan_stream_feed(s, "e%", 2)); /* an escape not yet complete is held */
        ASSERT_STREQ(got.p, "data: 1\n\ndata: secret\nx [REDACTED:v]");
        ASSERT_OK(cb_scan_stream_feed(s, "41 ", 3));
        ASSERT_STREQ(got.p, "data: 1\n\ndata: secret\nx [REDACTED:v]%41 ");
        ASSERT_OK(cb_scan_stream_finish(s));
        cb_scan_stream_free(s);
        free(got.p);
        size_t hits = 0;
        char *r = cb_matcher_redact_string(m, "a secret-value b secret%2Dvalue", &hits);
        ASSERT_STREQ(r, "a [REDACTED:v] b [REDACTED:v]");
        ASSERT_EQ(hits, 2);
        free(r);
        cb_matcher_free(m);
        /* An empty name: a bare marker (the proxy's). */
        cb_matcher_builder *b = cb_matcher_builder_new(CB_MATCH_SHORT);
        ASSERT_OK(cb_matcher_builder_add(b, "", 0, "abcd", 4));
        ASSERT_OK(cb_matcher_build(b, &m));
        r = cb_matcher_redact_string(m, "x abcd y", NULL);
        ASSERT_STREQ(r, "x [REDACTED] y");
        free(r);
        cb_matcher_free(m);
}

TEST(near_misses_stay) {
        const unsigned char *v = values[0];
        size_t vl = strlen((const char *)v);
        cb_matcher *m = one(v, vl, NULL);
        char t[512], f[256];
        /* one byte changed, in each spelling; truncated; another value */
        unsigned char w[64];
        memcpy(w, v, vl);
        w[5] ^= 1;
        size_t n = 0;
        n += (size_t)snprintf(t + n, sizeof(t) - n, "%.*s|", (int)vl, (const char *)w);
        pct(f, w, vl, 0);
        n += (size_t)snprintf(t + n, sizeof(t) - n, "%s|", f);
        json(f, w, vl, 1);
        n += (size_t)snprintf(t + n, sizeof(t) - n, "%s|", f);
        hex(f, w, vl, false);
        n += (size_t)snprintf(t + n, sizeof(t) - n, "%s|", f);
        n += (size_t)snprintf(t + n, sizeof(t) - n, "%.*s|", (int)vl - 1, (const char *)v);
        n += (size_t)snprintf(t + n, sizeof(t) - n, "%%%%41 \\\\u0041 %%zz \\q \\uD83D ");
        char *r = cb_matcher_redact_string(m, t, NULL);
        ASSERT_STREQ(r, t);
        free(r);
        /* random text: nothing */
        unsigned char rnd[4096];
        randombytes_buf(rnd, sizeof(rnd));
        for (size_t i = 0; i < sizeof(rnd); i++)
                if (!rnd[i])
                        rnd[i] = 'x';
        rnd[sizeof(rnd) - 1] = 0;
        r = cb_matcher_redact_string(m, (const char *)rnd, NULL);
        ASSERT_STREQ(r, (const char *)rnd);
        free(r);
        cb_matcher_free(m);
        /* too short to match at all: refused, not silently ignored */
        cb_matcher_builder *b = cb_matcher_builder_new(CB_MATCH_SHORT);
        ASSERT_ERR(cb_matcher_builder_add(b, "s", 1, "abc", 3), -EMSGSIZE);
        ASSERT_ERR(cb_matcher_builder_add_user(b, "u", "abc", 3), -EINVAL);
        cb_matcher_builder_free(b);
}

TEST(big_stream_bounded) {
        cb_matcher *m = one(values[1], strlen((const char *)values[1]), NULL);
        sink got = { 0 };
        cb_scan_stream *s = cb_scan_stream_new(m, NULL, sink_out, &got);
        cb_scan_stream_eager(s);
        static char buf[65536];
        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = "%\\ab"[i % 4];
        size_t total = 0;
        for (int i = 0; i < 64; i++) {
                ASSERT_OK(cb_scan_stream_feed(s, buf, sizeof(buf)));
                total += got.n;
                got.n = 0;
        }
        ASSERT_OK(cb_scan_stream_finish(s));
        total += got.n;
        ASSERT_EQ(total, 64 * sizeof(buf));
        cb_scan_stream_free(s);
        free(got.p);
        cb_matcher_free(m);
}

TEST(value_that_is_a_prefix_of_another) {
        /* Fuzz-found: with "abcd" whole in hand, an eager stream must still
         * hold "abcd" + what follows while it may become the longer value. */
        cb_matcher_builder *b = cb_matcher_builder_new(CB_MATCH_SHORT);
        cb_matcher *m;
        ASSERT_OK(cb_matcher_builder_add(b, "short", 1, "abcd", 4));
        ASSERT_OK(cb_matcher_builder_add(b, "long", 1, "abcd\" x \"", 9));
        ASSERT_OK(cb_matcher_build(b, &m));
        const char *t = "k: \"abcd\" x \"abcd\" x \"abcd\"";
        sink ref = { 0 }, got = { 0 };
        reference(m, t, strlen(t), &ref);
        ASSERT_STREQ(ref.p, "k: \"[REDACTED:long][REDACTED:long][REDACTED:short]\"");
        redact(m, t, strlen(t), NULL, 1, true, &got);
        ASSERT_STREQ(got.p, ref.p);
        for (size_t c = 0; c <= strlen(t); c++) {
                size_t cut[1] = { c };
                redact(m, t, strlen(t), cut, 1, true, &got);
                ASSERT_STREQ(got.p, ref.p);
        }
        free(ref.p);
        free(got.p);
        cb_matcher_free(m);
}

TEST(eager_holds_a_pending_reference_or_escape) {
        cb_matcher *m = one((const unsigned char *)"secret-value", 12, NULL);
        sink got = { 0 };
        cb_scan_stream *s = cb_scan_stream_new(m, NULL, sink_out, &got);
        cb_scan_stream_eager(s);
        sink_out(&got, "", 0);
        ASSERT_OK(cb_scan_stream_feed(s, "a &am", 5));
        ASSERT_STREQ(got.p, "a "); /* "&am" may become "&amp;" */
        ASSERT_OK(cb_scan_stream_feed(s, "p b &#1", 7));
        ASSERT_STREQ(got.p, "a &amp b "); /* "&#1" may become a character */
        ASSERT_OK(cb_scan_stream_feed(s, "15ecret-valu&#x65", 17));
        ASSERT_STREQ(got.p, "a &amp b "); /* "&#115" is 's': the value's prefix */
        ASSERT_OK(cb_scan_stream_feed(s, " SECRET\\x2dVALUE ", 17));
        ASSERT_STREQ(got.p, "a &amp b [REDACTED:v] [REDACTED:v] ");
        ASSERT_OK(cb_scan_stream_feed(s, "x \\16", 5)); /* an octal escape not yet complete */
        ASSERT_STREQ(got.p, "a &amp b [REDACTED:v] [REDACTED:v] x ");
        ASSERT_OK(cb_scan_stream_feed(s, "3", 1)); /* \163 is 's' */
        ASSERT_STREQ(got.p, "a &amp b [REDACTED:v] [REDACTED:v] x ");
        ASSERT_OK(cb_scan_stream_feed(s, "ecret-value", 11));
        ASSERT_OK(cb_scan_stream_finish(s));
        ASSERT_STREQ(got.p, "a &amp b [REDACTED:v] [REDACTED:v] x [REDACTED:v]");
        cb_scan_stream_free(s);
        free(got.p);
        /* A reference at the very end, without ';': decoded at finish. */
        char *r = cb_matcher_redact_string(m, "secret-valu&#101", NULL);
        ASSERT_STREQ(r, "[REDACTED:v]");
        free(r);
        cb_matcher_free(m);
}

TEST(near_misses_of_the_new_spellings_stay) {
        cb_matcher *m = one((const unsigned char *)"AbcdEfgh-123", 12, NULL);
        /* Not references or escapes (out of range, no digits, a 13-byte
         * reference, one hex digit, a non-octal digit, a lone '&'), and
         * forms whose case must match: base64 with its case changed. */
        const char *t = "&#x110000; &#0; &#; &#xZ; &#00000000065; \\x4 \\8 \\400 \\u{} \\u{110000} \\U0000041 \\U00110000 & &ampx "
                        "QWJJZEVMZ2GTMTIZ Abcd-Efgh-123 AbcdEfgh_123 abcdefgh-12";
        char *r = cb_matcher_redact_string(m, t, NULL);
        ASSERT_STREQ(r, t);
        free(r);
        /* the same, one character apart from a hit in each new spelling */
        const char *hits[] = { "ABCDEFGH-123", "abcdefgh-123", "&#65;bcdEfgh-123", "&#65bcdEfgh-123", "&#X41;BCDEFGH&#x2d;123",
                               "\\x41bcdEfgh-123", "\\101bcdEfgh-123", "\\U00000041bcdEfgh-123", "\\u{41}bcdEfgh\\x2d123",
                               "%341626364456667682D313233", "\\x341626364456667682d313233" };
        for (size_t i = 0; i < sizeof(hits) / sizeof(hits[0]); i++) {
                size_t n = 0;
                r = cb_matcher_redact_string(m, hits[i], &n);
                if (strcmp(r, "[REDACTED:v]") != 0)
                        cbtest_fail(__FILE__, __LINE__, "%s: %s", hits[i], r);
                free(r);
        }
        cb_matcher_free(m);
}

static void redact_hinted(const cb_matcher *m, const char *t, size_t n, uint64_t hint, size_t chunk, sink *out) {
        cb_scan_stream *s = cb_scan_stream_new(m, NULL, sink_out, out);
        ASSERT_TRUE(s != NULL);
        if (hint)
                cb_scan_stream_size_hint(s, hint);
        out->n = 0;
        sink_out(out, "", 0);
        for (size_t at = 0; at < n; at += chunk)
                ASSERT_OK(cb_scan_stream_feed(s, t + at, n - at < chunk ? n - at : chunk));
        ASSERT_OK(cb_scan_stream_finish(s));
        cb_scan_stream_free(s);
}

/* A size hint (a scan's Content-Length) shrinks the windows; a hint that
 * is wrong (the input longer) only moves them: the output is the same. */
TEST(size_hint_changes_nothing_but_memory) {
        const unsigned char *v = values[1];
        size_t vl = strlen((const char *)v);
        cb_matcher *m = one(v, vl, NULL);
        size_t n = 300 * 1024;
        char *t = malloc(n + 1), f[512];
        sink ref = { 0 }, got = { 0 };
        ASSERT_TRUE(t != NULL);
        for (size_t i = 0; i < n; i++)
                t[i] = "a%\\&b "[(i * 7) % 6];
        /* the value raw, percent-escaped and base64, at positions that
         * straddle the small windows' moves */
        for (size_t at = 1000; at + 200 < n; at += 9973) {
                size_t fl = (at / 9973) % 3 == 0 ? pct(f, v, vl, 0) : (at / 9973) % 3 == 1 ? b64(f, v, vl, 0, 1) : vl;
                memcpy(t + at, (at / 9973) % 3 == 2 ? (const char *)v : f, fl);
        }
        t[n] = 0;
        redact_hinted(m, t, n, 0, 65536, &ref);
        size_t planted = 0, marks = 0;
        for (size_t at = 1000; at + 200 < n; at += 9973)
                planted++;
        for (const char *q = ref.p; (q = strstr(q, "[REDACTED:v]")) != NULL; q++)
                marks++;
        ASSERT_EQ(marks, planted);
        const uint64_t hints[] = { 1, 100, 4096, 16384, n / 3, n, 10 * n };
        for (size_t h = 0; h < sizeof(hints) / sizeof(hints[0]); h++)
                for (size_t chunk = 1000; chunk <= 70000; chunk *= 8) {
                        redact_hinted(m, t, n, hints[h], chunk, &got);
                        if (got.n != ref.n || memcmp(got.p, ref.p, ref.n) != 0)
                                cbtest_fail(__FILE__, __LINE__, "hint %ju, chunks of %zu: output differs",
                                            (uintmax_t)hints[h], chunk);
                }
        free(ref.p);
        free(got.p);
        free(t);
        cb_matcher_free(m);
}

/* cb_matcher_min_len, and the one-shot's short cut on it: a string one
 * byte shorter than the shortest pattern is copied as it is, the shortest
 * pattern itself (exactly min_len bytes) is still redacted. */
TEST(min_len_short_cut) {
        ASSERT_TRUE(sodium_init() >= 0);
        for (size_t vi = 0; vi < sizeof(values) / sizeof(values[0]); vi++) {
                const unsigned char *v = values[vi];
                cb_matcher *m = one(v, strlen((const char *)v), "alice");
                size_t minl = cb_matcher_min_len(m), shortest = SIZE_MAX, si = 0;
                for (size_t i = 0; i < cb_matcher_n_patterns(m); i++) {
                        const unsigned char *pb;
                        size_t pl;
                        enum cb_scan_kind k;
                        const char *nm;
                        cb_matcher_pattern(m, i, &pb, &pl, &k, &nm);
                        if (pl < shortest)
                                shortest = pl, si = i;
                }
                ASSERT_EQ(minl, shortest);
                const unsigned char *pb;
                size_t pl;
                enum cb_scan_kind k;
                const char *nm;
                cb_matcher_pattern(m, si, &pb, &pl, &k, &nm);
                if (memchr(pb, '\0', pl)) {
                        cb_matcher_free(m);
                        continue;                 /* not a C string */
                }
                char *s = strndup((const char *)pb, pl);
                size_t hits = 0;
                char *r = cb_matcher_redact_string(m, s, &hits);
                ASSERT_TRUE(r != NULL);
                ASSERT_TRUE(hits >= 1);
                ASSERT_TRUE(strstr(r, "[REDACTED") != NULL);
                free(r);
                s[pl - 1] = '\0';
                hits = 7;
                r = cb_matcher_redact_string(m, s, &hits);
                ASSERT_STREQ(r, s);
                ASSERT_EQ(hits, 0);
                free(r);
                free(s);
                cb_matcher_free(m);
        }
        /* With tokens: no longer than a token. */
        cb_matcher_builder *b = cb_matcher_builder_new(CB_MATCH_SHORT | CB_MATCH_TOKENS);
        cb_matcher *m;
        ASSERT_OK(cb_matcher_builder_add(b, "v", 1, values[0], strlen((const char *)values[0])));
        ASSERT_OK(cb_matcher_build(b, &m));
        ASSERT_TRUE(cb_matcher_min_len(m) <= CB_TOKEN_LEN);
        cb_matcher_free(m);
}
