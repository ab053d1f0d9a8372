/* SPDX-License-Identifier: Apache-2.0 */
/* broker/proxy/egress.c: sealed destinations, SSRF address rules, paths, headers,
 * injection templates, the streaming redactor. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cbtest.h"
#include "egress.h"
#include "error.h"

static const char *refusal_of(const char *ip) {
        struct sockaddr_in a4 = { .sin_family = AF_INET };
        struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };

        if (inet_pton(AF_INET, ip, &a4.sin_addr) == 1)
                return cb_addr_refusal((struct sockaddr *)&a4);
        ASSERT_EQ(inet_pton(AF_INET6, ip, &a6.sin6_addr), 1);
        return cb_addr_refusal((struct sockaddr *)&a6);
}

TEST(address_rules) {
        static const struct { const char *ip, *why; } cases[] = {
                { "8.8.8.8", NULL },
                { "1.1.1.1", NULL },
                { "2606:4700:4700::1111", NULL },
                { "127.0.0.1", "loopback" },
                { "127.255.255.254", "loopback" },
                { "::1", "loopback" },
                { "10.1.2.3", "private" },
                { "172.16.0.1", "private" },
                { "172.31.255.255", "private" },
                { "172.32.0.1", NULL },
                { "192.168.1.1", "private" },
                { "169.254.169.254", "cloud metadata" },
                { "fd00:ec2::254", "cloud metadata" },
                { "169.254.1.1", "link-local" },
                { "fe80::1", "link-local" },
                { "fd12:3456::1", "private" },
                { "fc00::1", "private" },
                { "100.64.0.1", "shared (CGNAT)" },
                { "100.128.0.1", NULL },
                { "0.0.0.0", "unspecified" },
                { "::", "unspecified" },
                { "224.0.0.1", "multicast" },
                { "ff02::1", "multicast" },
                { "255.255.255.255", "reserved" },
                { "192.0.2.1", "reserved" },
                { "198.18.0.1", "reserved" },
                { "2001:db8::1", "reserved" },
                /* IPv4 inside IPv6: judged by the IPv4 address. */
                { "::ffff:127.0.0.1", "loopback" },
                { "::ffff:169.254.169.254", "cloud metadata" },
                { "::ffff:8.8.8.8", NULL },
                { "64:ff9b::10.0.0.1", "private" },
                { "2002:c0a8:0101::1", "private" },   /* 6to4 of 192.168.1.1 */
                { "::127.0.0.1", "reserved" },        /* IPv4-compatible */
                { "fec0::1", "private" },              /* site-local */
                { "64:ff9b:1::a00:1", "private" },     /* local-use NAT64 */
                { "::ffff:0:10.0.0.1", "private" },    /* SIIT */
                { "::ffff:0:8.8.8.8", "reserved" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                const char *got = refusal_of(cases[i].ip);
                if ((got == NULL) != (cases[i].why == NULL) || (got && strcmp(got, cases[i].why) != 0))
                        cbtest_fail(__FILE__, __LINE__, "%s: got %s, want %s", cases[i].ip, got ? got : "public",
                                    cases[i].why ? cases[i].why : "public");
        }
}

TEST(destinations) {
        cb_dest d, e;

        ASSERT_OK(cb_dest_parse("api.example.com", &d));
        ASSERT_TRUE(d.https && d.port == 443 && !d.literal);
        ASSERT_STREQ(d.host, "api.example.com");
        ASSERT_OK(cb_dest_parse("http://API.Example.com:8080", &d));
        ASSERT_TRUE(!d.https && d.port == 8080);
        ASSERT_STREQ(d.host, "api.example.com");
        ASSERT_OK(cb_dest_parse("127.0.0.1:8443", &d));
        ASSERT_TRUE(d.literal && d.port == 8443);
        ASSERT_OK(cb_dest_parse("[::1]:8443", &d));
        ASSERT_TRUE(d.literal && d.port == 8443);
        ASSERT_STREQ(d.host, "::1");
        ASSERT_ERR(cb_dest_parse("::1", &d), -EINVAL);              /* IPv6 needs brackets */
        ASSERT_ERR(cb_dest_parse("a.com:0", &d), -EINVAL);
        ASSERT_ERR(cb_dest_parse("a.com:65536", &d), -EINVAL);
        ASSERT_ERR(cb_dest_parse("a.com:", &d), -EINVAL);
        ASSERT_ERR(cb_dest_parse("a_b.com", &d), -EINVAL);
        ASSERT_ERR(cb_dest_parse("user@a.com", &d), -EINVAL);
        ASSERT_ERR(cb_dest_parse("[zz]:1", &d), -EINVAL);
        ASSERT_ERR(cb_dest_parse("", &d), -EINVAL);
        ASSERT_OK(cb_dest_parse_authority("a.com:443", true, &e));
        ASSERT_OK(cb_dest_parse("a.com", &d));
        ASSERT_TRUE(cb_dest_equal(&d, &e));
        ASSERT_OK(cb_dest_parse("http://a.com:443", &d));
        ASSERT_FALSE(cb_dest_equal(&d, &e));                         /* scheme differs */

        struct sockaddr_in a4 = { .sin_family = AF_INET };
        inet_pton(AF_INET, "127.0.0.1", &a4.sin_addr);
        ASSERT_TRUE(cb_addr_is((struct sockaddr *)&a4, "127.0.0.1"));
        ASSERT_FALSE(cb_addr_is((struct sockaddr *)&a4, "127.0.0.2"));
        ASSERT_FALSE(cb_addr_is((struct sockaddr *)&a4, "::1"));
}

