/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The injection proxy, deciding half: which secret, which sealed host, is
 * this caller's token good for proxy use of it, are method, path and
 * headers acceptable — all before anything leaves the broker (see proxy.c
 * for the transfer).  Runs on a server thread under no daemon-wide lock: the
 * token table guards itself, the store is read under its read side (never
 * waiting for a writer's I/O) and the metadata copied out; the race with a
 * leak response is closed in proxy_start (proxy_conn.c).
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
#include "codec.h"
#include "match.h"
#include "proxy.h"
#include "proxy_request.h"
#include "red_cache.h"
#include "scan.h"

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

/* The request's header fields, as the decision reads them. */
typedef struct hdr_list {
        cb_preq_header h[CB_PREQ_HEADERS_MAX + 1];
        size_t n;
} hdr_list;

/* libmicrohttpd 0.9.75 keeps each field's name and value where they were
 * read: "Name\0 value" (the colon overwritten, spaces skipped), value right
 * after.  A field continued on the next line (obs-fold) is rebuilt
 * elsewhere, with the continuation glued to its name ("X-A: b\r\n c" comes
 * out as "X-Ac: b"), so a value that does not follow its name so is one. */
static bool mhd_folded(const char *name, size_t nl, const char *value) {
        const char *p = name + nl;

        if (!value || *p != '\0')
                return true;
        for (p++; p < value; p++)
                if (*p != ' ' && *p != '\t')
                        return true;
        return p != value;
}

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *name, size_t name_size,
                               const char *value, size_t value_size) {
        hdr_list *l = cls;
        (void)kind;

        if (l->n == CB_PREQ_HEADERS_MAX + 1)
                return MHD_NO;                     /* one over the cap: the decision refuses it */
        l->h[l->n++] = (cb_preq_header){ .name = name, .name_len = name_size, .value = value ? value : "",
                                          .value_len = value ? value_size : 0,
                                          .folded = value && mhd_folded(name, name_size, value) };
        return MHD_YES;
}

static const char *hdr_get(const hdr_list *l, const char *name) {
        for (size_t i = 0; i < l->n; i++)
                if (strlen(name) == l->h[i].name_len && strncasecmp(l->h[i].name, name, l->h[i].name_len) == 0)
                        return l->h[i].value;
        return NULL;
}

/* The token, wherever the client put it (a header of a template not yet
 * known — the secret's template is read only once a token is valid, so an
 * unauthenticated caller learns nothing about which names exist):
 * Proxy-Authorization or Authorization "Bearer <token>", else the first
 * token-shaped text in any header.  Copied NUL-terminated into out; *ret_i:
 * the field it came from. */
static bool find_token(const hdr_list *l, char out[CB_TOKEN_LEN + 1], size_t *ret_i) {
        static const char *const where[] = { "proxy-authorization", "authorization" };
        const char *v;
        size_t len;

        for (size_t w = 0; w < 2; w++)
                for (size_t i = 0; i < l->n; i++)
                        if (l->h[i].name_len == strlen(where[w]) &&
                            strncasecmp(l->h[i].name, where[w], l->h[i].name_len) == 0 &&
                            (v = bearer(l->h[i].value, &len)) && cb_token_check(v, len) == 0) {
                                memcpy(out, v, CB_TOKEN_LEN);
                                out[CB_TOKEN_LEN] = '\0';
                                *ret_i = i;
                                return true;
                        }
        for (size_t i = 0; i < l->n; i++)
                for (const char *p = l->h[i].value; (p = strstr(p, CB_TOKEN_PREFIX)); p++)
                        if (strlen(p) >= CB_TOKEN_LEN && cb_token_check(p, CB_TOKEN_LEN) == 0) {
                                memcpy(out, p, CB_TOKEN_LEN);
                                out[CB_TOKEN_LEN] = '\0';
                                *ret_i = i;
                                return true;
                        }
        return false;
}

/* Did the token come where this secret's template takes it: a Bearer
 * (Proxy-)Authorization, or exactly the template's header around it? */
