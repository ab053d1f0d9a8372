/* SPDX-License-Identifier: Apache-2.0 */
/* The route table's lookups (broker/http/route.c): patterns, the first
 * matching path decides, the methods of a 405, the table's rules. */
#include "cbtest.h"
#include "route.h"

static int h(struct request *rq, const http_args *a) {
        (void)rq, (void)a;
        return 0;
}

static bool gate(struct request *rq, const http_route *path, int *ret) {
        (void)rq, (void)path, (void)ret;
        return false;
}

static const http_route tab[] = {
        { HTTP_TOOLS | HTTP_TCP, "CONNECT", NULL, h, HTTP_NEED_TOKEN_PROXY, "proxy", HTTP_ROUTE_STREAM },
        { HTTP_TOOLS | HTTP_TCP, NULL, "/v1/proxy/{rest...}", h, HTTP_NEED_TOKEN_PROXY, "proxy", HTTP_ROUTE_STREAM },
        { HTTP_TOOLS | HTTP_TCP, NULL, "http://{rest...}", h, HTTP_NEED_TOKEN_PROXY, "proxy",
          HTTP_ROUTE_STREAM | HTTP_ROUTE_NOCASE },
        { HTTP_TOOLS | HTTP_TCP, "GET", "/v1/health", h, HTTP_NEED_NONE, "health", HTTP_ROUTE_NAMED_405 },
        { HTTP_TOOLS, "POST", "/v1/token", h, HTTP_NEED_GRANT, "token" },
        { HTTP_TOOLS, NULL, "/v1/admin/{any...}", h, HTTP_NEED_NONE, NULL, HTTP_ROUTE_UNLISTED },
        { HTTP_ADMIN, "GET", "/v1/admin/secrets", h, HTTP_NEED_ADMIN, "admin.list" },
        { HTTP_ADMIN, "POST", "/v1/admin/secrets", h, HTTP_NEED_ADMIN, "admin.put" },
        { HTTP_ADMIN, "GET", "/v1/admin/versions/{name}", h, HTTP_NEED_ADMIN, "admin.versions" },
        { HTTP_ADMIN, "POST", "/v1/admin/versions/{name}/{version...}", h, HTTP_NEED_ADMIN, "admin.version",
          .seg_max = 8, .seg_too_long = "too long" },
        { HTTP_ADMIN, "GET", "/v1/admin/secrets/{name...}", h, HTTP_NEED_ADMIN, "admin.show" },
        { HTTP_ADMIN, "DELETE", "/v1/admin/secrets/{name...}", h, HTTP_NEED_ADMIN, "admin.delete" },
        { HTTP_ADMIN, "POST", "/v1/admin/approvals/{id}/approve", h, HTTP_NEED_ADMIN, "admin.approve" },
        { HTTP_ADMIN, NULL, "/v1/admin/approvals/{any...}", h, HTTP_NEED_ADMIN, "admin.approvals",
          HTTP_ROUTE_UNLISTED },
};

static const http_route *find(unsigned sock, const char *m, const char *t, http_args *a, const http_route **path) {
        return http_route_find(sock, m, t, a, path);
}

TEST(set) {
        ASSERT_OK(http_routes_set(tab, sizeof(tab) / sizeof(tab[0]), gate));
}

TEST(exact_and_method) {
        const http_route *p, *r;
        http_args a;
        char use[64];

        r = find(HTTP_TOOLS, "POST", "/v1/token", &a, &p);
        ASSERT_TRUE(r && r == p);
        ASSERT_STREQ(r->audit, "token");
        /* A wrong method: no route, the path decided (405). */
        ASSERT_TRUE(!find(HTTP_TOOLS, "GET", "/v1/token", &a, &p) && p);
        http_route_methods(HTTP_TOOLS, p, use, sizeof(use));
        ASSERT_STREQ(use, "use POST");
        ASSERT_TRUE(!find(HTTP_ADMIN, "PUT", "/v1/admin/secrets", &a, &p) && p);
        http_route_methods(HTTP_ADMIN, p, use, sizeof(use));
        ASSERT_STREQ(use, "use GET or POST");
        ASSERT_TRUE(!find(HTTP_ADMIN, "PUT", "/v1/admin/secrets/x", &a, &p) && p);
        http_route_methods(HTTP_ADMIN, p, use, sizeof(use));
        ASSERT_STREQ(use, "use GET or DELETE");
        /* Second of its pattern: found, the path is the first. */
        r = find(HTTP_ADMIN, "POST", "/v1/admin/secrets", &a, &p);
        ASSERT_TRUE(r && p && r != p);
        ASSERT_STREQ(r->audit, "admin.put");
        ASSERT_STREQ(p->audit, "admin.list");
        /* Unknown: neither. */
        ASSERT_TRUE(!find(HTTP_TOOLS, "POST", "/v1/tokens", &a, &p) && !p);
        ASSERT_TRUE(!find(HTTP_TOOLS, "POST", "/v1/toke", &a, &p) && !p);
        ASSERT_TRUE(!find(HTTP_TOOLS, "POST", "", &a, &p) && !p);
}

TEST(sockets) {
        const http_route *p;
        http_args a;

        ASSERT_TRUE(find(HTTP_TCP, "GET", "/v1/health", &a, &p));
        ASSERT_TRUE(!find(HTTP_TCP, "POST", "/v1/token", &a, &p) && !p);
        ASSERT_TRUE(!find(HTTP_ADMIN, "POST", "/v1/token", &a, &p) && !p);
        /* tools.sock's catch-all of admin routes is not on TCP. */
        ASSERT_TRUE(find(HTTP_TOOLS, "GET", "/v1/admin/secrets", &a, &p));
        ASSERT_TRUE(!find(HTTP_TCP, "GET", "/v1/admin/secrets", &a, &p) && !p);
}

