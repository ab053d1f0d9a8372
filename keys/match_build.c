/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The compiled matcher (see match.h for the contract and the design): the
 * gram index and filters built from a builder's patterns, and the prefix
 * look-up streams use to decide what they may write at once.  The pattern
 * set is made in match_forms.c; the streams are in match_stream.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "codec.h"
#include "match.h"
#include "match_internal.h"
#include "secmem.h"

const char *cb_scan_kind_name(enum cb_scan_kind k) {
        switch (k) {
        case CB_SK_RAW: return "raw";
        case CB_SK_BASE64: return "base64";
        case CB_SK_BASE64URL: return "base64url";
        case CB_SK_URL: return "url";
        case CB_SK_JSON: return "json";
        case CB_SK_TOKEN: return "token";
        case CB_SK_HEX: return "hex";
        case CB_SK_HTML: return "html";
        }
        return "?";
}

/* ---- the compiled matcher ----------------------------------------------- */

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

/* Lexicographic on ASCII-folded bytes, a prefix before its extensions:
 * the patterns starting with a given string, in any case, are then one run
 * of lex[] (for a pattern whose case must match, the run says "maybe": a
 * stream then holds a little more than it had to, never less). */
static int cmp_bytes(const unsigned char *a, size_t al, const unsigned char *b, size_t bl) {
        for (size_t i = 0, n = al < bl ? al : bl; i < n; i++) {
                unsigned char x = cb_match_fold(a[i]), y = cb_match_fold(b[i]);
                if (x != y)
                        return x < y ? -1 : 1;
        }
        return al < bl ? -1 : al > bl;
}

static int cmp_lex(const void *a, const void *b, void *ctx) {
        const mpat *pats = ctx, *x = &pats[*(const uint32_t *)a], *y = &pats[*(const uint32_t *)b];
        return cmp_bytes(x->bytes, x->len, y->bytes, y->len);
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
        m->refs = 1;
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
        m->minlen = minlen;                       /* SIZE_MAX: no pattern */
        if ((m->flags & CB_MATCH_TOKENS) && m->minlen > CB_TOKEN_LEN)
                m->minlen = CB_TOKEN_LEN;
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
                                uint32_t *c = &cnt[H2(GRAM_FOLD(g), 32 - cbits)];
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
                                sum += cnt[H2(GRAM_FOLD(g), 32 - cbits)];
                                if (o + 1 < m->stride)
                                        continue;
                                unsigned d = o + 1 - m->stride;
                                if (sum < best) {
                                        best = sum;
                                        best_d = d;
                                }
                                memcpy(&g, b->pool + p->off + d, GRAM);
                                sum -= cnt[H2(GRAM_FOLD(g), 32 - cbits)];
                        }
                        win[i] = (unsigned char)best_d;
                        if (best_d > m->dmax)
                                m->dmax = best_d;
                }
        }

        /* (gram << 32 | pattern << OFF_BITS | offset), sorted: grams come out grouped. */
        if (n_ent) {
                grams = malloc(n_ent * sizeof(*grams)); /* transient: wiped below */
                if (!grams)
                        goto out;
        }
        for (size_t i = 0; i < n_unique; i++) {
                const unsigned char *bytes = b->pool + b->pats[order[i]].off;
                for (unsigned o = win[i]; o < win[i] + m->stride; o++) {
                        uint32_t g;
                        memcpy(&g, bytes + o, GRAM);
                        grams[i * m->stride + o - win[i]] = (uint64_t)GRAM_FOLD(g) << 32 | (uint64_t)i << OFF_BITS | o;
                }
        }
        if (n_ent > 256) {
                qsort(grams, n_ent, sizeof(*grams), cmp_u64);
        } else {
                /* One value's grams (a matcher per proxied request): an
                 * insertion sort beats qsort's calls at this size. */
                for (size_t i = 1; i < n_ent; i++) {
                        uint64_t x = grams[i];
                        size_t k = i;
                        for (; k > 0 && grams[k - 1] > x; k--)
                                grams[k] = grams[k - 1];
                        grams[k] = x;
                }
        }
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
        size_t ent_len = n_ent * sizeof(uint32_t), pats_len = n_unique * sizeof(mpat),
               lex_len = n_unique * sizeof(uint32_t);
        size_t o_slots = 2 * align8(bitmap_len), o_ent = o_slots + align8(slots_len), o_pats = o_ent + align8(ent_len),
               o_lex = o_pats + align8(pats_len), o_pool = o_lex + align8(lex_len);
        /* sodium_malloc puts the block's end against its guard page: the
         * start is only aligned if the size is a multiple of the alignment. */
        m->blob_len = (o_pool + pool_bytes + 15) & ~(size_t)15;
        /* A cb_secbuf: sodium_malloc memory, from the wiped pool for small
         * blocks (one value's matcher, built per proxied request: no
         * mmap/munmap pair each time). */
        m->blob_buf = cb_secbuf_new(m->blob_len);
        if (!m->blob_buf)
                goto out;
        m->blob = cb_secbuf_data(m->blob_buf);
        memset(m->blob, 0, o_pool);
        uint64_t *bitmap = (uint64_t *)m->blob, *bitmap2 = (uint64_t *)(m->blob + align8(bitmap_len));
        slot *slots = (slot *)(m->blob + o_slots);
        uint32_t *ent = (uint32_t *)(m->blob + o_ent);
        mpat *pats = (mpat *)(m->blob + o_pats);
        uint32_t *lex = (uint32_t *)(m->blob + o_lex);
        unsigned char *pool = m->blob + o_pool;

        for (size_t i = 0, at = 0; i < n_unique; i++) {
                const pat *p = &b->pats[order[i]];
                memcpy(pool + at, b->pool + p->off, p->len);
                pats[i] = (mpat){ pool + at, p->len, p->kind, cb_match_kind_icase(p->kind), p->secret };
                at += p->len;
                lex[i] = (uint32_t)i;
                unsigned char c0 = cb_match_fold(b->pool[p->off]), c1 = c0 >= 'a' && c0 <= 'z' ? c0 ^ 0x20 : c0;
                m->first[c0 >> 6] |= (uint64_t)1 << (c0 & 63);
                m->first[c1 >> 6] |= (uint64_t)1 << (c1 & 63);
        }
        qsort_r(lex, n_unique, sizeof(*lex), cmp_lex, pats);
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
        m->lex = lex;
        m->n_pats = n_unique;
        m->flags = b->flags;
        m->secrets = b->secrets;
        m->n_secrets = b->n_secrets;
        b->secrets = NULL;
        b->n_secrets = 0;
        *ret = m;
        m = NULL;
        r = 0;
