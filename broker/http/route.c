/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The route table's lookups (route.h): pure, no lock (the table is set
 * once, before any server thread runs, and only read after).
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "error.h"
#include "route.h"

static const http_route *tab;
static size_t tab_n;
static http_gate admin_gate;

static bool lit_eq(char p, char t, bool nocase) {
        return nocase ? tolower((unsigned char)p) == tolower((unsigned char)t) : p == t;
}

/* Does target match pat?  args: what its placeholders matched. */
static bool match(const char *pat, const char *t, bool nocase, http_args *args) {
        http_args a = { .seg = NULL };

        while (*pat) {
                if (*pat == '{') {
                        const char *close = strchr(pat, '}');
                        if ((size_t)(close - pat) > 4 && strncmp(close - 3, "...", 3) == 0) {
                                a.rest = t; /* final (http_routes_set checked) */
                                *args = a;
                                return true;
                        }
                        a.seg = t;
                        a.seg_len = strcspn(t, "/");
                        t += a.seg_len;
                        pat = close + 1;
                        continue;
                }
                if (!*t || !lit_eq(*pat, *t, nocase))
                        return false;
                pat++;
                t++;
        }
        if (*t)
                return false;
        *args = a;
        return true;
}

const http_route *http_route_find(unsigned socket, const char *method, const char *target, http_args *args,
                                  const http_route **ret_path) {
        const http_route *path = NULL;

        *ret_path = NULL;
        memset(args, 0, sizeof(*args));
        for (size_t i = 0; i < tab_n; i++) {
                const http_route *r = &tab[i];

                if (!(r->sockets & socket))
                        continue;
                if (!r->pattern) {
                        /* By method alone, only before a path is decided. */
                        if (!path && strcmp(r->method, method) == 0) {
                                *ret_path = r;
                                return r;
                        }
                        continue;
                }
                if (!path) {
                        if (!match(r->pattern, target, (r->flags & HTTP_ROUTE_NOCASE) != 0, args))
                                continue;
                        path = r;
                } else if (strcmp(r->pattern, path->pattern) != 0) {
                        continue;
                }
                if (!r->method || strcmp(r->method, method) == 0) {
                        *ret_path = path;
                        return r;
                }
        }
        *ret_path = path;
        return NULL;
}

void http_route_methods(unsigned socket, const http_route *path, char *buf, size_t cap) {
        size_t len = (size_t)snprintf(buf, cap, "use");
        bool first = true;

        for (size_t i = 0; i < tab_n && len < cap; i++) {
                const http_route *r = &tab[i];
                if (!(r->sockets & socket) || !r->pattern || !r->method || strcmp(r->pattern, path->pattern) != 0)
                        continue;
                len += (size_t)snprintf(buf + len, cap - len, "%s%s", first ? " " : " or ", r->method);
                first = false;
        }
}

const char *http_need_name(http_need need) {
        switch (need) {
        case HTTP_NEED_NONE: return "none";
        case HTTP_NEED_ADMIN: return "admin";
        case HTTP_NEED_GRANT: return "grant";
        case HTTP_NEED_SCAN: return "grant:scan";
        case HTTP_NEED_TOKEN_REDEEM: return "token:redeem";
        case HTTP_NEED_TOKEN_PROXY: return "token:proxy";
        case HTTP_NEED_TOKEN_HOLDER: return "token:holder";
        case HTTP_NEED_REQUESTER: return "requester";
        }
        return "?";
}

const char *http_socket_name(unsigned socket) {
        switch (socket) {
        case HTTP_TOOLS: return "tools";
        case HTTP_ADMIN: return "admin";
        case HTTP_TCP: return "tcp";
        case HTTP_TOOLS | HTTP_TCP: return "tools,tcp";
        }
        return "?";
}

/* A pattern's syntax (route.h). */
static int pattern_check(const char *pat) {
        bool seg = false;

        for (const char *p = pat; *p; p++) {
                if (*p == '}')
                        return -1;
                if (*p != '{')
                        continue;
                const char *close = strchr(p, '}');
                if (!close || close == p + 1 || memchr(p + 1, '{', (size_t)(close - p - 1)) ||
                    memchr(p + 1, '/', (size_t)(close - p - 1)))
                        return -1;
                if ((size_t)(close - p) > 4 && strncmp(close - 3, "...", 3) == 0) {
                        if (close[1] != 0)
                                return -1; /* the rest is the last thing */
                } else if (seg) {
                        return -1;
                } else {
                        seg = true;
                }
                p = close;
        }
        return 0;
}

int http_routes_set(const http_route *routes, size_t n, http_gate gate) {
        bool any_admin = false;

        for (size_t i = 0; i < n; i++) {
                const http_route *r = &routes[i];
                const char *what = NULL;

                if (!r->sockets || (r->sockets & ~(unsigned)(HTTP_TOOLS | HTTP_ADMIN | HTTP_TCP)))
                        what = "no socket";
                else if (!r->handler || (!(r->flags & HTTP_ROUTE_UNLISTED) && (!r->audit || !*r->audit)))
                        what = "no handler or audit name";
                else if (!r->pattern && !r->method)
                        what = "neither a pattern nor a method";
                else if (r->pattern && pattern_check(r->pattern) < 0)
                        what = "a malformed pattern";
                else if ((r->sockets & HTTP_ADMIN) && (r->need != HTTP_NEED_ADMIN || r->sockets != HTTP_ADMIN))
                        what = "an admin.sock route that does not need admin (or serves another socket too)";
                else if (!(r->sockets & HTTP_ADMIN) && r->need == HTTP_NEED_ADMIN)
                        what = "an admin need outside admin.sock";
                else if (r->seg_max && !r->seg_too_long)
                        what = "a segment cap without its message";
                if (what)
                        return cb_error_set(-EINVAL, "route %zu (%s %s): %s", i, r->method ? r->method : "ANY",
                                            r->pattern ? r->pattern : "*", what);
                any_admin |= (r->sockets & HTTP_ADMIN) != 0;
        }
        if (any_admin && !gate)
                return cb_error_set(-EINVAL, "admin.sock routes without the admin gate");
        tab = routes;
        tab_n = n;
        admin_gate = gate;
        return 0;
}

const http_route *http_routes(size_t *ret_n) {
        *ret_n = tab_n;
        return tab;
}

http_gate http_routes_admin_gate(void) {
        return admin_gate;
}

void http_routes_print(FILE *f) {
        for (size_t i = 0; i < tab_n; i++) {
                const http_route *r = &tab[i];
                char names[160];

                if (r->flags & HTTP_ROUTE_UNLISTED)
                        continue;
                snprintf(names, sizeof(names), "%s%s%s", r->audit ? r->audit : "-", r->also ? " " : "", r->also ? r->also : "");
                fprintf(f, "%-9s %-7s %-40s %-12s %s\n", http_socket_name(r->sockets), r->method ? r->method : "ANY",
                        r->pattern ? r->pattern : "*", http_need_name(r->need), names);
        }
}
