/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 heads and chunked bodies, strictly (http1.h has the contract).
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "http1.h"

static int bad(cb_h1_head *o, unsigned status, const char *why) {
        o->status = status;
        o->why = why;
        return -EINVAL;
}

static bool tchar(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               (c && strchr("!#$%&'*+-.^_`|~", c));
}

size_t cb_h1_head_end(const char *buf, size_t n) {
        for (size_t i = 3; i < n; i++)
                if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
                        return i + 1;
        return 0;
}

/* The length of the line at p (CRLF excluded) in p[0..n), or -1 when a
 * bare CR or LF comes first or there is no CRLF. */
static long line_len(const char *p, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '\n')
                        return -1;
                if (p[i] == '\r')
                        return i + 1 < n && p[i + 1] == '\n' ? (long)i : -1;
        }
        return -1;
}

/* The header fields from buf[off..n) up to the empty line ending at n. */
static int fields(const char *buf, size_t off, size_t n, cb_h1_head *o) {
        o->nh = 0;
        for (;;) {
                long l = line_len(buf + off, n - off);
                if (l < 0)
                        return bad(o, 400, "a header line does not end in CRLF (a bare CR or LF)");
                const char *p = buf + off;
                off += (size_t)l + 2;
                if (l == 0)
                        return off == n ? 0 : bad(o, 400, "bytes after the end of the head");
                if (p[0] == ' ' || p[0] == '\t')
                        return bad(o, 400, "a header is continued on the next line (obs-fold, RFC 9112 §5.2)");
                if (o->nh == CB_PREQ_HEADERS_MAX)
                        return bad(o, 431, "too many header fields");
                const char *colon = memchr(p, ':', (size_t)l);
                if (!colon || colon == p)
                        return bad(o, 400, "a header line without a name and a colon");
                for (const char *q = p; q < colon; q++)
                        if (!tchar((unsigned char)*q))
                                return bad(o, 400, "a header name holds a character outside RFC 9110's token "
                                                   "(whitespace before the colon included)");
                const char *v = colon + 1, *e = p + l;
                while (v < e && (*v == ' ' || *v == '\t'))
                        v++;
                while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                        e--;
                for (const char *q = v; q < e; q++) {
                        unsigned char c = (unsigned char)*q;
                        if ((c < 0x20 && c != '\t') || c == 0x7f)
                                return bad(o, 400, "a header value holds a control byte");
                }
                o->h[o->nh++] = (cb_preq_header){ .name = p, .name_len = (size_t)(colon - p), .value = v,
                                                  .value_len = (size_t)(e - v) };
        }
}

