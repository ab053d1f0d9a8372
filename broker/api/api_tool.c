/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tools.sock routes: token, redeem, introspect, revoke (the table with the
 * rest: api_routes.c).  Any local process may connect; the peer identity
 * and the policy decide.  A value leaves the
 * broker only through /v1/redeem, only under a "redeem" grant that still
 * exists at redemption time, only to the identity the token was issued to.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>
#include <sodium.h>

#include "api_internal.h"
#include "daemon.h"
#include "error.h"
#include "rotate.h"
#include "scan.h"

static unsigned use_bit(const char *s) {
        if (!s)
                return 0;
        if (strcmp(s, "proxy") == 0)
                return CB_USE_PROXY;
        if (strcmp(s, "redeem") == 0)
                return CB_USE_REDEEM;
        return 0;
}

/* Map a cb_tokens_use/peek error to a reply. */
static int token_refused(request *rq, int r) {
        snprintf(rq->accessor, sizeof(rq->accessor), "%s", cb_tokens_refused_accessor()); /* hashed when audited */
        switch (r) {
        case -ETIME:
                return reply_error(rq, 401, "expired", "%s", cb_error_last());
        case -EDQUOT:
                return reply_error(rq, 401, "used_up", "%s", cb_error_last());
        default:
                return reply_error(rq, 401, "unauthorized", "%s", cb_error_last());
        }
}

bool api_secret_live(const char *name) {
        const cb_version_info *vi;
        size_t nv = 0, live = 0;

        /* The store's read side: never waits for a writer's fsync. */
        cb_store_read_lock(cbd.store);
        if (cb_store_versions(cbd.store, name, &vi, &nv) == 0)
                for (size_t i = 0; i < nv; i++)
                        live += vi[i].state != CB_VS_DESTROYED;
        cb_store_read_unlock(cbd.store);
        return live > 0;
}

