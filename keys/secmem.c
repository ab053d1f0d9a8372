/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "secmem.h"

struct cb_secbuf {
        unsigned char *block; /* sodium_malloc'd, cap bytes (at least 1) */
        unsigned char *data;  /* block + cap - len: the data ends at the guard page */
        size_t len;
        size_t cap;
};

/* sodium_malloc needs sodium_init() first (it sizes guard pages from it);
 * do it here so no caller can forget. */
static int ensure_sodium(void) {
        static atomic_int ready;

        if (atomic_load(&ready))
                return 0;
        if (sodium_init() < 0)
                return -1;
        atomic_store(&ready, 1);
        return 0;
}

/* Small buffers come from per-size pools of sodium_malloc blocks that are
 * wiped and kept for reuse: each sodium_malloc/sodium_free is a dozen
 * system calls (mmap, mprotect, mlock, madvise, munmap) that also take the
 * process's memory-map lock for writing and shoot down TLBs on every CPU —
 * on a serving path that costs more than the work itself (measured: the
 * proxy at 1,100 requests/s, all threads queued on that lock).  A pooled
 * block keeps its guard pages and stays locked and out of core dumps, and
 * the data is placed at its end, so the guard page still follows the last
 * byte exactly (sodium_malloc ends a block at its guard page). */
#define POOL_CLASSES 4
#define POOL_DEPTH   64
static const size_t pool_size[POOL_CLASSES] = { 64, 256, 1024, 4096 };
static struct {
        pthread_mutex_t mu;
        unsigned char *free[POOL_DEPTH];
        size_t n;
} pool[POOL_CLASSES] = {
        { .mu = PTHREAD_MUTEX_INITIALIZER }, { .mu = PTHREAD_MUTEX_INITIALIZER },
        { .mu = PTHREAD_MUTEX_INITIALIZER }, { .mu = PTHREAD_MUTEX_INITIALIZER },
};

static int pool_class(size_t cap) {
        for (int i = 0; i < POOL_CLASSES; i++)
                if (cap <= pool_size[i])
                        return i;
        return -1;
}

cb_secbuf *cb_secbuf_new(size_t len) {
        cb_secbuf *s;
        size_t cap = len ? len : 1;
        int c = pool_class(cap);

        if (ensure_sodium() < 0)
                return NULL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        if (c >= 0) {
                cap = pool_size[c];
                pthread_mutex_lock(&pool[c].mu);
                if (pool[c].n)
                        s->block = pool[c].free[--pool[c].n]; /* wiped when it was returned */
                pthread_mutex_unlock(&pool[c].mu);
        }
        if (!s->block) {
                s->block = sodium_malloc(cap);
                if (!s->block) {
                        free(s);
                        return NULL;
                }
                sodium_memzero(s->block, cap);
        }
        s->len = len;
        s->cap = cap;
        s->data = s->block + cap - (len ? len : 1);
        return s;
}

cb_secbuf *cb_secbuf_dup(const void *p, size_t len) {
        cb_secbuf *s = cb_secbuf_new(len);

        if (s && len)
                memcpy(s->data, p, len);
        return s;
}

unsigned char *cb_secbuf_data(const cb_secbuf *s) {
        return s->data;
}

size_t cb_secbuf_len(const cb_secbuf *s) {
        return s->len;
}

void cb_secbuf_truncate(cb_secbuf *s, size_t len) {
        if (len >= s->len)
                return;
        sodium_memzero(s->data + len, s->len - len);
        s->len = len;
}

void cb_secbuf_free(cb_secbuf *s) {
        if (!s)
                return;
        int c = pool_class(s->cap);
        if (c >= 0 && s->cap == pool_size[c]) {
                sodium_memzero(s->block, s->cap);
                pthread_mutex_lock(&pool[c].mu);
                if (pool[c].n < POOL_DEPTH) {
                        pool[c].free[pool[c].n++] = s->block;
                        s->block = NULL;
                }
                pthread_mutex_unlock(&pool[c].mu);
        }
        if (s->block)
                sodium_free(s->block); /* wipes the whole allocation */
        free(s);
}

void cb_wipe(void *p, size_t n) {
        if (p && n)
                sodium_memzero(p, n);
}

int cb_memcmp_ct(const void *a, const void *b, size_t n) {
        return sodium_memcmp(a, b, n);
}
