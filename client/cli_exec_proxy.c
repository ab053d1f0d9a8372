/* SPDX-License-Identifier: Apache-2.0 */
/*
 * exec --proxy SECRET[=openai|anthropic|env:PREFIX]: hand an unmodified SDK
 * in the child a base URL on the broker's loopback proxy and a proxy token
 * as its API key.  The token is a "session" token: any program of our uid
 * may present it (the SDK runs under an interpreter, not this executable),
 * but only while this process lives (the broker holds our pidfd).  It is
 * asked for with the longest lifetime the grant allows (max_ttl, at most
 * 86400 s: SDKs read their key once and cannot renew it), and also revoked
 * through POST /v1/revoke when the command exits.  So it lives as long as
 * exec, but never past the grant's max_ttl when the grant sets one (the
 * operator's cap, which exec points out on stderr when it is 300 s or
 * less); under a grant without max_ttl, as long as exec, at most 86400 s.
 * (The uid-bound fallback, which does not die with exec, gets the daemon's
 * --default-ttl there.)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "credbroker.h"
#include "error.h"
#include "store.h"
#include "tcpdiag.h" /* broker/: the owner of a loopback TCP peer socket */

#define PROXY_TTL_ASK 86400 /* the broker cuts it to the grant's max_ttl */
#define PROXY_TTL_NOTICE 300 /* a max_ttl this short or shorter is pointed out */

int cli_proxy_parse(struct cli_proxy *p, const char *arg) {
        const char *eq = strchr(arg, '='), *kind = eq ? eq + 1 : "openai";
        size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
        const char *prefix;

        if (nl == 0 || nl > CB_NAME_MAX)
                return -cli_usage("exec: --proxy takes SECRET[=openai|anthropic|env:PREFIX]");
        memcpy(p->secret, arg, nl);
        p->secret[nl] = 0;
        if (cb_name_check(p->secret) < 0)
                return -cli_usage("exec: --proxy %.64s: %s", arg, cb_error_last());
        if (strcmp(kind, "openai") == 0) {
                prefix = "OPENAI";
                p->path_suffix = "/v1"; /* the SDK's default base URL ends in /v1 */
        } else if (strcmp(kind, "anthropic") == 0) {
                prefix = "ANTHROPIC";
                p->path_suffix = ""; /* the SDK adds /v1/messages itself */
        } else if (strncmp(kind, "env:", 4) == 0 && kind[4]) {
                prefix = kind + 4;
                p->path_suffix = "";
                for (const char *s = prefix; *s; s++)
                        if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_') ||
                            (s == prefix && *s >= '0' && *s <= '9'))
                                return -cli_usage("exec: --proxy: env:PREFIX takes upper-case letters, digits "
                                                  "and '_', not '%.64s'", prefix);
        } else {
                return -cli_usage("exec: --proxy %.64s: after '=' give openai, anthropic or env:PREFIX", arg);
        }
        if (strlen(prefix) > sizeof(p->prefix) - 1)
                return -cli_usage("exec: --proxy: PREFIX too long");
        snprintf(p->prefix, sizeof(p->prefix), "%s", prefix);
        return 0;
}

/* "VAR=" + a + b + c in sodium_malloc memory (the key variable holds a token). */
static char *env_string(const char *var, const char *a, const char *b, const char *c) {
        size_t n = strlen(var) + 1 + strlen(a) + strlen(b) + strlen(c) + 1;
        char *s = sodium_malloc(n);

        if (s)
                snprintf(s, n, "%s=%s%s%s", var, a, b, c);
        return s;
}

/* May uid serve us?  The rule the library applies to the Unix sockets:
 * root, our own uid, or the broker's configured uid (--broker-uid,
 * $CREDBROKER_BROKER_UID, else the system user "credbroker"). */
