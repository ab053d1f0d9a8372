/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A request's lifecycle (split from server.c, issue 18): the MHD access
 * handler (handle: headers, body intake, the resume after a suspension),
 * the caller identified (sender, identity, the executable's hash off the
 * serving thread), the route run (admin.sock's under the admin lock),
 * and the request freed when MHD completes it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>
#include <sodium.h>

#include "audit.h"
#include "daemon.h"
#include "error.h"
#include "scan.h"
#include "sender.h"
#include "route.h"
#include "sandbox.h"
#include "server_internal.h"

enum { HASH_NONE = 0, HASH_WAITING, HASH_DONE };

static enum MHD_Result dispatch(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                request *rq);

/* Did a process other than the one the request was judged as write some
 * of the body streaming in now (proxy, scan: decided on the headers)?  The
 * rest of the request must not ride on that decision. */
static bool body_mixed(struct MHD_Connection *conn) {
        const conn_ctx *cc = conn_ctx_of(conn);

        if (!cc || cc->fd < 0)
                return false; /* TCP: no per-message credentials; tokens are the credential there */
        if (cc->snd.other_pid == 0 && cc->snd.err == 0)
                return false;
        return true;
}

static enum MHD_Result handle_body(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                   const char *upload_data, size_t *upload_data_size, request *rq);

static enum MHD_Result handle_inner(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                    const char *version, const char *upload_data, size_t *upload_data_size,
                                    void **con_cls) {
        request *rq = *con_cls;

        if (!rq || !rq->started) {
                const conn_ctx *cc = conn_ctx_of(conn);
                if (cc && cc->kind != CTX_COUNTED)
                        return MHD_NO; /* answered 429 or 503 in conn_notify() */
                if (!rq && !(rq = calloc(1, sizeof(*rq))))
                        return MHD_NO;
                rq->peer.pidfd = -1;
                rq->started = true;
                rq->http10 = version && strcmp(version, "HTTP/1.0") == 0;
                *con_cls = rq;
                /* A proxied request is decided on its headers, before any of
                 * its body is read: the body then streams to the upstream.
                 * So is a scan: its body streams through the matcher.  The
                 * path decides (a wrong method is refused on the headers
                 * too); over TCP, whatever tools.sock would stream (the
                 * proxy, and a scan target: refused there, on its headers). */
                const http_route *path;
                http_args args;
                (void)http_route_find(cls == &admin_marker ? HTTP_ADMIN : HTTP_TOOLS, method, url, &args, &path);
                rq->first_call = path && (path->flags & HTTP_ROUTE_STREAM);
                if (rq->first_call)
                        return dispatch(cls, conn, url, method, rq);
                return MHD_YES;
        }
        if (__atomic_load_n(&rq->hash_state, __ATOMIC_ACQUIRE) == HASH_DONE && rq->first_call) {
                /* Resumed after being suspended on its headers: decide
                 * now.  libmicrohttpd may pass body bytes with this very
                 * call: they go on to the paths below (streamed, or
                 * dropped when refused), never left unconsumed. */
                /* Before any body moves; not suspended with body bytes in
                 * hand (waits here, at most the deadline). */
                enum MHD_Result d = flush(rq, dispatch(cls, conn, url, method, rq), false);
                if (d != MHD_YES || !*upload_data_size)
                        return d;
        }
        return handle_body(cls, conn, url, method, upload_data, upload_data_size, rq);
}

/* A started request's body bytes (or its end): streamed to the proxy or
 * the matcher, dropped after a refusal on the headers, or kept. */
static enum MHD_Result handle_body(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                   const char *upload_data, size_t *upload_data_size, request *rq) {
        if ((rq->proxy || rq->scan) && *upload_data_size && body_mixed(conn))
                return MHD_NO; /* a streamed body from another writer: the connection is closed, the request aborted */
        if (rq->proxy) {
                if (*upload_data_size)
                        return proxy_feed(rq, upload_data, upload_data_size) == MHD_YES ? MHD_YES : MHD_NO;
                proxy_body_done(rq);
                return proxy_continue(rq) == MHD_YES ? MHD_YES : MHD_NO;
        }
        if (rq->scan && !rq->answered) {
                if (*upload_data_size)
                        return scan_feed(rq, upload_data, upload_data_size) == MHD_YES ? MHD_YES : MHD_NO;
                return scan_finish(rq) == MHD_YES ? MHD_YES : MHD_NO;
        }
        if (rq->answered) {
                *upload_data_size = 0; /* refused on its headers: the body is dropped */
                return MHD_YES;
        }
        if (*upload_data_size) {
                if (!rq->too_large && rq->body_len + *upload_data_size <= CB_BODY_MAX) {
                        size_t need = rq->body_len + *upload_data_size + 1;
                        if (need > rq->body_cap) {
                                size_t nc = rq->body_cap ? rq->body_cap : 4096;
                                while (nc < need)
                                        nc *= 2;
                                unsigned char *nb = malloc(nc);
                                if (!nb)
                                        return MHD_NO;
                                if (rq->body) {
                                        memcpy(nb, rq->body, rq->body_len);
                                        wipe_free(rq->body, rq->body_cap);
                                }
                                rq->body = nb;
                                rq->body_cap = nc;
                        }
                        memcpy(rq->body + rq->body_len, upload_data, *upload_data_size);
                        rq->body_len += *upload_data_size;
                        rq->body[rq->body_len] = 0;
                } else {
                        rq->too_large = true;
                }
                *upload_data_size = 0;
                return MHD_YES;
        }
        return dispatch(cls, conn, url, method, rq);
}

/* Every path of a request runs here and ends outside the admin lock, where its
 * answer waits for its records (flush). */
enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size,
                              void **con_cls) {
        request *rq = *con_cls;
        enum MHD_Result ret;

        if (rq && rq->audit_suspended) {
                /* Woken: its records are written, failed or late.  MHD
                 * calls again in the state it was suspended in (the
                 * headers of a proxied request, or a whole request): the
                 * answer or the hand-over is all that is due now. */
                rq->audit_suspended = false;
                ret = flush(rq, MHD_YES, true);
                /* Body bytes may come with this very call (a request
                 * decided on its headers): streamed on, or dropped after a
                 * refusal -- never left unconsumed, which makes
                 * libmicrohttpd drop the connection, answer unsent. */
                if (ret == MHD_YES && !rq->audit_suspended && *upload_data_size)
                        ret = flush(rq, handle_body(cls, conn, url, method, upload_data, upload_data_size, rq), true);
                return ret;
        }
        ret = handle_inner(cls, conn, url, method, version, upload_data, upload_data_size, con_cls);
        return flush(*con_cls, ret, true);
}

