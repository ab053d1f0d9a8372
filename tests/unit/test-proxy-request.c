/* SPDX-License-Identifier: Apache-2.0 */
/* broker/proxy/proxy_request.c, proxy_body.c: the proxy's decision on a raw
 * request head (framing, target bytes), which headers go upstream, the
 * query filter, token detection, the body override scan and the response
 * framing rules (docs/hardening-proxy.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cbtest.h"
#include "codec.h"
#include "proxy_request.h"

/* Headers from "Name: value" strings (NULL-terminated list). */
static size_t mk(const char *const *lines, cb_preq_header *h) {
        size_t n = 0;
        for (; lines[n]; n++) {
                const char *c = strchr(lines[n], ':');
                const char *v = c + 1;
                while (*v == ' ')
                        v++;
                h[n] = (cb_preq_header){ .name = lines[n], .name_len = (size_t)(c - lines[n]), .value = v,
                                         .value_len = strlen(v) };
        }
        return n;
}

static unsigned decide(const char *method, const char *target, const char *const *lines, cb_preq_head *o) {
        cb_preq_header h[32];
        size_t n = mk(lines, h);
        int r = cb_preq_decide(method, target, strlen(target), h, n, o);
        ASSERT_EQ(r == 0, o->status == 0);
        return o->status;
}

#define H(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NOH ((const char *const[]){ NULL })

