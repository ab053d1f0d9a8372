/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tool tokens, in memory only (a restart invalidates every token: fail
 * closed).  The table keeps a keyed hash of each token (BLAKE2b under a
 * random per-process key), never the token; each token has a random,
 * non-secret accessor ("cba_" + 24 hex) for audit and revocation.
 *
 * A token is bound to the identity that asked for it — uid and executable
 * hash — and optionally to the process itself (pid + a pidfd held by the
 * table): such a token dies with its process.  A presenter counts as that
 * process when it has the same pid and the issuer's pidfd shows it still
 * running: the presenter was identified (alive, with that pid) before the
 * check, the issuer is alive at the check and so was alive then too, and
 * two live processes never share a pid.  A newcomer that got a recycled
 * pid can only exist once the issuer has exited, which the pidfd shows.
 *
 * Thread-safe: the table guards itself (one mutex, held for memory work
 * and non-blocking pidfd calls only; tokens.c).  Callers need no lock of
 * their own.  No pointer into the table is handed out: a *ret_info points
 * at a copy, this thread's, valid until its next call on a token table.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec.h"
#include "peer.h"

#define CB_ACCESSOR_LEN (4 + 24)
#define CB_TOKENS_MAX_DEFAULT 100000
#define CB_TOKENS_PER_UID_DEFAULT 10000
#define CB_TOKENS_BOUND_MAX 16384     /* process-bound tokens: each holds a pidfd */
#define CB_TOKENS_BOUND_PER_UID 256

typedef struct cb_tokens cb_tokens;

typedef struct cb_token_info {
        char accessor[CB_ACCESSOR_LEN + 1];
        char secret[129];
        char client[65];
        uint32_t version;     /* secret version it was minted against (0 = follow current) */
        unsigned uses;        /* CB_USE_* bits the token carries */
        uint64_t issued;      /* unix seconds */
        uint64_t expires;
        uint32_t max_uses;    /* 0 = unlimited */
        uint32_t used;
        uid_t uid;
        unsigned char exe_sha256[32];
        bool bound_process;
        bool any_exe;         /* CB_BIND_UID, _SESSION: any executable of the uid may present it */
        bool any_process;     /* CB_BIND_SESSION: any process of the uid, while the issuer lives */
        pid_t pid;
} cb_token_info;

/* max_total and max_per_uid cap the live tokens (0 = defaults): a token
 * counts from its issue until it expires, is revoked or its bound process
 * exits, not a moment longer.  What it leaves to explain its refusal (a
 * tombstone, tombstones.h) never counts.  The table has a tombstone store
 * of CB_TOMBS_BYTES_DEFAULT.  NULL on ENOMEM; free with cb_tokens_free. */
cb_tokens *cb_tokens_new(size_t max_total, size_t max_per_uid);
void cb_tokens_free(cb_tokens *t);

/* What a token is bound to beyond its uid. */
typedef enum cb_token_bind {
        CB_BIND_EXE = 0,      /* the issuing executable (hash) */
        CB_BIND_PROCESS = 1,  /* the issuing process (and executable) */
        CB_BIND_UID = 2,      /* the uid alone */
        CB_BIND_SESSION = 3,  /* any program of the uid while the issuing process lives
                               * (credbroker exec --proxy: the SDK in its child uses it,
                               * and it dies with exec, SIGKILL included); counted and
                               * capped as process-bound (it holds a pidfd) */
} cb_token_bind;

/* Replace the tombstone store by one of `bytes` (tombstones.h: rounded to
 * pages, clamped); the old one's records are forgotten.  0 or -ENOMEM (the
 * old store stays). */
int cb_tokens_limit_tombstones(cb_tokens *t, size_t bytes) __attribute__((warn_unused_result));

/* Cap process-bound tokens (each holds a file descriptor): in all and per
 * uid (0 = the defaults above).  Issuing one past a cap is -ENOSPC. */
void cb_tokens_limit_bound(cb_tokens *t, size_t max_total, size_t max_per_uid);

/* Mint a token for peer.  ret_token receives the token text (wipe it after
 * sending; untouched on failure); *ret_info (may be NULL) points at a copy
 * of the stored entry (this thread's, until its next call).  -ENOSPC when a cap is reached; the
 * message names the cap ("total token cap", "per-uid token cap",
 * "process-bound cap", "per-uid process-bound cap"). */
int cb_tokens_issue(cb_tokens *t, const cb_peer *peer, const char *client, const char *secret, uint32_t version,
                    unsigned uses, uint32_t ttl, uint32_t max_uses, cb_token_bind bind,
                    char ret_token[CB_TOKEN_LEN + 1], const cb_token_info **ret_info);

