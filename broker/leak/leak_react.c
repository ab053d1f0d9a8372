/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The table of the subsystems that react to a leak (leak_react.h): filled by
 * main.c at start, before any serving thread, and only read after that.
 * In the broker library, so tests/unit/test-leak-react.c links it alone.
 */
#include <errno.h>
#include <stddef.h>

#include "error.h"
#include "leak_react.h"

static const leak_reaction *reactions[LEAK_REACTIONS_MAX];
static size_t n_reactions;

int leak_reaction_register(const leak_reaction *r) {
        if (n_reactions == LEAK_REACTIONS_MAX)
                return cb_error_set(-ENOSPC, "too many leak reactions (at most %d)", LEAK_REACTIONS_MAX);
        reactions[n_reactions++] = r;
        return 0;
}

size_t leak_revoke_secret(const char *secret) {
        size_t n = 0;

        for (size_t i = 0; i < n_reactions; i++)
                if (reactions[i]->revoke_secret)
                        n += reactions[i]->revoke_secret(secret);
        return n;
}

size_t leak_revoke_accessor(const char *accessor) {
        size_t n = 0;

        for (size_t i = 0; i < n_reactions; i++)
                if (reactions[i]->revoke_accessor)
                        n += reactions[i]->revoke_accessor(accessor);
        return n;
}

size_t leak_cut_secret(const char *secret, const char *why) {
        size_t n = 0;

        for (size_t i = 0; i < n_reactions; i++)
                if (reactions[i]->cut_secret)
                        n += reactions[i]->cut_secret(secret, why);
        return n;
}

size_t leak_cut_accessor(const char *accessor, const char *why) {
        size_t n = 0;

        for (size_t i = 0; i < n_reactions; i++)
                if (reactions[i]->cut_accessor)
                        n += reactions[i]->cut_accessor(accessor, why);
        return n;
}

int leak_rotate(const char *name) {
        for (size_t i = 0; i < n_reactions; i++)
                if (reactions[i]->rotate)
                        return reactions[i]->rotate(name);
        return cb_error_set(-ENOSYS, "rotation on leak is not available in this broker");
}
