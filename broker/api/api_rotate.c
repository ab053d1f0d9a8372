/* SPDX-License-Identifier: Apache-2.0 */
/*
 * admin.sock routes for rotation and versions (see rotate.h):
 *
 *   POST /v1/admin/rotate                {"name", "value" | "value_base64" | "generate": true |
 *                                         "hook": true, "grace": SECONDS?, "leaked": bool?}
 *        ("hook": the broker's own rotation hook for NAME runs in the
 *        background: 202 {"name","started":true}; `versions` shows the end;
 *        "stage": true stops once the new version is pending, and
 *        {"name", "promote": V} makes it current, see rotate_run)
 *   GET  /v1/admin/versions/NAME         every version with its state, times and what it means
 *   POST /v1/admin/versions/NAME/VERSION {"action": "enable" | "disable" | "destroy"}
 *
 * No route here returns a value.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>
#include <sodium.h>

#include "api_internal.h"
#include "audit.h"
#include "daemon.h"
#include "error.h"
#include "rotate.h"
#include "rotation_label.h"

static int store_error(request *rq, int r) {
        switch (r) {
        case -ENOENT:
                return reply_error(rq, 404, "not_found", "%s", cb_error_last());
        case -EINVAL:
        case -E2BIG:
                return reply_error(rq, 400, "bad_request", "%s", cb_error_last());
        case -EEXIST: /* the new value equals an older version's */
                return reply_error(rq, 409, "conflict", "%s", cb_error_last());
        case -EPERM:
        case -EBUSY:
        case -EKEYREVOKED:
                return reply_error(rq, 403, "forbidden", "%s", cb_error_last());
        default:
                return reply_error(rq, 500, "internal", "%s", cb_error_last());
        }
}

