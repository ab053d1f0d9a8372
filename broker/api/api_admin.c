/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin.sock routes: put, list, show, delete, revoke, status, metrics,
 * policy reload, the audit id hash, and the gate every admin.sock request
 * passes first (api_admin_gate; the table: api_routes.c).  The socket's
 * mode keeps others out; the policy's "admins" decides among those who can
 * connect.  No route here returns a value.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>
#include <sodium.h>

#include "sandbox.h"
#include "metrics.h"
#include "audit.h"
#include "api_internal.h"
#include "daemon.h"
#include "provision_dir.h"
#include "error.h"
#include "scan.h"
#include "rotate.h"

/* Copy a JSON array of strings into v. */
static int strv_from_json(request *rq, json_t *arr, const char *field, cb_strv *v, size_t max) {
        size_t i;
        json_t *e;

        if (!arr)
                return 0;
        if (!json_is_array(arr)) {
                reply_error(rq, 400, "bad_request", "'%s' must be an array of strings", field);
                return -1;
        }
        json_array_foreach(arr, i, e) {
                if (!json_is_string(e) || cb_strv_push(v, json_string_value(e), max) < 0) {
                        reply_error(rq, 400, "bad_request", "'%s': strings only, at most %zu", field, max);
                        return -1;
                }
        }
        return 0;
}

/* Copy an optional JSON string into *ret (left NULL when absent).  The body
 * parser already refuses \u0000; the length check keeps a NUL from ever
 * cutting a restriction short here.  Returns 0, or -1 after replying. */
static int string_from_json(request *rq, json_t *o, const char *field, char **ret) {
        json_t *s = json_object_get(o, field);
        const char *v;

        if (!s)
                return 0;
        v = json_string_value(s);
        if (!v || strlen(v) != json_string_length(s)) {
                reply_error(rq, 400, "bad_request", "'%s' must be a string", field);
                return -1;
        }
        *ret = strdup(v);
        if (!*ret) {
                reply_error(rq, 500, "internal", "out of memory");
                return -1;
        }
        return 0;
}

static json_t *strv_to_json(const cb_strv *v) {
        json_t *a = json_array();

        for (size_t i = 0; i < v->n; i++)
                json_array_append_new(a, json_string(v->v[i]));
        return a;
}

static json_t *meta_to_json(const cb_meta *m) {
        json_t *o = json_object();

        if (!m)
                return o;
        if (m->inject)
                json_object_set_new(o, "inject", json_string(m->inject));
        json_object_set_new(o, "hosts", strv_to_json(&m->hosts));
        json_object_set_new(o, "methods", strv_to_json(&m->methods));
        json_object_set_new(o, "path_prefixes", strv_to_json(&m->path_prefixes));
        json_object_set_new(o, "labels", strv_to_json(&m->labels));
        if (m->not_after)
                json_object_set_new(o, "not_after", json_integer((json_int_t)m->not_after));
        if (m->ca_file)
                json_object_set_new(o, "ca_file", json_string(m->ca_file));
        if (m->pin)
                json_object_set_new(o, "pin", json_string(m->pin));
        return o;
}

int api_named_body(request *rq, const char *const *fields, json_t **ret_o, const char **ret_name) {
        json_t *o = body_object(rq, fields);
        const char *name;

        if (!o)
                return -1; /* answered */
        name = json_string_value(json_object_get(o, "name"));
        if (!name || cb_name_check(name) < 0) {
                reply_error(rq, 400, "bad_request", "%s", name ? cb_error_last() : "'name' is required");
                json_decref(o);
                return -1;
        }
        snprintf(rq->secret, sizeof(rq->secret), "%s", name);
        *ret_o = o;
        *ret_name = name;
        return 0;
}

