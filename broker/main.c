/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbrokerd: start-up, sockets, signals.  Foreground, logs to stderr.
 * SIGTERM/SIGINT: clean exit (sockets removed, keys wiped).  SIGHUP: reload
 * the policy; an invalid one is refused with the exact error and the old one
 * keeps serving.  SIGHUP also imports --provision-dir's blobs (provision.c).
 * The signal loop and sweeps are in main_loop.c, the run dir and the
 * listeners in main_listen.c, --help and the exe-selector warning in
 * main_opts.c (main_internal.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <systemd/sd-daemon.h>

#include "api.h"
#include "approval.h"
#include "alert.h"
#include "audit.h"
#include "daemon.h"
#include "scan.h"
#include "error.h"
#include "fsutil.h"
#include "leak_react.h"
#include "memtrim.h"
#include "provision_dir.h"
#include "proxy.h"
#include "log.h"
#include "red_cache.h"
#include "rotate.h"
#include "route.h"
#include "sandbox.h"
#include "wipe_heap.h"
#include "main_internal.h"

daemon_state cbd = { .admin_lock = PTHREAD_MUTEX_INITIALIZER, .default_ttl = CB_TTL_DEFAULT };

/* jansson's strings may hold a value on its way out: wipe on free. */
/* Reloads are serialised among themselves only (SIGHUP and the admin
 * route: the file read last is the one in force); no request waits on
 * this lock, and none is held while the file is read and parsed. */
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

int policy_reload(char *err, size_t errlen) {
        cb_policy *p;
        int r;

        pthread_mutex_lock(&reload_lock);
        r = cb_path_check_trusted(cbd.policy_path, geteuid(), "policy");
        if (r == 0)
                r = cb_policy_load(cbd.policy_path, &p);
        if (r < 0) {
                snprintf(err, errlen, "%s", cb_error_last());
                pthread_mutex_unlock(&reload_lock);
                return r;
        }
        warn_replaceable_exes(p, false);
        cb_policy_publish(cbd.policy, p); /* the old one is freed by its last reader */
        pthread_mutex_unlock(&reload_lock);
        return 0;
}

/* ---- sandbox listeners (sandbox.h): the policy and the audit log for
 * sandbox/, which reaches neither itself. */

/* The launcher must be selected by the client it names (the whole
 * identity, as for a tools.sock request), or by some client. */
static int sandbox_authorize(const cb_peer *peer, const char *want, char ret_client[65]) {
        const char *names[64];
        int r = 0;

        const cb_policy *pol = cb_policy_acquire(cbd.policy);
        size_t n = cb_policy_match_clients(pol, peer, names, sizeof(names) / sizeof(names[0]));
        size_t k = n > 64 ? 64 : n;
        if (want && *want) {
                size_t i;
                for (i = 0; i < k && strcmp(names[i], want) != 0; i++)
                        ;
                if (i == k)
                        r = cb_error_set(-EPERM, "client '%.64s' does not select this launcher (uid %u, %s)", want,
                                         (unsigned)peer->uid, peer->exe_path);
                else
                        snprintf(ret_client, 65, "%s", names[i]);
        } else if (k == 0) {
                r = cb_error_set(-EPERM, "no client of the policy selects this launcher (uid %u, %s)",
                                 (unsigned)peer->uid, peer->exe_path);
        } else {
                snprintf(ret_client, 65, "%s", names[0]);
        }
        cb_policy_unref(pol); /* names[] pointed into it */
        return r;
}

static bool sandbox_egress_allows(const char *client, const char *host, unsigned port) {
        const cb_policy *pol = cb_policy_acquire(cbd.policy);
        bool ok = cb_policy_egress_allows(pol, client, host, port);
        cb_policy_unref(pol);
        return ok;
}

static bool sandbox_egress_alert(const char *client) {
        const cb_policy *pol = cb_policy_acquire(cbd.policy);
        bool on = cb_policy_egress_alert(pol, client);
        cb_policy_unref(pol);
        return on;
}

static struct cb_matcher *sandbox_matcher(void) {
        return scanner_matcher_ref(); /* the matcher's own lock */
}

static void sandbox_alert(const char *kind, json_t *ev) {
        alert_raise(kind, ev); /* alert.c takes only its own lock */
}

static void sandbox_audit(json_t *o) {
        (void)audit_emit(o); /* audit's records side has its own lock (audit.h) */
}

/* Leak reactions (leak_react.h): the token table revokes, the proxy cuts
 * what is in flight, rotate/ rotates a secret whose policy says on_leak
 * "rotate". */
static size_t tokens_revoke_secret(const char *secret) {
        return cb_tokens_revoke_secret(cbd.tokens, secret);
}

static size_t tokens_revoke_accessor(const char *accessor) {
        return cb_tokens_revoke_accessor(cbd.tokens, accessor);
}

static const leak_reaction leak_reacts_tokens = {
        .name = "tokens", .revoke_secret = tokens_revoke_secret, .revoke_accessor = tokens_revoke_accessor,
};
static const leak_reaction leak_reacts_proxy = {
        .name = "proxy", .cut_secret = proxy_cancel_secret, .cut_accessor = proxy_cancel_accessor,
};
static const leak_reaction leak_reacts_rotate = { .name = "rotate", .rotate = leak_rotate_request };

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "state-dir", required_argument, NULL, 's' },   { "run-dir", required_argument, NULL, 'r' },
                { "policy", required_argument, NULL, 'p' },      { "unlock", required_argument, NULL, 'u' },
                { "audit-log", required_argument, NULL, 'a' },   { "admin-group", required_argument, NULL, 'g' },
                { "threads", required_argument, NULL, 'n' },
                { "tool-threads", required_argument, NULL, 't' },
                { "check-policy", required_argument, NULL, 'c' }, { "listen-tcp", required_argument, NULL, 'T' },
                { "provision-dir", required_argument, NULL, 'P' }, { "tpm2-tcti", required_argument, NULL, 'X' },
                { "approval-timeout", required_argument, NULL, 'A' },
                { "alert-hook", required_argument, NULL, 'H' },  { "denial-alert", required_argument, NULL, 'D' },
                { "verify-audit", required_argument, NULL, 'V' }, { "verify-json", no_argument, NULL, 'J' }, { "alert-hook-timeout", required_argument, NULL, 'O' },
                { "rotate-hook-dir", required_argument, NULL, 'R' },
                { "max-tokens", required_argument, NULL, 'M' },  { "max-tokens-per-uid", required_argument, NULL, 'm' },
                { "refusals-recorded", required_argument, NULL, 'Q' },
                { "tombstone-bytes", required_argument, NULL, 'B' },
                { "default-ttl", required_argument, NULL, 'L' },
                { "routes", no_argument, NULL, 'W' },
                { "help", no_argument, NULL, 'h' },               { "version", no_argument, NULL, 'v' },
                {},
        };
        unsigned threads = 2;
        /* 1: on two CPUs a pool of 2 cost more CPU per token request than
         * it bought, at 1 client and at 32 (tests/bench/tokens.sh). */
        unsigned tool_threads = 1;
        uint32_t approval_timeout = CB_APPROVAL_TIMEOUT_DEFAULT;
        const char *alert_hook = NULL, *verify_files[64];
        size_t n_verify = 0;
        bool verify_json = false;
        unsigned deny_n = 10, deny_window = 60, hook_timeout = 0;
        size_t max_tokens = 0, max_tokens_uid = 0, tomb_bytes = 0;
        const char *listen_tcp = NULL, *provision_dir = NULL, *rotate_hook_dir = NULL;
        const char *tpm2_tcti = NULL;
        int tcp_fd = -1;
        const char *state_dir = DEFAULT_STATE_DIR, *unlock = DEFAULT_UNLOCK, *audit = NULL, *admin_group = NULL;
        char tool_path[4096], admin_path[4096], tcp_desc[96] = "", sandbox_path[4096];
        bool sandbox_on = false;
        const struct rlimit no_core = { 0, 0 };
        gid_t admin_gid = (gid_t)-1;
        cb_unlock_spec *spec = NULL;
        int c, tool_fd = -1, admin_fd = -1, state_lock = -1, run_lock = -1, status = 1;
        sigset_t sigs;

        cbd.policy_path = DEFAULT_POLICY;
        cbd.run_dir = DEFAULT_RUN_DIR;
        cb_log_init();
        /* systemd (Type=notify, WatchdogSec=): readiness, status and the
         * watchdog through libsystemd's sd_notify(3).  $WATCHDOG_USEC and
         * $WATCHDOG_PID are read once here and unset; $NOTIFY_SOCKET stays
         * for sd_notify (the one program we start, the rotation hook, gets
         * a minimal environment, so it cannot notify in our name). */
        uint64_t watchdog_usec = 0;
        if (sd_watchdog_enabled(1, &watchdog_usec) <= 0)
                watchdog_usec = 0;
        opterr = 0; /* our own stamped line instead of getopt's */
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 's': state_dir = optarg; break;
                case 'r': cbd.run_dir = optarg; break;
                case 'p': cbd.policy_path = optarg; break;
                case 'u': unlock = optarg; break;
                case 'a': audit = optarg; break;
                case 'g': admin_group = optarg; break;
                case 'n': {
                        char *end;
                        errno = 0;
                        long v = strtol(optarg, &end, 10);
                        if (errno || end == optarg || *end || v < 1 || v > 64) {
                                say_err("--threads: '%s' is not a number from 1 to 64", optarg);
                                return 2;
                        }
                        threads = (unsigned)v;
                        break;
                }
                case 't': {
                        char *end;
                        errno = 0;
                        long v = strtol(optarg, &end, 10);
                        if (errno || end == optarg || *end || v < 1 || v > 64) {
                                say_err("--tool-threads: '%s' is not a number from 1 to 64", optarg);
                                return 2;
                        }
                        tool_threads = (unsigned)v;
                        break;
                }
                case 'c': {
                        cb_policy *p;
                        if (cb_policy_load(optarg, &p) < 0) {
                                printf("invalid: %s\n", cb_error_last());
                                return 2;
                        }
                        printf("ok: %s: %zu clients, %zu grants\n", optarg, cb_policy_n_clients(p),
                               cb_policy_n_grants(p));
                        /* exe selectors match the file the path names here, now. */
                        for (size_t i = 0; i < cb_policy_n_clients(p); i++) {
                                const char *name, *exe, *res;
                                if (!cb_policy_client_exe(p, i, &name, &exe, &res))
                                        continue;
                                if (!res)
                                        printf("client %s: exe %s does not resolve here (%s): it matches no "
                                               "caller until it does\n", name, exe, "not found");
                                else if (strcmp(res, exe) != 0)
                                        printf("client %s: exe %s -> %s\n", name, exe, res);
                                else
                                        printf("client %s: exe %s\n", name, exe);
                        }
                        warn_replaceable_exes(p, true);
                        /* Approvers must not be tool uids (api_approval.c). */
                        for (size_t i = 0; i < cb_policy_n_admin_uids(p); i++) {
                                const char *cl = NULL;
                                uid_t au = cb_policy_admin_uid(p, i);
                                if (cb_policy_uid_selectable(p, au, &cl))
                                        printf("warning: admin uid %u is also selected by client %s: it may deny "
                                               "approvals but never approve one (an approver must not be a "
                                               "uid tools run as)\n", (unsigned)au, cl);
                        }
                        cb_policy_free(p);
                        return 0;
                }
                case 'T': listen_tcp = optarg; break;
                case 'A': {
                        unsigned long v;
                        if (alert_parse_seconds(optarg, CB_APPROVAL_TIMEOUT_MAX, &v) < 0 || v < 1) {
                                say_err("--approval-timeout: '%s' is not a duration (seconds, or 90s/5m/1h/1d) "
                                        "from 1 to %d s", optarg, CB_APPROVAL_TIMEOUT_MAX);
                                return 2;
                        }
                        approval_timeout = (uint32_t)v;
                        break;
                }
                case 'L': {
                        unsigned long v;
                        if (alert_parse_seconds(optarg, CB_TTL_MAX, &v) < 0 || v < 1) {
                                say_err("--default-ttl: '%s' is not a duration (seconds, or 90s/5m/1h/1d) from 1 "
                                        "to %d s", optarg, CB_TTL_MAX);
                                return 2;
                        }
                        cbd.default_ttl = (uint32_t)v;
                        break;
                }
                case 'X': tpm2_tcti = optarg; break;
                case 'P': provision_dir = optarg; break;
                case 'H': alert_hook = optarg; break;
                case 'O': {
                        unsigned long v;
                        if (alert_parse_seconds(optarg, 600, &v) < 0 || v < 1) {
                                say_err("--alert-hook-timeout: '%s' is not a duration (seconds, or 30s/5m) from 1 "
                                        "to 600 s", optarg);
                                return 2;
                        }
                        hook_timeout = (unsigned)v;
                        break;
                }
                case 'D':
                        if (alert_parse_rule(optarg, &deny_n, &deny_window) < 0) {
                                say_err("--denial-alert: want N/SECONDS (N 1-%d, SECONDS 1-86400, or 5m/1h) or "
                                        "'off', not '%s'",
                                    ALERT_DENIAL_N_MAX, optarg);
                                return 2;
                        }
                        break;
                case 'V':
                        if (n_verify == sizeof(verify_files) / sizeof(verify_files[0])) {
                                say_err("--verify-audit: at most 64 files");
                                return 2;
                        }
                        verify_files[n_verify++] = optarg;
                        break;
                case 'J': verify_json = true; break;
                case 'R': rotate_hook_dir = optarg; break;
                case 'M':
                case 'm':
                case 'B': {
                        char *end;
                        errno = 0;
                        unsigned long long v = strtoull(optarg, &end, 10);
                        unsigned long long lo = c == 'B' ? 4096 : 1, hi = c == 'B' ? 1ull << 30 : 100000000;
                        if (errno || end == optarg || *end || optarg[0] == '-' || v < lo || v > hi) {
                                say("--%s: '%s' is not a number from %llu to %llu",
                                    c == 'M' ? "max-tokens" : c == 'm' ? "max-tokens-per-uid" : "tombstone-bytes", optarg,
                                    lo, hi);
                                return 2;
                        }
                        *(c == 'M' ? &max_tokens : c == 'm' ? &max_tokens_uid : &tomb_bytes) = (size_t)v;
                        break;
                }
                case 'Q': {
                        char *end;
                        errno = 0;
                        unsigned long v = strtoul(optarg, &end, 10);
                        if (errno || end == optarg || *end || optarg[0] == '-' || v > 1000000) {
                                say("--refusals-recorded: '%s' is not a number from 0 to 1000000", optarg);
                                return 2;
                        }
                        server_set_refusals_recorded((unsigned)v);
                        break;
                }
                case 'h': usage(stdout); return 0;
                case 'v': puts("credbrokerd " CB_VERSION_STRING); return 0;
                case 'W':
                        if (api_routes_register() < 0) {
                                say_err("%s", cb_error_last());
                                return 1;
                        }
                        http_routes_print(stdout);
                        return 0;
                default: /* one stamped line, as every other line on stderr */
                        say_err("unknown option or missing argument: '%s' (see 'credbrokerd --help')",
                                argv[optind - 1]);
                        return 2;
                }
        }
        if (optind != argc) {
                say_err("unexpected argument: '%s' (see 'credbrokerd --help')", argv[optind]);
                return 2;
        }
        /* Keys live here: no core dumps, no ptrace attach by same-uid
         * processes.  PR_SET_DUMPABLE 0 alone already stops both; a
         * setrlimit a seccomp filter refuses (systemd's SystemCallFilter)
         * is said, not fatal — the unit sets LimitCORE=0 itself. */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
                say_err("cannot disable core dumps / ptrace (PR_SET_DUMPABLE): %s", strerror(errno));
                return 1;
        }
        if (setrlimit(RLIMIT_CORE, &no_core) < 0) {
                struct rlimit cur;
                if (getrlimit(RLIMIT_CORE, &cur) < 0 || cur.rlim_cur != 0)
                        say_warn("cannot set RLIMIT_CORE to 0 (%s); the process is not dumpable anyway",
                                 strerror(errno));
        }
        if (n_verify) {
                /* Offline: open the store for its key, verify, exit. */
                cb_store *vs = NULL;
                if (sodium_init() < 0 || cb_unlock_spec_parse(unlock, &spec) < 0 ||
                    (tpm2_tcti && !(spec->tpm2_tcti = strdup(tpm2_tcti))) ||
                    cb_store_open(state_dir, spec, &vs) < 0) {
                        say_err("audit verify: %s", cb_error_last());
                        cb_unlock_spec_free(spec);
                        return 1;
                }
                status = audit_verify_offline(vs, state_dir, verify_files, n_verify, verify_json);
                cb_store_close(vs);
                cb_unlock_spec_free(spec);
                return status;
        }

        /* Peer identity reads /proc/<pid> with pids from SO_PEERCRED, which
         * are in our pid namespace: /proc must be mounted for it too. */
        {
                char self[32], want[32];
                ssize_t n = readlink("/proc/self", self, sizeof(self) - 1);

                snprintf(want, sizeof(want), "%d", (int)getpid());
                if (n <= 0 || (self[n] = '\0', strcmp(self, want) != 0)) {
                        say_err("/proc is not the proc file system of our pid namespace (/proc/self is '%s', our pid "
                            "is %s): peers cannot be identified; mount /proc for this namespace",
                            n > 0 ? self : "unreadable", want);
                        return 1;
                }
        }
        /* File descriptors: two per connection being identified (socket
         * and pidfd) on two sockets, and one per process-bound token. */
        struct rlimit nofile;
        size_t bound_max = 64;
        const rlim_t reserve = 4 * CB_CONN_MAX + 3 * CB_CONN_SPARE + 256 +
                               CB_APPROVALS_MAX; /* approvals hold a pidfd each */
        if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
                if (nofile.rlim_cur < nofile.rlim_max) {
                        nofile.rlim_cur = nofile.rlim_max;
                        (void)setrlimit(RLIMIT_NOFILE, &nofile);
                        (void)getrlimit(RLIMIT_NOFILE, &nofile);
                }
                if (nofile.rlim_cur >= reserve + 1024)
                        bound_max = nofile.rlim_cur - reserve > CB_TOKENS_BOUND_MAX ? CB_TOKENS_BOUND_MAX
                                                                                   : (size_t)(nofile.rlim_cur - reserve);
                else
                        say_warn("only %llu file descriptors (RLIMIT_NOFILE); %d connections per socket need "
                            "about %llu: connections beyond the limit will fail",
                            (unsigned long long)nofile.rlim_cur, CB_CONN_MAX, (unsigned long long)reserve + 1024);
        }
        if (sodium_init() < 0) {
                say_err("libsodium failed to initialise");
                return 1;
        }
        /* Signals go to the main loop's sigtimedwait only: block them
         * before the FIRST thread starts (every thread inherits the mask).
         * Threads start well before the servers (the audit log's fsync
         * thread at audit_open, the alert worker, the proxy loops, the hash
         * workers): one with SIGHUP unblocked takes a SIGHUP sent while
         * this thread is busy (a scan) and its default action kills the
         * daemon.  Until the loop runs, a signal waits (a SIGTERM during
         * unlock is acted on once serving; a SIGHUP reloads then). */
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        if (proxy_init() < 0) {
                say_err("%s", cb_error_last());
                return 1;
        }
        /* The subsystems that react to a leak (leak_react.h), before anything can
         * sight one (a leaked rotation's grace applied by rotate_sweep). */
        if (leak_reaction_register(&leak_reacts_tokens) < 0 || leak_reaction_register(&leak_reacts_proxy) < 0 ||
            leak_reaction_register(&leak_reacts_rotate) < 0) {
                say_err("%s", cb_error_last());
                return 1;
        }
        /* The routes (api/api_routes.c), handed to http/ before any server runs. */
        if (api_routes_register() < 0) {
                say_err("%s", cb_error_last());
                return 1;
        }
        memtrim_init();
        json_set_alloc_funcs(malloc, cb_wipe_free);
        signal(SIGPIPE, SIG_IGN);
        if (admin_group) {
                struct group *g = getgrnam(admin_group);
                if (!g) {
                        say_err("admin group '%s' does not exist", admin_group);
                        return 2;
                }
                admin_gid = g->gr_gid;
        }
        /* The files the daemon trusts, checked up to "/" (fsutil.h). */
        {
                const char *kf = strncmp(unlock, "keyfile:", 8) == 0         ? unlock + 8
                                 : strncmp(unlock, "tpm2+keyfile:", 13) == 0 ? unlock + 13
                                                                            : NULL;
                if (cb_path_check_trusted(cbd.policy_path, geteuid(), "policy") < 0 ||
                    cb_path_check_trusted(state_dir, geteuid(), "state dir") < 0 ||
                    (kf && cb_path_check_trusted(kf, geteuid(), "key file") < 0)) {
                        say("%s", cb_error_last());
                        return 1;
                }
        }
        {
                cb_policy *first;
                if (cb_policy_load(cbd.policy_path, &first) < 0) {
                        say_err("%s", cb_error_last());
                        return 1;
                }
                warn_replaceable_exes(first, false);
                if (!(cbd.policy = cb_policy_slot_new(first))) {
                        cb_policy_free(first);
                        say_err("out of memory");
                        return 1;
                }
        }
        if (alert_init(alert_hook, hook_timeout, deny_n, deny_window) < 0) {
                say_err("cannot start the alert worker");
                goto out;
        }
        if (cb_unlock_spec_parse(unlock, &spec) == 0 && tpm2_tcti) {
                if (spec->kind != CB_UNLOCK_TPM2 && spec->kind != CB_UNLOCK_TPM2_KEYFILE) {
                        say_err("--tpm2-tcti needs --unlock tpm2 or tpm2+keyfile:PATH");
                        goto out;
                }
                spec->tpm2_tcti = strdup(tpm2_tcti);
                if (!spec->tpm2_tcti) {
                        say_err("out of memory");
                        goto out;
                }
        }
        /* A bad flag is refused before the locks (and whatever holds them). */
        if (listen_tcp && listen_loopback(listen_tcp, NULL, 0, true) < 0) {
                say("%s", cb_error_last());
                goto out;
        }
        /* One daemon per state dir and per run dir, for the daemon's whole
         * life: both locks are taken before the store is opened and before
         * any socket is touched, so a second daemon never recovers, writes
         * or unlinks anything the first one owns. */
        if (cb_lock_owner(state_dir, "daemon.lock", "state directory", &state_lock) < 0 &&
            (access(state_dir, F_OK) == 0 || errno != ENOENT)) { /* no dir: the store open below says how to make one */
                say("%s", cb_error_last());
                goto out;
        }
        if (prepare_run_dir(cbd.run_dir) < 0 ||
            cb_lock_owner(cbd.run_dir, "credbrokerd.lock", "run directory", &run_lock) < 0) {
                say("%s", cb_error_last());
                goto out;
        }
        if (!spec || cb_store_open(state_dir, spec, &cbd.store) < 0) {
                say_err("%s", cb_error_last());
                goto out;
        }
        /* The audit key is derived from the store's KEK: after unlock. */
        if (audit && audit_open(audit, state_dir, cbd.store) < 0) {
                say_err("%s", cb_error_last());
                goto out;
        }
        if (provision_start(cbd.store) < 0) /* e.g. a read-only store: serve it, say why import cannot work */
                say_warn("no provisioning keypair (import will fail until one can be made): %s",
                    cb_error_last());
        if (provision_dir && provision_dir_check(provision_dir) < 0) {
                say_err("%s", cb_error_last());
                goto out;
        }
        if (provision_dir)
                provision_dir_scan(cbd.store, provision_dir, "start");
        /* leak/ and proxy/ work on what they are handed, not on cbd. */
        leak_attach(&(leak_env){ .store = cbd.store, .tokens = &cbd.tokens });
        if (scanner_init(state_dir) < 0) {
                say_err("%s", cb_error_last());
                goto out;
        }
        cbd.tokens = cb_tokens_new(max_tokens, max_tokens_uid);
        if (cbd.tokens)
                cb_tokens_limit_bound(cbd.tokens, bound_max, CB_TOKENS_BOUND_PER_UID);
        if (cbd.tokens && tomb_bytes && cb_tokens_limit_tombstones(cbd.tokens, tomb_bytes) < 0) {
                say("%s", cb_error_last());
                goto out;
        }
        cbd.rate = cb_ratelimit_new(0);
        if (!cbd.tokens || !cbd.rate || approval_init(approval_timeout) < 0) {
                say_err("out of memory");
                goto out;
        }
        /* Grace that ran out while we were down (a leaked rotation cut short
         * by a crash included) is applied before anything is served. */
        rotate_attach(&(rotate_env){ .store = cbd.store, .tokens = cbd.tokens });
        proxy_attach(&(proxy_env){ .store = cbd.store, .tokens = cbd.tokens });
        if (rotate_init(rotate_hook_dir) < 0) {
                say_err("%s", cb_error_last());
                goto out;
        }
        rotate_sweep((uint64_t)time(NULL));
        tool_fd = listen_unix(cbd.run_dir, "tools.sock", 0666, (gid_t)-1, tool_path, sizeof(tool_path));
        if (tool_fd >= 0)
                admin_fd = listen_unix(cbd.run_dir, "admin.sock", admin_group ? 0660 : 0600, admin_gid, admin_path,
                                       sizeof(admin_path));
        if (tool_fd < 0 || admin_fd < 0) {
                say_err("%s", cb_error_last());
                goto out;
        }
        cbd.started = (uint64_t)time(NULL);
        if (listen_tcp && (tcp_fd = listen_loopback(listen_tcp, tcp_desc, sizeof(tcp_desc), false)) < 0) {
                say_err("%s", cb_error_last());
                goto out;
        }
        server_attach(&(server_env){ .tokens = cbd.tokens, .policy = cbd.policy, .admin_lock = &cbd.admin_lock });
        if (server_start(tool_fd, admin_fd, tcp_fd, threads, tool_threads) < 0) {
                say_err("%s", cb_error_last());
                goto out;
        }
        if ((size_t)snprintf(sandbox_path, sizeof(sandbox_path), "%s/sandbox.sock", cbd.run_dir) >= sizeof(sandbox_path) ||
            cb_sandbox_start(sandbox_path, &(cb_sandbox_ops){ .authorize = sandbox_authorize,
                                                              .serve = server_sandbox_serve,
                                                              .unserve = server_sandbox_unserve,
                                                              .audit = sandbox_audit,
                                                              .add_conn = server_sandbox_add,
                                                              .egress_allows = sandbox_egress_allows,
                                                              .egress_alert = sandbox_egress_alert,
                                                              .alert = sandbox_alert,
                                                              .matcher = sandbox_matcher,
                                                              .refusal_quiet = server_refusal_quiet,
                                                              .exe_cache = server_exe_cache() }) < 0) {
                say_err("sandbox.sock: %s", cb_error_last());
                goto out;
        }
        sandbox_on = true;
        size_t n_secrets;
        {
                /* The servers run: an admin put may be publishing (TSan, red team rt6 P2). */
                cb_store_read_lock(cbd.store);
                n_secrets = cb_store_count(cbd.store);
                cb_store_read_unlock(cbd.store);
                const cb_policy *pol = cb_policy_acquire(cbd.policy);
                say("serving %zu secrets on %s and %s%s%s (policy %s: %zu clients, %zu grants)", n_secrets,
                    tool_path, admin_path, tcp_fd >= 0 ? " and tcp " : "", tcp_desc, cbd.policy_path,
                    cb_policy_n_clients(pol), cb_policy_n_grants(pol));
                cb_policy_unref(pol);
        }
        (void)sd_notifyf(0, "READY=1\nSTATUS=serving %zu secrets", n_secrets);
        main_serve_loop(sigs, watchdog_usec, audit, provision_dir);
        status = 0;
out:
        rotate_stop();
        if (sandbox_on) {
                cb_sandbox_stop(); /* before the servers its sandboxes use */
                (void)unlink(sandbox_path);
        }
        server_stop();
        red_cache_clear();
        if (tool_fd >= 0) {
                close(tool_fd);
                (void)unlink(tool_path);
        }
        if (admin_fd >= 0) {
                close(admin_fd);
                (void)unlink(admin_path);
        }
        if (tcp_fd >= 0)
                close(tcp_fd);
        cb_tokens_free(cbd.tokens);
        approval_fini();
        cb_ratelimit_free(cbd.rate);
        scanner_shutdown();
        cb_store_close(cbd.store);
        cb_policy_slot_free(cbd.policy);
        cb_unlock_spec_free(spec);
        pthread_mutex_lock(&cbd.admin_lock);
        audit_close();
        pthread_mutex_unlock(&cbd.admin_lock);
        alert_stop();
        if (run_lock >= 0)
                close(run_lock);
        if (state_lock >= 0)
                close(state_lock);
        return status;
}
