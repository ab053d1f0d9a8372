/* SPDX-License-Identifier: Apache-2.0 */
/* The credbroker CLI: shared helpers and the exit-code contract. */
#pragma once

/* Exit codes (documented in README).  Scripts may rely on them. */
enum {
        CB_EXIT_OK = 0,
        CB_EXIT_FAIL = 1,      /* any other failure */
        CB_EXIT_USAGE = 2,     /* bad arguments */
        CB_EXIT_BADKEY = 3,    /* wrong passphrase or key file */
        CB_EXIT_INTEGRITY = 4, /* a store file failed an integrity check */
        CB_EXIT_NOTFOUND = 5,  /* no such store / secret */
        CB_EXIT_EXISTS = 6,    /* refusing to overwrite */
        CB_EXIT_DENIED = 7,    /* permission / policy refusal */
};

/* Print "credbroker: <msg>" (one line) and map a negative errno to an exit
 * code. */
int cli_fail(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Verbs (cli_store.c). */
int cmd_init(int argc, char **argv);
int cmd_check(int argc, char **argv);
