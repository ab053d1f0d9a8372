/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy: the DESIGN example, every refusal (with the location it names),
 * file checks on load, and matching of hand-built peers.
 */
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbtest.h"
#include "error.h"
#include "policy.h"

/* SHA-256("abc") */
#define ABC_SHA256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

#define DESIGN_EXAMPLE                                                                       \
        "{\n"                                                                                \
        "  \"clients\": {\n"                                                                 \
        "    \"github-tool\": {\"uid\": 1001, \"exe\": \"/usr/bin/python3.11\",\n"           \
        "                    \"exe_sha256\": \"" ABC_SHA256 "\", \"gid\": 1001,\n"           \
        "                    \"cgroup\": \"/user.slice/user-1001.slice/agent.scope\"}\n"     \
        "  },\n"                                                                             \
        "  \"grants\": [\n"                                                                  \
        "    {\"client\": \"github-tool\", \"secret\": \"github-token\", \"use\": [\"proxy\"],\n" \
        "     \"max_ttl\": 300, \"max_uses\": 100, \"rate\": \"60/m\", \"approval\": false}\n" \
        "  ],\n"                                                                             \
        "  \"admins\": {\"uids\": [0]}\n"                                                    \
        "}\n"

static cb_policy *parse_ok(const char *json) {
        cb_policy *p = NULL;
        int r = cb_policy_parse(json, strlen(json), "t.json", &p);

        if (r < 0)
                cbtest_fail(__FILE__, __LINE__, "parse failed (%d): %s\n--- policy:\n%s", r, cb_error_last(), json);
        ASSERT_TRUE(p != NULL);
        return p;
}

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

