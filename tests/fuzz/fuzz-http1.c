/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sandbox forwarder's HTTP/1.1 parsers (broker/egress/http1.c) on
 * arbitrary bytes: request and response heads (every field inside the
 * input, within the caps) and the chunked decoder, fed whole and in
 * pieces, which must agree: the same data, the same verdict.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

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
        unsigned char *a = malloc(size + 1), *b = malloc(size + 1);
        if (!h || !a || !b)
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
        free(h);
        free(a);
        free(b);
        return 0;
}