TEST(framing) {
        cb_preq_head o;
        const char *t = "/v1/proxy/up/echo";

        ASSERT_EQ(decide("GET", t, NOH, &o), 0);
        ASSERT_EQ(o.frame, CB_FRAME_NONE);
        ASSERT_EQ(decide("POST", t, H("Content-Length: 5"), &o), 0);
        ASSERT_EQ(o.frame, CB_FRAME_LENGTH);
        ASSERT_EQ(o.length, 5);
        ASSERT_EQ(decide("POST", t, H("Content-Length: 005"), &o), 0);
        ASSERT_EQ(o.length, 5);
        ASSERT_EQ(decide("POST", t, H("Content-Length: 0"), &o), 0);
        ASSERT_EQ(o.frame, CB_FRAME_NONE);
        ASSERT_EQ(decide("POST", t, H("Transfer-Encoding: chunked"), &o), 0);
        ASSERT_EQ(o.frame, CB_FRAME_CHUNKED);
        /* RFC 9112 §6: every ambiguity refused. */
        const char *const *bad[] = {
                H("Content-Length: 5", "Transfer-Encoding: chunked"),
                H("Transfer-Encoding: chunked", "Content-Length: 0"),
                H("Content-Length: 5", "Content-Length: 5"),
                H("Content-Length: 0", "Content-Length: 5"),
                H("Content-Length: 5, 5"),
                H("Content-Length: +5"),
                H("Content-Length: -1"),
                H("Content-Length:  5 "),
                H("Content-Length: 5 "),
                H("Content-Length: 0x5"),
                H("Content-Length: 1e3"),
                H("Content-Length: 9999999999999999999"),
                H("Content-Length: "),
                H("Transfer-Encoding: Chunked"),
                H("Transfer-Encoding: CHUNKED"),
                H("Transfer-Encoding: chunked "),
                H("Transfer-Encoding: chunked, chunked"),
                H("Transfer-Encoding: gzip, chunked"),
                H("Transfer-Encoding: gzip"),
                H("Transfer-Encoding: identity"),
                H("Transfer-Encoding: "),
                H("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
                H("transfer-encoding: chunked", "TRANSFER-ENCODING: chunked"),
                H("Content-Length : 5"),
                H("Transfer-Encoding\t: chunked"),
                H("Host: a", "Host: b"),
                H("X-A: a\rb"),
                H("X-A: a\nb"),
                H("X-A: \x01"),
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (decide("POST", t, bad[i], &o) != 400)
                        cbtest_fail(__FILE__, __LINE__, "case %zu (%s) accepted", i, bad[i][0]);
                ASSERT_TRUE(o.why[0]);
        }
        /* obs-fold, as the HTTP layer reports it. */
        cb_preq_header f[] = { { .name = "X-A", .name_len = 3, .value = "b", .value_len = 1, .folded = true } };
        ASSERT_EQ(cb_preq_decide("GET", t, strlen(t), f, 1, &o), -EINVAL);
        ASSERT_EQ(o.status, 400);
        /* Caps. */
        cb_preq_header many[CB_PREQ_HEADERS_MAX + 1];
        for (size_t i = 0; i < CB_PREQ_HEADERS_MAX + 1; i++)
                many[i] = (cb_preq_header){ .name = "X-A", .name_len = 3, .value = "b", .value_len = 1 };
        ASSERT_EQ(cb_preq_decide("GET", t, strlen(t), many, CB_PREQ_HEADERS_MAX + 1, &o), -EINVAL);
        ASSERT_EQ(o.status, 431);
        ASSERT_EQ(decide("CONNECT", t, NOH, &o), 405);
        ASSERT_EQ(decide("GE T", t, NOH, &o), 400);
}

TEST(targets) {
        cb_preq_head o;

        ASSERT_EQ(decide("GET", "/v1/proxy/up/a/b?x=1&y=a+b", NOH, &o), 0);
        ASSERT_FALSE(o.forward);
        ASSERT_EQ(strcmp(o.secret, "up"), 0);
        ASSERT_EQ(o.path_len, 4);
        ASSERT_TRUE(o.has_query);
        ASSERT_EQ(o.query_len, 9);
        ASSERT_EQ(decide("GET", "/v1/proxy/up?x=1", NOH, &o), 0);
        ASSERT_EQ(o.path_len, 0);
        ASSERT_EQ(decide("GET", "http://api.example:8443/v1?x", NOH, &o), 0);
        ASSERT_TRUE(o.forward);
        ASSERT_EQ(strcmp(o.authority, "api.example:8443"), 0);
        static const char *const bad[] = {
                "/v1/proxy/up/\xc0\xae\xc0\xae/admin", "/v1/proxy/up/a b", "/v1/proxy/up/a\"b", "/v1/proxy/up/a<b",
                "/v1/proxy/up/a?x=1|2", "/v1/proxy/up/a?x=\x7f", "/v1/proxy/up/a?x=%zz", "/v1/proxy/up/a?x=%4",
                "/v1/proxy/up/a#frag", "/v1/proxy/up/a?x=\xe2\x82\xac", "/v1/proxy/up/a/../b", "/v1/proxy/up/a/%2e%2e/b",
                "/v1/proxy/up/a/%2f", "/v1/proxy//a", "/v1/proxy/a%20b/x", "/v1/other", "/v1/proxy/up/a?x={}",
                "/v1/proxy/up/a?x=[1]", "/v1/proxy/up/a\\b", "ftp://x/y", "http:///x", "http://a b/x",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (decide("GET", bad[i], NOH, &o) != 400)
                        cbtest_fail(__FILE__, __LINE__, "target %zu (%s) accepted", i, bad[i]);
        /* RFC 3986 sub-delims and the like pass. */
        ASSERT_EQ(decide("GET", "/v1/proxy/up/a:b@c!$&'()*+,;=~?q=/?:@!$'()*+,;=", NOH, &o), 0);
}

TEST(body_kinds) {
        static const struct {
                const char *ct;
                cb_preq_body want;
                const char *boundary;
        } cases[] = {
                { NULL, CB_BODY_FORM, "" },     /* Rack reads a POST without a type as a form */
                { "Content-Type: application/x-www-form-urlencoded", CB_BODY_FORM, "" },
                { "Content-Type: Application/X-WWW-Form-Urlencoded; charset=utf-8", CB_BODY_FORM, "" },
                { "Content-Type: application/x-www-form-urlencoded,text/plain", CB_BODY_FORM, "" },
                { "Content-Type: text/plain, application/x-www-form-urlencoded", CB_BODY_FORM, "" },
                { "Content-Type: application/json", CB_BODY_JSON, "" },
                { "Content-Type: application/vnd.api+json", CB_BODY_JSON, "" },
                { "Content-Type: text/plain", CB_BODY_OTHER, "" },
                { "Content-Type: application/octet-stream", CB_BODY_OTHER, "" },
                { "Content-Type: multipart/form-data; boundary=XyZ", CB_BODY_MULTIPART, "XyZ" },
                { "Content-Type: multipart/form-data;boundary=\"a b\"", CB_BODY_MULTIPART, "a b" },
                { "Content-Type: multipart/mixed; boundary=q; charset=x", CB_BODY_MULTIPART, "q" },
                { "Content-Type: multipart/form-data", CB_BODY_MULTIPART_BAD, "" },
                { "Content-Type: multipart/form-data; xboundary=A; boundary=B", CB_BODY_MULTIPART_BAD, "" },
                { "Content-Type: multipart/form-data; boundary = B", CB_BODY_MULTIPART_BAD, "" },
                { "Content-Type: multipart/form-data; boundary=", CB_BODY_MULTIPART_BAD, "" },
                { "Content-Type: multipart/form-data; boundary=\"open", CB_BODY_MULTIPART_BAD, "" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                cb_preq_head o;
                const char *one[] = { "Content-Length: 3", cases[i].ct, NULL };
                ASSERT_EQ(decide("POST", "/v1/proxy/up/x", one, &o), 0);
                if (o.body != cases[i].want || strcmp(o.boundary, cases[i].boundary) != 0)
                        cbtest_fail(__FILE__, __LINE__, "'%s': kind %d boundary '%s'", cases[i].ct ? cases[i].ct : "(none)",
                                    (int)o.body, o.boundary);
        }
        cb_preq_head o;
        ASSERT_EQ(decide("POST", "/v1/proxy/up/x", H("Content-Encoding: gzip"), &o), 0);
        ASSERT_TRUE(o.body_coded);
        ASSERT_EQ(decide("POST", "/v1/proxy/up/x", H("Content-Encoding: identity"), &o), 0);
        ASSERT_FALSE(o.body_coded);
        ASSERT_EQ(decide("POST", "/v1/proxy/up/x", H("Content-Type: a", "Content-Type: b"), &o), 400);
}

TEST(header_classes) {
        static const struct {
                const char *name;
                cb_preq_hclass want;
        } cases[] = {
                { "X-Custom", CB_HDR_FORWARD },       { "Cookie", CB_HDR_FORWARD },
                { "Content-Type", CB_HDR_FORWARD },   { "Content-Length", CB_HDR_HOP },
                { "content_length", CB_HDR_HOP },     { "Transfer_Encoding", CB_HDR_HOP },
                { "TE", CB_HDR_HOP },                 { "Host", CB_HDR_HOP },
                { "Accept-Encoding", CB_HDR_HOP },    { "Authorization", CB_HDR_CREDENTIAL },
                { "AUTHORIZATION", CB_HDR_CREDENTIAL }, { "Proxy_Authorization", CB_HDR_CREDENTIAL },
                { "X-Credbroker-Host", CB_HDR_CREDENTIAL }, { "x_api_key", CB_HDR_CREDENTIAL },
                { "X-Api-Key", CB_HDR_CREDENTIAL },   { "X-HTTP-Method-Override", CB_HDR_OVERRIDE },
                { "X_HTTP_METHOD_OVERRIDE", CB_HDR_OVERRIDE }, { "x_http_method", CB_HDR_OVERRIDE },
                { "X_Original_URL", CB_HDR_OVERRIDE }, { "X-Rewrite-URL", CB_HDR_OVERRIDE },
                { "Range", CB_HDR_OVERRIDE },         { "Forwarded", CB_HDR_ROUTING },
                { "X-Forwarded-For", CB_HDR_ROUTING }, { "x_forwarded_host", CB_HDR_ROUTING },
                { "X-Forwarded-Prefix", CB_HDR_ROUTING }, { "X-Original-URI", CB_HDR_ROUTING },
                { "X-Envoy-Original-Path", CB_HDR_ROUTING }, { "X-Real-IP", CB_HDR_ROUTING },
                { "X-Hop", CB_HDR_HOP },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                if (cb_preq_header_class(cases[i].name, strlen(cases[i].name), "X-Api-Key", "keep-alive, x-hop") !=
                    cases[i].want)
                        cbtest_fail(__FILE__, __LINE__, "%s: class %d, wanted %d", cases[i].name,
                                    (int)cb_preq_header_class(cases[i].name, strlen(cases[i].name), "X-Api-Key",
                                                              "keep-alive, x-hop"),
                                    (int)cases[i].want);
}

TEST(params_and_query) {
        static const char *const over[] = { "_method", ".method", "%20_method", "+_method", "++++.method", "%5Fmethod",
                                            "_METHOD", "_method[]", "_method%5B%5D", "_method%00x", " _method",
                                            "x-http-method-override", "X_HTTP_METHOD", "%2e%6d%65%74%68%6f%64" };
        for (size_t i = 0; i < sizeof(over) / sizeof(over[0]); i++)
                if (!cb_preq_param_is(over[i], strlen(over[i]), NULL))
                        cbtest_fail(__FILE__, __LINE__, "'%s' not seen as an override", over[i]);
        static const char *const fine[] = { "method", "_methods", "a_method", "_meth", "__method", "x" };
        for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
                ASSERT_FALSE(cb_preq_param_is(fine[i], strlen(fine[i]), NULL));
        ASSERT_TRUE(cb_preq_param_is("api%5Fkey", 9, "api_key"));
        ASSERT_TRUE(cb_preq_param_is("api.key", 7, "api_key"));

        char *q;
        const char *in = "a=1&_method=DELETE&b=x+y&.method=PUT;c=%2B&api_key=mine&d";
        ASSERT_OK(cb_preq_query_filter(in, strlen(in), "api_key", true, &q));
        ASSERT_EQ(strcmp(q, "a=1&b=x+y;c=%2B&d"), 0);
        free(q);
        ASSERT_OK(cb_preq_query_filter(in, strlen(in), NULL, false, &q));
        ASSERT_EQ(strcmp(q, in), 0);
        free(q);
        ASSERT_OK(cb_preq_query_filter("_method=X", 9, NULL, true, &q));
        ASSERT_EQ(strcmp(q, ""), 0);
        free(q);
}

TEST(tokens) {
        char tok[CB_TOKEN_LEN + 1], buf[512];

        cb_token_generate(tok);
        ASSERT_TRUE(cb_preq_holds_token(tok, strlen(tok)));
        snprintf(buf, sizeof(buf), "session=%s; x=1", tok);
        ASSERT_TRUE(cb_preq_holds_token(buf, strlen(buf)));
        snprintf(buf, sizeof(buf), "t=%%63bt%%5F%s", tok + 4);
        ASSERT_TRUE(cb_preq_holds_token(buf, strlen(buf)));
        tok[10] = tok[10] == 'a' ? 'b' : 'a';                 /* checksum no longer holds */
        ASSERT_FALSE(cb_preq_holds_token(tok, strlen(tok)));
        ASSERT_FALSE(cb_preq_holds_token("cbt_", 4));
}

static bool scan_all(cb_preq_body kind, const char *boundary, const char *body, size_t step) {
        cb_ovscan s;
        size_t n = strlen(body);
        bool hit = false;

        ASSERT_OK(cb_ovscan_init(&s, kind, boundary));
        for (size_t i = 0; i < n && !hit; i += step)
                hit = cb_ovscan_feed(&s, (const unsigned char *)body + i, i + step > n ? n - i : step);
        hit = hit || cb_ovscan_end(&s);
        cb_ovscan_clear(&s);
        return hit;
}

TEST(body_scan) {
        static const char *const forms_hit[] = { "_method=DELETE", "a=1&_method=DELETE", "a=1;_method=PUT",
                                                 "a=1&%5Fmethod=X", "a=1&+++.method=X", "a=1&_method", "a&_method[x]=1",
                                                 "x_http_method_override=DELETE" };
        static const char *const forms_ok[] = { "a=1&method=DELETE", "a=_method", "a=1&b=%5Fmethod", "" };
        for (size_t step = 1; step <= 7; step++) {
                for (size_t i = 0; i < sizeof(forms_hit) / sizeof(forms_hit[0]); i++)
                        if (!scan_all(CB_BODY_FORM, NULL, forms_hit[i], step))
                                cbtest_fail(__FILE__, __LINE__, "form '%s' (step %zu) passed", forms_hit[i], step);
                for (size_t i = 0; i < sizeof(forms_ok) / sizeof(forms_ok[0]); i++)
                        if (scan_all(CB_BODY_FORM, NULL, forms_ok[i], step))
                                cbtest_fail(__FILE__, __LINE__, "form '%s' (step %zu) refused", forms_ok[i], step);
        }
        /* A name padded with thousands of leading spaces is still _method. */
        char pad[8192];
        memset(pad, '+', sizeof(pad));
        memcpy(pad + sizeof(pad) - 16, "_method=DELETE", 15);
        ASSERT_TRUE(scan_all(CB_BODY_FORM, NULL, pad, 100));

        static const char *const mp_hit[] = {
                "--B\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--B--\r\n",
                "pre\r\n--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--B\r\n"
                "content-disposition: form-data; name=_method\r\n\r\nDELETE\r\n--B--\r\n",
                "--B\nContent-Disposition: form-data; name='_method'\n\nDELETE\n--B--\n",
                "--B\r\nContent-Disposition: form-data; name*=utf-8''%5Fmethod\r\n\r\nX\r\n--B--",
        };
        for (size_t step = 1; step <= 5; step++)
                for (size_t i = 0; i < sizeof(mp_hit) / sizeof(mp_hit[0]); i++)
                        if (!scan_all(CB_BODY_MULTIPART, "B", mp_hit[i], step))
                                cbtest_fail(__FILE__, __LINE__, "multipart %zu (step %zu) passed", i, step);
        const char *file = "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n"
                           "name=\"_method\" inside a file is data\r\n--Bx\r\n--B--\r\n";
        ASSERT_FALSE(scan_all(CB_BODY_MULTIPART, "B", file, 3));
        /* A part's headers over the cap: refused, not guessed. */
        size_t big = CB_OVSCAN_PART_HEAD_MAX + 100;
        char *b = malloc(big + 16);
        memcpy(b, "--B\r\nX: ", 8);
        memset(b + 8, 'a', big);
        b[8 + big] = '\0';
        ASSERT_TRUE(scan_all(CB_BODY_MULTIPART, "B", b, 4096));
        free(b);
}

TEST(body_scan_json) {
        static const char *const hit[] = { "{\"_method\":\"DELETE\"}", "{\"a\": 1, \"_method\" : \"PUT\"}",
                                           "{\"\\u005fmethod\":\"X\"}", "{\"x\":{\"_METHOD\":1}}",
                                           "[{\"a\":\"b\"},{\"_method\"\n:\"D\"}]" };
        static const char *const fine[] = { "{\"a\":\"_method\"}", "{\"method\":\"DELETE\"}", "[\"_method\"]",
                                            "{\"a\":\"\\\"_method\\\":1\"}" };
        for (size_t step = 1; step <= 4; step++) {
                for (size_t i = 0; i < sizeof(hit) / sizeof(hit[0]); i++)
                        if (!scan_all(CB_BODY_JSON, NULL, hit[i], step))
                                cbtest_fail(__FILE__, __LINE__, "JSON %s (step %zu) passed", hit[i], step);
                for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
                        if (scan_all(CB_BODY_JSON, NULL, fine[i], step))
                                cbtest_fail(__FILE__, __LINE__, "JSON %s (step %zu) refused", fine[i], step);
        }
}

static int rframe(const char *const *lines) {
        cb_rframe f;
        int r = 0;

        cb_rframe_reset(&f);
        for (size_t i = 0; lines[i] && r == 0; i++)
                r = cb_rframe_line(&f, lines[i], strlen(lines[i]));
        return r < 0 ? r : cb_rframe_end(&f);
}

TEST(response_framing) {
        ASSERT_EQ(rframe(H("Content-Length: 5\r\n", "Content-Type: x\r\n")), 0);
        ASSERT_EQ(rframe(H("Transfer-Encoding: chunked\r\n")), 0);
        ASSERT_EQ(rframe(H("Content-Encoding: identity\r\n")), 0);
        ASSERT_EQ(rframe(H("Content-Length: 5", "Transfer-Encoding: chunked")), -EPROTO);
        ASSERT_EQ(rframe(H("Transfer-Encoding: chunked", "Content-Length: 5")), -EPROTO);
        ASSERT_EQ(rframe(H("Content-Length: 5", "Content-Length: 5")), -EPROTO);
        ASSERT_EQ(rframe(H("Content-Length: 5, 5")), -EPROTO);
        ASSERT_EQ(rframe(H("Content-Length: -5")), -EPROTO);
        ASSERT_EQ(rframe(H("Transfer-Encoding: gzip, chunked")), -EPROTO);
        ASSERT_EQ(rframe(H("Transfer-Encoding: chunked", "Transfer-Encoding: chunked")), -EPROTO);
        ASSERT_EQ(rframe(H("Content-Encoding: identity, gzip")), -EPROTO);
        ASSERT_EQ(rframe(H("Content-Encoding: identity", "Content-Encoding: br")), -EPROTO);
        ASSERT_EQ(rframe(H("content-encoding: GZIP")), -EPROTO);
        ASSERT_EQ(rframe(H("X-A: b\r\n", " c\r\n")), -EPROTO);
        ASSERT_EQ(rframe(H("Content-Length : 5")), -EPROTO);
}