static int version(const char *p, cb_h1_head *o) {
        if (memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
                return -1;
        o->minor = (unsigned)(p[7] - '0');
        return 0;
}

int cb_h1_request(const char *buf, size_t n, cb_h1_head *o) {
        memset(o, 0, sizeof(*o));
        if (n > CB_H1_HEAD_MAX)
                return bad(o, 431, "the request head is over 32 KiB");
        long l = line_len(buf, n);
        if (l < 0)
                return bad(o, 400, "the request line does not end in CRLF (a bare CR or LF)");
        const char *sp1 = memchr(buf, ' ', (size_t)l);
        if (!sp1 || sp1 == buf || (size_t)(sp1 - buf) >= sizeof(o->method))
                return bad(o, 400, "bad method");
        for (const char *q = buf; q < sp1; q++)
                if (!tchar((unsigned char)*q))
                        return bad(o, 400, "bad method");
        const char *t = sp1 + 1, *end = buf + l;
        const char *sp2 = memchr(t, ' ', (size_t)(end - t));
        if (!sp2 || sp2 == t || end - sp2 != 9 || version(sp2 + 1, o) < 0)
                return bad(o, 400, "the request line is not METHOD SP target SP HTTP/1.x");
        for (const char *q = t; q < sp2; q++)
                if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
                        return bad(o, 400, "the request target holds a space, a control byte or a non-ASCII byte");
        memcpy(o->method, buf, (size_t)(sp1 - buf));
        o->method[sp1 - buf] = '\0';
        o->target = t;
        o->target_len = (size_t)(sp2 - t);
        o->line_len = (size_t)l + 2;
        return fields(buf, o->line_len, n, o);
}

static bool ci_eq(const char *s, size_t n, const char *lit) {
        return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

int cb_h1_response(const char *buf, size_t n, cb_h1_head *o) {
        size_t ncl = 0, nte = 0;

        memset(o, 0, sizeof(*o));
        if (n > CB_H1_HEAD_MAX)
                return bad(o, 502, "the response head is over 32 KiB");
        if (cb_h1_head_end(buf, n) != n)
                return bad(o, 502, "not one complete response head");
        long l = line_len(buf, n);
        if (l < 12 || version(buf, o) < 0 || buf[8] != ' ' || (l > 12 && buf[12] != ' '))
                return bad(o, 502, "the status line is not HTTP/1.x DDD");
        for (int i = 9; i < 12; i++)
                if (buf[i] < '0' || buf[i] > '9')
                        return bad(o, 502, "the status line is not HTTP/1.x DDD");
        o->status = (unsigned)(buf[9] - '0') * 100 + (unsigned)(buf[10] - '0') * 10 + (unsigned)(buf[11] - '0');
        if (o->status < 100)
                return bad(o, 502, "a status under 100");
        for (long i = 12; i < l; i++)
                if (((unsigned char)buf[i] < 0x20 && buf[i] != '\t') || buf[i] == 0x7f)
                        return bad(o, 502, "the status line holds a control byte");
        o->line_len = (size_t)l + 2;
        unsigned st = o->status;
        if (fields(buf, o->line_len, n, o) < 0) {
                o->status = 502;
                return -EINVAL;
        }
        o->status = st;
        for (size_t i = 0; i < o->nh; i++) {
                const cb_preq_header *x = &o->h[i];
                if (ci_eq(x->name, x->name_len, "content-length")) {
                        if (++ncl > 1)
                                return bad(o, 502, "Content-Length given more than once");
                        if (x->value_len == 0 || x->value_len > 18)
                                return bad(o, 502, "Content-Length is not a plain decimal number");
                        for (size_t k = 0; k < x->value_len; k++)
                                if (x->value[k] < '0' || x->value[k] > '9')
                                        return bad(o, 502, "Content-Length is not a plain decimal number");
                } else if (ci_eq(x->name, x->name_len, "transfer-encoding")) {
                        nte++;
                }
        }
        if (ncl && nte)
                return bad(o, 502, "both Content-Length and Transfer-Encoding (RFC 9112 §6.1)");
        o->why = NULL;
        return 0;
}

/* ---- chunked bodies ------------------------------------------------------ */

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TR_START, CH_TR, CH_TR_LF, CH_END_LF };

static int cbad(cb_h1_chunked *c, const char *why) {
        c->why = why;
        c->state = -1;
        return -EINVAL;
}

static int hexv(unsigned char x) {
        if (x >= '0' && x <= '9')
                return x - '0';
        if (x >= 'a' && x <= 'f')
                return x - 'a' + 10;
        if (x >= 'A' && x <= 'F')
                return x - 'A' + 10;
        return -1;
}

int cb_h1_chunked_feed(cb_h1_chunked *c, const unsigned char *in, size_t n, unsigned char *out, size_t *out_len,
                       size_t *consumed) {
        size_t i = 0, o = 0;

        *out_len = 0;
        *consumed = 0;
        if (c->state < 0)
                return -EINVAL;
        while (i < n && !c->done) {
                unsigned char x = in[i];
                switch (c->state) {
                case CH_SIZE: {
                        int v = hexv(x);
                        if (v >= 0) {
                                if (++c->digits > 15)
                                        return cbad(c, "a chunk size over 15 hex digits");
                                c->left = c->left * 16 + (uint64_t)v;
                        } else if (c->digits == 0) {
                                return cbad(c, "a chunk line without a hex size");
                        } else if (x == ';') {
                                c->state = CH_EXT;
                                c->ext = 0;
                        } else if (x == '\r') {
                                c->state = CH_SIZE_LF;
                        } else {
                                return cbad(c, "a chunk size followed by something other than ';' or CRLF");
                        }
                        i++;
                        break;
                }
                case CH_EXT:
                        if (x == '\r')
                                c->state = CH_SIZE_LF;
                        else if ((x < 0x20 && x != '\t') || x >= 0x7f)
                                return cbad(c, "a control or non-ASCII byte in a chunk extension");
                        else if (++c->ext > CB_H1_CHUNK_EXT_MAX)
                                return cbad(c, "a chunk extension over 1 KiB");
                        i++;
                        break;
                case CH_SIZE_LF:
                        if (x != '\n')
                                return cbad(c, "a chunk line not ending in CRLF");
                        i++;
                        c->digits = 0;
                        c->state = c->left ? CH_DATA : CH_TR_START;
                        break;
                case CH_DATA: {
                        size_t k = n - i;
                        if (k > c->left)
                                k = (size_t)c->left;
                        memmove(out + o, in + i, k); /* out may be in: decoding in place (forward.c) */
                        o += k;
                        i += k;
                        c->left -= k;
                        if (!c->left)
                                c->state = CH_DATA_CR;
                        break;
                }
                case CH_DATA_CR:
                        if (x != '\r')
                                return cbad(c, "chunk data longer than its size");
                        c->state = CH_DATA_LF;
                        i++;
                        break;
                case CH_DATA_LF:
                        if (x != '\n')
                                return cbad(c, "chunk data not followed by CRLF");
                        c->state = CH_SIZE;
                        i++;
                        break;
                case CH_TR_START:
                        if (x == '\r') {
                                c->state = CH_END_LF;
                                i++;
                                break;
                        }
                        c->state = CH_TR;
                        /* fall through */
                case CH_TR:
                        if (x == '\r')
                                c->state = CH_TR_LF;
                        else if (x == '\n' || (x < 0x20 && x != '\t') || x == 0x7f)
                                return cbad(c, "a control byte in a trailer field");
                        if (++c->trailer > CB_H1_TRAILER_MAX)
                                return cbad(c, "trailer fields over 8 KiB");
                        i++;
                        break;
                case CH_TR_LF:
                        if (x != '\n')
                                return cbad(c, "a trailer field not ending in CRLF");
                        c->state = CH_TR_START;
                        i++;
                        break;
                case CH_END_LF:
                        if (x != '\n')
                                return cbad(c, "the chunked body does not end in CRLF");
                        c->done = true;
                        i++;
                        break;
                default:
                        return -EINVAL;
                }
        }
        *out_len = o;
        *consumed = i;
        return 0;
}
