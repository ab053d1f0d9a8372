/* SPDX-License-Identifier: Apache-2.0 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "secmem.h"

struct cb_secbuf {
        unsigned char *data; /* sodium_malloc'd, at least 1 byte */
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

cb_secbuf *cb_secbuf_new(size_t len) {
        cb_secbuf *s;

        if (ensure_sodium() < 0)
                return NULL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return NULL;
        s->data = sodium_malloc(len ? len : 1);
        if (!s->data) {
                free(s);
                return NULL;
        }
        sodium_memzero(s->data, len ? len : 1);
        s->len = len;
        s->cap = len ? len : 1;
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
        sodium_free(s->data); /* wipes the whole allocation */
        free(s);
}

void cb_wipe(void *p, size_t n) {
        if (p && n)
                sodium_memzero(p, n);
}

int cb_memcmp_ct(const void *a, const void *b, size_t n) {
        return sodium_memcmp(a, b, n);
}
