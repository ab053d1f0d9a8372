/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streaming masker (see mask.h for the exact semantics).
 *
 * The state between chunks is the held-back tail (a proper prefix of some
 * needle) and `covered`: how many bytes from the first held-back byte on
 * are inside an occurrence already found.  A position is decided once every
 * needle that starts with its byte either matched completely or mismatched
 * within the bytes we have; the longest complete match at a position is
 * known then, because an undecided needle would be longer than any
 * complete one.  Needle counts are small (one per secret an exec uses), so
 * a first-byte table and memcmp beat anything cleverer here.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "mask.h"

#define MASK_CHUNK (16 * 1024)

struct needle {
        unsigned char *p; /* sodium_malloc */
        size_t len;
        char *marker;     /* "[REDACTED:label]" */
        size_t marker_len;
};

struct mask {
        struct needle n[MASK_NEEDLES_MAX];
        size_t nn;
        size_t longest;
        uint8_t first[256]; /* how many needles start with this byte */
        unsigned char *buf; /* sodium_malloc; allocated at the first feed */
        size_t cap, len;    /* held-back bytes are buf[0..len) */
        size_t covered;     /* bytes from buf[0] on that lie in an occurrence */
};

int mask_new(mask **ret) {
        mask *m;

        if (sodium_init() < 0)
                return -ENOMEM;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        *ret = m;
        return 0;
}

void mask_free(mask *m) {
        if (!m)
                return;
        for (size_t i = 0; i < m->nn; i++) {
                sodium_free(m->n[i].p);
                free(m->n[i].marker);
        }
        sodium_free(m->buf); /* wipes */
        sodium_memzero(m, sizeof(*m));
        free(m);
}

static bool label_ok(const char *label) {
        size_t n = label ? strlen(label) : 0;

        if (n == 0 || n > MASK_LABEL_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (label[i] < 0x20 || label[i] > 0x7e || label[i] == ']')
                        return false;
        return true;
}

int mask_add(mask *m, const void *needle, size_t len, const char *label) {
        struct needle *nd;
        int k;

        if (!m || !needle || len == 0 || !label_ok(label) || m->buf)
                return -EINVAL;
        if (len > MASK_NEEDLE_MAX)
                return -E2BIG;
        for (size_t i = 0; i < m->nn; i++)
                if (m->n[i].len == len && sodium_memcmp(m->n[i].p, needle, len) == 0)
                        return 0;
        if (m->nn >= MASK_NEEDLES_MAX)
                return -E2BIG;
        nd = &m->n[m->nn];
        nd->p = sodium_malloc(len);
        if (!nd->p)
                return -ENOMEM;
        k = asprintf(&nd->marker, "[REDACTED:%s]", label);
        if (k < 0) {
                sodium_free(nd->p);
                nd->p = NULL;
                nd->marker = NULL;
                return -ENOMEM;
        }
        memcpy(nd->p, needle, len);
        nd->len = len;
        nd->marker_len = (size_t)k;
        m->first[nd->p[0]]++;
        if (len > m->longest)
                m->longest = len;
        m->nn++;
        return 0;
}

size_t mask_pending(const mask *m) {
        return m ? m->len : 0;
}

size_t mask_longest(const mask *m) {
        return m ? m->longest : 0;
}

/* Length of the common prefix of a and b, at most n.  Most candidates
 * differ within a byte or two: a plain loop beats memcmp's set-up here. */
static size_t common_prefix(const unsigned char *a, const unsigned char *b, size_t n) {
        size_t i = 0;

        while (i < n && a[i] == b[i])
                i++;
        return i;
}

/* The longest needle matching at buf[p..], or -1 if none; -2 if undecided
 * (a needle could still match once more bytes arrive; never when final). */
static int match_at(const mask *m, size_t p, bool final) {
        const unsigned char *s = m->buf + p;
        size_t avail = m->len - p, best_len = 0;
        int best = -1;

        for (size_t i = 0; i < m->nn; i++) {
                const struct needle *nd = &m->n[i];
                size_t k = nd->len <= avail ? nd->len : avail;

                if (nd->p[0] != s[0] || common_prefix(s, nd->p, k) != k)
                        continue;
                if (nd->len > avail) {
                        if (!final)
                                return -2;
                } else if (nd->len > best_len) {
                        best = (int)i;
                        best_len = nd->len;
                }
        }
        return best;
}

/* Decide as many positions of buf[0..len) as possible, write them, keep the
 * rest at the front of buf. */
static int process(mask *m, bool final, mask_write_fn out, void *userdata) {
        size_t p = 0, raw = 0; /* buf[raw..p) is decided, uncovered, not yet written */
        int r;

        while (p < m->len) {
                if (!m->covered) {
                        /* Fast path: bytes no needle starts with. */
                        while (p < m->len && !m->first[m->buf[p]])
                                p++;
                        if (p == m->len)
                                break;
                }
                if (m->first[m->buf[p]]) {
                        int i = match_at(m, p, final);

                        if (i == -2)
                                break;
                        if (i >= 0 && m->n[i].len > m->covered) {
                                /* A maximal occurrence starts here. */
                                if (raw < p && (r = out(userdata, m->buf + raw, p - raw)) < 0)
                                        return r;
                                if ((r = out(userdata, m->n[i].marker, m->n[i].marker_len)) < 0)
                                        return r;
                                m->covered = m->n[i].len;
                                raw = p;
                        }
                }
                if (m->covered) {
                        if (raw < p && (r = out(userdata, m->buf + raw, p - raw)) < 0)
                                return r;
                        m->covered--;
                        raw = p + 1;
                }
                p++;
        }
        if (raw < p && (r = out(userdata, m->buf + raw, p - raw)) < 0)
                return r;
        /* Only a proper prefix of a needle is held back, so this moves fewer
         * than `longest` bytes. */
        if (p < m->len)
                memmove(m->buf, m->buf + p, m->len - p);
        sodium_memzero(m->buf + (m->len - p), p);
        m->len -= p;
        return 0;
}

int mask_feed(mask *m, const void *in, size_t len, mask_write_fn out, void *userdata) {
        const unsigned char *s = in;
        int r;

        if (!m || (!in && len) || !out)
                return -EINVAL;
        if (m->nn == 0)
                return len ? out(userdata, in, len) : 0;
        if (!m->buf) {
                m->cap = m->longest - 1 + MASK_CHUNK;
                m->buf = sodium_malloc(m->cap);
                if (!m->buf)
                        return -ENOMEM;
        }
        while (len) {
                size_t k = m->cap - m->len;

                if (k > len)
                        k = len;
                memcpy(m->buf + m->len, s, k);
                m->len += k;
                s += k;
                len -= k;
                r = process(m, false, out, userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}

int mask_finish(mask *m, mask_write_fn out, void *userdata) {
        int r;

        if (!m || !out)
                return -EINVAL;
        if (!m->buf || m->len == 0)
                return 0;
        r = process(m, true, out, userdata);
        m->covered = 0;
        return r;
}
