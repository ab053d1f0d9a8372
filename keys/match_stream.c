/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streams over a compiled matcher (see match.h): the text and its decoding
 * views are probed as they arrive, sightings are reported and, when
 * redacting, replaced by markers.  No daemon state here.
 *
 * A stream has four views, each a window of bytes probed with the same
 * gram index: the text itself (V_RAW), the text percent-decoded (V_PCT),
 * backslash-unescaped (V_JSON: JSON, C, Python, JS) and with HTML/XML
 * character references decoded (V_HTML).  A decoding view keeps, for its window,
 * the list of escapes it decoded (where each starts in the view and in the
 * text, and how long it is in each): between escapes the two advance byte
 * for byte, so that list maps any view offset back to the text.  A sighting
 * in a view that covers no escape is the same bytes as a sighting in the
 * text and is dropped (reported once); so a decoding view is probed only
 * within a pattern's length of an escape, and text without '%', '\\' or
 * '&' costs its views a copy, not a probe.  (The views' decoding and the
 * mapping back to the text: match_view.c; the layout both share:
 * match_stream_internal.h.)
 *
 * Case: the gram index is keyed by ASCII-folded grams and each probe folds
 * the text's gram the same way (one OR), so every view finds a pattern in
 * any case at no extra probe; verification then compares exactly, or
 * folded for the forms that match in any case (match_internal.h).
 *
 * Lookahead: a probe at j is final once the window holds `tail` bytes past
 * it; every sighting starting before complete_before() has then been
 * found.  An eager stream (cb_scan_stream_eager) also probes the rest of
 * the window tentatively after each feed, without moving on (the same
 * probes run again, finally, later: duplicates are dropped), and writes up
 * to the first byte whose suffix is still a proper prefix of a pattern:
 * what is held back is at most the longest pattern's length (times the
 * escape expansion in a view).  Both resume where the last feed left them
 * (a tentative probe whose candidates all settled is not repeated; a
 * position that was no prefix cannot become one), so a stream fed a byte
 * at a time costs a few probes and look-ups per byte, not a tail's worth.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "codec.h"
#include "match.h"
#include "match_internal.h"
#include "match_stream_internal.h"

size_t cb_scan_window_min = 256 * 1024;

/* ---- streams ---------------------------------------------------------------- */

static size_t view_cap(size_t tail) {
        size_t cap = cb_scan_window_min ? cb_scan_window_min : 1;
        while (cap < 4 * tail)
                cap *= 2;
        return cap;
}

cb_scan_stream *cb_scan_stream_new(const cb_matcher *m, cb_scan_hit_fn hit, cb_scan_out_fn out, void *ctx) {
        cb_scan_stream *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        s->m = m;
        s->hit = hit;
        s->out = out;
        s->ctx = ctx;
        s->tail = m->maxlen + CB_TOKEN_LEN + 2 * STRIDE_MAX + SLACK + m->dmax;
        return s;
}

/* The windows, at the first feed: an eager stream (a proxy response, a
 * command's output) mostly sees a few hundred bytes at a time and takes
 * small ones; a scan takes big ones. */
static int windows(cb_scan_stream *s) {
        if (s->v[V_RAW].w)
                return 0;
        for (int i = 0; i < N_VIEWS; i++) {
                /* The text window also holds what the views have not
                 * placed yet: their lookahead, expanded. */
                size_t tail = i == V_RAW ? EXPAND * s->tail : s->tail;
                s->v[i].cap = s->eager || s->small ? 4 * tail : view_cap(tail);
                /* A known short input: a window that holds all of it (and
                 * its lookahead) is enough; a wrong hint only costs window
                 * moves.  Big windows for every small scan made the heap
                 * hold about 1 MiB per request in flight (issue 19). */
                if (s->hint && !s->eager && !s->small) {
                        size_t want = 4 * tail;
                        while (want < s->v[i].cap && want < s->hint + tail)
                                want *= 2;
                        if (want < s->v[i].cap)
                                s->v[i].cap = want;
                }
                s->v[i].w = malloc(s->v[i].cap + SLACK);
                if (!s->v[i].w)
                        return s->error = -ENOMEM;
        }
        return 0;
}

