/* SPDX-License-Identifier: Apache-2.0 */
/* broker/egress/http1.c: request and response heads and chunked bodies as a
 * sandbox's plain-HTTP forwarding reads them. */
#include <string.h>

#include "cbtest.h"
#include "http1.h"

static int req(const char *s, cb_h1_head *h) {
        return cb_h1_request(s, strlen(s), h);
}

TEST(request_heads) {
        static cb_h1_head h;
        const char *ok = "POST http://a.test:8080/x?y=1 HTTP/1.1\r\nHost: a.test\r\nX-A:  v v \t\r\nContent-Length: 3\r\n\r\n";
        ASSERT_OK(req(ok, &h));
        ASSERT_STREQ(h.method, "POST");
        ASSERT_EQ(h.target_len, strlen("http://a.test:8080/x?y=1"));
        ASSERT_MEMEQ(h.target, "http://a.test:8080/x?y=1", h.target_len);
        ASSERT_EQ(h.minor, 1);
        ASSERT_EQ(h.nh, 3);
        ASSERT_EQ(h.h[1].value_len, 3); /* OWS trimmed, inner space kept */
        ASSERT_MEMEQ(h.h[1].value, "v v", 3);
        ASSERT_EQ(cb_h1_head_end(ok, strlen(ok)), strlen(ok));
        /* Refused: each with its status and a reason. */
        const struct { const char *s; unsigned status; } bad[] = {
                { "GET http://a/ HTTP/1.1\nHost: a\n\n", 400 },                     /* bare LF */
                { "GET http://a/ HTTP/1.1\r\nHost: a\n\r\n", 400 },                 /* bare LF in a field */
                { "GET http://a/ HTTP/1.1\r\nX-A: 1\r\n b\r\n\r\n", 400 },          /* obs-fold */
                { "GET http://a/ HTTP/1.1\r\nX-A : 1\r\n\r\n", 400 },               /* space before the colon */
                { "GET http://a/ HTTP/1.1\r\n: 1\r\n\r\n", 400 },                   /* no name */
                { "GET http://a/ HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400 },             /* bare CR in a value */
                { "GET http://a/ HTTP/2.0\r\n\r\n", 400 },                          /* version */
                { "GET  http://a/ HTTP/1.1\r\n\r\n", 400 },                         /* two spaces */
                { "GET http://a/\x01 HTTP/1.1\r\n\r\n", 400 },                      /* control byte in the target */
                { "G(T http://a/ HTTP/1.1\r\n\r\n", 400 },                          /* method not a token */
                { "GET http://a/ HTTP/1.1\r\n\r\nX", 400 },                         /* bytes after the head */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                ASSERT_ERR(req(bad[i].s, &h), -EINVAL);
                ASSERT_EQ(h.status, bad[i].status);
                ASSERT_TRUE(h.why != NULL);
        }
        /* More than CB_PREQ_HEADERS_MAX fields: 431. */
        static char many[CB_H1_HEAD_MAX];
        size_t n = (size_t)snprintf(many, sizeof(many), "GET http://a/ HTTP/1.1\r\n");
        for (int i = 0; i <= CB_PREQ_HEADERS_MAX; i++)
                n += (size_t)snprintf(many + n, sizeof(many) - n, "X-%d: 1\r\n", i);
        n += (size_t)snprintf(many + n, sizeof(many) - n, "\r\n");
        ASSERT_ERR(cb_h1_request(many, n, &h), -EINVAL);
        ASSERT_EQ(h.status, 431);
}

TEST(response_heads) {
        static cb_h1_head h;
        const char *ok = "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n";
        ASSERT_OK(cb_h1_response(ok, strlen(ok), &h));
        ASSERT_EQ(h.status, 204);
        const char *bad[] = {
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
                "HTTP/1.1 20x OK\r\n\r\n",
                "HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n",
                "ICY 200 OK\r\n\r\n",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                ASSERT_ERR(cb_h1_response(bad[i], strlen(bad[i]), &h), -EINVAL);
}

/* Decode s fed in pieces of step bytes; the data in out. */
static int chunked(const char *s, size_t step, char *out, size_t *olen, size_t *used, const char **why) {
        cb_h1_chunked c = { 0 };
        size_t n = strlen(s), off = 0;
        *olen = 0;
        while (off < n && !c.done) {
                size_t k = n - off < step ? n - off : step, ol = 0, u = 0;
                if (cb_h1_chunked_feed(&c, (const unsigned char *)s + off, k, (unsigned char *)out + *olen, &ol, &u) < 0) {
                        *why = c.why;
                        return -1;
                }
                *olen += ol;
                off += u;
        }
        *used = off;
        return c.done ? 0 : 1;
}

TEST(chunked_bodies) {
        char out[256];
        size_t ol, used;
        const char *why = NULL;
        const char *ok = "3\r\nabc\r\nA;name=v\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for (size_t step = 1; step < 8; step++) {
                ASSERT_EQ(chunked(ok, step, out, &ol, &used, &why), 0);
                ASSERT_EQ(ol, 13);
                ASSERT_MEMEQ(out, "abc0123456789", 13);
                ASSERT_EQ(used, strlen(ok) - 4); /* "NEXT" is not the body's */
        }
        ASSERT_EQ(chunked("3\r\nab", 1, out, &ol, &used, &why), 1); /* incomplete */
        const char *bad[] = {
                "3 \r\nabc\r\n0\r\n\r\n",       /* space after the size */
                "\r\nabc\r\n0\r\n\r\n",          /* no size */
                "3\r\nabcd\r\n0\r\n\r\n",        /* data longer than its size */
                "3\nabc\r\n0\r\n\r\n",           /* bare LF */
                "-3\r\nabc\r\n0\r\n\r\n",        /* sign */
                "1000000000000000\r\n",          /* 16 digits */
                "0\r\nX: a\nb\r\n\r\n",          /* bare LF in a trailer */
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                why = NULL;
                ASSERT_EQ(chunked(bad[i], 2, out, &ol, &used, &why), -1);
                ASSERT_TRUE(why != NULL);
        }
}


/* In place, as forward.c decodes (in and out the same buffer): found by the
 * ASan stage (memcpy-param-overlap in sandbox-forward's split-chunk case). */
TEST(chunked_in_place) {
        const char *ok = "3\r\nabc\r\nA;name=v\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for (size_t step = 1; step < 64; step += 5) {
                unsigned char buf[256];
                cb_h1_chunked c = { 0 };
                size_t n = strlen(ok), off = 0, total = 0;
                char got[64];
                memcpy(buf, ok, n);
                while (off < n && !c.done) {
                        size_t k = n - off < step ? n - off : step, ol = 0, u = 0;
                        ASSERT_OK(cb_h1_chunked_feed(&c, buf + off, k, buf + off, &ol, &u));
                        ASSERT_TRUE(total + ol <= sizeof(got));
                        memcpy(got + total, buf + off, ol);
                        total += ol;
                        off += u;
                }
                ASSERT_TRUE(c.done);
                ASSERT_EQ(total, 13);
                ASSERT_MEMEQ(got, "abc0123456789", 13);
        }
}
