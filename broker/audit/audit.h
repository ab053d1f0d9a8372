/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbrokerd's audit log (--audit-log FILE): JSON lines, one per decision,
 * keyed-MAC chained (format: audit_format.h), identifiers keyed-hashed,
 * head checkpointed in STATE_DIR/audit-head.
 *
 * Recorded before it takes effect, and never written under a lock other
 * requests need: a record is made on any thread and put into a bounded
 * in-memory queue (audit_queue.c); one writer thread writes the queue in
 * order; the request waits for its record holding no shared lock (at most
 * CB_AUDIT_WAIT_MS) before its answer goes out, its token is handed over
 * or its proxied request goes upstream (server_reply.c).  The durability rule is
 * in docs/hardening-state.md.
 *
 * Fail closed: when a record cannot be written (ENOSPC, EIO, ...) the
 * half-written bytes are cut off again, an "audit_write_failed" alert is
 * raised, and the request it belongs to is answered 503
 * "audit_unavailable" instead of taking effect (a token it minted is
 * revoked before any answer).  The next record first tries to write an
 * "audit.resume" record (saying how many requests were refused and since
 * when).  A full queue, or a writer stuck in one write for more than
 * CB_AUDIT_STALL_MS, refuses new requests at once (503, counted).
 *
 * Records may be made on any thread: the records' side has a lock of its
 * own, held only while a record is hashed and queued.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "store.h"

struct request;

/* Open (create, 0600, O_APPEND) the log and start a segment linked to the
 * checkpointed head.  The key comes from the store (derived from its KEK).
 * -errno with a message when the file or checkpoint cannot be opened; a
 * segment header that cannot be written only puts the log in the failed
 * state (requests refused until it can). */
int audit_open(const char *path, const char *state_dir, cb_store *store) __attribute__((warn_unused_result));
/* SIGHUP: open the path afresh (logrotate moved the file away) and start a
 * segment there linked to the old one's end.  If the path cannot be
 * opened, the old file stays in use and -errno says why. */
int audit_reopen(void);
/* Write a closing record and close (at exit). */
void audit_close(void);

/* How long a request waits for its record before it is answered 503. */
#define CB_AUDIT_WAIT_MS 1000u
typedef struct audit_rec audit_rec;
/* The deadline (CLOCK_MONOTONIC ms) for records queued now. */
uint64_t audit_deadline_ms(void);
/* Wait, holding no lock another request needs, until e is written (and
 * synced, for an intent): 0, -errno when it could not be written, or
 * -ETIMEDOUT at deadline_ms (a timed-out record still queued is withdrawn
 * and never written; the refusal is counted).  Drops the caller's
 * reference; e NULL: 0. */
int audit_rec_wait(audit_rec *e, uint64_t deadline_ms);
/* Is e written (or failed) by now, or within wait_us? */
bool audit_rec_done(audit_rec *e, unsigned wait_us);
/* Call wake(ud) once, from another thread, when e is written or failed,
 * or at deadline_ms, whichever is first (the caller has suspended the
 * connection meanwhile; wake resumes it): 0.  1: not registered (e is
 * done already, or the daemon is stopping): the caller goes on itself. */
int audit_rec_watch(audit_rec *e, uint64_t deadline_ms, void (*wake)(void *ud), void *ud);
/* At stop, before the servers: every watched request woken now, and no
 * more registered. */
void audit_watch_stop(void);
/* Drop a reference without waiting. */
void audit_rec_put(audit_rec *e);
/* A record timed out (audit_queue.c): counted, and the log failed. */
void audit_note_timeout(void);

/* false while the log is in the failed state and still cannot be written
 * (then the caller refuses the request with audit_refuse()).  true when
 * there is no audit log. */
bool audit_available(void);
/* Whether an audit log is configured (records are written); needs no lock
 * (set at audit_open, cleared at audit_close). */
bool audit_enabled(void);

/* Queue one audit record (a JSON object) as a line; any thread.
 * audit_record.c: replaces identifier fields ("accessor", "accessors", "token",
 * "token_hash") in o by keyed hashes; the writer adds "seq" and "mac" (the
 * chain).  Nobody waits for it: for events that are not a request's
 * decision (completions, grace expiry, leak responses).  -errno when it
 * cannot be queued (the log is then failed, above). */
int audit_emit(json_t *o);
/* audit_emit for a decision with an effect of its own that has no request
 * to hold (a provisioning import): written and fdatasync'ed before this
 * returns, waited for at most the audit deadline (1 s) -- with the
 * caller's locks held, so only for rare, operator-caused work (SIGHUP,
 * start).  0, or -errno when it was not written: do nothing then. */
int audit_emit_wait(json_t *o);
/* An admin write about to be done: its record (type "intent": socket,
 * method, URL, uid, pid) written and fdatasync'ed before the route acts;
 * waited for with held dropped (a lock the caller holds, or NULL; it is
 * held again on return, and anything read under it before must be read
 * again).
 * 0 (also without an audit log), or negative when it cannot be written:
 * then the caller does nothing and answers audit_refuse() (counted in the
 * audit.resume record).  Sets rq->intent_recorded. */
int audit_intent(struct request *rq, pthread_mutex_t *held);
/* Is the log failed or its writer stalled (then err says why)?  Takes no
 * shared lock, never waits: for health, and for 503 messages. */
bool audit_failed(char *err, size_t n);

/* What POST /v1/admin/audit/verify answers (api/): files (absolute paths,
 * oldest first, 1 to CB_AUDIT_VERIFY_FILES_MAX) verified against the live
 * log's key; when the last is the log being written, it must end with the
 * head written so far.  Reads whole files: call holding no lock another
 * request needs.  0 and *ret (the verdict: "intact", "records", ...),
 * -ENOENT (no audit log), or -errno with cb_error_last() (a file cannot be
 * read). */
#define CB_AUDIT_VERIFY_FILES_MAX 64
int audit_verify_live(const char *const *files, size_t n, json_t **ret);

/* The keyed hash ("hk1:...") id is written as in the segment whose log id
 * is log_hex (32 hex digits): for finding a token's records by its
 * accessor (credbroker audit grep).  0, -EINVAL (bad log id) or -ENOENT
 * (no audit log).  Any thread (the master key is fixed from open to close). */
int audit_id_hash(const char *log_hex, const char *id, char out[37]);

/* credbrokerd --verify-audit FILE... (offline, daemon not running): prints
 * the verdict (a line, or with json the object GET/POST /v1/admin/audit/verify
 * answers); returns the exit status (0 intact, 4 not intact, 1 error). */
int audit_verify_offline(cb_store *store, const char *state_dir, const char *const *files, size_t n, bool json);
