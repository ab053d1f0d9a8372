/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The shared matcher (keys/match*.c) alone, in CPU time (this thread's), so
 * a loaded machine changes the figures less than wall-clock ones:
 *
 *     match-bench [MB [plain|escaped]]     (default 64, both)
 *
 * 1,000 alnum values (sk-/ghp_ keys, as tests/bench/scan.sh SHAPES=alnum),
 * scanner flags (tokens too); two corpora of MB MiB each, built here,
 * deterministic:
 *   plain    log, prose and code lines and base64 blobs, few escapes
 *   escaped  the same lines percent-encoded, JSON-escaped and HTML-escaped
 *            in turn (an escape every few bytes: every decoding view busy)
 * each with ~200 values in it.  Per corpus, the best of 3 passes of
 *   scan     a stream with a hit callback only (/v1/scan), 1 MiB feeds
 *   redact   a redacting stream (/v1/redact), 1 MiB feeds
 *   eager    an eager redacting stream (the proxy, exec), 4 KiB feeds
 * printed as "BENCH match_<pass>_<corpus>_mb_per_s_cpu N".  And what the
 * proxy does per request: build a matcher for one value and its basic
 * user, redact 6 response header lines and stream a short body through an
 * eager stream: "BENCH match_proxy_request_us_cpu N" (best of 3 x 20,000).
 * Compile it against another tree's keys/ to compare two versions.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "match.h"

static uint64_t rng = 6;

static uint32_t rnd(uint32_t n) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        return (uint32_t)(rng >> 33) % n;
}

static const char ALNUM[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

static int count_hit(void *ctx, const cb_scan_hit *h, char label[CB_SCAN_LABEL_MAX]) {
        (void)h, (void)label;
        ++*(size_t *)ctx;
        return 0;
}

static int sink(void *ctx, const void *p, size_t n) {
        (void)p;
        *(size_t *)ctx += n;
        return 0;
}

static double cpu_now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One line of corpus into o (NUL-free); its length. */
static size_t line(char *o, unsigned i) {
        size_t k = 0;
        switch (i % 4) {
        case 0:
                for (uint32_t w = 5 + rnd(10); w; w--) {
                        for (uint32_t c = 2 + rnd(8); c; c--)
                                o[k++] = (char)('a' + rnd(26));
                        o[k++] = ' ';
                }
                o[k - 1] = '.';
                break;
        case 1:
                k = (size_t)sprintf(o, "2026-11-27T07:%02u:%02uZ INFO request id=%08x user=u%u path=/api/v1/x%u status=200",
                                    i % 60, i % 60, rnd(1u << 31), rnd(1000), rnd(1000));
                break;
        case 2:
                k = (size_t)sprintf(o, "    v%u = f%u(a%u, \"s%u\")  # c%u", rnd(999), rnd(999), rnd(999), rnd(999),
                                    rnd(999));
                break;
        default:
                for (uint32_t c = 28 + rnd(52); c; c--)
                        o[k++] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[rnd(64)];
                break;
        }
        o[k++] = '\n';
        return k;
}

/* Escape line p[0..n) one of three ways into o: its length. */
static size_t escape(char *o, const char *p, size_t n, unsigned how) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)p[i];
                if (how == 0 && (c == ' ' || c == '/' || c == '=' || c == '"' || c == ':' || c == '+'))
                        k += (size_t)sprintf(o + k, "%%%02X", c);
                else if (how == 1 && (c == '"' || c == '/'))
                        o[k++] = '\\', o[k++] = (char)c;
                else if (how == 1 && c == '=')
                        k += (size_t)sprintf(o + k, "\\u003d");
                else if (how == 2 && (c == '"' || c == ' ' || c == '='))
                        k += (size_t)sprintf(o + k, c == '"' ? "&quot;" : "&#%d;", c);
                else
                        o[k++] = (char)c;
        }
        return k;
}

static char *corpus(size_t size, char vals[][48], size_t nv, int escaped) {
        char *t = malloc(size + 1024), l[1024], e[4096];
        size_t at = 0, hits = 0;
        for (unsigned i = 0; at < size; i++) {
                size_t n = line(l, i);
                if (hits < 200 && i % 2000 == 1000) {
                        const char *v = vals[rnd((uint32_t)nv)];
                        n = (size_t)sprintf(l, "token=%s\n", v);
                        hits++;
                }
                if (escaped)
                        n = escape(e, l, n, i % 3), memcpy(l, e, n);
                if (at + n > size)
                        n = size - at;
                memcpy(t + at, l, n);
                at += n;
        }
        return t;
}

