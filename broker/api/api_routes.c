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
#define UNLOCKED HTTP_ROUTE_UNLOCKED

static const http_route routes[] = {
        /* tools.sock (and the loopback TCP listener: the proxy and health only).
         * The injection proxy: CONNECT (refused there), /v1/proxy/SECRET/PATH and
         * absolute-form targets; decided on the headers, the body streams. */
        { TOOLS | TCP, "CONNECT", NULL, route_proxy, HTTP_NEED_TOKEN_PROXY, "proxy", STREAM | SDK },
        { TOOLS | TCP, NULL, "/v1/proxy/{secret_path...}", route_proxy, HTTP_NEED_TOKEN_PROXY, "proxy", STREAM | SDK },
        { TOOLS | TCP, NULL, "http://{authority_path...}", route_proxy, HTTP_NEED_TOKEN_PROXY, "proxy",
          STREAM | SDK | NOCASE },
        { TOOLS | TCP, NULL, "https://{authority_path...}", route_proxy, HTTP_NEED_TOKEN_PROXY, "proxy",
          STREAM | SDK | NOCASE },
        { TOOLS | TCP, "GET", "/v1/health", tool_health, HTTP_NEED_NONE, "health", NAMED_405 | PROBE | UNLOCKED },
        { TOOLS, "POST", "/v1/token", api_token, HTTP_NEED_GRANT, "token", UNLOCKED },
        { TOOLS, "POST", "/v1/redeem", api_redeem, HTTP_NEED_TOKEN_REDEEM, "redeem" },
        { TOOLS, "POST", "/v1/scan", route_scan, HTTP_NEED_SCAN, "scan", STREAM | NAMED_405 },
        { TOOLS, "POST", "/v1/redact", route_scan, HTTP_NEED_SCAN, "redact", STREAM | NAMED_405 },
        { TOOLS, "POST", "/v1/introspect", api_introspect, HTTP_NEED_TOKEN_HOLDER, "introspect", UNLOCKED },
        { TOOLS, "POST", "/v1/revoke", api_revoke_own, HTTP_NEED_TOKEN_HOLDER, "revoke" },
        { TOOLS, "GET", "/v1/approvals/{id...}", api_approval_poll, HTTP_NEED_REQUESTER, "approval.collect",
          .also = "approval.poll" },
        { TOOLS, NULL, "/v1/admin/{any...}", admin_elsewhere, HTTP_NEED_NONE, NULL, UNLISTED },

        /* admin.sock: every request passes api_admin_gate first (an admin;
         * a write's intent recorded before it takes effect). */
        { ADMIN, "GET", "/v1/admin/secrets", api_list, HTTP_NEED_ADMIN, "admin.list" },
        { ADMIN, "POST", "/v1/admin/secrets", api_put, HTTP_NEED_ADMIN, "admin.put" },
        { ADMIN, "POST", "/v1/admin/rotate", api_rotate_secret, HTTP_NEED_ADMIN, "admin.rotate" },
        { ADMIN, "GET", "/v1/admin/versions/{name}", api_versions, HTTP_NEED_ADMIN, "admin.versions" },
        { ADMIN, "POST", "/v1/admin/versions/{name}/{version...}", api_version_action, HTTP_NEED_ADMIN,
          "admin.version", .seg_max = CB_NAME_MAX, .seg_too_long = "secret name too long",
          .also = "admin.version.enable admin.version.disable admin.version.destroy" },
        { ADMIN, "GET", "/v1/admin/secrets/{name...}", api_show, HTTP_NEED_ADMIN, "admin.show" },
        { ADMIN, "DELETE", "/v1/admin/secrets/{name...}", api_delete, HTTP_NEED_ADMIN, "admin.delete" },
        { ADMIN, "POST", "/v1/scan", route_scan, HTTP_NEED_ADMIN, "scan", STREAM | NAMED_405 },
        { ADMIN, "POST", "/v1/redact", route_scan, HTTP_NEED_ADMIN, "redact", STREAM | NAMED_405 },
        { ADMIN, "POST", "/v1/admin/revoke", api_revoke, HTTP_NEED_ADMIN, "admin.revoke" },
        { ADMIN, "GET", "/metrics", api_metrics, HTTP_NEED_ADMIN, "admin.metrics" },
        { ADMIN, "GET", "/v1/admin/metrics", api_metrics, HTTP_NEED_ADMIN, "admin.metrics" },
        { ADMIN, "GET", "/v1/admin/status", api_status, HTTP_NEED_ADMIN, "admin.status" },
        { ADMIN, "POST", "/v1/admin/policy/reload", api_reload, HTTP_NEED_ADMIN, "admin.policy.reload" },
        { ADMIN, "GET", "/v1/admin/approvals", api_approvals_list, HTTP_NEED_ADMIN, "admin.approvals", NAMED_405 },
        { ADMIN, "POST", "/v1/admin/approvals/{id}/approve", api_approve, HTTP_NEED_ADMIN, "admin.approve",
          NAMED_405 },
        { ADMIN, "POST", "/v1/admin/approvals/{id}/deny", api_deny, HTTP_NEED_ADMIN, "admin.deny", NAMED_405 },
        { ADMIN, NULL, "/v1/admin/approvals/{any...}", api_approvals_unknown, HTTP_NEED_ADMIN, "admin.approvals",
          UNLISTED },
        { ADMIN, "GET", "/v1/admin/pubkey", api_pubkey, HTTP_NEED_ADMIN, "admin.pubkey" },
        { ADMIN, "GET", "/v1/admin/pubkeys", api_pubkeys, HTTP_NEED_ADMIN, "admin.pubkeys" },
        { ADMIN, "POST", "/v1/admin/pubkey/rotate", api_pubkey_rotate, HTTP_NEED_ADMIN, "admin.pubkey.rotate" },
        { ADMIN, "POST", "/v1/admin/pubkey/retire", api_pubkey_retire, HTTP_NEED_ADMIN, "admin.pubkey.retire" },
        { ADMIN, "POST", "/v1/admin/import", api_import, HTTP_NEED_ADMIN, "admin.import" },
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
