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
 * exec, but never past max_ttl (the operator's cap; 300 s when the grant
 * sets none, which exec points out on stderr).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli.h"
#include "credbroker.h"
#include "error.h"
#include "store.h"

#define PROXY_TTL_ASK 86400 /* the broker cuts it to the grant's max_ttl */
#define PROXY_TTL_NOTICE 300 /* the default max_ttl (policy.h CB_TTL_DEFAULT) or less */

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

int cli_proxy_mint(struct cli_proxy *p, size_t n, cb_client *c, const char *url) {
        size_t ul = strlen(url);

        while (ul && url[ul - 1] == '/')
                ul--;
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
                 * not overridden here); a grant that sets none gives the
                 * default 300 s, which an agent session easily outlives:
                 * say so before the command starts, not at its first 401. */
                if (expires && expires <= PROXY_TTL_NOTICE)
                        fprintf(stderr, "credbroker: exec --proxy %s: its token expires in %u s (the grant's max_ttl); "
                                "a command still running then gets 401 expired: set max_ttl on the grant to the "
                                "longest session (at most 86400)\n", p[i].secret, expires);
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
