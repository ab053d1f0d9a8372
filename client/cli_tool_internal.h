/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Between the files of the tool verbs (not an API): cli_tool.c (token,
 * fetch, the helpers they share), cli_exec.c (exec: the child, signals,
 * the output masker) and cli_exec_values.c (exec's --env/--file values:
 * parsed, fetched, put into the environment or files, wiped).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cli.h"

#define EXEC_BINDINGS_MAX 64 /* --env and --file values per exec */

/* cli_tool.c */
/* After getopt_long found an unknown option: usage printed, the exit code
 * negated. */
int cli_unknown_option(int argc, char **argv);
/* Get a short-lived redeem token for name and redeem it: 0 and *ret, or an
 * exit code negated (said with verb). */
int cli_fetch_one(cb_client *c, const char *verb, const char *name, cb_secret **ret);

/* cli_exec_values.c: exec's state.  Each returns 0 or an exit code negated
 * (after printing why). */
struct binding {
        const char *target; /* VAR or PATH */
        char *secret;       /* points into a copy of the argument */
        bool file;
        size_t value;       /* index into the fetched values */
        dev_t dev;          /* --file: what we created */
        ino_t ino;
        bool created;
};

struct exec_state {
        struct binding b[EXEC_BINDINGS_MAX];
        size_t nb;
        cb_secret *val[EXEC_BINDINGS_MAX];
        size_t nval;
        char *envstr[EXEC_BINDINGS_MAX]; /* sodium_malloc "VAR=value" */
        size_t nenvstr;
        char **envp;
        struct cli_proxy px[CLI_PROXY_MAX]; /* --proxy */
        size_t npx;
};

/* --env VAR=SECRET (file false) or --file PATH=SECRET. */
int cli_exec_add_binding(struct exec_state *st, const char *arg, bool file);
/* Fetch each distinct secret once. */
int cli_exec_fetch(struct exec_state *st, cb_client *c);
/* The child's environment (st->envp): ours, minus the variables we set,
 * plus them (sodium_malloc) and --proxy's. */
int cli_exec_env(struct exec_state *st);
/* Create and write the --file files (O_EXCL, 0400). */
int cli_exec_files(struct exec_state *st);
/* Wipe and free the environment strings. */
void cli_exec_wipe_env(struct exec_state *st);
/* Remove the --file files still ours, wipe and free everything. */
void cli_exec_free(struct exec_state *st);