static bool broker_uid_ok(uid_t uid) {
        const char *bu = secure_getenv("CREDBROKER_BROKER_UID");
        struct passwd pw, *res = NULL;
        char buf[1024];

        if (uid == 0 || uid == getuid())
                return true;
        if (bu && *bu)
                return strtoul(bu, NULL, 10) == (unsigned long)uid;
        return getpwnam_r("credbroker", &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_uid == uid;
}

/* Who listens at the proxy URL?  Any local uid may bind a loopback port
 * the broker does not hold (it is down, restarting, or listens elsewhere)
 * and would then receive the child's every request: its prompts, bodies
 * and token.  So before a token is minted, one request (GET /v1/health)
 * goes to the URL and, once it is answered (the connection is accepted),
 * the kernel's socket table (sock_diag) names the owner of the socket
 * that answered; it must be a uid the broker may run as.  What listens
 * there later (the broker dies, another binds the port) is not checked
 * again: README says so. */
static int check_listener(const char *url, size_t ul) {
        char host[64];
        const char *h = url + 7, *colon, *end = url + ul;
        struct sockaddr_storage ss;
        socklen_t sl;
        unsigned long port;
        uid_t uid = (uid_t)-1;
        int fd = -1, r;

        memset(&ss, 0, sizeof(ss));
        if (h < end && *h == '[') {
                const char *rb = memchr(h, ']', (size_t)(end - h));
                if (!rb || rb + 1 >= end || rb[1] != ':' || (size_t)(rb - h - 1) >= sizeof(host))
                        return -cli_usage("exec: --proxy-url: want http://127.0.0.1:PORT or http://[::1]:PORT");
                memcpy(host, h + 1, (size_t)(rb - h - 1));
                host[rb - h - 1] = '\0';
                colon = rb + 1;
        } else {
                colon = memchr(h, ':', (size_t)(end - h));
                if (!colon || (size_t)(colon - h) >= sizeof(host))
                        return -cli_usage("exec: --proxy-url: want http://127.0.0.1:PORT or http://[::1]:PORT");
                memcpy(host, h, (size_t)(colon - h));
                host[colon - h] = '\0';
        }
        char *pe;
        port = strtoul(colon + 1, &pe, 10);
        if (pe != end || port == 0 || port > 65535)
                return -cli_usage("exec: --proxy-url: want http://127.0.0.1:PORT or http://[::1]:PORT");
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, host, &a4->sin_addr) == 1 && (ntohl(a4->sin_addr.s_addr) >> 24) == 127) {
                a4->sin_family = AF_INET;
                a4->sin_port = htons((uint16_t)port);
                sl = sizeof(*a4);
        } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1 && IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr)) {
                a6->sin6_family = AF_INET6;
                a6->sin6_port = htons((uint16_t)port);
                sl = sizeof(*a6);
        } else {
                return -cli_usage("exec: --proxy-url: the broker listens on loopback only (127.x.x.x or [::1]), "
                                  "not '%s'", host);
        }
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) < 0) {
                r = -cli_fail(-errno, "exec --proxy: nothing answers at %.*s (is the broker's --listen-tcp on?): %s",
                             (int)ul, url, strerror(errno));
                goto out;
        }
        static const char req[] = "GET /v1/health HTTP/1.1\r\nHost: credbroker\r\n\r\n";
        if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1) {
                r = -cli_fail(-EIO, "exec --proxy: %.*s: cannot send: %s", (int)ul, url, strerror(errno));
                goto out;
        }
        /* The first byte of an answer: the server has accepted us. */
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        char b;
        if (poll(&pf, 1, 10000) != 1 || recv(fd, &b, 1, MSG_PEEK) != 1) {
                r = -cli_fail(-ETIMEDOUT, "exec --proxy: %.*s does not answer", (int)ul, url);
                goto out;
        }
        r = cb_tcp_peer_uid(fd, &uid);
        if (r < 0) {
                r = -cli_fail(r, "exec --proxy: cannot tell who serves %.*s: %s; nothing sent", (int)ul, url,
                             cb_error_last());
                goto out;
        }
        if (!broker_uid_ok(uid)) {
                r = -cli_fail(-EPERM, "exec --proxy: %.*s is served by uid %u, not the broker (root, our own uid "
                             "or the broker uid): refused, no token minted (if the broker runs as that uid, "
                             "pass --broker-uid %u)", (int)ul, url, (unsigned)uid, (unsigned)uid);
                goto out;
        }
        r = 0;