void cb_scan_stream_eager(cb_scan_stream *s) {
        if (!s->started && s->out)
                s->eager = true;
}

void cb_scan_stream_small(cb_scan_stream *s) {
        if (!s->started)
                s->small = true;
}

void cb_scan_stream_size_hint(cb_scan_stream *s, uint64_t n) {
        if (!s->started)
                s->hint = n;
}

void cb_scan_stream_skip(cb_scan_stream *s, uint64_t n) {
        if (!s->started)
                s->emitted = n;
}

void cb_scan_stream_free(cb_scan_stream *s) {
        if (!s)
                return;
        for (int i = 0; i < N_VIEWS; i++) {
                if (s->v[i].w)
                        sodium_memzero(s->v[i].w, s->v[i].hw + SLACK);
                free(s->v[i].w);
                free(s->v[i].esc);
                sodium_memzero(s->v[i].pb, sizeof(s->v[i].pb));
        }
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

/* Report a sighting (text offsets); in redact mode remember it until it can
 * be placed. */
static int found(cb_scan_stream *s, uint64_t start, uint64_t end, enum cb_scan_kind kind, uint32_t secret,
                 const char *token) {
        const secret_ref *sr = token ? NULL : &s->m->secrets[secret];
        char label[CB_SCAN_LABEL_MAX];
        const char *dflt = sr ? sr->name : "token";
        cb_scan_hit h = { start, end, kind, sr ? sr->name : NULL, sr ? sr->version : 0, token };
        int r;

        if (s->eager) {
                /* Tentative probes find a sighting again later. */
                if (end <= s->emitted)
                        return 0;
                for (size_t i = 0; i < s->n_pend; i++)
                        if (s->pend[i].start == start && s->pend[i].end == end)
                                return 0;
        }
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

/* A sighting [st, en) in view vi. */
static int found_in(cb_scan_stream *s, int vi, uint64_t st, uint64_t en, const mpat *p) {
        enum cb_scan_kind kind = (enum cb_scan_kind)p->kind;

        if (vi == V_RAW)
                return found(s, st, en, kind, p->secret, NULL);
        uint64_t ts = cb_view_map_start(&s->v[vi], vi, st), te = cb_view_map_end(&s->v[vi], vi, en);
        if (te - ts == en - st)
                return 0; /* no escape inside: the text view has it */
        if (kind == CB_SK_RAW)
                kind = vi == V_PCT ? CB_SK_URL : vi == V_JSON ? CB_SK_JSON : CB_SK_HTML;
        return found(s, ts, te, kind, p->secret, NULL);
}

/* Is the view's w[0..p->len) pattern p (in any case, for an icase one)? */
static bool pat_eq(const mpat *p, const unsigned char *w) {
        if (!p->icase)
                return memcmp(w, p->bytes, p->len) == 0;
        for (uint32_t i = 0; i < p->len; i++)
                if (cb_match_fold(w[i]) != cb_match_fold(p->bytes[i]))
                        return false;
        return true;
}

/* Verify the candidates of (folded) gram g at position j.  *incomplete (if set) is
 * raised when one reaches past end: more bytes may complete it. */
static __attribute__((noinline)) int check_grams(cb_scan_stream *s, int vi, uint32_t g, uint64_t j, uint64_t end,
                                                 bool *incomplete) {
        const cb_matcher *m = s->m;
        const view *v = &s->v[vi];
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
                        if (st + p->len > end && st >= v->base && incomplete)
                                *incomplete = true;
                        if (st < v->base || st + p->len > end || !pat_eq(p, v->w + (st - v->base)))
                                continue;
                        if (found_in(s, vi, st, st + p->len, p) < 0)
                                return s->error;
                }
                return 0;
        }
}

