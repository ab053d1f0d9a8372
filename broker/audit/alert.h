/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Alerts: a line on stderr and, with --alert-hook CMD, the operator's
 * command run with the event as one JSON line on its stdin.
 *
 * Kinds raised today: "leak", "canary" (leak scanner, scan.c),
 * "denial_burst" (alert_note_denial), "audit_write_failed" (audit.c),
 *   "rotation_failed" (rotate.c), "egress_denied" (sandbox/, through main.c).
 *
 * Events never carry a value: callers put names, accessors, uids, routes
 * in them; alert_raise also drops any member named "value", "token" or
 * "secret_value" as a last line of defence.
 *
 * Locking: every function here takes only this module's own mutex and
 * and no other, so they may be called with any other lock held.
 * The hook runs on a worker thread, never on the request path: events
 * queue (at most ALERT_QUEUE_MAX; beyond that they are dropped, counted,
 * and the count travels with the next event) and each hook run (with its
 * process group) is killed after the timeout.  The last
 * ALERT_QUEUE_RESERVED slots are kept for "leak", "canary" and
 * "audit_write_failed", so a flood of other kinds cannot crowd them out;
 * an event of another kind naming a client (uid, exe_sha256, client) that
 * already has one of that kind queued is folded into it (the hook sees
 * "coalesced": N more).  stderr still gets every event.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define ALERT_QUEUE_MAX 64
#define ALERT_QUEUE_RESERVED 16 /* of those, only for "leak", "canary", "audit_write_failed" */
#define ALERT_HOOK_TIMEOUT_S 10   /* default; --alert-hook-timeout */
#define ALERT_DENIAL_N_MAX 1000

/* Raise an alert of kind with the members of event (a borrowed JSON
 * object, may be NULL; not modified). */
void alert_raise(const char *kind, json_t *event);

/* Token accessors in events ("accessor", "accessors", "by_accessor",
 * "token_hash" members and any accessor inside other strings) are replaced
 * by keyed hashes ("hk1:", audit_format.h) under k: the audit log's
 * current segment key, so an alert correlates with its audit record.
 * Until set, a random per-process key.  k is copied. */
struct cb_audit_keys;
void alert_set_id_keys(const struct cb_audit_keys *k);

/* Start the module: hook (NULL = stderr only) killed after timeout_s
 * seconds (0 = ALERT_HOOK_TIMEOUT_S), and the denial-burst rule:
 * deny_n denials from one client (uid + executable hash) within
 * deny_window seconds raise "denial_burst" (deny_n 0 = off).  0 or -errno. */
int alert_init(const char *hook, unsigned timeout_s, unsigned deny_n, unsigned deny_window);
/* Stop the worker (a running hook is killed); queued events are dropped.
 * alert_init may be called again afterwards. */
void alert_stop(void);

/* Count one denial of a client (exe_sha256/exe may be NULL over TCP). */
void alert_note_denial(uid_t uid, const char *exe_sha256, const char *exe, const char *route, unsigned status);

/* Parse "N/SECONDS" (or "off"; SECONDS as alert_parse_seconds): 0 or -EINVAL. */
int alert_parse_rule(const char *s, unsigned *ret_n, unsigned *ret_window);

/* A duration on the daemon's command line: decimal seconds, or a number
 * with one of the suffixes s, m, h, d ("90s", "5m", "8h", "1d"), as the
 * CLI takes them.  At most max seconds.  0 or -EINVAL (nothing written). */
int alert_parse_seconds(const char *s, unsigned long max, unsigned long *ret);
