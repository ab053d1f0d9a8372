/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The route handlers of api/, for its table (api_routes.c; route.h says
 * how a request reaches one).  Each runs on a serving thread, the caller
 * identified.  A tools.sock route runs under no daemon-wide lock: it touches
 * only what guards itself -- rq->policy, the token table, the rate limits,
 * the store's read side, the leak marks, the approval table, the proxy's
 * jobs, audit -- each lock held for memory work.  An admin.sock route runs
 * under the admin lock (cbd.admin_lock), and those that read-check-write
 * the store under rotate_lock() too (api_routes.c STORE_WORK).  Each
 * answers through http/'s reply_*.
 * Internal to api/.
 */
#pragma once

#include <stdbool.h>

#include <jansson.h>

#include "route.h"

struct request;

/* tools.sock (api_tool.c) */
int api_token(struct request *rq, const http_args *args);
int api_redeem(struct request *rq, const http_args *args);
int api_introspect(struct request *rq, const http_args *args);
int api_revoke_own(struct request *rq, const http_args *args);
/* Whether name has a version that is not destroyed (a deleted secret's
 * destroyed versions stay listed): what a token may be issued for.  Takes
 * the store's read side itself. */
bool api_secret_live(const char *name);
/* tools.sock, approvals (api_approval.c) */
int api_approval_poll(struct request *rq, const http_args *args);

/* admin.sock (api_admin.c) */
bool api_admin_gate(struct request *rq, const http_route *path, int *ret);
/* The body's JSON object (only `fields` allowed) with a valid "name", put
 * in rq->secret: 0, or -1 when the request was answered (400). */
int api_named_body(struct request *rq, const char *const *fields, json_t **ret_o, const char **ret_name);
int api_put(struct request *rq, const http_args *args);
int api_list(struct request *rq, const http_args *args);
int api_show(struct request *rq, const http_args *args);
int api_delete(struct request *rq, const http_args *args);
int api_revoke(struct request *rq, const http_args *args);
int api_reload(struct request *rq, const http_args *args);
int api_status(struct request *rq, const http_args *args);
int api_metrics(struct request *rq, const http_args *args);
int api_audit_idhash(struct request *rq, const http_args *args);
int api_audit_verify(struct request *rq, const http_args *args);
/* admin.sock, approvals (api_approval.c) */
int api_approvals_list(struct request *rq, const http_args *args);
int api_approve(struct request *rq, const http_args *args);
int api_deny(struct request *rq, const http_args *args);
int api_approvals_unknown(struct request *rq, const http_args *args);
/* admin.sock, rotation (api_rotate.c) */
int api_rotate_secret(struct request *rq, const http_args *args);
int api_versions(struct request *rq, const http_args *args);
int api_version_action(struct request *rq, const http_args *args);
/* admin.sock, provisioning (api_provision.c) */
int api_pubkey(struct request *rq, const http_args *args);
int api_pubkeys(struct request *rq, const http_args *args);
int api_pubkey_rotate(struct request *rq, const http_args *args);
int api_pubkey_retire(struct request *rq, const http_args *args);
int api_import(struct request *rq, const http_args *args);
