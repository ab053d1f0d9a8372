/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy: who may use which secret, and how.  A JSON file (jansson):
 *
 *   { "clients": { NAME: { selectors } },
 *     "grants":  [ { "client", "secret", "use": [...], "max_ttl", "max_uses",
 *                    "rate", "approval" } ],
 *     "admins":  { "uids": [...], "users": [...], "gids": [...], "groups": [...] } }
 *
 * Selectors (every one a client names must match): "uid" (number) or "user"
 * (name, resolved at load), "gid" or "group" (the primary gid: SO_PEERCRED
 * reports no other), "exe" (an absolute path, symlinks resolved at load in
 * the broker's mount namespace; it matches by file identity, device and
 * inode, the file the path names in the broker's view now against the file
 * the caller executes -- never by the path string the caller's namespace
 * shows; an unlinked executable never matches), "exe_sha256" (64 hex, either
 * case), "cgroup" (an exact cgroup v2 path, or, ending in a slash and a star,
 * any strict descendant of that path).  A client with no selector is refused
 * at load (it would match everyone).  Default deny: no grant, no access.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "peer.h"

#define CB_POLICY_MAX_BYTES   (1024 * 1024)
#define CB_POLICY_MAX_CLIENTS 4096
#define CB_POLICY_MAX_GRANTS  16384
#define CB_TTL_DEFAULT        300
#define CB_TTL_MAX            86400

enum cb_use {
        CB_USE_PROXY  = 1 << 0,
        CB_USE_REDEEM = 1 << 1,
        CB_USE_SCAN   = 1 << 2,
};

/* What a sighting of a secret's value (leak scanner) sets off; policy
 * "secrets": {NAME: {"on_leak": "revoke"|"rotate"|"alert", "canary": bool}}.
 * revoke (the default): revoke its tokens and mark it compromised (no new
 * token until its current version changes); rotate: ask the rotation code
 * (leak_rotate_request); alert: only the alert.  A canary is never granted
 * (a grant naming one is refused at load; "*" never reaches one) and any
 * sighting or token request raises a "canary" alert. */
enum cb_on_leak {
        CB_ON_LEAK_REVOKE = 0,
        CB_ON_LEAK_ROTATE = 1,
        CB_ON_LEAK_ALERT  = 2,
};
#define CB_POLICY_MAX_SECRETS 100000

/* Per-uid budget of /v1/scan and /v1/redact on tools.sock (the admin socket
 * has none): policy "scan_budget": {"requests_per_minute": N,
 * "bytes_per_minute": M}, 1..CB_SCAN_BUDGET_MAX_*; absent: the defaults. */
#define CB_SCAN_BUDGET_REQUESTS_DEFAULT 120
#define CB_SCAN_BUDGET_BYTES_DEFAULT    (64ull << 20)
#define CB_SCAN_BUDGET_REQUESTS_MAX     1000000
#define CB_SCAN_BUDGET_BYTES_MAX        (1ull << 40)

typedef struct cb_grant {
        const char *client;   /* client name */
        const char *secret;   /* secret name, or "*" for any (admins only use this sensibly) */
        unsigned uses;        /* CB_USE_* bits */
        uint32_t max_ttl;     /* seconds; CB_TTL_DEFAULT when absent; <= CB_TTL_MAX */
        bool max_ttl_set;     /* the grant names max_ttl (else the daemon's --default-ttl caps, and
                               * a session token lives as long as its process, at most CB_TTL_MAX) */
        uint32_t max_uses;    /* per token; 0 = unlimited */
        uint32_t rate_n;      /* token issues per rate_window seconds; 0 = unlimited */
        uint32_t rate_window;
        bool approval;
} cb_grant;

typedef struct cb_policy cb_policy;

/* Load a policy file: refuses a file that is not regular, is group- or
 * world-writable, or is owned by someone other than root or the caller
 * (-EPERM); larger than CB_POLICY_MAX_BYTES (-EFBIG); or invalid (-EINVAL).
 * The message (cb_error_last()) locates the error: FILE:LINE:COLUMN for a
 * JSON syntax error, FILE: JSON-PATH (e.g. "grants[3].use[1]") for a
 * semantic one (jansson keeps no positions for values). */
int cb_policy_load(const char *path, cb_policy **ret);

/* Parse from memory; origin names the source in messages. */
int cb_policy_parse(const char *json, size_t len, const char *origin, cb_policy **ret);

/* Free a policy nobody else holds (a failed or checked load).  A policy
 * in force is shared: see the snapshot below. */
void cb_policy_free(cb_policy *p);

/* ---- the policy in force: an immutable, reference-counted snapshot ----
 * A loaded policy is never changed (its derived flags, e.g.
 * cb_policy_uses_cgroup, are computed at parse).  The daemon keeps the one
 * in force in a slot; a reload parses and validates the new file holding
 * no lock and then publishes it (a pointer swap).  A reader takes a
 * reference (cb_policy_acquire) and uses that one snapshot for as long as
 * it needs it -- a request from its start to its end -- so it never waits
 * for a reload and never sees two policies.  The slot's lock covers only
 * the pointer load and the reference increment (or the swap): never a
 * parse, a free or any I/O.  A policy is freed by its last reference. */
typedef struct cb_policy_slot cb_policy_slot;

/* A slot holding p (its reference moves into the slot).  NULL on ENOMEM. */
cb_policy_slot *cb_policy_slot_new(cb_policy *p);
/* Drops the slot's reference (the policy lives on while referenced). */
void cb_policy_slot_free(cb_policy_slot *s);
/* A reference to the policy in force (never NULL for a slot made with a
 * policy); give it back with cb_policy_unref. */
