/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A stream's decoding views (match_stream.c says what they are for): the
 * text percent-decoded (V_PCT), backslash-unescaped (V_JSON) and with
 * HTML/XML character references decoded (V_HTML), each with the list of
 * escapes it decoded, which maps a view offset back to the text.  The loop
 * that feeds a view a piece of text (view_decode) stays in match_stream.c
 * beside cb_scan_stream_feed, where it is inlined: as a call here it cost
 * ~25 instructions per view per feed (cachegrind, match-bench).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "match.h"
#include "match_internal.h"
#include "match_stream_internal.h"

/* Each decoding view: the byte its escapes start with, and their kind. */
const unsigned char cb_view_intro[N_VIEWS] = { 0, '%', '\\', '&' };
const int cb_view_esc[N_VIEWS] = { 0, CB_ESC_PERCENT, CB_ESC_BACKSLASH, CB_ESC_HTML };

/* ---- mapping a view back to the text -------------------------------------- */

/* The last listed escape starting at or before d, or NULL. */
static const esc *esc_at(const view *v, uint64_t d) {
        size_t lo = 0, hi = v->n_esc;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (v->esc[mid].d0 <= d)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo ? &v->esc[lo - 1] : NULL;
}

/* The text offset where view byte d starts (d may be one past the end). */
uint64_t cb_view_map_start(const view *v, int vi, uint64_t d) {
        if (vi == V_RAW)
                return d;
        const esc *e = esc_at(v, d);
        if (!e)
                return v->anchor_s + (d - v->anchor_d);
        if (d < e->d0 + e->nout)
                return e->s0;
        return e->s0 + e->nin + (d - e->d0 - e->nout);
}

/* The text offset where view bytes [.., d) end (d > 0). */
uint64_t cb_view_map_end(const view *v, int vi, uint64_t d) {
        if (vi == V_RAW)
                return d;
        const esc *e = esc_at(v, d - 1);
        if (e && d - 1 < e->d0 + e->nout)
                return e->s0 + e->nin;
        return cb_view_map_start(v, vi, d - 1) + 1;
}

/* ---- decoding text into a view ------------------------------------------- */

/* Make room for n more bytes in view vi. */
static int view_room(cb_scan_stream *s, int vi, size_t n) {
        view *v = &s->v[vi];

        if (v->len + n <= v->cap)
                return 0;
        if (cb_view_advance(s, vi, false) < 0)
                return s->error;
        cb_view_compact(s, vi);
        return v->len + n <= v->cap ? 0 : (s->error = -EOVERFLOW); /* cannot happen: cap >= 4 * tail */
}

/* Append decoded bytes; nin > 0: they are one escape of nin text bytes
 * ending at the decoder's position. */
int cb_view_put(cb_scan_stream *s, int vi, const unsigned char *p, size_t n, unsigned nin) {
        view *v = &s->v[vi];

        if (view_room(s, vi, n) < 0)
                return s->error;
        if (nin) {
                if (v->n_esc == v->cap_esc) {
                        size_t nc = v->cap_esc ? v->cap_esc * 2 : 64;
                        esc *ne = realloc(v->esc, nc * sizeof(*ne));
                        if (!ne)
                                return s->error = -ENOMEM;
                        v->esc = ne;
                        v->cap_esc = nc;
                }
                v->esc[v->n_esc++] = (esc){ v->base + v->len, v->s_in - nin, (uint32_t)n, nin };
        }
        memcpy(v->w + v->len, p, n);
        v->len += n;
        if (v->len > v->hw)
                v->hw = v->len;
        return 0;
}


/* Settle the pending bytes of view vi: an escape complete, still pending,
 * or not an escape (final: anything pending is not): then its first byte
 * is a literal and the rest are decoded again. */
int cb_view_settle(cb_scan_stream *s, int vi, bool final) {
        view *v = &s->v[vi];
        unsigned char o[4], rest[PEND_ESC];
        size_t on = 0;
        unsigned rn;

        if (!v->pn)
                return 0;
        int st = cb_match_escape(cb_view_esc[vi], v->pb, v->pn, final, o, &on);
        if (st == 0 && !final)
                return 0;
        /* An escape of its first st bytes, or a literal first byte; the
         * rest is read again. */
        unsigned used = st > 0 ? (unsigned)st : 1;
        rn = v->pn - used;
        memcpy(rest, v->pb + used, rn);
        v->pn = 0;
        v->s_in -= rn;
        if (st > 0 ? cb_view_put(s, vi, o, on, used) < 0 : cb_view_put(s, vi, v->pb, 1, 0) < 0)
                return s->error;
        for (unsigned k = 0; k < rn; k++)
                if (cb_view_decode_byte(s, vi, rest[k]) < 0)
                        return s->error;
        sodium_memzero(rest, sizeof(rest));
        return final ? cb_view_settle(s, vi, true) : 0;
}

int cb_view_decode_byte(cb_scan_stream *s, int vi, unsigned char c) {
        view *v = &s->v[vi];

        v->s_in++;
        if (v->pn == 0 && c != cb_view_intro[vi])
                return cb_view_put(s, vi, &c, 1, 0);
        v->pb[v->pn++] = c;
        return cb_view_settle(s, vi, false);
}
