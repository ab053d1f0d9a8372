/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sealed provisioning in the daemon, outside the routes (those are
 * api/api_provision.c): the store's provisioning keypair at start, and
 * --provision-dir, whose blobs are imported at start and on SIGHUP.  The
 * work is keys/provision*.c.  Works on the store it is handed; called with
 * the store's writers' mutex held (cb_store_write_lock) or single-threaded.
 */
#pragma once

#include <stdint.h>

#include "store.h"

/* Make store's first provisioning keypair if it has none.  0, or a
 * negative value with the reason in cb_error_last() (e.g. a read-only
 * store). */
int provision_start(cb_store *store);

/* Refuse an unsafe --provision-dir (not a directory, or writable by
 * another user) at start.  0, or -errno with a message. */
int provision_dir_check(const char *dir);

/* Import every blob in dir into store (each audited; a blob that cannot
 * be imported is reported and left); `when` ("start", "SIGHUP") says why,
 * in the logs. */
void provision_dir_scan(cb_store *store, const char *dir, const char *when);

/* How many .importing.* files stranded by a killed daemon
 * provision_dir_scan has put back to be retried since start (status). */
uint64_t provision_stranded_recovered(void);
