/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy parsing (jansson) into a self-contained struct.
 *
 * The schema is strict: an unknown key anywhere is an error, because a typo
 * ("max_tll", "exe_sha265") that was silently ignored would quietly weaken
 * the policy.  The first error wins and is reported through cb_error_set():
 *
 *   - syntax errors as ORIGIN:LINE:COLUMN: TEXT, from json_error_t;
 *   - semantic errors as ORIGIN: PATH: TEXT, PATH being a JSON path such as
 *     grants[3].use[1].  jansson keeps no source positions for parsed
 *     values, so the path is the honest location (and it stays right when
 *     the file is reformatted).
 *
 * After parsing nothing refers to the json_t tree: every string is copied
 * and owned by the cb_policy, and cb_grant.client / cb_grant.secret point
 * into that copy.
 *
 * The "clients" section is parsed in policy_clients.c, "secrets" and
 * "scan_budget" in policy_secrets.c; the readers they share with this file
 * (messages, typed getters) are declared in policy_internal.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "error.h"
#include "policy.h"
#include "policy_internal.h"
#include "store.h"

/* ---- messages -------------------------------------------------------- */

int cb_policy_err(const policy_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cb_policy_err(const policy_ctx *c, const char *fmt, ...) {
        char msg[400];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return cb_error_set(-EINVAL, "%s: %s", c->origin, msg);
}


/* A value from the file, quoted for a message: printable ASCII kept,
 * anything else escaped, long values cut (policy files hold no secrets, but
 * a message must stay one readable line). */
const char *cb_policy_quote(char buf[static POLICY_QUOTE_MAX], const char *s) {
        size_t o = 0;

        buf[o++] = '"';
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;

                if (o + 6 >= POLICY_QUOTE_MAX - 4) {
                        memcpy(buf + o, "...", 3);
                        o += 3;
                        break;
                }
                if (ch == '"' || ch == '\\') {
                        buf[o++] = '\\';
                        buf[o++] = (char)ch;
                } else if (ch < 0x20 || ch >= 0x7f) {
                        o += (size_t)snprintf(buf + o, POLICY_QUOTE_MAX - o, "\\x%02x", ch);
                } else {
                        buf[o++] = (char)ch;
                }
        }
        buf[o++] = '"';
        buf[o] = '\0';
        return buf;
}

const char *cb_policy_type_name(const json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT:  return "an object";
        case JSON_ARRAY:   return "an array";
        case JSON_STRING:  return "a string";
        case JSON_INTEGER: return "an integer";
        case JSON_REAL:    return "a real number";
        case JSON_TRUE:
        case JSON_FALSE:   return "a boolean";
        case JSON_NULL:    return "null";
        }
        return "?";
}

/* ---- typed getters ---------------------------------------------------- */

int cb_policy_get_int(const policy_ctx *c, const json_t *v, const char *at, long long lo, long long hi, long long *ret) {
        long long x;

        if (!json_is_integer(v))
                return cb_policy_err(c, "%s: expected an integer %lld..%lld, got %s", at, lo, hi, cb_policy_type_name(v));
        x = (long long)json_integer_value(v);
        if (x < lo || x > hi)
                return cb_policy_err(c, "%s: %lld is out of range %lld..%lld", at, x, lo, hi);
        *ret = x;
        return 0;
}

/* Durations: what the CLI takes for --ttl and --grace ("90m", "1d"), so an
 * operator writes a lifetime the same way in both.  One number, one unit;
 * at most 16 bytes (every value in range fits), nothing else. */
#define DURATION_TEXT_MAX 16

static bool duration_text(const char *s, size_t n, long long *ret) {
        long long v = 0, mul = 1;
        size_t digits = n;

        if (n == 0 || n > DURATION_TEXT_MAX)
                return false;
        switch (s[n - 1]) {
        case 's': mul = 1; digits--; break;
        case 'm': mul = 60; digits--; break;
        case 'h': mul = 3600; digits--; break;
        case 'd': mul = 86400; digits--; break;
        default: break;
        }
        if (digits == 0)
                return false;
        for (size_t i = 0; i < digits; i++) {
                if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX / 86400 - 9) / 10)
                        return false;
                v = v * 10 + (s[i] - '0');
        }
        *ret = v * mul;
        return true;
}

