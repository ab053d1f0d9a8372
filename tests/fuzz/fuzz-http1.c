/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sandbox forwarder's HTTP/1.1 parsers (broker/egress/http1.c) on
 * arbitrary bytes: request and response heads (every field inside the
 * input, within the caps) and the chunked decoder, fed whole and in
 * pieces, out of place and in place (in == out, as forward.c decodes each
 * received piece inside its receive buffer: an overlapping copy there is
 * what ASan's memcpy-param-overlap catches), which must all agree: the
 * same data, the same verdict.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

/* As broker/sandbox/forward.c: each piece of step bytes lands in a buffer
 * (w) and is decoded in place there, in == out, its data then copied out. */
static int decode_in_place(const uint8_t *d, size_t n, size_t step, unsigned char *w, unsigned char *out,
                           size_t *olen, size_t *used, bool *done) {
        cb_h1_chunked c = { 0 };
        size_t pos = 0;
        *olen = 0;
        while (pos < n && !c.done) {
                size_t k = n - pos < step ? n - pos : step, off = 0;
                memcpy(w, d + pos, k);
                while (off < k && !c.done) {
                        size_t ol = 0, u = 0;
                        if (cb_h1_chunked_feed(&c, w + off, k - off, w + off, &ol, &u) < 0) {
                                if (!c.why)
                                        abort();
                                return -1;
                        }
                        if (u > k - off || ol > u || (u < k - off && !c.done))
                                abort();
                        memcpy(out + *olen, w + off, ol);
                        *olen += ol;
                        off += u;
                }
                pos += off;
        }
        *used = pos;
        *done = c.done;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_head(const cb_h1_head *h, const char *buf, size_t n, int r) {
        if (r < 0) {
                if (!h->why || (h->status != 400 && h->status != 431 && h->status != 502))
                        abort();
                return;
        }
        if (h->nh > CB_PREQ_HEADERS_MAX || h->line_len > n)
                abort();
        for (size_t i = 0; i < h->nh; i++) {
                const cb_preq_header *x = &h->h[i];
                if (x->name < buf || x->name + x->name_len > buf + n || x->value < buf ||
                    x->value + x->value_len > buf + n || x->name_len == 0)
                        abort();
                if (memchr(x->value, '\r', x->value_len) || memchr(x->value, '\n', x->value_len))
                        abort();
        }
}

static int decode(const uint8_t *d, size_t n, size_t step, unsigned char *out, size_t *olen, size_t *used,
                  bool *done) {
        cb_h1_chunked c = { 0 };
        size_t off = 0;
        *olen = 0;
        while (off < n && !c.done) {
                size_t k = n - off < step ? n - off : step, ol = 0, u = 0;
                if (cb_h1_chunked_feed(&c, d + off, k, out + *olen, &ol, &u) < 0) {
                        if (!c.why)
                                abort();
                        return -1;
                }
                if (u > k || ol > u || (u < k && !c.done))
                        abort();
                *olen += ol;
                off += u;
        }
        *used = off;
        *done = c.done;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > CB_H1_HEAD_MAX + 64)
                return 0;
        cb_h1_head *h = malloc(sizeof(*h));
        unsigned char *a = malloc(size + 1), *b = malloc(size + 1), *c = malloc(size + 1), *w = malloc(size + 1);
        if (!h || !a || !b || !c || !w)
                abort();
        const char *buf = (const char *)data;
        size_t end = cb_h1_head_end(buf, size);
        if (end > size)
                abort();
        check_head(h, buf, end ? end : size, cb_h1_request(buf, end ? end : size, h));
        check_head(h, buf, end ? end : size, cb_h1_response(buf, end ? end : size, h));
        size_t la = 0, lb = 0, ua = 0, ub = 0;
        bool da = false, db = false;
        int ra = decode(data, size, size ? size : 1, a, &la, &ua, &da);
        int rb = decode(data, size, 3, b, &lb, &ub, &db);
        if (ra != rb || (ra == 0 && (la != lb || ua != ub || da != db || memcmp(a, b, la) != 0)))
                abort();
        static const size_t steps[] = { 0, 1, 7 }; /* 0: the whole input as one piece */
        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
                size_t lc = 0, uc = 0;
                bool dc = false;
                int rc = decode_in_place(data, size, steps[i] ? steps[i] : (size ? size : 1), w, c, &lc, &uc, &dc);
                if (rc != ra || (ra == 0 && (lc != la || uc != ua || dc != da || memcmp(a, c, la) != 0)))
                        abort();
        }
        free(c);
        free(w);
        free(h);
        free(a);
        free(b);
        return 0;
}
