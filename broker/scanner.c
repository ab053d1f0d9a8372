/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The leak scanner's matching engine (see scanner.h for the contract and
 * the design): the compiled matcher (gram index and filters) and the
 * streams that probe text with it and redact.  The pattern set it compiles
 * (the builder and each value's encoded forms) is in scanner_forms.c.  No
 * daemon state here: broker/scan.c owns the live matcher.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "codec.h"
#include "scanner.h"
#include "scanner_internal.h"

#define GRAM 4
#define STRIDE_MAX 8
#define OFF_BITS 8 /* an index entry is pattern << OFF_BITS | offset of the gram in the pattern */
#define OFF_MAX ((1u << OFF_BITS) - 1)
#define SLACK 16 /* zeroed bytes past the data: probes read up to 8 past a position */

const char *cb_scan_kind_name(enum cb_scan_kind k) {
        switch (k) {
        case CB_SK_RAW: return "raw";
        case CB_SK_BASE64: return "base64";
        case CB_SK_BASE64URL: return "base64url";
        case CB_SK_URL: return "url";
        case CB_SK_JSON: return "json";
        case CB_SK_TOKEN: return "token";
        case CB_SK_HEX: return "hex";
        }
        return "?";
}

/* ---- the compiled matcher ----------------------------------------------- */

typedef struct slot {
        uint32_t gram, first, count; /* count 0: empty */
} slot;

typedef struct mpat {
        const unsigned char *bytes;
        uint32_t len;
        uint16_t kind;
        uint32_t secret;
} mpat;

struct cb_matcher {
        unsigned char *blob; /* sodium_malloc: bitmap, slots, entries, pats, pool */
        size_t blob_len;
        const uint64_t *bitmap, *bitmap2; /* two hashes of each gram (a Bloom filter, k = 2, split) */
        unsigned bitmap_shift; /* 32 - log2(bits) */
        const slot *slots;
        unsigned slot_shift;
        uint32_t slot_mask;
        const uint32_t *entries; /* pattern << OFF_BITS | offset */
        const mpat *pats;
        size_t n_pats;
        secret_ref *secrets;
        size_t n_secrets;
        unsigned stride;
        unsigned dmax; /* largest window start: a sighting is found up to dmax + stride - 1 past its start */
        size_t maxlen;
};

#define H1(g, shift) ((uint32_t)((g) * 0x9E3779B1u) >> (shift))
#define H2(g, shift) ((uint32_t)((g) * 0x85EBCA6Bu) >> (shift))
#define H3(g, shift) ((uint32_t)(((g) ^ ((g) >> 15)) * 0xC2B2AE35u) >> (shift))

static int cmp_pat(const void *a, const void *b, void *ctx) {
        const cb_matcher_builder *sb = ctx;
        const pat *x = &sb->pats[*(const uint32_t *)a], *y = &sb->pats[*(const uint32_t *)b];
        if (x->len != y->len)
                return x->len < y->len ? -1 : 1;
        int c = memcmp(sb->pool + x->off, sb->pool + y->off, x->len);
        if (c)
                return c;
        return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1; /* the first added wins */
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static unsigned log2_ceil(size_t n) {
        unsigned k = 0;
        while (((size_t)1 << k) < n)
                k++;
        return k;
}

static size_t align8(size_t n) {
        return (n + 7) & ~(size_t)7;
}

/* The last window start for a pattern of len bytes: its grams stay inside
 * the pattern and its offsets fit an index entry. */
static unsigned window_last(size_t len, unsigned stride) {
        size_t d = len - (GRAM - 1) - stride;
        if (d > OFF_MAX + 1 - stride)
                d = OFF_MAX + 1 - stride;
        return (unsigned)d;
}

int cb_matcher_build(cb_matcher_builder *b, cb_matcher **ret) {
        cb_matcher *m = NULL;
        uint32_t *order = NULL, *cnt = NULL;
        unsigned char *win = NULL;
        uint64_t *grams = NULL;
        size_t n_unique = 0, n_ent = 0, n_grams = 0, pool_bytes = 0, minlen = SIZE_MAX;
        int r = -ENOMEM;

        m = calloc(1, sizeof(*m));
        if (!m)
                goto out;
        /* Sort and drop duplicate byte strings. */
        if (b->n_pats > UINT32_MAX >> OFF_BITS) {
                r = -E2BIG;
                goto out;
        }
        order = malloc((b->n_pats + 1) * sizeof(*order));
        if (!order)
                goto out;
        for (size_t i = 0; i < b->n_pats; i++)
                order[i] = (uint32_t)i;
        qsort_r(order, b->n_pats, sizeof(*order), cmp_pat, b);
        for (size_t i = 0; i < b->n_pats; i++) {
                const pat *p = &b->pats[order[i]];
                if (n_unique) {
                        const pat *q = &b->pats[order[n_unique - 1]];
                        if (q->len == p->len && memcmp(b->pool + q->off, b->pool + p->off, p->len) == 0)
                                continue;
                }
                order[n_unique++] = order[i];
                pool_bytes += p->len;
                if (p->len < minlen)
                        minlen = p->len;
                if (p->len > m->maxlen)
                        m->maxlen = p->len;
        }
        m->stride = n_unique ? (unsigned)(minlen - GRAM + 1) : STRIDE_MAX;
        if (m->stride > STRIDE_MAX)
                m->stride = STRIDE_MAX;
        n_ent = n_unique * m->stride;

        /* Each pattern is indexed by the grams of one window of stride
         * consecutive offsets d .. d + stride - 1 (any d with d + stride - 1 +
         * GRAM <= len: every occurrence still meets exactly one probe). The
         * window is the one whose grams are rarest across the pattern set, so
         * patterns sharing a prefix (sk-proj-..., PEM headers, their encoded
         * forms) do not all pile onto the same grams: a text repeating that
         * prefix would otherwise walk every such pattern at every probe. */
        if (n_unique) {
                size_t n_cand = 0;
                for (size_t i = 0; i < n_unique; i++)
                        n_cand += window_last(b->pats[order[i]].len, m->stride) + m->stride;
                unsigned cbits = log2_ceil(n_cand * 2 + 1);
                if (cbits < 10)
                        cbits = 10;
                if (cbits > 20)
                        cbits = 20;
                cnt = calloc((size_t)1 << cbits, sizeof(*cnt));
                win = malloc(n_unique * sizeof(*win));
                if (!cnt || !win)
                        goto out;
                for (size_t i = 0; i < n_unique; i++) {
                        const pat *p = &b->pats[order[i]];
                        unsigned last = window_last(p->len, m->stride) + m->stride - 1;
                        for (unsigned o = 0; o <= last; o++) {
                                uint32_t g;
                                memcpy(&g, b->pool + p->off + o, GRAM);
                                uint32_t *c = &cnt[H2(g, 32 - cbits)];
                                if (*c < UINT32_MAX)
                                        (*c)++;
                        }
                }
                for (size_t i = 0; i < n_unique; i++) {
                        const pat *p = &b->pats[order[i]];
                        unsigned dl = window_last(p->len, m->stride), best_d = 0;
                        uint64_t sum = 0, best = UINT64_MAX;
                        uint32_t g;
                        for (unsigned o = 0; o < dl + m->stride; o++) {
                                memcpy(&g, b->pool + p->off + o, GRAM);
                                sum += cnt[H2(g, 32 - cbits)];
                                if (o + 1 < m->stride)
                                        continue;
                                unsigned d = o + 1 - m->stride;
                                if (sum < best) {
                                        best = sum;
                                        best_d = d;
                                }
                                memcpy(&g, b->pool + p->off + d, GRAM);
                                sum -= cnt[H2(g, 32 - cbits)];
                        }
                        win[i] = (unsigned char)best_d;
                        if (best_d > m->dmax)
                                m->dmax = best_d;
                }
        }

        /* (gram << 32 | pattern << OFF_BITS | offset), sorted: grams come out grouped. */
        if (n_ent) {
                grams = sodium_malloc(n_ent * sizeof(*grams));
                if (!grams)
                        goto out;
        }
        for (size_t i = 0; i < n_unique; i++) {
                const unsigned char *bytes = b->pool + b->pats[order[i]].off;
                for (unsigned o = win[i]; o < win[i] + m->stride; o++) {
                        uint32_t g;
                        memcpy(&g, bytes + o, GRAM);
                        grams[i * m->stride + o - win[i]] = (uint64_t)g << 32 | (uint64_t)i << OFF_BITS | o;
                }
        }
        if (n_ent)
                qsort(grams, n_ent, sizeof(*grams), cmp_u64);
        for (size_t i = 0; i < n_ent; i++)
                if (i == 0 || grams[i] >> 32 != grams[i - 1] >> 32)
                        n_grams++;

        unsigned bbits = log2_ceil(n_grams * 16 + 1);
        if (bbits < 12)
                bbits = 12;
        if (bbits > 24)
                bbits = 24;
        unsigned sbits = log2_ceil(n_grams * 2 + 2);
        if (sbits < 4)
                sbits = 4;
        size_t bitmap_len = ((size_t)1 << bbits) / 8, slots_len = ((size_t)1 << sbits) * sizeof(slot);
        size_t ent_len = n_ent * sizeof(uint32_t), pats_len = n_unique * sizeof(mpat);
        size_t o_slots = 2 * align8(bitmap_len), o_ent = o_slots + align8(slots_len), o_pats = o_ent + align8(ent_len),
               o_pool = o_pats + align8(pats_len);
        /* sodium_malloc puts the block's end against its guard page: the
         * start is only aligned if the size is a multiple of the alignment. */
        m->blob_len = (o_pool + pool_bytes + 15) & ~(size_t)15;
        m->blob = sodium_malloc(m->blob_len);
        if (!m->blob)
                goto out;
        memset(m->blob, 0, o_pool);
        uint64_t *bitmap = (uint64_t *)m->blob, *bitmap2 = (uint64_t *)(m->blob + align8(bitmap_len));
        slot *slots = (slot *)(m->blob + o_slots);
        uint32_t *ent = (uint32_t *)(m->blob + o_ent);
        mpat *pats = (mpat *)(m->blob + o_pats);
        unsigned char *pool = m->blob + o_pool;

        for (size_t i = 0, at = 0; i < n_unique; i++) {
                const pat *p = &b->pats[order[i]];
                memcpy(pool + at, b->pool + p->off, p->len);
                pats[i] = (mpat){ pool + at, p->len, p->kind, p->secret };
                at += p->len;
        }
        m->bitmap_shift = 32 - bbits;
        m->slot_shift = 32 - sbits;
        m->slot_mask = ((uint32_t)1 << sbits) - 1;
        for (size_t i = 0; i < n_ent;) {
                uint32_t g = (uint32_t)(grams[i] >> 32), h = H1(g, m->bitmap_shift);
                size_t k = i;
                bitmap[h >> 6] |= (uint64_t)1 << (h & 63);
                h = H3(g, m->bitmap_shift);
                bitmap2[h >> 6] |= (uint64_t)1 << (h & 63);
                uint32_t s = H2(g, m->slot_shift);
                while (slots[s].count)
                        s = (s + 1) & m->slot_mask;
                slots[s].gram = g;
                slots[s].first = (uint32_t)i;
                for (; k < n_ent && (uint32_t)(grams[k] >> 32) == g; k++)
                        ent[k] = (uint32_t)grams[k];
                slots[s].count = (uint32_t)(k - i);
                i = k;
        }
        m->bitmap = bitmap;
        m->bitmap2 = bitmap2;
        m->slots = slots;
        m->entries = ent;
        m->pats = pats;
        m->n_pats = n_unique;
        m->secrets = b->secrets;
        m->n_secrets = b->n_secrets;
        b->secrets = NULL;
        b->n_secrets = 0;
        *ret = m;
        m = NULL;
        r = 0;
out:
        if (grams)
                sodium_free(grams);
        free(cnt);
        free(win);
        free(order);
        cb_matcher_free(m);
        cb_matcher_builder_free(b);
        return r;
}

void cb_matcher_free(cb_matcher *m) {
        if (!m)
                return;
        if (m->blob)
                sodium_free(m->blob);
        for (size_t i = 0; i < m->n_secrets; i++)
                free(m->secrets[i].name);
        free(m->secrets);
        free(m);
}

size_t cb_matcher_n_patterns(const cb_matcher *m) {
        return m->n_pats;
}

size_t cb_matcher_n_secrets(const cb_matcher *m) {
        return m->n_secrets;
}

unsigned cb_matcher_stride(const cb_matcher *m) {
        return m->stride;
}

void cb_matcher_pattern(const cb_matcher *m, size_t i, const unsigned char **ret_bytes, size_t *ret_len,
                        enum cb_scan_kind *ret_kind, const char **ret_name) {
        const mpat *p = &m->pats[i];

        *ret_bytes = p->bytes;
        *ret_len = p->len;
        *ret_kind = (enum cb_scan_kind)p->kind;
        *ret_name = m->secrets[p->secret].name;
}

/* ---- streams ------------------------------------------------------------- */

size_t cb_scan_window_min = 256 * 1024;

typedef struct pend {
        uint64_t start, end;
        const char *label; /* a secret name (the matcher's) or into labels */
        size_t label_ix;   /* labels[] index when label is NULL */
} pend;

struct cb_scan_stream {
        const cb_matcher *m;
        cb_scan_hit_fn hit;
        cb_scan_out_fn out;
        void *ctx;
        unsigned char *w; /* window: global bytes [base, base + len) */
        size_t cap, len;
        uint64_t base, next_j, emitted;
        size_t tail; /* lookahead a probe needs before it is final */
        pend *pend;
        size_t n_pend, cap_pend;
        char (*labels)[CB_SCAN_LABEL_MAX];
        size_t n_labels, cap_labels;
        int error;
        bool started;
};

cb_scan_stream *cb_scan_stream_new(const cb_matcher *m, cb_scan_hit_fn hit, cb_scan_out_fn out, void *ctx) {
        cb_scan_stream *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        s->m = m;
        s->hit = hit;
        s->out = out;
        s->ctx = ctx;
        s->tail = m->maxlen + CB_TOKEN_LEN + 2 * STRIDE_MAX + SLACK + m->dmax;
        s->cap = cb_scan_window_min ? cb_scan_window_min : 1;
        while (s->cap < 4 * s->tail)
                s->cap *= 2;
        s->w = malloc(s->cap + SLACK);
        if (!s->w) {
                free(s);
                return NULL;
        }
        return s;
}

void cb_scan_stream_skip(cb_scan_stream *s, uint64_t n) {
        if (!s->started)
                s->emitted = n;
}

void cb_scan_stream_free(cb_scan_stream *s) {
        if (!s)
                return;
        sodium_memzero(s->w, s->cap + SLACK);
        free(s->w);
        free(s->pend);
        if (s->labels)
                sodium_memzero(s->labels, s->cap_labels * sizeof(*s->labels));
        free(s->labels);
        free(s);
}

static int emit(cb_scan_stream *s, const void *p, size_t n) {
        int r = n ? s->out(s->ctx, p, n) : 0;
        if (r < 0)
                s->error = r;
        return r;
}

/* Report a sighting; in redact mode remember it until it can be placed. */
static int found(cb_scan_stream *s, uint64_t start, uint64_t end, enum cb_scan_kind kind, uint32_t secret,
                 const char *token) {
        const secret_ref *sr = token ? NULL : &s->m->secrets[secret];
        char label[CB_SCAN_LABEL_MAX];
        const char *dflt = sr ? sr->name : "token";
        cb_scan_hit h = { start, end, kind, sr ? sr->name : NULL, sr ? sr->version : 0, token };
        int r;

        snprintf(label, sizeof(label), "%s", dflt);
        if (s->hit && (r = s->hit(s->ctx, &h, label)) < 0)
                return s->error = r;
        if (!s->out)
                return 0;
        if (s->n_pend == s->cap_pend) {
                if (s->cap_pend >= CB_SCAN_PEND_MAX)
                        return s->error = -E2BIG; /* overlapping sightings at nearly every byte */
                size_t nc = s->cap_pend ? s->cap_pend * 2 : 64;
                pend *np = realloc(s->pend, nc * sizeof(*np));
                if (!np)
                        return s->error = -ENOMEM;
                s->pend = np;
                s->cap_pend = nc;
        }
        pend *p = &s->pend[s->n_pend];
        *p = (pend){ start, end, dflt, 0 };
        if (strcmp(label, dflt) != 0) {
                if (s->n_labels == s->cap_labels) {
                        size_t nc = s->cap_labels ? s->cap_labels * 2 : 16;
                        void *nl = realloc(s->labels, nc * sizeof(*s->labels));
                        if (!nl)
                                return s->error = -ENOMEM;
                        s->labels = nl;
                        s->cap_labels = nc;
                }
                memcpy(s->labels[s->n_labels], label, CB_SCAN_LABEL_MAX);
                p->label = NULL;
                p->label_ix = s->n_labels++;
        }
        s->n_pend++;
        return 0;
}

static __attribute__((noinline)) int check_grams(cb_scan_stream *s, uint32_t g, uint64_t j, uint64_t end) {
        const cb_matcher *m = s->m;
        uint32_t k = H3(g, m->bitmap_shift);

        if (!((m->bitmap2[k >> 6] >> (k & 63)) & 1))
                return 0;
        k = H2(g, m->slot_shift);

        for (;; k = (k + 1) & m->slot_mask) {
                const slot *sl = &m->slots[k];
                if (!sl->count)
                        return 0;
                if (sl->gram != g)
                        continue;
                for (uint32_t e = sl->first; e < sl->first + sl->count; e++) {
                        const mpat *p = &m->pats[m->entries[e] >> OFF_BITS];
                        unsigned o = m->entries[e] & OFF_MAX;
                        if (j < o)
                                continue;
                        uint64_t st = j - o;
                        if (st + p->len > end || memcmp(s->w + (st - s->base), p->bytes, p->len) != 0)
                                continue;
                        if (found(s, st, st + p->len, (enum cb_scan_kind)p->kind, p->secret, NULL) < 0)
                                return s->error;
                }
                return 0;
        }
}

static __attribute__((noinline)) int check_token(cb_scan_stream *s, uint64_t u, uint64_t end) {
        if (u < 3 || u - 3 + CB_TOKEN_LEN > end)
                return 0;
        const char *t = (const char *)s->w + (u - 3 - s->base);
        if (memcmp(t, CB_TOKEN_PREFIX, CB_TOKEN_PREFIX_LEN) != 0 || cb_token_check(t, CB_TOKEN_LEN) != 0)
                return 0;
        return found(s, u - 3, u - 3 + CB_TOKEN_LEN, CB_SK_TOKEN, 0, t) < 0 ? s->error : 0;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Probe every sampled position j in [next_j, limit); data ends at end. */
static int probe(cb_scan_stream *s, uint64_t limit, uint64_t end) {
        const cb_matcher *m = s->m;
        const uint64_t *bitmap = m->bitmap;
        const unsigned stride = m->stride, shift = m->bitmap_shift;
        const uint64_t mask = stride >= 8 ? ~0ull : (((uint64_t)1 << (8 * stride)) - 1);
        const unsigned char *w = s->w - s->base;
        uint64_t j = s->next_j;

        for (; j < limit; j += stride) {
                uint32_t g;
                uint64_t q;
                memcpy(&g, w + j, 4);
                memcpy(&q, w + j, 8);
                uint32_t h = H1(g, shift);
                if (__builtin_expect((bitmap[h >> 6] >> (h & 63)) & 1, 0) && check_grams(s, g, j, end) < 0)
                        return s->error;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                uint64_t x = q ^ (ONES * '_');
                uint64_t z = (x - ONES) & ~x & HIGHS & mask;
                while (__builtin_expect(z != 0, 0)) {
                        unsigned k = (unsigned)__builtin_ctzll(z) / 8;
                        z &= z - 1;
                        if (w[j + k] == '_' && check_token(s, j + k, end) < 0)
                                return s->error;
                }
#else
                (void)q, (void)mask;
                for (unsigned k = 0; k < stride; k++)
                        if (w[j + k] == '_' && check_token(s, j + k, end) < 0)
                                return s->error;
#endif
        }
        s->next_j = j;
        return 0;
}

static int cmp_pend(const void *a, const void *b) {
        const pend *x = a, *y = b;
        if (x->start != y->start)
                return x->start < y->start ? -1 : 1;
        return x->end > y->end ? -1 : x->end < y->end; /* longest first */
}

/* Redact mode: every sighting starting before cs is known; write the output
 * for the input up to cs (and past it under a marker that runs on). */
static int place(cb_scan_stream *s, uint64_t cs) {
        size_t i, keep = 0;

        if (s->n_pend > 1)
                qsort(s->pend, s->n_pend, sizeof(*s->pend), cmp_pend);
        for (i = 0; i < s->n_pend; i++) {
                pend *p = &s->pend[i];
                if (p->start >= cs) {
                        s->pend[keep++] = *p;
                        continue;
                }
                if (p->start >= s->emitted) {
                        const char *label = p->label ? p->label : s->labels[p->label_ix];
                        if (emit(s, s->w + (s->emitted - s->base), p->start - s->emitted) < 0 ||
                            emit(s, "[REDACTED:", 10) < 0 || emit(s, label, strlen(label)) < 0 || emit(s, "]", 1) < 0)
                                return s->error;
                        s->emitted = p->end;
                } else if (p->end > s->emitted) {
                        s->emitted = p->end; /* overlaps the last marker: the union goes */
                }
        }
        s->n_pend = keep;
        if (!keep)
                s->n_labels = 0;
        if (s->emitted < cs) {
                if (emit(s, s->w + (s->emitted - s->base), cs - s->emitted) < 0)
                        return s->error;
                s->emitted = cs;
        }
        return 0;
}

/* Every sighting starting before this offset has been found: one starting
 * at st is found by the probe at st + d + o (d <= dmax, o < stride). */
static uint64_t complete_before(const cb_scan_stream *s) {
        uint64_t lag = (uint64_t)s->m->dmax + s->m->stride - 1;
        return s->next_j >= lag ? s->next_j - lag : 0;
}

/* Probe what can be probed; in redact mode place what can be placed. */
static int advance(cb_scan_stream *s, bool final) {
        uint64_t end = s->base + s->len, limit;

        if (final) {
                memset(s->w + s->len, 0, SLACK);
                limit = end;
        } else {
                limit = end > s->tail ? end - s->tail : 0;
        }
        if (limit > s->next_j && probe(s, limit, end) < 0)
                return s->error;
        if (!s->out)
                return 0;
        return place(s, final ? end : complete_before(s));
}

/* Drop window bytes nothing will read again. */
static void compact(cb_scan_stream *s) {
        uint64_t back = 2 * STRIDE_MAX + s->m->dmax;
        uint64_t keep = s->next_j > back ? s->next_j - back : 0;

        if (s->out && s->emitted < keep)
                keep = s->emitted;
        if (keep <= s->base)
                return;
        size_t drop = (size_t)(keep - s->base);
        if (drop > s->len)
                drop = s->len;
        memmove(s->w, s->w + drop, s->len - drop);
        sodium_memzero(s->w + s->len - drop, drop);
        s->len -= drop;
        s->base += drop;
}

int cb_scan_stream_feed(cb_scan_stream *s, const void *p, size_t n) {
        const unsigned char *in = p;

        s->started = true;
        if (s->error)
                return s->error;
        while (n) {
                if (s->len == s->cap) {
                        if (advance(s, false) < 0)
                                return s->error;
                        compact(s);
                        if (s->len == s->cap)
                                return s->error = -EOVERFLOW; /* cannot happen: cap >= 4 * tail */
                }
                size_t k = s->cap - s->len < n ? s->cap - s->len : n;
                memcpy(s->w + s->len, in, k);
                s->len += k;
                in += k;
                n -= k;
        }
        return 0;
}

int cb_scan_stream_finish(cb_scan_stream *s) {
        s->started = true;
        if (s->error)
                return s->error;
        return advance(s, true);
}

int cb_scan_stream_cut(cb_scan_stream *s, uint64_t *ret_consumed, uint64_t *ret_skip) {
        s->started = true;
        if (s->error)
                return s->error;
        if (!s->out)
                return -EINVAL;
        if (advance(s, false) < 0)
                return s->error;
        uint64_t cs = complete_before(s);
        *ret_consumed = cs;
        *ret_skip = s->emitted > cs ? s->emitted - cs : 0;
        return 0;
}
