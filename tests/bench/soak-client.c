/* SPDX-License-Identifier: Apache-2.0 */
/*
 * soak-client: one tool process of tests/bench/soak.sh.  soak.sh starts 64
 * of them, each under its own uid (setpriv), so every path below has 64
 * clients under 64 uids.  Raw HTTP/1.1 over tools.sock, a fresh connection
 * per request (Connection: close), no client library.
 *
 *   soak-client SOCKET SECONDS THINK_MS PATH...
 *
 * One thread per PATH, each looping request / reply / THINK_MS pause until
 * SECONDS have passed:
 *   token   POST /v1/token for "soak-redeem" (use redeem, ttl 2): the token
 *           table churns, tokens expire by the thousand.  Every 50th token
 *           is kept and presented (POST /v1/redeem) 4 s later, after its
 *           expiry: the broker must refuse it (401); that refusal is the one
 *           response this client causes on purpose (see "client-caused").
 *   redeem  POST /v1/redeem of a token for "soak-redeem" (ttl 30, reissued
 *           5 s before its expiry): 200 with the value (never printed).
 *   proxy   GET /v1/proxy/soak-proxy/ with a proxy token: the injection
 *           proxy to a TLS upstream (nginx, test CA), 200 "ok".
 *   sse     GET /v1/proxy/soak-sse/sse: a TLS upstream streaming five
 *           server-sent events 0.5 s apart (proxy-upstream.py), relayed
 *           chunked; 200 and the last event ("data: 4") must arrive.
 *   scan    POST /v1/scan with 16 KiB of text that holds no secret: 200
 *           with no findings.
 *
 * Client-caused responses: only the 401 to a token presented after the
 * expiry the broker gave it (the "token" path's late redeems).  Tokens the
 * clients use are reissued at least 5 s before that expiry (the broker
 * counts whole seconds), no grant has a rate limit, every request is well
 * formed and every grant stays in the policy across reloads: every other
 * non-2xx, and every connection error, short or malformed reply, is an
 * error.  A secret rotated mid-run (soak.sh, every 30 s) is not a reason
 * for any refusal: tokens follow the current version and these clients
 * never ask for an older one.
 *
 * Output on stdout, one line per path (for soak.sh to sum):
 *   R PATH requests errors client_caused explained
 * ("explained": late redeems answered "expired", from the tombstone) and
 * the latency histogram, for the percentiles across processes:
 *   H PATH BUCKET COUNT      (bucket b holds [1.02^b, 1.02^(b+1)) us)
 * The first few errors go to stderr: status line and error body, never a
 * token or a value.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define REPLY_MAX (256 * 1024)
#define NBUCKETS  1200            /* 1.02^1200 us: far beyond any timeout */
#define SCAN_BYTES (16 * 1024)
#define LATE_EVERY 50
#define LATE_KEEP 16
#define TOKEN_MAX 128

enum path { P_TOKEN, P_REDEEM, P_PROXY, P_SSE, P_SCAN, P_N };
static const char *const path_names[P_N] = { "token", "redeem", "proxy", "sse", "scan" };

static struct sockaddr_un addr;
static socklen_t addr_len;
static double run_seconds;
static long think_ms;
static uint64_t t_start, t_end;
static atomic_int errors_said;
static char scan_body[SCAN_BYTES + 1];

struct stats {
        uint64_t requests, errors, client_caused, explained;
        uint64_t hist[NBUCKETS];
};

struct worker {
        pthread_t th;
        enum path path;
        struct stats st;
        char *buf;
        char tok[TOKEN_MAX];
        uint64_t tok_renew_ns;  /* reissue at this time */
};

