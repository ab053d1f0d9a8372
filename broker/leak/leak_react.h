/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How the leak response reaches the subsystems that react to a leak.
 *
 * Containing a leak is cross-cutting: the tokens are revoked (the token
 * table main.c owns), what is in flight with the secret or the token is cut
 * (proxy/), and on_leak "rotate" rotates the secret as leaked (rotate/).
 * The leak code calls none of them directly: each reacting subsystem is a
 * leak_reaction that main.c registers at start, before any serving thread
 * runs; the table is only read after that, so it takes no lock.  A leaked rotation (rotate/)
 * cuts streams through the same table.
 */
#pragma once

#include <stddef.h>

typedef struct leak_reaction {
        const char *name; /* "tokens", "proxy", "rotate": who reacts (for the logs) */
        /* Revoke every token of secret / the token of this accessor.
         * Returns how many.  Any thread (the table locks itself).  NULL:
         * this subsystem holds no tokens. */
        size_t (*revoke_secret)(const char *secret);
        size_t (*revoke_accessor)(const char *accessor);
        /* Cut everything in flight made with any token of secret / with the
         * token of this accessor: a request not yet answered is refused,
         * a streaming body ends in an error.  Returns how many were cut.
         * Any thread (proxy_jobs_mu).  NULL: nothing of this kind to cut. */
        size_t (*cut_secret)(const char *secret, const char *why);
        size_t (*cut_accessor)(const char *accessor, const char *why);
        /* on_leak "rotate": rotate the secret as leaked (grace 0, the old
         * version's tokens revoked, old version disabled, the rotation hook
         * run).  Takes rotate/'s lock itself.  0 once the rotation is done or
         * safely under way, else a negative errno with cb_error_last()
         * saying why; the leak response then falls back to "revoke" (tokens
         * revoked, secret marked compromised) and says so in the alert.
         * NULL: this subsystem does not rotate. */
        int (*rotate)(const char *name);
} leak_reaction;

#define LEAK_REACTIONS_MAX 4

/* Register r (kept by pointer: static storage).  Call at start, before
 * the serving threads.  0, or -ENOSPC past LEAK_REACTIONS_MAX. */
int leak_reaction_register(const leak_reaction *r) __attribute__((warn_unused_result));

/* Every registered revoke_secret / revoke_accessor; returns the sum. */
size_t leak_revoke_secret(const char *secret);
size_t leak_revoke_accessor(const char *accessor);

/* Every registered cut_secret / cut_accessor; returns the sum. */
size_t leak_cut_secret(const char *secret, const char *why);
size_t leak_cut_accessor(const char *accessor, const char *why);

/* The first registered rotate; -ENOSYS ("rotation on leak is not available
 * in this broker") when none is registered. */
int leak_rotate(const char *name);
