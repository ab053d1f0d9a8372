/* SPDX-License-Identifier: Apache-2.0 */
/* Inside sandbox/: between the table and hand-over (sandbox.c) and the
 * CONNECT tunnels (tunnel.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "sandbox.h"

/* Serve one CONNECT request on fd (the sandbox's connection, whose first
 * bytes are "CONNECT "): refuse it with a clear answer, a record and the
 * sandbox's alert, or tunnel it until either side ends.  Blocks: run on
 * the connection's own thread.  Does not close fd. */
void cb_sandbox_tunnel(cb_sandbox *sb, int fd);

/* Serve one plain-HTTP absolute-form request on fd (head_len bytes of
 * head, already peeked at, are waiting: "METHOD http://host[:port]/...
 * HTTP/1.x" without Proxy-Authorization): refuse it (a clear answer, a
 * record, the sandbox's alert) when its host is not in egress.allow, is
 * an IP literal or resolves to an address the SSRF rules refuse, when its
 * framing breaks the proxy's rules, or when its head or body carries a
 * live secret value or a token (the outbound leak guard); else forward it
 * as the broker frames it and relay the response.  One request a
 * connection (answered with Connection: close).  Blocks: run on the
 * connection's own thread.  Does not close fd.  (forward.c) */
#define CB_FWD_BODY_MAX (1024 * 1024)      /* a forwarded request's body, held and scanned */
#define CB_FWD_HELD_MAX (64 * 1024 * 1024) /* bodies held at once, all sandboxes */
void cb_sandbox_forward(cb_sandbox *sb, int fd, size_t head_len);

/* Resolve host once, refuse the address if the SSRF rules do, dial exactly
 * it (10 s): a non-blocking socket, or -1 with *status (403/502) and why.
 * Blocks: a connection's own thread.  (tunnel.c; forward.c uses it too) */
int cb_sandbox_dial(const char *host, unsigned port, int *status, char *why, size_t why_len);

/* Through the ops main.c handed over. */
/* Is this refusal over the launching user's budget of recorded refusals
 * (http/'s, shared with its tools.sock requests)?  Then it is answered 429
 * without a record of its own. */
bool cb_sandbox_refusal_quiet(const cb_sandbox *sb);
struct cb_matcher *cb_sandbox_matcher(void);
void cb_sandbox_audit(json_t *o);
bool cb_sandbox_egress_allows(const cb_sandbox *sb, const char *host, unsigned port);