static uint64_t now_ns(void) {
        struct timespec t;

        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void record(struct stats *st, uint64_t ns) {
        double us = (double)ns / 1000.0;
        long b = us < 1 ? 0 : (long)(log(us) / log(1.02));

        st->hist[b < 0 ? 0 : b >= NBUCKETS ? NBUCKETS - 1 : b]++;
}

/* Report an error (the first 20 of the process) without token or value:
 * only a status line and an error body are shown. */
static void error_said(struct worker *w, const char *what, const char *reply) {
        w->st.errors++;
        if (atomic_fetch_add(&errors_said, 1) >= 20)
                return;
        char line[400] = "";
        if (reply) {
                const char *body = strstr(reply, "\r\n\r\n");
                /* Only a refusal's body (a 2xx one may hold the value). */
                bool refusal = strncmp(reply, "HTTP/1.1 2", 10) != 0;
                snprintf(line, sizeof(line), "%.*s | %.200s", (int)strcspn(reply, "\r\n"), reply,
                         refusal && body && strstr(body, "\"error\"") ? body + 4 : "(body not shown)");
        }
        fprintf(stderr, "soak-client uid %u %s: %s%s%s\n", (unsigned)getuid(), path_names[w->path], what,
                reply ? ": " : "", line);
}

static int write_all(int fd, const char *p, size_t n) {
        while (n) {
                ssize_t r = write(fd, p, n);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return -1;
                p += r;
                n -= (size_t)r;
        }
        return 0;
}

/* One request on a fresh connection; the reply (NUL-terminated) in w->buf.
 * Returns the status, or -1 with *what set (connection-level failure). */
static int exchange(struct worker *w, const char *method, const char *target, const char *auth_token,
                    const char *ctype, const char *body, size_t blen, const char **what) {
        char head[1024];
        size_t got = 0;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), n;

        w->buf[0] = 0;
        if (fd < 0) {
                *what = "socket";
                return -1;
        }
        if (connect(fd, (const struct sockaddr *)&addr, addr_len) < 0) {
                *what = "connect";
                close(fd);
                return -1;
        }
        n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s%s%s"
                     "%s%s%sContent-Length: %zu\r\n\r\n",
                     method, target, auth_token ? "Authorization: Bearer " : "", auth_token ? auth_token : "",
                     auth_token ? "\r\n" : "", ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "",
                     blen);
        if (write_all(fd, head, (size_t)n) < 0 || (blen && write_all(fd, body, blen) < 0)) {
                *what = "write";
                close(fd);
                return -1;
        }
        for (;;) {
                ssize_t r = read(fd, w->buf + got, REPLY_MAX - got);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        *what = "read";
                        close(fd);
                        return -1;
                }
                if (r == 0)
                        break;
                got += (size_t)r;
                if (got == REPLY_MAX) {
                        *what = "reply too long";
                        close(fd);
                        return -1;
                }
        }
        close(fd);
        w->buf[got] = 0;
        if (got < 12 || strncmp(w->buf, "HTTP/1.1 ", 9) != 0) {
                *what = "no HTTP status line";
                return -1;
        }
        return atoi(w->buf + 9);
}

/* A token for secret/use/ttl into out; 0, or -1 after reporting. */
static int issue(struct worker *w, const char *secret, const char *use, int ttl, char out[TOKEN_MAX],
                 long *ret_expires_in) {
        char body[200];
        const char *what = NULL, *p, *e;
        int n = snprintf(body, sizeof(body), "{\"secret\":\"%s\",\"use\":\"%s\",\"ttl\":%d}", secret, use, ttl);
        uint64_t a = now_ns();
        int status = exchange(w, "POST", "/v1/token", NULL, "application/json", body, (size_t)n, &what);

        record(&w->st, now_ns() - a);
        w->st.requests++;
        if (status < 0) {
                error_said(w, what, NULL);
                return -1;
        }
        if (status != 201 || !(p = strstr(w->buf, "\"token\":\"cbt_")) || !(e = strchr(p + 9, '"')) ||
            e - (p + 9) >= TOKEN_MAX) {
                error_said(w, "token: not a 201 with a token", w->buf);
                return -1;
        }
        memcpy(out, p + 9, (size_t)(e - (p + 9)));
        out[e - (p + 9)] = 0;
        p = strstr(w->buf, "\"expires_in\":");
        *ret_expires_in = p ? strtol(p + 13, NULL, 10) : 0;
        return 0;
}