/* The one process that wrote every byte read on this connection so far,
 * into *ret; -EPERM when there were several (a connection handed to, or
 * shared with, another process: each process must open its own). */
static int sender_of(const cb_sender *s, struct ucred *ret) {
        if (s->err == -ENOMSG)
                return cb_error_set(-EPROTO, "request bytes arrived without their sender's credentials");
        if (s->err < 0)
                return cb_error_set(-EPROTO, "request bytes arrived with truncated control data (descriptors "
                                             "sent to the broker?)");
        if (s->reads == 0)
                return cb_error_set(-EPROTO, "no request bytes were read with credentials");
        if (s->other_pid) {
                bool gone = s->pidfd >= 0 && !cb_peer_alive(&(cb_peer){ .pidfd = s->pidfd });

                return cb_error_set(-EPERM, "the bytes on this connection were written by more than one process "
                                            "(pid %d uid %u%s, then pid %d uid %u): a connection serves only the "
                                            "process that writes on it; each process must open its own",
                                    (int)s->first.pid, (unsigned)s->first.uid, gone ? ", which has exited" : "",
                                    (int)s->other_pid, (unsigned)s->other_uid);
        }
        *ret = s->first;
        return 0;
}

static int identify(request *rq, const conn_ctx *cc, const struct ucred *cred, unsigned need) {
        unsigned what;

        /* Never hashed here: hash_step() does that, off this thread. */
        if (rq->admin_socket)
                what = cb_policy_uses_cgroup(rq->policy) ? CB_PEER_CGROUP : 0;
        else
                what = !(need & CB_NEED_SELECTED) ? CB_PEER_SKIP_EXE : (need & CB_NEED_CGROUP) ? CB_PEER_CGROUP : 0;
        return cb_peer_identify_pidfd(cred, cc->snd.pidfd, cc->snd.pidfd_ino, exe_cache, what | CB_PEER_SKIP_HASH,
                                      &rq->peer);
}

