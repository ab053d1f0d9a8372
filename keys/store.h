/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sealed store.  On disk, in a 0700 state directory:
 *
 *   header          small; rewritten atomically on every commit
 *   log-<id>        append-only, MAC-chained records (secrets, versions,
 *                   state changes); replaced wholesale by compaction
 *   lock            flock(2) target serialising writers
 *
 * See store_format.h for the byte layout and README.md for the rationale.
 *
 * Integrity: the header carries an unkeyed checksum (any corruption is an
 * integrity error, told apart from a wrong key) and, after unlock, a keyed
 * MAC; log records form a keyed MAC chain whose committed length and head
 * are in the header; each value is XChaCha20-Poly1305 under its own DEK with
 * AAD = store id + name + version + metadata; each DEK is wrapped by the KEK
 * with AAD = store id + name + version.
 *
 * Thread safety: see "Concurrency" below (cb_store_read_lock): writers
 * serialise themselves on the store's own writers' mutex, readers take the
 * read side.
 *
 * Read-only opens: if open recovers an interrupted write but cannot commit
 * the recovery (disk full), the store still opens and serves reads; every
 * write then fails with -EROFS saying why, until it is reopened.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kek.h"
#include "meta.h"
#include "secmem.h"

#define CB_NAME_MAX       128
#define CB_VALUE_MAX      (64 * 1024)
#define CB_VERSIONS_MAX   1024      /* per secret, destroyed ones included */
#define CB_SECRETS_MAX    1000000

typedef struct cb_store cb_store;

enum cb_version_state {
        CB_VS_PENDING   = 1,
        CB_VS_CURRENT   = 2,
        CB_VS_PREVIOUS  = 3,
        CB_VS_DISABLED  = 4,
        CB_VS_DESTROYED = 5, /* terminal; key material wiped */
};

const char *cb_version_state_name(enum cb_version_state s);
/* -EINVAL for an unknown name. */
int cb_version_state_parse(const char *s, enum cb_version_state *ret);

typedef struct cb_version_info {
        uint32_t version;
        enum cb_version_state state;
        uint64_t created;       /* unix seconds */
        uint64_t changed;       /* when the state last changed */
        const cb_meta *meta;    /* owned by the store */
        bool leaked;            /* marked leaked (cb_store_mark_leaked): never served */
} cb_version_info;

/* 0 if name is acceptable: 1..CB_NAME_MAX bytes of [A-Za-z0-9._-], starting
 * with a letter or digit.  -EINVAL with a message otherwise. */
int cb_name_check(const char *name);

/* Create a new store in dir (created 0700 if missing; must be empty of store
 * files otherwise: -EEXIST).  Enrols the provider given by spec. */
int cb_store_create(const char *dir, const cb_unlock_spec *spec) __attribute__((warn_unused_result));

/* Open and unlock.  Verifies the header checksum, unwraps the KEK
 * (CB_E_BADKEY on a wrong key), the header MAC and the whole log chain
 * (CB_E_INTEGRITY, message naming the file and offset).  Values are
 * decrypted lazily by cb_store_get(). */
int cb_store_open(const char *dir, const cb_unlock_spec *spec, cb_store **ret) __attribute__((warn_unused_result));

/* Wipes every key; NULL ok. */
void cb_store_close(cb_store *s);

/* Full offline verification: everything cb_store_open checks plus
 * decrypting every live version and checking exactly one current version
 * per secret.  Returns counts through the out-params (may be NULL). */
int cb_store_verify(cb_store *s, size_t *ret_secrets, size_t *ret_versions) __attribute__((warn_unused_result));

/* Add a new version of name (creating the secret if needed) holding
 * value[0..len) (1..CB_VALUE_MAX bytes) with a copy of meta (NULL = empty).
 * state is CB_VS_CURRENT (the old current becomes previous in the same
 * commit) or CB_VS_PENDING.  The first version of a secret must be current.
 * Durable when it returns 0. */
int cb_store_put(cb_store *s, const char *name, const void *value, size_t len, const cb_meta *meta,
                 enum cb_version_state state, uint32_t *ret_version) __attribute__((warn_unused_result));

/* Decrypt a version (0 = the current one) into a new secret buffer.
 * -ENOENT for an unknown name/version, -EKEYREVOKED for a destroyed one,
 * -EPERM for a disabled or pending version unless allow_inactive.
 * ret_version/ret_meta may be NULL; ret_meta stays valid until the next
 * write or close. */
