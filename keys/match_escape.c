/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The escapes the decoding views read (match_stream.c): "%XX" in either
 * hex case, and JSON's backslash escapes with \uXXXX and surrogate pairs
 * to UTF-8.  Pure functions on the bytes of one escape.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "match_internal.h"

static bool xdigit(unsigned char c, unsigned *ret) {
        if (c >= '0' && c <= '9')
                *ret = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
                *ret = (unsigned)((c | 0x20) - 'a' + 10);
        else
                return false;
        return true;
}

static size_t utf8_put(unsigned long cp, unsigned char o[4]) {
        if (cp < 0x80) {
                o[0] = (unsigned char)cp;
                return 1;
        }
        if (cp < 0x800) {
                o[0] = (unsigned char)(0xc0 | cp >> 6);
                o[1] = (unsigned char)(0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                o[0] = (unsigned char)(0xe0 | cp >> 12);
                o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
                o[2] = (unsigned char)(0x80 | (cp & 0x3f));
                return 3;
        }
        o[0] = (unsigned char)(0xf0 | cp >> 18);
        o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[3] = (unsigned char)(0x80 | (cp & 0x3f));
        return 4;
}

/* The code unit of "\uXXXX" at p, or -1. */
static long json_unit(const unsigned char *p) {
        unsigned d;
        long u = 0;

        if (p[0] != '\\' || p[1] != 'u')
                return -1;
        for (int i = 2; i < 6; i++) {
                if (!xdigit(p[i], &d))
                        return -1;
                u = u << 4 | (long)d;
        }
        return u;
}

int cb_match_escape(int kind, const unsigned char *pb, unsigned pn, unsigned char o[4], size_t *on) {
        unsigned hi, lo;

        if (kind == CB_ESC_PERCENT) {
                if (pn >= 2 && !xdigit(pb[1], &hi))
                        return -1;
                if (pn < 3)
                        return 0;
                if (!xdigit(pb[2], &lo))
                        return -1;
                o[0] = (unsigned char)(hi << 4 | lo);
                *on = 1;
                return 3;
        }
        if (pn < 2)
                return 0;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *k = memchr(from, pb[1], sizeof(from) - 1);
        if (k) {
                o[0] = (unsigned char)to[k - from];
                *on = 1;
                return 2;
        }
        if (pb[1] != 'u')
                return -1;
        for (unsigned i = 2; i < pn && i < 6; i++)
                if (!xdigit(pb[i], &hi))
                        return -1;
        if (pn < 6)
                return 0;
        long u = json_unit(pb);
        if (u >= 0xdc00 && u <= 0xdfff)
                return -1; /* a lone low surrogate */
        if (u < 0xd800 || u > 0xdbff) {
                *on = utf8_put((unsigned long)u, o);
                return 6;
        }
        /* A high surrogate: its low half must follow. */
        if ((pn >= 7 && pb[6] != '\\') || (pn >= 8 && pb[7] != 'u'))
                return -1;
        for (unsigned i = 8; i < pn; i++)
                if (!xdigit(pb[i], &hi))
                        return -1;
        if (pn < 12)
                return 0;
        long l = json_unit(pb + 6);
        if (l < 0xdc00 || l > 0xdfff)
                return -1;
        *on = utf8_put(0x10000 + (((unsigned long)u - 0xd800) << 10) + ((unsigned long)l - 0xdc00), o);
        return 12;
}