out:
        if (grams) {
                sodium_memzero(grams, n_ent * sizeof(*grams));
                free(grams);
        }
        free(cnt);
        free(win);
        free(order);
        cb_matcher_free(m);
        cb_matcher_builder_free(b);
        return r;
}

cb_matcher *cb_matcher_ref(cb_matcher *m) {
        if (m)
                __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
        return m;
}

void cb_matcher_free(cb_matcher *m) {
        if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) != 0)
                return;
        cb_secbuf_free(m->blob_buf); /* wipes */
        for (size_t i = 0; i < m->n_secrets; i++)
                free(m->secrets[i].name);
        free(m->secrets);
        free(m);
}

size_t cb_matcher_min_len(const cb_matcher *m) {
        return m->minlen;
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


static bool base62(unsigned char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

bool cb_matcher_is_prefix(const cb_matcher *m, const unsigned char *q, size_t n) {
        size_t lo = 0, hi = m->n_pats;

        if ((m->flags & CB_MATCH_TOKENS) && n < CB_TOKEN_LEN) {
                size_t k = n < CB_TOKEN_PREFIX_LEN ? n : CB_TOKEN_PREFIX_LEN, i = k;
                if (memcmp(q, CB_TOKEN_PREFIX, k) == 0) {
                        while (i < n && base62(q[i]))
                                i++;
                        if (i == n)
                                return true;
                }
        }
        if (n >= m->maxlen || !((m->first[q[0] >> 6] >> (q[0] & 63)) & 1))
                return false;
        /* The first pattern not below q: if any pattern starts with q, it
         * is that one (or q itself, then the next). */
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const mpat *p = &m->pats[m->lex[mid]];
                if (cmp_bytes(p->bytes, p->len, q, n) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == m->n_pats)
                return false;
        const mpat *p = &m->pats[m->lex[lo]];
        /* q may be a pattern itself (found whole already), in one or more
         * cases: then the next one is its shortest extension, if any. */
        while (p->len == n && cmp_bytes(p->bytes, n, q, n) == 0) {
                if (++lo == m->n_pats)
                        return false;
                p = &m->pats[m->lex[lo]];
        }
        return p->len > n && cmp_bytes(p->bytes, n, q, n) == 0;
}
