/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A stream's layout, shared by match_stream.c (windows, probes, sightings,
 * placing markers, feeding the views) and match_view.c (the decoding
 * views: escapes decoded into a view, and a view's offsets mapped back to
 * the text).
 * Not an API: callers use match.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "match.h"
#include "match_internal.h"

enum { V_RAW, V_PCT, V_JSON, V_HTML, N_VIEWS };

/* The text expands at most this much into its decoding (an escape of
 * PEND_ESC bytes for one byte): view lookahead in text bytes. */
#define EXPAND PEND_ESC

typedef struct esc {
        uint64_t d0, s0;  /* first decoded byte; first text byte of the escape */
        uint32_t nout, nin;
} esc;

typedef struct view {
        unsigned char *w; /* bytes [base, base + len) of the view */
        size_t cap, len, hw; /* hw: the most it ever held (wiped at the end) */
        uint64_t base, next_j;
        uint64_t hold;    /* eager: where the last feed's held tail began */
        uint64_t tent;    /* eager: the first tentative probe position still open */
        /* decoding views */
        esc *esc;
        size_t n_esc, cap_esc;
        uint64_t anchor_d, anchor_s; /* before the first listed escape: text = anchor_s + (d - anchor_d) */
        uint64_t s_in;               /* text bytes read */
        unsigned char pb[PEND_ESC];  /* an escape not yet complete: text [s_in - pn, s_in) */
        unsigned pn;
} view;

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
        view v[N_VIEWS];  /* v[V_RAW].w is the text */
        size_t tail;      /* view lookahead a probe needs before it is final */
        uint64_t emitted;
        pend *pend;
        size_t n_pend, cap_pend;
        char (*labels)[CB_SCAN_LABEL_MAX];
        size_t n_labels, cap_labels;
        int error;
        bool started, eager, small; /* small: windows sized to the lookahead */
        uint64_t hint;    /* cb_scan_stream_size_hint: the input's expected length (0: unknown) */
};

/* match_view.c */
/* The text offset where view byte d starts (d may be one past the end). */
uint64_t cb_view_map_start(const view *v, int vi, uint64_t d);
/* The text offset where view bytes [.., d) end (d > 0). */
uint64_t cb_view_map_end(const view *v, int vi, uint64_t d);
/* Each decoding view: the byte its escapes start with, and their kind. */
extern const unsigned char cb_view_intro[N_VIEWS];
extern const int cb_view_esc[N_VIEWS];
/* Append decoded bytes; nin > 0: they are one escape of nin text bytes
 * ending at the decoder's position. */
int cb_view_put(cb_scan_stream *s, int vi, const unsigned char *p, size_t n, unsigned nin);
/* Decode one text byte into view vi (an escape's bytes wait in pb). */
int cb_view_decode_byte(cb_scan_stream *s, int vi, unsigned char c);
/* Settle the pending bytes of view vi (final: anything pending is not an
 * escape). */
int cb_view_settle(cb_scan_stream *s, int vi, bool final);

/* match_stream.c, for match_view.c */
/* Probe what can be probed in view vi. */
int cb_view_advance(cb_scan_stream *s, int vi, bool final);
/* Drop view bytes (and escapes) nothing will read again. */
void cb_view_compact(cb_scan_stream *s, int vi);
