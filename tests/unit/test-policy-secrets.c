/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy's "secrets" section (broker/policy/policy_secrets.c): on_leak and
 * canary, every refusal with the location it names, canaries never
 * granted (not by name, not by "*"), and the scan grant lookup.
 */
#include <string.h>

#include "cbtest.h"
#include "error.h"
#include "policy.h"

static cb_policy *parse(const char *json, int want) {
        cb_policy *p = NULL;
        int r = cb_policy_parse(json, strlen(json), "t.json", &p);

        if (r != want)
                cbtest_fail(__FILE__, __LINE__, "parse: %d, wanted %d: %s\n%s", r, want, cb_error_last(), json);
        return p;
}

static void refused(const char *json, const char *msg) {
        cb_policy *p = parse(json, -EINVAL);
        ASSERT_TRUE(p == NULL);
        if (!strstr(cb_error_last(), msg))
                cbtest_fail(__FILE__, __LINE__, "message '%s' lacks '%s'", cb_error_last(), msg);
}

TEST(on_leak_and_canary) {
        cb_policy *p = parse("{\"clients\": {\"t\": {\"uid\": 5}},"
                             " \"grants\": [{\"client\": \"t\", \"secret\": \"*\", \"use\": [\"redeem\", \"scan\"]}],"
                             " \"secrets\": {\"a\": {\"on_leak\": \"rotate\"}, \"b\": {\"on_leak\": \"alert\"},"
                             "  \"c\": {\"canary\": true}, \"d\": {\"on_leak\": \"revoke\", \"canary\": false}}}",
                             0);
        ASSERT_EQ(cb_policy_on_leak(p, "a"), CB_ON_LEAK_ROTATE);
        ASSERT_EQ(cb_policy_on_leak(p, "b"), CB_ON_LEAK_ALERT);
        ASSERT_EQ(cb_policy_on_leak(p, "c"), CB_ON_LEAK_REVOKE);
        ASSERT_EQ(cb_policy_on_leak(p, "d"), CB_ON_LEAK_REVOKE);
        ASSERT_EQ(cb_policy_on_leak(p, "unlisted"), CB_ON_LEAK_REVOKE);
        ASSERT_TRUE(cb_policy_is_canary(p, "c"));
        ASSERT_FALSE(cb_policy_is_canary(p, "d"));
        ASSERT_FALSE(cb_policy_is_canary(p, "unlisted"));
        ASSERT_TRUE(strcmp(cb_on_leak_name(CB_ON_LEAK_ALERT), "alert") == 0);

        cb_peer peer = { .uid = 5, .gid = 5, .pid = 1 };
        const char *client = NULL;
        /* "*" reaches every secret but a canary */
        ASSERT_TRUE(cb_policy_find_grant(p, &peer, "a", CB_USE_REDEEM, NULL) != NULL);
        ASSERT_TRUE(cb_policy_find_grant(p, &peer, "c", CB_USE_REDEEM, NULL) == NULL);
        ASSERT_TRUE(cb_policy_client_grant(p, "t", "c", CB_USE_REDEEM) == NULL);
        ASSERT_TRUE(cb_policy_scan_grant(p, &peer, &client) != NULL);
        ASSERT_TRUE(strcmp(client, "t") == 0);
        peer.uid = 6;
        ASSERT_TRUE(cb_policy_scan_grant(p, &peer, NULL) == NULL);
        cb_policy_free(p);
}

TEST(no_scan_grant_without_scan_use) {
        cb_policy *p = parse("{\"clients\": {\"t\": {\"uid\": 5}},"
                             " \"grants\": [{\"client\": \"t\", \"secret\": \"x\", \"use\": [\"redeem\"]}]}", 0);
        cb_peer peer = { .uid = 5, .gid = 5, .pid = 1 };
        ASSERT_TRUE(cb_policy_scan_grant(p, &peer, NULL) == NULL);
        cb_policy_free(p);
}

TEST(refusals) {
        refused("{\"secrets\": []}", "secrets: expected an object");
        refused("{\"secrets\": {\"bad name\": {}}}", "secrets: invalid secret name");
        refused("{\"secrets\": {\"x\": 1}}", "secrets.x: expected an object");
        refused("{\"secrets\": {\"x\": {\"on_leak\": \"ignore\"}}}", "secrets.x.on_leak");
        refused("{\"secrets\": {\"x\": {\"on_leak\": 1}}}", "secrets.x.on_leak");
        refused("{\"secrets\": {\"x\": {\"canary\": \"yes\"}}}", "secrets.x.canary: expected true or false");
        refused("{\"secrets\": {\"x\": {\"on_leek\": \"alert\"}}}", "secrets.x: unknown key \"on_leek\"");
        refused("{\"clients\": {\"t\": {\"uid\": 5}},"
                " \"grants\": [{\"client\": \"t\", \"secret\": \"y\", \"use\": [\"redeem\"]},"
                "              {\"client\": \"t\", \"secret\": \"x\", \"use\": [\"proxy\"]}],"
                " \"secrets\": {\"x\": {\"canary\": true}}}",
                "grants[1].secret: \"x\" is a canary");
        refused("{\"secrets\": {}, \"secret\": {}}",
                "top level: unknown key \"secret\" (expected clients, grants, admins, secrets, scan_budget)");
}
