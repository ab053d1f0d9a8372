/* SPDX-License-Identifier: Apache-2.0 */
/* The held-body budget (broker/base/held.c): a uid at most a quarter of the
 * total, the total never exceeded, nothing charged on a refusal, what is
 * given back reusable (red team rt7 F4). */
#include <errno.h>

#include "cbtest.h"
#include "held.h"

TEST(uid_share_and_total) {
        static cb_held_budget b = CB_HELD_BUDGET_INIT(1024);
        uint64_t mine = 0;

        /* One uid: at most 1024 / 4. */
        ASSERT_EQ(cb_held_take(&b, 1000, 200), 0);
        ASSERT_EQ(cb_held_take(&b, 1000, 56), 0);
        ASSERT_EQ(cb_held_take(&b, 1000, 1), -EDQUOT);
        ASSERT_EQ(cb_held_now(&b, 1000, &mine), 256);
        ASSERT_EQ(mine, 256);
        /* Others still have their share; the total is the cap. */
        ASSERT_EQ(cb_held_take(&b, 1001, 256), 0);
        ASSERT_EQ(cb_held_take(&b, 1002, 256), 0);
        ASSERT_EQ(cb_held_take(&b, 1003, 200), 0);
        ASSERT_EQ(cb_held_take(&b, 1004, 100), -EBUSY);
        ASSERT_EQ(cb_held_take(&b, 1004, 56), 0);
        ASSERT_EQ(cb_held_now(&b, 1004, NULL), 1024);
        /* Given back: reusable, by that uid or another. */
        cb_held_give(&b, 1000, 256);
        ASSERT_EQ(cb_held_now(&b, 1000, &mine), 768);
        ASSERT_EQ(mine, 0);
        ASSERT_EQ(cb_held_take(&b, 1004, 200), 0);
        ASSERT_EQ(cb_held_take(&b, 1000, 57), -EBUSY);
        ASSERT_EQ(cb_held_take(&b, 1000, 56), 0);
        /* A single charge over a share or the total. */
        ASSERT_EQ(cb_held_take(&b, 2000, 257), -EBUSY);
        ASSERT_EQ(cb_held_take(&b, 2000, 0), 0);
}

TEST(table_of_uids) {
        static cb_held_budget b = CB_HELD_BUDGET_INIT(1u << 30);

        for (uid_t u = 0; u < CB_HELD_UIDS; u++)
                ASSERT_EQ(cb_held_take(&b, u, 1), 0);
        ASSERT_EQ(cb_held_take(&b, CB_HELD_UIDS, 1), -EBUSY); /* no entry left */
        ASSERT_EQ(cb_held_take(&b, 3, 1), 0);                  /* one that holds some: its entry */
        cb_held_give(&b, 5, 1);                                /* uid 5 holds nothing now: its entry is free */
        ASSERT_EQ(cb_held_take(&b, CB_HELD_UIDS, 1), 0);
        cb_held_give(&b, 9999, 10);                            /* never charged: nothing happens */
        ASSERT_EQ(cb_held_now(&b, 3, NULL), CB_HELD_UIDS + 1);
}