static __attribute__((noinline)) int check_token(cb_scan_stream *s, uint64_t u, uint64_t end, bool *incomplete) {
        const view *v = &s->v[V_RAW];

        if (u >= v->base + 3 && u - 3 + CB_TOKEN_LEN > end && incomplete)
                *incomplete = true;
        if (u < v->base + 3 || u - 3 + CB_TOKEN_LEN > end)
                return 0;
        const char *t = (const char *)v->w + (u - 3 - v->base);
        if (memcmp(t, CB_TOKEN_PREFIX, CB_TOKEN_PREFIX_LEN) != 0 || cb_token_check(t, CB_TOKEN_LEN) != 0)
                return 0;
        return found(s, u - 3, u - 3 + CB_TOKEN_LEN, CB_SK_TOKEN, 0, t) < 0 ? s->error : 0;
}

static uint64_t round_up(uint64_t x, unsigned stride) {
        return (x + stride - 1) / stride * stride;
}

/* The first escape of view v ending after view offset lo. */
static size_t esc_after(const view *v, uint64_t lo) {
        size_t a = 0, b = v->n_esc;

        while (a < b) {
                size_t mid = a + (b - a) / 2;
                if (v->esc[mid].d0 + v->esc[mid].nout <= lo)
                        a = mid + 1;
                else
                        b = mid;
        }
        return a;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Probe view vi at every sampled position in [*jp, limit); its data ends at
 * end.  Bytes past end in the window are stale or zero: a candidate
 * reaching past end is not verified, a token neither.  redo (tentative
 * probes): the first position such a candidate made worth probing again
 * when more bytes come, else *jp's final value.
 *
 * A decoding view skips the positions with no escape in reach: a probe at
 * j sees sightings within [j - back, j + maxlen), and one that covers no
 * escape is the text view's.  An escape can only land at end or later, so
 * a position whose reach passes end is skipped only as worth a redo. */
static int probe(cb_scan_stream *s, int vi, uint64_t *jp, uint64_t limit, uint64_t end, uint64_t *redo) {
        const cb_matcher *m = s->m;
        const uint64_t *bitmap = m->bitmap;
        const unsigned stride = m->stride, shift = m->bitmap_shift;
        const uint64_t mask = stride >= 8 ? ~0ull : (((uint64_t)1 << (8 * stride)) - 1);
        const unsigned char *w = s->v[vi].w - s->v[vi].base;
        const bool tokens = vi == V_RAW && (m->flags & CB_MATCH_TOKENS), sparse = vi != V_RAW;
        const view *v = &s->v[vi];
        const uint64_t back = (uint64_t)m->dmax + stride - 1, reach = m->maxlen;
        uint64_t j = *jp;
        bool again = false, *inc = redo ? &again : NULL;
        size_t ek = sparse ? esc_after(v, j > back ? j - back : 0) : 0;
        /* Positions before near_end are in reach of escape ek: no look. */
        uint64_t near_end = sparse ? 0 : UINT64_MAX;

        for (; j < limit; j += stride) {
                if (j >= near_end) {
                        while (ek < v->n_esc && v->esc[ek].d0 + v->esc[ek].nout <= (j > back ? j - back : 0))
                                ek++;
                        if (ek == v->n_esc || v->esc[ek].d0 >= j + reach) {
                                if (redo && j + reach > end) {
                                        *redo = j;
                                        redo = NULL, inc = NULL;
                                }
                                /* On to the first position escape ek is in reach of, no
                                 * further than limit, nor (tentatively) than the first
                                 * whose reach passes end. */
                                uint64_t nj = ek == v->n_esc          ? UINT64_MAX
                                              : v->esc[ek].d0 + 1 > reach ? round_up(v->esc[ek].d0 + 1 - reach, stride)
                                                                          : 0;
                                uint64_t cap = round_up(limit, stride);
                                if (redo && end + 1 > reach && round_up(end + 1 - reach, stride) < cap)
                                        cap = round_up(end + 1 - reach, stride);
                                if (nj > cap)
                                        nj = cap;
                                if (nj < j + stride)
                                        nj = j + stride;
                                j = nj - stride;
                                continue;
                        }
                        near_end = v->esc[ek].d0 + v->esc[ek].nout + back;
                }
                uint32_t g;
                memcpy(&g, w + j, 4);
                g = GRAM_FOLD(g);
                uint32_t h = H1(g, shift);
                if (__builtin_expect((bitmap[h >> 6] >> (h & 63)) & 1, 0) && check_grams(s, vi, g, j, end, inc) < 0)
                        return s->error;
                if (tokens) {
                        if (j + stride > end)
                                again = true; /* a '_' may still arrive in this probe's bytes */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                        uint64_t q;
                        memcpy(&q, w + j, 8);
                        uint64_t x = q ^ (ONES * '_');
                        uint64_t z = (x - ONES) & ~x & HIGHS & mask;
                        while (__builtin_expect(z != 0, 0)) {
                                unsigned k = (unsigned)__builtin_ctzll(z) / 8;
                                z &= z - 1;
                                if (w[j + k] == '_' && check_token(s, j + k, end, inc) < 0)
                                        return s->error;
                        }
#else
                        (void)mask;
                        for (unsigned k = 0; k < stride; k++)
                                if (w[j + k] == '_' && check_token(s, j + k, end, inc) < 0)
                                        return s->error;
#endif
                }
                if (again && redo) {
                        *redo = j;
                        redo = NULL, inc = NULL;
                }
        }
        if (redo)
                *redo = j;
        *jp = j;
        return 0;
}

/* By start, longest first, then by label: the marker of equal spans does
 * not depend on which view found them first. */
static int cmp_pend(const void *a, const void *b, void *ctx) {
        const cb_scan_stream *s = ctx;
        const pend *x = a, *y = b;
        if (x->start != y->start)
                return x->start < y->start ? -1 : 1;
        if (x->end != y->end)
                return x->end > y->end ? -1 : 1;
        return strcmp(x->label ? x->label : s->labels[x->label_ix], y->label ? y->label : s->labels[y->label_ix]);
}

/* Redact mode: every sighting starting before cs is known; write the output
 * for the text up to cs (and past it under a marker that runs on). */
static int place(cb_scan_stream *s, uint64_t cs) {
        const view *t = &s->v[V_RAW];
        size_t i, keep = 0;

        if (s->n_pend > 1)
                qsort_r(s->pend, s->n_pend, sizeof(*s->pend), cmp_pend, s);
        for (i = 0; i < s->n_pend; i++) {
                pend *p = &s->pend[i];
                if (p->start >= cs) {
                        s->pend[keep++] = *p;
                        continue;
                }
                if (p->start >= s->emitted) {
                        const char *label = p->label ? p->label : s->labels[p->label_ix];
                        size_t ll = strlen(label);
                        if (emit(s, t->w + (s->emitted - t->base), p->start - s->emitted) < 0 ||
                            (ll ? emit(s, "[REDACTED:", 10) < 0 || emit(s, label, ll) < 0 || emit(s, "]", 1) < 0
                                : emit(s, "[REDACTED]", 10) < 0))
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
                if (emit(s, t->w + (s->emitted - t->base), cs - s->emitted) < 0)
                        return s->error;
                s->emitted = cs;
        }
        return 0;
}

/* Every sighting starting before this text offset has been found in view
 * vi: one starting at st is found by the probe at st + d + o (d <= dmax,
 * o < stride). */
static uint64_t complete_before(const cb_scan_stream *s, int vi) {
        const view *v = &s->v[vi];
        uint64_t lag = (uint64_t)s->m->dmax + s->m->stride - 1;
        uint64_t d = v->next_j >= lag ? v->next_j - lag : 0;
        if (d < v->base)
                d = v->base;
        return cb_view_map_start(v, vi, d);
}

/* Eager: the first text offset that may still start a sighting in view vi
 * (a proper prefix of a pattern at the end of the view, or an escape not
 * yet decoded), after finding, tentatively, every sighting that lies
 * wholly in the view. */
static int eager_hold(cb_scan_stream *s, int vi, uint64_t *ret) {
        view *v = &s->v[vi];
        uint64_t end = v->base + v->len, j = v->next_j > v->tent ? v->next_j : v->tent, p;

        /* Positions probed tentatively before, with every candidate
         * settled, need no second look: start at the first that had one
         * still open (tent). */
        if (end >= GRAM && probe(s, vi, &j, end - GRAM + 1, end, &v->tent) < 0)
                return s->error;
        /* A proper prefix is shorter than the longest pattern (and there
         * is none without patterns).  A position before the last hold was
         * no prefix then, and more bytes cannot make it one: so a stream
         * fed a byte at a time looks each position up about once. */
        uint64_t back = s->m->maxlen ? s->m->maxlen - 1 : 0;
        p = end > back ? end - back : 0;
        /* A decoding view whose tail holds no escape, whole or pending, is
         * the text's tail: the text view holds what it must.  (hold stays:
         * an escape arriving later may make these positions prefixes.) */
        if (vi != V_RAW && !v->pn && esc_after(v, p) == v->n_esc) {
                *ret = cb_view_map_start(v, vi, end);
                return 0;
        }
        if (p < v->hold)
                p = v->hold;
        if (p < v->base)
                p = v->base;
        for (; p < end; p++)
                if (cb_matcher_is_prefix(s->m, v->w + (p - v->base), (size_t)(end - p)))
                        break;
        v->hold = p;
        *ret = cb_view_map_start(v, vi, p);
        return 0;
}

/* Probe what can be probed in view vi. */
int cb_view_advance(cb_scan_stream *s, int vi, bool final) {
        view *v = &s->v[vi];
        uint64_t end = v->base + v->len, limit;

        if (final) {
                memset(v->w + v->len, 0, SLACK);
                limit = end;
        } else {
                limit = end > s->tail ? end - s->tail : 0;
        }
        if (limit > v->next_j && probe(s, vi, &v->next_j, limit, end, NULL) < 0)
                return s->error;
        return 0;
}

/* Drop view bytes (and escapes) nothing will read again. */
void cb_view_compact(cb_scan_stream *s, int vi) {
        view *v = &s->v[vi];
        uint64_t back = 2 * STRIDE_MAX + s->m->dmax;
        uint64_t keep = v->next_j > back ? v->next_j - back : 0;

        if (vi == V_RAW && s->out && s->emitted < keep)
                keep = s->emitted;
        if (keep <= v->base)
                return;
        size_t drop = (size_t)(keep - v->base);
        if (drop > v->len)
                drop = v->len;
        memmove(v->w, v->w + drop, v->len - drop);
        sodium_memzero(v->w + v->len - drop, drop);
        v->len -= drop;
        v->base += drop;
        size_t k = 0;
        while (k < v->n_esc && v->esc[k].d0 + v->esc[k].nout <= v->base) {
                v->anchor_d = v->esc[k].d0 + v->esc[k].nout;
                v->anchor_s = v->esc[k].s0 + v->esc[k].nin;
                k++;
        }
        if (k) {
                memmove(v->esc, v->esc + k, (v->n_esc - k) * sizeof(*v->esc));
                v->n_esc -= k;
        }
}

/* Decode text bytes into view vi: runs without an escape's first byte are
 * copied as they are.  (Here, not in match_view.c: feed inlines it.) */
static int view_decode(cb_scan_stream *s, int vi, const unsigned char *in, size_t n) {
        view *v = &s->v[vi];
        const unsigned char intro = cb_view_intro[vi];

        for (size_t i = 0; i < n;) {
                if (v->pn == 0) {
                        const unsigned char *q = memchr(in + i, intro, n - i);
                        size_t k = q ? (size_t)(q - (in + i)) : n - i;
                        if (k > v->cap / 2)
                                k = v->cap / 2; /* a window takes it after a move */
                        if (k) {
                                v->s_in += k;
                                if (cb_view_put(s, vi, in + i, k, 0) < 0)
                                        return s->error;
                                i += k;
                                continue;
                        }
                        /* An escape whose end is in this piece: decided at
                         * once (the decoder gives the same answer for more
                         * bytes as for the fewest that decide it), not a
                         * byte at a time through pb. */
                        unsigned char o[4];
                        size_t on = 0;
                        unsigned avail = n - i < PEND_ESC ? (unsigned)(n - i) : PEND_ESC;
                        int st = cb_match_escape(cb_view_esc[vi], in + i, avail, false, o, &on);
                        if (st != 0) {
                                unsigned used = st > 0 ? (unsigned)st : 1;
                                v->s_in += used;
                                if (st > 0 ? cb_view_put(s, vi, o, on, used) < 0 : cb_view_put(s, vi, in + i, 1, 0) < 0)
                                        return s->error;
                                i += used;
                                continue;
                        }
                }
                if (cb_view_decode_byte(s, vi, in[i++]) < 0)
                        return s->error;
        }
        return 0;
}

/* Probe what can be probed everywhere; in redact mode place what can be
 * placed. */
static int advance(cb_scan_stream *s, bool final) {
        uint64_t cs = UINT64_MAX, h = 0;

        for (int vi = 0; vi < N_VIEWS; vi++) {
                if (final && vi != V_RAW && cb_view_settle(s, vi, true) < 0)
                        return s->error;
                if (cb_view_advance(s, vi, final) < 0)
                        return s->error;
        }
        if (!s->out)
                return 0;
        if (final)
                return place(s, s->v[V_RAW].base + s->v[V_RAW].len);
        for (int vi = 0; vi < N_VIEWS; vi++) {
                if (s->eager) {
                        if (eager_hold(s, vi, &h) < 0)
                                return s->error;
                } else {
                        h = complete_before(s, vi);
                }
                if (h < cs)
                        cs = h;
        }
        return place(s, cs);
}

int cb_scan_stream_feed(cb_scan_stream *s, const void *p, size_t n) {
        const unsigned char *in = p;
        view *t = &s->v[V_RAW];

        s->started = true;
        if (s->error || windows(s) < 0)
                return s->error;
        while (n) {
                if (t->len == t->cap) {
                        if (advance(s, false) < 0)
                                return s->error;
                        for (int vi = 0; vi < N_VIEWS; vi++)
                                cb_view_compact(s, vi);
                        if (t->len == t->cap)
                                return s->error = -EOVERFLOW; /* cannot happen: cap >= 4 * tail */
                }
                size_t k = t->cap - t->len < n ? t->cap - t->len : n;
                memcpy(t->w + t->len, in, k);
                t->len += k;
                if (t->len > t->hw)
                        t->hw = t->len;
                for (int vi = V_PCT; vi < N_VIEWS; vi++)
                        if (view_decode(s, vi, in, k) < 0)
                                return s->error;
                in += k;
                n -= k;
        }
        if (s->eager && advance(s, false) < 0)
                return s->error;
        return 0;
}

int cb_scan_stream_finish(cb_scan_stream *s) {
        s->started = true;
        if (s->error || windows(s) < 0)
                return s->error;
        return advance(s, true);
}

int cb_scan_stream_cut(cb_scan_stream *s, uint64_t *ret_consumed, uint64_t *ret_skip) {
        s->started = true;
        if (s->error || windows(s) < 0)
                return s->error;
        if (!s->out || s->eager)
                return -EINVAL;
        if (advance(s, false) < 0)
                return s->error;
        uint64_t cs = UINT64_MAX;
        for (int vi = 0; vi < N_VIEWS; vi++) {
                uint64_t h = complete_before(s, vi);
                if (h < cs)
                        cs = h;
        }
        *ret_consumed = cs;
        *ret_skip = s->emitted > cs ? s->emitted - cs : 0;
        return 0;
}
