/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One encoding-aware matcher for every place a secret value must not pass:
 * the proxy's response redaction, `credbroker exec`'s output masking and
 * the leak scanner (/v1/scan, /v1/redact).  It knows a value's forms and
 * finds them in a stream, exactly, across chunk boundaries at any offset.
 * docs/redaction-forms.md lists what is covered and what is out of reach.
 *
 * Forms, two ways:
 *  - literal patterns per value (match_forms.c):
 *      raw         the bytes as stored
 *      base64      standard alphabet, at the three alignments a value can
 *                  take inside a longer base64 text (base64("user:" +
 *                  value) for ANY user among them): the characters that
 *                  depend on neighbouring bytes are dropped at both ends,
 *                  so padded and unpadded text both contain the pattern
 *      base64url   the same with the URL-safe alphabet
 *      basic       base64("USER:" + value) whole, for a known USER
 *                  (cb_matcher_builder_add_user: the proxy's basic:USER)
 *      hex         the digits (matched in any case, below)
 *      url         the value with ' ' as '+' (form encoding), if it has one
 *    raw, hex and url match whatever the case of their ASCII letters (a
 *    value upper- or lower-cased, hex with mixed-case digits); the base64
 *    forms match exactly (a case change alters what base64 decodes to)
 *  - decoding views of the text (match_stream.c, match_view.c): every
 *    pattern is also looked for in the text as it reads after
 *      percent-decoding  "%XX", either hex case, at any byte, with any
 *                        other byte left as it is: every mix of raw and
 *                        escaped bytes (quote(), quote(safe=''),
 *                        encodeURIComponent, urlencode, "%2f" or "%2F"...)
 *                        without enumerating spellings
 *      backslashes       JSON's \" \\ \/ \b \f \n \r \t and \uXXXX (either
 *                        hex case, surrogate pairs) to UTF-8, and C/Python/
 *                        JS's \' \v \a \xHH \NNN (octal, 3 digits) \u{X..}
 *                        \UXXXXXXXX, at any byte
 *      HTML references   &#DDD; &#xHH; &#XHH; (';' optional, at most 12
 *                        bytes) to UTF-8; &amp; &lt; &gt; &quot; &apos;
 *    so a base64 or hex form escaped in JSON, HTML or a URL is found too.
 * and "token": "cbt_" + 30 base62 + a 6-digit base62 CRC32 (keys/codec.h),
 * reported only when the checksum holds (CB_MATCH_TOKENS).
 *
 * Engine: a sampled q-gram filter.  Every pattern is at least L bytes long
 * (L >= 4); with 4-byte grams and a stride S = min(8, L - 3), any occurrence
 * covers exactly one text position that is a multiple of S at which one of
 * the pattern's first S grams starts.  So the text is probed only every S
 * bytes: a hashed bitmap (in L1/L2) rejects almost every probe, an exact
 * gram table lists the (pattern, offset) candidates for the rest, and each
 * candidate is verified by memcmp.  Tokens: at each probe the next S bytes
 * are tested for '_' (SWAR) and a hit is checked as "cbt_" + body + CRC.
 * The decoding views run the same probes over decoded copies of the text,
 * only near their escapes, and map what they find back to the text's
 * bytes.  Grams are indexed and probed ASCII-folded (one OR a probe), so
 * every view finds a pattern in any case; verification decides whether
 * the case had to match.
 *
 * Memory: the patterns ARE the secrets.  Everything derived from a value
 * (pattern bytes, grams, bitmap) lives in one sodium_malloc block, wiped
 * and freed by cb_matcher_free().  A cb_matcher is immutable once built and
 * may be shared by any number of streams on any threads.  A stream's
 * memory is bounded (fixed windows) whatever the input, and so is its work
 * per input byte.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Values shorter than this are not scanned by default (too many false
 * hits, and too short to sample): cb_matcher_builder_add() says so with
 * -EMSGSIZE.  CB_MATCH_SHORT lowers it to CB_MATCH_MIN_VALUE (the proxy and
 * exec: a short value is still masked raw and in its escapes). */
#define CB_SCAN_MIN_SECRET   8
#define CB_MATCH_MIN_VALUE   4
/* Encoded forms (base64, hex, ...) shorter than this are not kept: they
 * would hit unrelated text. */
