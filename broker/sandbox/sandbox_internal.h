/* SPDX-License-Identifier: Apache-2.0 */
/* Inside sandbox/: between the table and hand-over (sandbox.c) and the
 * CONNECT tunnels (tunnel.c). */
#pragma once

#include <stdbool.h>

#include <jansson.h>

#include "sandbox.h"

/* Serve one CONNECT request on fd (the sandbox's connection, whose first
 * bytes are "CONNECT "): refuse it with a clear answer, a record and the
 * sandbox's alert, or tunnel it until either side ends.  Blocks: run on
 * the connection's own thread.  Does not close fd. */
void cb_sandbox_tunnel(cb_sandbox *sb, int fd);

/* Through the ops main.c handed over. */
void cb_sandbox_audit(json_t *o);
bool cb_sandbox_egress_allows(const cb_sandbox *sb, const char *host, unsigned port);
