/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy parsing: the DESIGN example, every refusal (with the location it
 * names), caps.  Loading files and matching: test-policy-match.c.
 */
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbtest.h"
#include "error.h"
#include "policy.h"
#include "policy-fixture.h"

/* Parse must fail with err, leave *ret alone, and the message must contain
 * every given fragment (the location among them). */
#define expect_err(json, err, ...) expect_err_at(__LINE__, json, err, (const char *[]){ __VA_ARGS__, NULL })
static void expect_err_at(int line, const char *json, int err, const char *const *frags) {
        cb_policy *sentinel = (cb_policy *)(uintptr_t)0x1, *p = sentinel;
        int r;

        cb_error_clear();
        r = cb_policy_parse(json, strlen(json), "t.json", &p);
        if (r != err)
                cbtest_fail(__FILE__, line, "expected %d, got %d (%s) for:\n%s", err, r, cb_error_last(), json);
        if (p != sentinel)
                cbtest_fail(__FILE__, line, "out-param written on failure");
        for (; *frags; frags++)
                if (!strstr(cb_error_last(), *frags))
                        cbtest_fail(__FILE__, line, "message \"%s\" lacks \"%s\"", cb_error_last(), *frags);
}

/* ---- parsing ------------------------------------------------------------ */

TEST(design_example) {
        cb_policy *p = parse_ok(DESIGN_EXAMPLE);
        cb_peer peer = peer_make(1001, 1001, "/usr/bin/python3.11", "abc", "/user.slice/user-1001.slice/agent.scope");
        const cb_grant *g;
        const char *cl = NULL;

        ASSERT_EQ(cb_policy_n_clients(p), 1);
        ASSERT_EQ(cb_policy_n_grants(p), 1);
        ASSERT_TRUE(cb_policy_has_client(p, "github-tool"));
        ASSERT_FALSE(cb_policy_has_client(p, "github"));
        ASSERT_FALSE(cb_policy_has_client(p, NULL));
        g = cb_policy_find_grant(p, &peer, "github-token", CB_USE_PROXY, &cl);
        ASSERT_TRUE(g != NULL);
        ASSERT_STREQ(cl, "github-tool");
        ASSERT_STREQ(g->client, "github-tool");
        ASSERT_STREQ(g->secret, "github-token");
        ASSERT_EQ(g->uses, CB_USE_PROXY);
        ASSERT_EQ(g->max_ttl, 300);
        ASSERT_EQ(g->max_uses, 100);
        ASSERT_EQ(g->rate_n, 60);
        ASSERT_EQ(g->rate_window, 60);
        ASSERT_FALSE(g->approval);
        ASSERT_TRUE(cb_policy_find_grant(p, &peer, "github-token", CB_USE_REDEEM, NULL) == NULL);
        ASSERT_TRUE(cb_policy_is_admin(p, 0, 1234));
        ASSERT_FALSE(cb_policy_is_admin(p, 1001, 1001));
        cb_policy_free(p);
}

TEST(minimal_and_defaults) {
        cb_policy *p = parse_ok("{}");
        cb_peer peer = peer_make(0, 0, "/bin/sh", "x", "/");

        ASSERT_EQ(cb_policy_n_clients(p), 0);
        ASSERT_EQ(cb_policy_n_grants(p), 0);
        ASSERT_TRUE(cb_policy_find_grant(p, &peer, "a", CB_USE_PROXY, NULL) == NULL);
        ASSERT_EQ(cb_policy_match_clients(p, &peer, NULL, 0), 0);
        ASSERT_FALSE(cb_policy_is_admin(p, 0, 0));
        cb_policy_free(p);

        p = parse_ok("{\"clients\": {\"a\": {\"uid\": 7}}, \"grants\": [{\"client\": \"a\", \"secret\": \"s\", "
                     "\"use\": [\"scan\", \"redeem\"]}], \"admins\": {}}");
        peer = peer_make(7, 7, "/bin/sh", "x", "");
        const cb_grant *g = cb_policy_find_grant(p, &peer, "s", CB_USE_SCAN, NULL);
        ASSERT_TRUE(g != NULL);
        ASSERT_EQ(g->uses, CB_USE_SCAN | CB_USE_REDEEM);
        ASSERT_EQ(g->max_ttl, CB_TTL_DEFAULT);
        ASSERT_EQ(g->max_uses, 0);
        ASSERT_EQ(g->rate_n, 0);
        ASSERT_EQ(g->rate_window, 0);
        ASSERT_FALSE(g->approval);
        cb_policy_free(p);

        /* Whitespace around the value is fine, keys in any order (grants before clients). */
        p = parse_ok("  \n{\"grants\": [{\"use\": [\"proxy\"], \"secret\": \"*\", \"client\": \"a\", \"approval\": true,"
                     " \"max_uses\": 2147483648, \"max_ttl\": 86400, \"rate\": \"1000000/h\"}],"
                     " \"clients\": {\"a\": {\"gid\": 0}}}\n\t ");
        peer = peer_make(1, 0, "/bin/sh", "x", "");
        g = cb_policy_find_grant(p, &peer, "anything", CB_USE_PROXY, NULL);
        ASSERT_TRUE(g != NULL);
        ASSERT_TRUE(g->approval);
        ASSERT_EQ(g->max_uses, 2147483648u);
        ASSERT_EQ(g->max_ttl, 86400);
        ASSERT_EQ(g->rate_n, 1000000);
        ASSERT_EQ(g->rate_window, 3600);
        cb_policy_free(p);
}

