/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbrokerd's audit log (--audit-log FILE): JSON lines, one per decision,
 * keyed-MAC chained (format: audit_format.h), identifiers keyed-hashed,
 * head checkpointed in STATE_DIR/audit-head.
 *
 * Fail closed: when a record cannot be written (ENOSPC, EIO, ...) the
 * half-written bytes are cut off again, an "audit_write_failed" alert is
 * raised, and every request is refused with 503 "audit_unavailable" before
 * it is acted on, until a record can be written again: each refused
 * request first tries to write an "audit.resume" record (saying how many
 * requests were refused and since when); when that succeeds, service
 * resumes.  The request whose record failed may already have acted (a put
 * is then stored, a token minted but never handed out); it is answered 503
 * as well.
 *
 * Everything here runs under cbd.lock except where said.
 */
#pragma once

#include <stdbool.h>

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

/* false while the log is in the failed state and still cannot be written
 * (then the caller refuses the request with audit_refuse()).  true when
 * there is no audit log. */
bool audit_available(void);
/* Whether an audit log is configured (records are written); needs no lock
 * (set at audit_open, cleared at audit_close). */
bool audit_enabled(void);
/* An admin write about to be done: its record (type "intent": socket,
 * method, URL, uid, pid) written and fdatasync'ed before the route acts.
 * 0 (also without an audit log), or negative when it cannot be written:
 * then the caller does nothing and answers audit_refuse() (counted in the
 * audit.resume record).  Sets rq->intent_recorded. */
int audit_intent(struct request *rq);
int audit_refuse(struct request *rq);

/* Admin route: POST /v1/admin/audit/verify {"files":[ABSOLUTE PATH...]}
 * (oldest first).  Verifies outside cbd.lock (drops and retakes it). */
int api_audit(struct request *rq);

/* The keyed hash ("hk1:...") id is written as in the segment whose log id
 * is log_hex (32 hex digits): for finding a token's records by its
 * accessor (credbroker audit grep).  0, -EINVAL (bad log id) or -ENOENT
 * (no audit log).  Call under cbd.lock. */
int audit_id_hash(const char *log_hex, const char *id, char out[37]);

/* credbrokerd --verify-audit FILE... (offline, daemon not running): prints
 * the verdict (a line, or with json the object GET/POST /v1/admin/audit/verify
 * answers); returns the exit status (0 intact, 4 not intact, 1 error). */
int audit_verify_offline(cb_store *store, const char *state_dir, const char *const *files, size_t n, bool json);