#define CB_MATCH_MIN_FORM    8
#define CB_SCAN_MAX_SECRETS  100000          /* live versions in one matcher */
#define CB_SCAN_LABEL_MAX    160             /* "[REDACTED:" + label + "]" */

enum cb_scan_kind {
        CB_SK_RAW = 0,
        CB_SK_BASE64,
        CB_SK_BASE64URL,
        CB_SK_URL,
        CB_SK_JSON,
        CB_SK_HEX,
        CB_SK_HTML,
        CB_SK_TOKEN, /* last: the leak response lists the forms RAW..TOKEN */
};

/* "raw", "base64", "base64url", "url", "json", "hex", "html", "token".
 * A sighting in a decoding view is named after the view ("url", "json"
 * for any backslash escape, "html") when the pattern is the raw value. */
const char *cb_scan_kind_name(enum cb_scan_kind k);

typedef struct cb_matcher cb_matcher;
typedef struct cb_matcher_builder cb_matcher_builder;

#define CB_MATCH_TOKENS 1u /* also find tool tokens */
#define CB_MATCH_SHORT  2u /* accept values from CB_MATCH_MIN_VALUE bytes */

/* flags: CB_MATCH_*.  NULL on ENOMEM.  Free with cb_matcher_builder_free()
 * unless built. */
cb_matcher_builder *cb_matcher_builder_new(unsigned flags);
void cb_matcher_builder_free(cb_matcher_builder *b);

/* Add every encoded form of value[0..len) under name/version (name copied;
 * the value is encoded straight into secure memory, not kept otherwise).
 * -EMSGSIZE when len is below the minimum (nothing added), -E2BIG past
 * CB_SCAN_MAX_SECRETS, -ENOMEM.  An empty name makes the markers of its
 * sightings a bare "[REDACTED]". */
int cb_matcher_builder_add(cb_matcher_builder *b, const char *name, uint32_t version, const void *value,
                           size_t len);

/* The basic-auth form base64(user ":" value) whole (padded) for the value
 * just added (value[0..len) again: the builder keeps no copy), so its
 * first and last characters go too.  -EINVAL before any add, -ENOMEM. */
int cb_matcher_builder_add_user(cb_matcher_builder *b, const char *user, const void *value, size_t len);

/* Compile; consumes b (freed, success or not).  *ret to cb_matcher_free(). */
int cb_matcher_build(cb_matcher_builder *b, cb_matcher **ret);
/* One more holder of m (it is immutable: holders on any thread may scan
 * with it); each holder calls cb_matcher_free once, the last one frees
 * (and wipes) it. */
cb_matcher *cb_matcher_ref(cb_matcher *m);
void cb_matcher_free(cb_matcher *m);

size_t cb_matcher_n_patterns(const cb_matcher *m);
/* No sighting fits in fewer input bytes than this (SIZE_MAX: m finds
 * nothing): the shortest pattern, or a token's length with
 * CB_MATCH_TOKENS.  The decoding views never lengthen (every escape they
 * read is at least as long as the UTF-8 it stands for), so a shorter text
 * holds no sighting in any spelling. */
size_t cb_matcher_min_len(const cb_matcher *m);
size_t cb_matcher_n_secrets(const cb_matcher *m);
unsigned cb_matcher_stride(const cb_matcher *m);

/* Pattern i (i < cb_matcher_n_patterns()): for the unit tests and the fuzz
 * harness only (a naive reference needs the list); the daemon never calls
 * it and no route exposes it.  Pointers live as long as m. */
void cb_matcher_pattern(const cb_matcher *m, size_t i, const unsigned char **ret_bytes, size_t *ret_len,
                        enum cb_scan_kind *ret_kind, const char **ret_name);

/* One sighting: bytes [start, end) of the stream (offsets from its first
 * byte).  name/version: the secret (NULL/0 for a token). token: for a
 * token, its CB_TOKEN_LEN characters (valid during the callback only). */
typedef struct cb_scan_hit {
        uint64_t start, end;
        enum cb_scan_kind kind;
        const char *name;
        uint32_t version;
        const char *token;
} cb_scan_hit;