int cb_policy_get_duration(const policy_ctx *c, const json_t *v, const char *at, long long lo, long long hi,
                           long long *ret) {
        char q[POLICY_QUOTE_MAX];
        const char *s;
        long long x;

        if (json_is_integer(v))
                return cb_policy_get_int(c, v, at, lo, hi, ret);
        if (!json_is_string(v))
                return cb_policy_err(c, "%s: expected seconds (an integer) or a duration such as \"90m\", \"8h\" or "
                                     "\"1d\", got %s", at, cb_policy_type_name(v));
        s = json_string_value(v);
        if (strlen(s) != json_string_length(v) || !duration_text(s, json_string_length(v), &x))
                return cb_policy_err(c, "%s: invalid duration %s (expected N, Ns, Nm, Nh or Nd: seconds, minutes, "
                                     "hours, days)", at, cb_policy_quote(q, s));
        if (x < lo || x > hi)
                return cb_policy_err(c, "%s: %s is %lld s, out of range %lld..%lld s", at, cb_policy_quote(q, s), x, lo,
                                     hi);
        *ret = x;
        return 0;
}

/* A non-empty string without NUL bytes of at most max bytes. */
int cb_policy_get_str(const policy_ctx *c, const json_t *v, const char *at, size_t max, const char **ret) {
        const char *s;
        size_t n;

        if (!json_is_string(v))
                return cb_policy_err(c, "%s: expected a string, got %s", at, cb_policy_type_name(v));
        s = json_string_value(v);
        n = json_string_length(v);
        if (n == 0)
                return cb_policy_err(c, "%s: must not be empty", at);
        if (strlen(s) != n)
                return cb_policy_err(c, "%s: contains a NUL byte", at);
        if (n > max)
                return cb_policy_err(c, "%s: longer than %zu bytes", at, max);
        *ret = s;
        return 0;
}

int cb_policy_get_array(const policy_ctx *c, const json_t *v, const char *at, size_t max) {
        if (!json_is_array(v))
                return cb_policy_err(c, "%s: expected an array, got %s", at, cb_policy_type_name(v));
        if (json_array_size(v) > max)
                return cb_policy_err(c, "%s: more than %zu entries", at, max);
        return 0;
}

/* ---- grants ----------------------------------------------------------- */

/* "N/s", "N/m" or "N/h", 1 <= N <= RATE_N_MAX, nothing else. */
static bool parse_rate(const char *s, uint32_t *ret_n, uint32_t *ret_window) {
        uint32_t n = 0;
        size_t i;

        for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
                if (i >= 7)
                        return false;
                n = n * 10 + (uint32_t)(s[i] - '0');
        }
        if (i == 0 || n < 1 || n > RATE_N_MAX || s[i] != '/' || !s[i + 1] || s[i + 2])
                return false;
        switch (s[i + 1]) {
        case 's': *ret_window = 1; break;
        case 'm': *ret_window = 60; break;
        case 'h': *ret_window = 3600; break;
        default: return false;
        }
        *ret_n = n;
        return true;
}

static int parse_use(const policy_ctx *c, const json_t *a, const char *at, unsigned *ret) {
        char q[POLICY_QUOTE_MAX];
        unsigned uses = 0;
        size_t i;
        json_t *v;
        int r;

        if ((r = cb_policy_get_array(c, a, at, 3)) < 0) {
                if (json_is_array(a))
                        return cb_policy_err(c, "%s: more than 3 entries (expected proxy, redeem, scan, each at most once)", at);
                return r;
        }
        if (json_array_size(a) == 0)
                return cb_policy_err(c, "%s: empty (expected one or more of proxy, redeem, scan)", at);
        json_array_foreach(a, i, v) {
                char ati[96];
                const char *s;
                unsigned bit;

                snprintf(ati, sizeof(ati), "%.63s[%zu]", at, i);
                if (!json_is_string(v))
                        return cb_policy_err(c, "%s: expected a string (proxy, redeem, scan), got %s", ati, cb_policy_type_name(v));
                s = json_string_value(v);
                if (strlen(s) != json_string_length(v))
                        return cb_policy_err(c, "%s: contains a NUL byte", ati);
                if (strcmp(s, "proxy") == 0)
                        bit = CB_USE_PROXY;
                else if (strcmp(s, "redeem") == 0)
                        bit = CB_USE_REDEEM;
                else if (strcmp(s, "scan") == 0)
                        bit = CB_USE_SCAN;
                else
                        return cb_policy_err(c, "%s: unknown use %s (expected proxy, redeem, scan)", ati, cb_policy_quote(q, s));
                if (uses & bit)
                        return cb_policy_err(c, "%s: duplicate use \"%s\"", ati, s);
                uses |= bit;
        }
        *ret = uses;
        return 0;
}

