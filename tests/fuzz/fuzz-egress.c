/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proxy's request-side parsers (broker/proxy/egress.c) on arbitrary bytes
 * (the response redactor is keys/match*.c: fuzz-match).  The first byte
 * picks what to exercise:
 *   0  cb_dest_parse / cb_dest_parse_authority on the rest (as a string);
 *   1  cb_path_check on the rest, cross-checked: an accepted path has no
 *      "/./", "/../", "%2e", "%2f", "\" or control bytes anywhere;
 *   2  cb_inject_parse (+ cb_inject_token on the rest after a NUL).
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
        switch (data[0] % 3) {
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
        default: {
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
        }
        return 0;
}
