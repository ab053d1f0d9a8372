/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The route table: every route of the three sockets, with the grant kind
 * it needs and its name in audit records and metrics.  http/ routes by it
 * (route.h: the first matching pattern decides the path, then the method;
 * order matters only where patterns overlap: the proxy comes first on
 * tools.sock, a catch-all after the routes it catches).  `credbrokerd
 * --routes` prints it; broker/API.md lists the same routes
 * (tests/api-doc.sh).
 */
#include <microhttpd.h>

#include "api.h"
#include "api_internal.h"
#include "audit.h"
#include "daemon.h"
#include "rotate.h"
#include "scan.h"

/* GET /v1/health: a liveness probe (its record may be lost). */
static int tool_health(request *rq, const http_args *args) {
        (void)args;
        return reply_json(rq, 200, json_pack("{s:s, s:s}", "status", "ok", "version", CB_VERSION_STRING), false);
}

/* admin.sock's health answers any method, to an admin. */
static int admin_health(request *rq, const http_args *args) {
        (void)args;
        return reply_json(rq, 200, json_pack("{s:s}", "status", "ok"), false);
}

/* The proxy decides everything about its request itself, the method too
 * (proxy/proxy_route.c). */
static int route_proxy(request *rq, const http_args *args) {
        (void)args;
        return api_proxy(rq);
}

/* /v1/scan and /v1/redact: the body streams through the matcher (leak/scan.c). */
static int route_scan(request *rq, const http_args *args) {
        (void)args;
        return scan_start(rq);
}

/* The admin routes that read, check and write the store (or its
 * rotations, or the provisioning keys): under rotate/'s lock, which also
 * holds the store's writers' mutex (rotate.h), on top of the admin lock
 * http/ holds for every admin.sock route -- so they see and change the
 * store as one writer, serialised with rotations (admin, hook, leaked) and
 * leak marks.  No tools.sock route waits for either: readers take the
 * store's read side only, which a writer holds just to publish a commit
 * in memory.  (The audit intent record is waited for in the gate, before
 * this.) */
#define STORE_WORK(h)                                                   \
        static int h##_w(request *rq, const http_args *args) {          \
                rotate_lock();                                          \
                int r = h(rq, args);                                    \
                rotate_unlock();                                        \
                return r;                                               \
        }
STORE_WORK(api_list)
STORE_WORK(api_put)
STORE_WORK(api_rotate_secret)
STORE_WORK(api_versions)
STORE_WORK(api_version_action)
STORE_WORK(api_show)
STORE_WORK(api_delete)
STORE_WORK(api_revoke)
STORE_WORK(api_metrics)
STORE_WORK(api_status)
STORE_WORK(api_pubkey)
STORE_WORK(api_pubkeys)
STORE_WORK(api_pubkey_rotate)
STORE_WORK(api_pubkey_retire)
STORE_WORK(api_import)

/* Refusals of whole subtrees (unlisted). */
static int admin_elsewhere(request *rq, const http_args *args) {
        (void)args;
        return reply_error(rq, 403, "forbidden", "admin routes are served on admin.sock only");
}

static int no_route(request *rq, const http_args *args) {
        (void)args;
        return reply_error(rq, 404, "not_found", "no route %.64s", rq->url);
}

#define TOOLS HTTP_TOOLS
#define ADMIN HTTP_ADMIN
#define TCP HTTP_TCP
#define STREAM HTTP_ROUTE_STREAM
#define NAMED_405 HTTP_ROUTE_NAMED_405
#define READ_ONLY HTTP_ROUTE_READ_ONLY
#define NOCASE HTTP_ROUTE_NOCASE
#define UNLISTED HTTP_ROUTE_UNLISTED
#define SDK HTTP_ROUTE_SDK_ERRORS
#define PROBE HTTP_ROUTE_PROBE

/* Locks: http/ runs every admin.sock row under the admin lock (cbd.admin_lock)
 * and no tools.sock or TCP row under any daemon-wide lock (server_request.c):
 * the tool routes -- token, redeem, introspect, revoke, the approval poll,
 * the proxy, scan/redact -- touch only state that guards itself, each lock
 * held for memory work (docs/architecture.md, "Locks"). */
