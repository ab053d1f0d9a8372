/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bodies and responses, as pure functions (proxy_request.h): the streaming
 * scan of a form body for a method override, and the framing rules for an
 * upstream response's head.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy_request.h"

/* ---- method overrides in a body -------------------------------------------
 * Forms: every parameter name, normalised as cb_preq_param_is does, checked
 * when it ends ('=', '&', ';' or the end of the body).  Multipart (any
 * multipart/ type: Rack reads them all): each part's header block (at most
 * CB_OVSCAN_PART_HEAD_MAX bytes) is searched for a name= or name*=
 * parameter naming an override.  Parsers differ in leniency, so the scan is
 * lenient: a delimiter line may end in LF alone, and "name=" counts
 * wherever it appears in a part's headers. */

enum { MP_SEEK, MP_LINE, MP_HEAD };

int cb_ovscan_init(cb_ovscan *s, cb_preq_body kind, const char *boundary) {
        memset(s, 0, sizeof(*s));
        s->kind = kind;
        if (kind == CB_BODY_MULTIPART) {
                size_t bl = strlen(boundary);
                if (bl == 0 || bl > CB_PREQ_BOUNDARY_MAX)
                        return -EINVAL;
                memcpy(s->delim, "\n--", 3);
                memcpy(s->delim + 3, boundary, bl);
                s->dlen = 3 + bl;
                s->dmatch = 1;                    /* the body's start counts as a line start */
                s->head = malloc(CB_OVSCAN_PART_HEAD_MAX);
                if (!s->head)
                        return -ENOMEM;
        }
        return 0;
}

void cb_ovscan_clear(cb_ovscan *s) {
        free(s->head);
        memset(s, 0, sizeof(*s));
}

/* The current form name ended: is it an override? */
static void form_name_end(cb_ovscan *s) {
        cb_pname_flush(&s->name);
        if (!s->hit && cb_pname_override(&s->name)) {
                s->hit = true;
                s->why = "a form field overriding the method (_method or kin)";
        }
        memset(&s->name, 0, sizeof(s->name));
}

static void form_byte(cb_ovscan *s, unsigned char c) {
        if (s->in_value) {
                if (c == '&' || c == ';')
                        s->in_value = false;
                return;
        }
        if (c == '=') {
                form_name_end(s);
                s->in_value = true;
        } else if (c == '&' || c == ';') {
                form_name_end(s);
        } else {
                cb_pname_byte(&s->name, c);
        }
}

/* A part's header block is complete: look for name= / name*=. */
static void part_head_end(cb_ovscan *s) {
        char *h = s->head;
        size_t n = s->hlen;

        for (size_t i = 0; i + 4 < n && !s->hit; i++) {
                if (strncasecmp(h + i, "name", 4) != 0)
                        continue;
                size_t j = i + 4;
                bool ext = j < n && h[j] == '*';
                if (ext)
                        j++;
                while (j < n && (h[j] == ' ' || h[j] == '\t'))
                        j++;
                if (j >= n || h[j] != '=')
                        continue;
                j++;
                while (j < n && (h[j] == ' ' || h[j] == '\t'))
                        j++;
                size_t vs, ve;
                if (j < n && (h[j] == '"' || h[j] == '\'')) {
                        char q = h[j];
                        vs = ++j;
                        while (j < n && h[j] != q && h[j] != '\r' && h[j] != '\n')
                                j++;
                        ve = j;
                } else {
                        vs = j;
                        while (j < n && !strchr(";, \t\r\n", h[j]))
                                j++;
                        ve = j;
                }
                if (ext) {                                /* RFC 5987: charset'lang'value */
                        const char *a = memchr(h + vs, '\'', ve - vs);
                        const char *b = a ? memchr(a + 1, '\'', (size_t)(h + ve - a - 1)) : NULL;
                        if (b)
                                vs = (size_t)(b + 1 - h);
                }
                if (cb_preq_param_is(h + vs, ve - vs, NULL)) {
                        s->hit = true;
                        s->why = "a multipart part named like _method (a method override)";
                }
        }
        s->hlen = 0;
}

static void multipart_byte(cb_ovscan *s, unsigned char c) {
        switch (s->mstate) {
        case MP_SEEK:
                if ((char)c == s->delim[s->dmatch]) {
                        if (++s->dmatch == s->dlen) {
                                s->mstate = MP_LINE;
                                s->dmatch = 0;
                        }
                } else {
                        s->dmatch = c == '\n' ? 1 : 0;    /* '\n' occurs only at delim[0] */
                }
                break;
        case MP_LINE:                                     /* the rest of the delimiter line */
                if (c == '\n') {
                        s->mstate = MP_HEAD;
                        s->hlen = 0;
                }
                break;
        case MP_HEAD:
                if (s->hlen == CB_OVSCAN_PART_HEAD_MAX) {
                        s->hit = true;
                        s->why = "a multipart part's headers over 8 KiB";
                        return;
                }
                s->head[s->hlen++] = (char)c;
                if (c == '\n') {
                        /* An empty line ends the block ("\n" or "\r\n" alone). */
                        size_t n = s->hlen;
                        bool empty = n == 1 || (n == 2 && s->head[0] == '\r') || (n >= 2 && s->head[n - 2] == '\n') ||
                                     (n >= 3 && s->head[n - 2] == '\r' && s->head[n - 3] == '\n');
                        if (empty) {
                                part_head_end(s);
                                s->mstate = MP_SEEK;
                                s->dmatch = 1;            /* the part's body starts a line */
                        }
                }
                break;
        }
}