TEST(rates) {
        static const struct { const char *s; uint32_t n, w; } good[] = {
                { "1/s", 1, 1 }, { "60/m", 60, 60 }, { "5/h", 5, 3600 }, { "1000000/s", 1000000, 1 },
        };
        static const char *const bad[] = {
                "5", "0/m", "5/d", "-1/s", "1000001/s", "/s", "5/", "5/ss", "5 /s", " 5/s", "+5/s", "5/S",
                "99999999999/s", "",
        };
        char json[512];

        for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
                cb_peer peer = peer_make(1, 1, "/x", "x", "");
                cb_policy *p;
                const cb_grant *g;

                snprintf(json, sizeof(json), "{\"clients\":{\"c\":{\"uid\":1}},\"grants\":[{\"client\":\"c\","
                         "\"secret\":\"s\",\"use\":[\"proxy\"],\"rate\":\"%s\"}]}", good[i].s);
                p = parse_ok(json);
                g = cb_policy_find_grant(p, &peer, "s", CB_USE_PROXY, NULL);
                ASSERT_TRUE(g != NULL);
                ASSERT_EQ(g->rate_n, good[i].n);
                ASSERT_EQ(g->rate_window, good[i].w);
                cb_policy_free(p);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                snprintf(json, sizeof(json), "{\"clients\":{\"c\":{\"uid\":1}},\"grants\":[{\"client\":\"c\","
                         "\"secret\":\"s\",\"use\":[\"proxy\"],\"rate\":\"%s\"}]}", bad[i]);
                expect_err(json, -EINVAL, "t.json: grants[0].rate: invalid rate");
        }
        expect_err("{\"clients\":{\"c\":{\"uid\":1}},\"grants\":[{\"client\":\"c\",\"secret\":\"s\","
                   "\"use\":[\"proxy\"],\"rate\":60}]}", -EINVAL, "grants[0].rate: expected a string");
}

TEST(syntax_errors_have_positions) {
        expect_err("{\"clients\": }", -EINVAL, "t.json:1:");
        expect_err("{\n  \"grants\": [\n    {,}\n  ]\n}", -EINVAL, "t.json:3:");
        /* Duplicate keys, at any level. */
        expect_err("{\"clients\": {}, \"clients\": {}}", -EINVAL, "t.json:1:", "duplicate");
        expect_err("{\"clients\": {\"a\": {\"uid\": 1,\n \"uid\": 2}}}", -EINVAL, "t.json:2:", "duplicate");
        /* Trailing garbage after the top-level value. */
        expect_err("{} x", -EINVAL, "t.json:1:");
        expect_err("{}{}", -EINVAL, "t.json:1:");
        expect_err("{}\n\n]", -EINVAL, "t.json:3:");
        expect_err("", -EINVAL, "t.json:");
        /* NUL bytes, in and out of strings. */
        expect_err("{\"clients\": {\"a\": {\"exe\": \"/bin/a\\u0000b\"}}}", -EINVAL, "t.json:1:");
        {
                static const char nul[] = "{}\0";
                cb_policy *p = NULL;

                ASSERT_ERR(cb_policy_parse(nul, sizeof(nul) - 1, "t.json", &p), -EINVAL);
                ASSERT_CONTAINS(cb_error_last(), "t.json:1:");
        }
        expect_err("{\"a\": 1e999}", -EINVAL, "t.json:1:");
        expect_err("{\"a\": [[[[[[[[[[1]]]]]]]]]]}", -EINVAL, "t.json:1:", "nested deeper");
        expect_err("[]", -EINVAL, "t.json: top level: expected an object, got an array");
        /* A NULL origin still gives a name. */
        {
                cb_policy *p = NULL;

                ASSERT_ERR(cb_policy_parse("{", 1, NULL, &p), -EINVAL);
                ASSERT_CONTAINS(cb_error_last(), "policy:1:");
        }
}

