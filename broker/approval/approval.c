/* SPDX-License-Identifier: Apache-2.0 */
/* The approval gate's table of held token requests (see approval.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "approval.h"
#include "error.h"

struct cb_approvals {
        cb_approval **e; /* oldest first */
        size_t n, max_total, max_per_uid;
        uint32_t timeout;
};

cb_approvals *cb_approvals_new(size_t max_total, size_t max_per_uid, uint32_t timeout) {
        cb_approvals *a;

        if (timeout < 1 || timeout > CB_APPROVAL_TIMEOUT_MAX)
                return NULL;
        a = calloc(1, sizeof(*a));
        if (!a)
                return NULL;
        a->max_total = max_total ? max_total : CB_APPROVALS_MAX;
        a->max_per_uid = max_per_uid ? max_per_uid : CB_APPROVALS_PER_UID;
        a->timeout = timeout;
        a->e = calloc(a->max_total, sizeof(*a->e));
        if (!a->e) {
                free(a);
                return NULL;
        }
        return a;
}

static void entry_free(cb_approval *e) {
        if (!e)
                return;
        if (e->pidfd >= 0)
                close(e->pidfd);
        sodium_memzero(e, sizeof(*e));
        free(e);
}

/* Remove entry i, keeping the order. */
static void remove_at(cb_approvals *a, size_t i) {
        entry_free(a->e[i]);
        memmove(&a->e[i], &a->e[i + 1], (a->n - i - 1) * sizeof(*a->e));
        a->e[--a->n] = NULL;
}

void cb_approvals_free(cb_approvals *a) {
        if (!a)
                return;
        for (size_t i = 0; i < a->n; i++)
                entry_free(a->e[i]);
        free(a->e);
        free(a);
}

uint32_t cb_approvals_timeout(const cb_approvals *a) {
        return a->timeout;
}

/* Is the process behind pidfd running?  Its pidfd polls readable once it
 * has exited (zombie or reaped). */
/* A pidfd polls readable once its process exited.  EINTR (a signal landed
 * during the poll) says nothing about the process: ask again. */
static bool alive(int pidfd) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        int r;

        if (pidfd < 0)
                return false;
        do
                r = poll(&p, 1, 0);
        while (r < 0 && errno == EINTR);
        return r == 0;
}

static bool is_requester(const cb_approval *e, const cb_peer *peer) {
        return e->uid == peer->uid && e->pid == peer->pid &&
               sodium_memcmp(e->exe_sha256, peer->exe_sha256, sizeof(e->exe_sha256)) == 0 && alive(e->pidfd);
}

