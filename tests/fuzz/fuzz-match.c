/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared matcher (keys/match*.c) as the proxy and `credbroker exec` use
 * it: short values allowed (CB_MATCH_SHORT), a basic-auth user, eager
 * streams fed in small pieces, against the naive reference of
 * tests/helper/match-ref.h (every view decoded whole, memcmp everywhere).
 *
 * Input: byte 0: bits 0-1 number of values (1-3), bit 2 a basic user
 * "alice" for the first value, bit 3 tokens too; then per value one length
 * byte (4 + byte % 48) and the value; then one byte seeding the piece
 * sizes (seed 0: one byte at a time); the rest is the text.  Checked:
 *   - the eager stream's output equals the reference redaction;
 *   - after every feed, what it wrote so far is a prefix of that output
 *     (an eager stream never takes back a byte);
 *   - what it holds back is bounded: after each feed, the output covers
 *     all but at most HOLD_MAX bytes of the input;
 *   - a non-eager stream and cb_matcher_redact_string (text without NUL)
 *     give the same output.
 * Any difference aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "match.h"
#include "match-ref.h"

#define FUZZ_MATCH_MAX (8 * 1024) /* the reference is quadratic-ish */
#define OCC_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct occ {
        size_t s, e;
        const char *name;
} occ;

typedef struct occs {
        occ v[OCC_MAX];
        size_t n;
        bool overflow;
} occs;

static void occ_add(void *ctx, size_t s, size_t e, const char *name) {
        occs *o = ctx;
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
        size_t covered; /* input bytes the output stands for (counted by the caller) */
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

/* The reference output, and for each output byte count... only the text. */
static void reference(const cb_matcher *m, const uint8_t *t, size_t n, bool tokens, occs *o, buf *out) {
        match_ref_sightings(m, t, n, tokens, occ_add, o);
        qsort(o->v, o->n, sizeof(occ), cmp_occ);
        size_t em = 0;
        for (size_t i = 0; i < o->n; i++) {
                if (o->v[i].s >= em) {
                        buf_add(out, t + em, o->v[i].s - em);
                        if (o->v[i].name[0]) {
                                buf_add(out, "[REDACTED:", 10);
                                buf_add(out, o->v[i].name, strlen(o->v[i].name));
                                buf_add(out, "]", 1);
                        } else {
                                buf_add(out, "[REDACTED]", 10);
                        }
                        em = o->v[i].e;
                } else if (o->v[i].e > em) {
                        em = o->v[i].e;
                }
        }
        buf_add(out, t + em, n - em);
}

/* All unnamed, as the proxy's value is: when two values' forms cover the
 * same bytes, an eager stream's marker names the one it found first, which
 * no reference can know (the bytes redacted are the same). */
static const char *const names[3] = { "", "", "" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static occs ref;
        buf rout = { 0 }, gout = { 0 };
        cb_matcher_builder *b;
        cb_matcher *m = NULL;
        size_t at = 1, maxv = 0;

        if (size < 2 || size > FUZZ_MATCH_MAX)
                return 0;
        if (sodium_init() < 0)
                abort();
        bool tokens = data[0] & 8;
        b = cb_matcher_builder_new(CB_MATCH_SHORT | (tokens ? CB_MATCH_TOKENS : 0));
        if (!b)
                abort();
        unsigned nval = 1 + data[0] % 4 % 3;
        for (unsigned i = 0; i < nval && at < size; i++) {
                size_t len = 4 + data[at++] % 48;
                if (at + len > size)
                        break;
                if (cb_matcher_builder_add(b, names[i], 1, data + at, len) < 0)
                        abort();
                if (i == 0 && (data[0] & 4) && cb_matcher_builder_add_user(b, "alice", data + at, len) < 0)
                        abort();
                if (len > maxv)
                        maxv = len;
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

        ref.n = 0;
        ref.overflow = false;
        reference(m, t, n, tokens, &ref, &rout);
        if (ref.overflow)
                goto out;

        /* eager, in pieces */
        cb_scan_stream *s = cb_scan_stream_new(m, NULL, buf_add, &gout);
        if (!s)
                abort();
        cb_scan_stream_eager(s);
        for (size_t p = 0; p < n;) {
                size_t k = seed ? 1 + (seed * 7919u + p) % 61 : 1;
                if (k > n - p)
                        k = n - p;
                if (cb_scan_stream_feed(s, t + p, k) < 0)
                        abort();
                p += k;
                if (gout.n > rout.n || (gout.n && memcmp(gout.p, rout.p, gout.n) != 0))
                        abort(); /* wrote something the whole text does not */
                /* Held back: the input not yet accounted for by the output.
                 * Output bytes outside markers are input bytes one for one;
                 * a complete marker stands for its sighting.  Bound: the
                 * longest form (hex of the longest value, or a base64
                 * "alice:" form) spelled with the widest escapes (12 text
                 * bytes a byte: "&#0000000065"), plus a pending escape. */
                size_t hold_max = 12 * (2 * 52 + 8) + 12 + (tokens ? 40 : 0), consumed = 0, i = 0, em = 0;
                for (size_t x = 0; x <= ref.n && i <= gout.n; x++) {
                        size_t next = x < ref.n ? ref.v[x].s : n;
                        if (x < ref.n && next < em) {
                                if (ref.v[x].e > em)
                                        em = ref.v[x].e;
                                continue;
                        }
                        size_t plain = next - em;
                        if (gout.n - i < plain) {
                                consumed = em + (gout.n - i);
                                i = gout.n;
                                break;
                        }
                        i += plain;
                        consumed = next;
                        if (x == ref.n)
                                break;
                        size_t ml = ref.v[x].name[0] ? 11 + strlen(ref.v[x].name) : 10;
                        if (gout.n - i < ml)
                                break;
                        i += ml;
                        em = ref.v[x].e;
                        consumed = em;
                }
                if (p > consumed && p - consumed > hold_max)
                        abort(); /* held back more than any sighting could need */
        }
        if (cb_scan_stream_finish(s) < 0)
                abort();
        cb_scan_stream_free(s);
        if (gout.n != rout.n || (rout.n && memcmp(gout.p, rout.p, rout.n) != 0))
                abort();

        /* not eager, one piece */
        gout.n = 0;
        s = cb_scan_stream_new(m, NULL, buf_add, &gout);
        if (!s || cb_scan_stream_feed(s, t, n) < 0 || cb_scan_stream_finish(s) < 0)
                abort();
        cb_scan_stream_free(s);
        if (gout.n != rout.n || (rout.n && memcmp(gout.p, rout.p, rout.n) != 0))
                abort();

        /* one-shot, for text without NUL */
        if (!memchr(t, 0, n)) {
                char *str = malloc(n + 1), *red;
                if (!str)
                        abort();
                memcpy(str, t, n);
                str[n] = '\0';
                red = cb_matcher_redact_string(m, str, NULL);
                if (!red || strlen(red) != rout.n || (rout.n && memcmp(red, rout.p, rout.n) != 0))
                        abort();
                free(red);
                free(str);
        }
out:
        free(rout.p);
        free(gout.p);
        cb_matcher_free(m);
        return 0;
}