TEST(unknown_keys) {
        expect_err("{\"clients\": {}, \"grant\": []}", -EINVAL, "t.json: top level: unknown key \"grant\"");
        expect_err("{\"clients\": {\"a\": {\"uid\": 1, \"exe_sha265\": \"x\"}}}", -EINVAL,
                   "t.json: clients.a: unknown key \"exe_sha265\"");
        expect_err("{\"clients\": {\"a\": {\"uid\": 1}}, \"grants\": [{\"client\": \"a\", \"secret\": \"s\", "
                   "\"use\": [\"proxy\"], \"max_tll\": 60}]}", -EINVAL, "t.json: grants[0]: unknown key \"max_tll\"");
        expect_err("{\"admins\": {\"uid\": [0]}}", -EINVAL, "t.json: admins: unknown key \"uid\"");
        /* Control bytes in a key are escaped in the message. */
        expect_err("{\"a\\n\": 1}", -EINVAL, "unknown key \"a\\x0a\"");
}

TEST(type_errors) {
        expect_err("{\"clients\": []}", -EINVAL, "t.json: clients: expected an object, got an array");
        expect_err("{\"grants\": {}}", -EINVAL, "t.json: grants: expected an array, got an object");
        expect_err("{\"admins\": []}", -EINVAL, "t.json: admins: expected an object");
        expect_err("{\"clients\": {\"a\": 1}}", -EINVAL, "t.json: clients.a: expected an object, got an integer");
        expect_err("{\"grants\": [1]}", -EINVAL, "t.json: grants[0]: expected an object");
        expect_err("{\"clients\": {\"a\": {\"uid\": \"1\"}}}", -EINVAL, "clients.a.uid: expected an integer");
        expect_err("{\"clients\": {\"a\": {\"uid\": 1.0}}}", -EINVAL, "clients.a.uid: expected an integer");
        expect_err("{\"clients\": {\"a\": {\"uid\": 1}}, \"grants\": [{\"client\": \"a\", \"secret\": \"s\", "
                   "\"use\": [\"proxy\"], \"approval\": 0}]}", -EINVAL, "grants[0].approval: expected true or false");
        expect_err("{\"clients\": {\"a\": {\"uid\": 1}}, \"grants\": [{\"client\": \"a\", \"secret\": \"s\", "
                   "\"use\": \"proxy\"}]}", -EINVAL, "grants[0].use: expected an array");
        expect_err("{\"admins\": {\"uids\": [\"root\"]}}", -EINVAL, "admins.uids[0]: expected an integer");
        expect_err("{\"admins\": {\"users\": [0]}}", -EINVAL, "admins.users[0]: expected a string");
}