TEST(patterns) {
        const http_route *p, *r;
        http_args a;

        r = find(HTTP_ADMIN, "GET", "/v1/admin/secrets/a/b", &a, &p);
        ASSERT_TRUE(r);
        ASSERT_STREQ(a.rest, "a/b");
        r = find(HTTP_ADMIN, "GET", "/v1/admin/secrets/", &a, &p);
        ASSERT_TRUE(r);
        ASSERT_STREQ(a.rest, "");
        /* {x} takes one segment, maybe empty. */
        r = find(HTTP_ADMIN, "GET", "/v1/admin/versions/abc", &a, &p);
        ASSERT_TRUE(r && a.seg_len == 3 && !memcmp(a.seg, "abc", 3));
        r = find(HTTP_ADMIN, "GET", "/v1/admin/versions/", &a, &p);
        ASSERT_TRUE(r && a.seg_len == 0);
        r = find(HTTP_ADMIN, "POST", "/v1/admin/versions/abc/3/x", &a, &p);
        ASSERT_TRUE(r && a.seg_len == 3);
        ASSERT_STREQ(a.rest, "3/x");
        ASSERT_STREQ(r->audit, "admin.version");
        /* GET of the action's path: 405 (the segment cap is the caller's to apply first). */
        ASSERT_TRUE(!find(HTTP_ADMIN, "GET", "/v1/admin/versions/abcdefghijk/3", &a, &p) && p);
        ASSERT_TRUE(p->seg_max == 8 && a.seg_len == 11);
        /* A literal after {x} must match whole. */
        ASSERT_TRUE(find(HTTP_ADMIN, "POST", "/v1/admin/approvals/12ab/approve", &a, &p));
        ASSERT_TRUE(a.seg_len == 4);
        r = find(HTTP_ADMIN, "POST", "/v1/admin/approvals/12ab/approve/x", &a, &p);
        ASSERT_TRUE(r && r->flags & HTTP_ROUTE_UNLISTED);
        r = find(HTTP_ADMIN, "POST", "/v1/admin/approvals/12ab/approv", &a, &p);
        ASSERT_TRUE(r && r->flags & HTTP_ROUTE_UNLISTED);
        ASSERT_TRUE(!find(HTTP_ADMIN, "GET", "/v1/admin/approvalsX", &a, &p) && !p);
        /* Case: only where the route says so. */
        ASSERT_TRUE(find(HTTP_TOOLS, "GET", "HTTP://example.com/", &a, &p));
        ASSERT_TRUE(!find(HTTP_TOOLS, "GET", "/V1/health", &a, &p) && !p);
}

TEST(method_only_first) {
        const http_route *p, *r;
        http_args a;

        /* CONNECT decides before any path (it comes first). */
        r = find(HTTP_TOOLS, "CONNECT", "/v1/token", &a, &p);
        ASSERT_TRUE(r && p == r);
        ASSERT_TRUE(r->flags & HTTP_ROUTE_STREAM);
        ASSERT_TRUE(!a.seg && !a.rest);
        /* The proxy takes any method. */
        ASSERT_TRUE(find(HTTP_TOOLS, "PATCH", "/v1/proxy/s/x", &a, &p));
}

TEST(rules) {
        static const http_route bad_syntax[] = { { HTTP_TOOLS, "GET", "/a/{x...}/b", h, HTTP_NEED_NONE, "a" } };
        static const http_route two_segs[] = { { HTTP_TOOLS, "GET", "/{a}/{b}", h, HTTP_NEED_NONE, "a" } };
        static const http_route open_brace[] = { { HTTP_TOOLS, "GET", "/{a", h, HTTP_NEED_NONE, "a" } };
        static const http_route admin_none[] = { { HTTP_ADMIN, "GET", "/a", h, HTTP_NEED_NONE, "a" } };
        static const http_route admin_tools[] = { { HTTP_TOOLS, "GET", "/a", h, HTTP_NEED_ADMIN, "a" } };
        static const http_route no_name[] = { { HTTP_TOOLS, "GET", "/a", h, HTTP_NEED_NONE, NULL } };
        static const http_route no_what[] = { { HTTP_TOOLS, NULL, NULL, h, HTTP_NEED_NONE, "a" } };
        static const http_route ok_admin[] = { { HTTP_ADMIN, "GET", "/a", h, HTTP_NEED_ADMIN, "a" } };

        ASSERT_ERR(http_routes_set(bad_syntax, 1, gate), -EINVAL);
        ASSERT_ERR(http_routes_set(two_segs, 1, gate), -EINVAL);
        ASSERT_ERR(http_routes_set(open_brace, 1, gate), -EINVAL);
        ASSERT_ERR(http_routes_set(admin_none, 1, gate), -EINVAL);
        ASSERT_ERR(http_routes_set(admin_tools, 1, gate), -EINVAL);
        ASSERT_ERR(http_routes_set(no_name, 1, gate), -EINVAL);
        ASSERT_ERR(http_routes_set(no_what, 1, gate), -EINVAL);
        ASSERT_ERR(http_routes_set(ok_admin, 1, NULL), -EINVAL); /* admin routes need the gate */
        ASSERT_OK(http_routes_set(ok_admin, 1, gate));
        /* A refused table leaves the one set before. */
        ASSERT_OK(http_routes_set(tab, sizeof(tab) / sizeof(tab[0]), gate));
        ASSERT_ERR(http_routes_set(admin_none, 1, gate), -EINVAL);
        size_t n;
        ASSERT_TRUE(http_routes(&n) == tab && n == sizeof(tab) / sizeof(tab[0]));
}
