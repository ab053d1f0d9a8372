/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy's per-secret section (leak response):
 *
 *   "secrets": { "github-token": {"on_leak": "rotate"},
 *                "canary-aws":   {"canary": true, "on_leak": "alert"} }
 *
 * Strict like the rest of the schema: unknown keys, bad names and wrong
 * types are errors located by JSON path (secrets.NAME.KEY).  A grant that
 * names a canary is refused: a canary exists only to be noticed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "policy.h"
#include "policy_internal.h"
#include "store.h"

const char *cb_on_leak_name(enum cb_on_leak a) {
        switch (a) {
        case CB_ON_LEAK_REVOKE: return "revoke";
        case CB_ON_LEAK_ROTATE: return "rotate";
        case CB_ON_LEAK_ALERT: return "alert";
        }
        return "?";
}

static int cmp_secret(const void *a, const void *b) {
        return strcmp(((const secret_pol *)a)->name, ((const secret_pol *)b)->name);
}

void cb_policy_free_secrets(cb_policy *p) {
        for (size_t i = 0; i < p->n_secrets; i++)
                free(p->secrets[i].name);
        free(p->secrets);
        p->secrets = NULL;
        p->n_secrets = 0;
}

int cb_policy_parse_secrets(const char *origin, const json_t *o, cb_policy *p) {
        const char *name, *key;
        json_t *v, *e;

        if (!json_is_object(o))
                return cb_error_set(-EINVAL, "%s: secrets: expected an object of secret names", origin);
        if (json_object_size(o) > CB_POLICY_MAX_SECRETS)
                return cb_error_set(-EINVAL, "%s: secrets: more than %d entries", origin, CB_POLICY_MAX_SECRETS);
        if (!json_object_size(o))
                return 0;
        p->secrets = calloc(json_object_size(o), sizeof(*p->secrets));
        if (!p->secrets)
                return oom();
        json_object_foreach((json_t *)o, name, v) {
                if (strlen(name) > CB_NAME_MAX || cb_name_check(name) < 0)
                        return cb_error_set(-EINVAL, "%s: secrets: invalid secret name \"%.64s\" (1 to %d of "
                                            "A-Z a-z 0-9 . _ -)", origin, name, CB_NAME_MAX);
                if (!json_is_object(v))
                        return cb_error_set(-EINVAL, "%s: secrets.%s: expected an object", origin, name);
                secret_pol *sp = &p->secrets[p->n_secrets];
                sp->name = strdup(name);
                if (!sp->name)
                        return oom();
                p->n_secrets++; /* counted now: cb_policy_free_secrets() frees what a failed parse left */
                json_object_foreach(v, key, e) {
                        if (strcmp(key, "on_leak") == 0) {
                                const char *a = json_string_value(e);
                                if (a && strcmp(a, "revoke") == 0)
                                        sp->on_leak = CB_ON_LEAK_REVOKE;
                                else if (a && strcmp(a, "rotate") == 0)
                                        sp->on_leak = CB_ON_LEAK_ROTATE;
                                else if (a && strcmp(a, "alert") == 0)
                                        sp->on_leak = CB_ON_LEAK_ALERT;
                                else
                                        return cb_error_set(-EINVAL, "%s: secrets.%s.on_leak: expected \"revoke\", "
                                                            "\"rotate\" or \"alert\"", origin, name);
                        } else if (strcmp(key, "canary") == 0) {
                                if (!json_is_boolean(e))
                                        return cb_error_set(-EINVAL, "%s: secrets.%s.canary: expected true or false",
                                                            origin, name);
                                sp->canary = json_is_true(e);
                        } else {
                                return cb_error_set(-EINVAL, "%s: secrets.%s: unknown key \"%.32s\" (expected "
                                                    "on_leak, canary)", origin, name, key);
                        }
                }
                for (size_t i = 0; sp->canary && i < p->n_grants; i++)
                        if (p->grants[i].g.secret && strcmp(p->grants[i].g.secret, name) == 0)
                                return cb_error_set(-EINVAL, "%s: grants[%zu].secret: \"%s\" is a canary "
                                                    "(secrets.%s.canary): a canary is never granted", origin, i,
                                                    name, name);
        }
        qsort(p->secrets, p->n_secrets, sizeof(*p->secrets), cmp_secret);
        return 0;
}

static const secret_pol *find(const cb_policy *p, const char *secret) {
        secret_pol key = { .name = (char *)secret };

        if (!p || !p->n_secrets || !secret)
                return NULL;
        return bsearch(&key, p->secrets, p->n_secrets, sizeof(*p->secrets), cmp_secret);
}

enum cb_on_leak cb_policy_on_leak(const cb_policy *p, const char *secret) {
        const secret_pol *sp = find(p, secret);
        return sp ? sp->on_leak : CB_ON_LEAK_REVOKE;
}

bool cb_policy_is_canary(const cb_policy *p, const char *secret) {
        const secret_pol *sp = find(p, secret);
        return sp && sp->canary;
}

const cb_grant *cb_policy_scan_grant(const cb_policy *p, const cb_peer *peer, const char **ret_client) {
        const char *names[64];
        size_t n;

        if (!p || !peer)
                return NULL;
        n = cb_policy_match_clients(p, peer, names, 64);
        if (n > 64)
                n = 64;
        for (size_t i = 0; i < p->n_grants; i++) {
                const cb_grant *g = &p->grants[i].g;
                if (!(g->uses & CB_USE_SCAN))
                        continue;
                for (size_t k = 0; k < n; k++)
                        if (strcmp(g->client, names[k]) == 0) {
                                if (ret_client)
                                        *ret_client = g->client;
                                return g;
                        }
        }
        return NULL;
}

int cb_policy_parse_scan_budget(const char *origin, const json_t *o, cb_policy *p) {
        const char *key;
        json_t *v;

        if (!json_is_object(o))
                return cb_error_set(-EINVAL, "%s: scan_budget: expected an object {\"requests_per_minute\": N, "
                                    "\"bytes_per_minute\": M}", origin);
        json_object_foreach((json_t *)o, key, v) {
                bool req = strcmp(key, "requests_per_minute") == 0, bytes = strcmp(key, "bytes_per_minute") == 0;
                json_int_t x = json_integer_value(v);

                if (!req && !bytes)
                        return cb_error_set(-EINVAL, "%s: scan_budget: unknown key \"%.64s\" (expected "
                                            "requests_per_minute, bytes_per_minute)", origin, key);
                if (!json_is_integer(v) || x < 1 ||
                    (uint64_t)x > (req ? (uint64_t)CB_SCAN_BUDGET_REQUESTS_MAX : CB_SCAN_BUDGET_BYTES_MAX))
                        return cb_error_set(-EINVAL, "%s: scan_budget.%s: an integer from 1 to %llu", origin, key,
                                            req ? (unsigned long long)CB_SCAN_BUDGET_REQUESTS_MAX
                                                : (unsigned long long)CB_SCAN_BUDGET_BYTES_MAX);
                if (req)
                        p->scan_requests_per_min = (uint32_t)x;
                else
                        p->scan_bytes_per_min = (uint64_t)x;
        }
        return 0;
}

void cb_policy_scan_budget(const cb_policy *p, uint32_t *ret_requests, uint64_t *ret_bytes) {
        *ret_requests = p && p->scan_requests_per_min ? p->scan_requests_per_min : CB_SCAN_BUDGET_REQUESTS_DEFAULT;
        *ret_bytes = p && p->scan_bytes_per_min ? p->scan_bytes_per_min : CB_SCAN_BUDGET_BYTES_DEFAULT;
}
