/* SPDX-License-Identifier: Apache-2.0 */
/* The parsed policy's layout, shared by policy_parse.c (building it) and
 * policy.c (loading files and matching peers).  Not an API. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>

#include <jansson.h>

#include "error.h"
#include "policy.h"

#define CLIENT_NAME_MAX  64
#define ACCOUNT_NAME_MAX 256     /* user/group names handed to NSS */
#define ADMINS_MAX       1024    /* entries per admins.* array */
#define NEST_MAX         8       /* the schema needs 4 levels */
#define RATE_N_MAX       1000000
#define MAX_USES_MAX     (UINT32_C(1) << 31)
#define ID_MAX           (UINT32_MAX - 1)  /* (uid_t)-1 means "no id" to the kernel */
#define USE_ALL          (CB_USE_PROXY | CB_USE_REDEEM | CB_USE_SCAN)

enum {
        SEL_UID    = 1 << 0,
        SEL_GID    = 1 << 1,
        SEL_EXE    = 1 << 2,
        SEL_SHA256 = 1 << 3,
        SEL_CGROUP = 1 << 4,
};

typedef struct client {
        char *name;
        unsigned sel;                   /* SEL_* bits: the selectors given */
        uid_t uid;
        gid_t gid;
        char *exe;                      /* as written in the policy */
        char *exe_resolved;             /* realpath(exe) in the broker's mount namespace, at load; NULL if
                                         * it did not resolve (then the client matches nobody) */
        unsigned char exe_sha256[32];   /* decoded: hex case does not matter */
        char *cgroup;                   /* exact path, or for a prefix entry ("/a/b/" + '*') "/a/b/" */
        size_t cgroup_len;
        bool cgroup_prefix;
        /* "egress": where a sandbox of this client may go uncredentialed
         * (CONNECT); entries "host:port" or "*.suffix:port", lower case. */
        char **egress;
        size_t n_egress;
        bool egress_alert;
} client;

typedef struct grant {
        cb_grant g;                     /* g.client points to clients[client].name */
        size_t client;
} grant;

typedef struct name_ix {
        const char *name;
        size_t ix;
} name_ix;

/* "secrets": per-secret leak policy (policy_secrets.c). */
typedef struct secret_pol {
        char *name;
        enum cb_on_leak on_leak;
        bool canary;
} secret_pol;

struct cb_policy {
        unsigned long refs;             /* atomic: 1 at parse, cb_policy_ref/_unref (policy_snapshot.c) */
        bool uses_cgroup;               /* derived at parse: a client selects on the cgroup */
        client *clients;                /* file order */
        size_t n_clients;
        name_ix *by_name;               /* sorted by name, for lookups */
        grant *grants;                  /* file order: the first match wins */
        size_t n_grants;
        uint32_t *admin_uids;           /* uid_t and gid_t are 32 bits (asserted below) */
        size_t n_admin_uids;
        uint32_t *admin_gids;
        size_t n_admin_gids;
        secret_pol *secrets;            /* sorted by name */
        size_t n_secrets;
        uint32_t scan_requests_per_min; /* "scan_budget"; 0 = the default */
        uint64_t scan_bytes_per_min;
};

/* Parse the top-level "scan_budget" object (policy_secrets.c). */
int cb_policy_parse_scan_budget(const char *origin, const json_t *o, cb_policy *p);

/* Parse the top-level "secrets" object (after "grants": a grant naming a
 * canary is refused here) / free what it built. */
int cb_policy_parse_secrets(const char *origin, const json_t *o, cb_policy *p);
void cb_policy_free_secrets(cb_policy *p);

/* ---- the parser's shared readers (policy_parse.c) ----------------------
 * Every message is "ORIGIN: PATH: TEXT" through cb_error_set(); all
 * return 0 or -EINVAL (the message set). */
typedef struct policy_ctx {
        const char *origin;
        cb_policy *p;
} policy_ctx;

int cb_policy_err(const policy_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A value from the file, quoted for a message into buf (returned):
 * printable ASCII kept, anything else escaped, long values cut. */
#define POLICY_QUOTE_MAX 80
const char *cb_policy_quote(char buf[static POLICY_QUOTE_MAX], const char *s);
/* "an object", "a string", ... for a message. */
const char *cb_policy_type_name(const json_t *v);
/* v at path `at` as an integer in [lo, hi] / a string of at most max bytes
 * (pointing into v) / an array of at most max elements. */
int cb_policy_get_int(const policy_ctx *c, const json_t *v, const char *at, long long lo, long long hi,
                      long long *ret);
int cb_policy_get_str(const policy_ctx *c, const json_t *v, const char *at, size_t max, const char **ret);
/* v as a duration in seconds in [lo, hi]: an integer (seconds), or a string
 * of digits with an optional unit s, m, h or d ("300", "90m", "8h", "1d"). */
int cb_policy_get_duration(const policy_ctx *c, const json_t *v, const char *at, long long lo, long long hi,
                           long long *ret);
int cb_policy_get_array(const policy_ctx *c, const json_t *v, const char *at, size_t max);

/* ---- clients (policy_clients.c) ---------------------------------------- */

/* A user (group: a group) name to its id through NSS, at load. */
int cb_policy_resolve_id(const policy_ctx *c, const char *name, bool group, const char *at, uint32_t *ret);
/* Parse the top-level "clients" object into c->p. */
int cb_policy_parse_clients(const policy_ctx *c, const json_t *o);

/* The client named name (index into p->clients in *ret_ix), or NULL. */
const client *cb_policy_find_client(const cb_policy *p, const char *name, size_t *ret_ix);

static inline int oom(void) {
        return cb_error_set(-ENOMEM, "policy: out of memory");
}