static bool token_placed(const hdr_list *l, size_t i, const cb_inject *inj, const char *tok) {
        const cb_preq_header *x = &l->h[i];
        const char *v;
        size_t len;

        if ((x->name_len == 13 && strncasecmp(x->name, "authorization", 13) == 0) ||
            (x->name_len == 19 && strncasecmp(x->name, "proxy-authorization", 19) == 0))
                if ((v = bearer(x->value, &len)) && len == CB_TOKEN_LEN && memcmp(v, tok, CB_TOKEN_LEN) == 0)
                        return true;
        return inj->kind == CB_INJECT_HEADER && x->name_len == strlen(inj->name) &&
               strncasecmp(x->name, inj->name, x->name_len) == 0 && (v = cb_inject_token(inj, x->value, &len)) &&
               len == CB_TOKEN_LEN && memcmp(v, tok, CB_TOKEN_LEN) == 0;
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

static bool header_safe(const unsigned char *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i] == '\r' || p[i] == '\n' || p[i] == 0)
                        return false;
        return true;
}

/* Append "name: value" to a header list; false on ENOMEM. */
static bool add_header(struct curl_slist **out, const char *name, size_t nl, const char *value, size_t vl) {
        char *line = malloc(nl + 2 + vl + 1);
        struct curl_slist *l;

        if (!line)
                return false;
        memcpy(line, name, nl);
        memcpy(line + nl, ": ", 2);
        memcpy(line + nl + 2, value, vl);
        line[nl + 2 + vl] = '\0';
        l = curl_slist_append(*out, line);
        sodium_memzero(line, nl + 2 + vl);
        free(line);
        if (l)
                *out = l;
        return l != NULL;
}


/* A sandbox's proxied request carrying a live secret value (or a token)
 * in the method, the name or value of a header that goes upstream, its
 * path or its query, as the tool sent them (before the broker injects the
 * credential): refused, 403.  (The whole head as the tool sent it went
 * through the matcher at the door already, http/server_leak.c, for the
 * values; this pass also finds tokens, and the query as filtered.)  On the
 * serving thread, no lock held (the live matcher is the scanner's).  0 go on, or the
 * reply's result in *ret. */
static int sandbox_leak_gate(request *rq, const hdr_list *hl, const cb_inject *inj, const char *conn_hdr,
                             const char *path, const char *query, int *ret) {
        cb_matcher *m = scanner_matcher_ref();
        cb_scan_first l;
        const char *where = NULL;
        char wbuf[96];
        int r = 0;

        if (!m) {
                *ret = reply_error(rq, 503, "unavailable", "the outbound leak guard cannot run (%s): refused rather "
                                   "than unchecked", cb_error_last());
                return 1;
        }
        /* One pass over all of it with the one-shot scan (small windows:
         * this runs on a serving thread); only a request with a sighting
         * is gone through again, piece by piece, to say where and what. */
        size_t total = strlen(path) + (query ? strlen(query) : 0) + strlen(rq->method) + 4;
        for (size_t i = 0; i < hl->n; i++)
                total += hl->h[i].name_len + hl->h[i].value_len + 2;
        char *all = malloc(total), *red = NULL;
        size_t at = 0, hits = 0;
        if (all) {
                for (size_t i = 0; i < hl->n; i++) {
                        const cb_preq_header *x = &hl->h[i];
                        if (cb_preq_header_class(x->name, x->name_len, inj->kind == CB_INJECT_HEADER ? inj->name : NULL,
                                                 conn_hdr) != CB_HDR_FORWARD)
                                continue;
                        memcpy(all + at, x->name, x->name_len);
                        at += x->name_len;
                        all[at++] = '\n';
                        memcpy(all + at, x->value, x->value_len);
                        at += x->value_len;
                        all[at++] = '\n';
                }
                at += (size_t)snprintf(all + at, total - at, "%s\n%s\n%s", rq->method, path, query ? query : "");
                red = cb_matcher_redact_string(m, all, &hits);
                sodium_memzero(all, total);
                free(all);
        }
        if (red) {
                sodium_memzero(red, strlen(red));
                free(red);
        }
        if (!red) {
                cb_matcher_free(m);
                *ret = reply_error(rq, 503, "unavailable", "out of memory");
                return 1;
        }
        if (!hits) {
                cb_matcher_free(m);
                return 0;
        }
        for (size_t i = 0; i < hl->n && r == 0; i++) {
                const cb_preq_header *x = &hl->h[i];
                if (cb_preq_header_class(x->name, x->name_len, inj->kind == CB_INJECT_HEADER ? inj->name : NULL,
                                         conn_hdr) != CB_HDR_FORWARD)
                        continue; /* not sent upstream */
                if ((r = cb_scan_first_in(m, x->name, x->name_len, &l)) == 1) {
                        where = "a header name"; /* not quoted: the name is what carries it */
                        break;
                }
                if ((r = cb_scan_first_in(m, x->value, x->value_len, &l)) == 1) {
                        snprintf(wbuf, sizeof(wbuf), "header '%.*s'", (int)(x->name_len > 64 ? 64 : x->name_len),
                                 x->name);
                        where = wbuf;
                }
        }
        if (r == 0 && (r = cb_scan_first_in(m, rq->method, strlen(rq->method), &l)) == 1)
                where = "method";
        if (r == 0 && (r = cb_scan_first_in(m, path, strlen(path), &l)) == 1)
                where = "path";
        if (r == 0 && query && (r = cb_scan_first_in(m, query, strlen(query), &l)) == 1)
                where = "query";
        cb_matcher_free(m);
        if (r < 0) {
                *ret = reply_error(rq, 503, "unavailable", "out of memory");
                return 1;
        }
        if (r == 0) /* seen only across two pieces: refused all the same */
                *ret = reply_error(rq, 403, "leak_refused", "the request's headers, path and query together carry a "
                                   "live secret value: the outbound leak guard refuses it");
        else if (l.name[0])
                *ret = reply_error(rq, 403, "leak_refused", "the request's %s carries the live secret '%s' (%s form): "
                                   "the outbound leak guard refuses a sandbox's request holding a secret value "
                                   "(only the broker's own injection may carry one)", where, l.name,
                                   cb_scan_kind_name(l.kind));
        else
                *ret = reply_error(rq, 403, "leak_refused", "the request's %s carries a credbroker token: the outbound "
                                   "leak guard refuses it", where);
        return 1;
}