int api_put(request *rq, const http_args *args) {
        static const char *const fields[] = { "name",   "value",         "value_base64", "hosts",   "inject",
                                              "methods", "path_prefixes", "not_after",    "labels",  "ca_file",
                                              "pin",     NULL };
        cb_meta m = { 0 };
        cb_secbuf *val = NULL;
        const char *name, *text, *b64;
        json_t *o, *na;
        uint32_t version;
        int r, ret = MHD_YES;

        (void)args;
        if (api_named_body(rq, fields, &o, &name) < 0)
                return MHD_YES;
        text = json_string_value(json_object_get(o, "value"));
        b64 = json_string_value(json_object_get(o, "value_base64"));
        if (!!text == !!b64) {
                ret = reply_error(rq, 400, "bad_request", "exactly one of 'value' and 'value_base64' is required");
                goto out;
        }
        if (text) {
                val = cb_secbuf_dup(text, json_string_length(json_object_get(o, "value")));
        } else {
                size_t n = 0, blen = strlen(b64);
                val = cb_secbuf_new(blen);
                if (val && sodium_base642bin(cb_secbuf_data(val), blen, b64, blen, NULL, &n, NULL,
                                             sodium_base64_VARIANT_ORIGINAL) != 0) {
                        ret = reply_error(rq, 400, "bad_request", "'value_base64' is not valid base64");
                        goto out;
                }
                if (val)
                        cb_secbuf_truncate(val, n);
        }
        if (!val) {
                ret = MHD_NO;
                goto out;
        }
        if (string_from_json(rq, o, "inject", &m.inject) < 0 || string_from_json(rq, o, "ca_file", &m.ca_file) < 0 ||
            string_from_json(rq, o, "pin", &m.pin) < 0)
                goto out;
        na = json_object_get(o, "not_after");
        if (na && (!json_is_integer(na) || json_integer_value(na) < 1)) {
                ret = reply_error(rq, 400, "bad_request", "'not_after' must be a positive unix time");
                goto out;
        }
        m.not_after = na ? (uint64_t)json_integer_value(na) : 0;
        if (strv_from_json(rq, json_object_get(o, "hosts"), "hosts", &m.hosts, CB_META_MAX_HOSTS) < 0 ||
            strv_from_json(rq, json_object_get(o, "methods"), "methods", &m.methods, CB_META_MAX_METHODS) < 0 ||
            strv_from_json(rq, json_object_get(o, "path_prefixes"), "path_prefixes", &m.path_prefixes,
                           CB_META_MAX_PREFIXES) < 0 ||
            strv_from_json(rq, json_object_get(o, "labels"), "labels", &m.labels, CB_META_MAX_LABELS) < 0)
                goto out;
        r = cb_store_put(cbd.store, name, cb_secbuf_data(val), cb_secbuf_len(val), &m, CB_VS_CURRENT, &version);
        if (r < 0) {
                bool client_err = r == -EINVAL || r == -E2BIG;
                ret = reply_error(rq, client_err ? 400 : 500, client_err ? "bad_request" : "internal", "%s",
                                  cb_error_last());
                goto out;
        }
        scanner_rebuild();
        ret = reply_json(rq, 201, json_pack("{s:s, s:I}", "name", name, "version", (json_int_t)version), false);
out:
        cb_meta_clear(&m);
        cb_secbuf_free(val);
        json_decref(o);
        return ret;
}

int api_list(request *rq, const http_args *args) {
        const char **names;
        size_t n;
        json_t *arr;

        (void)args;
        if (cb_store_names(cbd.store, &names, &n) < 0)
                return reply_error(rq, 500, "internal", "out of memory");
        arr = json_array();
        for (size_t i = 0; i < n; i++) {
                const cb_version_info *vi;
                size_t nv;
                json_t *e;

                if (cb_store_versions(cbd.store, names[i], &vi, &nv) < 0)
                        continue;
                e = json_pack("{s:s, s:I}", "name", names[i], "versions", (json_int_t)nv);
                if (scanner_is_compromised(names[i]))
                        json_object_set_new(e, "compromised", json_true());
                for (size_t k = 0; k < nv; k++)
                        if (vi[k].state == CB_VS_CURRENT) {
                                json_object_set_new(e, "current", json_integer(vi[k].version));
                                json_t *mj = meta_to_json(vi[k].meta);
                                json_object_update(e, mj);
                                json_decref(mj);
                        }
                json_array_append_new(arr, e);
        }
        free(names);
        return reply_json(rq, 200, json_pack("{s:o}", "secrets", arr), false);
}

int api_show(request *rq, const http_args *args) {
        const char *name = args->rest;
        const cb_version_info *vi;
        size_t nv;
        json_t *arr;

        if (cb_name_check(name) < 0)
                return reply_error(rq, 400, "bad_request", "%s", cb_error_last());
        snprintf(rq->secret, sizeof(rq->secret), "%s", name);
        if (cb_store_versions(cbd.store, name, &vi, &nv) < 0)
                return reply_error(rq, 404, "not_found", "no secret named '%s'", name);
        arr = json_array();
        for (size_t k = 0; k < nv; k++) {
                json_t *e = json_pack("{s:I, s:s, s:I, s:I}", "version", (json_int_t)vi[k].version, "state",
                                      cb_version_state_name(vi[k].state), "created", (json_int_t)vi[k].created,
                                      "changed", (json_int_t)vi[k].changed);
                json_t *mj = meta_to_json(vi[k].meta);
                json_object_update(e, mj);
                json_decref(mj);
                json_array_append_new(arr, e);
        }
        return reply_json(rq, 200, json_pack("{s:s, s:o}", "name", name, "versions", arr), false);
}