/* Called for every sighting (overlapping ones included), in roughly
 * ascending order of start.  label is prefilled with the name (or "token")
 * and may be rewritten (NUL-terminated, < CB_SCAN_LABEL_MAX) to change what
 * the redaction marker says.  A negative return stops the stream (the
 * feed/finish call returns it). */
typedef int (*cb_scan_hit_fn)(void *ctx, const cb_scan_hit *hit, char label[CB_SCAN_LABEL_MAX]);
/* Redacted output (NULL: scan only).  Negative return stops the stream. */
typedef int (*cb_scan_out_fn)(void *ctx, const void *p, size_t n);

typedef struct cb_scan_stream cb_scan_stream;

/* The first sighting of a scan, for a caller that asks only whether and
 * what (the leak guards): its secret's name ("" for a token) and form. */
typedef struct cb_scan_first {
        bool found;
        char name[129]; /* CB_NAME_MAX + 1 (store.h) */
        enum cb_scan_kind kind;
} cb_scan_first;
/* Scan p[0..n) over m, stopping at the first sighting, into *f (zeroed
 * first): 1 found, 0 none, -ENOMEM. */
int cb_scan_first_in(const cb_matcher *m, const void *p, size_t n, cb_scan_first *f);

/* A stream over m (which must outlive it).  Memory is bounded (a window of
 * a fixed size plus the pending sightings of one window) whatever the input
 * size.  With out set, output is the input with each sighting replaced by
 * "[REDACTED:label]" ("[REDACTED]" when the label is empty); overlapping
 * sightings are merged (the union is redacted, under the first one's
 * label; for equal spans of two values, the name first in byte order, or
 * in an eager stream the one found first). */
cb_scan_stream *cb_scan_stream_new(const cb_matcher *m, cb_scan_hit_fn hit, cb_scan_out_fn out, void *ctx);

/* Streaming for a reader who waits (SSE, a terminal): hold back only a
 * tail that may still become a sighting (a proper prefix of a form, in the
 * text or a decoded view, or an escape not yet complete) and write
 * everything before it at once.  Without it a redacting stream holds a
 * fixed lookahead until more input or finish.  Only before the first
 * feed; needs out. */
void cb_scan_stream_eager(cb_scan_stream *s);

/* The input will be about n bytes long (a request's Content-Length): the
 * windows are sized for it, not for the largest input.  Any length still
 * works (a longer input moves the windows).  Only before the first feed. */
void cb_scan_stream_size_hint(cb_scan_stream *s, uint64_t n);

/* Treat the first n bytes as already redacted (covered by a marker written
 * earlier): see cb_scan_stream_cut().  Only before the first feed. */
void cb_scan_stream_skip(cb_scan_stream *s, uint64_t n);

int cb_scan_stream_feed(cb_scan_stream *s, const void *p, size_t n);

/* End of input: report/redact everything left.  0 or a callback's error. */
int cb_scan_stream_finish(cb_scan_stream *s);

/* End of this piece of a longer input, for a caller that redacts in
 * separate rounds (the broker's /v1/redact): output covers the input up to
 * *ret_consumed; the caller passes the rest again, first, next round, with
 * cb_scan_stream_skip(*ret_skip) (bytes of it already under a marker).
 * Exact: the rounds' outputs concatenated equal one stream's output. */
int cb_scan_stream_cut(cb_scan_stream *s, uint64_t *ret_consumed, uint64_t *ret_skip);

/* Tests only: the smallest window a new stream gets (default 256 KiB; the
 * window is always at least 4x the longest pattern), to exercise window
 * moves on small inputs. */
extern size_t cb_scan_window_min;

/* Redact mode: sightings not yet placed, at most (in one window): beyond,
 * feed/finish fail with -E2BIG. */
#define CB_SCAN_PEND_MAX ((size_t)1 << 17)

/* Wipes the window (it holds input text) and frees; NULL ok. */
void cb_scan_stream_free(cb_scan_stream *s);

/* One-shot: s with every sighting replaced (as a redacting stream does), a
 * new NUL-terminated malloc'd string; *ret_hits (may be NULL) gets the
 * number of markers.  NULL on ENOMEM.  For headers and messages. */
char *cb_matcher_redact_string(const cb_matcher *m, const char *s, size_t *ret_hits);
