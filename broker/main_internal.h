/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to credbrokerd's top (issue 18): what main.c shares with
 *   main_listen.c  the run dir and the listening sockets
 *   main_opts.c    --help, the warning about replaceable exe selectors
 *   main_loop.c    the signal loop, the sweeps, the watchdog
 */
#ifndef CB_MAIN_INTERNAL_H
#define CB_MAIN_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "log.h"
#include "policy.h"

#define DEFAULT_STATE_DIR "/var/lib/credbroker"
#define DEFAULT_RUN_DIR "/run/credbroker"
#define DEFAULT_POLICY "/etc/credbroker/policy.json"
#define DEFAULT_UNLOCK "keyfile:/etc/credbroker/host.key"

/* Start-up and signal messages; the level says whether we give up. */
#define say(...) cb_log(CB_LOG_INFO, __VA_ARGS__)
#define say_err(...) cb_log(CB_LOG_ERR, __VA_ARGS__)
#define say_warn(...) cb_log(CB_LOG_WARNING, __VA_ARGS__)

/* main_listen.c */
int prepare_run_dir(const char *dir);
int listen_unix(const char *dir, const char *name, mode_t mode, gid_t gid, char *path_out, size_t cap);
int listen_loopback(const char *spec, char *desc, size_t cap, bool check_only);

/* main_opts.c */
void warn_replaceable_exes(const cb_policy *p, bool print);
void usage(FILE *f);

/* main_loop.c */
void main_serve_loop(sigset_t sigs, uint64_t watchdog_usec, const char *audit, const char *provision_dir);

#endif