static bool stat_key_eq(const struct stat *a, const struct stat *b) {
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
               a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* A hash worker's answer (peer_hash.c, on its thread). */
static void hash_done(void *ud, int r, const unsigned char sha[32], const char *err) {
        request *rq = ud;

        rq->hash_r = r;
        if (sha)
                memcpy(rq->hash_sha, sha, 32);
        snprintf(rq->hash_err, sizeof(rq->hash_err), "%s", err ? err : "");
        __atomic_store_n(&rq->hash_state, HASH_DONE, __ATOMIC_RELEASE);
        /* Resume only a suspended connection: if the handler has not
         * suspended it yet, it sees bit 2 and resumes it itself. */
        if (__atomic_fetch_or(&rq->hash_sync, 2, __ATOMIC_ACQ_REL) & 1)
                MHD_resume_connection(rq->conn);
}

/* The executable's hash for rq->peer (identified with CB_PEER_SKIP_HASH):
 * from the cache, from the worker that just ran for this request, or
 * else queued for a worker (1: the connection is suspended; this thread
 * goes on serving others).  may_wait false: a miss is refused instead. */
static int hash_step(request *rq, struct MHD_Connection *conn, bool may_wait) {
        int state = __atomic_load_n(&rq->hash_state, __ATOMIC_ACQUIRE), r;

        if (state == HASH_DONE) {
                rq->hash_state = HASH_NONE;
                if (eof_release(rq))
                        rq->close = true; /* half-closed while suspended: the answer ends the connection */
                if (rq->hash_r < 0)
                        return cb_error_set(rq->hash_r, "%s", rq->hash_err);
                if (!stat_key_eq(&rq->hash_st, &rq->peer.exe_st))
                        return cb_error_set(-EAGAIN, "peer pid %d: its executable changed while it was being "
                                                     "hashed; retry", (int)rq->peer.pid);
                memcpy(rq->peer.exe_sha256, rq->hash_sha, 32);
        } else if (!cb_exe_cache_get(exe_cache, &rq->peer.exe_st, rq->peer.exe_sha256)) {
                if (!may_wait)
                        return cb_error_set(-EAGAIN, "peer pid %d: its executable is not hashed yet; retry",
                                            (int)rq->peer.pid);
                rq->hash_st = rq->peer.exe_st;
                rq->conn = conn;
                __atomic_store_n(&rq->hash_state, HASH_WAITING, __ATOMIC_RELAXED);
                __atomic_store_n(&rq->hash_sync, 0, __ATOMIC_RELAXED);
                r = cb_exe_hash_submit(exe_cache, &rq->peer, hash_done, rq);
                if (r < 0) {
                        rq->hash_state = HASH_NONE;
                        return r;
                }
                cb_peer_done(&rq->peer);
                eof_hold(rq);
                /* The worker may already be done (a resume of a connection
                 * not yet suspended would be lost): whichever of the two
                 * comes second resumes it (hash_done). */
                MHD_suspend_connection(conn);
                if (__atomic_fetch_or(&rq->hash_sync, 1, __ATOMIC_ACQ_REL) & 2)
                        MHD_resume_connection(conn);
                return 1;
        }
        sodium_bin2hex(rq->peer.exe_sha256_hex, sizeof(rq->peer.exe_sha256_hex), rq->peer.exe_sha256, 32);
        rq->peer.hash_known = true;
        return 0;
}

/* Run the request's route (route.h), the caller identified, under
 * the admin lock on admin.sock: admin.sock's gate first, then the path's checks, the method,
 * the handler.  r, path, args: http_route_find's answer. */
static int run_route(request *rq, unsigned sock, const http_route *r, const http_route *path, const http_args *args) {
        http_gate gate = http_routes_admin_gate();
        char use[64];
        int ret;

        if (sock == HTTP_ADMIN && (!gate || gate(rq, path, &ret)))
                return gate ? ret : reply_error(rq, 503, "unavailable", "no routes");
        if (path && path->seg_max && args->seg_len > path->seg_max)
                return reply_error(rq, 400, "bad_request", "%s", path->seg_too_long);
        if (r) {
                rq->route = r->audit;
                return r->handler(rq, args);
        }
        if (path) {
                if (path->flags & HTTP_ROUTE_NAMED_405)
                        rq->route = path->audit;
                http_route_methods(sock, path, use, sizeof(use));
                return reply_error(rq, 405, "method_not_allowed", "%s", use);
        }
        if (sock == HTTP_TCP)
                return reply_error(rq, 404, "not_found", "over TCP only the proxy and /v1/health are served; use "
                                                         "tools.sock");
        return reply_error(rq, 404, "not_found", "no route %.64s", rq->url);
}

/* Identify the caller and run the route. */
static enum MHD_Result dispatch(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                request *rq) {
        /* A sandbox's listener (sandbox.h) is served as the TCP listener
         * is, its caller being the sandbox's launching uid. */
        cb_sandbox *sbx = cls == &admin_marker || cls == &tcp_marker ? NULL : cb_sandbox_of(cls);
        unsigned sock = cls == &admin_marker ? HTTP_ADMIN : cls == &tcp_marker || sbx ? HTTP_TCP : HTTP_TOOLS;
        const http_route *route, *path, *tool_path;
        http_args args, tool_args;
        int ret;

        rq->conn = conn;
        rq->url = url;
        rq->method = method;
        rq->admin_socket = sock == HTTP_ADMIN;
        rq->tcp = sock == HTTP_TCP;
        /* The table is fixed: looked up outside the lock.  Refusals of what
         * tools.sock would proxy come in the SDKs' shape, on every socket. */
        route = http_route_find(sock, method, url, &args, &path);
        if (sock == HTTP_TOOLS)
                tool_path = path;
        else
                (void)http_route_find(HTTP_TOOLS, method, url, &tool_args, &tool_path);
        rq->sdk_errors = tool_path && (tool_path->flags & HTTP_ROUTE_SDK_ERRORS);
        /* A liveness probe decides nothing: its record is written when it
         * can be, never waited for, and a failed audit log does not refuse
         * it. */
        bool probe = path && (path->flags & HTTP_ROUTE_PROBE) && strcmp(method, "GET") == 0;
        rq->sandbox = sbx ? sbx->id : NULL;
        rq->sandbox_ref = sbx;
        /* The policy this request is decided under, from its first call to
         * its end (a resumed request keeps it; completed() releases it):
         * a reload meanwhile neither waits for it nor changes its mind. */
        if (!rq->policy)
                rq->policy = cb_policy_acquire(srv.policy);
        /* The admin lock (srv.admin_lock) is taken on admin.sock only:
         * admin routes serialise among themselves and with the sweeps (the
         * gate's audit_intent drops it to wait).  No tools.sock or TCP
         * route takes it: each runs on the state it touches under that
         * state's own lock, held for memory work only (architecture.md,
         * "Locks"). */
        pthread_mutex_t *lk = sock == HTTP_ADMIN ? srv.admin_lock : NULL;
        if (rq->tcp) {
                /* Over TCP the uid comes from sock_diag (looked up once, at
                 * accept: a socket's owner never changes); there is no pid
                 * or executable, so only uid-bound proxy tokens work here. */
                const conn_ctx *cc = conn_ctx_of(conn);
                /* A sandbox's request: its whole head through the outbound
                 * leak guard before anything is decided or recorded
                 * (server_leak.c; outside the lock). */
                server_door door = { .found = false };
                if (sbx)
                        server_sandbox_door(rq, conn, &door);
                if (lk)
                        pthread_mutex_lock(lk);
                if (!cc) {
                        ret = reply_error(rq, 403, "forbidden", "TCP caller not identified (sock_diag found no "
                                                                "owner for its socket)");
                } else {
                        rq->peer.uid = cc->cred.uid;
                        rq->peer.gid = (gid_t)-1;
                        rq->peer.pid = 0;
                        rq->have_peer = true;
                        rq->acct_uid = cc->acct;
                        rq->audit_optional = probe;
                        if (rq->audit_optional ? audit_failed(NULL, 0) : !audit_available())
                                ret = reply_audit_refused(rq);
                        else if (door.found || door.unavailable)
                                ret = server_sandbox_door_refuse(rq, &door);
                        else if (rq->too_large)
                                ret = reply_error(rq, 413, "payload_too_large", "body larger than %d bytes",
                                                  CB_BODY_MAX);
                        else
                                ret = run_route(rq, sock, route, path, &args);
                }
                if (lk)
                        pthread_mutex_unlock(lk);
                return ret == MHD_YES ? MHD_YES : MHD_NO;
        }
        /* The caller is the process that wrote the request's bytes
         * (sender.c), with its current credentials; identification reads
         * /proc and may hash a file, outside the lock, and only as much as
         * the policy needs for that uid (lazy identity). */
        conn_ctx *cc = conn_ctx_of(conn);
        struct ucred cred;
        unsigned need = ~0u;
        int r, rechecks = 0;

again:
        need = ~0u;
        if (!cc)
                r = cb_error_set(-EPROTO, "its credentials (SO_PEERCRED) could not be read when it connected");
        else
                r = sender_of(&cc->snd, &cred);
        /* The writer's pid is its own claim (cb_peer_writer_trusted): one
         * stat of /proc/PID/ns/pid for a writer in our pid namespace, the
         * first time; then known under its pidfd's inode (one fstat per
         * connection). */
        if (r == 0 && cc->snd.pidfd >= 0 && !cc->snd.pidfd_ino)
                cc->snd.pidfd_ino = cb_pidfd_ino(cc->snd.pidfd);
        if (r == 0)
                r = cb_peer_writer_trusted(cred.pid, cc->snd.pidfd, cc->snd.pidfd_ino, cc->cred.pid);
        if (r == 0 && !rq->admin_socket)
                need = cb_policy_uid_needs(rq->policy, cred.uid, cred.gid, NULL);
        r = r < 0 ? r : identify(rq, cc, &cred, need);
        if (r == 0 && (rq->admin_socket || (need & CB_NEED_SELECTED)) && (r = hash_step(rq, conn, true)) == 1)
                return MHD_YES; /* suspended until a worker has hashed its executable */
        /* Identification may have waited (a hash the caller can make as
         * long as it likes): a reload answered meanwhile must hold for
         * this request.  So the route is decided under the policy in force
         * now, not the one taken at the request's start; under a newer one
         * the caller is identified again (it may ask for more; a file
         * changed in the last seconds is not cached and is hashed again,
         * charged to the caller's hash budget).  Identification and the route then read one
         * snapshot, and what is left between this check and the decision
         * is memory work, never a wait (red team rt6 F2). */
        if (r == 0) {
                const cb_policy *now = cb_policy_acquire(srv.policy);
                if (now != rq->policy) {
                        cb_policy_unref(rq->policy);
                        rq->policy = now;
                        if (++rechecks <= 3)
                                goto again;
                        r = cb_error_set(-EAGAIN, "the policy was reloaded repeatedly while the caller was identified");
                } else {
                        cb_policy_unref(now);
                }
        }
        if (lk)
                pthread_mutex_lock(lk);
        if (r == -EBUSY || r == -EAGAIN) {
                ret = reply_error(rq, 503, "identity_busy", "caller not identified yet: %s", cb_error_last());
        } else if (r < 0) {
                ret = reply_error(rq, 403, "forbidden", "caller not identified: %s", cb_error_last());
        } else {
                rq->have_peer = true;
                /* The writer's user namespace owner when the writer is not
                 * the connector (the connector's was charged at accept). */
                rq->acct_uid = cred.pid == cc->cred.pid ? cc->acct : cb_peer_account_uid(cred.pid, cred.uid);
                rq->audit_optional = probe;
                if (rq->audit_optional ? audit_failed(NULL, 0) : !audit_available()) /* fail closed: refused before anything is done */
                        ret = reply_audit_refused(rq);
                else if (rq->too_large)
                        ret = reply_error(rq, 413, "payload_too_large", "body larger than %d bytes", CB_BODY_MAX);
                else
                        ret = run_route(rq, sock, route, path, &args);
        }
        if (lk)
                pthread_mutex_unlock(lk);
        return ret == MHD_YES ? MHD_YES : MHD_NO;
}

void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
        request *rq = *con_cls;

        (void)cls, (void)conn, (void)toe;
        if (!rq)
                return;
        flush_drop(rq, false); /* never left by flush(); a closed connection's, defensively */
        if (rq->body)
                wipe_free(rq->body, rq->body_cap);
        free(rq->raw_target);
        proxy_request_done(rq);
        scan_request_done(rq);
        cb_peer_done(&rq->peer);
        cb_policy_unref(rq->policy);
        free(rq);
        *con_cls = NULL;
}
