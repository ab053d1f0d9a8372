/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to http/ (issue 18): what the files of the server share.
 *   server.c          the servers (start, stop, sandbox listeners), http/'s state
 *   server_conn.c     a connection's context, the connection caps, refusals
 *   server_request.c  a request's lifecycle: handle, identify, dispatch, completed
 *   server_reply.c    reply_*, the answer held for its audit records (flush)
 * Nothing outside http/ includes this (tests/arch-check.sh).
 */
#ifndef CB_HTTP_SERVER_INTERNAL_H
#define CB_HTTP_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "daemon.h"
#include "sender.h"

/* A connection's socket_context, set up in conn_notify() at accept and
 * freed when MHD closes the connection; NULL when the caller's credentials
 * could not be read (its requests are refused as not identified). */
enum { CTX_COUNTED = 0, CTX_REFUSED = 1, CTX_DROPPED = 2, CTX_FULL = 3 };
typedef struct conn_ctx {
        struct ucred cred; /* SO_PEERCRED (fixed at connect()); over TCP the uid
                            * from sock_diag only, pid 0, gid -1 */
        uid_t acct;        /* the uid its costs are charged to (cb_peer_account_uid) */
        int kind;          /* CTX_*: how the per-uid cap counted it */
        int fd;            /* tracked by sender.c when >= 0 (Unix sockets) */
        cb_sender snd;     /* who wrote the bytes read so far (sender.h) */
} conn_ctx;

/* server.c: the servers' cls (tools.sock has NULL), the executables' hash
 * cache, what main.c hands us (server_attach). */
extern int admin_marker, tcp_marker;
extern cb_exe_cache *exe_cache;
extern server_env srv;

/* server_conn.c */
conn_ctx *conn_ctx_of(struct MHD_Connection *conn);
void conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                 enum MHD_ConnectionNotificationCode code);

/* server_request.c */
enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                       const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls);
void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe);

/* server_leak.c: the outbound leak guard at the door of a sandbox's
 * request.  server_sandbox_door scans its whole head (outside the request
 * lock; it takes srv.lock to get the matcher); server_sandbox_door_refuse
 * answers a sighting (or a guard that cannot run) under the request's
 * lock, as any refusal. */
typedef struct server_door {
        bool found, unavailable;
        char name[CB_NAME_MAX + 1];
        const char *form;  /* cb_scan_kind_name */
        const char *where; /* "method", "target", "header name", "header value" */
        unsigned header;   /* for a header: its position, 1-based */
        char hname[65];    /* a value's header, when its name alone carries nothing ("" else) */
} server_door;
void server_sandbox_door(request *rq, struct MHD_Connection *conn, server_door *out);
int server_sandbox_door_refuse(request *rq, const server_door *d);

/* server_reply.c */
void wipe_free(void *p, size_t n);
void eof_hold(request *rq);
bool eof_release(request *rq);
void flush_drop(request *rq, bool force);
enum MHD_Result flush(request *rq, enum MHD_Result ret, bool may_suspend);

#endif