int api_token(request *rq, const http_args *args) {
        static const char *const fields[] = { "secret", "use", "ttl", "bind_process", "bind", NULL };
        char tok[CB_TOKEN_LEN + 1];
        const cb_token_info *info;
        const cb_grant *g;
        const char *client = NULL, *secret, *use_s;
        json_t *o, *ttl_j, *bind_j;
        uint32_t ttl;
        unsigned use;
        int r, ret;

        (void)args;
        o = body_object(rq, fields);
        if (!o)
                return MHD_YES;
        secret = json_string_value(json_object_get(o, "secret"));
        use_s = json_string_value(json_object_get(o, "use"));
        ttl_j = json_object_get(o, "ttl");
        bind_j = json_object_get(o, "bind_process");
        json_t *bind_s = json_object_get(o, "bind");
        /* No "use": proxy, the use that never reveals the value (the CLI's
         * default too); a value is handed out only to who asks "redeem". */
        use = use_s ? use_bit(use_s) : CB_USE_PROXY;
        if (!secret || cb_name_check(secret) < 0) {
                ret = reply_error(rq, 400, "bad_request", "'secret' must be a valid secret name");
                goto out;
        }
        snprintf(rq->secret, sizeof(rq->secret), "%s", secret);
        /* A canary alerts, and is then refused like any name the caller
         * holds no grant for; whether a secret is compromised is said only
         * to a caller with a grant for it (names cannot be probed). */
        (void)leak_canary_note(rq, secret);
        if (!use || (json_object_get(o, "use") && !use_s)) {
                ret = reply_error(rq, 400, "bad_request", "'use' must be \"proxy\" or \"redeem\"");
                goto out;
        }
        if (ttl_j && (!json_is_integer(ttl_j) || json_integer_value(ttl_j) < 1 ||
                      json_integer_value(ttl_j) > CB_TTL_MAX)) {
                ret = reply_error(rq, 400, "bad_request", "'ttl' must be an integer from 1 to %d", CB_TTL_MAX);
                goto out;
        }
        if (bind_j && !json_is_boolean(bind_j)) {
                ret = reply_error(rq, 400, "bad_request", "'bind_process' must be a boolean");
                goto out;
        }
        /* "bind": what the token is bound to beyond the uid.  "exe" (the
         * default): the issuing executable; "process": the issuing process;
         * "uid": the uid alone, for proxy tokens only — so a tool can hand
         * one to the SDK it runs (the value never leaves the broker that way,
         * and the destinations are sealed). */
        cb_token_bind bind = bind_j && json_is_true(bind_j) ? CB_BIND_PROCESS : CB_BIND_EXE;
        if (bind_s) {
                const char *b = json_string_value(bind_s);
                if (!b || (strcmp(b, "exe") && strcmp(b, "process") && strcmp(b, "uid") && strcmp(b, "session")) ||
                    (bind_j && strcmp(b, "process") != 0 && json_is_true(bind_j))) {
                        ret = reply_error(rq, 400, "bad_request",
                                          "'bind' must be \"exe\", \"process\", \"uid\" or \"session\"");
                        goto out;
                }
                bind = !strcmp(b, "uid")       ? CB_BIND_UID
                       : !strcmp(b, "session") ? CB_BIND_SESSION
                       : !strcmp(b, "process") ? CB_BIND_PROCESS
                                               : CB_BIND_EXE;
        }
        if ((bind == CB_BIND_UID || bind == CB_BIND_SESSION) && use != CB_USE_PROXY) {
                ret = reply_error(rq, 400, "bad_request", "\"bind\": \"uid\" and \"session\" are for proxy tokens only: a token that "
                                  "can redeem a value stays bound to its executable");
                goto out;
        }
        g = cb_policy_find_grant(rq->policy, &rq->peer, secret, use, &client);
        if (!g) {
                ret = reply_error(rq, 403, "forbidden", "no grant lets uid %u (%s) use '%s' for %s",
                                  (unsigned)rq->peer.uid, rq->peer.exe_path, secret, use_s ? use_s : "proxy");
                goto out;
        }
        snprintf(rq->client, sizeof(rq->client), "%s", client);
        /* Unlocked: a leak response may mark the secret and revoke its
         * tokens between the gate and the mint.  The fence makes the mint
         * fail if any revocation ran since, and the gate is asked again
         * (leak responses mark before they revoke: red team rt6 F1). */
        uint64_t fence = cb_tokens_fence(cbd.tokens);
        if (leak_token_gate(rq, secret, &ret))
                goto out;
        /* A deleted name (its destroyed versions still listed) is unknown:
         * api_delete deletes, then revokes, so a token minted after a
         * check that still saw it live fails the fence (rt6 P1). */
        if (!api_secret_live(secret)) {
                ret = reply_error(rq, 404, "not_found", "no secret named '%s'", secret);
                goto out;
        }
        uint32_t retry;
        /* One budget per uid: a client selecting several uids (by gid,
         * exe or cgroup) must not let one of them spend the others'.
         * Taken for names that exist only: a "*" grant asking for made-up
         * names must not fill the table (when it is full of open windows
         * ratelimit.c takes the requester's own oldest, never another's). */
        char rkey[64 + 12 + 1];
        snprintf(rkey, sizeof(rkey), "%s#%u", client, (unsigned)rq->peer.uid);
        if (!cb_ratelimit_take(cbd.rate, rkey, secret, g->rate_n, g->rate_window, (uint64_t)time(NULL), &retry)) {
                ret = reply_error(rq, 429, "rate_limited", "rate limit for '%s' (%u per %u s) reached; retry in %u s",
                                  secret, g->rate_n, g->rate_window, retry);
                goto out;
        }
        /* The cap: the grant's max_ttl; without one, --default-ttl — except
         * for a session token (exec --proxy), which dies with its process
         * anyway: it lives as long as that process, at most CB_TTL_MAX, so
         * an SDK that reads its key once is not cut off mid-session. */
        uint32_t cap = g->max_ttl_set ? g->max_ttl : bind == CB_BIND_SESSION ? CB_TTL_MAX : cbd.default_ttl;
        ttl = ttl_j ? (uint32_t)json_integer_value(ttl_j) : cbd.default_ttl;
        if (ttl > cap)
                ttl = cap; /* the reply says what was given */
        if (g->approval) { /* held until an operator decides (api_approval.c: the table's own mutex) */
                ret = approval_hold(rq, client, use, ttl, (int)bind);
                goto out;
        }
        for (int tries = 0;; tries++) {
                r = cb_tokens_issue_fenced(cbd.tokens, fence, &rq->peer, client, secret, 0, use, ttl, g->max_uses, bind,
                                           tok, &info);
                if (r != -ESTALE)
                        break;
                if (tries == 3) {
                        ret = reply_error(rq, 503, "unavailable", "tokens kept being revoked while this one was "
                                          "issued: retry");
                        goto out;
                }
                fence = cb_tokens_fence(cbd.tokens);
                if (leak_token_gate(rq, secret, &ret))
                        goto out;
                if (!api_secret_live(secret)) { /* deleted meanwhile */
                        ret = reply_error(rq, 404, "not_found", "no secret named '%s'", secret);
                        goto out;
                }
        }
        if (r < 0) {
                ret = reply_error(rq, r == -ENOSPC ? 429 : 500, r == -ENOSPC ? "rate_limited" : "internal", "%s",
                                  cb_error_last());
                goto out;
        }
        snprintf(rq->accessor, sizeof(rq->accessor), "%s", info->accessor);
        rq->token_issued = true; /* revoked again if its record is not written (server_reply.c flush) */
        /* Made here rather than through jansson (json_pack + json_dumps
         * cost ~2 us of this route's ~10): the token and the accessor are
         * a fixed prefix and base62 (nothing JSON escapes), the rest a
         * number; the same bytes jansson's JSON_COMPACT wrote. */
        {
                static const char fmt[] = "{\"token\":\"%s\",\"accessor\":\"%s\",\"expires_in\":%lld}";
                size_t text_cap = sizeof(fmt) + CB_TOKEN_LEN + CB_ACCESSOR_LEN + 24;
                char *text = malloc(text_cap);
                int n = text ? snprintf(text, text_cap, fmt, tok, info->accessor,
                                        (long long)(info->expires - info->issued))
                             : -1;
                sodium_memzero(tok, sizeof(tok));
                if (n < 0 || (size_t)n >= text_cap) {
                        if (text) {
                                sodium_memzero(text, text_cap);
                                free(text);
                        }
                        (void)cb_tokens_revoke_accessor(cbd.tokens, rq->accessor); /* never handed out */
                        rq->token_issued = false;
                        ret = MHD_NO; /* out of memory: the connection is closed */
                        goto out;
                }
                ret = reply_json_text(rq, 201, text, (size_t)n, true);
        }
out:
        json_decref(o);
        return ret;
}

