/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy's "clients" section: selectors (uid, gid, exe, exe_sha256,
 * cgroup), user and group names resolved through NSS at load, and the
 * lookup of a client by name.  Split from policy_parse.c (the rest of the
 * schema, the shared readers and the top level); the same strict rules.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "error.h"
#include "policy.h"
#include "policy_internal.h"

/* ---- NSS lookups ------------------------------------------------------ */

/* getpwnam_r/getgrnam_r with a growing buffer.  0 and the id, -ENOENT when
 * the name is unknown, or another -errno. */
static int lookup_id(const char *name, bool group, uint32_t *ret) {
        size_t sz = 1024;
        char *buf = NULL;
        int r = -ENOMEM;

        for (;;) {
                char *nb = realloc(buf, sz);
                struct passwd pw, *pwr = NULL;
                struct group gr, *grr = NULL;
                int e;

                if (!nb)
                        goto out;
                buf = nb;
                if (group)
                        e = getgrnam_r(name, &gr, buf, sz, &grr);
                else
                        e = getpwnam_r(name, &pw, buf, sz, &pwr);
                if (e == ERANGE && sz < 1024 * 1024) {
                        sz *= 2;
                        continue;
                }
                /* NSS modules report "not found" in several ways. */
                if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM) {
                        if (group ? !grr : !pwr) {
                                r = -ENOENT;
                                goto out;
                        }
                        *ret = group ? (uint32_t)gr.gr_gid : (uint32_t)pw.pw_uid;
                        r = 0;
                        goto out;
                }
                r = -e;
                goto out;
        }
out:
        free(buf);
        return r;
}

int cb_policy_resolve_id(const policy_ctx *c, const char *name, bool group, const char *at, uint32_t *ret) {
        char q[POLICY_QUOTE_MAX];
        int r = lookup_id(name, group, ret);

        if (r == -ENOENT)
                return cb_policy_err(c, "%s: unknown %s %s", at, group ? "group" : "user", cb_policy_quote(q, name));
        if (r == -ENOMEM)
                return oom();
        if (r < 0)
                return cb_policy_err(c, "%s: cannot look up %s %s: %s", at, group ? "group" : "user", cb_policy_quote(q, name),
                            strerror(-r));
        if (*ret > ID_MAX)
                return cb_policy_err(c, "%s: %s %s has an invalid id", at, group ? "group" : "user", cb_policy_quote(q, name));
        return 0;
}

/* ---- clients ---------------------------------------------------------- */

static bool client_name_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > CLIENT_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)s[i];

                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                      ch == '.' || ch == '_' || ch == '-'))
                        return false;
        }
        return true;
}

static int hexval(char ch) {
        if (ch >= '0' && ch <= '9')
                return ch - '0';
        if (ch >= 'a' && ch <= 'f')
                return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F')
                return ch - 'A' + 10;
        return -1;
}

static int parse_sha256(const policy_ctx *c, const char *s, const char *at, unsigned char out[32]) {
        size_t n = strlen(s);

        if (n != 64)
                return cb_policy_err(c, "%s: expected 64 hex digits (a SHA-256), got %zu characters", at, n);
        for (size_t i = 0; i < 32; i++) {
                int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

                if (hi < 0 || lo < 0)
                        return cb_policy_err(c, "%s: not a hex digit at position %zu", at, hi < 0 ? 2 * i + 1 : 2 * i + 2);
                out[i] = (unsigned char)(hi << 4 | lo);
        }
        return 0;
}

/* A canonical path: no empty, "." or ".." component and no trailing '/',
 * except for "/" itself.  Required of cgroup paths (the kernel reports them
 * so) and of exe paths (no surprises in what realpath() makes of them:
 * symlinks are resolved at load, in policy.c, and matched by file
 * identity). */
static bool path_canonical(const char *s, size_t n) {
        if (n == 0 || s[0] != '/')
                return false;
        if (n == 1)
                return true;
        for (size_t i = 1, start = 1; i <= n; i++) {
                if (i < n && s[i] != '/')
                        continue;
                size_t k = i - start;

                if (k == 0 || (k == 1 && s[start] == '.') || (k == 2 && s[start] == '.' && s[start + 1] == '.'))
                        return false;
                start = i + 1;
        }
        return true;
}