int cb_approvals_add(cb_approvals *a, const cb_peer *peer, const char *client, const char *secret, unsigned use,
                     uint32_t ttl, int bind, uint64_t now, const cb_approval **ret) {
        unsigned char rnd[CB_APPROVAL_ID_LEN / 2];
        size_t per_uid = 0;
        cb_approval *e;

        if (!peer->pidfd_pinned || peer->pidfd < 0)
                return cb_error_set(-EOPNOTSUPP, "approval needs the requesting process pinned (SO_PEERPIDFD, "
                                                 "Linux 6.5 or later)");
        if (strlen(client) >= sizeof(e->client) || strlen(secret) >= sizeof(e->secret))
                return cb_error_set(-EINVAL, "client or secret name too long");
        for (size_t i = 0; i < a->n; i++) {
                e = a->e[i];
                if (e->uid != peer->uid)
                        continue;
                if (e->state == CB_APPROVAL_PENDING && is_requester(e, peer) && e->use == use && e->ttl == ttl &&
                    e->bind == bind && strcmp(e->secret, secret) == 0 && strcmp(e->client, client) == 0) {
                        *ret = e;
                        return 1;
                }
                per_uid++;
        }
        if (per_uid >= a->max_per_uid)
                return cb_error_set(-ENOSPC, "uid %u already has %zu approval requests held (the maximum)",
                                    (unsigned)peer->uid, per_uid);
        if (a->n >= a->max_total)
                return cb_error_set(-ENOSPC, "the broker holds the maximum of %zu approval requests", a->max_total);
        e = calloc(1, sizeof(*e));
        if (!e)
                return cb_error_set(-ENOMEM, "out of memory");
        e->pidfd = fcntl(peer->pidfd, F_DUPFD_CLOEXEC, 3);
        if (e->pidfd < 0) {
                free(e);
                return cb_error_set(-ESRCH, "cannot pin the requesting process: %s", strerror(errno));
        }
        randombytes_buf(rnd, sizeof(rnd));
        sodium_bin2hex(e->id, sizeof(e->id), rnd, sizeof(rnd));
        e->state = CB_APPROVAL_PENDING;
        e->uid = peer->uid;
        e->gid = peer->gid;
        e->pid = peer->pid;
        snprintf(e->exe_path, sizeof(e->exe_path), "%s", peer->exe_path);
        memcpy(e->exe_sha256, peer->exe_sha256, sizeof(e->exe_sha256));
        snprintf(e->exe_sha256_hex, sizeof(e->exe_sha256_hex), "%s", peer->exe_sha256_hex);
        snprintf(e->client, sizeof(e->client), "%s", client);
        snprintf(e->secret, sizeof(e->secret), "%s", secret);
        e->use = use;
        e->ttl = ttl;
        e->bind = bind;
        e->created = now;
        e->deadline = now + a->timeout;
        e->by_uid = (uid_t)-1;
        a->e[a->n++] = e;
        *ret = e;
        return 0;
}

/* A full ID: exactly CB_APPROVAL_ID_LEN lower-case hex digits. */
static bool id_full(const char *id) {
        size_t n = strnlen(id, CB_APPROVAL_ID_LEN + 1);

        if (n != CB_APPROVAL_ID_LEN)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
                        return false;
        return true;
}

static ssize_t index_of(const cb_approvals *a, const char *id) {
        if (!id_full(id))
                return -1;
        for (size_t i = 0; i < a->n; i++)
                if (sodium_memcmp(a->e[i]->id, id, CB_APPROVAL_ID_LEN) == 0)
                        return (ssize_t)i;
        return -1;
}

int cb_approvals_lookup(cb_approvals *a, const char *id, const cb_approval **ret) {
        char low[CB_APPROVAL_ID_LEN + 1];
        size_t n = strnlen(id, CB_APPROVAL_ID_LEN + 1);
        const cb_approval *found = NULL;

        if (n < CB_APPROVAL_ID_SHORT || n > CB_APPROVAL_ID_LEN)
                return cb_error_set(-EINVAL, "an approval ID is %d to %d hex digits", CB_APPROVAL_ID_SHORT,
                                    CB_APPROVAL_ID_LEN);
        for (size_t i = 0; i < n; i++) {
                char c = id[i];
                if (c >= 'A' && c <= 'F')
                        c = (char)(c - 'A' + 'a');
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                        return cb_error_set(-EINVAL, "an approval ID is %d to %d hex digits", CB_APPROVAL_ID_SHORT,
                                            CB_APPROVAL_ID_LEN);
                low[i] = c;
        }
        low[n] = 0;
        for (size_t i = 0; i < a->n; i++) {
                if (memcmp(a->e[i]->id, low, n) != 0)
                        continue;
                if (found)
                        return cb_error_set(-ENOTUNIQ, "approval ID prefix %s names several requests: give more "
                                                       "digits", low);
                found = a->e[i];
        }
        if (!found)
                return cb_error_set(-ENOENT, "no approval request %s", low);
        *ret = found;
        return 0;
}