/* A usable token in w->tok, reissued 5 s before the broker's expiry. */
static int ensure_token(struct worker *w, const char *secret, const char *use, int ttl) {
        long exp;

        if (w->tok[0] && now_ns() < w->tok_renew_ns)
                return 0;
        if (issue(w, secret, use, ttl, w->tok, &exp) < 0) {
                w->tok[0] = 0;
                return -1;
        }
        w->tok_renew_ns = now_ns() + (uint64_t)(exp > 5 ? exp - 5 : 0) * 1000000000u;
        return 0;
}

static void think(void) {
        if (think_ms > 0) {
                struct timespec ts = { think_ms / 1000, (think_ms % 1000) * 1000000 };
                nanosleep(&ts, NULL);
        }
}

static void *run_path(void *arg) {
        struct worker *w = arg;
        char late[LATE_KEEP][TOKEN_MAX];
        uint64_t late_at[LATE_KEEP];
        unsigned n_late = 0, late_head = 0, issued = 0;

        while (now_ns() < t_end) {
                const char *what = NULL;
                uint64_t a;
                int status;
                char body[TOKEN_MAX + 32];

                switch (w->path) {
                case P_TOKEN: {
                        /* A late redeem whose time has come, else a new token. */
                        if (n_late && now_ns() >= late_at[late_head]) {
                                int n = snprintf(body, sizeof(body), "{\"token\":\"%s\"}", late[late_head]);
                                a = now_ns();
                                status = exchange(w, "POST", "/v1/redeem", NULL, "application/json", body, (size_t)n,
                                                  &what);
                                record(&w->st, now_ns() - a);
                                w->st.requests++;
                                late_head = (late_head + 1) % LATE_KEEP;
                                n_late--;
                                if (status < 0)
                                        error_said(w, what, NULL);
                                else if (status != 401)
                                        error_said(w, "a token presented after its expiry was not refused", w->buf);
                                else {
                                        w->st.client_caused++;
                                        if (strstr(w->buf, "expired"))
                                                w->st.explained++;
                                }
                                break;
                        }
                        char tok[TOKEN_MAX];
                        long exp;
                        if (issue(w, "soak-redeem", "redeem", 2, tok, &exp) == 0 && ++issued % LATE_EVERY == 0 &&
                            n_late < LATE_KEEP) {
                                unsigned slot = (late_head + n_late) % LATE_KEEP;
                                memcpy(late[slot], tok, sizeof(tok));
                                late_at[slot] = now_ns() + (uint64_t)(exp + 2) * 1000000000u;
                                n_late++;
                        }
                        break;
                }
                case P_REDEEM: {
                        if (ensure_token(w, "soak-redeem", "redeem", 30) < 0)
                                break;
                        int n = snprintf(body, sizeof(body), "{\"token\":\"%s\"}", w->tok);
                        a = now_ns();
                        status = exchange(w, "POST", "/v1/redeem", NULL, "application/json", body, (size_t)n, &what);
                        record(&w->st, now_ns() - a);
                        w->st.requests++;
                        if (status < 0)
                                error_said(w, what, NULL);
                        else if (status != 200 || !strstr(w->buf, "\"value\":\""))
                                error_said(w, "redeem: not a 200 with a value", w->buf);
                        break;
                }
                case P_PROXY:
                case P_SSE: {
                        bool sse = w->path == P_SSE;
                        if (ensure_token(w, sse ? "soak-sse" : "soak-proxy", "proxy", 3600) < 0)
                                break;
                        a = now_ns();
                        status = exchange(w, "GET", sse ? "/v1/proxy/soak-sse/sse" : "/v1/proxy/soak-proxy/", w->tok,
                                          NULL, NULL, 0, &what);
                        record(&w->st, now_ns() - a);
                        w->st.requests++;
                        if (status < 0)
                                error_said(w, what, NULL);
                        else if (status != 200 || !strstr(w->buf, sse ? "data: 4" : "soak-ok"))
                                error_said(w, sse ? "sse: not a 200 with all five events" : "proxy: not a 200 \"soak-ok\"",
                                           w->buf);
                        break;
                }
                case P_SCAN:
                        a = now_ns();
                        status = exchange(w, "POST", "/v1/scan", NULL, "text/plain", scan_body, SCAN_BYTES, &what);
                        record(&w->st, now_ns() - a);
                        w->st.requests++;
                        if (status < 0)
                                error_said(w, what, NULL);
                        else if (status != 200 || !strstr(w->buf, "\"findings\":[]"))
                                error_said(w, "scan: not a 200 without findings", w->buf);
                        break;
                case P_N:
                        break;
                }
                think();
        }
        return NULL;
}

