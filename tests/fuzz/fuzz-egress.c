/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proxy's request-side parsers and its response redactor (broker/
 * egress.c) on arbitrary bytes.  The first byte picks what to exercise:
 *   0  cb_dest_parse / cb_dest_parse_authority on the rest (as a string);
 *   1  cb_path_check on the rest, cross-checked: an accepted path has no
 *      "/./", "/../", "%2e", "%2f", "\" or control bytes anywhere;
 *   2  cb_inject_parse (+ cb_inject_token on the rest after a NUL);
 *   3  the redactor: the next byte is the value's length, then the value,
 *      then the text, fed in chunks whose sizes come from the text itself;
 *      the streamed output must equal a one-shot reference replacement.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "egress.h"

#define FUZZ_EGRESS_MAX (16 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *cstr(const uint8_t *p, size_t n) {
        char *s = malloc(n + 1);
        if (!s)
                abort();
        memcpy(s, p, n);
        s[n] = '\0';
        return s;
}

/* Replace every non-overlapping occurrence, left to right. */
static size_t reference(const uint8_t *v, size_t vl, const uint8_t *t, size_t tl, uint8_t *out) {
        size_t o = 0;
        for (size_t i = 0; i < tl;) {
                if (i + vl <= tl && memcmp(t + i, v, vl) == 0) {
                        memcpy(out + o, "[REDACTED]", 10);
                        o += 10;
                        i += vl;
                } else {
                        out[o++] = t[i++];
                }
        }
        return o;
}

static void redactor(const uint8_t *p, size_t n) {
        if (n < 1)
                return;
        size_t vl = p[0] % 40 + 1;
        p++, n--;
        if (n < vl)
                return;
        const uint8_t *v = p, *t = p + vl;
        size_t tl = n - vl;
        uint8_t *want = malloc(tl * 10 + 16), *got = malloc(tl * 10 + 16);
        cb_redactor *r = cb_redactor_new(v, vl);
        const unsigned char *o;
        size_t ol, gl = 0, at = 0;

        if (!want || !got || !r)
                abort();
        size_t wl = reference(v, vl, t, tl, want);
        while (at < tl) {
                size_t k = (size_t)t[at] % 7 + 1;
                if (k > tl - at)
                        k = tl - at;
                if (cb_redactor_feed(r, t + at, k, &o, &ol) < 0)
                        abort();
                memcpy(got + gl, o, ol);
                gl += ol;
                at += k;
        }
        cb_redactor_finish(r, &o, &ol);
        memcpy(got + gl, o, ol);
        gl += ol;
        if (gl != wl || memcmp(got, want, gl) != 0)
                abort();
        cb_redactor_free(r);
        free(want);
        free(got);
}

static void path(const uint8_t *p, size_t n) {
        char *s = cstr(p, n);
        size_t len = strlen(s);
        if (cb_path_check(s, len) == 0) {
                if (s[0] != '/' || strstr(s, "/./") || strstr(s, "/../") || strcasestr(s, "%2e") ||
                    strcasestr(s, "%2f") || strchr(s, '\\'))
                        abort();
                for (size_t i = 0; i < len; i++)
                        if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f)
                                abort();
                if ((len >= 2 && strcmp(s + len - 2, "/.") == 0) || (len >= 3 && strcmp(s + len - 3, "/..") == 0))
                        abort();
        }
        free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        cb_dest d;
        cb_inject in;

        if (size < 1 || size > FUZZ_EGRESS_MAX)
                return 0;
        if (sodium_init() < 0)
                abort();
        const uint8_t *p = data + 1;
        size_t n = size - 1;
        switch (data[0] % 4) {
        case 0: {
                char *s = cstr(p, n);
                if (cb_dest_parse(s, &d) == 0 && (d.port == 0 || d.port > 65535 || !d.host[0]))
                        abort();
                (void)cb_dest_parse_authority(s, true, &d);
                free(s);
                break;
        }
        case 1:
                path(p, n);
                break;
        case 2: {
                const uint8_t *z = memchr(p, 0, n);
                char *tmpl = cstr(p, z ? (size_t)(z - p) : n);
                if (cb_inject_parse(tmpl, &in) == 0 && z) {
                        char *v = cstr(z + 1, n - (size_t)(z + 1 - p));
                        size_t len;
                        const char *tok = cb_inject_token(&in, v, &len);
                        if (tok && (tok < v || tok + len > v + strlen(v)))
                                abort();
                        free(v);
                }
                free(tmpl);
                break;
        }
        default:
                redactor(p, n);
        }
        return 0;
}