int cb_store_get(cb_store *s, const char *name, uint32_t version, bool allow_inactive,
                 cb_secbuf **ret_value, uint32_t *ret_version, const cb_meta **ret_meta)
        __attribute__((warn_unused_result));

/* Move a version to CB_VS_CURRENT (the old current becomes previous),
 * CB_VS_PREVIOUS or CB_VS_DISABLED.  The current version cannot be moved
 * away except by making another one current (exactly one current). */
int cb_store_set_state(cb_store *s, const char *name, uint32_t version, enum cb_version_state state)
        __attribute__((warn_unused_result));

/* Destroy a non-current version: its wrapped DEK and ciphertext are removed
 * from disk by compacting the log into a new file; the old file is
 * overwritten and unlinked.  Terminal. */
int cb_store_destroy(cb_store *s, const char *name, uint32_t version) __attribute__((warn_unused_result));

/* Delete a secret: destroy every version, the current one included, in one
 * compaction (as cb_store_destroy: wrapped DEKs and ciphertexts gone from
 * disk, the old log overwritten; tombstones keep the version numbers).  The
 * name is then listed nowhere and has no current version (cb_store_get:
 * -ENOENT); a later put starts a new current version.  0 also when it was
 * deleted already; -ENOENT for an unknown name. */
int cb_store_delete(cb_store *s, const char *name) __attribute__((warn_unused_result));

/* Names, sorted; the array is malloc'd (free() it), the strings belong to the
 * store and stay valid until the next write or close. */
int cb_store_names(cb_store *s, const char ***ret_names, size_t *ret_n) __attribute__((warn_unused_result));

/* Versions of name in ascending order; the array belongs to the store and
 * stays valid until the next write or close.  -ENOENT. */
int cb_store_versions(cb_store *s, const char *name, const cb_version_info **ret, size_t *ret_n)
        __attribute__((warn_unused_result));

size_t cb_store_count(const cb_store *s);

/* Concurrency: a store has one writer at a time and any number of readers.
 * Every write function (put, set_state, destroy, delete, compact,
 * mark_leaked, accept_rollback) takes the store's writers' mutex itself,
 * for its whole commit (append, fsyncs, header).  A caller that must read,
 * decide and then write with no other writer in between holds it around
 * the sequence (cb_store_write_lock; recursive): while it holds it, its
 * reads need no read side.  Every other reader (cb_store_get, _versions,
 * _names, _count, _generation) takes the read side around its calls and
 * for as long as it uses what they returned (the versions array, names,
 * ret_meta).  A writer holds the write side only to publish a commit in
 * memory, after its log append, fsync and header replacement: readers
 * never wait for a writer's I/O, and a reader never takes the writers'
 * mutex (cb_store_get's freshness check only tries it).  Each decrypt has
 * a scratch buffer of its own (sodium_malloc, wiped): readers run in
 * parallel.  The read side is not recursive for writes: never call a
 * write function with it held (the write's publish would wait for it).
 * Lock order: writers' mutex, then the read/write side. */
void cb_store_read_lock(const cb_store *s);
void cb_store_read_unlock(const cb_store *s);
void cb_store_write_lock(cb_store *s);
void cb_store_write_unlock(cb_store *s);
uint64_t cb_store_generation(const cb_store *s);
/* 16-byte store id, hex-encoded into out (33 bytes). */
void cb_store_id_hex(const cb_store *s, char out[33]);

/* Rewrite the log with only live records (drops superseded state records
 * and destroyed material).  Called by cb_store_destroy; exposed for tools. */
int cb_store_compact(cb_store *s) __attribute__((warn_unused_result));

/* The internal namespace: '@' + a valid name.  It holds the store's own keys
 * (the provisioning keypair, keys/provision.h).  cb_name_check refuses such
 * names, so nothing that takes a name from a client (put, show, a policy
 * grant, a token, a redeem, the proxy) can reach one, and cb_store_names,
 * cb_store_count and cb_store_versions do not show them; only the _ex calls
 * below with CB_STORE_INTERNAL do. */
#define CB_INTERNAL_NAME_PREFIX '@'
#define CB_STORE_INTERNAL 1u

/* name checked for the namespace flags selects: 0 or -EINVAL. */
int cb_store_name_check(const char *name, unsigned flags);

