/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libcredbroker's tool API: tokens (with the approval wait), redeem (the
 * value copied into sodium_malloc memory at once), health.  The transport
 * and its memory hygiene are in lib.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "credbroker.h"
#include "lib_internal.h"

/* ---- tool API ---- */

CB_EXPORT void cb_client_on_pending(cb_client *c, cb_client_pending_fn fn, void *userdata) {
        if (!c)
                return;
        c->on_pending = fn;
        c->pending_ud = userdata;
}

static uint64_t mono_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec;
}

/* A 202 answer {"status":"pending","approval_id","retry_after","expires_in"}:
 * the ID (hex, copied to id) and the poll interval; 0 or -EPROTO. */
static int pending_answer(cb_client *c, const struct body *b, char id[CB_APPROVAL_ID_MAX + 1], unsigned *ret_retry,
                          unsigned *ret_expires) {
        json_t *o = cb_lib_parse_object(c, b), *jr, *je;
        const char *s;
        int r = -EPROTO;

        if (!o)
                return -EPROTO;
        s = json_string_value(json_object_get(o, "approval_id"));
        jr = json_object_get(o, "retry_after");
        je = json_object_get(o, "expires_in");
        if (!s || !*s || strlen(s) > CB_APPROVAL_ID_MAX || strspn(s, "0123456789abcdef") != strlen(s) ||
            !json_is_integer(jr) || !json_is_integer(je)) {
                cb_lib_set_error(c, -EPROTO, "malformed approval answer from the broker");
                goto out;
        }
        strcpy(id, s);
        json_int_t retry = json_integer_value(jr), exp = json_integer_value(je);
        *ret_retry = retry < 1 ? 1 : retry > CB_APPROVAL_POLL_MAX ? CB_APPROVAL_POLL_MAX : (unsigned)retry;
        *ret_expires = exp < 0 ? 0 : exp > CB_APPROVAL_WAIT_MAX ? CB_APPROVAL_WAIT_MAX : (unsigned)exp;
        r = 0;
out:
        json_decref(o);
        return r;
}

/* The token request was held for approval (*b: the 202 answer): poll
 * until the broker answers otherwise.  On success *b holds that answer
 * (the token); else the mapped error. */
static int wait_approval(cb_client *c, struct body *b) {
        char id[CB_APPROVAL_ID_MAX + 1], path[sizeof("/v1/approvals/") + CB_APPROVAL_ID_MAX];
        unsigned retry, expires;
        uint64_t deadline;
        long status;
        int r;

        r = pending_answer(c, b, id, &retry, &expires);
        cb_lib_body_free(b);
        if (r < 0)
                return r;
        if (c->on_pending && c->on_pending(id, expires, c->pending_ud) != 0)
                return cb_lib_set_error(c, CB_ERR_PENDING, "token request held for approval as %s; not waiting for it", id);
        snprintf(path, sizeof(path), "/v1/approvals/%s", id);
        deadline = mono_s() + expires + 30;
        for (;;) {
                struct timespec ts = { .tv_sec = retry };
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
                status = 0;
                r = cb_lib_http(c, "GET", path, NULL, 0, b, &status);
                if (r < 0)
                        return r;
                if (status != 202)
                        return 0;
                r = pending_answer(c, b, id, &retry, &expires);
                cb_lib_body_free(b);
                if (r < 0)
                        return r;
                if (mono_s() > deadline)
                        return cb_lib_set_error(c, -ETIMEDOUT, "token request %s: still pending after the broker's "
                                                        "approval timeout", id);
        }
}

CB_EXPORT int cb_client_token(cb_client *c, const char *secret, const char *use, unsigned ttl, char **ret_token,
                              char **ret_accessor, unsigned *ret_expires_in) {
        return cb_client_token_bind(c, secret, use, ttl, NULL, ret_token, ret_accessor, ret_expires_in);
}

