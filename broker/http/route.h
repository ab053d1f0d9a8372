/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The route table.  api/ owns the routes (api/api_routes.c: method, path
 * pattern, socket, handler, the grant kind each needs, its audit name) and
 * hands them to http/ once, at start, before any server runs
 * (http_routes_set); http/ looks every request up here and never names a
 * handler.  `credbrokerd --routes` prints the table (http_routes_print),
 * broker/API.md lists the same routes (tests/api-doc.sh checks it).
 *
 * A request is routed in two steps, as the strcmp chains before did:
 *   1. the first route of the socket, in table order, whose target matches
 *      decides the path: a route with no pattern matches on its method
 *      alone (CONNECT), one with a pattern on the target;
 *   2. among the socket's routes with that very pattern, the first whose
 *      method matches (NULL: any) runs; none: 405 "use M1 or M2", naming
 *      the methods in table order.
 * No pattern matches: the socket's 404.
 *
 * Patterns: literal bytes; "{x}" one path segment (any bytes but '/', maybe
 * empty); a final "{x...}" the rest of the target (maybe empty, '/' too).
 * At most one of each.  The table is read-only once set: lookups take no
 * lock.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct request;

/* The sockets a route is served on. */
enum {
        HTTP_TOOLS = 1u << 0, /* tools.sock */
        HTTP_ADMIN = 1u << 1, /* admin.sock */
        HTTP_TCP = 1u << 2,   /* --listen-tcp */
};

/* What a route asks of its caller beyond being identified.  HTTP_NEED_ADMIN
 * is checked before any route of admin.sock, by the gate api/ registers
 * (every admin.sock route needs it, and so does a target no route there
 * matches); the others are checked by the handler, in the order the
 * handler states (e.g. the token before the secret's name is looked at). */
typedef enum http_need {
        HTTP_NEED_NONE = 0,    /* an identified caller */
        HTTP_NEED_ADMIN,       /* an admin in the policy (admin.sock) */
        HTTP_NEED_GRANT,       /* a policy grant for the secret (proxy or redeem) */
        HTTP_NEED_SCAN,        /* a policy grant with use "scan" */
        HTTP_NEED_TOKEN_REDEEM,/* a live redeem token issued to the caller */
        HTTP_NEED_TOKEN_PROXY, /* a live proxy token issued to the caller */
        HTTP_NEED_TOKEN_HOLDER,/* the token's own holder (uid, and executable unless uid-bound) */
        HTTP_NEED_REQUESTER,   /* the process that asked for the approval */
} http_need;

/* Flags of a route (of the first route with a pattern: of the path). */
enum {
        HTTP_ROUTE_STREAM = 1u << 0,    /* decided on its headers; the body streams to the handler */
        HTTP_ROUTE_NAMED_405 = 1u << 1, /* a wrong method is recorded under the route's name (else the target) */
        HTTP_ROUTE_READ_ONLY = 1u << 2, /* admin.sock: no intent record first, whatever the method */
        HTTP_ROUTE_NOCASE = 1u << 3,    /* the pattern's literal bytes match in any case */
        HTTP_ROUTE_UNLISTED = 1u << 4,  /* a refusal that catches a subtree, not a route of the API */
        HTTP_ROUTE_SDK_ERRORS = 1u << 5,/* refusals in the shape the vendors' SDKs parse (the proxy) */
        HTTP_ROUTE_PROBE = 1u << 6,     /* a GET of it is a liveness probe: its record may be lost */
};

/* What the pattern's "{x}" and "{x...}" matched. */
typedef struct http_args {
        const char *seg; /* "{x}": not NUL-terminated */
        size_t seg_len;
        const char *rest; /* "{x...}": the rest of the target, NUL-terminated */
} http_args;

/* A handler answers through http/'s reply_* and returns its MHD result. */
typedef int (*http_handler)(struct request *rq, const http_args *a);

typedef struct http_route {
        unsigned sockets;     /* HTTP_TOOLS | HTTP_ADMIN | HTTP_TCP */
        const char *method;   /* "GET", "POST", ...; NULL: any */
        const char *pattern;  /* NULL: any target (a method is then required) */
        http_handler handler;
        http_need need;
        const char *audit;    /* the route's name in audit records and metrics (an UNLISTED
                               * one may have none: recorded under the target) */
        unsigned flags;       /* HTTP_ROUTE_* */
        size_t seg_max;       /* "{x}" longer than this: 400 seg_too_long, before the method (0: no cap) */
        const char *seg_too_long;
        const char *also;     /* more names the handler may record under ("a b"), or NULL */
} http_route;

/* admin.sock's gate for HTTP_NEED_ADMIN: runs on every request there
 * before its route (path: the route that decided the path, NULL for none).
 * true when it answered (*ret: the MHD result). */
typedef bool (*http_gate)(struct request *rq, const http_route *path, int *ret);

/* Hand http/ the table (kept, not copied) and the admin gate; once, at
 * start, before the servers.  -EINVAL (cb_error_last says why) for a table
 * that breaks the rules above: a pattern's syntax, a route without a
 * socket, handler or audit name, an admin.sock route that does not need
 * HTTP_NEED_ADMIN or another that does. */
int http_routes_set(const http_route *routes, size_t n, http_gate admin_gate);

/* Route method/target on socket (one HTTP_* bit).  Returns the route to
 * run (args filled), or NULL.  *ret_path: the route that decided the path
 * (its flags are the path's), NULL when none did (404); with a NULL return
 * and a path, the method is wrong (405). */
const http_route *http_route_find(unsigned socket, const char *method, const char *target, http_args *args,
                                  const http_route **ret_path);

/* "use GET or POST": the methods of path's pattern on socket, in table order. */
void http_route_methods(unsigned socket, const http_route *path, char *buf, size_t cap);

const char *http_need_name(http_need need);
const char *http_socket_name(unsigned socket);

/* The table as text, one route a line (UNLISTED ones left out):
 * SOCKETS METHOD PATTERN NEED AUDIT-NAMES. */
void http_routes_print(FILE *f);

/* The table and the admin gate (NULL before http_routes_set). */
const http_route *http_routes(size_t *ret_n);
http_gate http_routes_admin_gate(void);
