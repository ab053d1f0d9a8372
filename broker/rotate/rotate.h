/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rotation: a new version moves pending -> current, the old current becomes
 * previous for a grace period, then disabled.  Every step is one atomic
 * store commit, and every state between two steps is a valid store (exactly
 * one current version), so a SIGKILL anywhere leaves a store that opens,
 * and re-running the rotation completes or supersedes what was left:
 *
 *   1. leftover pending versions of the secret are disabled (superseded);
 *   2. the new value is put as pending, its sealed metadata a copy of the
 *      current version's plus the label "rotation=grace:N" (or
 *      "rotation=leaked", meaning grace 0);
 *   3. the pending version is made current (the old current becomes
 *      previous in the same commit);
 *   4. previous versions whose grace ran out are disabled (at once with
 *      grace 0 / --leaked).
 *
 * Grace is durable because it is sealed in the current version's metadata
 * and the store records when each version became previous: a previous
 * version P is disabled once P.changed + grace(current) <= now, by a sweep
 * that runs before the daemon serves anything and then every second.  A
 * version made previous by a plain put (no "rotation" label on the current
 * version) is kept until an operator disables it.
 *
 * Tokens follow the current version, so a rotation leaves them working and
 * they get the new value at once.  --leaked revokes every token of the
 * secret (all were minted before the rotation, against the old version),
 * then runs the leak hook.  The previous version is served only to a
 * redeem that names it ({"token", "version": N}).
 *
 * Hooks (daemon side), in --rotate-hook-dir DIR (a directory owned by root
 * or the broker's uid, writable by no one else; same for each hook file):
 *   DIR/NAME     the rotation hook of secret NAME: prints the new value on
 *                stdout (at most CB_VALUE_MAX bytes; one trailing newline
 *                dropped from text); argv is [path, NAME], the environment
 *                only PATH, CREDBROKER_SECRET=NAME and CREDBROKER_REASON;
 *                stdin is /dev/null.  Never given any value.
 *   DIR/_leaked  the leak hook (a name no secret can have): run after each
 *                leaked rotation with a JSON event on stdin (names and
 *                version numbers, never a value).
 * Locks: every function that reads and then writes the store, or touches
 * rotate/'s state, runs under rotate_lock() (rotations of any source, the
 * grace sweep, the hook threads, the admin routes that change versions):
 * rotate/'s own mutex, then the store's writers' mutex, so what a rotation
 * read stays true until it writes.  No tools.sock route takes it, except
 * a scan whose leak response rotates (leak_rotate_request takes it
 * itself).  rotate_version_check (redeem) takes only the store's read
 * side.  Lock order: the admin lock, the leak responses' lock, this, the
 * store's writers' mutex.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "meta.h"
#include "store.h"
#include "tokens.h"
#include "rotation_label.h"

#define CB_ROTATE_GRACE_DEFAULT 300           /* seconds: the default token TTL */
#define CB_ROTATE_GRACE_MAX CB_ROTATION_GRACE_MAX
#define CB_ROTATE_HOOK_TIMEOUT 60             /* seconds a daemon-run hook may take */
#define CB_ROTATE_HOOKS_MAX 8                 /* daemon-run hooks at once */
#define CB_ROTATE_GENERATE_LABEL "generate=yes" /* sealed label allowing --generate */
#define CB_ROTATE_LEAKED_LABEL "leaked-through="  /* + N: versions <= N leaked (sealed, carried forward) */

/* May disabled version v of a secret (its versions vi[0..nv)) be enabled
 * again?  Never if it leaked: a later version carries "rotation=leaked"
 * (every older version was disabled by a leaked rotation), or any version
 * carries CB_ROTATE_LEAKED_LABEL N with v <= N (the record a leaked
 * rotation leaves, copied forward by every later rotation, so it survives
 * later rotations, and the leaked rotation's version being destroyed).
 * Returns the version that says so, 0 if none. */
uint32_t rotate_leaked_by(const cb_version_info *vi, size_t nv, uint32_t v);

/* What rotate/ works on, handed in by main.c at start rather than read
 * from the daemon-wide state: the store and the token table. */
typedef struct rotate_env {
        cb_store *store;
        cb_tokens *tokens;
} rotate_env;

/* rotate/'s lock (see the top of this file); not recursive for rotate/'s
 * mutex: never call it twice on one thread. */
void rotate_lock(void);
void rotate_unlock(void);