int cb_approvals_check_decide(cb_approvals *a, const char *id, bool approve, const cb_peer *by) {
        ssize_t i = index_of(a, id);
        cb_approval *e;

        if (i < 0)
                return cb_error_set(-ENOENT, "no approval request %.32s", id);
        e = a->e[i];
        if (e->state != CB_APPROVAL_PENDING)
                return cb_error_set(-EALREADY, "approval request %s was %s already", e->id,
                                    cb_approval_state_name(e->state));
        if (!alive(e->pidfd))
                return cb_error_set(-ESRCH, "the requesting process (pid %d) exited: nothing to decide",
                                    (int)e->pid);
        if (approve && by->uid == e->uid)
                return cb_error_set(-EPERM, "uid %u cannot approve its own request (another admin uid must)",
                                    (unsigned)by->uid);
        return 0;
}

int cb_approvals_decide(cb_approvals *a, const char *id, bool approve, const cb_peer *by, uint64_t now) {
        int r = cb_approvals_check_decide(a, id, approve, by);
        cb_approval *e;

        if (r < 0)
                return r;
        e = a->e[index_of(a, id)];
        e->state = approve ? CB_APPROVAL_APPROVED : CB_APPROVAL_DENIED;
        e->decided = now;
        e->deadline = now + CB_APPROVAL_KEEP;
        e->by_uid = by->uid;
        e->by_pid = by->pid;
        snprintf(e->by_exe, sizeof(e->by_exe), "%s", by->exe_path);
        return 0;
}

void cb_approvals_drop(cb_approvals *a, const char *id) {
        ssize_t i = index_of(a, id);

        if (i >= 0)
                remove_at(a, (size_t)i);
}

int cb_approvals_collect(cb_approvals *a, const char *id, const cb_peer *peer, uint64_t now, cb_approval *ret_copy) {
        ssize_t i = index_of(a, id);
        cb_approval *e;

        (void)now;
        if (i < 0 || !is_requester(a->e[i], peer))
                return cb_error_set(-ENOENT, "no approval request %.32s held for this process", id);
        e = a->e[i];
        *ret_copy = *e;
        ret_copy->pidfd = -1;
        if (e->state != CB_APPROVAL_PENDING)
                remove_at(a, (size_t)i);
        return 0;
}

size_t cb_approvals_sweep(cb_approvals *a, uint64_t now, void (*event)(const cb_approval *e, const char *what, void *ud),
                          void *ud) {
        size_t events = 0, i = 0;

        while (i < a->n) {
                cb_approval *e = a->e[i];
                const char *what = NULL;
                bool drop = false;

                if (!alive(e->pidfd)) {
                        what = e->state == CB_APPROVAL_PENDING || e->state == CB_APPROVAL_APPROVED ? "abandoned" : NULL;
                        drop = true;
                } else if (e->state == CB_APPROVAL_PENDING && now > e->deadline) {
                        /* Strictly after: with whole seconds, >= could deny up to 1 s before
                         * the full timeout had passed. */
                        what = "timeout";
                } else if (e->state != CB_APPROVAL_PENDING && now >= e->deadline) {
                        what = e->state == CB_APPROVAL_APPROVED ? "uncollected" : NULL;
                        drop = true;
                }
                if (what) {
                        if (event)
                                event(e, what, ud);
                        events++;
                }
                if (drop) {
                        remove_at(a, i);
                        continue;
                }
                if (what) { /* a timeout */
                        e->state = CB_APPROVAL_EXPIRED;
                        e->decided = now;
                        e->deadline = now + CB_APPROVAL_KEEP;
                }
                i++;
        }
        return events;
}

size_t cb_approvals_count(const cb_approvals *a) {
        return a->n;
}

const cb_approval *cb_approvals_at(const cb_approvals *a, size_t i) {
        return i < a->n ? a->e[i] : NULL;
}

const char *cb_approval_state_name(cb_approval_state s) {
        switch (s) {
        case CB_APPROVAL_PENDING: return "pending";
        case CB_APPROVAL_APPROVED: return "approved";
        case CB_APPROVAL_DENIED: return "denied";
        case CB_APPROVAL_EXPIRED: return "expired";
        }
        return "?";
}