static int parse_cgroup(const policy_ctx *c, const char *s, const char *at, client *cl) {
        char q[POLICY_QUOTE_MAX];
        size_t n = strlen(s), base;
        const char *star;

        /* Longer paths could never match: cb_peer.cgroup holds fewer bytes. */
        if (n >= CB_CGROUP_MAX)
                return cb_policy_err(c, "%s: longer than %d bytes", at, CB_CGROUP_MAX - 1);
        if (s[0] != '/')
                return cb_policy_err(c, "%s: %s is not an absolute cgroup path (it must start with '/')", at, cb_policy_quote(q, s));
        cl->cgroup_prefix = n >= 2 && s[n - 2] == '/' && s[n - 1] == '*';
        star = strchr(s, '*');
        /* A '*' anywhere else would read like a glob and silently never match. */
        if (star && !(cl->cgroup_prefix && star == s + n - 1))
                return cb_policy_err(c, "%s: %s: '*' is allowed only as a trailing \"/*\"", at, cb_policy_quote(q, s));
        /* A prefix keeps its trailing '/': matching stops at a component boundary. */
        cl->cgroup_len = cl->cgroup_prefix ? n - 1 : n;
        /* For a prefix, check the part before the final slash-star: empty is
         * the root's prefix, but a lone "/" would make an empty component. */
        base = cl->cgroup_prefix ? n - 2 : n;
        if (cl->cgroup_prefix ? base != 0 && (base == 1 || !path_canonical(s, base)) : !path_canonical(s, n))
                return cb_policy_err(c, "%s: %s is not a canonical path (empty, \".\" or \"..\" component, or trailing '/'; "
                            "for a prefix write \"/a/b/*\"): it could never match", at, cb_policy_quote(q, s));
        cl->cgroup = strndup(s, cl->cgroup_len);
        if (!cl->cgroup)
                return oom();
        cl->sel |= SEL_CGROUP;
        return 0;
}

/* A uid/gid selector: a number ("uid", "gid") or an account name ("user",
 * "group") resolved now, at load. */
static int parse_id(const policy_ctx *c, const json_t *v, const char *at, bool by_name, bool group, uint32_t *ret) {
        const char *s;
        long long x;
        int r;

        if (by_name) {
                if ((r = cb_policy_get_str(c, v, at, ACCOUNT_NAME_MAX, &s)) < 0)
                        return r;
                return cb_policy_resolve_id(c, s, group, at, ret);
        }
        if ((r = cb_policy_get_int(c, v, at, 0, ID_MAX, &x)) < 0)
                return r;
        *ret = (uint32_t)x;
        return 0;
}

#define EGRESS_MAX 256

/* One "egress.allow" entry: "host:port" or "*.suffix:port" (a DNS name of
 * letters, digits, '-' and '.'; no IP literal: sandboxes never dial
 * those; port 1-65535).  Stored lower case. */
static int parse_egress_entry(const policy_ctx *c, const char *s, const char *at, char **ret) {
        char q[POLICY_QUOTE_MAX];
        const char *colon = strrchr(s, ':'), *h = s;
        size_t hl;
        bool digits_only = true;

        if (!colon || !colon[1])
                return cb_policy_err(c, "%s: %s: want host:port or *.domain:port", at, cb_policy_quote(q, s));
        char *end;
        unsigned long port = strtoul(colon + 1, &end, 10);
        if (*end || port == 0 || port > 65535 || colon[1] == '+' || colon[1] == '-')
                return cb_policy_err(c, "%s: %s: bad port", at, cb_policy_quote(q, s));
        if (h[0] == '*' && h[1] == '.')
                h += 2;
        hl = (size_t)(colon - h);
        if (hl == 0 || hl > 253)
                return cb_policy_err(c, "%s: %s: want host:port or *.domain:port", at, cb_policy_quote(q, s));
        for (size_t i = 0; i < hl; i++) {
                char ch = h[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                      ch == '.') || (ch == '.' && (i == 0 || i == hl - 1 || h[i - 1] == '.')))
                        return cb_policy_err(c, "%s: %s: not a DNS name (IP literals and wildcards other than a "
                                             "leading \"*.\" are refused)", at, cb_policy_quote(q, s));
                if (!(ch >= '0' && ch <= '9') && ch != '.')
                        digits_only = false;
        }
        if (digits_only)
                return cb_policy_err(c, "%s: %s: an IP literal (sandboxes dial names only)", at, cb_policy_quote(q, s));
        char *e = strdup(s);
        if (!e)
                return oom();
        for (char *p = e; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char)(*p + 32);
        *ret = e;
        return 0;
}