static cb_peer peer_make(uid_t uid, gid_t gid, const char *exe, const char *exe_content, const char *cgroup) {
        cb_peer p;

        memset(&p, 0, sizeof(p));
        p.uid = uid;
        p.gid = gid;
        p.pid = 4242;
        p.pidfd = -1;
        snprintf(p.exe_path, sizeof(p.exe_path), "%s", exe);
        /* exe selectors match by file identity: the file at that path here. */
        struct stat st;
        if (stat(exe, &st) == 0) {
                p.exe_dev = st.st_dev;
                p.exe_ino = st.st_ino;
                p.exe_known = true;
        }
        p.hash_known = true;
        crypto_hash_sha256(p.exe_sha256, (const unsigned char *)exe_content, strlen(exe_content));
        sodium_bin2hex(p.exe_sha256_hex, sizeof(p.exe_sha256_hex), p.exe_sha256, sizeof(p.exe_sha256));
        snprintf(p.cgroup, sizeof(p.cgroup), "%s", cgroup);
        p.cgroup_known = true;
        return p;
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
        expect_err(C "{\"client\": \"a\", \"secret\": \"s\", \"use\": [\"proxy\"], \"max_ttl\": \"300\"}]}", -EINVAL,
                   "grants[0].max_ttl: expected an integer");
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

/* ---- loading files -------------------------------------------------------- */

static const char *write_policy(const char *name, const char *json, mode_t mode) {
        const char *path = cbtest_path(cbtest_tmpdir(), name);

        (void)unlink(path);
        ASSERT_OK(cbtest_write_file(path, json, strlen(json)));
        ASSERT_OK(chmod(path, mode));
        return path;
}

TEST(load_good_and_symlink) {
        const char *path = write_policy("good.json", DESIGN_EXAMPLE, 0644);
        const char *link = cbtest_path(cbtest_tmpdir(), "link.json");
        cb_policy *p = NULL;

        ASSERT_OK(cb_policy_load(path, &p));
        ASSERT_EQ(cb_policy_n_grants(p), 1);
        cb_policy_free(p);
        p = NULL;

        /* 0600 and 0400 are fine too. */
        ASSERT_OK(chmod(path, 0400));
        ASSERT_OK(cb_policy_load(path, &p));
        cb_policy_free(p);
        p = NULL;
        ASSERT_OK(chmod(path, 0644));

        ASSERT_OK(symlink(path, link));
        ASSERT_OK(cb_policy_load(link, &p));
        ASSERT_EQ(cb_policy_n_clients(p), 1);
        cb_policy_free(p);
}

TEST(load_refusals) {
        const char *dir = cbtest_tmpdir();
        const char *path;
        cb_policy *p = NULL;

        path = write_policy("w666.json", DESIGN_EXAMPLE, 0666);
        ASSERT_ERR(cb_policy_load(path, &p), -EPERM);
        ASSERT_CONTAINS(cb_error_last(), "is writable by group/others (mode 0666): refusing it");
        ASSERT_CONTAINS(cb_error_last(), path);

        path = write_policy("w620.json", DESIGN_EXAMPLE, 0620);
        ASSERT_ERR(cb_policy_load(path, &p), -EPERM);
        ASSERT_CONTAINS(cb_error_last(), "(mode 0620)");

        path = write_policy("w602.json", DESIGN_EXAMPLE, 0602);
        ASSERT_ERR(cb_policy_load(path, &p), -EPERM);

        /* A symlink to a writable file is judged by the file. */
        {
                const char *link = cbtest_path(dir, "link-w666.json");

                ASSERT_OK(symlink(cbtest_path(dir, "w666.json"), link));
                ASSERT_ERR(cb_policy_load(link, &p), -EPERM);
        }

        ASSERT_ERR(cb_policy_load(dir, &p), -EPERM);
        ASSERT_CONTAINS(cb_error_last(), "not a regular file");

        /* A FIFO must be refused without blocking in open(). */
        path = cbtest_path(dir, "fifo.json");
        ASSERT_OK(mkfifo(path, 0600));
        ASSERT_ERR(cb_policy_load(path, &p), -EPERM);

        ASSERT_ERR(cb_policy_load(cbtest_path(dir, "missing.json"), &p), -ENOENT);
        ASSERT_CONTAINS(cb_error_last(), "missing.json");

        /* Over 1 MiB. */
        {
                size_t n = CB_POLICY_MAX_BYTES + 1;
                char *big = malloc(n + 1);

                ASSERT_TRUE(big != NULL);
                memset(big, ' ', n);
                big[0] = '{';
                big[n - 1] = '}';
                big[n] = '\0';
                path = write_policy("big.json", big, 0644);
                ASSERT_ERR(cb_policy_load(path, &p), -EFBIG);
                /* Exactly the cap is fine. */
                big[n - 1] = '\0';
                big[n - 2] = '}';
                path = write_policy("cap.json", big, 0644);
                ASSERT_OK(cb_policy_load(path, &p));
                cb_policy_free(p);
                p = NULL;
                free(big);
        }

        /* Messages carry the path as origin. */
        path = write_policy("bad-syntax.json", "{\n\"clients\": {,}}", 0644);
        ASSERT_ERR(cb_policy_load(path, &p), -EINVAL);
        ASSERT_CONTAINS(cb_error_last(), "bad-syntax.json:2:");
        path = write_policy("bad-sem.json", "{\"grants\": [{\"client\": \"x\"}]}", 0644);
        ASSERT_ERR(cb_policy_load(path, &p), -EINVAL);
        ASSERT_CONTAINS(cb_error_last(), "bad-sem.json: grants[0].client");
        ASSERT_TRUE(p == NULL);
}

TEST(load_foreign_owner) {
        const char *path = write_policy("nobody.json", DESIGN_EXAMPLE, 0644);
        cb_policy *p = NULL;

        if (geteuid() != 0) {
                printf("note: not root, cannot chown; foreign-owner check not exercised\n");
                return;
        }
        ASSERT_OK(chown(path, 65534, 65534));
        ASSERT_ERR(cb_policy_load(path, &p), -EPERM);
        ASSERT_CONTAINS(cb_error_last(), "owned by uid 65534");
        ASSERT_TRUE(p == NULL);
        /* root-owned is fine. */
        ASSERT_OK(chown(path, 0, 0));
        ASSERT_OK(cb_policy_load(path, &p));
        cb_policy_free(p);
}

/* ---- matching --------------------------------------------------------------- */

TEST(match_uid_only) {
        cb_policy *p = parse_ok("{\"clients\": {\"u\": {\"uid\": 1001}}, \"grants\": [{\"client\": \"u\", "
                                "\"secret\": \"k\", \"use\": [\"redeem\"]}]}");
        cb_peer a = peer_make(1001, 5, "/any/thing", "whatever", "/x");
        cb_peer b = peer_make(1002, 1001, "/any/thing", "whatever", "/x");
        const char *cl = "untouched";

        ASSERT_TRUE(cb_policy_find_grant(p, &a, "k", CB_USE_REDEEM, NULL) != NULL);
        ASSERT_TRUE(cb_policy_find_grant(p, &b, "k", CB_USE_REDEEM, &cl) == NULL);
        ASSERT_STREQ(cl, "untouched");
        ASSERT_TRUE(cb_policy_find_grant(p, &a, "k2", CB_USE_REDEEM, NULL) == NULL);
        ASSERT_TRUE(cb_policy_find_grant(p, &a, "K", CB_USE_REDEEM, NULL) == NULL);
        cb_policy_free(p);
}

/* An earlier grant without approval does not override a later one with
 * "approval": true for the same client and secret (nor does a "*" one). */
TEST(approval_wins_over_order) {
        cb_policy *p = parse_ok("{\"clients\": {\"u\": {\"uid\": 1001}, \"v\": {\"uid\": 1001, \"exe\": \"/bin/true\"}},"
                                " \"grants\": [{\"client\": \"u\", \"secret\": \"*\", \"use\": [\"redeem\"]},"
                                " {\"client\": \"u\", \"secret\": \"k\", \"use\": [\"redeem\"]},"
                                " {\"client\": \"v\", \"secret\": \"k\", \"use\": [\"redeem\"], \"approval\": true}]}");
        cb_peer a = peer_make(1001, 1001, "/bin/true", "x", "");
        cb_peer b = peer_make(1001, 1001, "/bin/false", "x", "");
        const char *cl = NULL;
        const cb_grant *g = cb_policy_find_grant(p, &a, "k", CB_USE_REDEEM, &cl);
        ASSERT_TRUE(g && g->approval);
        ASSERT_STREQ(cl, "v");
        g = cb_policy_find_grant(p, &b, "k", CB_USE_REDEEM, &cl); /* v does not match: u's grant */
        ASSERT_TRUE(g && !g->approval);
        ASSERT_STREQ(cl, "u");
        g = cb_policy_find_grant(p, &a, "other", CB_USE_REDEEM, NULL);
        ASSERT_TRUE(g && !g->approval);
        cb_policy_free(p);
        p = parse_ok("{\"clients\": {\"u\": {\"uid\": 1001}}, \"grants\": [{\"client\": \"u\", \"secret\": \"*\","
                     " \"use\": [\"redeem\"]}, {\"client\": \"u\", \"secret\": \"k\", \"use\": [\"redeem\"],"
                     " \"approval\": true}]}");
        g = cb_policy_client_grant(p, "u", "k", CB_USE_REDEEM);
        ASSERT_TRUE(g && g->approval);
        cb_policy_free(p);
}

TEST(match_uid_exe) {
        cb_policy *p = parse_ok("{\"clients\": {\"t\": {\"uid\": 1001, \"exe\": \"/usr/bin/python3.11\"}}, "
                                "\"grants\": [{\"client\": \"t\", \"secret\": \"k\", \"use\": [\"proxy\"]}]}");
        cb_peer ok = peer_make(1001, 1001, "/usr/bin/python3.11", "x", "");
        cb_peer wrong_exe = peer_make(1001, 1001, "/usr/bin/python3.12", "x", "");
        cb_peer prefix_exe = peer_make(1001, 1001, "/usr/bin/python3.11x", "x", "");
        cb_peer deleted = peer_make(1001, 1001, "/usr/bin/python3.11 (deleted)", "x", "");
        cb_peer wrong_uid = peer_make(1000, 1001, "/usr/bin/python3.11", "x", "");

        ASSERT_TRUE(cb_policy_find_grant(p, &ok, "k", CB_USE_PROXY, NULL) != NULL);
        ASSERT_TRUE(cb_policy_find_grant(p, &wrong_exe, "k", CB_USE_PROXY, NULL) == NULL);
        ASSERT_TRUE(cb_policy_find_grant(p, &prefix_exe, "k", CB_USE_PROXY, NULL) == NULL);
        ASSERT_TRUE(cb_policy_find_grant(p, &deleted, "k", CB_USE_PROXY, NULL) == NULL);
        ASSERT_TRUE(cb_policy_find_grant(p, &wrong_uid, "k", CB_USE_PROXY, NULL) == NULL);
        cb_policy_free(p);

        /* Even a policy that names the " (deleted)" path never matches it. */
        p = parse_ok("{\"clients\": {\"t\": {\"exe\": \"/usr/bin/python3.11 (deleted)\"}}, "
                     "\"grants\": [{\"client\": \"t\", \"secret\": \"k\", \"use\": [\"proxy\"]}]}");
        ASSERT_TRUE(cb_policy_find_grant(p, &deleted, "k", CB_USE_PROXY, NULL) == NULL);
        cb_policy_free(p);

        /* A symlink in the policy is resolved at load (in the broker's
         * namespace) and matches the file it names; the checker can show
         * what it resolved to. */
        char *real = realpath("/usr/bin/python3", NULL);
        if (real && strcmp(real, "/usr/bin/python3") != 0) {
                const char *name, *exe, *resolved;
                cb_peer via = peer_make(1001, 1001, real, "x", "");

                p = parse_ok("{\"clients\": {\"t\": {\"uid\": 1001, \"exe\": \"/usr/bin/python3\"}}, "
                             "\"grants\": [{\"client\": \"t\", \"secret\": \"k\", \"use\": [\"proxy\"]}]}");
                ASSERT_TRUE(cb_policy_find_grant(p, &via, "k", CB_USE_PROXY, NULL) != NULL);
                ASSERT_TRUE(cb_policy_client_exe(p, 0, &name, &exe, &resolved));
                ASSERT_STREQ(exe, "/usr/bin/python3");
                ASSERT_STREQ(resolved, real);
                cb_policy_free(p);
        }
        free(real);
}

TEST(match_exe_sha256) {
        /* Upper-case hex is accepted and means the same hash. */
        cb_policy *p = parse_ok("{\"clients\": {\"h\": {\"exe_sha256\": "
                                "\"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\"}}, "
                                "\"grants\": [{\"client\": \"h\", \"secret\": \"k\", \"use\": [\"proxy\"]}]}");
        cb_peer abc = peer_make(5, 5, "/a", "abc", "");
        cb_peer abd = peer_make(5, 5, "/a", "abd", "");

        ASSERT_TRUE(cb_policy_find_grant(p, &abc, "k", CB_USE_PROXY, NULL) != NULL);
        ASSERT_TRUE(cb_policy_find_grant(p, &abd, "k", CB_USE_PROXY, NULL) == NULL);
        abc.exe_sha256[31] ^= 1;
        ASSERT_TRUE(cb_policy_find_grant(p, &abc, "k", CB_USE_PROXY, NULL) == NULL);
        cb_policy_free(p);
}

TEST(match_cgroup) {
        cb_policy *p = parse_ok("{\"clients\": {\"exact\": {\"cgroup\": \"/a/b\"}, \"prefix\": {\"cgroup\": \"/a/b/*\"},"
                                " \"root\": {\"cgroup\": \"/\"}, \"any\": {\"cgroup\": \"/*\"}}}");
        cb_policy *q = parse_ok("{\"clients\": {\"u\": {\"uid\": 1}}}");

        ASSERT_FALSE(cb_policy_uses_cgroup(q));
        cb_policy_free(q);
        static const struct { const char *cg; const char *expect; } cases[] = {
                { "/a/b", "exact any" },
                { "/a/b/c", "prefix any" },
                { "/a/b/c/d", "prefix any" },
                { "/a/bc", "any" },
                { "/a/b/", "any" },  /* not a kernel path; "/a/b/" + nothing is not a descendant */
                { "/a", "any" },
                { "/", "root" },
                { "", "" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                cb_peer peer = peer_make(1, 1, "/x", "x", cases[i].cg);
                const char *out[4];
                char got[64] = "";
                size_t n = cb_policy_match_clients(p, &peer, out, 4);

                for (size_t j = 0; j < n; j++) {
                        if (j)
                                strcat(got, " ");
                        strcat(got, out[j]);
                }
                if (strcmp(got, cases[i].expect) != 0)
                        cbtest_fail(__FILE__, __LINE__, "cgroup \"%s\": matched \"%s\", expected \"%s\"", cases[i].cg,
                                    got, cases[i].expect);
        }
        cb_policy_free(p);
}

TEST(match_gid_and_all_selectors) {
        cb_policy *p = parse_ok("{\"clients\": {\"all\": {\"uid\": 10, \"gid\": 20, \"exe\": \"/bin/true\", "
                                "\"exe_sha256\": \"" ABC_SHA256 "\", \"cgroup\": \"/s/*\"}, "
                                "\"grp\": {\"group\": \"root\"}}}");
        cb_peer ok = peer_make(10, 20, "/bin/true", "abc", "/s/x");
        cb_peer bad;
        const char *out[2];

        ASSERT_EQ(cb_policy_match_clients(p, &ok, out, 2), 1);
        ASSERT_STREQ(out[0], "all");
        bad = ok, bad.uid = 11;
        ASSERT_EQ(cb_policy_match_clients(p, &bad, NULL, 0), 0);
        bad = ok, bad.gid = 21;
        ASSERT_EQ(cb_policy_match_clients(p, &bad, NULL, 0), 0);
        bad = ok, bad.exe_ino ^= 1;     /* another file */
        ASSERT_EQ(cb_policy_match_clients(p, &bad, NULL, 0), 0);
        bad = ok, bad.exe_known = false; /* not read, or unlinked */
        ASSERT_EQ(cb_policy_match_clients(p, &bad, NULL, 0), 0);
        bad = ok, strcpy(bad.exe_path, "/bin/other"); /* the caller's path string is never compared */
        ASSERT_EQ(cb_policy_match_clients(p, &bad, NULL, 0), 1);
        bad = ok, bad.exe_sha256[0] ^= 0x80;
        ASSERT_EQ(cb_policy_match_clients(p, &bad, NULL, 0), 0);
        bad = ok, strcpy(bad.cgroup, "/t/x");
        ASSERT_EQ(cb_policy_match_clients(p, &bad, NULL, 0), 0);
        /* A cgroup that was not read (identified without CB_PEER_CGROUP)
         * never satisfies a cgroup selector, whatever the buffer holds. */
        ASSERT_TRUE(cb_policy_uses_cgroup(p));
        bad = ok, bad.cgroup_known = false;
        ASSERT_EQ(cb_policy_match_clients(p, &bad, NULL, 0), 0);
        /* "group": "root" resolves to gid 0. */
        bad = ok, bad.gid = 0;
        ASSERT_EQ(cb_policy_match_clients(p, &bad, out, 2), 1);
        ASSERT_STREQ(out[0], "grp");
        cb_policy_free(p);
}

TEST(grant_by_client_name) {
        cb_policy *p = parse_ok("{\"clients\": {\"a\": {\"uid\": 1}, \"b\": {\"uid\": 2}},"
                                " \"grants\": [{\"client\": \"a\", \"secret\": \"gh\", \"use\": [\"proxy\"]},"
                                "              {\"client\": \"b\", \"secret\": \"*\", \"use\": [\"redeem\"]}]}");

        ASSERT_TRUE(cb_policy_client_grant(p, "a", "gh", CB_USE_PROXY) != NULL);
        ASSERT_TRUE(cb_policy_client_grant(p, "a", "gh", CB_USE_REDEEM) == NULL);
        ASSERT_TRUE(cb_policy_client_grant(p, "a", "other", CB_USE_PROXY) == NULL);
        ASSERT_TRUE(cb_policy_client_grant(p, "b", "anything", CB_USE_REDEEM) != NULL);
        ASSERT_TRUE(cb_policy_client_grant(p, "c", "gh", CB_USE_PROXY) == NULL);
        ASSERT_TRUE(cb_policy_client_grant(p, "a", "gh", CB_USE_PROXY | CB_USE_REDEEM) == NULL);
        cb_policy_free(p);
}

TEST(match_order_and_wildcards) {
        cb_policy *p = parse_ok(
                "{\"clients\": {\"narrow\": {\"uid\": 1, \"exe\": \"/bin/true\"}, \"wide\": {\"uid\": 1},"
                "               \"other\": {\"uid\": 2}},"
                " \"grants\": ["
                "  {\"client\": \"other\", \"secret\": \"*\", \"use\": [\"proxy\", \"redeem\", \"scan\"]},"
                "  {\"client\": \"wide\", \"secret\": \"k\", \"use\": [\"proxy\"], \"max_ttl\": 10},"
                "  {\"client\": \"narrow\", \"secret\": \"k\", \"use\": [\"proxy\", \"redeem\"], \"max_ttl\": 20},"
                "  {\"client\": \"wide\", \"secret\": \"*\", \"use\": [\"scan\"], \"max_ttl\": 30}"
                " ]}");
        cb_peer tool = peer_make(1, 1, "/bin/true", "x", "");
        cb_peer sh = peer_make(1, 1, "/bin/sh", "x", "");
        cb_peer two = peer_make(2, 2, "/bin/sh", "x", "");
        const cb_grant *g;
        const char *cl = NULL, *out[1];

        /* Both narrow and wide match tool; wide's grant comes first in the file. */
        g = cb_policy_find_grant(p, &tool, "k", CB_USE_PROXY, &cl);
        ASSERT_TRUE(g != NULL);
        ASSERT_EQ(g->max_ttl, 10);
        ASSERT_STREQ(cl, "wide");
        /* redeem only via narrow's grant. */
        g = cb_policy_find_grant(p, &tool, "k", CB_USE_REDEEM, &cl);
        ASSERT_TRUE(g != NULL);
        ASSERT_EQ(g->max_ttl, 20);
        ASSERT_STREQ(cl, "narrow");
        ASSERT_TRUE(cb_policy_find_grant(p, &sh, "k", CB_USE_REDEEM, NULL) == NULL);
        /* "*" grants any secret, but only for its uses. */
        g = cb_policy_find_grant(p, &sh, "whatever", CB_USE_SCAN, &cl);
        ASSERT_TRUE(g != NULL);
        ASSERT_EQ(g->max_ttl, 30);
        ASSERT_STREQ(g->secret, "*");
        ASSERT_TRUE(cb_policy_find_grant(p, &sh, "whatever", CB_USE_PROXY, NULL) == NULL);
        ASSERT_TRUE(cb_policy_find_grant(p, &two, "whatever", CB_USE_REDEEM, NULL) != NULL);
        /* One use bit at a time; nothing else is a use. */
        ASSERT_TRUE(cb_policy_find_grant(p, &tool, "k", CB_USE_PROXY | CB_USE_REDEEM, NULL) == NULL);
        ASSERT_TRUE(cb_policy_find_grant(p, &two, "k", CB_USE_PROXY | CB_USE_REDEEM, NULL) == NULL);
        ASSERT_TRUE(cb_policy_find_grant(p, &two, "k", 0, NULL) == NULL);
        ASSERT_TRUE(cb_policy_find_grant(p, &two, "k", 1u << 3, NULL) == NULL);
        ASSERT_TRUE(cb_policy_find_grant(p, &two, NULL, CB_USE_PROXY, NULL) == NULL);
        /* match_clients counts all, writes at most n, in file order. */
        ASSERT_EQ(cb_policy_match_clients(p, &tool, out, 1), 2);
        ASSERT_STREQ(out[0], "narrow");
        ASSERT_EQ(cb_policy_match_clients(p, &sh, out, 1), 1);
        ASSERT_STREQ(out[0], "wide");
        cb_policy_free(p);
}

/* Approvers are separated from tools by uid alone: a client that selects by
 * gid (or exe, cgroup) and not by uid can select any uid, since a uid
 * changes its gid at will (red-team F6: gid 61570 tool, uid 61571 approved
 * after switching back to its own gid). */
TEST(uid_selectable_ignores_gid) {
        cb_policy *p = parse_ok("{\"clients\": {\"by-uid\": {\"uid\": 1001},\n"
                                "             \"by-gid\": {\"gid\": 61570}},\n"
                                " \"grants\": [], \"admins\": {\"uids\": [0]}}");
        const char *cl = NULL;

        ASSERT_TRUE(cb_policy_uid_selectable(p, 1001, &cl));
        ASSERT_TRUE(cl != NULL);
        ASSERT_TRUE(cb_policy_uid_selectable(p, 61571, &cl));
        ASSERT_STREQ(cl, "by-gid");
        cb_policy_free(p);
        p = parse_ok("{\"clients\": {\"by-uid\": {\"uid\": 1001, \"gid\": 5}},\n"
                     " \"grants\": [], \"admins\": {\"uids\": [0]}}");
        ASSERT_TRUE(cb_policy_uid_selectable(p, 1001, NULL));  /* whatever its gid */
        ASSERT_FALSE(cb_policy_uid_selectable(p, 0, NULL));
        cb_policy_free(p);
}
