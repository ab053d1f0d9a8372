/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leak scanning in the daemon: the live matcher over every live secret
 * value and the routes POST /v1/scan and POST /v1/redact (scan.c), and the
 * leak response (policy on_leak, canaries, compromised secrets, leaks.json,
 * the token gate: leak.c).  scan_internal.h is the seam between the two.
 *
 * Request bodies are not buffered: they are decided on their headers (like
 * the proxy's) and stream through the matcher on the server thread, under
 * no lock; a request that sighted something runs its leak response under
 * leak.c's respond lock (serialised with other responses only).
 *
 *   POST /v1/scan     any size up to CB_SCAN_BODY_MAX, streamed (Content-
 *                     Length or chunked).  200 {"findings":[{"kind","name",
 *                     "offset"}], "total": N, "truncated": bool, "bytes": N}
 *                     with at most CB_SCAN_FINDINGS_MAX findings (offsets are
 *                     bytes from the start of the body).
 *   POST /v1/redact   one round of a redaction (at most CB_REDACT_BODY_MAX):
 *                     request headers X-Credbroker-Skip: K (the first K bytes
 *                     are already under a marker), X-Credbroker-Final: 1 on
 *                     the last round; answer 200, the redacted text
 *                     (application/octet-stream) with X-Credbroker-Consumed: C
 *                     (the body up to C is done: send the rest again first,
 *                     next round), X-Credbroker-Skip: K' (for the next round)
 *                     and X-Credbroker-Redacted: names,comma,separated.
 *                     Rounds concatenated equal one stream's redaction.
 * Callers: tools.sock with a "scan" grant, admin.sock admins.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "daemon.h"

#define CB_SCAN_BODY_MAX ((uint64_t)1 << 30)   /* 1 GiB per /v1/scan request */
#define CB_REDACT_BODY_MAX (2 * 1024 * 1024)   /* per /v1/redact round */
#define CB_SCAN_FINDINGS_MAX 1000
#define CB_LEAK_ALERT_COOLDOWN 60              /* seconds between alerts for one secret */

/* ---- the live matcher and the routes (scan.c) ---- */

/* The set of live secret values changed (put, rotate, import, version
 * state change, destroy): the matcher is dropped now (its patterns wiped
 * once no scan uses it) and rebuilt from the store by the next scan.
 * Any thread (the matcher's own lock). */
void scanner_rebuild(void);

/* Once a second (the sweep): drop the matcher if the store moved on
 * since it was built (a destroyed or disabled version's patterns are then
 * wiped as soon as no scan holds them, not at the next scan). */
void scanner_sweep(void);

/* At exit, single-threaded: wipe everything (the leak
 * marks too). */
void scanner_shutdown(void);

/* What leak/ works on, handed by main.c at start (leak_attach, before
 * scanner_init), so that no file of leak/ reaches for the daemon-wide
 * state: the store (read, and marked leaked), the token table (looked up:
 * the accessor of a token sighted in text; revoking goes through
 * leak_react.h).  Both guard themselves; leak/'s own state has its own
 * locks (leak.c, scan.c).  The policy is the request's own snapshot
 * (rq->policy), taken without a lock. */
typedef struct leak_env {
        cb_store *store;
        cb_tokens *const *tokens;
} leak_env;
void leak_attach(const leak_env *env);

/* The route of POST /v1/scan and /v1/redact (api/api_routes.c: decided on
 * the headers; under no lock on tools.sock): authorise and start a scan job, or reply. */
int scan_start(request *rq);
/* MHD hands the body over piece by piece (outside the lock), then its end. */
int scan_feed(request *rq, const char *data, size_t *size);
int scan_finish(request *rq);
/* MHD is done with the request (completed()). */
void scan_request_done(request *rq);

/* Any thread: a reference to the live matcher (every live secret
 * version and tokens), built if needed, for a caller that scans outside
 * the lock (a sandbox's outbound leak guard); the caller drops it with
 * cb_matcher_free().  NULL when it cannot be built (cb_error_last()). */
struct cb_matcher *scanner_matcher_ref(void);

/* The matcher's state and the compromised secrets (admin status; may
 * retry a pending mark: never with the store's read side held). */
json_t *scanner_status_json(void);

/* ---- the leak response (leak.c) ---- */

/* At start, after the store is open: carry an older broker's
 * STATE_DIR/leaks.json into the store (compromised marks are store
 * records now) and remove it.  A file that cannot be read, parsed or
 * carried over stops the daemon (-errno, message set): fail closed. */
int scanner_init(const char *state_dir);

/* Token issuance gate (token issue, approval collection, the proxy; no
 * daemon-wide lock): refuses a canary (raising the canary alert) and a compromised
 * secret.  Reads the store under its read side and the marks under their
 * own lock, writes nothing (a mark the store has not taken yet is retried
 * by the sweep).  0: go on; 1: a refusal was sent and *ret holds its MHD
 * result.  leak_canary_note: any thread (its cooldown has its own lock). */
/* A token request naming a canary: the alert (at most one per uid and
 * route per cooldown) and an audit event; true if secret is one.  The
 * caller then answers as for any name it holds no grant for (a canary is
 * never granted), so a canary cannot be told from an unknown name. */
bool leak_canary_note(request *rq, const char *secret);
int leak_token_gate(request *rq, const char *secret, int *ret);

/* Any thread, never with the store's read side held (a pending mark is
 * retried: a store write). */
bool scanner_is_compromised(const char *name);

/* Mark version (0: the current one) of name leaked in the store
 * (cb_store_mark_leaked): never served or stored again; no token is issued
 * for name while it is current (a leaked rotation that failed, a leak
 * sighting).  Any thread, never with the store's read side held. */
int scanner_mark_compromised(const char *name, uint32_t version);
