/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The injection proxy, deciding half: which secret, which sealed host, is
 * this caller's token good for proxy use of it, are method, path and
 * headers acceptable — all before anything leaves the broker (see proxy.c
 * for the transfer).  Runs on a server thread under cbd.lock.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <microhttpd.h>
#include <sodium.h>

#include "metrics.h"
#include "error.h"
#include "proxy.h"
#include "scan.h"

#define PROXY_HEADERS_MAX (16 * 1024) /* all request header bytes together */

typedef struct hdr_ctx {
        request *rq;
        const cb_inject *inj;
        const char *conn_hdr;         /* the Connection header: names more hop-by-hop headers */
        struct curl_slist *out;
        const char *bad;              /* first refused header, for the message */
        bool oom;
        size_t total;
} hdr_ctx;

/* Is name listed in the Connection header's comma-separated tokens? */
static bool connection_listed(const char *conn_hdr, const char *name) {
        size_t nl = strlen(name);

        for (const char *p = conn_hdr; p && *p;) {
                while (*p == ' ' || *p == ',' || *p == '\t')
                        p++;
                size_t tl = strcspn(p, ", \t");
                if (tl == nl && strncasecmp(p, name, nl) == 0)
                        return true;
                p += tl;
        }
        return false;
}

static enum MHD_Result copy_header(void *cls, enum MHD_ValueKind kind, const char *name, size_t name_size,
                                   const char *value, size_t value_size) {
        hdr_ctx *c = cls;
        (void)kind;

        if (!value)
                value = "", value_size = 0;
        c->total += name_size + value_size + 4;
        /* A NUL cuts a C string short: compare with the sizes MHD saw. */
        if (cb_header_bad(name, value) || strlen(name) != name_size || strlen(value) != value_size) {
                c->bad = name;
                return MHD_NO;
        }
        if (c->total > PROXY_HEADERS_MAX)
                return MHD_NO;
        static const char *const overrides[] = { "x-http-method-override", "x-http-method", "x-method-override",
                                                 "x-original-url", "x-rewrite-url", "x-original-method",
                                                 "range", "if-range", NULL };
        for (size_t i = 0; overrides[i]; i++)
                if (strcasecmp(name, overrides[i]) == 0)
                        return MHD_YES; /* would let the upstream see another method or path, or a partial echo */
        if (cb_header_hop(name) || connection_listed(c->conn_hdr, name) || strcasecmp(name, "authorization") == 0 ||
            strcasecmp(name, "accept-encoding") == 0 ||
            strncasecmp(name, "x-credbroker-", 13) == 0 ||
            (c->inj->kind == CB_INJECT_HEADER && strcasecmp(name, c->inj->name) == 0))
                return MHD_YES;
        size_t n = strlen(name) + 2 + strlen(value) + 1;
        char *line = malloc(n);
        if (!line) {
                c->oom = true;
                return MHD_NO;
        }
        snprintf(line, n, "%s: %s", name, value);
        struct curl_slist *l = curl_slist_append(c->out, line);
        free(line);
        if (!l) {
                c->oom = true;
                return MHD_NO;
        }
        c->out = l;
        return MHD_YES;
}

typedef struct query_ctx {
        char *q;
        size_t len, cap;
        const char *drop;             /* the injected parameter: the client's is dropped */
        bool drop_method;             /* methods are sealed: "_method" overrides are dropped */
        bool oom, bad;
} query_ctx;

/* Does the raw query key name `name` once percent-decoded, or as "name[...]"
 * (the forms servers read as the same parameter)? */
static bool key_is(const char *key, const char *name) {
        char dec[256];
        size_t o = 0;

        for (const char *p = key; *p && o + 1 < sizeof(dec); p++) {
                if (*p == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
                        dec[o++] = (char)strtoul((char[]){ p[1], p[2], 0 }, NULL, 16);
                        p += 2;
                } else {
                        dec[o++] = *p;
                }
        }
        dec[o] = '\0';
        size_t nl = strlen(name);
        return strncasecmp(dec, name, nl) == 0 && (dec[nl] == '\0' || dec[nl] == '[');
}