static double proxy_request(void) {
        static const char *const hdrs[] = { "HTTP/1.1 200 OK", "Content-Type: application/json",
                                            "Date: Mon, 07 Dec 2026 17:00:00 GMT", "X-Request-Id: 7f3a9c2e11d04b6a",
                                            "Cache-Control: no-store", "Content-Length: 27" };
        static const char val[] = "sk-proj-Zq8e2WvB7nY4kL1mP0xR5tU3";
        size_t out = 0;
        double t0 = cpu_now();
        for (int i = 0; i < 20000; i++) {
                cb_matcher_builder *b = cb_matcher_builder_new(CB_MATCH_SHORT);
                cb_matcher *m;
                if (!b || cb_matcher_builder_add(b, "", 0, val, sizeof(val) - 1) < 0 ||
                    cb_matcher_builder_add_user(b, "api", val, sizeof(val) - 1) < 0 || cb_matcher_build(b, &m) < 0)
                        abort();
                for (size_t h = 0; h < sizeof(hdrs) / sizeof(hdrs[0]); h++) {
                        char *r = cb_matcher_redact_string(m, hdrs[h], NULL);
                        if (!r)
                                abort();
                        free(r);
                }
                cb_scan_stream *s = cb_scan_stream_new(m, NULL, sink, &out);
                if (!s)
                        abort();
                cb_scan_stream_eager(s);
                if (cb_scan_stream_feed(s, "{\"id\":\"chatcmpl-1\",\"ok\":1}", 27) < 0 || cb_scan_stream_finish(s) < 0)
                        abort();
                cb_scan_stream_free(s);
                cb_matcher_free(m);
        }
        return (cpu_now() - t0) / 20000 * 1e6;
}

static double pass(const cb_matcher *m, const char *t, size_t size, int mode, size_t *ret_hits) {
        size_t hits = 0, out = 0, piece = mode == 2 ? 4096 : 1 << 20;
        double t0 = cpu_now();
        cb_scan_stream *s = cb_scan_stream_new(m, count_hit, mode ? sink : NULL, mode ? (void *)&out : (void *)&hits);
        if (!s)
                abort();
        if (mode == 2)
                cb_scan_stream_eager(s);
        for (size_t at = 0; at < size; at += piece)
                if (cb_scan_stream_feed(s, t + at, size - at < piece ? size - at : piece) < 0)
                        abort();
        if (cb_scan_stream_finish(s) < 0)
                abort();
        cb_scan_stream_free(s);
        *ret_hits = mode ? out : hits;
        return cpu_now() - t0;
}

int main(int argc, char **argv) {
        size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 64, size = mb << 20;
        static char vals[1000][48];
        cb_matcher_builder *b;
        cb_matcher *m;

        if (sodium_init() < 0 || !mb)
                return 1;
        b = cb_matcher_builder_new(CB_MATCH_TOKENS);
        for (int i = 0; i < 1000; i++) {
                int k = sprintf(vals[i], i % 2 ? "ghp_" : "sk-");
                for (int c = i % 2 ? 36 : 29; c; c--)
                        vals[i][k++] = ALNUM[rnd(62)];
                char name[16];
                snprintf(name, sizeof(name), "s-%04d", i);
                if (cb_matcher_builder_add(b, name, 1, vals[i], (size_t)k) < 0)
                        return 1;
        }
        if (cb_matcher_build(b, &m) < 0)
                return 1;
        static const char *const cn[] = { "plain", "escaped" }, *const pn[] = { "scan", "redact", "eager" };
        for (int c = 0; c < 2; c++) {
                if (argc > 2 && strcmp(argv[2], cn[c]) != 0)
                        continue;
                char *t = corpus(size, vals, 1000, c);
                for (int p = 0; p < 3; p++) {
                        double best = 1e9;
                        size_t r = 0;
                        for (int run = 0; run < 3; run++) {
                                double d = pass(m, t, size, p, &r);
                                if (d < best)
                                        best = d;
                        }
                        fprintf(stderr, "# %s %s: %.3f s cpu (%zu %s)\n", pn[p], cn[c], best, r, p ? "bytes out" : "hits");
                        printf("BENCH match_%s_%s_mb_per_s_cpu %.1f\n", pn[p], cn[c], (double)mb / best);
                }
                free(t);
        }
        cb_matcher_free(m);
        double best = 1e9;
        for (int run = 0; run < 3; run++) {
                double d = proxy_request();
                if (d < best)
                        best = d;
        }
        printf("BENCH match_proxy_request_us_cpu %.2f\n", best);
        return 0;
}