/* A leaked rotation of name failed: its leaked version old (0: the current
 * one) stays marked compromised, so no token is issued for it until a
 * rotation succeeds, and the alert "rotation_failed" says so, with why as
 * its message (never a value).  Under rotate_lock(). */
void rotate_leaked_failed(const char *name, uint32_t old, const char *source, const char *why);

/* Keep *env (copied) for every later call.  Before rotate_init. */
void rotate_attach(const rotate_env *env);

/* Check and remember the hook directory (NULL: none).  0 or -errno with a
 * message. */
int rotate_init(const char *hook_dir);

/* Kill running hooks and wait for their threads (at shutdown, without
 * rotate_lock() held). */
void rotate_stop(void);

/* Rotate name to value[0..len) (or, with value NULL, a generated value:
 * "cbs_" + base64url of 32 random bytes, allowed only when the current
 * version carries the sealed label CB_ROTATE_GENERATE_LABEL).  grace in
 * seconds; leaked forces grace 0, revokes every token of the secret and
 * runs the leak hook.  source says who asked ("admin", "leak") for the
 * audit.  The new value must differ from every version of name not
 * destroyed (-EEXIST "the new value equals version N's").  A leaked
 * rotation that fails at any step leaves the version that leaked marked
 * compromised (no token until a rotation succeeds) and raises the alert
 * "rotation_failed".  On success *ret (may be NULL) is a JSON summary (no value):
 * {"name","version","previous","grace","leaked","revoked","superseded":[..],
 * "disabled":[..]}.  -ENOENT (no such secret), -EPERM (generation not
 * allowed), store errors; message in cb_error_last().  Under rotate_lock(). */
int rotate_secret(const char *name, const void *value, size_t len, uint32_t grace, bool leaked, const char *source,
                  json_t **ret);

/* The same in two halves, so an operator can test the new value between
 * them: ROTATE_STAGE does steps 1-2 (answer {"name","version","staged",
 * "grace","leaked","superseded"}); ROTATE_PROMOTE (value unused) does
 * 3-4 for the pending version `promote`, with the grace/leaked sealed in it
 * when staged (0 if it is current already: {"already": true}).  --leaked
 * revokes and cuts at both halves (tokens minted in between follow the old
 * value).  ROTATE_FULL is rotate_secret. */
enum rotate_phase { ROTATE_FULL, ROTATE_STAGE, ROTATE_PROMOTE };
int rotate_run(enum rotate_phase phase, const char *name, const void *value, size_t len, uint32_t grace, bool leaked,
               uint32_t promote, const char *source, json_t **ret);

/* May version (not 0) of name be served to a redeem naming it?  The
 * store's state says so, but the sweep may not have run (or failed): a
 * previous version past its grace (changed + the current version's grace
 * <= now) or one that leaked (rotate_leaked_by) is refused here too.
 * 0, or -EPERM with a message.  Any thread: takes the store's read side
 * itself (redeem, no other lock). */
int rotate_version_check(const char *name, uint32_t version, uint64_t now);

/* Disable previous versions whose grace ran out.  Cheap when nothing is
 * due (scans only at the earliest deadline it knows, or after a state
 * change).  Takes rotate_lock() itself. */
void rotate_sweep(uint64_t now);

/* A version's state changed outside rotate_secret: recompute deadlines at
 * the next sweep. */
void rotate_changed(void);

/* The leak scanner's on_leak=rotate: rotate_hook_start(name, 0, leaked,
 * "leak"), so name is contained at once (see there) and its rotation hook
 * (DIR/NAME) runs in the background; its output becomes the new value of a
 * --leaked rotation.  0 when started (or one already runs for name),
 * -ENOENT when name has no rotation hook (or no hook directory is
 * configured), -EAGAIN when CB_ROTATE_HOOKS_MAX hooks are running.  Takes
 * rotate_lock() itself (and the hook's thread again later). */
int leak_rotate_request(const char *name);

/* Start name's rotation hook in the background; its output becomes the
 * new value (rotate_secret with grace/leaked, source for the audit).
 * With leaked, before anything else and whatever is returned: every token
 * of name revoked, its proxied requests cut, its current version marked
 * compromised (scanner_mark_compromised: no token until a new version is
 * current); if the hook then fails, the mark stays and an alert
 * "rotation_failed" is raised.  -ENOENT (no hook), -EALREADY (one runs
 * for name), -EAGAIN (too many).  Under rotate_lock(). */
int rotate_hook_start(const char *name, uint32_t grace, bool leaked, const char *source);