/* POST /v1/admin/revoke {"accessor"|"secret"|"client"}.  With "secret",
 * also "compromised": true marks its current version leaked in the store
 * first (the CLI's rotate --leaked --hook, before its hook runs), and
 * "rotation_failed": "why" says that hook failed: the mark stays and the
 * rotation_failed alert is raised. */
int api_revoke(request *rq, const http_args *args) {
        static const char *const fields[] = { "accessor", "secret", "client", "compromised", "rotation_failed", NULL };
        const char *acc, *sec, *cli, *failed;
        json_t *o, *comp, *fj;
        size_t n;
        int ret;
        bool unpersisted = false;

        (void)args;
        o = body_object(rq, fields);
        if (!o)
                return MHD_YES;
        acc = json_string_value(json_object_get(o, "accessor"));
        sec = json_string_value(json_object_get(o, "secret"));
        cli = json_string_value(json_object_get(o, "client"));
        comp = json_object_get(o, "compromised");
        fj = json_object_get(o, "rotation_failed");
        failed = json_string_value(fj);
        if (json_object_size(o) != 1 + (size_t)(comp != NULL) + (size_t)(fj != NULL) || (!acc && !sec && !cli)) {
                ret = reply_error(rq, 400, "bad_request", "give exactly one of 'accessor', 'secret', 'client'");
                goto out;
        }
        if ((comp && (!sec || !json_is_boolean(comp))) || (fj && (!sec || !failed))) {
                ret = reply_error(rq, 400, "bad_request", "'compromised' (a boolean) and 'rotation_failed' (a string) "
                                  "go with 'secret'");
                goto out;
        }
        /* An unknown accessor or client is an error, not "0 revoked": an
         * operator who mistyped must not believe a token is dead. */
        if (acc) {
                snprintf(rq->accessor, sizeof(rq->accessor), "%s", acc);
                n = cb_tokens_revoke_accessor(cbd.tokens, acc);
                if (!n) {
                        ret = reply_error(rq, 404, "not_found", "no live token has accessor '%.64s'", acc);
                        goto out;
                }
        } else if (cli && !cb_policy_has_client(rq->policy, cli)) {
                snprintf(rq->client, sizeof(rq->client), "%s", cli);
                ret = reply_error(rq, 404, "not_found", "the policy names no client '%.64s'", cli);
                goto out;
        } else if (sec) {
                snprintf(rq->secret, sizeof(rq->secret), "%s", sec);
                if ((json_is_true(comp) || failed) && cb_name_check(sec) == 0) {
                        /* before the tokens: nothing new is minted */
                        unpersisted = scanner_mark_compromised(sec, 0) < 0;
                        if (failed)
                                rotate_leaked_failed(sec, 0, "cli", failed);
                }
                n = cb_tokens_revoke_secret(cbd.tokens, sec);
                (void)proxy_cancel_secret(sec, "its tokens were revoked"); /* streams in flight too */
        } else {
                snprintf(rq->client, sizeof(rq->client), "%s", cli);
                n = cb_tokens_revoke_client(cbd.tokens, cli);
        }
        if (unpersisted) {
                /* Contained now, but not durably: the operator must know
                 * (a restart before the store takes it forgets the mark). */
                ret = reply_error(rq, 507, "mark_not_persisted",
                                  "'%.64s': %zu tokens revoked and marked compromised IN MEMORY ONLY: the store could "
                                  "not record the mark (%s); it is retried, but lost if the daemon stops first: "
                                  "free space and run this again", sec, n, cb_error_last());
                goto out;
        }
        ret = reply_json(rq, 200, json_pack("{s:I, s:b}", "revoked", (json_int_t)n, "compromised",
                                            sec && scanner_is_compromised(sec)), false);
out:
        json_decref(o);
        return ret;
}

int api_reload(request *rq, const http_args *args) {
        char err[512];

        (void)args;
        /* The file is read and parsed with the admin lock dropped (as
         * audit_intent drops it to wait): nothing of this request's state
         * is shared, and the swap needs no lock a request takes. */
        pthread_mutex_unlock(&cbd.admin_lock);
        int r = policy_reload(err, sizeof(err));
        pthread_mutex_lock(&cbd.admin_lock);
        if (r < 0)
                return reply_error(rq, 400, "bad_request", "policy not reloaded, the old one stays: %s", err);
        /* The figures of the policy just put in force (this request itself
         * was decided under the one before). */
        const cb_policy *now = cb_policy_acquire(cbd.policy);
        json_t *o = json_pack("{s:I, s:I}", "clients", (json_int_t)cb_policy_n_clients(now), "grants",
                              (json_int_t)cb_policy_n_grants(now));
        cb_policy_unref(now);
        return reply_json(rq, 200, o, false);
}