const cb_policy *cb_policy_acquire(cb_policy_slot *s);
/* Put p (its reference moves into the slot) in force; the old one is
 * released (freed here, outside the slot's lock, if nobody holds it). */
void cb_policy_publish(cb_policy_slot *s, cb_policy *p);
const cb_policy *cb_policy_ref(const cb_policy *p);
void cb_policy_unref(const cb_policy *p);

/* The grant letting peer use secret for use (exactly one CB_USE_* bit,
 * else NULL), or NULL.
 * When several clients match, the first matching grant in file order wins.
 * *ret_client (may be NULL) receives the matching client's name. */
const cb_grant *cb_policy_find_grant(const cb_policy *p, const cb_peer *peer, const char *secret, unsigned use,
                                     const char **ret_client);

/* The first grant naming client (by name) for secret and use, or NULL: for
 * re-checking a token whose presenter need not match the client's
 * selectors (a uid-bound proxy token handed to another program). */
const cb_grant *cb_policy_client_grant(const cb_policy *p, const char *name, const char *secret, unsigned use);

/* Could the client named `name` still select a caller of uid, whatever it
 * runs?  (It exists, selects something, and its uid/user selector, if it
 * has one, is uid.)  For a uid-bound or session proxy token at each use:
 * the operator who moves a client to another uid, or removes it, cuts the
 * old uid's tokens at the reload.  A gid selector is not checked: a uid
 * changes its gid at will. */
bool cb_policy_client_may_select(const cb_policy *p, const char *name, uid_t uid);

/* Names of the clients peer matches, for audit/denial messages: writes up to
 * n pointers, returns how many matched in total. */
size_t cb_policy_match_clients(const cb_policy *p, const cb_peer *peer, const char **out, size_t n);

/* Is the uid/gid an admin (admin socket access)? */
bool cb_policy_is_admin(const cb_policy *p, uid_t uid, gid_t gid);

/* Is a client of that name defined? (revoke --client validation) */
bool cb_policy_has_client(const cb_policy *p, const char *name);

/* Does any client select on the cgroup?  (Then peers must be identified
 * with CB_PEER_CGROUP: a cgroup selector never matches a peer whose cgroup
 * was not read.) */
bool cb_policy_uses_cgroup(const cb_policy *p);

/* Lazy identity: what a caller running as (uid, primary gid) can need.
 * 0 when no client selector can match it (nothing beyond its credentials
 * need be read: every tool route but health refuses it); else
 * CB_NEED_SELECTED plus CB_NEED_CGROUP when a client that can match it
 * selects on the cgroup.  (The executable and its hash are read for every
 * selected caller: tokens are bound to them.)  *ret_client (may be NULL)
 * names a client that can match. */
enum { CB_NEED_SELECTED = 1 << 0, CB_NEED_CGROUP = 1 << 1 };
unsigned cb_policy_uid_needs(const cb_policy *p, uid_t uid, gid_t gid, const char **ret_client);

/* Could any client select uid, whatever program it runs and whatever group
 * it runs as?  (Approvers must not be such a uid.)  A client with no uid
 * selector can select any uid: true then too, even if it selects a gid --
 * a uid changes its gid at will (newgrp, sg, setgid programs), so a gid
 * does not separate it.  *ret_client names the client. */
bool cb_policy_uid_selectable(const cb_policy *p, uid_t uid, const char **ret_client);

/* The i-th admin uid (i < cb_policy_n_admin_uids). */
size_t cb_policy_n_admin_uids(const cb_policy *p);
uid_t cb_policy_admin_uid(const cb_policy *p, size_t i);

/* For `credbrokerd --check-policy`: the i-th client's exe as written and
 * as resolved at load (NULL: not resolved, or no exe selector).  false
 * when i is past the last client or it has no exe selector. */
bool cb_policy_client_exe(const cb_policy *p, size_t i, const char **ret_name, const char **ret_exe,
                          const char **ret_resolved);

/* Does the i-th client also pin exe_sha256 (so a file replaced in place
 * stops matching)?  false past the last client. */
bool cb_policy_client_exe_pinned(const cb_policy *p, size_t i);

/* The leak policy of a secret (defaults: revoke, not a canary). */
enum cb_on_leak cb_policy_on_leak(const cb_policy *p, const char *secret);
bool cb_policy_is_canary(const cb_policy *p, const char *secret);
const char *cb_on_leak_name(enum cb_on_leak a);

/* The first grant with the "scan" use (whatever its secret: scanning names
 * what it finds, never a value) held by a client peer matches, or NULL;
 * *ret_client (may be NULL) receives the client's name. */
/* The scan budget per uid and minute (defaults when the policy sets none). */
void cb_policy_scan_budget(const cb_policy *p, uint32_t *ret_requests, uint64_t *ret_bytes);
const cb_grant *cb_policy_scan_grant(const cb_policy *p, const cb_peer *peer, const char **ret_client);

/* A sandbox of client name: may it open a CONNECT tunnel to host:port
 * ("egress": {"allow": [...]}; "*.d" covers names below d)?  And should a
 * refusal alert ("alert_on_deny", default true)? */
bool cb_policy_egress_allows(const cb_policy *p, const char *name, const char *host, unsigned port);
bool cb_policy_egress_alert(const cb_policy *p, const char *name);

size_t cb_policy_n_clients(const cb_policy *p);
size_t cb_policy_n_grants(const cb_policy *p);