TEST(client_errors) {
        /* Names. */
        expect_err("{\"clients\": {\"bad name\": {\"uid\": 1}}}", -EINVAL, "t.json: clients: invalid client name \"bad name\"");
        expect_err("{\"clients\": {\"\": {\"uid\": 1}}}", -EINVAL, "clients: invalid client name \"\"");
        expect_err("{\"clients\": {\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": {\"uid\": 1}}}",
                   -EINVAL, "clients: invalid client name");
        /* 64 characters is fine. */
        cb_policy_free(parse_ok("{\"clients\": {\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": {\"uid\": 1}}}"));
        /* No selector. */
        expect_err("{\"clients\": {\"a\": {\"uid\": 1}, \"b\": {}}}", -EINVAL,
                   "t.json: clients.b: no selector", "match every caller");
        /* Exclusive pairs. */
        expect_err("{\"clients\": {\"a\": {\"uid\": 0, \"user\": \"root\"}}}", -EINVAL,
                   "t.json: clients.a: both \"uid\" and \"user\"");
        expect_err("{\"clients\": {\"a\": {\"user\": \"root\", \"uid\": 0}}}", -EINVAL,
                   "t.json: clients.a: both \"uid\" and \"user\"");
        expect_err("{\"clients\": {\"a\": {\"gid\": 0, \"group\": \"root\"}}}", -EINVAL,
                   "t.json: clients.a: both \"gid\" and \"group\"");
        /* Unknown accounts. */
        expect_err("{\"clients\": {\"a\": {\"user\": \"cb-no-such-user-x9\"}}}", -EINVAL,
                   "t.json: clients.a.user: unknown user \"cb-no-such-user-x9\"");
        expect_err("{\"clients\": {\"a\": {\"group\": \"cb-no-such-group-x9\"}}}", -EINVAL,
                   "t.json: clients.a.group: unknown group \"cb-no-such-group-x9\"");
        expect_err("{\"clients\": {\"a\": {\"user\": \"\"}}}", -EINVAL, "clients.a.user: must not be empty");
        /* Id ranges: (uid_t)-1 is not an id. */
        expect_err("{\"clients\": {\"a\": {\"uid\": 4294967295}}}", -EINVAL, "clients.a.uid: 4294967295 is out of range");
        expect_err("{\"clients\": {\"a\": {\"uid\": -1}}}", -EINVAL, "clients.a.uid: -1 is out of range");
        expect_err("{\"clients\": {\"a\": {\"gid\": 99999999999}}}", -EINVAL, "clients.a.gid:");
        cb_policy_free(parse_ok("{\"clients\": {\"a\": {\"uid\": 4294967294}}}"));
        /* exe_sha256. */
        expect_err("{\"clients\": {\"a\": {\"exe_sha256\": \"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a\"}}}",
                   -EINVAL, "t.json: clients.a.exe_sha256: expected 64 hex digits (a SHA-256), got 63 characters");
        expect_err("{\"clients\": {\"a\": {\"exe_sha256\": \"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015adff\"}}}",
                   -EINVAL, "clients.a.exe_sha256: expected 64 hex digits (a SHA-256), got 66 characters");
        expect_err("{\"clients\": {\"a\": {\"exe_sha256\": \"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ag\"}}}",
                   -EINVAL, "clients.a.exe_sha256: not a hex digit at position 64");
        expect_err("{\"clients\": {\"a\": {\"exe_sha256\": \" a7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}}}",
                   -EINVAL, "clients.a.exe_sha256: not a hex digit at position 1");
        /* exe. */
        expect_err("{\"clients\": {\"a\": {\"exe\": \"usr/bin/python3\"}}}", -EINVAL,
                   "t.json: clients.a.exe: \"usr/bin/python3\" is not an absolute path");
        expect_err("{\"clients\": {\"a\": {\"exe\": 1}}}", -EINVAL, "clients.a.exe: expected a string");
        /* The kernel reports canonical paths: other spellings could never match. */
        expect_err("{\"clients\": {\"a\": {\"exe\": \"/usr//bin/python3\"}}}", -EINVAL,
                   "clients.a.exe: \"/usr//bin/python3\" is not a canonical path");
        expect_err("{\"clients\": {\"a\": {\"exe\": \"/usr/bin/../bin/python3\"}}}", -EINVAL, "not a canonical path");
        expect_err("{\"clients\": {\"a\": {\"exe\": \"/usr/./bin/python3\"}}}", -EINVAL, "not a canonical path");
        expect_err("{\"clients\": {\"a\": {\"exe\": \"/usr/bin/\"}}}", -EINVAL, "not a canonical path");
        cb_policy_free(parse_ok("{\"clients\": {\"a\": {\"exe\": \"/usr/bin/.hidden..x\"}}}"));
        /* cgroup. */
        expect_err("{\"clients\": {\"a\": {\"cgroup\": \"user.slice\"}}}", -EINVAL,
                   "t.json: clients.a.cgroup: \"user.slice\" is not an absolute cgroup path");
        expect_err("{\"clients\": {\"a\": {\"cgroup\": \"/a/*/b\"}}}", -EINVAL, "clients.a.cgroup:", "trailing");
        expect_err("{\"clients\": {\"a\": {\"cgroup\": \"/a/b*\"}}}", -EINVAL, "clients.a.cgroup:", "trailing");
        expect_err("{\"clients\": {\"a\": {\"cgroup\": \"/a/b/\"}}}", -EINVAL, "clients.a.cgroup:", "never match");
        expect_err("{\"clients\": {\"a\": {\"cgroup\": \"/a//b\"}}}", -EINVAL, "clients.a.cgroup:", "never match");
        expect_err("{\"clients\": {\"a\": {\"cgroup\": \"//*\"}}}", -EINVAL, "clients.a.cgroup:", "never match");
        expect_err("{\"clients\": {\"a\": {\"cgroup\": \"/a/../*\"}}}", -EINVAL, "clients.a.cgroup:", "never match");
        expect_err("{\"clients\": {\"a\": {\"cgroup\": \"/a/*/*\"}}}", -EINVAL, "clients.a.cgroup:", "trailing");
        {
                char json[1024], long_cg[CB_CGROUP_MAX + 1];

                memset(long_cg, 'x', sizeof(long_cg) - 1);
                long_cg[0] = '/';
                long_cg[sizeof(long_cg) - 1] = '\0';
                snprintf(json, sizeof(json), "{\"clients\": {\"a\": {\"cgroup\": \"%s\"}}}", long_cg);
                expect_err(json, -EINVAL, "clients.a.cgroup: longer than");
        }
}

/* max_ttl as seconds or as a duration with a unit, as the CLI's --ttl. */
TEST(durations) {
        static const struct { const char *s; uint32_t secs; } good[] = {
                { "300", 300 },    { "45s", 45 },     { "90m", 5400 },      { "8h", 28800 },
                { "1d", 86400 },   { "86400s", 86400 }, { "1440m", 86400 }, { "0001m", 60 },
        };
        static const struct { const char *s, *why; } bad[] = {
                { "", "invalid duration" },          { "m", "invalid duration" },
                { "1.5h", "invalid duration" },      { "90 m", "invalid duration" },
                { " 90m", "invalid duration" },      { "90M", "invalid duration" },
                { "+5m", "invalid duration" },       { "-5m", "invalid duration" },
                { "1h30m", "invalid duration" },     { "5w", "invalid duration" },
                { "0x10", "invalid duration" },      { "12345678901234567d", "invalid duration" },
                { "9999999999999999", "invalid duration" }, { "999999", "\"999999\" is 999999 s, out of range" },
                { "0m", "\"0m\" is 0 s, out of range 1..86400 s" },
                { "2d", "\"2d\" is 172800 s, out of range 1..86400 s" }, { "86401s", "out of range" },
        };
        char json[512];

        for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
                cb_peer peer = peer_make(1, 1, "/x", "x", "");
                cb_policy *p;
                const cb_grant *g;

                snprintf(json, sizeof(json), "{\"clients\":{\"c\":{\"uid\":1}},\"grants\":[{\"client\":\"c\","
                         "\"secret\":\"s\",\"use\":[\"proxy\"],\"max_ttl\":\"%s\"}]}", good[i].s);
                p = parse_ok(json);
                g = cb_policy_find_grant(p, &peer, "s", CB_USE_PROXY, NULL);
                ASSERT_TRUE(g != NULL);
                ASSERT_EQ(g->max_ttl, good[i].secs);
                cb_policy_free(p);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                snprintf(json, sizeof(json), "{\"clients\":{\"c\":{\"uid\":1}},\"grants\":[{\"client\":\"c\","
                         "\"secret\":\"s\",\"use\":[\"proxy\"],\"max_ttl\":\"%s\"}]}", bad[i].s);
                expect_err(json, -EINVAL, "t.json: grants[0].max_ttl: ", bad[i].why);
        }
        /* A NUL inside the string is not read as "90m" (the JSON reader
         * refuses it first; the duration reader would too). */
        expect_err("{\"clients\":{\"c\":{\"uid\":1}},\"grants\":[{\"client\":\"c\",\"secret\":\"s\","
                   "\"use\":[\"proxy\"],\"max_ttl\":\"90m\\u0000\"}]}", -EINVAL, "t.json:");
}

TEST(grant_errors) {
#define C "{\"clients\": {\"a\": {\"uid\": 1}}, \"grants\": ["
#define G "{\"client\": \"a\", \"secret\": \"s\", \"use\": [\"proxy\"]}"
        cb_policy_free(parse_ok(C G "," G "]}"));
        expect_err(C G ", {\"client\": \"b\", \"secret\": \"s\", \"use\": [\"proxy\"]}]}", -EINVAL,
                   "t.json: grants[1].client: no client named \"b\" in \"clients\"");
        expect_err("{\"grants\": [" G "]}", -EINVAL, "t.json: grants[0].client: no client named \"a\"");
        expect_err(C G ", {\"client\": \"a\", \"secret\": \"s\", \"use\": [\"redeem\", \"proxi\"]}]}", -EINVAL,
                   "t.json: grants[1].use[1]: unknown use \"proxi\" (expected proxy, redeem, scan)");
        expect_err(C "{\"client\": \"a\", \"secret\": \"s\", \"use\": [\"proxy\", \"proxy\"]}]}", -EINVAL,
                   "t.json: grants[0].use[1]: duplicate use \"proxy\"");
        expect_err(C "{\"client\": \"a\", \"secret\": \"s\", \"use\": []}]}", -EINVAL, "t.json: grants[0].use: empty");
        expect_err(C "{\"client\": \"a\", \"secret\": \"s\", \"use\": [\"scan\", \"proxy\", \"redeem\", \"scan\"]}]}",
                   -EINVAL, "grants[0].use: more than 3 entries");
        expect_err(C "{\"client\": \"a\", \"secret\": \"s\", \"use\": [1]}]}", -EINVAL, "grants[0].use[0]: expected a string");
        expect_err(C "{\"client\": \"a\", \"secret\": \"s\"}]}", -EINVAL, "t.json: grants[0]: missing \"use\"");
        expect_err(C "{\"client\": \"a\", \"use\": [\"proxy\"]}]}", -EINVAL, "t.json: grants[0]: missing \"secret\"");
        expect_err(C "{\"secret\": \"s\", \"use\": [\"proxy\"]}]}", -EINVAL, "t.json: grants[0]: missing \"client\"");
        expect_err(C "{\"client\": \"a\", \"secret\": \"bad/name\", \"use\": [\"proxy\"]}]}", -EINVAL,
                   "t.json: grants[0].secret: \"bad/name\": invalid secret name");
        expect_err(C "{\"client\": \"a\", \"secret\": \"**\", \"use\": [\"proxy\"]}]}", -EINVAL, "grants[0].secret:");
        expect_err(C "{\"client\": \"a\", \"secret\": \"\", \"use\": [\"proxy\"]}]}", -EINVAL, "grants[0].secret:");
        expect_err(C "{\"client\": \"a\", \"secret\": \"s\", \"use\": [\"proxy\"], \"max_ttl\": 0}]}", -EINVAL,
                   "t.json: grants[0].max_ttl: 0 is out of range 1..86400");
        expect_err(C "{\"client\": \"a\", \"secret\": \"s\", \"use\": [\"proxy\"], \"max_ttl\": 86401}]}", -EINVAL,
                   "t.json: grants[0].max_ttl: 86401 is out of range 1..86400");
        expect_err(C "{\"client\": \"a\", \"secret\": \"s\", \"use\": [\"proxy\"], \"max_ttl\": true}]}", -EINVAL,
                   "grants[0].max_ttl: expected seconds (an integer) or a duration such as \"90m\"");
        expect_err(C "{\"client\": \"a\", \"secret\": \"s\", \"use\": [\"proxy\"], \"max_ttl\": 1.5}]}", -EINVAL,
                   "grants[0].max_ttl: expected seconds (an integer) or a duration", "got a real number");
        expect_err(C "{\"client\": \"a\", \"secret\": \"s\", \"use\": [\"proxy\"], \"max_uses\": -1}]}", -EINVAL,
                   "grants[0].max_uses: -1 is out of range");
        expect_err(C "{\"client\": \"a\", \"secret\": \"s\", \"use\": [\"proxy\"], \"max_uses\": 2147483649}]}", -EINVAL,
                   "grants[0].max_uses: 2147483649 is out of range");
        /* First error wins: grants[0] is reported, not grants[1]. */
        expect_err(C "{\"client\": \"a\", \"secret\": \"s\", \"use\": [\"proxy\"], \"max_ttl\": 0}, "
                   "{\"client\": \"zz\", \"secret\": \"s\", \"use\": [\"proxy\"]}]}", -EINVAL, "grants[0].max_ttl");
#undef C
#undef G
}

TEST(admins) {
        cb_policy *p = parse_ok("{\"admins\": {\"uids\": [1000, 1000, 4242], \"groups\": [\"root\"]}}");

        ASSERT_TRUE(cb_policy_is_admin(p, 1000, 100));
        ASSERT_TRUE(cb_policy_is_admin(p, 4242, 100));
        ASSERT_TRUE(cb_policy_is_admin(p, 1001, 0));    /* "root" group is gid 0 */
        ASSERT_FALSE(cb_policy_is_admin(p, 1001, 100));
        ASSERT_FALSE(cb_policy_is_admin(p, 0, 1));      /* uid 0 is not listed */
        cb_policy_free(p);

        p = parse_ok("{\"admins\": {\"users\": [\"root\"], \"gids\": [50, 51], \"uids\": [7]}}");
        ASSERT_TRUE(cb_policy_is_admin(p, 0, 99));
        ASSERT_TRUE(cb_policy_is_admin(p, 7, 99));
        ASSERT_TRUE(cb_policy_is_admin(p, 99, 51));
        ASSERT_FALSE(cb_policy_is_admin(p, 99, 52));
        cb_policy_free(p);

        expect_err("{\"admins\": {\"users\": [\"root\", \"cb-no-such-user-x9\"]}}", -EINVAL,
                   "t.json: admins.users[1]: unknown user \"cb-no-such-user-x9\"");
        expect_err("{\"admins\": {\"groups\": [\"cb-no-such-group-x9\"]}}", -EINVAL,
                   "t.json: admins.groups[0]: unknown group");
        expect_err("{\"admins\": {\"gids\": [-5]}}", -EINVAL, "t.json: admins.gids[0]: -5 is out of range");
}

/* head, then n items "pre<i>post" separated by commas, then tail. */
static char *repeat_json(const char *head, const char *pre, const char *post, size_t n, const char *tail) {
        size_t cap = strlen(head) + strlen(tail) + n * (strlen(pre) + strlen(post) + 24) + 1, o = 0;
        char *s = malloc(cap);

        ASSERT_TRUE(s != NULL);
        o += (size_t)snprintf(s + o, cap - o, "%s", head);
        for (size_t i = 0; i < n; i++)
                o += (size_t)snprintf(s + o, cap - o, "%s%s%zu%s", i ? "," : "", pre, i, post);
        snprintf(s + o, cap - o, "%s", tail);
        return s;
}

TEST(caps) {
        char *s;
        cb_policy *p;

        s = repeat_json("{\"clients\": {", "\"c", "\": {\"uid\": 1}", CB_POLICY_MAX_CLIENTS, "}}");
        p = parse_ok(s);
        ASSERT_EQ(cb_policy_n_clients(p), CB_POLICY_MAX_CLIENTS);
        ASSERT_TRUE(cb_policy_has_client(p, "c0"));
        ASSERT_TRUE(cb_policy_has_client(p, "c4095"));
        ASSERT_FALSE(cb_policy_has_client(p, "c4096"));
        cb_policy_free(p);
        free(s);
        s = repeat_json("{\"clients\": {", "\"c", "\": {\"uid\": 1}", CB_POLICY_MAX_CLIENTS + 1, "}}");
        expect_err(s, -EINVAL, "t.json: clients: more than 4096 clients");
        free(s);

        s = repeat_json("{\"clients\": {\"a\": {\"uid\": 1}}, \"grants\": [",
                        "{\"client\": \"a\", \"secret\": \"s", "\", \"use\": [\"scan\"]}", CB_POLICY_MAX_GRANTS, "]}");
        p = parse_ok(s);
        ASSERT_EQ(cb_policy_n_grants(p), CB_POLICY_MAX_GRANTS);
        {
                cb_peer peer = peer_make(1, 1, "/x", "x", "");
                const cb_grant *g = cb_policy_find_grant(p, &peer, "s16383", CB_USE_SCAN, NULL);

                ASSERT_TRUE(g != NULL);
                ASSERT_STREQ(g->secret, "s16383");
        }
        cb_policy_free(p);
        free(s);
        s = repeat_json("{\"clients\": {\"a\": {\"uid\": 1}}, \"grants\": [",
                        "{\"client\": \"a\", \"secret\": \"s", "\", \"use\": [\"scan\"]}", CB_POLICY_MAX_GRANTS + 1, "]}");
        expect_err(s, -EINVAL, "t.json: grants: more than 16384 grants");
        free(s);

        s = repeat_json("{\"admins\": {\"uids\": [", "", "", 1025, "]}}");
        expect_err(s, -EINVAL, "t.json: admins.uids: more than 1024 entries");
        free(s);

        /* Over the byte cap: refused before parsing. */
        {
                size_t n = CB_POLICY_MAX_BYTES + 1;
                char *big = malloc(n);
                cb_policy *q = NULL;

                ASSERT_TRUE(big != NULL);
                memset(big, ' ', n);
                big[0] = '{';
                big[n - 1] = '}';
                ASSERT_ERR(cb_policy_parse(big, n, "t.json", &q), -EFBIG);
                ASSERT_TRUE(q == NULL);
                big[n - 2] = '}';
                ASSERT_OK(cb_policy_parse(big, n - 1, "t.json", &q));
                cb_policy_free(q);
                free(big);
        }
}

/* A client's "egress" (sandboxes: CONNECT tunnels, docs/sandbox.md). */
TEST(egress) {
        cb_policy *p = NULL;
        static const char ok[] =
                "{\"clients\": {\"a\": {\"uid\": 1, \"egress\": {\"allow\": [\"API.github.com:443\", "
                "\"*.pythonhosted.org:443\"], \"alert_on_deny\": false}}, \"b\": {\"uid\": 2}}}";

        ASSERT_OK(cb_policy_parse(ok, strlen(ok), "t.json", &p));
        ASSERT_TRUE(cb_policy_egress_allows(p, "a", "api.github.com", 443));
        ASSERT_TRUE(cb_policy_egress_allows(p, "a", "API.GITHUB.COM", 443));
        ASSERT_FALSE(cb_policy_egress_allows(p, "a", "api.github.com", 80));
        ASSERT_FALSE(cb_policy_egress_allows(p, "a", "github.com", 443));
        ASSERT_FALSE(cb_policy_egress_allows(p, "a", "xapi.github.com", 443));
        ASSERT_TRUE(cb_policy_egress_allows(p, "a", "files.pythonhosted.org", 443));
        ASSERT_FALSE(cb_policy_egress_allows(p, "a", "pythonhosted.org", 443));
        ASSERT_FALSE(cb_policy_egress_allows(p, "a", "evilpythonhosted.org", 443));
        ASSERT_FALSE(cb_policy_egress_allows(p, "b", "api.github.com", 443));
        ASSERT_FALSE(cb_policy_egress_allows(p, "nobody", "api.github.com", 443));
        ASSERT_FALSE(cb_policy_egress_alert(p, "a"));
        ASSERT_TRUE(cb_policy_egress_alert(p, "b"));
        cb_policy_free(p);
        expect_err("{\"clients\": {\"a\": {\"uid\": 1, \"egress\": {\"allow\": [\"10.0.0.1:443\"]}}}}", -EINVAL,
                   "an IP literal");
        expect_err("{\"clients\": {\"a\": {\"uid\": 1, \"egress\": {\"allow\": [\"x.org\"]}}}}", -EINVAL,
                   "want host:port");
        expect_err("{\"clients\": {\"a\": {\"uid\": 1, \"egress\": {\"allow\": [\"x.org:0\"]}}}}", -EINVAL, "bad port");
        expect_err("{\"clients\": {\"a\": {\"uid\": 1, \"egress\": {\"allow\": [\"a*.org:443\"]}}}}", -EINVAL,
                   "not a DNS name");
        expect_err("{\"clients\": {\"a\": {\"uid\": 1, \"egress\": {\"allw\": []}}}}", -EINVAL,
                   "clients.a.egress: unknown key \"allw\"");
}

/* ---- the policy in force: an immutable snapshot (policy_snapshot.c) ---- */

TEST(snapshot_flags_derived_at_parse) {
        cb_policy *a = parse_ok("{\"clients\": {\"c\": {\"uid\": 1}}}");
        cb_policy *b = parse_ok("{\"clients\": {\"c\": {\"cgroup\": \"/a.slice/*\"}}}");
        ASSERT_TRUE(!cb_policy_uses_cgroup(a));
        ASSERT_TRUE(cb_policy_uses_cgroup(b));
        cb_policy_free(a);
        cb_policy_free(b);
}

/* A reader keeps the snapshot it took across a reload; the old policy
 * lives until its last reader lets it go. */
TEST(snapshot_survives_publish) {
        cb_policy_slot *s = cb_policy_slot_new(parse_ok("{\"clients\": {\"a\": {\"uid\": 1}, \"b\": {\"uid\": 2}}}"));
        ASSERT_TRUE(s);
        const cb_policy *held = cb_policy_acquire(s);
        ASSERT_EQ(cb_policy_n_clients(held), 2);
        cb_policy_publish(s, parse_ok("{\"clients\": {\"c\": {\"uid\": 3}}}"));
        ASSERT_EQ(cb_policy_n_clients(held), 2); /* still the one it took (ASan: not freed) */
        ASSERT_TRUE(cb_policy_has_client(held, "a"));
        const cb_policy *now = cb_policy_acquire(s);
        ASSERT_EQ(cb_policy_n_clients(now), 1);
        ASSERT_TRUE(cb_policy_has_client(now, "c"));
        cb_policy_unref(held); /* the last reference: freed here */
        cb_policy_unref(now);
        cb_policy_slot_free(s);
}

/* Readers acquire and release while a writer publishes new policies as
 * fast as it can: every snapshot a reader sees is whole (its clients and
 * grants agree), and nothing is freed under a reader (run under ASan in CI). */
#include <pthread.h>
#define SNAP_ROUNDS 20000
static cb_policy_slot *snap_slot;
static int snap_bad;
static void *snap_reader(void *arg) {
        (void)arg;
        for (int i = 0; i < SNAP_ROUNDS * 4; i++) {
                const cb_policy *p = cb_policy_acquire(snap_slot);
                size_t n = cb_policy_n_clients(p), g = cb_policy_n_grants(p);
                if (g != n || (n == 2) != cb_policy_has_client(p, "y"))
                        __atomic_store_n(&snap_bad, 1, __ATOMIC_RELAXED);
                cb_policy_unref(p);
        }
        return NULL;
}
TEST(snapshot_concurrent_publish) {
        static const char *one = "{\"clients\": {\"x\": {\"uid\": 1}}, \"grants\": [{\"client\": \"x\", "
                                 "\"secret\": \"s\", \"use\": [\"redeem\"]}]}";
        static const char *two = "{\"clients\": {\"x\": {\"uid\": 1}, \"y\": {\"uid\": 2}}, \"grants\": "
                                 "[{\"client\": \"x\", \"secret\": \"s\", \"use\": [\"redeem\"]}, {\"client\": \"y\", "
                                 "\"secret\": \"s\", \"use\": [\"redeem\"]}]}";
        pthread_t th[3];
        snap_slot = cb_policy_slot_new(parse_ok(one));
        for (int i = 0; i < 3; i++)
                ASSERT_EQ(pthread_create(&th[i], NULL, snap_reader, NULL), 0);
        for (int i = 0; i < SNAP_ROUNDS / 10; i++)
                cb_policy_publish(snap_slot, parse_ok(i % 2 ? one : two));
        for (int i = 0; i < 3; i++)
                pthread_join(th[i], NULL);
        ASSERT_EQ(snap_bad, 0);
        cb_policy_slot_free(snap_slot);
}