int main(int argc, char **argv) {
        struct worker ws[P_N];
        int n = 0;
        char *end;

        if (argc < 5) {
                fprintf(stderr, "usage: soak-client SOCKET SECONDS THINK_MS PATH...\n"
                                "  PATH: token redeem proxy sse scan\n");
                return 2;
        }
        if (strlen(argv[1]) >= sizeof(addr.sun_path)) {
                fprintf(stderr, "soak-client: socket path too long\n");
                return 2;
        }
        addr.sun_family = AF_UNIX;
        strcpy(addr.sun_path, argv[1]);
        addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(argv[1]) + 1);
        run_seconds = strtod(argv[2], &end);
        if (*end || !(run_seconds > 0))
                return 2;
        think_ms = strtol(argv[3], &end, 10);
        if (*end || think_ms < 0)
                return 2;
        signal(SIGPIPE, SIG_IGN);
        /* Text with no secret and no token in it (words, numbers, JSON-ish lines). */
        for (size_t i = 0; i < SCAN_BYTES;) {
                int k = snprintf(scan_body + i, SCAN_BYTES + 1 - i, "line %zu: tool output, nothing secret here "
                                 "{\"status\":\"ok\",\"n\":%zu}\n", i, i * 7);
                if (k <= 0)
                        break;
                i += (size_t)k;
        }
        t_start = now_ns();
        t_end = t_start + (uint64_t)(run_seconds * 1e9);
        memset(ws, 0, sizeof(ws));
        for (int i = 4; i < argc; i++) {
                enum path p = P_N;
                for (int k = 0; k < P_N; k++)
                        if (!strcmp(argv[i], path_names[k]))
                                p = (enum path)k;
                if (p == P_N || n == P_N) {
                        fprintf(stderr, "soak-client: unknown path '%s'\n", argv[i]);
                        return 2;
                }
                ws[n].path = p;
                ws[n].buf = malloc(REPLY_MAX + 1);
                if (!ws[n].buf || pthread_create(&ws[n].th, NULL, run_path, &ws[n]) != 0) {
                        fprintf(stderr, "soak-client: cannot start a thread\n");
                        return 1;
                }
                n++;
        }
        for (int i = 0; i < n; i++) {
                pthread_join(ws[i].th, NULL);
                struct stats *st = &ws[i].st;
                printf("R %s %llu %llu %llu %llu\n", path_names[ws[i].path], (unsigned long long)st->requests,
                       (unsigned long long)st->errors, (unsigned long long)st->client_caused,
                       (unsigned long long)st->explained);
                for (int b = 0; b < NBUCKETS; b++)
                        if (st->hist[b])
                                printf("H %s %d %llu\n", path_names[ws[i].path], b, (unsigned long long)st->hist[b]);
                explicit_bzero(ws[i].tok, sizeof(ws[i].tok));
                free(ws[i].buf);
        }
        return 0;
}
