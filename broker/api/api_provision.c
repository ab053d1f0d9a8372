/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sealed-provisioning admin routes (admin.sock): GET /v1/admin/pubkey
 * and /v1/admin/pubkeys, POST /v1/admin/pubkey/rotate and /retire, POST
 * /v1/admin/import (one blob or a batch, optionally a dry run).  The work
 * is in keys/provision*.c; --provision-dir is provision/provision.c.
 * Every handler runs under the admin lock and rotate_lock() (the store's
 * writers' mutex: api_routes.c STORE_WORK); the routes are in api_routes.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api_internal.h"
#include "daemon.h"
#include "error.h"
#include "provision.h"
#include "scan.h"

static const char *key_state(enum cb_version_state s) {
        return s == CB_VS_CURRENT ? "current" : s == CB_VS_DESTROYED ? "retired" : "accepted";
}

static json_t *key_json(const cb_prov_key_info *k) {
        char id[CB_PROV_KEY_ID_HEX], pk[CB_PROV_PK_TEXT_LEN];
        json_t *o = json_pack("{s:I, s:s, s:I}", "version", (json_int_t)k->version, "state", key_state(k->state),
                              "created", (json_int_t)k->created);

        if (o && k->known) {
                cb_prov_key_id_hex(k->key_id, id);
                cb_prov_pk_format(k->pk, pk);
                json_object_set_new(o, "key_id", json_string(id));
                json_object_set_new(o, "public_key", json_string(pk));
        }
        return o;
}

int api_pubkey(request *rq, const http_args *args) {
        cb_prov_key_info k;
        int r;

        (void)args;
        r = cb_prov_keys_current(cbd.store, &k);
        if (r == -ENOENT) /* a store made before provisioning existed, written to since start */
                r = cb_prov_keys_ensure(cbd.store, NULL) < 0 ? -EIO : cb_prov_keys_current(cbd.store, &k);
        if (r < 0)
                return reply_error(rq, 500, "internal", "%s", cb_error_last());
        return reply_json(rq, 200, key_json(&k), false);
}

int api_pubkeys(request *rq, const http_args *args) {
        cb_prov_key_info *keys;
        json_t *arr;
        size_t n;

        (void)args;
        if (cb_prov_keys_list(cbd.store, &keys, &n) < 0)
                return reply_error(rq, 500, "internal", "%s", cb_error_last());
        arr = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, key_json(&keys[i]));
        free(keys);
        return reply_json(rq, 200, json_pack("{s:o}", "keys", arr), false);
}

int api_pubkey_rotate(request *rq, const http_args *args) {
        cb_prov_key_info k;

        (void)args;
        if (rq->body_len)
                return reply_error(rq, 400, "bad_request", "rotate takes no body");
        if (cb_prov_keys_rotate(cbd.store, &k) < 0)
                return reply_error(rq, 500, "internal", "%s", cb_error_last());
        return reply_json(rq, 201, key_json(&k), false);
}

int api_pubkey_retire(request *rq, const http_args *args) {
        static const char *const fields[] = { "key_id", NULL };
        unsigned char id[CB_PROV_KEY_ID_LEN];
        const char *hex;
        json_t *o;
        int r, ret;

        (void)args;
        o = body_object(rq, fields);
        if (!o)
                return MHD_YES;
        hex = json_string_value(json_object_get(o, "key_id"));
        if (cb_prov_key_id_parse(hex, id) < 0) {
                ret = reply_error(rq, 400, "bad_request", "'key_id': %s", cb_error_last());
                goto out;
        }
        r = cb_prov_keys_retire(cbd.store, id);
        if (r < 0)
                ret = reply_error(rq, r == -ENOENT ? 404 : r == -EBUSY ? 409 : 500,
                                  r == -ENOENT ? "not_found" : r == -EBUSY ? "conflict" : "internal", "%s",
                                  cb_error_last());
        else
                ret = reply_json(rq, 200, json_pack("{s:s}", "retired", hex), false);
out:
        json_decref(o);
        return ret;
}

static unsigned refusal_status(enum cb_prov_refusal why) {
        switch (why) {
        case CB_PROV_REPLAY: return 409;
        case CB_PROV_STORE: return 500;
        default: return 400;
        }
}

#define BATCH_MAX 64

static bool batch_item_ok(json_t *e) {
        json_t *x = json_object_get(e, "expect_name");

        return json_is_object(e) && json_is_string(json_object_get(e, "blob")) &&
               (!x || (json_is_string(x) && cb_name_check(json_string_value(x)) == 0)) &&
               json_object_size(e) == (x ? 2u : 1u);
}

/* POST /v1/admin/import {"blobs": [{"blob", "expect_name"?}...], "dry_run"?}:
 * all or nothing.  Every blob is checked (dry run, and no two for one name)
 * before any is stored, all under the one hold of the store's writers'
 * mutex of this request,
 * so neither a refusal nor a concurrent admin can leave a half import; only
 * a store failure part way can (the reply says how many were stored). */
