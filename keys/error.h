/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Error detail for keys/.  Functions return a negative errno; the human
 * message for the most recent failure on this thread is kept here so callers
 * (CLI, daemon) can print one clear line.  Library code never prints.
 *
 * Messages name files, offsets, secret names and versions — never a value,
 * a key or a passphrase.  Review every cb_error_set() call with that in mind.
 */
#pragma once

/* Record a message for this thread and return r (a negative errno) so a
 * caller can write `return cb_error_set(-EINVAL, "...")`. */
int cb_error_set(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last message recorded on this thread, or "" if none.  Valid until the
 * next cb_error_set() on this thread. */
const char *cb_error_last(void);

void cb_error_clear(void);

/* Errors with a meaning of their own beyond errno, used as return values. */
#define CB_E_INTEGRITY (-EBADMSG)      /* store file failed an integrity check */
#define CB_E_BADKEY    (-EKEYREJECTED) /* wrong passphrase or key file */
#define CB_E_ROLLBACK  (-ESTALE)       /* store older than what we saw/committed */
