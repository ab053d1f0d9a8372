/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The matcher's layouts, shared by match_forms.c (the builder: every form
 * of each value), match_build.c (compiles the builder into a cb_matcher)
 * and match_stream.c + match_view.c (run it over text).  Not an API:
 * callers use match.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "match.h"

#define GRAM 4
#define STRIDE_MAX 8
#define OFF_BITS 8 /* an index entry is pattern << OFF_BITS | offset of the gram in the pattern */
#define OFF_MAX ((1u << OFF_BITS) - 1)
#define SLACK 16 /* zeroed bytes past the data: probes read up to 8 past a position */

/* One pattern: pool[off .. off + len) is the byte string, kind the form it
 * is in, secret the index into cb_matcher_builder.secrets of the value it
 * came from.  Invariant (match_forms.c keeps it, cb_matcher_build relies
 * on it for its stride): len >= GRAM. */
typedef struct pat {
        size_t off;      /* into the pool */
        uint32_t len;
        uint16_t kind;
        uint32_t secret; /* index into secrets */
} pat;

/* Who a pattern belongs to.  name is malloc'd and owned by whichever holds
 * the array: the builder, then (after cb_matcher_build) the matcher. */
typedef struct secret_ref {
        char *name;
        uint32_t version;
} secret_ref;

/* Made by cb_matcher_builder_new(), filled by cb_matcher_builder_add(),
 * consumed by cb_matcher_build() (which moves secrets out and frees the
 * rest with cb_matcher_builder_free()).  pool holds pattern bytes, i.e.
 * secret material: sodium_malloc'd, wiped when freed or grown. */
struct cb_matcher_builder {
        unsigned flags;      /* CB_MATCH_* */
        unsigned char *pool; /* sodium_malloc */
        size_t pool_len, pool_cap;
        pat *pats;
        size_t n_pats, cap_pats;
        secret_ref *secrets;
        size_t n_secrets, cap_secrets;
        bool failed;
};

typedef struct slot {
        uint32_t gram, first, count; /* count 0: empty */
} slot;

typedef struct mpat {
        const unsigned char *bytes;
        uint32_t len;
        uint16_t kind;
        bool icase; /* ASCII letters match in either case (cb_match_kind_icase) */
        uint32_t secret;
} mpat;

/* Compiled: immutable, shared by any number of streams. */
struct cb_matcher {
        unsigned flags;      /* CB_MATCH_* */
        unsigned refs;       /* cb_matcher_ref / cb_matcher_free (atomic) */
        struct cb_secbuf *blob_buf; /* sodium_malloc (secmem.h): holds blob */
        unsigned char *blob;        /* bitmaps, slots, entries, pats, lex, pool */
        size_t blob_len;
        const uint64_t *bitmap, *bitmap2; /* two hashes of each gram (a Bloom filter, k = 2, split) */
        unsigned bitmap_shift;            /* 32 - log2(bits) */
        const slot *slots;
        unsigned slot_shift;
        uint32_t slot_mask;
        const uint32_t *entries; /* pattern << OFF_BITS | offset */
        const mpat *pats;
        const uint32_t *lex;     /* pattern indexes in lexicographic order: prefix look-ups */
        uint64_t first[4];       /* the bytes patterns start with (a bit each) */
        size_t n_pats;
        secret_ref *secrets;
        size_t n_secrets;
        unsigned stride;
        unsigned dmax; /* largest window start: a sighting is found up to dmax + stride - 1 past its start */
        size_t maxlen;
        size_t minlen;  /* the shortest input a sighting needs (cb_matcher_min_len) */
};

/* The gram index is keyed by folded grams (bit 5 of every byte set: A-Z
 * become a-z, and a few non-letters share a key, which verification sorts
 * out), so a probe finds a pattern spelled in any case; whether the case
 * must also match is the pattern's (icase). */
#define GRAM_FOLD(g) ((g) | 0x20202020u)

static inline unsigned char cb_match_fold(unsigned char c) {
        return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

/* Which forms match whatever the case of their ASCII letters: the raw
 * value (upper- or lower-cased, or any mix), its hex (mixed-case digits)
 * and its '+' form.  Base64 forms do not: changing a base64 text's case
 * changes what it decodes to. */
static inline bool cb_match_kind_icase(unsigned kind) {
        return kind == CB_SK_RAW || kind == CB_SK_HEX || kind == CB_SK_URL;
}

#define H1(g, shift) ((uint32_t)((g) * 0x9E3779B1u) >> (shift))
#define H2(g, shift) ((uint32_t)((g) * 0x85EBCA6Bu) >> (shift))
#define H3(g, shift) ((uint32_t)(((g) ^ ((g) >> 15)) * 0xC2B2AE35u) >> (shift))

/* Is q[0..n) (n >= 1) a proper prefix of some pattern?  (Or, with
 * CB_MATCH_TOKENS, of a token?)  A stream holds such a tail back. */
bool cb_matcher_is_prefix(const cb_matcher *m, const unsigned char *q, size_t n);

/* The escapes a decoding view reads. */
#define CB_ESC_PERCENT   1
#define CB_ESC_BACKSLASH 2 /* JSON, C, Python, JS */
#define CB_ESC_HTML      3
/* The longest escape: "\uD83D\uDE00", or an HTML reference with leading
 * zeros ("&#0000000065" is read, one more '0' is not). */
#define PEND_ESC 12

/* Answers depend only on the bytes given, and the same for more bytes as
 * for the fewest that decide (so a stream may ask byte by byte, or at once
 * when a whole escape is in hand).
 * The first pn bytes pb[0..pn) (pn <= PEND_ESC) of a possible escape of
 * that kind; final: no byte follows them.  0: still an escape's beginning
 * (never when pn == PEND_ESC; when final, the caller reads it as not an
 * escape); k > 0: a complete escape of
 * its first k <= pn bytes, decoded into o[0..*on) (at most 4 bytes; the
 * rest are read again: an HTML reference ends at the byte after its
 * digits or name unless that is ';'); < 0: not an escape (its first byte
 * is a literal, the rest are read again). */
int cb_match_escape(int kind, const unsigned char *pb, unsigned pn, bool final, unsigned char o[4], size_t *on);

/* Windows sized to the lookahead, not 256 KiB: for a stream over one short
 * string (cb_matcher_redact_string).  Only before the first feed. */
void cb_scan_stream_small(cb_scan_stream *s);