/* cb_store_put with the version's creation time given (0 = now; provisioning
 * records when a value was sealed) and flags (CB_STORE_INTERNAL). */
int cb_store_put_ex(cb_store *s, const char *name, const void *value, size_t len, const cb_meta *meta,
                    enum cb_version_state state, uint64_t created, unsigned flags, uint32_t *ret_version)
        __attribute__((warn_unused_result));
int cb_store_get_ex(cb_store *s, const char *name, uint32_t version, bool allow_inactive, unsigned flags,
                    cb_secbuf **ret_value, uint32_t *ret_version, const cb_meta **ret_meta)
        __attribute__((warn_unused_result));
int cb_store_destroy_ex(cb_store *s, const char *name, uint32_t version, unsigned flags)
        __attribute__((warn_unused_result));
int cb_store_versions_ex(cb_store *s, const char *name, unsigned flags, const cb_version_info **ret, size_t *ret_n)
        __attribute__((warn_unused_result));

/* Operator recovery (credbroker tpm accept-rollback).  cb_store_open with
 * spec->accept_rollback opens a store older than its provider's
 * anti-rollback counter instead of refusing it, but writes nothing (not
 * even the roll-forward of an interrupted write) and refuses every write
 * (-EROFS).  Verify it first (cb_store_verify); then this raises its
 * generation to the counter's, read again now, in one header commit.
 * 1 when it did (generation in *ret_generation), 0 when the store was not
 * rolled back (nothing written), negative with a message otherwise (the
 * store stays unaccepted). */
int cb_store_accept_rollback(cb_store *s, uint64_t *ret_generation) __attribute__((warn_unused_result));

/* ---- leak marks (store_leak.c) ----
 *
 * A leaked version is a store record like any other (MAC-chained, counted
 * by the generation and so by the tpm2 anti-rollback counter), holding the
 * version and a keyed hash of its value (BLAKE2b-256 under a key derived
 * from the KEK: equal values are recognisable only with the KEK).  From the
 * commit on:
 *   - cb_store_get refuses the version (-EKEYREVOKED) unless the caller
 *     passes CB_STORE_LEAKED_OK (the leak scanner, which must keep
 *     recognising the value);
 *   - cb_store_set_state refuses to make it current;
 *   - cb_store_put refuses any value equal to one ever marked leaked, in
 *     any secret, even after the version is destroyed (-EKEYREJECTED; the
 *     value is never echoed).
 * A mark is never lifted; a secret whose current version is leaked is
 * "compromised" until a new version is made current. */
#define CB_STORE_LEAKED_OK 2u

/* Mark version (0 = the current one) of name leaked; durable on 0.  0 also
 * when it was marked already.  -EKEYREVOKED for a destroyed version (its
 * value is gone: nothing to hash).  *ret_version (may be NULL) gets the
 * version marked. */
int cb_store_mark_leaked(cb_store *s, const char *name, uint32_t version, uint32_t *ret_version)
        __attribute__((warn_unused_result));

/* true when value[0..len) equals a value ever marked leaked. */
bool cb_store_value_leaked(const cb_store *s, const void *value, size_t len);

/* Number of leaked values the store remembers. */
size_t cb_store_leaked_count(const cb_store *s);

/* Has the store on disk changed since this handle last read or wrote it
 * (another process wrote it, or a copy was put in its place)?  Cheap: one
 * fstatat of the header, and a byte compare only when its identity or
 * times changed.  0 when not; CB_E_ROLLBACK with a message when it did,
 * and from then on every read and write through this handle is refused
 * the same way (stale data is never served): reopen.  cb_store_get runs
 * it on every call. */
int cb_store_check_fresh(cb_store *s) __attribute__((warn_unused_result));

/* Test hook: when set (non-NULL), called at named points of the commit path
 * so crash tests can stop a writer exactly there: "log-written" (appended,
 * not yet synced), "log-synced", "header-committed" (also when open commits
 * a recovery), "compact-log-written" (new log durable, header not yet
 * switched). */
extern void (*cb_store_test_hook)(const char *point);
/* Tests only: no header spare and no log reserve (store_internal.h), so a
 * full disk makes every commit path fail, the paths test-store-enospc
 * walks.  The daemon never sets it. */
extern bool cb_store_test_no_reserve;
