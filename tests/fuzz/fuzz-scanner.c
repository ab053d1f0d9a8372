/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The leak scanner's matcher and redaction stream (keys/match*.c)
 * against the naive reference (tests/helper/match-ref.h): every decoding
 * view of the text built whole, memcmp at every offset for every pattern
 * the matcher holds, and every checksummed token.
 *
 * Input: byte 0 % 8 = number of secrets; then per secret one length byte
 * (value length 8 + byte % 64) and the value; then one byte seeding the
 * split points; the rest is the text.  Checked:
 *   - scan: the set of sightings (start, end, name) equals the reference's;
 *   - redact: the output, fed in pieces split where the seed says and with a
 *     tiny window (so the window moves), equals the reference redaction;
 *   - redact in rounds (cb_scan_stream_cut + skip) equals it too.
 * Any difference aborts.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "codec.h"
#include "match.h"
#include "match-ref.h"

#define FUZZ_SCANNER_MAX (16 * 1024) /* the reference is quadratic-ish */
#define OCC_MAX 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct occ {
        uint64_t s, e;
        const char *name;
} occ;

typedef struct occs {
        occ v[OCC_MAX];
        size_t n;
        bool overflow;
} occs;

static void occ_add(occs *o, uint64_t s, uint64_t e, const char *name) {
        if (o->n == OCC_MAX) {
                o->overflow = true;
                return;
        }
        o->v[o->n++] = (occ){ s, e, name };
}

static int cmp_occ(const void *a, const void *b) {
        const occ *x = a, *y = b;
        if (x->s != y->s)
                return x->s < y->s ? -1 : 1;
        if (x->e != y->e)
                return x->e > y->e ? -1 : 1;
        return strcmp(x->name, y->name);
}

typedef struct buf {
        uint8_t *p;
        size_t n, cap;
} buf;

static int buf_add(void *ctx, const void *p, size_t n) {
        buf *b = ctx;
        if (!n)
                return 0;
        if (b->n + n > b->cap) {
                size_t nc = (b->n + n) * 2 + 64;
                uint8_t *np = realloc(b->p, nc);
                if (!np)
                        abort();
                b->p = np;
                b->cap = nc;
        }
        memcpy(b->p + b->n, p, n);
        b->n += n;
        return 0;
}

static int on_hit(void *ctx, const cb_scan_hit *h, char label[CB_SCAN_LABEL_MAX]) {
        (void)label;
        if (ctx)
                occ_add(ctx, h->start, h->end, h->name ? h->name : "token");
        return 0;
}

static void ref_add(void *ctx, size_t s, size_t e, const char *name) {
        occ_add(ctx, s, e, name);
}

