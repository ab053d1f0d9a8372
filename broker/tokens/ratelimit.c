/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"

#define KEY_MAX (64 + 12 + 1 + 128 + 1) /* client (with "#uid", api_tool.c) \n secret */

#define RL_OWN_MAX 512

struct rl_entry {
        char key[KEY_MAX]; /* "client\nsecret"; "" = free */
        uint64_t window_start;
        uint32_t window;   /* its length: an open window is never evicted */
        uint32_t count;
};

struct cb_ratelimit {
        pthread_mutex_t lock; /* the table's own: held for one take (memory only) */
        struct rl_entry *e;
        size_t n;
};

cb_ratelimit *cb_ratelimit_new(size_t max_entries) {
        cb_ratelimit *rl = calloc(1, sizeof(*rl));

        if (!rl)
                return NULL;
        pthread_mutex_init(&rl->lock, NULL);
        rl->n = max_entries ? max_entries : 4096;
        rl->e = calloc(rl->n, sizeof(*rl->e));
        if (!rl->e) {
                free(rl);
                return NULL;
        }
        return rl;
}

void cb_ratelimit_free(cb_ratelimit *rl) {
        if (!rl)
                return;
        pthread_mutex_destroy(&rl->lock);
        free(rl->e);
        free(rl);
}

static bool take_locked(cb_ratelimit *rl, const char *client, const char *secret, uint32_t n, uint32_t window,
                        uint64_t now, uint32_t *ret_retry_after);

bool cb_ratelimit_take(cb_ratelimit *rl, const char *client, const char *secret, uint32_t n, uint32_t window,
                       uint64_t now, uint32_t *ret_retry_after) {
        bool ok;

        if (n == 0 || window == 0)
                return true;
        pthread_mutex_lock(&rl->lock);
        ok = take_locked(rl, client, secret, n, window, now, ret_retry_after);
        pthread_mutex_unlock(&rl->lock);
        return ok;
}

static bool take_locked(cb_ratelimit *rl, const char *client, const char *secret, uint32_t n, uint32_t window,
                        uint64_t now, uint32_t *ret_retry_after) {
        char key[KEY_MAX];
        struct rl_entry *hit = NULL, *victim = NULL, *own = NULL;
        size_t plen = strlen(client) + 1; /* "client\n": the requester's own windows */
        size_t own_n = 0;                 /* ... how many it holds */

        if (n == 0 || window == 0)
                return true;
        snprintf(key, sizeof(key), "%s\n%s", client, secret);
        /* Linear scan: the table is small (grants x clients in use) and
         * issuing a token is not a tight loop. */
        for (size_t i = 0; i < rl->n; i++) {
                struct rl_entry *e = &rl->e[i];

                if (e->key[0] && strcmp(e->key, key) == 0) {
                        hit = e;
                        break;
                }
                /* Where a new key would go: a free slot, else a window
                 * that has closed -- never an open one: evicting it would
                 * reset its count, and whoever can make new keys could
                 * reset their own limit (fail closed: refused instead). */
                if (!e->key[0]) {
                        if (!victim || victim->key[0])
                                victim = e;
                } else if (now >= e->window_start + e->window &&
                           (!victim || (victim->key[0] && e->window_start < victim->window_start))) {
                        victim = e;
                } else if (strncmp(e->key, key, plen) == 0) {
                        own_n++;
                        if (!own || e->window_start < own->window_start)
                                own = e;
                }
        }
        if (!hit) {
                /* No requester holds more than RL_OWN_MAX open windows (an
                 * eighth of the default table): past that its own oldest
                 * makes room, so no one requester (a "*" grant over
                 * thousands of names) fills the table for the others. */
                if (own && own_n >= RL_OWN_MAX)
                        victim = own;
                /* Every slot holds an open window: the requester's own
                 * oldest makes room (it can only loosen its own limits,
                 * and only with more windows than the table holds, i.e.
                 * thousands of granted names that exist); never another
                 * requester's, whose limit would be reset. */
                if (!victim)
                        victim = own;
                if (!victim) {
                        if (ret_retry_after)
                                *ret_retry_after = 1;
                        return false;
                }
                hit = victim;
                snprintf(hit->key, sizeof(hit->key), "%s", key);
                hit->window_start = now;
                hit->count = 0;
        }
        hit->window = window;
        if (now >= hit->window_start + window) {
                hit->window_start = now;
                hit->count = 0;
        }
        if (hit->count >= n) {
                if (ret_retry_after)
                        *ret_retry_after = (uint32_t)(hit->window_start + window - now);
                return false;
        }
        hit->count++;
        return true;
}
