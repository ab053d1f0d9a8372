/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libcredbroker: the client side of credbroker's tool API.
 *
 * Talks HTTP/1.1 + JSON to credbrokerd over its Unix socket
 * ($CREDBROKER_SOCKET, default /run/credbroker/tools.sock).  Every function
 * returns 0 or a negative errno; on failure cb_client_error() says why in
 * one line (the broker's message when it refused).  Out-parameters are
 * written only on success.  Secret values come back in a cb_secret whose
 * free wipes them.  Handles are not thread safe: one per thread.
 *
 * Process-wide side effects of the first cb_client_new*(): libsodium is
 * initialised; jansson gets wipe-on-free allocators if it still uses plain
 * malloc/free; libcurl is initialised with wipe-on-free allocators unless
 * the program initialised it already.  Both are compatible with plain
 * malloc'd memory, so a program may use jansson and curl before and after.
 */
#ifndef CREDBROKER_H
#define CREDBROKER_H

#include <errno.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CB_EXPORT __attribute__((visibility("default")))
#define CB_WUR __attribute__((warn_unused_result))
#else
#define CB_EXPORT
#define CB_WUR
#endif

#define CB_DEFAULT_TOOL_SOCKET  "/run/credbroker/tools.sock"
#define CB_DEFAULT_ADMIN_SOCKET "/run/credbroker/admin.sock"

typedef struct cb_client cb_client;
typedef struct cb_secret cb_secret;

/* Error codes beyond errno that the broker's refusals map to.  The broker's
 * error codes (broker/API.md) map as: bad_request -EINVAL, unauthorized
 * CB_ERR_TOKEN, forbidden CB_ERR_DENIED, not_found -ENOENT,
 * method_not_allowed -EOPNOTSUPP, expired CB_ERR_EXPIRED, used_up
 * CB_ERR_USED_UP, payload_too_large -EMSGSIZE, rate_limited
 * CB_ERR_RATE_LIMITED, internal -EIO, unavailable CB_ERR_UNAVAILABLE.
 * Local failures: CB_ERR_UNREACHABLE (no broker on the socket),
 * CB_ERR_DENIED (the socket's mode keeps us out), -ETIMEDOUT (no answer
 * within 30 s), -EPROTO (malformed or over-long answer), -ENOMEM.
 * The approval gate's answers: approval_denied and approval_expired (a
 * request held for approval was denied, or not approved in time)
 * CB_ERR_DENIED, already_decided -EALREADY. */
#define CB_ERR_DENIED       (-EACCES)       /* policy said no (or not an admin) */
#define CB_ERR_TOKEN        (-EPERM)        /* token invalid, revoked, bound elsewhere */
#define CB_ERR_EXPIRED      (-ETIME)        /* token expired */
#define CB_ERR_USED_UP      (-EDQUOT)       /* token use limit reached */
#define CB_ERR_RATE_LIMITED (-EAGAIN)       /* too many requests: try later */
#define CB_ERR_UNAVAILABLE  (-EBUSY)        /* broker up but cannot serve (e.g. audit log) */
#define CB_ERR_UNREACHABLE  (-ECONNREFUSED) /* nothing answers on the socket */
#define CB_ERR_PENDING      (-EINPROGRESS)  /* held for approval; the caller chose not to wait */

/* Open a handle for socket_path (NULL: $CREDBROKER_SOCKET, then the
 * default).  Does not connect yet; each call opens its own connection so
 * the broker sees the caller's identity afresh.  Free with cb_client_free. */
CB_EXPORT int cb_client_new(const char *socket_path, cb_client **ret) CB_WUR;
/* The same for the admin socket: socket_path, else $CREDBROKER_ADMIN_SOCKET,
 * else CB_DEFAULT_ADMIN_SOCKET.  Use with cb_client_request(). */
CB_EXPORT int cb_client_new_admin(const char *socket_path, cb_client **ret) CB_WUR;
CB_EXPORT void cb_client_free(cb_client *c);

/* The socket path this handle talks to (for messages); owned by c. */
CB_EXPORT const char *cb_client_socket(const cb_client *c);

/* The last error on this handle, one line; "" if none.  Valid until the
 * next call on the handle. */
CB_EXPORT const char *cb_client_error(const cb_client *c);

/* Ask for a token for secret.  use: "proxy" or "redeem" (NULL: the broker's
 * default, "proxy", which never reveals the value).  ttl: seconds,
 * 0 for the broker's default (capped by the grant).  *ret_token is a
 * malloc'd string the caller must release with cb_token_free (it wipes);
 * ret_accessor (may be NULL) likewise with free(). */
CB_EXPORT int cb_client_token(cb_client *c, const char *secret, const char *use, unsigned ttl,
                              char **ret_token, char **ret_accessor, unsigned *ret_expires_in) CB_WUR;

/* The same, choosing what the token is bound to beyond the uid: "exe" (the
 * default, NULL: this executable), "process" (this process), "uid" (any
 * executable of this uid; proxy tokens only — for handing to an SDK run as
 * a child, as its API key), or "session" (like "uid", but only while this
 * process lives: it dies with the caller; needs SO_PEERPIDFD, Linux 6.5). */
CB_EXPORT int cb_client_token_bind(cb_client *c, const char *secret, const char *use, unsigned ttl, const char *bind,
                                   char **ret_token, char **ret_accessor, unsigned *ret_expires_in) CB_WUR;

/* Approval.  When the grant says "approval": true, the broker holds a token
 * request until an operator runs `credbroker approve ID` (or `deny ID`), or
 * its timeout denies it.  cb_client_token*() then wait transparently,
 * polling the broker (broker/API.md, "Approval"), and return the token, or
 * CB_ERR_DENIED with the broker's message (denied, or timed out).
 * fn (NULL: none) is called once, when a request is held, with its ID and
 * the seconds the broker will wait for a decision; it may print the ID for
 * the user.  Returning non-zero stops the wait: the call then returns
 * CB_ERR_PENDING (the request stays held until it times out).  The wait
 * ends anyway 30 s after the broker's own timeout (-ETIMEDOUT). */
/* Before any request is sent, the server's uid (SO_PEERCRED) must be root,
 * the caller's own uid, or this one (default: $CREDBROKER_BROKER_UID, else
 * none); otherwise nothing is sent and the call returns CB_ERR_DENIED. */
CB_EXPORT void cb_client_set_broker_uid(cb_client *c, uid_t uid);

/* How long a request waits for the broker's answer, in seconds (0: the
 * default, 30; at most 86400).  For admin requests whose work grows with
 * their input, e.g. verifying a large audit log. */
CB_EXPORT void cb_client_set_timeout(cb_client *c, unsigned seconds);

typedef int (*cb_client_pending_fn)(const char *approval_id, unsigned timeout_s, void *userdata);
CB_EXPORT void cb_client_on_pending(cb_client *c, cb_client_pending_fn fn, void *userdata);

/* Redeem a token for the secret's value (needs a "redeem" grant).  *ret
 * holds the value in sodium_malloc memory; free with cb_secret_free. */
CB_EXPORT int cb_client_redeem(cb_client *c, const char *token, cb_secret **ret) CB_WUR;

/* Accessors.  The value is followed by a NUL byte not counted in len, but
 * may itself contain NUL bytes (binary values): always use len. */
CB_EXPORT const unsigned char *cb_secret_value(const cb_secret *s);
CB_EXPORT size_t cb_secret_len(const cb_secret *s);
CB_EXPORT const char *cb_secret_name(const cb_secret *s);
CB_EXPORT uint32_t cb_secret_version(const cb_secret *s);
/* Wipe and free; NULL ok. */
CB_EXPORT void cb_secret_free(cb_secret *s);

/* Wipe and free a token string; NULL ok. */
CB_EXPORT void cb_token_free(char *token);

/* Is the broker up?  0 when /v1/health answers ok. */
CB_EXPORT int cb_client_health(cb_client *c) CB_WUR;

/* Any other route (the admin routes of broker/API.md, /v1/introspect):
 * method ("GET", "POST", ...) path ("/v1/..."), with body[0..body_len) as
 * the JSON request (NULL: none).  On a 2xx answer returns 0, *ret_json (may
 * be NULL) the answer's text, NUL-terminated, to free(), and *ret_status
 * (may be NULL) the HTTP status.  Otherwise the mapped error and the
 * broker's message.  body is not kept or copied by the library except into
 * libcurl's request buffer, which is wiped on free (see lib.c); wiping
 * body itself is the caller's job.  /v1/redeem is refused (-EINVAL): its
 * answer is a value, use cb_client_redeem().  Answers are capped at 256 KiB. */
CB_EXPORT int cb_client_request(cb_client *c, const char *method, const char *path, const void *body,
                                size_t body_len, char **ret_json, long *ret_status) CB_WUR;

#ifdef __cplusplus
}
#endif
#endif