int api_proxy(request *rq) {
        char secret[CB_NAME_MAX + 1], tok[CB_TOKEN_LEN + 1], path[CB_PREQ_TARGET_MAX + 2];
        const cb_token_info *info;
        const cb_meta *meta = NULL;
        cb_meta *meta_own = NULL;
        cb_secbuf *val = NULL;
        uint32_t version;
        uint64_t fence;
        cb_inject inj;
        cb_dest dest;
        cb_preq_head head;
        proxy_spec sp = { .url = NULL };
        hdr_list *hl = NULL;
        struct curl_slist *out = NULL;
        char *upstream = NULL, *extra = NULL, *query = NULL;
        size_t tok_i = 0;
        int r, ret;

        tok[0] = '\0';
        hl = calloc(1, sizeof(*hl));
        if (!hl || !rq->raw_target) {
                free(hl);
                return reply_error(rq, 503, "unavailable", "out of memory");
        }
        /* The head, framing first: all of it the broker's decision
         * (proxy_request.c), refused before anything else is looked at;
         * the connection is closed after such a refusal (its framing may be
         * the very thing in doubt). */
        MHD_get_connection_values_n(rq->conn, MHD_HEADER_KIND, collect, hl);
        if (rq->target_nul) {
                rq->close = true;
                ret = reply_error(rq, 400, "bad_request", "the request target holds a NUL byte");
                goto out;
        }
        if (cb_preq_decide(rq->method, rq->raw_target, strlen(rq->raw_target), hl->h, hl->n, &head) < 0) {
                rq->close = true;
                ret = reply_error(rq, head.status, head.status == 431 ? "headers_too_large" :
                                  head.status == 405 ? "method_not_allowed" : "bad_request", "%s", head.why);
                goto out;
        }
        if (head.frame == CB_FRAME_CHUNKED && rq->http10) {
                /* RFC 9112 §6.1: faulty framing from an HTTP/1.0 client. */
                rq->close = true;
                ret = reply_error(rq, 400, "bad_request", "Transfer-Encoding in an HTTP/1.0 request: refused");
                goto out;
        }
        if (head.path_len)
                memcpy(path, rq->raw_target + head.path_off, head.path_len);
        else
                path[0] = '/';
        path[head.path_len ? head.path_len : 1] = '\0';
        /* The token before anything that depends on the secret's name:
         * without a valid one the answer is the same whatever the name. */
        if (!find_token(hl, tok, &tok_i)) {
                ret = head.forward ? reply_error(rq, 407, "unauthorized", "a token is required: Proxy-Authorization: "
                                                                        "Bearer cbt_...")
                                   : reply_error(rq, 401, "unauthorized", "a token is required: Authorization: Bearer "
                                                                          "cbt_... (or Proxy-Authorization)");
                goto out;
        }
        /* Checked now, counted only once the request passes every check
         * (a refused request does not use up the token). */
        fence = cb_tokens_fence(proxy_cur.tokens); /* before the check: proxy_start re-checks against it */
        r = cb_tokens_check(proxy_cur.tokens, tok, strlen(tok), &rq->peer, CB_USE_PROXY, &info);
        if (rq->tcp && (r < 0 || !info->any_exe)) {
                /* No executable to compare over TCP: only a token that does
                 * not need one (said so rather than "another executable"). */
                const cb_token_info *peek = r == 0 ? info : NULL;
                if ((peek || cb_tokens_peek(proxy_cur.tokens, tok, strlen(tok), &peek) == 0) && !peek->any_exe) {
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
        /* In the forward form the token names the secret. */
        snprintf(secret, sizeof(secret), "%s", head.forward ? info->secret : head.secret);
        snprintf(rq->secret, sizeof(rq->secret), "%s", secret);
        /* A path naming a canary alerts; then the token must be for the
         * secret named, and only that secret is said to be compromised
         * (names cannot be probed with a token for another). */
        (void)leak_canary_note(rq, secret);
        if (strcmp(info->secret, secret) != 0) {
                ret = reply_error(rq, 403, "forbidden", "the token is for another secret, not '%s'", secret);
                goto out;
        }
        if (leak_token_gate(rq, secret, &ret))
                goto out;
        /* The store's read side for the decrypt and the metadata's copy
         * only (readers never wait for a writer's I/O). */
        cb_store_read_lock(proxy_cur.store);
        r = cb_store_get(proxy_cur.store, secret, 0, false, &val, &version, &meta);
        if (r == 0 && cb_meta_copy(meta, &meta_own) < 0)
                r = -ENOMEM;
        cb_store_read_unlock(proxy_cur.store);
        meta = meta_own;
        if (r < 0) {
                ret = reply_error(rq, 403, "forbidden", "no usable secret '%s' for this token", secret);
                goto out;
        }
        if (cb_inject_parse(meta->inject, &inj) < 0) {
                ret = reply_error(rq, 500, "internal", "secret '%s': %s", secret, cb_error_last());
                goto out;
        }
        if (!token_placed(hl, tok_i, &inj, tok)) {
                ret = reply_error(rq, 401, "unauthorized",
                                  "a token is required: Authorization: Bearer cbt_... (or Proxy-Authorization, or the "
                                  "template's header)");
                goto out;
        }
        if (head.forward) {
                /* Absolute form: http://host[:port]/path (upgraded to HTTPS
                 * unless the sealed entry says http://); Host must agree. */
                const char *host_hdr = hdr_get(hl, "Host");
                cb_dest hd;
                if (cb_dest_parse_authority(head.authority, true, &dest) < 0) {
                        ret = reply_error(rq, 400, "bad_request", "%s", cb_error_last());
                        goto out;
                }
                if (!host_hdr || cb_dest_parse_authority(host_hdr, true, &hd) < 0 || strcmp(hd.host, dest.host) != 0 ||
                    hd.port != dest.port) {
                        ret = reply_error(rq, 400, "bad_request", "the Host header does not match the target %s",
                                          head.authority);
                        goto out;
                }
        }
        /* The grant must still exist: for the presenter, or for a uid-bound
         * token, for the client it was issued to -- a client that still
         * selects the presenter's uid (moved to another uid by a reload,
         * the old uid's tokens stop here). */
        bool still = info->any_exe ? cb_policy_client_may_select(rq->policy, info->client, rq->peer.uid) &&
                                             cb_policy_client_grant(rq->policy, info->client, secret, CB_USE_PROXY)
                                   : cb_policy_find_grant(rq->policy, &rq->peer, secret, CB_USE_PROXY, NULL) != NULL;
        if (!still) {
                ret = reply_error(rq, 403, "forbidden", "the grant for '%s' (proxy) no longer exists", secret);
                goto out;
        }
        if (meta->not_after && meta->not_after <= (uint64_t)time(NULL)) {
                ret = reply_error(rq, 403, "forbidden", "secret '%s' expired (not_after)", secret);
                goto out;
        }
        /* Destination: one of the sealed hosts. */
        {
                const char *pick = head.forward ? head.authority : hdr_get(hl, "X-Credbroker-Host");
                cb_dest want, d;
                bool found = false, explicit_port = pick && strrchr(pick, ':') && !strchr(strrchr(pick, ':'), ']');
                if (pick && cb_dest_parse_authority(pick, true, &want) < 0) {
                        ret = reply_error(rq, 400, "bad_request", "%s: %s", head.forward ? "target" : "X-Credbroker-Host",
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
                /* A body that may carry a method override must be one the
                 * broker can read as it streams (proxy_conn.c). */
                if (head.frame != CB_FRAME_NONE && head.body_coded) {
                        ret = reply_error(rq, 400, "bad_request", "methods are sealed for '%s': a request body with a "
                                          "Content-Encoding cannot be checked for a method override", secret);
                        goto out;
                }
                if (head.frame != CB_FRAME_NONE && head.body == CB_BODY_MULTIPART_BAD) {
                        ret = reply_error(rq, 400, "bad_request", "methods are sealed for '%s': a multipart body needs "
                                          "one plain boundary parameter", secret);
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
        /* Headers: the client's, minus framing, hop-by-hop, credentials,
         * overrides and routing; a token in any that would go on refuses
         * the request (a token never travels upstream). */
        {
                const char *conn_hdr = hdr_get(hl, "Connection");
                for (size_t i = 0; i < hl->n; i++) {
                        const cb_preq_header *x = &hl->h[i];
                        if (cb_preq_header_class(x->name, x->name_len, inj.kind == CB_INJECT_HEADER ? inj.name : NULL,
                                                 conn_hdr) != CB_HDR_FORWARD)
                                continue;
                        if (cb_preq_holds_token(x->value, x->value_len)) {
                                ret = reply_error(rq, 400, "bad_request", "header '%.*s' carries a credbroker token: "
                                                  "tokens never travel upstream (send it only in Authorization, "
                                                  "Proxy-Authorization or the template's header)",
                                                  (int)(x->name_len > 64 ? 64 : x->name_len), x->name);
                                goto out;
                        }
                        if (!add_header(&out, x->name, x->name_len, x->value, x->value_len)) {
                                ret = MHD_NO;
                                goto out;
                        }
                }
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
                struct curl_slist *l = extra ? curl_slist_append(out, extra) : NULL;
                if (!l) {
                        ret = MHD_NO;
                        goto out;
                }
                out = l;
        }
        {
                struct curl_slist *l = curl_slist_append(out, "Accept-Encoding: identity");
                l = l ? curl_slist_append(l, "Expect:") : NULL;
                if (l && !hdr_get(hl, "Content-Type"))
                        l = curl_slist_append(l, "Content-Type:");
                if (!l) {
                        ret = MHD_NO;
                        goto out;
                }
                out = l;
        }
        if (cb_preq_holds_token(path, strlen(path))) {
                ret = reply_error(rq, 400, "bad_request", "the path carries a credbroker token: tokens never travel "
                                  "upstream");
                goto out;
        }
        /* The query: the client's bytes as sent, minus the injected
         * parameter and (methods sealed) method overrides, however spelt. */
        if (head.has_query) {
                if (cb_preq_query_filter(rq->raw_target + head.query_off, head.query_len,
                                         inj.kind == CB_INJECT_QUERY ? inj.name : NULL, meta->methods.n > 0, &query) < 0) {
                        ret = MHD_NO;
                        goto out;
                }
                if (cb_preq_holds_token(query, strlen(query))) {
                        ret = reply_error(rq, 400, "bad_request", "the query carries a credbroker token: tokens never "
                                          "travel upstream");
                        goto out;
                }
        }
        /* A sandbox's request: the outbound leak guard, on what goes
         * upstream from the tool (the injected credential is added after). */
        if (rq->sandbox_ref && sandbox_leak_gate(rq, hl, &inj, hdr_get(hl, "Connection"), path, query, &ret))
                goto out;
        if (rq->sandbox_ref && head.frame != CB_FRAME_NONE) {
                /* ... and on its body, held whole and scanned (proxy_conn.c). */
                if (head.body_coded) {
                        ret = reply_error(rq, 415, "unsupported_media_type", "a sandbox's request body with a "
                                          "Content-Encoding cannot be checked for secrets: refused");
                        goto out;
                }
                if (head.frame == CB_FRAME_LENGTH && head.length > PROXY_HELD_MAX) {
                        ret = reply_error(rq, 413, "too_large", "a sandbox's proxied request body over %d bytes is not "
                                          "forwarded (the outbound leak guard holds and scans it first)",
                                          PROXY_HELD_MAX);
                        goto out;
                }
                if (!(sp.leak = scanner_matcher_ref())) {
                        ret = reply_error(rq, 503, "unavailable", "the outbound leak guard cannot run (%s): refused "
                                          "rather than unchecked", cb_error_last());
                        goto out;
                }
        }
        {
                char *pv = inj.kind == CB_INJECT_QUERY ? pct(v, vl) : NULL;
                size_t ql = query ? strlen(query) : 0;
                size_t n = strlen(dest.host) + strlen(path) + ql + (pv ? strlen(inj.name) + strlen(pv) : 0) + 40;
                if (inj.kind == CB_INJECT_QUERY && !pv) {
                        ret = MHD_NO;
                        goto out;
                }
                upstream = malloc(n);
                if (upstream) {
                        bool v6 = strchr(dest.host, ':') != NULL;
                        snprintf(upstream, n, "%s://%s%s%s:%u%s%s%s%s%s%s%s", dest.https ? "https" : "http",
                                 v6 ? "[" : "", dest.host, v6 ? "]" : "", dest.port, path, ql || pv ? "?" : "",
                                 query ? query : "", ql && pv ? "&" : "", pv ? inj.name : "", pv ? "=" : "",
                                 pv ? pv : "");
                }
                if (pv) {
                        sodium_memzero(pv, strlen(pv));
                        free(pv);
                }
                if (!upstream) {
                        ret = MHD_NO;
                        goto out;
                }
        }
        /* What the response is checked for: every form of the value
         * (keys/match.h), and "user:value" whole for basic auth. */
        {
                /* Built once per value and shared (red_cache.h). */
                r = red_cache_get(inj.kind == CB_INJECT_BASIC ? inj.name : NULL, v, vl, &sp.red);
                if (r == -EMSGSIZE) {
                        ret = reply_error(rq, 500, "internal", "secret '%s' is shorter than %d bytes: a response "
                                          "cannot be checked for it, refused", secret, CB_MATCH_MIN_VALUE);
                        goto out;
                }
                if (r < 0) {
                        ret = reply_error(rq, 503, "unavailable", "out of memory");
                        goto out;
                }
        }
        /* Decided: count the use, record it before anything leaves (fail
         * closed). */
        if (cb_tokens_count_checked(proxy_cur.tokens, info) < 0) {
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
        sp.headers = out, out = NULL;
        sp.dest = dest;
        sp.ca_file = meta->ca_file;
        sp.pin = meta->pin;
        snprintf(sp.method, sizeof(sp.method), "%s", rq->method);
        /* The upstream framing is the broker's: a length only when MHD
         * framed the body by one valid Content-Length, else chunked. */
        sp.frame = head.frame;
        sp.content_length = head.frame == CB_FRAME_LENGTH ? (long long)head.length : -1;
        sp.expect_body = head.frame != CB_FRAME_NONE;
        sp.scan_body = meta->methods.n > 0 && sp.expect_body ? head.body : CB_BODY_OTHER;
        memcpy(sp.boundary, head.boundary, sizeof(sp.boundary));
        snprintf(sp.path, sizeof(sp.path), "%s", path);
        sp.fence = fence;
        sp.token = tok;
        ret = proxy_start(rq, &sp);
out:
        sodium_memzero(tok, sizeof(tok));
        cb_secbuf_free(val);
        cb_meta_free(meta_own);
        cb_matcher_free(sp.red);
        cb_matcher_free(sp.leak);
        if (extra) {
                sodium_memzero(extra, strlen(extra));
                free(extra);
        }
        if (upstream) {
                sodium_memzero(upstream, strlen(upstream));
                free(upstream);
        }
        free(query);
        free(hl);
        proxy_slist_wipe_free(out);
        return ret;
}