/* Revocation fencing, for an issuer that checks something before it mints
 * (whether the secret was seen leaked) without holding a lock across both:
 * take cb_tokens_fence() before the check, then cb_tokens_issue_fenced()
 * mints only if no revocation of any kind ran in between, else -ESTALE
 * (nothing minted): check again and retry.  A revocation that raced the
 * check either ran before the insert (-ESTALE) or after it (it revokes
 * the new token): a token never outlives a revocation that answered. */
#define CB_TOKENS_NO_FENCE UINT64_MAX
uint64_t cb_tokens_fence(cb_tokens *t);
int cb_tokens_issue_fenced(cb_tokens *t, uint64_t fence, const cb_peer *peer, const char *client, const char *secret,
                           uint32_t version, unsigned uses, uint32_t ttl, uint32_t max_uses, cb_token_bind bind,
                           char ret_token[CB_TOKEN_LEN + 1], const cb_token_info **ret_info);

/* Check a presented token for use `use` by peer, and count one use.
 *   -EINVAL  not a token (format/CRC)         -ENOENT  unknown or revoked
 *   -ETIME   expired                          -EDQUOT  use limit reached
 *   -EPERM   presented by another uid or executable, or a scope it lacks
 *   -ESRCH   bound to a process that exited (or a new process with its pid)
 * A token no longer alive is answered from its tombstone (expired, revoked:
 * "... (this one was revoked)", exited) for a minute, then -ENOENT
 * "unknown or revoked token"; sooner if the tombstone store is full.
 * Message set in every case (never containing the token).  On success
 * *ret_info points at a copy of the entry, this thread's, valid until its
 * next call; when this use was its last (max_uses), the token has left the
 * table (its tombstone answers -EDQUOT "used up").  peer must come from cb_peer_identify
 * (which ends by checking that the process is alive) before this call. */
int cb_tokens_use(cb_tokens *t, const char *token, size_t len, const cb_peer *peer, unsigned use,
                  const cb_token_info **ret_info);

/* cb_tokens_use without counting the use (the same checks and answers):
 * for a caller that has more to check before it commits to the use. */
int cb_tokens_check(cb_tokens *t, const char *token, size_t len, const cb_peer *peer, unsigned use,
                    const cb_token_info **ret_info);

/* Look up without counting a use and without binding checks (introspection
 * by its holder is checked by the caller).  -EINVAL/-ENOENT/-ETIME. */
int cb_tokens_peek(cb_tokens *t, const char *token, size_t len, const cb_token_info **ret_info);
/* Count one use of the token this thread's last cb_tokens_check found
 * (info: what that call returned; no other token call on this thread in
 * between): the entry is found again by number and hash, not looked up.
 * -ENOENT if info is not that check's, or its token was revoked or retired
 * meanwhile (by another thread: the table is not held between the two
 * calls); -EDQUOT if it has no use left.  info->used counts this use.
 * When it was the last, the token leaves the table at once (its tombstone
 * answers "used up"). */
int cb_tokens_count_checked(cb_tokens *t, const cb_token_info *info);

/* After a cb_tokens_use/cb_tokens_peek call on this thread: the accessor
 * of the token it found (also when it then refused it: wrong caller,
 * expired, used up), or "" when no token matched.  Refusal messages never
 * name the accessor: put this one in rq->accessor (the audit log hashes it). */
const char *cb_tokens_refused_accessor(void);

/* Revocations; each returns how many tokens were revoked. */
size_t cb_tokens_revoke_accessor(cb_tokens *t, const char *accessor);
size_t cb_tokens_revoke_secret(cb_tokens *t, const char *secret);
size_t cb_tokens_revoke_client(cb_tokens *t, const char *client);

/* Drop the tokens expired and the process-bound ones whose process exited
 * (pidfd closed), each leaving a tombstone; give back the memory the table
 * no longer needs (empty chunks, an oversized index) and the tombstone
 * pages whose records all outlived their minute.  O(table), with a poll(2)
 * per process-bound token: the daemon runs it once a second.  Returns how
 * many tokens were dropped. */
size_t cb_tokens_sweep(cb_tokens *t, uint64_t now);

/* Live tokens. */
size_t cb_tokens_count(const cb_tokens *t);
/* Bytes the table holds now: its chunks not given back, index, free
 * stack, per-uid counters, and the tombstone pages holding records. */
size_t cb_tokens_bytes(const cb_tokens *t);
