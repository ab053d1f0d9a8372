/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the policy tests share (test-policy.c: parsing; test-policy-match.c:
 * loading files and matching): the DESIGN example, a parse that must
 * succeed, and a hand-built peer.
 */
#pragma once

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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

static inline cb_policy *parse_ok(const char *json) {
        cb_policy *p = NULL;
        int r = cb_policy_parse(json, strlen(json), "t.json", &p);

        if (r < 0)
                cbtest_fail(__FILE__, __LINE__, "parse failed (%d): %s\n--- policy:\n%s", r, cb_error_last(), json);
        ASSERT_TRUE(p != NULL);
        return p;
}

static inline cb_peer peer_make(uid_t uid, gid_t gid, const char *exe, const char *exe_content, const char *cgroup) {
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