static int parse_grant(const policy_ctx *c, size_t idx, const json_t *o, grant *gr) {
        cb_policy *p = c->p;
        cb_grant *g = &gr->g;
        char at[32], atk[64], q[POLICY_QUOTE_MAX];
        bool have_client = false;
        const char *key;
        json_t *v;
        int r;

        snprintf(at, sizeof(at), "grants[%zu]", idx);
        if (!json_is_object(o))
                return cb_policy_err(c, "%s: expected an object, got %s", at, cb_policy_type_name(o));
        g->max_ttl = CB_TTL_DEFAULT;

        json_object_foreach((json_t *)o, key, v) {
                const char *s;
                long long x;

                snprintf(atk, sizeof(atk), "%s.%.16s", at, key);
                if (strcmp(key, "client") == 0) {
                        if ((r = cb_policy_get_str(c, v, atk, CLIENT_NAME_MAX + 64, &s)) < 0)
                                return r;
                        if (!cb_policy_find_client(p, s, &gr->client))
                                return cb_policy_err(c, "%s: no client named %s in \"clients\"", atk, cb_policy_quote(q, s));
                        g->client = p->clients[gr->client].name;
                        have_client = true;
                } else if (strcmp(key, "secret") == 0) {
                        if ((r = cb_policy_get_str(c, v, atk, CB_NAME_MAX + 64, &s)) < 0)
                                return r;
                        if (strcmp(s, "*") != 0 && cb_name_check(s) < 0)
                                return cb_policy_err(c, "%s: %s: %s (or \"*\" for any secret)", atk, cb_policy_quote(q, s),
                                            cb_error_last());
                        g->secret = strdup(s);
                        if (!g->secret)
                                return oom();
                } else if (strcmp(key, "use") == 0) {
                        if ((r = parse_use(c, v, atk, &g->uses)) < 0)
                                return r;
                } else if (strcmp(key, "max_ttl") == 0) {
                        if ((r = cb_policy_get_duration(c, v, atk, 1, CB_TTL_MAX, &x)) < 0)
                                return r;
                        g->max_ttl = (uint32_t)x;
                        g->max_ttl_set = true;
                } else if (strcmp(key, "max_uses") == 0) {
                        if ((r = cb_policy_get_int(c, v, atk, 0, MAX_USES_MAX, &x)) < 0)
                                return r;
                        g->max_uses = (uint32_t)x;
                } else if (strcmp(key, "rate") == 0) {
                        if (!json_is_string(v))
                                return cb_policy_err(c, "%s: expected a string like \"60/m\", got %s", atk, cb_policy_type_name(v));
                        s = json_string_value(v);
                        if (strlen(s) != json_string_length(v) || !parse_rate(s, &g->rate_n, &g->rate_window))
                                return cb_policy_err(c, "%s: invalid rate %s (expected N/s, N/m or N/h with N 1..%d)", atk,
                                            cb_policy_quote(q, s), RATE_N_MAX);
                } else if (strcmp(key, "approval") == 0) {
                        if (!json_is_boolean(v))
                                return cb_policy_err(c, "%s: expected true or false, got %s", atk, cb_policy_type_name(v));
                        g->approval = json_is_true(v);
                } else {
                        return cb_policy_err(c, "%s: unknown key %s (expected client, secret, use, max_ttl, max_uses, rate, "
                                    "approval)", at, cb_policy_quote(q, key));
                }
        }
        if (!have_client)
                return cb_policy_err(c, "%s: missing \"client\"", at);
        if (!g->secret)
                return cb_policy_err(c, "%s: missing \"secret\"", at);
        if (!g->uses)
                return cb_policy_err(c, "%s: missing \"use\"", at);
        return 0;
}

static int parse_grants(const policy_ctx *c, const json_t *a) {
        cb_policy *p = c->p;
        size_t i;
        json_t *v;
        int r;

        if (!json_is_array(a))
                return cb_policy_err(c, "grants: expected an array, got %s", cb_policy_type_name(a));
        if (json_array_size(a) > CB_POLICY_MAX_GRANTS)
                return cb_policy_err(c, "grants: more than %d grants", CB_POLICY_MAX_GRANTS);
        if (!json_array_size(a))
                return 0;
        p->grants = calloc(json_array_size(a), sizeof(*p->grants));
        if (!p->grants)
                return oom();
        json_array_foreach(a, i, v) {
                p->n_grants++;   /* count first: cb_policy_free() frees what a failed parse left */
                if ((r = parse_grant(c, i, v, &p->grants[i])) < 0)
                        return r;
        }
        return 0;
}