/* A token from the body: {"token": "...", <fields>} (fields NULL: only the token). */
static int body_token(request *rq, const char *const *fields, json_t **ret_o, const char **ret_tok) {
        static const char *const token_only[] = { "token", NULL };
        json_t *o = body_object(rq, fields ? fields : token_only);
        const char *tok;

        if (!o)
                return -1;
        tok = json_string_value(json_object_get(o, "token"));
        if (!tok) {
                reply_error(rq, 400, "bad_request", "'token' (a string) is required");
                json_decref(o);
                return -1;
        }
        *ret_o = o;
        *ret_tok = tok;
        return 0;
}

static bool valid_text(const unsigned char *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i] == 0)
                        return false;
        json_t *s = json_stringn((const char *)p, n); /* jansson validates UTF-8 */
        bool ok = s != NULL;
        json_decref(s);
        return ok;
}

int api_redeem(request *rq, const http_args *args) {
        const cb_token_info *info;
        const cb_meta *meta;
        cb_secbuf *val = NULL;
        const char *tok;
        uint32_t version;
        json_t *o, *resp;
        int r, ret;

        /* "version": a version other than the current one, while it is served
         * (previous, within its rotation's grace); see broker/rotate/rotate.h. */
        static const char *const fields[] = { "token", "version", NULL };
        json_t *vj;

        (void)args;
        if (body_token(rq, fields, &o, &tok) < 0)
                return MHD_YES;
        vj = json_object_get(o, "version");
        if (vj && (!json_is_integer(vj) || json_integer_value(vj) < 1 || json_integer_value(vj) > UINT32_MAX)) {
                ret = reply_error(rq, 400, "bad_request", "'version' must be a positive integer");
                goto out;
        }
        /* Redeem runs under no daemon-wide lock (api_routes.c), so a leak
         * response (or a leaked rotation, or an admin revocation) can run
         * between this check and the answer.  Checked now, counted at the
         * decision point (below), where a revocation meanwhile is seen. */
        r = cb_tokens_check(cbd.tokens, tok, strlen(tok), &rq->peer, CB_USE_REDEEM, &info);
        if (r < 0) {
                ret = token_refused(rq, r);
                goto out;
        }
        snprintf(rq->accessor, sizeof(rq->accessor), "%s", info->accessor);
        snprintf(rq->secret, sizeof(rq->secret), "%s", info->secret);
        snprintf(rq->client, sizeof(rq->client), "%s", info->client);
        /* The grant must still exist: a policy reload can take it away. */
        if (!cb_policy_find_grant(rq->policy, &rq->peer, info->secret, CB_USE_REDEEM, NULL)) {
                ret = reply_error(rq, 403, "forbidden", "the grant for '%s' (redeem) no longer exists", info->secret);
                goto out;
        }
        /* A previous version past its grace is refused even if the sweep has not disabled it (yet). */
        if (vj && rotate_version_check(info->secret, (uint32_t)json_integer_value(vj), (uint64_t)time(NULL)) < 0) {
                ret = reply_error(rq, 403, "forbidden", "%s", cb_error_last());
                goto out;
        }
        /* The store's read side: a decrypt of this call's own, never
         * waiting for a writer's fsync (keys/store.h). */
        uint64_t not_after = 0;
        cb_store_read_lock(cbd.store);
        r = cb_store_get(cbd.store, info->secret, vj ? (uint32_t)json_integer_value(vj) : 0, false, &val, &version,
                         &meta);
        if (r == 0)
                not_after = meta->not_after;
        cb_store_read_unlock(cbd.store);
        if (r < 0) {
                bool gone = r == -EPERM || r == -EKEYREVOKED; /* pending, disabled, destroyed: not served */
                ret = reply_error(rq, r == -ENOENT ? 404 : gone ? 403 : 500,
                                  r == -ENOENT ? "not_found" : gone ? "forbidden" : "internal", "%s",
                                  cb_error_last());
                goto out;
        }
        if (not_after && not_after <= (uint64_t)time(NULL)) {
                ret = reply_error(rq, 403, "forbidden", "secret '%s' expired (not_after)", info->secret);
                goto out;
        }
        /* The decision point: the use is counted here, under the token
         * table's lock, and the count fails if the token was revoked since
         * the check (cb_tokens_count_checked finds the entry again by number
         * and hash).  A leak response marks the secret, then revokes its
         * tokens, then cuts; a leaked rotation and an admin revocation
         * revoke too.  So a revocation that completed before this point is
         * seen here and the value is not answered; one that comes after
         * it raced an answer already decided -- as under the old control
         * lock, where it would have run after this redeem.  (The store's
         * own leak mark also refuses a leaked version from its commit on.)
         * A refused redeem (grant gone, not_after, ...) uses nothing up.
         * tests/adversarial/state-redeem-race.sh races a leak response
         * against redeems. */
        r = cb_tokens_count_checked(cbd.tokens, info);
        if (r < 0) {
                ret = reply_error(rq, 401, r == -EDQUOT ? "used_up" : "unauthorized", "%s%s", cb_error_last(),
                                  r == -ENOENT ? " (revoked while it was redeemed)" : "");
                goto out;
        }
        if (valid_text(cb_secbuf_data(val), cb_secbuf_len(val))) {
                resp = json_pack("{s:s, s:I, s:s%}", "secret", info->secret, "version", (json_int_t)version, "value",
                                 (const char *)cb_secbuf_data(val), cb_secbuf_len(val));
        } else {
                size_t b64len = sodium_base64_ENCODED_LEN(cb_secbuf_len(val), sodium_base64_VARIANT_ORIGINAL);
                cb_secbuf *b64 = cb_secbuf_new(b64len);
                if (!b64) {
                        ret = MHD_NO;
                        goto out;
                }
                sodium_bin2base64((char *)cb_secbuf_data(b64), b64len, cb_secbuf_data(val), cb_secbuf_len(val),
                                  sodium_base64_VARIANT_ORIGINAL);
                resp = json_pack("{s:s, s:I, s:s}", "secret", info->secret, "version", (json_int_t)version,
                                 "value_base64", (const char *)cb_secbuf_data(b64));
                cb_secbuf_free(b64);
        }
        ret = reply_json(rq, 200, resp, true);
out:
        cb_secbuf_free(val);
        json_decref(o);
        return ret;
}

