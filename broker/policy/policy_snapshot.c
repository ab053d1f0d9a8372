/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy in force as an immutable, reference-counted snapshot
 * (policy.h).  The slot's mutex is held for a pointer load plus a
 * reference increment (readers) or a pointer swap (a reload): a few
 * instructions, never the parse (done before cb_policy_publish, with no
 * lock) and never the free of the old policy (done after, by whoever
 * drops its last reference).  Taking a reference under the mutex is what
 * makes the load safe: without it, a reader could load the old pointer,
 * the reload swap it and drop its last reference, and the reader then
 * increment a freed count.
 */
#include <pthread.h>
#include <stdlib.h>

#include "policy.h"
#include "policy_internal.h"

struct cb_policy_slot {
        pthread_mutex_t lock;
        cb_policy *cur;
};

cb_policy_slot *cb_policy_slot_new(cb_policy *p) {
        cb_policy_slot *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        pthread_mutex_init(&s->lock, NULL);
        s->cur = p;
        return s;
}

void cb_policy_slot_free(cb_policy_slot *s) {
        if (!s)
                return;
        cb_policy_unref(s->cur);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

const cb_policy *cb_policy_ref(const cb_policy *p) {
        if (p)
                __atomic_add_fetch(&((cb_policy *)p)->refs, 1, __ATOMIC_RELAXED);
        return p;
}

void cb_policy_unref(const cb_policy *p) {
        if (p && __atomic_sub_fetch(&((cb_policy *)p)->refs, 1, __ATOMIC_ACQ_REL) == 0)
                cb_policy_free((cb_policy *)p);
}

const cb_policy *cb_policy_acquire(cb_policy_slot *s) {
        const cb_policy *p;

        pthread_mutex_lock(&s->lock);
        p = cb_policy_ref(s->cur);
        pthread_mutex_unlock(&s->lock);
        return p;
}

void cb_policy_publish(cb_policy_slot *s, cb_policy *p) {
        cb_policy *old;

        pthread_mutex_lock(&s->lock);
        old = s->cur;
        s->cur = p;
        pthread_mutex_unlock(&s->lock);
        cb_policy_unref(old);
}
