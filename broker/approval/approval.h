/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The approval gate's table of held token requests (issue 6 item 5).  A
 * grant with "approval": true does not mint a token at once: the request is
 * held here, under a random ID, until an operator approves or denies it on
 * admin.sock, or until it times out (which denies).  The requester then
 * collects the result — the token is minted at collection, for the
 * collecting peer, like any token.
 *
 * A held request is pinned to the requesting process: its uid, executable
 * hash, pid and a pidfd (SO_PEERPIDFD) the table holds.  Only that process
 * may poll or collect it: a presenter counts as the requester when uid,
 * executable hash and pid match and the requester's pidfd shows it still
 * running (the argument of tokens.h: two live processes never share a pid,
 * and a newcomer with a recycled pid exists only once the requester has
 * exited).  A requester that exits abandons its request.
 *
 * Pure data structure: no HTTP, no audit, no clock of its own (callers pass
 * `now`, seconds on a monotonic clock).  Not thread safe (api_approval.c
 * holds its own tab_lock around every call).
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "peer.h"
#include "store.h"

#define CB_APPROVAL_ID_LEN 32               /* 16 random bytes, lower-case hex */
#define CB_APPROVAL_ID_SHORT 8              /* the shortest prefix an operator may type */
#define CB_APPROVALS_MAX 256                /* held requests in all (each holds a pidfd) */
#define CB_APPROVALS_PER_UID 8              /* held by one uid */
#define CB_APPROVAL_TIMEOUT_DEFAULT 120     /* seconds until an undecided request is denied */
#define CB_APPROVAL_TIMEOUT_MAX 86400
#define CB_APPROVAL_KEEP 60                 /* seconds a decided request waits to be collected */

typedef enum cb_approval_state {
        CB_APPROVAL_PENDING = 0,
        CB_APPROVAL_APPROVED,
        CB_APPROVAL_DENIED,
        CB_APPROVAL_EXPIRED, /* timed out: a denial */
} cb_approval_state;

typedef struct cb_approval {
        char id[CB_APPROVAL_ID_LEN + 1];
        cb_approval_state state;
        /* The requester. */
        uid_t uid;
        gid_t gid;
        pid_t pid;
        int pidfd;                      /* owned by the table */
        char exe_path[PATH_MAX];
        unsigned char exe_sha256[32];
        char exe_sha256_hex[65];
        /* What it asked for (the token route's parameters, ttl already
         * capped by the grant). */
        char client[65];
        char secret[CB_NAME_MAX + 1];
        unsigned use;                   /* one CB_USE_* bit */
        uint32_t ttl;
        int bind;                       /* cb_token_bind */
        uint64_t created;
        uint64_t deadline;              /* pending: when it times out; decided: when it is dropped */
        uint64_t decided;               /* 0 while pending */
        /* The operator who decided (approve/deny); uid -1 for a timeout. */
        uid_t by_uid;
        pid_t by_pid;
        char by_exe[PATH_MAX];
} cb_approval;

typedef struct cb_approvals cb_approvals;

/* A table holding at most max_total requests, max_per_uid per uid (0 =
 * the defaults above); a pending request times out once more than timeout
 * (1..CB_APPROVAL_TIMEOUT_MAX) whole seconds have passed, never early.
 * NULL on ENOMEM or a bad timeout. */
cb_approvals *cb_approvals_new(size_t max_total, size_t max_per_uid, uint32_t timeout);
/* Closes every pidfd; NULL ok. */
void cb_approvals_free(cb_approvals *a);

uint32_t cb_approvals_timeout(const cb_approvals *a);

/* Hold a request from peer.  When the same process already holds a pending
 * request with the same parameters, that one is returned (1) rather than a
 * new one made (0): a client that retries does not flood the operator.
 *   -EOPNOTSUPP  peer has no pinned pidfd (SO_PEERPIDFD, Linux 6.5)
 *   -ENOSPC      a cap is reached (message says which)
 *   -ESRCH       the pidfd could not be duplicated
 * *ret points at the entry until the next call that changes the table. */
int cb_approvals_add(cb_approvals *a, const cb_peer *peer, const char *client, const char *secret, unsigned use,
                     uint32_t ttl, int bind, uint64_t now, const cb_approval **ret) __attribute__((warn_unused_result));

/* Find by full ID or by a unique prefix of at least CB_APPROVAL_ID_SHORT
 * hex digits (operators type short forms).  -EINVAL not an ID or prefix,
 * -ENOENT none, -ENOTUNIQ a prefix naming several. */
int cb_approvals_lookup(cb_approvals *a, const char *id, const cb_approval **ret);

/* May operator `by` decide on request id (full ID) now?  0, or:
 *   -ENOENT   no such request      -EALREADY  decided or timed out already
 *   -ESRCH    the requester exited (the next sweep drops the request)
 *   -EPERM    approve by the requester's own uid: a tool steered to use
 *             the admin socket must not approve itself (denying is fine)
 * Changes nothing: the caller audits the decision, then applies it. */
int cb_approvals_check_decide(cb_approvals *a, const char *id, bool approve, const cb_peer *by);

/* cb_approvals_check_decide, then record the decision and who made it. */
int cb_approvals_decide(cb_approvals *a, const char *id, bool approve, const cb_peer *by, uint64_t now);

/* Remove a request (full ID) without an event; no-op if absent. */
void cb_approvals_drop(cb_approvals *a, const char *id);

/* The requester polls (full ID).  -ENOENT unless peer is the requesting
 * process (see above: the answer is the same whether or not the ID exists).
 * On success *ret_copy is a copy of the entry (its pidfd field -1); a
 * decided request is removed by this call: a result is handed out once. */
int cb_approvals_collect(cb_approvals *a, const char *id, const cb_peer *peer, uint64_t now, cb_approval *ret_copy);

/* Time passes: pending requests past their deadline become
 * CB_APPROVAL_EXPIRED (event "timeout"); requests whose requester exited are
 * dropped ("abandoned"); decided requests not collected within
 * CB_APPROVAL_KEEP are dropped ("uncollected" for an approval, silently
 * otherwise).  event (may be NULL) sees each entry before it changes.
 * Returns the number of events. */
size_t cb_approvals_sweep(cb_approvals *a, uint64_t now, void (*event)(const cb_approval *e, const char *what, void *ud),
                          void *ud);

/* Iteration for listing: entries 0..count-1 (order: oldest first). */
size_t cb_approvals_count(const cb_approvals *a);
const cb_approval *cb_approvals_at(const cb_approvals *a, size_t i);

const char *cb_approval_state_name(cb_approval_state s);