int api_introspect(request *rq, const http_args *args) {
        const cb_token_info *info;
        const char *tok;
        json_t *o, *uses;
        int r, ret;

        (void)args;
        if (body_token(rq, NULL, &o, &tok) < 0)
                return MHD_YES;
        r = cb_tokens_peek(cbd.tokens, tok, strlen(tok), &info);
        if (r < 0) {
                ret = token_refused(rq, r);
                goto out;
        }
        /* Only its holder may look: same uid and executable. */
        if (info->uid != rq->peer.uid ||
            (!info->any_exe && sodium_memcmp(info->exe_sha256, rq->peer.exe_sha256, 32) != 0)) {
                snprintf(rq->accessor, sizeof(rq->accessor), "%s", info->accessor); /* hashed when audited */
                ret = reply_error(rq, 401, "unauthorized", "the token belongs to another caller");
                goto out;
        }
        snprintf(rq->accessor, sizeof(rq->accessor), "%s", info->accessor);
        uses = json_array();
        if (info->uses & CB_USE_PROXY)
                json_array_append_new(uses, json_string("proxy"));
        if (info->uses & CB_USE_REDEEM)
                json_array_append_new(uses, json_string("redeem"));
        ret = reply_json(rq, 200,
                         json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:b}", "accessor", info->accessor, "secret",
                                   info->secret, "use", uses, "expires_in",
                                   (json_int_t)(info->expires - (uint64_t)time(NULL)), "used", (json_int_t)info->used,
                                   "max_uses", (json_int_t)info->max_uses, "bound_process", info->bound_process),
                         false);
