/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The proxy's decision on a raw request (broker/proxy/proxy_request.c,
 * proxy_body.c) on arbitrary bytes.  The first byte picks what to
 * exercise:
 *   0  a request head: "METHOD\nTARGET\nName:value\n..." (a line starting
 *      with a tab is a folded field) through cb_preq_decide, then every
 *      header through cb_preq_header_class and cb_preq_holds_token, and the
 *      query through cb_preq_query_filter; cross-checked: an accepted head
 *      has exactly the framing its fields say, its path and query hold only
 *      RFC 3986 bytes, and the filtered query keeps no override parameter;
 *   1  the body override scan: kind (form, multipart, JSON), boundary
 *      length, boundary, body; the
 *      verdict must not depend on how the body is split (whole, byte by
 *      byte, and in pieces sized by the body itself);
 *   2  response framing: header lines separated by '\n'.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_PREQ_MAX (64 * 1024)

static bool rfc3986(const char *s, size_t n, bool query) {
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];
                if (c == '%') {
                        if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2]))
                                return false;
                        i += 2;
                } else if (!(isalnum(c) || strchr("-._~!$&'()*+,;=:@/", c) || (query && c == '?')) || c == 0) {
                        return false;
                }
        }
        return true;
}

static void head(const uint8_t *p, size_t n) {
        cb_preq_header h[CB_PREQ_HEADERS_MAX + 2];
        size_t nh = 0, ncl = 0, nte = 0;
        char *buf = malloc(n + 1), *lines[CB_PREQ_HEADERS_MAX + 4];
        size_t nl = 0;

        if (!buf)
                abort();
        memcpy(buf, p, n);
        buf[n] = '\0';
        for (char *s = buf; nl < sizeof(lines) / sizeof(lines[0]);) {
                lines[nl++] = s;
                char *e = memchr(s, '\n', (size_t)(buf + n - s));
                if (!e)
                        break;
                *e = '\0';
                s = e + 1;
        }
        if (nl < 2)
                goto out;
        for (size_t i = 2; i < nl && nh < CB_PREQ_HEADERS_MAX + 1; i++) {
                char *c = strchr(lines[i], ':');
                if (!c)
                        continue;
                bool folded = lines[i][0] == '\t';
                h[nh] = (cb_preq_header){ .name = lines[i] + folded, .name_len = (size_t)(c - lines[i]) - folded,
                                          .value = c + 1, .value_len = strlen(c + 1), .folded = folded };
                if (h[nh].name_len == 14 && strncasecmp(h[nh].name, "content-length", 14) == 0)
                        ncl++;
                if (h[nh].name_len == 17 && strncasecmp(h[nh].name, "transfer-encoding", 17) == 0)
                        nte++;
                nh++;
        }
        cb_preq_head o;
        const char *t = lines[1];
        size_t tl = strlen(t);
        int r = cb_preq_decide(lines[0], t, tl, h, nh, &o);
        if ((r == 0) != (o.status == 0))
                abort();
        if (r < 0) {
                if (!o.why[0] || (o.status != 400 && o.status != 405 && o.status != 431))
                        abort();
                goto out;
        }
        /* Accepted: the framing is exactly what the fields say. */
        if ((ncl && nte) || ncl > 1 || nte > 1)
                abort();
        if (nte && o.frame != CB_FRAME_CHUNKED)
                abort();
        if (!nte && o.frame == CB_FRAME_CHUNKED)
                abort();
        if (o.frame == CB_FRAME_LENGTH && (o.length == 0 || !ncl))
                abort();
        if (!ncl && !nte && o.frame != CB_FRAME_NONE)
                abort();
        for (size_t i = 0; i < nh; i++)
                if (h[i].folded)
                        abort();
        if (o.path_off + o.path_len > tl || (o.has_query && o.query_off + o.query_len != tl))
                abort();
        if (!rfc3986(t + o.path_off, o.path_len, false) || (o.has_query && !rfc3986(t + o.query_off, o.query_len, true)))
                abort();
        for (size_t i = 0; i < nh; i++) {
                (void)cb_preq_header_class(h[i].name, h[i].name_len, "X-Api-Key", "keep-alive");
                (void)cb_preq_holds_token(h[i].value, h[i].value_len);
        }
        if (o.has_query) {
                char *q;
                if (cb_preq_query_filter(t + o.query_off, o.query_len, "api_key", true, &q) < 0)
                        abort();
                size_t ql = strlen(q);
                if (ql > o.query_len)
                        abort();
                for (size_t i = 0; i <= ql;) {
                        size_t e = i;
                        while (e < ql && q[e] != '&' && q[e] != ';')
                                e++;
                        const char *eq = memchr(q + i, '=', e - i);
                        if (e > i && cb_preq_param_is(q + i, eq ? (size_t)(eq - (q + i)) : e - i, "api_key"))
                                abort();
                        i = e + 1;
                }
                (void)cb_preq_holds_token(q, ql);
                free(q);
        }
out:
        free(buf);
}

