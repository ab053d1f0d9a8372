/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The seam between scan.c (the live matcher and the /v1/scan and /v1/redact
 * routes) and leak.c (the leak response, compromised marks (store records) and
 * the token gate).  Internal to the daemon's scanner: other parts of the
 * broker use scan.h.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "daemon.h"
#include "scan.h"

/* What leak_attach was handed (leak.c). */
extern leak_env leak_cur;

/* One distinct thing a scan job sighted: a secret version, or a token
 * (name is then its accessor, "" if the token table does not know it).
 * Filled by scan.c as hits arrive, read by leak_respond(). */
typedef struct scan_seen {
        char name[CB_NAME_MAX + 1];   /* secret name, or a token's accessor ("" if unknown) */
        uint32_t version;
        unsigned forms;               /* 1 << cb_scan_kind */
        bool token;
} scan_seen;

/* The leak response for everything one request sighted (seen[0..n_seen),
 * owned by the caller, not kept): tokens revoked, on_leak applied, alerts
 * and audit records written (see leak.c).  Takes leak.c's respond lock
 * (responses serialise among themselves).  0, or -EIO when
 * an audit record could not be written, -ENOMEM when an event could not be
 * built (the entries before it were answered). */
int leak_respond(request *rq, const scan_seen *seen, size_t n_seen);

/* Append the name of every secret whose current version is marked leaked
 * to arr (a JSON array).  Any thread, no store lock held. */
void leak_list_compromised(json_t *arr);

/* Retry the marks the store could not take (scanner_sweep). */
void leak_flush_pending(void);

/* Free the alert cooldowns and unrecorded marks (scanner_shutdown(),
 * single-threaded). */
void leak_shutdown(void);
