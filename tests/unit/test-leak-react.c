/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The leak reaction table (broker/leak/leak_react.c, leak_react.h): how the leak
 * response reaches the token table, proxy/ and rotate/ without calling them.
 * One process, one table: the steps run in order in one test.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cbtest.h"
#include "error.h"
#include "leak_react.h"

static unsigned cut_secret_calls, cut_accessor_calls, rotate_calls, revoke_calls;
static char last_secret[64], last_why[64];

static size_t cut_secret_a(const char *secret, const char *why) {
        cut_secret_calls++;
        snprintf(last_secret, sizeof(last_secret), "%s", secret);
        snprintf(last_why, sizeof(last_why), "%s", why);
        return 2;
}

static size_t cut_secret_b(const char *secret, const char *why) {
        (void)secret, (void)why;
        cut_secret_calls++;
        return 3;
}

static size_t cut_accessor_a(const char *accessor, const char *why) {
        (void)accessor, (void)why;
        cut_accessor_calls++;
        return 1;
}

static int rotate_ok(const char *name) {
        rotate_calls++;
        return strcmp(name, "fails") == 0 ? cb_error_set(-EIO, "the hook failed") : 0;
}

static int rotate_never(const char *name) {
        (void)name;
        cbtest_fail(__FILE__, __LINE__, "only the first registered rotate is asked");
        return 0;
}

static size_t revoke_secret_t(const char *secret) {
        revoke_calls++;
        return strcmp(secret, "github-token") == 0 ? 7 : 0;
}

static size_t revoke_accessor_t(const char *accessor) {
        revoke_calls++;
        return strcmp(accessor, "cba_live") == 0 ? 1 : 0;
}

static const leak_reaction tokens_like = { .name = "tokens", .revoke_secret = revoke_secret_t,
                                           .revoke_accessor = revoke_accessor_t };
static const leak_reaction proxy_like = { .name = "proxy", .cut_secret = cut_secret_a, .cut_accessor = cut_accessor_a };
static const leak_reaction rotate_like = { .name = "rotate", .rotate = rotate_ok };
static const leak_reaction both = { .name = "both", .cut_secret = cut_secret_b, .rotate = rotate_never };
static const leak_reaction extra = { .name = "extra" };

TEST(reactions_in_order) {
        /* Nothing registered: nothing cut, rotation refused with a reason. */
        ASSERT_EQ(leak_cut_secret("s", "why"), 0);
        ASSERT_EQ(leak_cut_accessor("cba_x", "why"), 0);
        ASSERT_EQ(leak_rotate("s"), -ENOSYS);
        ASSERT_TRUE(strstr(cb_error_last(), "rotation on leak is not available") != NULL);
        ASSERT_EQ(leak_revoke_secret("s"), 0);
        ASSERT_EQ(leak_revoke_accessor("cba_x"), 0);

        ASSERT_OK(leak_reaction_register(&tokens_like));
        ASSERT_OK(leak_reaction_register(&proxy_like));
        ASSERT_OK(leak_reaction_register(&rotate_like));
        ASSERT_OK(leak_reaction_register(&both));

        /* Every cut_secret is called, the counts add up, the arguments pass. */
        ASSERT_EQ(leak_cut_secret("github-token", "seen in scanned text"), 5);
        ASSERT_EQ(cut_secret_calls, 2);
        ASSERT_TRUE(strcmp(last_secret, "github-token") == 0 && strcmp(last_why, "seen in scanned text") == 0);
        /* A reaction without cut_accessor is skipped. */
        ASSERT_EQ(leak_cut_accessor("cba_x", "why"), 1);
        ASSERT_EQ(cut_accessor_calls, 1);
        /* The first registered rotate answers, its error passes through. */
        ASSERT_EQ(leak_rotate("github-token"), 0);
        ASSERT_EQ(leak_rotate("fails"), -EIO);
        ASSERT_TRUE(strcmp(cb_error_last(), "the hook failed") == 0);
        ASSERT_EQ(rotate_calls, 2);
        /* Revocation is a reaction too: only the table's owner answers. */
        ASSERT_EQ(leak_revoke_secret("github-token"), 7);
        ASSERT_EQ(leak_revoke_secret("other"), 0);
        ASSERT_EQ(leak_revoke_accessor("cba_live"), 1);
        ASSERT_EQ(revoke_calls, 3);

        /* The table is bounded. */
        for (int i = 4; i < LEAK_REACTIONS_MAX; i++)
                ASSERT_OK(leak_reaction_register(&extra));
        ASSERT_EQ(leak_reaction_register(&extra), -ENOSPC);
        ASSERT_EQ(leak_cut_secret("s", "why"), 5); /* unchanged by reactions that cut nothing */
}
