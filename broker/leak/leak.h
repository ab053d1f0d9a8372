/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Hooks the leak response calls into other parts of the broker.
 *
 * leak_rotate_request(name): on_leak "rotate" — rotate the secret as
 * leaked (grace 0, old version's tokens revoked, old version disabled, the
 * rotation hook run).  Called under cbd.lock.  Returns 0 once the rotation
 * is done or safely under way, negative errno otherwise; the leak response
 * then falls back to "revoke" (tokens revoked, secret marked compromised)
 * and says so in the alert.  scan.c provides a weak stub returning -ENOSYS:
 * the rotation work (issue 6 item 1) defines the real function, and the
 * linker picks it over the stub.
 */
#pragma once

int leak_rotate_request(const char *name);