/* Query text that curl would cut or refuse: '#', spaces, control bytes. */
static bool query_bad(const char *s) {
        for (; s && *s; s++)
                if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == '#')
                        return true;
        return false;
}

static bool qappend(query_ctx *c, const char *s, size_t n) {
        if (c->len + n + 1 > c->cap) {
                size_t nc = c->cap ? c->cap * 2 : 256;
                while (nc < c->len + n + 1)
                        nc *= 2;
                char *q = realloc(c->q, nc);
                if (!q) {
                        c->oom = true;
                        return false;
                }
                c->q = q;
                c->cap = nc;
        }
        memcpy(c->q + c->len, s, n);
        c->len += n;
        c->q[c->len] = '\0';
        return true;
}

static enum MHD_Result copy_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        query_ctx *c = cls;
        (void)kind;

        if (query_bad(key) || query_bad(value)) {
                c->bad = true;
                return MHD_NO;
        }
        if ((c->drop && key_is(key, c->drop)) || (c->drop_method && key_is(key, "_method")))
                return MHD_YES;
        if ((c->len && !qappend(c, "&", 1)) || !qappend(c, key, strlen(key)) ||
            (value && (!qappend(c, "=", 1) || !qappend(c, value, strlen(value)))))
                return MHD_NO;
        return MHD_YES;
}

static const char *bearer(const char *v, size_t *len) {
        if (!v || strncasecmp(v, "Bearer ", 7) != 0)
                return NULL;
        v += 7;
        while (*v == ' ')
                v++;
        *len = strlen(v);
        while (*len && v[*len - 1] == ' ')
                (*len)--;
        return v;
}

/* The token: Proxy-Authorization, Authorization (Bearer), or the value of
 * the template's header.  Copied NUL-terminated into out. */