static const http_route routes[] = {
        /* tools.sock (and the loopback TCP listener: the proxy and health only).
         * The injection proxy: CONNECT (refused there), /v1/proxy/SECRET/PATH and
         * absolute-form targets; decided on the headers, the body streams. */
        { TOOLS | TCP, "CONNECT", NULL, route_proxy, HTTP_NEED_TOKEN_PROXY, "proxy", STREAM | SDK,
          .also = "sandbox.leak" }, /* any request on a sandbox's listener refused at the door (http/server_leak.c) */
        { TOOLS | TCP, NULL, "/v1/proxy/{secret_path...}", route_proxy, HTTP_NEED_TOKEN_PROXY, "proxy", STREAM | SDK },
        { TOOLS | TCP, NULL, "http://{authority_path...}", route_proxy, HTTP_NEED_TOKEN_PROXY, "proxy",
          STREAM | SDK | NOCASE },
        { TOOLS | TCP, NULL, "https://{authority_path...}", route_proxy, HTTP_NEED_TOKEN_PROXY, "proxy",
          STREAM | SDK | NOCASE },
        { TOOLS | TCP, "GET", "/v1/health", tool_health, HTTP_NEED_NONE, "health", NAMED_405 | PROBE },
        { TOOLS, "POST", "/v1/token", api_token, HTTP_NEED_GRANT, "token" },
        { TOOLS, "POST", "/v1/redeem", api_redeem, HTTP_NEED_TOKEN_REDEEM, "redeem" },
        { TOOLS, "POST", "/v1/scan", route_scan, HTTP_NEED_SCAN, "scan", STREAM | NAMED_405 },
        { TOOLS, "POST", "/v1/redact", route_scan, HTTP_NEED_SCAN, "redact", STREAM | NAMED_405 },
        { TOOLS, "POST", "/v1/introspect", api_introspect, HTTP_NEED_TOKEN_HOLDER, "introspect" },
        { TOOLS, "POST", "/v1/revoke", api_revoke_own, HTTP_NEED_TOKEN_HOLDER, "revoke" },
        { TOOLS, "GET", "/v1/approvals/{id...}", api_approval_poll, HTTP_NEED_REQUESTER, "approval.collect",
          .also = "approval.poll" },
        { TOOLS, NULL, "/v1/admin/{any...}", admin_elsewhere, HTTP_NEED_NONE, NULL, UNLISTED },

        /* admin.sock: every request passes api_admin_gate first (an admin;
         * a write's intent recorded before it takes effect). */
        { ADMIN, "GET", "/v1/admin/secrets", api_list_w, HTTP_NEED_ADMIN, "admin.list" },
        { ADMIN, "POST", "/v1/admin/secrets", api_put_w, HTTP_NEED_ADMIN, "admin.put" },
        { ADMIN, "POST", "/v1/admin/rotate", api_rotate_secret_w, HTTP_NEED_ADMIN, "admin.rotate" },
        { ADMIN, "GET", "/v1/admin/versions/{name}", api_versions_w, HTTP_NEED_ADMIN, "admin.versions" },
        { ADMIN, "POST", "/v1/admin/versions/{name}/{version...}", api_version_action_w, HTTP_NEED_ADMIN,
          "admin.version", .seg_max = CB_NAME_MAX, .seg_too_long = "secret name too long",
          .also = "admin.version.enable admin.version.disable admin.version.destroy" },
        { ADMIN, "GET", "/v1/admin/secrets/{name...}", api_show_w, HTTP_NEED_ADMIN, "admin.show" },
        { ADMIN, "DELETE", "/v1/admin/secrets/{name...}", api_delete_w, HTTP_NEED_ADMIN, "admin.delete" },
        { ADMIN, "POST", "/v1/scan", route_scan, HTTP_NEED_ADMIN, "scan", STREAM | NAMED_405 },
        { ADMIN, "POST", "/v1/redact", route_scan, HTTP_NEED_ADMIN, "redact", STREAM | NAMED_405 },
        { ADMIN, "POST", "/v1/admin/revoke", api_revoke_w, HTTP_NEED_ADMIN, "admin.revoke" },
        { ADMIN, "GET", "/metrics", api_metrics_w, HTTP_NEED_ADMIN, "admin.metrics" },
        { ADMIN, "GET", "/v1/admin/metrics", api_metrics_w, HTTP_NEED_ADMIN, "admin.metrics" },
        { ADMIN, "GET", "/v1/admin/status", api_status_w, HTTP_NEED_ADMIN, "admin.status" },
        { ADMIN, "POST", "/v1/admin/policy/reload", api_reload, HTTP_NEED_ADMIN, "admin.policy.reload" },
        { ADMIN, "GET", "/v1/admin/approvals", api_approvals_list, HTTP_NEED_ADMIN, "admin.approvals", NAMED_405 },
        { ADMIN, "POST", "/v1/admin/approvals/{id}/approve", api_approve, HTTP_NEED_ADMIN, "admin.approve",
          NAMED_405 },
        { ADMIN, "POST", "/v1/admin/approvals/{id}/deny", api_deny, HTTP_NEED_ADMIN, "admin.deny", NAMED_405 },
        { ADMIN, NULL, "/v1/admin/approvals/{any...}", api_approvals_unknown, HTTP_NEED_ADMIN, "admin.approvals",
          UNLISTED },
        { ADMIN, "GET", "/v1/admin/pubkey", api_pubkey_w, HTTP_NEED_ADMIN, "admin.pubkey" },
        { ADMIN, "GET", "/v1/admin/pubkeys", api_pubkeys_w, HTTP_NEED_ADMIN, "admin.pubkeys" },
        { ADMIN, "POST", "/v1/admin/pubkey/rotate", api_pubkey_rotate_w, HTTP_NEED_ADMIN, "admin.pubkey.rotate" },
        { ADMIN, "POST", "/v1/admin/pubkey/retire", api_pubkey_retire_w, HTTP_NEED_ADMIN, "admin.pubkey.retire" },
        { ADMIN, "POST", "/v1/admin/import", api_import_w, HTTP_NEED_ADMIN, "admin.import" },
        /* Reads only: no intent record first, whatever the method. */
        { ADMIN, "POST", "/v1/admin/audit/idhash", api_audit_idhash, HTTP_NEED_ADMIN, "admin.audit.idhash",
          NAMED_405 | READ_ONLY },
        { ADMIN, "POST", "/v1/admin/audit/verify", api_audit_verify, HTTP_NEED_ADMIN, "audit.verify",
          NAMED_405 | READ_ONLY },
        { ADMIN, NULL, "/v1/admin/audit/{any...}", no_route, HTTP_NEED_ADMIN, "audit.verify", READ_ONLY | UNLISTED },
        { ADMIN, NULL, "/v1/health", admin_health, HTTP_NEED_ADMIN, "health", PROBE },
};

int api_routes_register(void) {
        return http_routes_set(routes, sizeof(routes) / sizeof(routes[0]), api_admin_gate);
}