static bool scan(cb_preq_body kind, const char *b, const uint8_t *p, size_t n, const size_t *steps, size_t nsteps) {
        cb_ovscan s;
        bool hit = false;
        size_t k = 0;

        if (cb_ovscan_init(&s, kind, b) < 0)
                abort();
        for (size_t i = 0; i < n && !hit;) {
                size_t step = nsteps ? steps[k++ % nsteps] : n;
                if (step > n - i)
                        step = n - i;
                hit = cb_ovscan_feed(&s, p + i, step);
                i += step;
        }
        hit = hit || cb_ovscan_end(&s);
        cb_ovscan_clear(&s);
        return hit;
}

static void body(const uint8_t *p, size_t n) {
        char b[CB_PREQ_BOUNDARY_MAX + 1];

        if (n < 2)
                return;
        cb_preq_body kind = p[0] % 3 == 0 ? CB_BODY_FORM : p[0] % 3 == 1 ? CB_BODY_MULTIPART : CB_BODY_JSON;
        size_t bl = 1 + p[1] % CB_PREQ_BOUNDARY_MAX;
        if (n < 2 + bl)
                return;
        memcpy(b, p + 2, bl);
        b[bl] = '\0';
        for (size_t i = 0; i < bl; i++)
                if (b[i] == '\0' || b[i] == '\n')
                        b[i] = 'x';
        p += 2 + bl, n -= 2 + bl;
        size_t one = 1, steps[8];
        for (size_t i = 0; i < 8; i++)
                steps[i] = 1 + (n > i ? p[i] % 64 : i);
        bool whole = scan(kind, b, p, n, NULL, 0);
        if (scan(kind, b, p, n, &one, 1) != whole || scan(kind, b, p, n, steps, 8) != whole)
                abort();
}

static void response(const uint8_t *p, size_t n) {
        cb_rframe f;
        int r = 0;

        cb_rframe_reset(&f);
        for (size_t i = 0; i < n && r == 0;) {
                const uint8_t *e = memchr(p + i, '\n', n - i);
                size_t l = e ? (size_t)(e - (p + i)) + 1 : n - i;
                r = cb_rframe_line(&f, (const char *)p + i, l);
                i += l;
        }
        if (r == 0)
                r = cb_rframe_end(&f);
        if (r < 0 && !f.why)
                abort();
        if (r == 0 && (f.ncl > 1 || f.nte > 1 || (f.ncl && f.nte) || f.coded))
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size < 1 || size > FUZZ_PREQ_MAX)
                return 0;
        switch (data[0] % 3) {
        case 0:
                head(data + 1, size - 1);
                break;
        case 1:
                body(data + 1, size - 1);
                break;
        default:
                response(data + 1, size - 1);
                break;
        }
        return 0;
}
