/* SPDX-License-Identifier: Apache-2.0 */
/* client/cli_parse.c: the one syntax for numbers and times on the command line. */
#include <stdint.h>
#include <time.h>

#include "cbtest.h"
#include "cli.h"

TEST(unix_seconds) {
        uint64_t t = 0;
        ASSERT_EQ(cli_parse_time("1700000000", &t), 0);
        ASSERT_EQ(t, 1700000000u);
        ASSERT_TRUE(cli_parse_time("0", &t) < 0);
        ASSERT_TRUE(cli_parse_time("", &t) < 0);
        ASSERT_TRUE(cli_parse_time("-5", &t) < 0);
        ASSERT_TRUE(cli_parse_time("12x", &t) < 0);
        ASSERT_TRUE(cli_parse_time("99999999999999999999999", &t) < 0);
}

TEST(durations) {
        uint64_t t = 0, now = (uint64_t)time(NULL);
        ASSERT_EQ(cli_parse_time("+90m", &t), 0);
        ASSERT_TRUE(t >= now + 5400 && t <= now + 5402);
        ASSERT_EQ(cli_parse_time("1d", &t), 0);
        ASSERT_TRUE(t >= now + 86400 && t <= now + 86402);
        ASSERT_EQ(cli_parse_time("+30s", &t), 0);
        ASSERT_TRUE(t >= now + 30 && t <= now + 32);
        ASSERT_EQ(cli_parse_time("+2h", &t), 0);
        ASSERT_TRUE(t >= now + 7200 && t <= now + 7202);
        ASSERT_TRUE(cli_parse_time("+", &t) < 0);
        ASSERT_TRUE(cli_parse_time("+d", &t) < 0);
        ASSERT_TRUE(cli_parse_time("+5w", &t) < 0);
        ASSERT_TRUE(cli_parse_time("+-5m", &t) < 0);
        ASSERT_TRUE(cli_parse_time("+999999999999d", &t) < 0);
}

TEST(durations_alone) {
        unsigned long long d = 0;
        ASSERT_EQ(cli_parse_duration("300", 86400, &d), 0);
        ASSERT_EQ(d, 300);
        ASSERT_EQ(cli_parse_duration("90m", 86400, &d), 0);
        ASSERT_EQ(d, 5400);
        ASSERT_EQ(cli_parse_duration("1d", 86400, &d), 0);
        ASSERT_EQ(d, 86400);
        ASSERT_TRUE(cli_parse_duration("2d", 86400, &d) < 0);
        ASSERT_TRUE(cli_parse_duration("86401", 86400, &d) < 0);
        ASSERT_TRUE(cli_parse_duration("+5m", 86400, &d) < 0);
        ASSERT_TRUE(cli_parse_duration("m", 86400, &d) < 0);
        ASSERT_TRUE(cli_parse_duration("", 86400, &d) < 0);
}

TEST(rfc3339) {
        uint64_t t = 0;
        ASSERT_EQ(cli_parse_time("2027-01-31T12:00:00Z", &t), 0);
        ASSERT_EQ(t, 1801396800u);
        ASSERT_EQ(cli_parse_time("2027-01-31t12:00:00.250z", &t), 0);
        ASSERT_EQ(t, 1801396800u);
        ASSERT_EQ(cli_parse_time("2027-01-31T13:30:00+01:30", &t), 0);
        ASSERT_EQ(t, 1801396800u);
        ASSERT_EQ(cli_parse_time("2027-01-31T10:00:00-02:00", &t), 0);
        ASSERT_EQ(t, 1801396800u);
        ASSERT_TRUE(cli_parse_time("2027-02-30T00:00:00Z", &t) < 0);  /* no such day */
        ASSERT_TRUE(cli_parse_time("2027-01-31T12:00:00", &t) < 0);   /* no zone */
        ASSERT_TRUE(cli_parse_time("2027-01-31T24:00:00Z", &t) < 0);
        ASSERT_TRUE(cli_parse_time("2027-01-31T12:00:00Zjunk", &t) < 0);
        ASSERT_TRUE(cli_parse_time("2027-01-31T12:00:00+0100", &t) < 0);
        ASSERT_TRUE(cli_parse_time("1969-12-31T23:59:59Z", &t) < 0);
        ASSERT_TRUE(cli_parse_time("2027-1-31T12:00:00Z", &t) < 0);
}