/* JSON: every string followed by ':' is a key; its decoded text (escapes
 * and \uXXXX undone) normalised as a parameter name. */
enum { J_OUT, J_STR, J_ESC, J_HEX, J_AFTER };

static void json_byte(cb_ovscan *s, unsigned char c) {
        switch (s->jstate) {
        case J_AFTER:
                if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
                        return;
                cb_pname_flush(&s->name);
                if (c == ':' && cb_pname_override(&s->name)) {
                        s->hit = true;
                        s->why = "a JSON key overriding the method (_method or kin)";
                        return;
                }
                s->jstate = J_OUT;
                __attribute__((fallthrough)); /* this byte is outside any string */
        case J_OUT:
                if (c == '"') {
                        memset(&s->name, 0, sizeof(s->name));
                        s->jstate = J_STR;
                }
                return;
        case J_STR:
                if (c == '\\')
                        s->jstate = J_ESC;
                else if (c == '"')
                        s->jstate = J_AFTER;
                else
                        cb_pname_byte(&s->name, c == '%' ? 0x80 : c); /* JSON keys are not percent-decoded */
                return;
        case J_ESC:
                if (c == 'u') {
                        s->jstate = J_HEX;
                        s->jhex = s->jn = 0;
                        return;
                }
                cb_pname_byte(&s->name, c == 'n' ? '\n' : c == 't' ? '\t' : c == 'b' || c == 'f' || c == 'r' ? 0x80 : c);
                s->jstate = J_STR;
                return;
        case J_HEX: {
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
                if (d < 0) {                              /* not JSON: whatever a parser makes of it, not a key we read */
                        s->jstate = J_STR;
                        return;
                }
                s->jhex = s->jhex * 16 + (unsigned)d;
                if (++s->jn == 4) {
                        cb_pname_byte(&s->name, s->jhex < 0x80 && s->jhex != '%' ? (unsigned char)s->jhex : 0x80);
                        s->jstate = J_STR;
                }
                return;
        }
        }
}

bool cb_ovscan_feed(cb_ovscan *s, const unsigned char *p, size_t n) {
        if (s->hit)
                return true;
        if (s->kind == CB_BODY_FORM) {
                for (size_t i = 0; i < n && !s->hit; i++)
                        form_byte(s, p[i]);
        } else if (s->kind == CB_BODY_MULTIPART) {
                for (size_t i = 0; i < n && !s->hit; i++)
                        multipart_byte(s, p[i]);
        } else if (s->kind == CB_BODY_JSON) {
                for (size_t i = 0; i < n && !s->hit; i++)
                        json_byte(s, p[i]);
        }
        return s->hit;
}

bool cb_ovscan_end(cb_ovscan *s) {
        if (!s->hit && s->kind == CB_BODY_FORM && !s->in_value)
                form_name_end(s);
        return s->hit;
}

/* ---- response framing -------------------------------------------------------- */

void cb_rframe_reset(cb_rframe *f) {
        memset(f, 0, sizeof(*f));
}

static int rrefuse(cb_rframe *f, const char *why) {
        if (!f->why)
                f->why = why;
        return -EPROTO;
}

int cb_rframe_line(cb_rframe *f, const char *line, size_t len) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                len--;
        if (len == 0)
                return 0;
        if (line[0] == ' ' || line[0] == '\t')
                return rrefuse(f, "a header continued on the next line (obs-fold)");
        const char *colon = memchr(line, ':', len);
        if (!colon)
                return 0;                         /* not a field: libcurl ignores it too */
        size_t nl = (size_t)(colon - line);
        for (size_t i = 0; i < nl; i++)
                if (line[i] == ' ' || line[i] == '\t')
                        return rrefuse(f, "whitespace in a header name");
        const char *v = colon + 1, *end = line + len;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
        size_t vl = (size_t)(end - v);
        if (nl == 14 && strncasecmp(line, "content-length", 14) == 0) {
                if (++f->ncl > 1)
                        return rrefuse(f, "Content-Length given more than once");
                if (vl == 0 || vl > 18)
                        return rrefuse(f, "a Content-Length that is not a plain number");
                for (size_t i = 0; i < vl; i++)
                        if (v[i] < '0' || v[i] > '9')
                                return rrefuse(f, "a Content-Length that is not a plain number");
        } else if (nl == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
                if (++f->nte > 1)
                        return rrefuse(f, "Transfer-Encoding given more than once");
                if (!(vl == 7 && strncasecmp(v, "chunked", 7) == 0))
                        return rrefuse(f, "a Transfer-Encoding other than chunked");
        } else if (nl == 16 && strncasecmp(line, "content-encoding", 16) == 0) {
                /* A list (RFC 9110 §8.4): every coding must be identity. */
                for (const char *p = v; p < end;) {
                        const char *c = memchr(p, ',', (size_t)(end - p));
                        const char *e = c ? c : end, *s = p;
                        while (s < e && (*s == ' ' || *s == '\t'))
                                s++;
                        const char *t = e;
                        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
                                t--;
                        if (t > s && !((size_t)(t - s) == 8 && strncasecmp(s, "identity", 8) == 0)) {
                                f->coded = true;
                                return rrefuse(f, "a compressed body (Content-Encoding other than identity)");
                        }
                        p = c ? c + 1 : end;
                }
        }
        if (f->ncl && f->nte)
                return rrefuse(f, "both Content-Length and Transfer-Encoding");
        return 0;
}

int cb_rframe_end(cb_rframe *f) {
        if (f->why)
                return -EPROTO;
        if (f->ncl && f->nte)
                return rrefuse(f, "both Content-Length and Transfer-Encoding");
        return 0;
}
