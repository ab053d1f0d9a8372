/* SPDX-License-Identifier: Apache-2.0 */
/* The tombstone store (see tombstones.h). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <sodium.h>

#include "tombstones.h"

#define WAYS 4
#define PREFIX 15 /* bytes of the keyed hash kept: 120 bits, collisions never happen in practice */

/* 32 bytes: a set of four fills two cache lines. */
struct tomb {
        unsigned char h[PREFIX];
        uint8_t reason;
        unsigned char acc[CB_TOMBS_ACC_LEN];
        uint32_t at;                  /* unix seconds it was written; 0: empty */
};
_Static_assert(sizeof(struct tomb) == CB_TOMBS_RECORD_BYTES, "a record is 32 bytes");

struct cb_tombs {
        struct tomb *recs;            /* the mapping: n_sets * WAYS records */
        size_t bytes, page, n_sets, sets_per_page, n_pages;
        uint32_t *page_newest;        /* per page: the newest record's time; 0: nothing held */
        size_t pages_held;
        uint32_t linger;
        uint64_t evicted;
};

cb_tombs *cb_tombs_new(size_t bytes, uint32_t linger_s) {
        cb_tombs *s = calloc(1, sizeof(*s));
        long pg = sysconf(_SC_PAGESIZE);

        if (!s)
                return NULL;
        s->page = pg > 0 && (size_t)pg % (WAYS * sizeof(struct tomb)) == 0 ? (size_t)pg : 4096;
        if (!bytes)
                bytes = CB_TOMBS_BYTES_DEFAULT;
        if (bytes < CB_TOMBS_BYTES_MIN)
                bytes = CB_TOMBS_BYTES_MIN;
        if (bytes > CB_TOMBS_BYTES_MAX)
                bytes = CB_TOMBS_BYTES_MAX;
        bytes -= bytes % s->page;
        if (!bytes)
                bytes = s->page;
        s->bytes = bytes;
        s->n_pages = bytes / s->page;
        s->sets_per_page = s->page / (WAYS * sizeof(struct tomb));
        s->n_sets = s->n_pages * s->sets_per_page;
        s->linger = linger_s ? linger_s : CB_TOMBS_LINGER_DEFAULT;
        /* Not populated: a page costs memory only once a record lands in it. */
        s->recs = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        s->page_newest = calloc(s->n_pages, sizeof(*s->page_newest));
        if (s->recs == MAP_FAILED || !s->page_newest) {
                if (s->recs == MAP_FAILED)
                        s->recs = NULL;
                cb_tombs_free(s);
                return NULL;
        }
        return s;
}

void cb_tombs_free(cb_tombs *s) {
        if (!s)
                return;
        if (s->recs) {
                /* Only the pages that hold records: wiping the rest would fault them in. */
                for (size_t p = 0; p < s->n_pages; p++)
                        if (s->page_newest[p])
                                sodium_memzero((char *)s->recs + p * s->page, s->page);
                munmap(s->recs, s->bytes);
        }
        free(s->page_newest);
        free(s);
}

static size_t set_of(const cb_tombs *s, const unsigned char hash[CB_TOMBS_HASH_LEN]) {
        uint64_t v;

        memcpy(&v, hash + 16, sizeof(v)); /* keyed and uniform; bytes the prefix match does not need */
        return (size_t)(v % s->n_sets);
}

static bool fresh(const cb_tombs *s, const struct tomb *t, uint64_t now) {
        return t->at && (uint64_t)t->at + s->linger > now;
}

void cb_tombs_put(cb_tombs *s, const unsigned char hash[CB_TOMBS_HASH_LEN],
                  const unsigned char acc[CB_TOMBS_ACC_LEN], cb_tomb_reason reason, uint64_t now) {
        size_t set = set_of(s, hash), page = set / s->sets_per_page;
        struct tomb *w = s->recs + set * WAYS, *victim = NULL;

        for (int i = 0; i < WAYS && !victim; i++)
                if (fresh(s, &w[i], now) && memcmp(w[i].h, hash, PREFIX) == 0)
                        victim = &w[i]; /* this token's own (a second reason replaces the first) */
        for (int i = 0; i < WAYS && !victim; i++)
                if (!fresh(s, &w[i], now))
                        victim = &w[i]; /* free or outlived */
        if (!victim) {
                victim = &w[0];
                for (int i = 1; i < WAYS; i++)
                        if (w[i].at < victim->at)
                                victim = &w[i];
                s->evicted++;
        }
        memcpy(victim->h, hash, PREFIX);
        victim->reason = (uint8_t)reason;
        memcpy(victim->acc, acc, CB_TOMBS_ACC_LEN);
        victim->at = now ? (uint32_t)now : 1;
        if (!s->page_newest[page])
                s->pages_held++;
        s->page_newest[page] = victim->at;
}

cb_tomb_reason cb_tombs_get(const cb_tombs *s, const unsigned char hash[CB_TOMBS_HASH_LEN], uint64_t now,
                            unsigned char ret_acc[CB_TOMBS_ACC_LEN]) {
        size_t set = set_of(s, hash);
        const struct tomb *w = s->recs + set * WAYS;

        if (!s->page_newest[set / s->sets_per_page])
                return CB_TOMB_NONE; /* nothing held there: do not fault the page in */
        for (int i = 0; i < WAYS; i++)
                if (fresh(s, &w[i], now) && memcmp(w[i].h, hash, PREFIX) == 0) {
                        if (ret_acc)
                                memcpy(ret_acc, w[i].acc, CB_TOMBS_ACC_LEN);
                        return (cb_tomb_reason)w[i].reason;
                }
        return CB_TOMB_NONE;
}

size_t cb_tombs_sweep(cb_tombs *s, uint64_t now) {
        size_t freed = 0, run = 0;

        /* Every record of such a page has outlived linger: the kernel takes
         * the page back (it reads as zeros: empty records).  Neighbouring
         * pages go in one call. */
        for (size_t p = 0; p <= s->n_pages; p++) {
                bool done = p < s->n_pages && s->page_newest[p] && (uint64_t)s->page_newest[p] + s->linger <= now;

                if (done) {
                        run++;
                        continue;
                }
                if (run && madvise((char *)s->recs + (p - run) * s->page, run * s->page, MADV_DONTNEED) == 0) {
                        for (size_t q = p - run; q < p; q++)
                                s->page_newest[q] = 0;
                        s->pages_held -= run;
                        freed += run * s->page;
                }
                run = 0;
        }
        return freed;
}

size_t cb_tombs_bytes(const cb_tombs *s) {
        return s->bytes;
}

size_t cb_tombs_bytes_held(const cb_tombs *s) {
        return s->pages_held * s->page;
}

uint64_t cb_tombs_evicted(const cb_tombs *s) {
        return s->evicted;
}