int api_status(request *rq, const http_args *args) {
        (void)args;
        json_t *st = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I}}", "version", CB_VERSION_STRING,
                                    "connections_refused",
                                    (json_int_t)server_conn_refused(NULL), "uptime",
                                    (json_int_t)((uint64_t)time(NULL) - cbd.started), "tokens",
                                    (json_int_t)cb_tokens_count(cbd.tokens), "secrets",
                                    (json_int_t)cb_store_count(cbd.store), "generation",
                                    (json_int_t)cb_store_generation(cbd.store), "policy", "clients",
                                    (json_int_t)cb_policy_n_clients(rq->policy), "grants",
                                    (json_int_t)cb_policy_n_grants(rq->policy));
        if (st) {
                json_object_set_new(st, "scanner", scanner_status_json());
                json_object_set_new(st, "leaked_values", json_integer((json_int_t)cb_store_leaked_count(cbd.store)));
                json_object_set_new(st, "stranded_imports_recovered",
                                    json_integer((json_int_t)provision_stranded_recovered()));
                json_object_set_new(st, "sandboxes", cb_sandbox_list_json());
        }
        return reply_json(rq, 200, st, false);
}

/* DELETE /v1/admin/secrets/NAME: revoke its tokens, cut its proxied
 * requests in flight, destroy every version (cb_store_delete). */
int api_delete(request *rq, const http_args *args) {
        const char *name = args->rest;
        size_t revoked;
        int r;

        if (cb_name_check(name) < 0)
                return reply_error(rq, 400, "bad_request", "invalid secret name");
        snprintf(rq->secret, sizeof(rq->secret), "%s", name);
        if (!api_secret_live(name)) /* unknown, or deleted already */
                return reply_error(rq, 404, "not_found", "no secret named '%s'", name);
        /* Deleted first, then its tokens revoked: a token issue runs
         * unlocked, and one that saw the name live before the delete mints
         * against a fence this revocation moves (it then finds the name
         * gone); revoking first let it mint in between (red team rt6 P1). */
        r = cb_store_delete(cbd.store, name);
        if (r == -ENOENT)
                return reply_error(rq, 404, "not_found", "no secret named '%s'", name);
        if (r < 0)
                return reply_error(rq, 500, "internal", "%s", cb_error_last());
        revoked = cb_tokens_revoke_secret(cbd.tokens, name);
        (void)proxy_cancel_secret(name, "the secret was deleted");
        scanner_rebuild();
        return reply_json(rq, 200, json_pack("{s:s, s:b, s:I}", "name", name, "deleted", 1, "revoked", (json_int_t)revoked),
                          false);
}

