/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cb_matcher_redact_string (match.h): one string through a redacting
 * stream (match_stream.c) into a new string, for header lines and
 * messages.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "match.h"
#include "store.h" /* CB_NAME_MAX */
#include "match_internal.h"

typedef struct strbuf {
        char *p;
        size_t len, cap;
        size_t hits;
} strbuf;

static int strbuf_add(void *ctx, const void *p, size_t n) {
        strbuf *b = ctx;

        if (b->len + n + 1 > b->cap) {
                size_t nc = b->cap ? b->cap : 256;
                while (nc < b->len + n + 1)
                        nc *= 2;
                char *np = malloc(nc);
                if (!np)
                        return -ENOMEM;
                if (b->p) {
                        memcpy(np, b->p, b->len);
                        sodium_memzero(b->p, b->cap);
                        free(b->p);
                }
                b->p = np;
                b->cap = nc;
        }
        memcpy(b->p + b->len, p, n);
        b->len += n;
        return 0;
}

static int strbuf_hit(void *ctx, const cb_scan_hit *hit, char label[CB_SCAN_LABEL_MAX]) {
        (void)hit, (void)label;
        ((strbuf *)ctx)->hits++;
        return 0;
}

char *cb_matcher_redact_string(const cb_matcher *m, const char *str, size_t *ret_hits) {
        strbuf b = { 0 };
        size_t n = strlen(str);

        /* Too short to hold any sighting (most header lines): a copy, with
         * no stream set up, filled and wiped. */
        if (n < m->minlen) {
                char *c = malloc(n + 1);
                if (!c)
                        return NULL;
                memcpy(c, str, n + 1);
                if (ret_hits)
                        *ret_hits = 0;
                return c;
        }
        cb_scan_stream *s = cb_scan_stream_new(m, strbuf_hit, strbuf_add, &b);
        int r = s ? 0 : -ENOMEM;

        if (s)
                cb_scan_stream_small(s); /* a header line: no 256 KiB windows */
        if (r == 0)
                r = cb_scan_stream_feed(s, str, n);
        if (r == 0)
                r = cb_scan_stream_finish(s);
        if (r == 0)
                r = strbuf_add(&b, "", 1);
        cb_scan_stream_free(s);
        if (r < 0) {
                if (b.p) {
                        sodium_memzero(b.p, b.cap);
                        free(b.p);
                }
                return NULL;
        }
        if (ret_hits)
                *ret_hits = b.hits;
        return b.p;
}

_Static_assert(sizeof(((cb_scan_first *)0)->name) == CB_NAME_MAX + 1, "cb_scan_first.name holds a secret name");

static int first_hit(void *ctx, const cb_scan_hit *hit, char label[CB_SCAN_LABEL_MAX]) {
        cb_scan_first *f = ctx;

        (void)label;
        if (!f->found) {
                f->found = true;
                snprintf(f->name, sizeof(f->name), "%s", hit->name ? hit->name : "");
                f->kind = hit->kind;
        }
        return -ECANCELED; /* one is enough */
}

int cb_scan_first_in(const cb_matcher *m, const void *p, size_t n, cb_scan_first *f) {
        cb_scan_stream *st;

        memset(f, 0, sizeof(*f));
        if (!(st = cb_scan_stream_new(m, first_hit, NULL, f)))
                return -ENOMEM;
        (void)cb_scan_stream_feed(st, p, n);
        (void)cb_scan_stream_finish(st);
        cb_scan_stream_free(st);
        return f->found ? 1 : 0;
}