int api_rotate_secret(request *rq, const http_args *args) {
        static const char *const fields[] = { "name",  "value",  "value_base64", "generate", "hook",
                                              "grace", "leaked", "stage",        "promote",  NULL };
        cb_secbuf *val = NULL;
        json_t *o, *gen, *hook, *stage, *promote, *grace_j, *leaked_j, *res = NULL;
        const char *name, *text, *b64;
        uint32_t grace = CB_ROTATE_GRACE_DEFAULT;
        bool leaked = false;
        int r, ret = MHD_YES;

        (void)args;
        if (api_named_body(rq, fields, &o, &name) < 0)
                return MHD_YES;
        text = json_string_value(json_object_get(o, "value"));
        b64 = json_string_value(json_object_get(o, "value_base64"));
        gen = json_object_get(o, "generate");
        if (gen && !json_is_boolean(gen)) {
                ret = reply_error(rq, 400, "bad_request", "'generate' must be a boolean");
                goto out;
        }
        hook = json_object_get(o, "hook");
        stage = json_object_get(o, "stage");
        promote = json_object_get(o, "promote");
        if ((hook && !json_is_boolean(hook)) || (stage && !json_is_boolean(stage))) {
                ret = reply_error(rq, 400, "bad_request", "'hook' and 'stage' are booleans");
                goto out;
        }
        if (promote) {
                /* The second half of a staged rotation: its grace is sealed in the staged version. */
                if (!json_is_integer(promote) || json_integer_value(promote) < 1 ||
                    json_integer_value(promote) > UINT32_MAX || json_object_size(o) != 2) {
                        ret = reply_error(rq, 400, "bad_request", "'promote' takes a version number and nothing "
                                          "but 'name' (the grace was fixed when it was staged)");
                        goto out;
                }
                r = rotate_run(ROTATE_PROMOTE, name, NULL, 0, 0, false, (uint32_t)json_integer_value(promote),
                               "admin", &res);
                ret = r < 0 ? store_error(rq, r) : reply_json(rq, 200, res, false);
                goto out;
        }
        if (json_is_true(stage) && json_is_true(hook)) {
                ret = reply_error(rq, 400, "bad_request", "a hook rotation cannot be staged");
                goto out;
        }
        if (!!text + !!b64 + json_is_true(gen) + json_is_true(hook) != 1) {
                ret = reply_error(rq, 400, "bad_request", "exactly one of 'value', 'value_base64', \"generate\": "
                                  "true and \"hook\": true is required");
                goto out;
        }
        leaked_j = json_object_get(o, "leaked");
        if (leaked_j && !json_is_boolean(leaked_j)) {
                ret = reply_error(rq, 400, "bad_request", "'leaked' must be a boolean");
                goto out;
        }
        leaked = json_is_true(leaked_j);
        grace_j = json_object_get(o, "grace");
        if (grace_j && (!json_is_integer(grace_j) || json_integer_value(grace_j) < 0 ||
                        json_integer_value(grace_j) > CB_ROTATE_GRACE_MAX)) {
                ret = reply_error(rq, 400, "bad_request", "'grace' must be an integer from 0 to %u (seconds)",
                                  CB_ROTATE_GRACE_MAX);
                goto out;
        }
        if (grace_j)
                grace = (uint32_t)json_integer_value(grace_j);
        if (leaked && grace_j && grace != 0) {
                ret = reply_error(rq, 400, "bad_request", "a leaked rotation has no grace: the old value is never "
                                  "served again");
                goto out;
        }
        if (text) {
                val = cb_secbuf_dup(text, json_string_length(json_object_get(o, "value")));
        } else if (b64) {
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
        if ((text || b64) && !val) {
                ret = MHD_NO;
                goto out;
        }
        if (val && (cb_secbuf_len(val) == 0 || cb_secbuf_len(val) > CB_VALUE_MAX)) {
                ret = reply_error(rq, 400, "bad_request", "the value must be 1 to %d bytes", CB_VALUE_MAX);
                goto out;
        }
        if (json_is_true(hook)) {
                const cb_version_info *vi;
                size_t nv;

                if (cb_store_versions(cbd.store, name, &vi, &nv) < 0) {
                        ret = reply_error(rq, 404, "not_found", "no secret named '%s'", name);
                        goto out;
                }
                r = rotate_hook_start(name, grace, leaked, "admin-hook");
                if (r < 0)
                        ret = r == -EALREADY ? reply_error(rq, 409, "conflict", "%s", cb_error_last())
                              : r == -EAGAIN ? reply_error(rq, 429, "rate_limited", "%s", cb_error_last())
                                             : store_error(rq, r);
                else
                        ret = reply_json(rq, 202, json_pack("{s:s, s:b}", "name", name, "started", 1), false);
                goto out;
        }
        r = rotate_run(json_is_true(stage) ? ROTATE_STAGE : ROTATE_FULL, name, val ? cb_secbuf_data(val) : NULL,
                       val ? cb_secbuf_len(val) : 0, grace, leaked, 0, "admin", &res);
        if (r < 0) {
                ret = store_error(rq, r);
                goto out;
        }
        ret = reply_json(rq, 200, res, false);
out:
        cb_secbuf_free(val);
        json_decref(o);
        return ret;
}

static const char *note_of(const cb_version_info *v, int64_t grace, bool leaked, uint64_t *ret_until) {
        *ret_until = 0;
        switch (v->state) {
        case CB_VS_CURRENT:
                return "current: new tokens, redeems and the proxy use this version";
        case CB_VS_PREVIOUS:
                if (grace < 0)
                        return "previous: served only to a redeem naming this version, until an operator disables "
                               "it (the current version came from a put, which sets no grace)";
                *ret_until = v->changed + (uint64_t)grace;
                return "previous: served only to a redeem naming this version until served_until, then disabled";
        case CB_VS_PENDING:
                return "pending: never served; left by an unfinished rotation (interrupted before it was made "
                       "current); the next rotate disables it, or 'version disable' does";
        case CB_VS_DISABLED:
                return leaked ? "disabled: never served (the current version came from a leaked rotation)"
                              : "disabled: never served; 'version enable' makes it previous again";
        case CB_VS_DESTROYED:
                return "destroyed: key material wiped";
        }
        return "?";
}

/* GET /v1/admin/versions/NAME: name is the last thing of the target (NUL-terminated). */
int api_versions(request *rq, const http_args *args) {
        const char *name = args->seg;
        const cb_version_info *vi;
        int64_t grace = -1;
        bool leaked = false;
        json_t *arr, *o;
        size_t nv, ncur = 0;
        uint32_t cur = 0;

        if (cb_name_check(name) < 0)
                return reply_error(rq, 400, "bad_request", "%s", cb_error_last());
        snprintf(rq->secret, sizeof(rq->secret), "%s", name);
        if (cb_store_versions(cbd.store, name, &vi, &nv) < 0)
                return reply_error(rq, 404, "not_found", "no secret named '%s'", name);
        for (size_t k = 0; k < nv; k++)
                if (vi[k].state == CB_VS_CURRENT) {
                        cur = vi[k].version;
                        ncur++;
                        grace = cb_rotation_grace(vi[k].meta, &leaked);
                }
        arr = json_array();
        for (size_t k = 0; k < nv; k++) {
                uint64_t until;
                const char *note = note_of(&vi[k], grace, leaked, &until);

                if (vi[k].state == CB_VS_DISABLED && rotate_leaked_by(vi, nv, vi[k].version))
                        note = "disabled: leaked (a later leaked rotation says so): never served again";
                if (vi[k].leaked && vi[k].state != CB_VS_DESTROYED && vi[k].state != CB_VS_DISABLED) {
                        note = vi[k].state == CB_VS_CURRENT ? "current but leaked (a sealed mark): compromised, no "
                                                              "token and never served until a new version is current"
                                                            : "leaked (a sealed mark): never served again, its value "
                                                              "never stored again";
                        until = 0;
                }
                json_t *labels = json_array();
                json_t *e = json_pack("{s:I, s:s, s:I, s:I, s:s}", "version", (json_int_t)vi[k].version, "state",
                                      cb_version_state_name(vi[k].state), "created", (json_int_t)vi[k].created,
                                      "changed", (json_int_t)vi[k].changed, "note", note);

                for (size_t i = 0; vi[k].meta && i < vi[k].meta->labels.n; i++)
                        json_array_append_new(labels, json_string(vi[k].meta->labels.v[i]));
                json_object_set_new(e, "labels", labels);
                if (vi[k].leaked)
                        json_object_set_new(e, "leaked", json_true());
                if (until)
                        json_object_set_new(e, "served_until", json_integer((json_int_t)until));
                json_array_append_new(arr, e);
        }
        o = json_pack("{s:s, s:I, s:I, s:o}", "name", name, "current", (json_int_t)cur, "currents", (json_int_t)ncur,
                      "versions", arr);
        json_object_set_new(o, "grace", grace >= 0 ? json_integer(grace) : json_null());
        json_object_set_new(o, "leaked", json_boolean(leaked));
        return reply_json(rq, 200, o, false);
}

/* POST /v1/admin/versions/NAME/VERSION: the name at most CB_NAME_MAX (the
 * table's cap, checked before the method). */
int api_version_action(request *rq, const http_args *args) {
        const char *vtext = args->rest;
        char name[CB_NAME_MAX + 1];
        static const char *const fields[] = { "action", NULL };
        const cb_version_info *vi;
        const char *action;
        unsigned long long v;
        json_t *o;
        char *end;
        size_t nv;
        int64_t grace = -1;
        uint32_t by;
        int r, ret;

        if (args->seg_len > CB_NAME_MAX) /* the table caps it; never trusted for a copy */
                return reply_error(rq, 400, "bad_request", "secret name too long");
        memcpy(name, args->seg, args->seg_len);
        name[args->seg_len] = '\0';
        if (cb_name_check(name) < 0)
                return reply_error(rq, 400, "bad_request", "%s", cb_error_last());
        snprintf(rq->secret, sizeof(rq->secret), "%s", name);
        errno = 0;
        v = strtoull(vtext, &end, 10);
        if (errno || end == vtext || *end || v == 0 || v > UINT32_MAX || vtext[0] == '0')
                return reply_error(rq, 400, "bad_request", "the version must be a positive number");
        o = body_object(rq, fields);
        if (!o)
                return MHD_YES;
        action = json_string_value(json_object_get(o, "action"));
        if (!action || (strcmp(action, "enable") && strcmp(action, "disable") && strcmp(action, "destroy"))) {
                ret = reply_error(rq, 400, "bad_request", "'action' must be \"enable\", \"disable\" or \"destroy\"");
                goto out;
        }
        rq->route = !strcmp(action, "enable")    ? "admin.version.enable"
                    : !strcmp(action, "disable") ? "admin.version.disable"
                                                 : "admin.version.destroy";
        if (cb_store_versions(cbd.store, name, &vi, &nv) < 0) {
                ret = reply_error(rq, 404, "not_found", "no secret named '%s'", name);
                goto out;
        }
        const cb_version_info *target = NULL;
        for (size_t k = 0; k < nv; k++) {
                if (vi[k].version == v)
                        target = &vi[k];
                if (vi[k].state == CB_VS_CURRENT)
                        grace = cb_rotation_grace(vi[k].meta, NULL);
        }
        if (!target) {
                ret = reply_error(rq, 404, "not_found", "secret '%s' has no version %llu", name, v);
                goto out;
        }
        if (!strcmp(action, "destroy")) {
                r = cb_store_destroy(cbd.store, name, (uint32_t)v);
        } else if (!strcmp(action, "disable")) {
                r = cb_store_set_state(cbd.store, name, (uint32_t)v, CB_VS_DISABLED);
        } else if (target->state == CB_VS_CURRENT || target->state == CB_VS_PREVIOUS) {
                r = 0; /* served already */
        } else if (target->state == CB_VS_PENDING) {
                r = cb_error_set(-EINVAL, "version %llu of '%s' is pending: a pending version becomes current only "
                                 "through a rotation (credbroker rotate)", v, name);
        } else if (target->state == CB_VS_DESTROYED) {
                r = cb_error_set(-EKEYREVOKED, "version %llu of '%s' is destroyed", v, name);
        } else if ((by = rotate_leaked_by(vi, nv, (uint32_t)v)) != 0) {
                r = cb_error_set(-EPERM, "version %llu of '%s' leaked (version %" PRIu32 " records a leaked rotation "
                                 "after it): a leaked version is never served again", v, name, by);
        } else if (grace == 0) {
                r = cb_error_set(-EPERM, "the current version of '%s' came from a rotation with no grace (leaked or "
                                 "--grace 0): older versions are not served again; rotate with a grace first", name);
        } else {
                /* Served again until the current rotation's grace, counted from now, runs out. */
                r = cb_store_set_state(cbd.store, name, (uint32_t)v, CB_VS_PREVIOUS);
        }
        if (r < 0) {
                ret = store_error(rq, r);
                goto out;
        }
        rotate_changed();
        {
                json_t *ev = json_pack("{s:s, s:s, s:s, s:I, s:I}", "event", "version", "action", action, "secret",
                                       name, "version", (json_int_t)v, "time", (json_int_t)time(NULL));
                if (ev)
                        (void)audit_emit(ev);
                json_decref(ev);
        }
        ret = reply_json(rq, 200, json_pack("{s:s, s:I, s:s}", "name", name, "version", (json_int_t)v, "action", action),
                         false);
out:
        json_decref(o);
        return ret;
}