/* GET /metrics: Prometheus text format 0.0.4 (metrics.h). */
int api_metrics(request *rq, const http_args *args) {
        metrics_gauges g = {
                .tokens = cb_tokens_count(cbd.tokens),
                .secrets = cb_store_count(cbd.store),
                .approvals_pending = approval_pending(),
                .connections_refused = server_conn_refused(NULL),
                .uptime_s = (uint64_t)time(NULL) - cbd.started,
                .store_generation = cb_store_generation(cbd.store),
        };
        size_t len = 0;
        char *text;

        (void)args;
        /* Not audited: counters reveal no value and decide nothing, a
         * scraper every few seconds would fill the log with reads, and they
         * must stay readable while the audit log cannot be written -- when
         * credbroker_audit_write_failures_total is the number that matters. */
        rq->no_audit = true;
        text = metrics_render(&g, &len);
        if (!text)
                return reply_error(rq, 503, "unavailable", "out of memory");
        return reply_text(rq, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* POST /v1/admin/audit/idhash {"id", "logs":[LOG ID...]}: the keyed hash
 * of id in each segment, so an operator's tool can find a token's records
 * by its accessor although the log holds only keyed hashes.  Admins only,
 * who could read the records anyway; nothing else is revealed. */
int api_audit_idhash(request *rq, const http_args *args) {
        static const char *const fields[] = { "id", "logs", NULL };
        json_t *o, *logs, *e, *out = NULL;
        const char *id;
        size_t i;
        int ret;

        (void)args;
        o = body_object(rq, fields);
        if (!o)
                return MHD_YES;
        id = json_string_value(json_object_get(o, "id"));
        logs = json_object_get(o, "logs");
        if (!id || !*id || strlen(id) > 64 || !json_is_array(logs) || json_array_size(logs) > 1024) {
                ret = reply_error(rq, 400, "bad_request", "want {\"id\": an accessor, \"logs\": up to 1024 log ids}");
                goto out;
        }
        out = json_object();
        json_array_foreach(logs, i, e) {
                char h[37];
                const char *lg = json_string_value(e);
                int r = lg ? audit_id_hash(lg, id, h) : -EINVAL;

                if (r == -ENOENT) {
                        ret = reply_error(rq, 409, "no_audit_log", "this broker runs without --audit-log");
                        goto out;
                }
                if (r < 0) {
                        ret = reply_error(rq, 400, "bad_request", "\"logs\"[%zu] is not a log id (32 hex digits)", i);
                        goto out;
                }
                json_object_set_new(out, lg, json_string(h));
        }
        ret = reply_json(rq, 200, json_pack("{s:o}", "hashes", out), false);
        out = NULL;
out:
        json_decref(out);
        json_decref(o);
        return ret;
}

/* POST /v1/admin/audit/verify {"files":[ABSOLUTE PATH...]} (oldest first):
 * the files are read with the admin lock dropped (a large log must not hold
 * up the other admin routes and the sweeps). */
int api_audit_verify(request *rq, const http_args *args) {
        static const char *const allowed[] = { "files", NULL };
        const char *files[CB_AUDIT_VERIFY_FILES_MAX];
        json_t *body, *a, *e, *verdict = NULL;
        size_t n, i;
        int r;

        (void)args;
        if (!audit_enabled())
                return reply_error(rq, 409, "no_audit_log", "this broker runs without --audit-log");
        body = body_object(rq, allowed);
        if (!body)
                return MHD_YES;
        a = json_object_get(body, "files");
        n = json_array_size(a);
        if (!json_is_array(a) || n < 1 || n > CB_AUDIT_VERIFY_FILES_MAX) {
                json_decref(body);
                return reply_error(rq, 400, "bad_request", "\"files\": 1 to %d absolute paths, oldest first",
                                   CB_AUDIT_VERIFY_FILES_MAX);
        }
        json_array_foreach(a, i, e) {
                files[i] = json_string_value(e);
                if (!files[i] || files[i][0] != '/' || json_string_length(e) >= PATH_MAX) {
                        json_decref(body);
                        return reply_error(rq, 400, "bad_request", "\"files\"[%zu] is not an absolute path", i);
                }
        }
        pthread_mutex_unlock(&cbd.admin_lock);
        r = audit_verify_live(files, n, &verdict);
        pthread_mutex_lock(&cbd.admin_lock);
        json_decref(body); /* files pointed into it */
        if (r < 0)
                return reply_error(rq, 400, "bad_request", "%s", cb_error_last());
        return reply_json(rq, 200, verdict, false);
}

/* admin.sock's gate (route.h): every request there is an admin's, and
 * every admin write is recorded, durably, before it takes effect: when
 * that record cannot be written nothing is done (503).  path: the route
 * that decided the path (NULL: none; a wrong method still writes nothing
 * but is recorded as an intent, as any non-GET is). */
bool api_admin_gate(request *rq, const http_route *path, int *ret) {
        if (!cb_policy_is_admin(rq->policy, rq->peer.uid, rq->peer.gid)) {
                rq->route = "admin";
                *ret = reply_error(rq, 403, "forbidden", "uid %u is not an admin in the policy",
                                   (unsigned)rq->peer.uid);
                return true;
        }
        if (strcmp(rq->method, "GET") != 0 && !(path && (path->flags & HTTP_ROUTE_READ_ONLY))) {
                if (audit_intent(rq, &cbd.admin_lock) < 0) { /* waits with the admin lock dropped */
                        *ret = reply_audit_refused(rq);
                        return true;
                }
                /* The policy may have been reloaded while the intent
                 * was written: the request goes on under the newest one. */
                cb_policy_unref(rq->policy);
                rq->policy = cb_policy_acquire(cbd.policy);
                if (!cb_policy_is_admin(rq->policy, rq->peer.uid, rq->peer.gid)) {
                        rq->route = "admin";
                        *ret = reply_error(rq, 403, "forbidden", "uid %u is not an admin in the policy",
                                           (unsigned)rq->peer.uid);
                        return true;
                }
        }
        return false;
}