out:
        if (fd >= 0)
                close(fd);
        return r;
}

int cli_proxy_mint(struct cli_proxy *p, size_t n, cb_client *c, const char *url, bool check) {
        size_t ul = strlen(url);

        while (ul && url[ul - 1] == '/')
                ul--;
        if (n && check) {
                int r = check_listener(url, ul);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n; i++) {
                char var[sizeof(p[i].prefix) + 16], base[1024];
                unsigned expires = 0;
                int r;

                /* "session": usable by any program of our uid while this
                 * process lives, so it dies with exec even on SIGKILL.  A
                 * kernel without SO_PEERPIDFD cannot pin us: then a plain
                 * uid-bound token, revoked at exit (cli_proxy_release). */
                r = cb_client_token_bind(c, p[i].secret, "proxy", PROXY_TTL_ASK, "session", &p[i].token, NULL,
                                         &expires);
                if (r < 0 && strstr(cb_client_error(c), "SO_PEERPIDFD"))
                        r = cb_client_token_bind(c, p[i].secret, "proxy", PROXY_TTL_ASK, "uid", &p[i].token, NULL,
                                                 &expires);
                if (r < 0)
                        return -cli_fail_client(r, c, "exec --proxy");
                if (snprintf(base, sizeof(base), "%.*s/v1/proxy/%s", (int)ul, url, p[i].secret) >= (int)sizeof(base))
                        return -cli_usage("exec: --proxy-url too long");
                snprintf(var, sizeof(var), "%s_BASE_URL", p[i].prefix);
                p[i].env_base = env_string(var, base, p[i].path_suffix, "");
                snprintf(var, sizeof(var), "%s_API_KEY", p[i].prefix);
                p[i].env_key = env_string(var, p[i].token, "", "");
                if (!p[i].env_base || !p[i].env_key)
                        return -cli_fail(-ENOMEM, "out of memory");
                p[i].expires = expires;
                /* The grant's max_ttl caps the token (the operator's limit,
                 * not overridden here): a short one an agent session easily
                 * outlives is said before the command starts, not at its
                 * first 401. */
                if (expires && expires <= PROXY_TTL_NOTICE)
                        fprintf(stderr, "credbroker: exec --proxy %s: its token expires in %u s (the grant's max_ttl); "
                                "a command still running then gets 401 expired: raise the grant's max_ttl to the "
                                "longest session, or drop it (the token then lives as long as exec, at most "
                                "86400 s)\n", p[i].secret, expires);
        }
        return 0;
}

void cli_proxy_release(struct cli_proxy *p, size_t n) {
        cb_client *c = NULL;

        for (size_t i = 0; i < n; i++) {
                if (p[i].token) {
                        char *body = NULL;
                        json_t *o = json_pack("{s:s}", "token", p[i].token);
                        int r = -ENOMEM;

                        if (!c && cb_client_new(cli_socket, &c) < 0)
                                c = NULL;
                        if (o && c && (body = json_dumps(o, JSON_COMPACT)))
                                r = cb_client_request(c, "POST", "/v1/revoke", body, strlen(body), NULL, NULL);
                        if (r < 0)
                                fprintf(stderr, "credbroker: exec: could not revoke the token for '%s' (%s): it "
                                        "expires by itself within %u s\n", p[i].secret,
                                        c ? cb_client_error(c) : "broker unreachable", p[i].expires);
                        if (body) {
                                sodium_memzero(body, strlen(body));
                                free(body);
                        }
                        json_decref(o);
                        cb_token_free(p[i].token);
                        p[i].token = NULL;
                }
                sodium_free(p[i].env_base);
                sodium_free(p[i].env_key);
                p[i].env_base = p[i].env_key = NULL;
        }
        cb_client_free(c);
}
