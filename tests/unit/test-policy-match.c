/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy: file checks on load, and matching of hand-built peers (parsing:
 * test-policy.c).
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
