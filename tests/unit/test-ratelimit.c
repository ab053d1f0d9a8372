/* SPDX-License-Identifier: Apache-2.0 */
#include "cbtest.h"
#include "ratelimit.h"

TEST(window) {
        cb_ratelimit *rl = cb_ratelimit_new(16);
        uint32_t retry = 0;

        for (int i = 0; i < 5; i++)
                ASSERT_TRUE(cb_ratelimit_take(rl, "tool", "gh", 5, 60, 1000, NULL));
        ASSERT_FALSE(cb_ratelimit_take(rl, "tool", "gh", 5, 60, 1010, &retry));
        ASSERT_EQ(retry, 50);
        /* Other keys are independent. */
        ASSERT_TRUE(cb_ratelimit_take(rl, "tool", "slack", 5, 60, 1010, NULL));
        ASSERT_TRUE(cb_ratelimit_take(rl, "other", "gh", 5, 60, 1010, NULL));
        /* A new window. */
        ASSERT_TRUE(cb_ratelimit_take(rl, "tool", "gh", 5, 60, 1060, NULL));
        /* No limit configured. */
        for (int i = 0; i < 100; i++)
                ASSERT_TRUE(cb_ratelimit_take(rl, "tool", "x", 0, 0, 1000, NULL));
        cb_ratelimit_free(rl);
}

TEST(bounded_table_reuses_oldest) {
        cb_ratelimit *rl = cb_ratelimit_new(4);
        char name[16];

        ASSERT_TRUE(cb_ratelimit_take(rl, "c", "old", 1, 3600, 100, NULL));
        ASSERT_FALSE(cb_ratelimit_take(rl, "c", "old", 1, 3600, 101, NULL));
        for (int i = 0; i < 3; i++) {
                snprintf(name, sizeof(name), "s%d", i);
                ASSERT_TRUE(cb_ratelimit_take(rl, "c", name, 1, 3600, 200 + (uint64_t)i, NULL));
        }
        /* Table full of the same requester's open windows: a fifth key
         * takes the slot of its oldest ("old"). */
        ASSERT_TRUE(cb_ratelimit_take(rl, "c", "new", 1, 3600, 300, NULL));
        ASSERT_FALSE(cb_ratelimit_take(rl, "c", "s2", 1, 3600, 301, NULL)); /* s2 kept its count */
        cb_ratelimit_free(rl);
}

/* A full table never evicts an open window (that would reset its count:
 * whoever can make new keys could reset their own limit); it refuses the
 * new key until a window closes, then reuses that slot. */
TEST(open_windows_never_evicted) {
        cb_ratelimit *rl = cb_ratelimit_new(4);
        char name[16];

        ASSERT_TRUE(rl != NULL);
        ASSERT_TRUE(cb_ratelimit_take(rl, "wild#1", "api", 3, 60, 1000, NULL));
        ASSERT_TRUE(cb_ratelimit_take(rl, "wild#1", "api", 3, 60, 1000, NULL));
        ASSERT_TRUE(cb_ratelimit_take(rl, "wild#1", "api", 3, 60, 1000, NULL));
        ASSERT_FALSE(cb_ratelimit_take(rl, "wild#1", "api", 3, 60, 1000, NULL));
        for (int i = 0; i < 3; i++) { /* fill the other slots */
                snprintf(name, sizeof(name), "n%d", i);
                ASSERT_TRUE(cb_ratelimit_take(rl, "wild#1", name, 3, 60, 1001, NULL));
        }
        /* Full of open windows, all its own: its oldest ("api") makes
         * room -- it can only loosen its own limit, and only by holding
         * more windows than the table (thousands of granted names). */
        ASSERT_TRUE(cb_ratelimit_take(rl, "wild#1", "n99", 3, 60, 1002, NULL));
        cb_ratelimit_free(rl);

        /* Another requester's open window is never taken: refused instead. */
        rl = cb_ratelimit_new(2);
        ASSERT_TRUE(cb_ratelimit_take(rl, "victim#2", "api", 1, 60, 1000, NULL));
        ASSERT_FALSE(cb_ratelimit_take(rl, "victim#2", "api", 1, 60, 1000, NULL));
        ASSERT_TRUE(cb_ratelimit_take(rl, "wild#1", "n0", 3, 60, 1001, NULL));
        uint32_t retry = 0;
        ASSERT_TRUE(cb_ratelimit_take(rl, "wild#1", "n1", 3, 60, 1002, NULL)); /* its own n0 made room */
        ASSERT_FALSE(cb_ratelimit_take(rl, "victim#2", "api", 1, 60, 1003, &retry)); /* count kept */
        ASSERT_TRUE(retry >= 1);
        ASSERT_FALSE(cb_ratelimit_take(rl, "third#3", "x", 1, 60, 1003, NULL)); /* no own window: refused */
        ASSERT_TRUE(cb_ratelimit_take(rl, "third#3", "x", 1, 60, 1061, NULL)); /* once a window closed */
        cb_ratelimit_free(rl);
}

/* One requester never holds more than 512 open windows: a "*" grant over
 * thousands of names cannot fill the table and lock others out. */
TEST(one_requester_cannot_fill_the_table) {
        cb_ratelimit *rl = cb_ratelimit_new(0); /* the daemon's 4,096 */
        char name[32];

        ASSERT_TRUE(rl != NULL);
        for (int i = 0; i < 5000; i++) {
                snprintf(name, sizeof(name), "s%d", i);
                ASSERT_TRUE(cb_ratelimit_take(rl, "wild#1", name, 3, 3600, 1000, NULL));
        }
        for (int i = 0; i < 7; i++) { /* seven more such requesters: 8 x 512 = the table */
                char who[16];
                snprintf(who, sizeof(who), "w%d#%d", i, i + 2);
                for (int k = 0; k < 600; k++) {
                        snprintf(name, sizeof(name), "s%d", k);
                        ASSERT_TRUE(cb_ratelimit_take(rl, who, name, 3, 3600, 1000, NULL));
                }
        }
        /* Full of others' open windows, none of its own: refused (fail
         * closed) -- but only once eight requesters each hold 512. */
        ASSERT_FALSE(cb_ratelimit_take(rl, "victim#99", "v", 10, 3600, 1000, NULL));
        cb_ratelimit_free(rl);

        rl = cb_ratelimit_new(0);
        for (int i = 0; i < 5000; i++) {
                snprintf(name, sizeof(name), "s%d", i);
                ASSERT_TRUE(cb_ratelimit_take(rl, "wild#1", name, 3, 3600, 1000, NULL));
        }
        ASSERT_TRUE(cb_ratelimit_take(rl, "victim#99", "v", 10, 3600, 1000, NULL)); /* one requester: room left */
        cb_ratelimit_free(rl);
}
