/* SPDX-License-Identifier: Apache-2.0 */
/* What rotate.c (the rotation and the grace sweep) and rotate_hook.c (the
 * daemon-run hooks) share.  Not an API: rotate.h is. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "rotate.h"

/* What rotate_attach was handed (rotate.c). */
extern rotate_env rotate_cur;

/* Stamp o with "time" and append it to the audit log; takes o (NULL: -ENOMEM,
 * for a failed json_pack) and frees it either way.  0 or audit_emit's
 * -errno.  Under rotate_lock().  (rotate.c) */
int rotate_audit_event(json_t *o);

/* Start the leak hook DIR/_leaked for a leaked rotation of name, if there is
 * a usable one and a free hook slot: a detached thread runs it with an event
 * built from summary's "version", "previous" and "revoked" on its stdin
 * (summary is only read, not kept).  Returns whether it was started; a run
 * that fails later is reported on stderr only.  Under rotate_lock().
 * (rotate_hook.c) */
bool rotate_leak_hook_start(const char *name, json_t *summary);
