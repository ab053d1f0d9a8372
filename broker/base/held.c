/* SPDX-License-Identifier: Apache-2.0 */
/* A budget of held request bodies, per uid and in all (held.h). */
#include <errno.h>

#include "held.h"

int cb_held_take(cb_held_budget *b, uid_t uid, uint64_t n) {
        size_t at = CB_HELD_UIDS, free_i = CB_HELD_UIDS;
        int r = 0;

        if (n == 0)
                return 0;
        pthread_mutex_lock(&b->mu);
        for (size_t i = 0; i < CB_HELD_UIDS; i++) {
                if (b->u[i].n && b->u[i].uid == uid)
                        at = i;
                else if (!b->u[i].n && free_i == CB_HELD_UIDS)
                        free_i = i;
        }
        uint64_t mine = at < CB_HELD_UIDS ? b->u[at].n : 0;
        if (n > b->cap || b->total > b->cap - n)
                r = -EBUSY;
        else if (n > b->cap / CB_HELD_UID_SHARE || mine > b->cap / CB_HELD_UID_SHARE - n)
                r = -EDQUOT;
        else if (at == CB_HELD_UIDS && free_i == CB_HELD_UIDS)
                r = -EBUSY;
        if (r == 0) {
                if (at == CB_HELD_UIDS) {
                        at = free_i;
                        b->u[at].uid = uid;
                }
                b->u[at].n += n;
                b->total += n;
        }
        pthread_mutex_unlock(&b->mu);
        return r;
}

void cb_held_give(cb_held_budget *b, uid_t uid, uint64_t n) {
        if (n == 0)
                return;
        pthread_mutex_lock(&b->mu);
        for (size_t i = 0; i < CB_HELD_UIDS; i++)
                if (b->u[i].n && b->u[i].uid == uid) {
                        uint64_t k = n < b->u[i].n ? n : b->u[i].n;
                        b->u[i].n -= k;
                        b->total -= k < b->total ? k : b->total;
                        break;
                }
        pthread_mutex_unlock(&b->mu);
}

uint64_t cb_held_now(cb_held_budget *b, uid_t uid, uint64_t *ret_uid) {
        uint64_t t, mine = 0;

        pthread_mutex_lock(&b->mu);
        t = b->total;
        for (size_t i = 0; i < CB_HELD_UIDS; i++)
                if (b->u[i].n && b->u[i].uid == uid)
                        mine = b->u[i].n;
        pthread_mutex_unlock(&b->mu);
        if (ret_uid)
                *ret_uid = mine;
        return t;
}
