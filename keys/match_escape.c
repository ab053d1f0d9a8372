/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The escapes the decoding views read (match_view.c, match_stream.c):
 * "%XX" in either hex case; backslash escapes (JSON's, with \uXXXX and surrogate pairs to
 * UTF-8, and the C/Python/JS ones: \' \v \a \xHH \NNN \u{X..} \UXXXXXXXX); HTML/XML
 * character references (&#DDD; &#xHH; and five named ones, ';' optional
 * as HTML parsers allow).  Pure functions on the bytes of one escape.
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

/* A code point a reference or \u{..} may name: not NUL (HTML reads it as
 * U+FFFD), not a surrogate, in Unicode's range. */
static bool scalar(unsigned long cp) {
        return cp >= 1 && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
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

static int percent(const unsigned char *pb, unsigned pn, unsigned char o[4], size_t *on) {
        unsigned hi, lo;

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

/* "\u{X}" .. "\u{XXXXXX}" (ES2015): pb[0..3) is "\u{". */
static int brace(const unsigned char *pb, unsigned pn, unsigned char o[4], size_t *on) {
        unsigned long cp = 0;
        unsigned d;

        for (unsigned i = 3; i < pn; i++) {
                if (pb[i] == '}') {
                        if (i == 3 || !scalar(cp))
                                return -1;
                        *on = utf8_put(cp, o);
                        return (int)i + 1;
                }
                if (i == 9 || !xdigit(pb[i], &d))
                        return -1; /* a 7th digit, or not a digit */
                cp = cp << 4 | d;
        }
        return 0;
}

static int backslash(const unsigned char *pb, unsigned pn, unsigned char o[4], size_t *on) {
        unsigned hi, lo;

        if (pn < 2)
                return 0;
        static const char from[] = "\"\\/bfnrt'va", to[] = "\"\\/\b\f\n\r\t'\v\a";
        const char *k = memchr(from, pb[1], sizeof(from) - 1);
        if (k) {
                o[0] = (unsigned char)to[k - from];
                *on = 1;
                return 2;
        }
        if (pb[1] == 'x') { /* exactly two digits (Python, JS; C's greedy \x is rare in output) */
                if ((pn >= 3 && !xdigit(pb[2], &hi)) || (pn >= 4 && !xdigit(pb[3], &lo)))
                        return -1;
                if (pn < 4)
                        return 0;
                o[0] = (unsigned char)(hi << 4 | lo);
                *on = 1;
                return 4;
        }
        if (pb[1] >= '0' && pb[1] <= '3') { /* exactly three octal digits: \000 .. \377 */
                for (unsigned i = 2; i < pn && i < 4; i++)
                        if (pb[i] < '0' || pb[i] > '7')
                                return -1;
                if (pn < 4)
                        return 0;
                o[0] = (unsigned char)((pb[1] - '0') << 6 | (pb[2] - '0') << 3 | (pb[3] - '0'));
                *on = 1;
                return 4;
        }
        if (pb[1] == 'U') { /* Python's \UXXXXXXXX: a code point */
                unsigned long cp = 0;
                for (unsigned i = 2; i < pn && i < 10; i++) {
                        if (!xdigit(pb[i], &hi))
                                return -1;
                        cp = cp << 4 | hi;
                }
                if (pn < 10)
                        return 0;
                if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return -1;
                *on = utf8_put(cp, o);
                return 10;
        }
        if (pb[1] != 'u')
                return -1;
        if (pn >= 3 && pb[2] == '{')
                return brace(pb, pn, o, on);
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

/* "&#" digits or "&#x"/"&#X" hex digits, then ';' or not (HTML reads
 * "&#65" too): digits are read greedily while the reference stays within
 * PEND_ESC bytes. */
static int numeric(const unsigned char *pb, unsigned pn, bool final, unsigned char o[4], size_t *on) {
        bool hex = pn >= 3 && (pb[2] == 'x' || pb[2] == 'X');
        unsigned ds = hex ? 3 : 2, i = ds, d;
        unsigned long cp = 0;

        if (pn < 3 && !final)
                return 0;
        for (; i < pn; i++) {
                if (hex ? !xdigit(pb[i], &d) : pb[i] < '0' || pb[i] > '9')
                        break;
                if (!hex)
                        d = pb[i] - '0';
                cp = cp * (hex ? 16 : 10) + d;
                if (cp > 0x10ffff)
                        return -1; /* more digits only make it larger */
        }
        if (i < pn || pn == PEND_ESC || final) {
                /* Decided: a byte that ends the digits, no room for one
                 * more, or no more input. */
                if (i == ds || !scalar(cp))
                        return -1;
                *on = utf8_put(cp, o);
                return i < pn && pb[i] == ';' ? (int)i + 1 : (int)i;
        }
        return 0;
}

static int html(const unsigned char *pb, unsigned pn, bool final, unsigned char o[4], size_t *on) {
        /* The five XML ones and HTML's upper-case legacy spellings; none
         * is a prefix of another. */
        static const struct {
                const char *name;
                char c;
        } names[] = { { "amp", '&' }, { "lt", '<' },  { "gt", '>' },  { "quot", '"' }, { "apos", '\'' },
                      { "AMP", '&' }, { "LT", '<' },  { "GT", '>' },  { "QUOT", '"' } };
        bool open = false;

        if (pn < 2)
                return final ? -1 : 0;
        if (pb[1] == '#')
                return numeric(pb, pn, final, o, on);
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
                unsigned ln = (unsigned)strlen(names[k].name), m = pn - 1 < ln ? pn - 1 : ln;
                if (memcmp(pb + 1, names[k].name, m) != 0)
                        continue;
                if (pn - 1 < ln) {
                        open = true; /* still a prefix of this name */
                        continue;
                }
                if (pn - 1 == ln && !final) {
                        open = true; /* a ';' may follow */
                        continue;
                }
                o[0] = (unsigned char)names[k].c;
                *on = 1;
                return pn - 1 > ln && pb[1 + ln] == ';' ? (int)ln + 2 : (int)ln + 1;
        }
        return open && !final ? 0 : -1;
}

int cb_match_escape(int kind, const unsigned char *pb, unsigned pn, bool final, unsigned char o[4], size_t *on) {
        switch (kind) {
        case CB_ESC_PERCENT: return percent(pb, pn, o, on);
        case CB_ESC_BACKSLASH: return backslash(pb, pn, o, on);
        case CB_ESC_HTML: return html(pb, pn, final, o, on);
        }
        return -1;
}