CB_EXPORT int cb_client_token_bind(cb_client *c, const char *secret, const char *use, unsigned ttl, const char *bind,
                                   char **ret_token, char **ret_accessor, unsigned *ret_expires_in) {
        char req[512];
        struct body b = {};
        json_t *q = NULL, *o = NULL;
        const char *tok, *acc;
        json_int_t exp;
        char *t = NULL, *a = NULL;
        size_t n;
        int r;

        if (!c || !ret_token)
                return -EINVAL;
        c->error[0] = 0;
        if (!secret || !*secret || strlen(secret) > CB_SECRET_NAME_MAX)
                return cb_lib_set_error(c, -EINVAL, "a secret name is 1..%d characters", CB_SECRET_NAME_MAX);
        if (use && strcmp(use, "proxy") != 0 && strcmp(use, "redeem") != 0)
                return cb_lib_set_error(c, -EINVAL, "use must be \"proxy\" or \"redeem\"");
        if (bind && strcmp(bind, "exe") != 0 && strcmp(bind, "process") != 0 && strcmp(bind, "uid") != 0 &&
            strcmp(bind, "session") != 0)
                return cb_lib_set_error(c, -EINVAL, "bind must be \"exe\", \"process\", \"uid\" or \"session\"");
        q = json_pack("{s:s}", "secret", secret);
        if (q && bind)
                json_object_set_new(q, "bind", json_string(bind));
        if (q && use)
                json_object_set_new(q, "use", json_string(use));
        if (q && ttl)
                json_object_set_new(q, "ttl", json_integer((json_int_t)ttl));
        n = q ? json_dumpb(q, req, sizeof(req), JSON_COMPACT) : 0;
        json_decref(q);
        if (n == 0 || n >= sizeof(req))
                return cb_lib_set_error(c, -EINVAL, "cannot encode the request (secret name not UTF-8?)");
        long status = 0;
        r = cb_lib_http(c, "POST", "/v1/token", req, n, &b, &status);
        if (r < 0)
                return r;
        if (status == 202 && (r = wait_approval(c, &b)) < 0)
                return r;
        o = cb_lib_parse_object(c, &b);
        if (!o) {
                r = -EPROTO;
                goto out;
        }
        tok = json_string_value(json_object_get(o, "token"));
        acc = json_string_value(json_object_get(o, "accessor"));
        exp = json_integer_value(json_object_get(o, "expires_in"));
        if (!tok || !*tok || strlen(tok) > CB_TOKEN_MAX || !acc || !json_is_integer(json_object_get(o, "expires_in")) ||
            exp < 0 || exp > (json_int_t)UINT32_MAX) {
                r = cb_lib_set_error(c, -EPROTO, "malformed token answer from the broker");
                goto out;
        }
        t = strdup(tok);
        a = ret_accessor ? strdup(acc) : NULL;
        if (!t || (ret_accessor && !a)) {
                cb_token_free(t);
                free(a);
                r = cb_lib_set_error(c, -ENOMEM, "out of memory");
                goto out;
        }
        *ret_token = t;
        if (ret_accessor)
                *ret_accessor = a;
        if (ret_expires_in)
                *ret_expires_in = (unsigned)exp;
        r = 0;
out:
        json_decref(o); /* the token's copies are wiped by our allocator */
        cb_lib_body_free(&b);
        return r;
}

/* A token is printable ASCII; refusing '"' and '\\' lets us write the
 * request without a JSON library copy of it. */
