/* SPDX-License-Identifier: Apache-2.0 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "text.h"

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n, uint32_t *cp) {
        size_t k;
        uint32_t c, min;

        if (p[0] < 0x80) {
                *cp = p[0];
                return 1;
        }
        if (p[0] >= 0xc2 && p[0] <= 0xdf)
                k = 2, c = p[0] & 0x1f, min = 0x80;
        else if (p[0] >= 0xe0 && p[0] <= 0xef)
                k = 3, c = p[0] & 0x0f, min = 0x800;
        else if (p[0] >= 0xf0 && p[0] <= 0xf4)
                k = 4, c = p[0] & 0x07, min = 0x10000;
        else
                return 0;
        if (k > n)
                return 0;
        for (size_t i = 1; i < k; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                c = c << 6 | (p[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
                return 0;
        *cp = c;
        return k;
}

size_t cb_text_safe(char *s, size_t n) {
        unsigned char *p = (unsigned char *)s;
        size_t bad = 0;

        for (size_t i = 0; i < n;) {
                uint32_t cp = 0;
                size_t k = utf8_len(p + i, n - i, &cp);
                bool drop = k == 0 || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) ||
                            (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);

                if (k == 0)
                        k = 1;
                if (drop) {
                        memset(p + i, '?', k);
                        bad += k;
                }
                i += k;
        }
        return bad;
}