TEST(paths) {
        static const char *const good[] = { "/", "/v1/chat/completions", "/a/b.c/d", "/a/.well-known", "/%41",
                                            "/a..b", "/a/..b/", "/caf%C3%A9", "/%E0%A4%85", "/a;b=c" };
        static const char *const bad[] = { "", "a", "/a/../b", "/..", "/a/.", "/./a", "/a/%2e%2e/b", "/a%2Fb",
                                           "/a%5cb", "/a\\b", "/a b", "/a#b", "/a%", "/a%zz", "/a%00", "/a\x01",
                                           "/echo/..;/admin", "/echo/.;x/a", "/echo/..%3B/admin",
                                           "/echo/%252e%252e/admin", "/echo/%c0%ae%c0%ae/admin",
                                           "/x/%E0%80%AE", "/x/%F8" };

        for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
                if (cb_path_check(good[i], strlen(good[i])) != 0)
                        cbtest_fail(__FILE__, __LINE__, "refused good path '%s': %s", good[i], cb_error_last());
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
                if (cb_path_check(bad[i], strlen(bad[i])) != -EINVAL)
                        cbtest_fail(__FILE__, __LINE__, "accepted bad path '%s'", bad[i]);
}

TEST(prefixes) {
        ASSERT_TRUE(cb_path_under("/v1/chat", "/v1/chat"));
        ASSERT_TRUE(cb_path_under("/v1/chat/completions", "/v1/chat"));
        ASSERT_FALSE(cb_path_under("/v1/chatX", "/v1/chat"));
        ASSERT_TRUE(cb_path_under("/v1/chatX", "/v1/"));
        ASSERT_FALSE(cb_path_under("/v2/x", "/v1/"));
        ASSERT_TRUE(cb_path_under("/anything", "/"));
}

TEST(headers) {
        ASSERT_FALSE(cb_header_bad("X-Test", "fine value"));
        ASSERT_TRUE(cb_header_bad("X-Test", "a\r\nX-Injected: 1"));
        ASSERT_TRUE(cb_header_bad("X-Test", "a\nb"));
        ASSERT_TRUE(cb_header_bad("X Test", "a"));
        ASSERT_TRUE(cb_header_bad("X-Test:", "a"));
        ASSERT_TRUE(cb_header_bad("", "a"));
        ASSERT_TRUE(cb_header_hop("Connection"));
        ASSERT_TRUE(cb_header_hop("transfer-encoding"));
        ASSERT_TRUE(cb_header_hop("Proxy-Authorization"));
        ASSERT_TRUE(cb_header_hop("Host"));
        ASSERT_FALSE(cb_header_hop("Authorization")); /* stripped by the proxy, but not hop-by-hop */
        ASSERT_FALSE(cb_header_hop("X-Api-Key"));
}

TEST(templates) {
        cb_inject in;
        size_t len;
        const char *t;

        ASSERT_OK(cb_inject_parse(NULL, &in));
        ASSERT_EQ(in.kind, CB_INJECT_HEADER);
        ASSERT_STREQ(in.name, "Authorization");
        ASSERT_STREQ(in.prefix, "Bearer ");
        ASSERT_OK(cb_inject_parse("x-api-key: {}", &in));
        ASSERT_STREQ(in.name, "x-api-key");
        ASSERT_STREQ(in.prefix, "");
        t = cb_inject_token(&in, "cbt_abc", &len);
        ASSERT_TRUE(t && len == 7);
        ASSERT_OK(cb_inject_parse("Authorization: token {} (v2)", &in));
        t = cb_inject_token(&in, "token cbt_x (v2)", &len);
        ASSERT_TRUE(t && len == 5 && strncmp(t, "cbt_x", 5) == 0);
        ASSERT_TRUE(cb_inject_token(&in, "Bearer cbt_x", &len) == NULL);
        ASSERT_OK(cb_inject_parse("basic:alice", &in));
        ASSERT_EQ(in.kind, CB_INJECT_BASIC);
        ASSERT_STREQ(in.name, "alice");
        ASSERT_OK(cb_inject_parse("query:api_key", &in));
        ASSERT_EQ(in.kind, CB_INJECT_QUERY);
        ASSERT_ERR(cb_inject_parse("basic:al:ice", &in), -EINVAL);
        ASSERT_ERR(cb_inject_parse("query:a&b", &in), -EINVAL);
        ASSERT_ERR(cb_inject_parse("query:", &in), -EINVAL);
        ASSERT_ERR(cb_inject_parse("X-Key: no hole", &in), -EINVAL);
        ASSERT_ERR(cb_inject_parse("X-Key: {} and {}", &in), -EINVAL);
        ASSERT_ERR(cb_inject_parse("Bad Name: {}", &in), -EINVAL);
        ASSERT_ERR(cb_inject_parse("Host: {}", &in), -EINVAL);       /* hop-by-hop / framing */
        ASSERT_ERR(cb_inject_parse("{}: x", &in), -EINVAL);
}