static void reference(const cb_matcher *m, const uint8_t *t, size_t n, occs *o, buf *out) {
        match_ref_sightings(m, t, n, true, ref_add, o);
        qsort(o->v, o->n, sizeof(occ), cmp_occ);
        uint64_t em = 0;
        for (size_t i = 0; i < o->n; i++) {
                if (o->v[i].s >= em) {
                        buf_add(out, t + em, o->v[i].s - em);
                        buf_add(out, "[REDACTED:", 10);
                        buf_add(out, o->v[i].name, strlen(o->v[i].name));
                        buf_add(out, "]", 1);
                        em = o->v[i].e;
                } else if (o->v[i].e > em) {
                        em = o->v[i].e;
                }
        }
        buf_add(out, t + em, n - em);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char names[8][16];
        static occs ref, got;
        buf rout = { 0 }, gout = { 0 };
        cb_matcher_builder *b;
        cb_matcher *m = NULL;
        size_t at = 1;

        if (size < 2 || size > FUZZ_SCANNER_MAX)
                return 0;
        if (sodium_init() < 0)
                abort();
        b = cb_matcher_builder_new(CB_MATCH_TOKENS);
        if (!b)
                abort();
        unsigned nsec = data[0] % 8;
        for (unsigned i = 0; i < nsec && at < size; i++) {
                size_t len = 8 + data[at++] % 64;
                if (at + len > size)
                        break;
                snprintf(names[i], sizeof(names[i]), "s%u", i);
                int r = cb_matcher_builder_add(b, names[i], 1, data + at, len);
                if (r < 0)
                        abort();
                at += len;
        }
        if (cb_matcher_build(b, &m) < 0)
                abort();
        if (at >= size) {
                cb_matcher_free(m);
                return 0;
        }
        unsigned seed = data[at++];
        const uint8_t *t = data + at;
        size_t n = size - at;

        ref.n = got.n = 0;
        ref.overflow = got.overflow = false;
        reference(m, t, n, &ref, &rout);

        /* scan */
        cb_scan_stream *s = cb_scan_stream_new(m, on_hit, NULL, &got);
        if (!s || cb_scan_stream_feed(s, t, n) < 0 || cb_scan_stream_finish(s) < 0)
                abort();
        cb_scan_stream_free(s);
        qsort(got.v, got.n, sizeof(occ), cmp_occ);
        bool same = got.n == ref.n;
        for (size_t i = 0; same && i < got.n; i++)
                same = got.v[i].s == ref.v[i].s && got.v[i].e == ref.v[i].e &&
                       strcmp(got.v[i].name, ref.v[i].name) == 0;
        if (!ref.overflow && !same) {
                for (size_t i = 0; i < got.n || i < ref.n; i++)
                        fprintf(stderr, "%zu: got %s [%llu,%llu)  ref %s [%llu,%llu)\n", i,
                                i < got.n ? got.v[i].name : "-", i < got.n ? (unsigned long long)got.v[i].s : 0,
                                i < got.n ? (unsigned long long)got.v[i].e : 0, i < ref.n ? ref.v[i].name : "-",
                                i < ref.n ? (unsigned long long)ref.v[i].s : 0,
                                i < ref.n ? (unsigned long long)ref.v[i].e : 0);
                abort();
        }

        /* redact, in pieces, with a small window */
        size_t saved = cb_scan_window_min;
        cb_scan_window_min = seed & 1 ? 1 : saved;
        s = cb_scan_stream_new(m, NULL, buf_add, &gout);
        if (!s)
                abort();
        for (size_t p = 0; p < n;) {
                size_t k = 1 + (seed * 7919u + p) % 97;
                if (k > n - p)
                        k = n - p;
                if (cb_scan_stream_feed(s, t + p, k) < 0)
                        abort();
                p += k;
        }
        if (cb_scan_stream_finish(s) < 0)
                abort();
        cb_scan_stream_free(s);
        if (!ref.overflow && (gout.n != rout.n || (rout.n && memcmp(gout.p, rout.p, rout.n) != 0)))
                abort();

        /* redact in rounds, as /v1/redact does */
        gout.n = 0;
        uint64_t off = 0, skip = 0;
        size_t upto = n < 1 + seed ? n : 1 + seed;
        for (;;) {
                s = cb_scan_stream_new(m, NULL, buf_add, &gout);
                if (!s)
                        abort();
                cb_scan_stream_skip(s, skip);
                if (cb_scan_stream_feed(s, t + off, upto - off) < 0)
                        abort();
                if (upto == n) {
                        if (cb_scan_stream_finish(s) < 0)
                                abort();
                        cb_scan_stream_free(s);
                        break;
                }
                uint64_t consumed;
                if (cb_scan_stream_cut(s, &consumed, &skip) < 0 || consumed > upto - off)
                        abort();
                cb_scan_stream_free(s);
                off += consumed;
                upto += n - upto < 200 ? n - upto : 200;
        }
        if (!ref.overflow && (gout.n != rout.n || (rout.n && memcmp(gout.p, rout.p, rout.n) != 0)))
                abort();
        cb_scan_window_min = saved;
        free(rout.p);
        free(gout.p);
        cb_matcher_free(m);
        return 0;
}