/* "egress": {"allow": [ENTRY...], "alert_on_deny": bool} */
static int parse_egress(const policy_ctx *c, const char *name, const json_t *o, client *cl) {
        char at[128], q[POLICY_QUOTE_MAX];
        const char *key;
        json_t *v;
        int r;

        if (!json_is_object(o))
                return cb_policy_err(c, "clients.%s.egress: expected an object, got %s", name, cb_policy_type_name(o));
        cl->egress_alert = true;
        json_object_foreach((json_t *)o, key, v) {
                if (strcmp(key, "allow") == 0) {
                        if (!json_is_array(v) || json_array_size(v) > EGRESS_MAX)
                                return cb_policy_err(c, "clients.%s.egress.allow: expected an array of at most %d "
                                                     "\"host:port\" strings", name, EGRESS_MAX);
                        cl->egress = calloc(json_array_size(v) + 1, sizeof(char *));
                        if (!cl->egress)
                                return oom();
                        for (size_t i = 0; i < json_array_size(v); i++) {
                                const char *s;
                                snprintf(at, sizeof(at), "clients.%.64s.egress.allow[%zu]", name, i);
                                if ((r = cb_policy_get_str(c, json_array_get(v, i), at, 300, &s)) < 0 ||
                                    (r = parse_egress_entry(c, s, at, &cl->egress[cl->n_egress])) < 0)
                                        return r;
                                cl->n_egress++;
                        }
                } else if (strcmp(key, "alert_on_deny") == 0) {
                        if (!json_is_boolean(v))
                                return cb_policy_err(c, "clients.%s.egress.alert_on_deny: expected true or false", name);
                        cl->egress_alert = json_is_true(v);
                } else {
                        return cb_policy_err(c, "clients.%s.egress: unknown key %s (expected allow, alert_on_deny)", name,
                                             cb_policy_quote(q, key));
                }
        }
        return 0;
}

bool cb_policy_egress_allows(const cb_policy *p, const char *name, const char *host, unsigned port) {
        const client *cl = p && name ? cb_policy_find_client(p, name, NULL) : NULL;
        size_t hl = host ? strlen(host) : 0;

        if (!cl || hl == 0)
                return false;
        for (size_t i = 0; i < cl->n_egress; i++) {
                const char *e = cl->egress[i], *colon = strrchr(e, ':');
                if (strtoul(colon + 1, NULL, 10) != port)
                        continue;
                if (e[0] == '*') {
                        /* "*.example.com" covers a.example.com, not example.com itself. */
                        size_t sl = (size_t)(colon - (e + 1));  /* ".example.com" */
                        if (hl > sl && strncasecmp(host + hl - sl, e + 1, sl) == 0)
                                return true;
                } else if ((size_t)(colon - e) == hl && strncasecmp(host, e, hl) == 0) {
                        return true;
                }
        }
        return false;
}

bool cb_policy_egress_alert(const cb_policy *p, const char *name) {
        const client *cl = p && name ? cb_policy_find_client(p, name, NULL) : NULL;
        return !cl || !cl->egress || cl->egress_alert;
}