static bool token_ok(const char *t) {
        size_t n = strlen(t);

        if (n == 0 || n > CB_TOKEN_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (t[i] <= 0x20 || t[i] >= 0x7f || t[i] == '"' || t[i] == '\\')
                        return false;
        return true;
}

static int decode_value(cb_client *c, json_t *o, cb_secret *s) {
        json_t *jv = json_object_get(o, "value"), *jb = json_object_get(o, "value_base64");

        if (!!jv == !!jb || (jv && !json_is_string(jv)) || (jb && !json_is_string(jb)))
                return cb_lib_set_error(c, -EPROTO, "malformed redeem answer from the broker");
        if (jv) {
                s->len = json_string_length(jv);
                s->value = sodium_malloc(s->len + 1);
                if (!s->value)
                        return cb_lib_set_error(c, -ENOMEM, "out of memory");
                memcpy(s->value, json_string_value(jv), s->len);
                s->value[s->len] = 0;
                return 0;
        }
        size_t b64len = json_string_length(jb), cap = b64len / 4 * 3 + 3;
        s->value = sodium_malloc(cap + 1);
        if (!s->value)
                return cb_lib_set_error(c, -ENOMEM, "out of memory");
        if (sodium_base642bin(s->value, cap, json_string_value(jb), b64len, NULL, &s->len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0)
                return cb_lib_set_error(c, -EPROTO, "malformed value_base64 in the broker's answer");
        s->value[s->len] = 0;
        return 0;
}

CB_EXPORT int cb_client_redeem(cb_client *c, const char *token, cb_secret **ret) {
        char req[CB_TOKEN_MAX + 32];
        struct body b = {};
        json_t *o = NULL, *jver;
        cb_secret *s = NULL;
        const char *name;
        int n, r;

        if (!c || !ret)
                return -EINVAL;
        c->error[0] = 0;
        if (!token || !token_ok(token))
                return cb_lib_set_error(c, CB_ERR_TOKEN, "not a token");
        n = snprintf(req, sizeof(req), "{\"token\":\"%s\"}", token);
        r = cb_lib_http(c, "POST", "/v1/redeem", req, (size_t)n, &b, NULL);
        sodium_memzero(req, sizeof(req));
        if (r < 0)
                return r;
        o = cb_lib_parse_object(c, &b);
        cb_lib_body_free(&b); /* the tree has its own (wiped-on-free) copy */
        if (!o)
                return -EPROTO;
        name = json_string_value(json_object_get(o, "secret"));
        jver = json_object_get(o, "version");
        if (!name || !json_is_integer(jver) || json_integer_value(jver) < 0 ||
            json_integer_value(jver) > (json_int_t)UINT32_MAX) {
                r = cb_lib_set_error(c, -EPROTO, "malformed redeem answer from the broker");
                goto out;
        }
        s = calloc(1, sizeof(*s));
        if (!s || !(s->name = strdup(name))) {
                r = cb_lib_set_error(c, -ENOMEM, "out of memory");
                goto out;
        }
        s->version = (uint32_t)json_integer_value(jver);
        r = decode_value(c, o, s);
        if (r < 0)
                goto out;
        *ret = s;
        s = NULL;
        r = 0;
out:
        json_decref(o);
        cb_secret_free(s);
        return r;
}

CB_EXPORT const unsigned char *cb_secret_value(const cb_secret *s) {
        return s ? s->value : NULL;
}

CB_EXPORT size_t cb_secret_len(const cb_secret *s) {
        return s ? s->len : 0;
}

CB_EXPORT const char *cb_secret_name(const cb_secret *s) {
        return s ? s->name : NULL;
}

CB_EXPORT uint32_t cb_secret_version(const cb_secret *s) {
        return s ? s->version : 0;
}

CB_EXPORT void cb_secret_free(cb_secret *s) {
        if (!s)
                return;
        sodium_free(s->value); /* wipes */
        free(s->name);
        free(s);
}

CB_EXPORT void cb_token_free(char *token) {
        if (!token)
                return;
        sodium_memzero(token, strlen(token));
        free(token);
}

CB_EXPORT int cb_client_health(cb_client *c) {
        struct body b = {};
        json_t *o;
        const char *st;
        int r;

        if (!c)
                return -EINVAL;
        r = cb_lib_http(c, "GET", "/v1/health", NULL, 0, &b, NULL);
        if (r < 0)
                return r;
        o = cb_lib_parse_object(c, &b);
        cb_lib_body_free(&b);
        if (!o)
                return -EPROTO;
        st = json_string_value(json_object_get(o, "status"));
        r = st && strcmp(st, "ok") == 0 ? 0 : cb_lib_set_error(c, -EPROTO, "the broker says it is not ok");
        json_decref(o);
        return r;
}