/* ---- admins ----------------------------------------------------------- */

static int parse_ids(const policy_ctx *c, const json_t *a, const char *at, bool names, bool group, uint32_t **ret,
                     size_t *ret_n) {
        size_t i, n;
        json_t *v;
        int r;

        if ((r = cb_policy_get_array(c, a, at, ADMINS_MAX)) < 0)
                return r;
        n = json_array_size(a);
        if (!n)
                return 0;
        *ret = calloc(n, sizeof(**ret));
        if (!*ret)
                return oom();
        json_array_foreach(a, i, v) {
                char ati[64];
                uint32_t id;

                snprintf(ati, sizeof(ati), "%.31s[%zu]", at, i);
                if (names) {
                        const char *s;

                        if ((r = cb_policy_get_str(c, v, ati, ACCOUNT_NAME_MAX, &s)) < 0 ||
                            (r = cb_policy_resolve_id(c, s, group, ati, &id)) < 0)
                                return r;
                } else {
                        long long x;

                        if ((r = cb_policy_get_int(c, v, ati, 0, ID_MAX, &x)) < 0)
                                return r;
                        id = (uint32_t)x;
                }
                (*ret)[(*ret_n)++] = id;
        }
        return 0;
}

static int append_ids(uint32_t **dst, size_t *n_dst, const uint32_t *src, size_t n_src) {
        uint32_t *nd;

        if (!n_src)
                return 0;
        nd = realloc(*dst, (*n_dst + n_src) * sizeof(*nd));
        if (!nd)
                return oom();
        memcpy(nd + *n_dst, src, n_src * sizeof(*nd));
        *dst = nd;
        *n_dst += n_src;
        return 0;
}