static bool find_token(request *rq, const cb_inject *inj, char out[CB_TOKEN_LEN + 1]) {
        const char *cand[3], *v;
        size_t lens[3], n = 0, len;

        if ((v = bearer(MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Proxy-Authorization"), &len)))
                cand[n] = v, lens[n++] = len;
        if ((v = bearer(MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Authorization"), &len)))
                cand[n] = v, lens[n++] = len;
        if (inj->kind == CB_INJECT_HEADER) {
                const char *hv = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, inj->name);
                if (hv && (v = cb_inject_token(inj, hv, &len)))
                        cand[n] = v, lens[n++] = len;
        }
        for (size_t i = 0; i < n; i++)
                if (cb_token_check(cand[i], lens[i]) == 0) {
                        memcpy(out, cand[i], CB_TOKEN_LEN);
                        out[CB_TOKEN_LEN] = '\0';
                        return true;
                }
        return false;
}

/* Percent-encode for a query value. */
static char *pct(const unsigned char *p, size_t n) {
        static const char hex[] = "0123456789ABCDEF";
        char *o = malloc(n * 3 + 1), *q = o;

        if (!o)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = p[i];
                if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~", c))
                        *q++ = (char)c;
                else
                        *q++ = '%', *q++ = hex[c >> 4], *q++ = hex[c & 15];
        }
        *q = '\0';
        return o;
}

/* The value as a JSON string body would carry it, '/' escaped too (as PHP
 * and others write it); NULL on ENOMEM. */
static char *json_escaped(const unsigned char *p, size_t n) {
        char *o = malloc(n * 6 + 1), *q = o;

        if (!o)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = p[i];
                if (c == '"' || c == '\\' || c == '/')
                        *q++ = '\\', *q++ = (char)c;
                else if (c < 0x20)
                        q += sprintf(q, "\\u%04x", c);
                else
                        *q++ = (char)c;
        }
        *q = '\0';
        return o;
}

static bool header_safe(const unsigned char *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i] == '\r' || p[i] == '\n' || p[i] == 0)
                        return false;
        return true;
}

int api_proxy(request *rq) {
        const char *url = rq->url, *path, *name_end;
        char secret[CB_NAME_MAX + 1], tok[CB_TOKEN_LEN + 1], target_auth[CB_DEST_HOST_MAX + 16];
        const cb_token_info *info;
        const cb_meta *meta;
        cb_secbuf *val = NULL;
        uint32_t version;
        cb_inject inj;
        cb_dest dest;
        bool forward = false;
        proxy_spec sp = { .url = NULL };
        hdr_ctx hc = { .rq = rq };
        query_ctx qc = { 0 };
        char *upstream = NULL, *extra = NULL, *pct_form = NULL, *json_form = NULL;
        int r, ret;

        rq->route = "proxy";
        if (strcmp(rq->method, "CONNECT") == 0)
                return reply_error(rq, 405, "method_not_allowed",
                                   "CONNECT tunnels are not offered: send absolute-form requests (HTTP_PROXY) or use "
                                   "/v1/proxy/<secret>/<path>");
        if (strlen(rq->method) >= sizeof(sp.method))
                return reply_error(rq, 400, "bad_request", "method too long");
        /* Which secret and path. */
        if (strncmp(url, "/v1/proxy/", 10) == 0) {
                const char *n = url + 10;
                name_end = strchr(n, '/');
                if (!name_end)
                        name_end = n + strlen(n);
                if (name_end == n || (size_t)(name_end - n) > CB_NAME_MAX)
                        return reply_error(rq, 400, "bad_request", "want /v1/proxy/<secret>/<path>");
                memcpy(secret, n, (size_t)(name_end - n));
                secret[name_end - n] = '\0';
                path = *name_end ? name_end : "/";
        } else {
                /* Absolute form: http://host[:port]/path (upgraded to HTTPS
                 * unless the sealed entry says http://). */
                const char *a = strncasecmp(url, "http://", 7) == 0 ? url + 7 : strncasecmp(url, "https://", 8) == 0 ? url + 8 : NULL;
                if (!a)
                        return reply_error(rq, 404, "not_found", "no route %.64s", url);
                forward = true;
                secret[0] = '\0';
                const char *slash = strchr(a, '/');
                char *auth = target_auth;
                size_t al = slash ? (size_t)(slash - a) : strlen(a);
                if (al == 0 || al >= sizeof(target_auth))
                        return reply_error(rq, 400, "bad_request", "bad target host");
                memcpy(auth, a, al);
                auth[al] = '\0';
                if (cb_dest_parse_authority(auth, true, &dest) < 0)
                        return reply_error(rq, 400, "bad_request", "%s", cb_error_last());
                const char *host_hdr = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Host");
                cb_dest hd;
                if (!host_hdr || cb_dest_parse_authority(host_hdr, true, &hd) < 0 ||
                    strcmp(hd.host, dest.host) != 0 || hd.port != dest.port)
                        return reply_error(rq, 400, "bad_request", "the Host header does not match the target %s",
                                           auth);
                path = slash ? slash : "/";
        }
        if (cb_path_check(path, strlen(path)) < 0)
                return reply_error(rq, 400, "bad_request", "%s", cb_error_last());
        /* In the forward form the token names the secret. */
        if (forward) {
                cb_inject dflt;
                (void)cb_inject_parse(NULL, &dflt);
                if (!find_token(rq, &dflt, tok))
                        return reply_error(rq, 407, "unauthorized",
                                           "a token is required: Proxy-Authorization: Bearer cbt_...");
                r = cb_tokens_peek(cbd.tokens, tok, strlen(tok), &info);
                sodium_memzero(tok, sizeof(tok));
                if (r < 0)
                        return reply_error(rq, 401, "unauthorized", "%s", cb_error_last());
                snprintf(secret, sizeof(secret), "%s", info->secret);
        }
        snprintf(rq->secret, sizeof(rq->secret), "%s", secret);
        if (leak_token_gate(rq, secret, &ret)) /* a canary (alert) or a compromised secret */
                goto out;
        r = cb_store_get(cbd.store, secret, 0, false, &val, &version, &meta);
        if (r < 0) {
                /* Same answer as for a secret that exists but is not ours. */
                ret = reply_error(rq, 403, "forbidden", "no usable secret '%s' for this token", secret);
                goto out;
        }
        if (cb_inject_parse(meta->inject, &inj) < 0) {
                ret = reply_error(rq, 500, "internal", "secret '%s': %s", secret, cb_error_last());
                goto out;
        }
        if (!find_token(rq, &inj, tok)) {
                ret = reply_error(rq, 401, "unauthorized",
                                  "a token is required: Authorization: Bearer cbt_... (or Proxy-Authorization)");
                goto out;
        }
        /* Checked now, counted only once the request passes every check
         * (a refused request does not use up the token). */
        r = cb_tokens_check(cbd.tokens, tok, strlen(tok), &rq->peer, CB_USE_PROXY, &info);
        if (rq->tcp && (r < 0 || !info->any_exe)) {
                /* No executable to compare over TCP: only a token that does
                 * not need one (said so rather than "another executable"). */
                const cb_token_info *peek = r == 0 ? info : NULL;
                if ((peek || cb_tokens_peek(cbd.tokens, tok, strlen(tok), &peek) == 0) && !peek->any_exe) {
                        sodium_memzero(tok, sizeof(tok));
                        ret = reply_error(rq, 401, "unauthorized",
                                          "over TCP the broker sees only the uid: use a token issued with "
                                          "\"bind\": \"uid\" (credbroker token --bind uid)");
                        goto out;
                }
        }
        if (r < 0) {
                ret = reply_error(rq, 401, r == -ETIME ? "expired" : r == -EDQUOT ? "used_up" : "unauthorized", "%s",
                                  r == -EPERM ? "the token does not allow proxy use, or belongs to another caller"
                                              : cb_error_last());
                goto out;
        }
        snprintf(rq->accessor, sizeof(rq->accessor), "%s", info->accessor);
        snprintf(rq->client, sizeof(rq->client), "%s", info->client);
        if (strcmp(info->secret, secret) != 0) {
                ret = reply_error(rq, 403, "forbidden", "the token is for another secret, not '%s'", secret);
                goto out;
        }
        /* The grant must still exist: for the presenter, or for a uid-bound
         * token, for the client it was issued to. */
        if (!(info->any_exe ? cb_policy_client_grant(cbd.policy, info->client, secret, CB_USE_PROXY)
                            : cb_policy_find_grant(cbd.policy, &rq->peer, secret, CB_USE_PROXY, NULL))) {
                ret = reply_error(rq, 403, "forbidden", "the grant for '%s' (proxy) no longer exists", secret);
                goto out;
        }
        if (meta->not_after && meta->not_after <= (uint64_t)time(NULL)) {
                ret = reply_error(rq, 403, "forbidden", "secret '%s' expired (not_after)", secret);
                goto out;
        }
        /* Destination: one of the sealed hosts. */
        {
                const char *pick = forward ? target_auth : MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                                                                        "X-Credbroker-Host");
                cb_dest want, d;
                bool found = false, explicit_port = pick && strrchr(pick, ':') && !strchr(strrchr(pick, ':'), ']');
                if (pick && cb_dest_parse_authority(pick, true, &want) < 0) {
                        ret = reply_error(rq, 400, "bad_request", "%s: %s", forward ? "target" : "X-Credbroker-Host",
                                          cb_error_last());
                        goto out;
                }
                for (size_t i = 0; i < meta->hosts.n && !found; i++) {
                        if (cb_dest_parse(meta->hosts.v[i], &d) < 0)
                                continue;
                        found = !pick || (strcmp(d.host, want.host) == 0 &&
                                          d.port == (explicit_port ? want.port : d.https ? 443u : 80u));
                        if (found)
                                dest = d;
                }
                if (!found) {
                        ret = reply_error(rq, 403, "forbidden", "host %.300s is not among the sealed hosts of '%s'",
                                          pick ? pick : "(none sealed)", secret);
                        goto out;
                }
        }
        if (meta->methods.n) {
                bool ok = false;
                for (size_t i = 0; i < meta->methods.n; i++)
                        ok |= strcmp(meta->methods.v[i], rq->method) == 0;
                if (!ok) {
                        ret = reply_error(rq, 403, "forbidden", "method %s is not allowed for '%s'", rq->method,
                                          secret);
                        goto out;
                }
        }
        if (meta->path_prefixes.n) {
                bool ok = false;
                for (size_t i = 0; i < meta->path_prefixes.n; i++)
                        ok |= cb_path_under(path, meta->path_prefixes.v[i]);
                if (!ok) {
                        ret = reply_error(rq, 403, "forbidden", "path %.200s is not under an allowed prefix for '%s'",
                                          path, secret);
                        goto out;
                }
        }
        /* Headers: the client's, minus credentials and hop-by-hop. */
        hc.inj = &inj;
        hc.conn_hdr = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Connection");
        MHD_get_connection_values_n(rq->conn, MHD_HEADER_KIND, copy_header, &hc);
        if (hc.bad) {
                ret = reply_error(rq, 400, "bad_request", "header '%.64s' holds CR, LF or NUL, or a bad name", hc.bad);
                goto out;
        }
        if (hc.total > PROXY_HEADERS_MAX) {
                ret = reply_error(rq, 431, "headers_too_large", "request headers over %d bytes", PROXY_HEADERS_MAX);
                goto out;
        }
        if (hc.oom) {
                ret = MHD_NO;
                goto out;
        }
        /* The secret. */
        const unsigned char *v = cb_secbuf_data(val);
        size_t vl = cb_secbuf_len(val);
        if (inj.kind == CB_INJECT_HEADER || inj.kind == CB_INJECT_BASIC) {
                if (!header_safe(v, vl)) {
                        ret = reply_error(rq, 500, "internal", "secret '%s' holds CR, LF or NUL: it cannot go in a header",
                                          secret);
                        goto out;
                }
                size_t n;
                if (inj.kind == CB_INJECT_HEADER) {
                        n = strlen(inj.name) + 2 + strlen(inj.prefix) + vl + strlen(inj.suffix) + 1;
                        extra = malloc(n);
                        if (extra)
                                snprintf(extra, n, "%s: %s%.*s%s", inj.name, inj.prefix, (int)vl, (const char *)v,
                                         inj.suffix);
                } else {
                        size_t ul = strlen(inj.name) + 1 + vl, bl = sodium_base64_ENCODED_LEN(ul, sodium_base64_VARIANT_ORIGINAL);
                        unsigned char *up = malloc(ul);
                        n = 22 + bl;
                        extra = up ? malloc(n) : NULL;
                        if (extra) {
                                memcpy(up, inj.name, strlen(inj.name));
                                up[strlen(inj.name)] = ':';
                                memcpy(up + strlen(inj.name) + 1, v, vl);
                                memcpy(extra, "Authorization: Basic ", 21);
                                sodium_bin2base64(extra + 21, bl, up, ul, sodium_base64_VARIANT_ORIGINAL);
                        }
                        if (up) {
                                sodium_memzero(up, ul);
                                free(up);
                        }
                }
                struct curl_slist *l = extra ? curl_slist_append(hc.out, extra) : NULL;
                if (!l) {
                        ret = MHD_NO;
                        goto out;
                }
                hc.out = l;
        }
        {
                struct curl_slist *l = curl_slist_append(hc.out, "Accept-Encoding: identity");
                l = l ? curl_slist_append(l, "Expect:") : NULL;
                if (l && !MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Content-Type"))
                        l = curl_slist_append(l, "Content-Type:");
                if (!l) {
                        ret = MHD_NO;
                        goto out;
                }
                hc.out = l;
        }
        /* The URL. */
        qc.drop = inj.kind == CB_INJECT_QUERY ? inj.name : NULL;
        qc.drop_method = meta->methods.n > 0;
        MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, copy_arg, &qc);
        if (qc.bad) {
                ret = reply_error(rq, 400, "bad_request", "the query holds '#', a space or a control byte");
                goto out;
        }
        if (inj.kind == CB_INJECT_QUERY) {
                char *pv = pct(v, vl);
                if (!pv || (qc.len && !qappend(&qc, "&", 1)) || !qappend(&qc, inj.name, strlen(inj.name)) ||
                    !qappend(&qc, "=", 1) || !qappend(&qc, pv, strlen(pv)))
                        qc.oom = true;
                if (pv) {
                        sodium_memzero(pv, strlen(pv));
                        free(pv);
                }
        }
        if (qc.oom) {
                ret = MHD_NO;
                goto out;
        }
        {
                size_t n = strlen(dest.host) + strlen(path) + (qc.q ? qc.len : 0) + 32;
                upstream = malloc(n);
                if (!upstream) {
                        ret = MHD_NO;
                        goto out;
                }
                bool v6 = strchr(dest.host, ':') != NULL;
                snprintf(upstream, n, "%s://%s%s%s:%u%s%s%s", dest.https ? "https" : "http", v6 ? "[" : "", dest.host,
                         v6 ? "]" : "", dest.port, path, qc.len ? "?" : "", qc.len ? qc.q : "");
        }
        /* Decided: count the use, record it before anything leaves (fail
         * closed). */
        if (cb_tokens_count_checked(cbd.tokens, info) < 0) {
                ret = reply_error(rq, 401, "unauthorized", "%s", cb_error_last());
                goto out;
        }
        metrics_request_id(sp.request_id); /* links this record to the completion's */
        rq->audit_extra = json_pack("{s:s}", "request_id", sp.request_id);
        r = audit_write(rq, 202, "allow", "proxied");
        json_decref(rq->audit_extra);
        rq->audit_extra = NULL;
        if (r < 0) {
                ret = reply_error(rq, 503, "audit_unavailable", "the audit log cannot be written");
                goto out;
        }
        sp.url = upstream, upstream = NULL;
        sp.headers = hc.out, hc.out = NULL;
        sp.dest = dest;
        sp.ca_file = meta->ca_file;
        sp.pin = meta->pin;
        /* The forms a response may echo the secret in. */
        sp.forms[sp.nforms] = v, sp.form_lens[sp.nforms++] = vl;
        if (inj.kind == CB_INJECT_BASIC && extra)
                sp.forms[sp.nforms] = (const unsigned char *)extra + 21, sp.form_lens[sp.nforms++] = strlen(extra + 21);
        pct_form = pct(v, vl);
        if (pct_form && (strlen(pct_form) != vl || memcmp(pct_form, v, vl) != 0))
                sp.forms[sp.nforms] = (const unsigned char *)pct_form, sp.form_lens[sp.nforms++] = strlen(pct_form);
        json_form = json_escaped(v, vl);
        if (json_form && (strlen(json_form) != vl || memcmp(json_form, v, vl) != 0))
                sp.forms[sp.nforms] = (const unsigned char *)json_form, sp.form_lens[sp.nforms++] = strlen(json_form);
        snprintf(sp.method, sizeof(sp.method), "%s", rq->method);
        {
                const char *cl = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Content-Length");
                const char *te = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Transfer-Encoding");
                char *end = NULL;
                long long n = cl ? strtoll(cl, &end, 10) : -1;
                sp.content_length = cl && end != cl && !*end && n >= 0 ? n : -1;
                sp.expect_body = sp.content_length > 0 || (te && !cl);
        }
        snprintf(sp.path, sizeof(sp.path), "%s", path);
        ret = proxy_start(rq, &sp);
out:
        sodium_memzero(tok, sizeof(tok));
        cb_secbuf_free(val);
        if (pct_form) {
                sodium_memzero(pct_form, strlen(pct_form));
                free(pct_form);
        }
        if (json_form) {
                sodium_memzero(json_form, strlen(json_form));
                free(json_form);
        }
        if (extra) {
                sodium_memzero(extra, strlen(extra));
                free(extra);
        }
        if (upstream) {
                sodium_memzero(upstream, strlen(upstream));
                free(upstream);
        }
        if (qc.q) {
                sodium_memzero(qc.q, qc.cap);
                free(qc.q);
        }
        proxy_slist_wipe_free(hc.out);
        return ret;
}
