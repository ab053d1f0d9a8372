/* SPDX-License-Identifier: Apache-2.0 */
/* Heap blocks wiped before they are freed (see wipe_heap.h). */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "wipe_heap.h"

void cb_wipe_free(void *p) {
        if (!p)
                return;
        sodium_memzero(p, malloc_usable_size(p));
        free(p);
}

void *cb_wipe_realloc(void *p, size_t n) {
        size_t old;
        void *q;

        if (!p)
                return malloc(n);
        old = malloc_usable_size(p);
        if (n <= old && n > 0)
                return p; /* fits: the tail is wiped when the block is */
        q = malloc(n ? n : 1);
        if (!q)
                return NULL; /* p untouched, as realloc */
        memcpy(q, p, old < n ? old : n);
        cb_wipe_free(p);
        return q;
}

char *cb_wipe_strdup(const char *s) {
        size_t n = strlen(s) + 1;
        char *d = malloc(n);

        if (d)
                memcpy(d, s, n);
        return d;
}
