/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A streaming multi-value masker: `credbroker exec` pipes the child's output
 * through one per stream so a secret value never reaches the terminal, a log
 * or a model verbatim.
 *
 * Semantics (exactly those of a one-shot pass over the whole stream,
 * whatever the chunking):
 *   - an occurrence is any position where a needle's bytes appear; overlapping
 *     and adjacent occurrences all count;
 *   - every byte covered by any occurrence is hidden;
 *   - one marker "[REDACTED:LABEL]" is written for each *maximal* occurrence:
 *     the longest needle starting at that position, unless it lies wholly
 *     inside an occurrence that starts earlier.  So "abcdef" with needles
 *     "abc" (A) and "abcdef" (B) gives "[REDACTED:B]"; "SS" with needle "S"
 *     gives two markers; needle "abab" in "ababab" gives two markers and hides
 *     all six bytes (a leftmost non-overlapping replace would leave "ab").
 *
 * Between calls the masker holds back at most (longest needle - 1) bytes,
 * and only while they are a proper prefix of some needle: output that cannot
 * start a value is written at once (interactive prompts are not delayed).
 *
 * Values of 1-3 bytes are masked like any other, which hides every
 * occurrence of those bytes in unrelated text too (false positives): that is
 * the price of never printing the value.
 *
 * Needles and the internal buffer (which holds raw output, possibly values)
 * live in sodium_malloc memory and are wiped by mask_free.
 */
#pragma once

#include <stddef.h>

typedef struct mask mask;

/* Output sink: write p[0..n); return 0, or a negative errno to stop (the
 * error is returned by mask_feed/mask_finish). */
typedef int (*mask_write_fn)(void *userdata, const void *p, size_t n);

#define MASK_NEEDLES_MAX  64
#define MASK_NEEDLE_MAX   (64 * 1024)
#define MASK_LABEL_MAX    128

/* An empty masker; -ENOMEM.  Free with mask_free. */
int mask_new(mask **ret);

/* Wipe and free; NULL ok. */
void mask_free(mask *m);

/* Add a needle (copied into secure memory) and its label (copied; printable
 * text, no ']').  Only before the first mask_feed.  -EINVAL (empty needle,
 * bad label, after feeding), -E2BIG (too many / too long), -ENOMEM.
 * Adding the same bytes twice keeps the first label. */
int mask_add(mask *m, const void *needle, size_t len, const char *label);

/* Feed len bytes of the stream; write every byte that is decided. */
int mask_feed(mask *m, const void *in, size_t len, mask_write_fn out, void *userdata);

/* End of stream: decide and write what is held back.  The masker is then
 * ready for a new stream (same needles). */
int mask_finish(mask *m, mask_write_fn out, void *userdata);

/* Bytes currently held back (for tests: never more than longest - 1). */
size_t mask_pending(const mask *m);

/* Length of the longest needle (0 if none). */
size_t mask_longest(const mask *m);
