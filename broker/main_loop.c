/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbrokerd's main loop (split from main.c, issue 18): signals (SIGTERM,
 * SIGINT: stop; SIGHUP: reload the policy, reopen the audit log, import
 * --provision-dir), the sweeps once a second, the systemd watchdog, the
 * report of refused connections.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "approval.h"
#include "audit.h"
#include "daemon.h"
#include "scan.h"
#include "error.h"
#include "memtrim.h"
#include "provision_dir.h"
#include "log.h"
#include "red_cache.h"
#include "rotate.h"
#include "main_internal.h"

static uint64_t mono_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Until SIGTERM or SIGINT; sigs are blocked in every thread (main()). */
void main_serve_loop(sigset_t sigs, uint64_t watchdog_usec, const char *audit, const char *provision_dir) {
        uint64_t refused_said = 0, full_said = 0;
        /* Housekeeping (sweeps, trims, reports) once a second and on a
         * signal; the watchdog is pinged at half its interval
         * (sd_watchdog_enabled(3)), on its own schedule, which may be
         * shorter (never under 50 ms: no spin). */
        uint64_t ping_every = watchdog_usec / 2 < 50000 ? 50000 : watchdog_usec / 2, next_ping = 0;
        uint64_t next_house = mono_usec() + 1000000;
        for (;;) {
                uint64_t now = mono_usec(), due = watchdog_usec && next_ping < next_house ? next_ping : next_house;
                uint64_t wait = due > now ? due - now : 0;
                struct timespec tick = { (time_t)(wait / 1000000), (long)(wait % 1000000) * 1000 };
                int sig = sigtimedwait(&sigs, NULL, &tick);
                bool house;

                if (sig == SIGTERM || sig == SIGINT) {
                        say("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                        (void)sd_notify(0, "STOPPING=1\nSTATUS=stopping");
                        break;
                }
                bool reloaded = true;
                if (sig == SIGHUP) {
                        /* The policy is read, parsed and swapped in holding
                         * no lock: requests keep being served meanwhile,
                         * each under the snapshot it started with. */
                        char err[512];
                        (void)sd_notify(0, "RELOADING=1"); /* systemctl reload waits for READY=1 */
                        if (!(reloaded = policy_reload(err, sizeof(err)) >= 0)) {
                                say_warn("SIGHUP: policy NOT reloaded, the old one stays in force: %s", err);
                        } else {
                                const cb_policy *pol = cb_policy_acquire(cbd.policy);
                                say("SIGHUP: policy reloaded: %zu clients, %zu grants", cb_policy_n_clients(pol),
                                    cb_policy_n_grants(pol));
                                cb_policy_unref(pol);
                        }
                }
                pthread_mutex_lock(&cbd.admin_lock);
                /* The watchdog is fed from here, after taking the admin
                 * lock: an admin route stuck under it starves the watchdog
                 * and systemd restarts us (WatchdogSec=).  (The tool
                 * routes take no daemon-wide lock any more; each of their
                 * locks is held for memory work only.) */
                if (watchdog_usec && (now = mono_usec()) >= next_ping) {
                        (void)sd_notify(0, "WATCHDOG=1");
                        next_ping = now + ping_every;
                }
                if (sig == SIGHUP) {
                        if (audit && audit_reopen() < 0)
                                say_warn("SIGHUP: audit log NOT reopened, still writing the old file: %s",
                                    cb_error_last());
                        if (provision_dir) {
                                /* Reads and writes the store as one writer
                                 * (its writers' mutex; readers never wait). */
                                cb_store_write_lock(cbd.store);
                                provision_dir_scan(cbd.store, provision_dir, "SIGHUP");
                                cb_store_write_unlock(cbd.store);
                        }
                        cb_store_read_lock(cbd.store);
                        size_t nsec = cb_store_count(cbd.store);
                        cb_store_read_unlock(cbd.store);
                        (void)sd_notifyf(0, "READY=1\nSTATUS=serving %zu secrets%s", nsec,
                                         reloaded ? "" : " (the last policy reload was refused)");
                }
                now = mono_usec();
                house = sig > 0 || now >= next_house;
                if (house) {
                        cb_tokens_sweep(cbd.tokens, (uint64_t)time(NULL));
                        approval_sweep();
                        rotate_sweep((uint64_t)time(NULL));
                        scanner_sweep();
                }
                pthread_mutex_unlock(&cbd.admin_lock);
                if (!house)
                        continue; /* only the watchdog was due */
                next_house = now + 1000000;
                red_cache_sweep();
                memtrim_tick();
                uid_t refused_uid;
                uint64_t refused = server_conn_refused(&refused_uid);
                uint64_t full = server_conn_refused_full();
                if (refused - full != refused_said - full_said)
                        say_warn("refused %" PRIu64 " connection(s) over the limit of %d per uid (last: uid %u)",
                            (refused - full) - (refused_said - full_said), CB_CONN_PER_UID, (unsigned)refused_uid);
                if (full != full_said)
                        say_warn("refused %" PRIu64 " connection(s) over a socket's limit of %d connections",
                            full - full_said, CB_CONN_MAX);
                refused_said = refused;
                full_said = full;
        }
}