static int route_import_batch(request *rq, json_t *o) {
        json_t *arr = json_object_get(o, "blobs"), *dr = json_object_get(o, "dry_run"), *a = NULL;
        uint64_t now = (uint64_t)time(NULL);
        cb_prov_result *res = NULL;
        size_t n = json_array_size(arr), i = 0;
        bool dry = dr && json_is_true(dr);
        int r, ret;

        if (!json_is_array(arr) || n == 0 || n > BATCH_MAX || json_object_get(o, "blob") ||
            json_object_get(o, "expect_name") || (dr && !json_is_boolean(dr)))
                return reply_error(rq, 400, "bad_request",
                                   "want {\"blobs\": [{\"blob\": \"cbseal1...\", \"expect_name\": NAME (optional)}, "
                                   "... (1 to %d)], \"dry_run\": BOOL (optional)}", BATCH_MAX);
        for (i = 0; i < n; i++)
                if (!batch_item_ok(json_array_get(arr, i)))
                        return reply_error(rq, 400, "bad_request", "blobs[%zu]: want {\"blob\": \"cbseal1...\", "
                                           "\"expect_name\": NAME (optional)}", i);
        res = calloc(n, sizeof(*res));
        if (!res)
                return reply_error(rq, 500, "internal", "out of memory");
        for (i = 0; i < n; i++) {
                json_t *e = json_array_get(arr, i), *b = json_object_get(e, "blob");
                const char *x = json_string_value(json_object_get(e, "expect_name"));

                r = cb_prov_import(cbd.store, json_string_value(b), json_string_length(b), x, now, true, &res[i]);
                if (i == 0 && res[i].name[0])
                        snprintf(rq->secret, sizeof(rq->secret), "%s", res[i].name);
                if (r < 0) {
                        ret = reply_error(rq, refusal_status(res[i].refusal), cb_prov_refusal_code(res[i].refusal),
                                          "blob %zu of %zu: %s: nothing imported", i + 1, n, cb_error_last());
                        goto out;
                }
                for (size_t j = 0; j < i; j++)
                        if (strcmp(res[i].name, res[j].name) == 0) {
                                ret = reply_error(rq, 400, "bad_request",
                                                  "two blobs for %s in one batch (blobs %zu and %zu): nothing "
                                                  "imported; import them one at a time, oldest first",
                                                  res[i].name, j + 1, i + 1);
                                goto out;
                        }
        }
        a = json_array();
        for (i = 0; a && i < n; i++) {
                json_t *e = json_array_get(arr, i), *b = json_object_get(e, "blob");
                const char *x = json_string_value(json_object_get(e, "expect_name"));

                if (!dry) {
                        r = cb_prov_import(cbd.store, json_string_value(b), json_string_length(b), x, now, false,
                                           &res[i]);
                        if (r < 0) {
                                if (i)
                                        scanner_rebuild();
                                ret = reply_error(rq, 500, "internal", "blob %zu of %zu: %s (%zu imported before it)",
                                                  i + 1, n, cb_error_last(), i);
                                goto out;
                        }
                }
                json_t *it = json_pack("{s:s, s:s, s:I}", "name", res[i].name, "key_id", res[i].key_id, "created",
                                       (json_int_t)res[i].created);
                if (it && !dry)
                        json_object_set_new(it, "version", json_integer(res[i].version));
                json_array_append_new(a, it);
        }
        if (!dry)
                scanner_rebuild();
        ret = reply_json(rq, dry ? 200 : 201, json_pack("{s:o, s:b}", "imported", a, "dry_run", dry), false);
        a = NULL;
out:
        json_decref(a);
        free(res);
        return ret;
}

/* POST /v1/admin/import {"blob", "expect_name"?, "dry_run"?}: one blob per
 * request (a blob is at most ~107 KiB, under CB_BODY_MAX); or a batch (see
 * route_import_batch). */
int api_import(request *rq, const http_args *args) {
        static const char *const fields[] = { "blob", "expect_name", "dry_run", "blobs", NULL };
        cb_prov_result res;
        const char *blob, *expect = NULL;
        json_t *o, *e, *dr;
        bool dry = false;
        int r, ret;

        (void)args;
        o = body_object(rq, fields);
        if (!o)
                return MHD_YES;
        if (json_object_get(o, "blobs")) {
                ret = route_import_batch(rq, o);
                goto out;
        }
        blob = json_string_value(json_object_get(o, "blob"));
        e = json_object_get(o, "expect_name");
        dr = json_object_get(o, "dry_run");
        if (!blob || (e && (!json_is_string(e) || cb_name_check(json_string_value(e)) < 0)) ||
            (dr && !json_is_boolean(dr))) {
                ret = reply_error(rq, 400, "bad_request",
                                  "want {\"blob\": \"cbseal1...\", \"expect_name\": NAME (optional), "
                                  "\"dry_run\": BOOL (optional)}");
                goto out;
        }
        expect = e ? json_string_value(e) : NULL;
        dry = dr && json_is_true(dr);
        r = cb_prov_import(cbd.store, blob, json_string_length(json_object_get(o, "blob")), expect,
                           (uint64_t)time(NULL), dry, &res);
        if (res.name[0])
                snprintf(rq->secret, sizeof(rq->secret), "%s", res.name);
        if (r < 0) {
                ret = reply_error(rq, refusal_status(res.refusal), cb_prov_refusal_code(res.refusal), "%s",
                                  cb_error_last());
                goto out;
        }
        if (!dry)
                scanner_rebuild(); /* a new live value for the leak scanner */
        json_t *a = json_pack("{s:s, s:s, s:I, s:b}", "name", res.name, "key_id", res.key_id, "created",
                              (json_int_t)res.created, "dry_run", dry);
        if (a && !dry)
                json_object_set_new(a, "version", json_integer(res.version));
        ret = reply_json(rq, dry ? 200 : 201, a, false);
out:
        json_decref(o);
        return ret;
}