out:
        json_decref(o);
        return ret;
}

/* POST /v1/revoke {"token"}: the token's holder ends it early (credbroker
 * exec --proxy, when its command exits).  Same holder rule as introspect. */
int api_revoke_own(request *rq, const http_args *args) {
        const cb_token_info *info;
        const char *tok;
        json_t *o;
        int r, ret;

        (void)args;
        if (body_token(rq, NULL, &o, &tok) < 0)
                return MHD_YES;
        r = cb_tokens_peek(cbd.tokens, tok, strlen(tok), &info);
        if (r < 0) {
                ret = token_refused(rq, r);
                goto out;
        }
        snprintf(rq->accessor, sizeof(rq->accessor), "%s", info->accessor); /* hashed when audited */
        if (info->uid != rq->peer.uid ||
            (!info->any_exe && sodium_memcmp(info->exe_sha256, rq->peer.exe_sha256, 32) != 0)) {
                ret = reply_error(rq, 401, "unauthorized", "the token belongs to another caller");
                goto out;
        }
        snprintf(rq->secret, sizeof(rq->secret), "%s", info->secret);
        ret = reply_json(rq, 200,
                         json_pack("{s:I}", "revoked", (json_int_t)cb_tokens_revoke_accessor(cbd.tokens, rq->accessor)),
                         false);
out:
        json_decref(o);
        return ret;
}