static int parse_client(const policy_ctx *c, const char *name, const json_t *o, client *cl) {
        char at[96], q[POLICY_QUOTE_MAX];
        const char *key;
        json_t *v;
        int r;

        if (!client_name_valid(name))
                return cb_policy_err(c, "clients: invalid client name %s (use 1 to %d characters from A-Z a-z 0-9 . _ -)",
                            cb_policy_quote(q, name), CLIENT_NAME_MAX);
        cl->name = strdup(name);
        if (!cl->name)
                return oom();
        if (!json_is_object(o))
                return cb_policy_err(c, "clients.%s: expected an object, got %s", name, cb_policy_type_name(o));

        json_object_foreach((json_t *)o, key, v) {
                const char *s;
                uint32_t id;

                snprintf(at, sizeof(at), "clients.%.64s.%.16s", name, key);   /* known keys are short */
                if (strcmp(key, "uid") == 0 || strcmp(key, "user") == 0) {
                        if (cl->sel & SEL_UID)
                                return cb_policy_err(c, "clients.%s: both \"uid\" and \"user\" given; use one", name);
                        if ((r = parse_id(c, v, at, key[1] != 'i', false, &id)) < 0)
                                return r;
                        cl->uid = (uid_t)id;
                        cl->sel |= SEL_UID;
                } else if (strcmp(key, "gid") == 0 || strcmp(key, "group") == 0) {
                        if (cl->sel & SEL_GID)
                                return cb_policy_err(c, "clients.%s: both \"gid\" and \"group\" given; use one", name);
                        if ((r = parse_id(c, v, at, key[1] != 'i', true, &id)) < 0)
                                return r;
                        cl->gid = (gid_t)id;
                        cl->sel |= SEL_GID;
                } else if (strcmp(key, "exe") == 0) {
                        if ((r = cb_policy_get_str(c, v, at, PATH_MAX - 1, &s)) < 0)
                                return r;
                        if (s[0] != '/')
                                return cb_policy_err(c, "%s: %s is not an absolute path", at, cb_policy_quote(q, s));
                        if (!path_canonical(s, strlen(s)))
                                return cb_policy_err(c, "%s: %s is not a canonical path (empty, \".\" or \"..\" component, "
                                            "or trailing '/'): it could never match", at, cb_policy_quote(q, s));
                        cl->exe = strdup(s);
                        if (!cl->exe)
                                return oom();
                        cl->sel |= SEL_EXE;
                } else if (strcmp(key, "exe_sha256") == 0) {
                        if ((r = cb_policy_get_str(c, v, at, SIZE_MAX, &s)) < 0 ||
                            (r = parse_sha256(c, s, at, cl->exe_sha256)) < 0)
                                return r;
                        cl->sel |= SEL_SHA256;
                } else if (strcmp(key, "cgroup") == 0) {
                        if ((r = cb_policy_get_str(c, v, at, CB_CGROUP_MAX, &s)) < 0 ||
                            (r = parse_cgroup(c, s, at, cl)) < 0)
                                return r;
                } else if (strcmp(key, "egress") == 0) {
                        if ((r = parse_egress(c, name, v, cl)) < 0)
                                return r;
                } else {
                        return cb_policy_err(c, "clients.%s: unknown key %s (expected uid, user, gid, group, exe, exe_sha256, "
                                    "cgroup, egress)", name, cb_policy_quote(q, key));
                }
        }
        if (!cl->sel)
                return cb_policy_err(c, "clients.%s: no selector (uid, user, gid, group, exe, exe_sha256, cgroup): "
                            "it would match every caller", name);
        return 0;
}

static int cmp_name_ix(const void *a, const void *b) {
        return strcmp(((const name_ix *)a)->name, ((const name_ix *)b)->name);
}

const client *cb_policy_find_client(const cb_policy *p, const char *name, size_t *ret_ix) {
        name_ix key = { .name = name }, *hit;

        if (!p->n_clients)
                return NULL;
        hit = bsearch(&key, p->by_name, p->n_clients, sizeof(*p->by_name), cmp_name_ix);
        if (!hit)
                return NULL;
        if (ret_ix)
                *ret_ix = hit->ix;
        return &p->clients[hit->ix];
}

int cb_policy_parse_clients(const policy_ctx *c, const json_t *o) {
        cb_policy *p = c->p;
        size_t n = json_object_size(o);
        const char *key;
        json_t *v;
        int r;

        if (!json_is_object(o))
                return cb_policy_err(c, "clients: expected an object, got %s", cb_policy_type_name(o));
        if (n > CB_POLICY_MAX_CLIENTS)
                return cb_policy_err(c, "clients: more than %d clients", CB_POLICY_MAX_CLIENTS);
        if (!n)
                return 0;
        p->clients = calloc(n, sizeof(*p->clients));
        p->by_name = calloc(n, sizeof(*p->by_name));
        if (!p->clients || !p->by_name)
                return oom();
        /* jansson iterates objects in insertion order, i.e. file order. */
        json_object_foreach((json_t *)o, key, v) {
                client *cl = &p->clients[p->n_clients++];

                if ((r = parse_client(c, key, v, cl)) < 0)
                        return r;
                p->by_name[p->n_clients - 1] = (name_ix){ cl->name, p->n_clients - 1 };
        }
        qsort(p->by_name, p->n_clients, sizeof(*p->by_name), cmp_name_ix);
        return 0;
}