static int parse_admins(const policy_ctx *c, const json_t *o) {
        _Static_assert(sizeof(uid_t) == sizeof(uint32_t) && sizeof(gid_t) == sizeof(uint32_t), "32-bit ids");
        cb_policy *p = c->p;
        char q[POLICY_QUOTE_MAX];
        const char *key;
        json_t *v;
        int r = 0;

        if (!json_is_object(o))
                return cb_policy_err(c, "admins: expected an object, got %s", cb_policy_type_name(o));
        json_object_foreach((json_t *)o, key, v) {
                uint32_t *ids = NULL;
                size_t n = 0;
                bool users = strcmp(key, "users") == 0, uids = strcmp(key, "uids") == 0;
                bool groups = strcmp(key, "groups") == 0, gids = strcmp(key, "gids") == 0;
                char at[32];

                if (!users && !uids && !groups && !gids)
                        return cb_policy_err(c, "admins: unknown key %s (expected uids, users, gids, groups)", cb_policy_quote(q, key));
                snprintf(at, sizeof(at), "admins.%.16s", key);
                r = parse_ids(c, v, at, users || groups, groups, &ids, &n);
                if (r >= 0) {
                        if (users || uids)
                                r = append_ids(&p->admin_uids, &p->n_admin_uids, ids, n);
                        else
                                r = append_ids(&p->admin_gids, &p->n_admin_gids, ids, n);
                }
                free(ids);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- top level -------------------------------------------------------- */

/* Depth sanity before jansson builds a tree: the schema needs 4 levels, so
 * anything much deeper is refused with a position, cheaply. */
static int check_nesting(const policy_ctx *c, const char *s, size_t len) {
        size_t depth = 0, line = 1, col = 0;
        bool in_str = false, esc = false;

        for (size_t i = 0; i < len; i++) {
                char ch = s[i];

                col++;
                if (ch == '\n') {
                        line++;
                        col = 0;
                }
                if (in_str) {
                        if (esc)
                                esc = false;
                        else if (ch == '\\')
                                esc = true;
                        else if (ch == '"')
                                in_str = false;
                } else if (ch == '"') {
                        in_str = true;
                } else if (ch == '{' || ch == '[') {
                        if (++depth > NEST_MAX)
                                return cb_error_set(-EINVAL, "%s:%zu:%zu: nested deeper than %d levels", c->origin,
                                                    line, col, NEST_MAX);
                } else if ((ch == '}' || ch == ']') && depth > 0) {
                        depth--;
                }
        }
        return 0;
}

void cb_policy_free(cb_policy *p) {
        if (!p)
                return;
        for (size_t i = 0; i < p->n_clients; i++) {
                free(p->clients[i].name);
                free(p->clients[i].exe);
                free(p->clients[i].exe_resolved);
                free(p->clients[i].cgroup);
                for (size_t k = 0; k < p->clients[i].n_egress; k++)
                        free(p->clients[i].egress[k]);
                free(p->clients[i].egress);
        }
        for (size_t i = 0; i < p->n_grants; i++)
                free((char *)p->grants[i].g.secret);
        free(p->clients);
        free(p->by_name);
        free(p->grants);
        free(p->admin_uids);
        free(p->admin_gids);
        cb_policy_free_secrets(p);
        free(p);
}

/* Symlinks in exe selectors are resolved here, in the broker's mount
 * namespace, once per load (and so on every reload).  A path that does not
 * resolve (not installed yet) leaves a client that matches nobody; the
 * checker says so. */
static int resolve_exes(cb_policy *p) {
        for (size_t i = 0; i < p->n_clients; i++) {
                client *cl = &p->clients[i];

                if (!(cl->sel & SEL_EXE))
                        continue;
                cl->exe_resolved = realpath(cl->exe, NULL);
                if (!cl->exe_resolved && errno == ENOMEM)
                        return oom();
        }
        return 0;
}

int cb_policy_parse(const char *json, size_t len, const char *origin, cb_policy **ret) {
        policy_ctx c = { .origin = origin ? origin : "policy" };
        json_t *root = NULL, *v;
        json_error_t jerr;
        const char *key;
        char q[POLICY_QUOTE_MAX];
        int r;

        if (!json && len)
                return cb_error_set(-EINVAL, "%s: no data", c.origin);
        if (len > CB_POLICY_MAX_BYTES)
                return cb_error_set(-EFBIG, "%s: larger than %d bytes", c.origin, CB_POLICY_MAX_BYTES);
        if ((r = check_nesting(&c, json, len)) < 0)
                return r;
        /* No JSON_DISABLE_EOF_CHECK: bytes after the top-level value are an error. */
        root = json_loadb(json ? json : "", len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return cb_error_set(-EINVAL, "%s:%d:%d: %s", c.origin, jerr.line, jerr.column, jerr.text);

        r = -ENOMEM;
        c.p = calloc(1, sizeof(*c.p));
        if (!c.p) {
                r = oom();
                goto out;
        }
        if (!json_is_object(root)) {
                r = cb_policy_err(&c, "top level: expected an object, got %s", cb_policy_type_name(root));
                goto out;
        }
        json_object_foreach(root, key, v) {
                if (strcmp(key, "clients") != 0 && strcmp(key, "grants") != 0 && strcmp(key, "admins") != 0 &&
                    strcmp(key, "secrets") != 0 && strcmp(key, "scan_budget") != 0) {
                        r = cb_policy_err(&c, "top level: unknown key %s (expected clients, grants, admins, secrets, "
                                 "scan_budget)",
                                 cb_policy_quote(q, key));
                        goto out;
                }
        }
        /* Clients first whatever the key order: grants refer to them. */
        if ((v = json_object_get(root, "clients")) && (r = cb_policy_parse_clients(&c, v)) < 0)
                goto out;
        if ((v = json_object_get(root, "grants")) && (r = parse_grants(&c, v)) < 0)
                goto out;
        if ((v = json_object_get(root, "admins")) && (r = parse_admins(&c, v)) < 0)
                goto out;
        if ((v = json_object_get(root, "secrets")) && (r = cb_policy_parse_secrets(c.origin, v, c.p)) < 0)
                goto out;
        if ((v = json_object_get(root, "scan_budget")) && (r = cb_policy_parse_scan_budget(c.origin, v, c.p)) < 0)
                goto out;
        if ((r = resolve_exes(c.p)) < 0)
                goto out;
        /* Derived flags are computed once, here: the snapshot never changes. */
        for (size_t i = 0; i < c.p->n_clients; i++)
                if (c.p->clients[i].sel & SEL_CGROUP)
                        c.p->uses_cgroup = true;
        c.p->refs = 1;
        *ret = c.p;
        c.p = NULL;
        r = 0;
out:
        cb_policy_free(c.p);
        json_decref(root);
        return r;
}

