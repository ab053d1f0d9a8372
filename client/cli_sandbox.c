/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker sandbox: run CMD under bubblewrap where the broker is its only
 * way out (issue 17; the choices and why: docs/sandbox.md).
 *
 * The launcher builds bwrap's arguments -- namespaces, the file system
 * view (cli_sandbox_view.c), a seccomp filter made with libseccomp and
 * handed over as BPF (cli_sandbox_seccomp.c) -- and runs bwrap through
 * exec's machinery (cli_exec.c), so
 * --env values and --proxy tokens, output masking, signal forwarding and
 * the exit status are exec's.  bwrap is started with --info-fd and
 * --block-fd: CMD does not run until the launcher has read the sandbox's
 * pid and released it, and handed the broker a listener made inside the
 * sandbox (cli_sandbox_broker.c).  This file: the verb's options, finding
 * bwrap, and exec's hooks.
 *
 * Values never pass through argv: --env values reach CMD through exec's
 * environment (bwrap passes it on); bwrap's argv holds paths and names.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/close_range.h>

#include <jansson.h>

#include "cli.h"
#include "cli_sandbox_internal.h"

static void sb_free(struct sb_state *st) {
        for (size_t i = 0; i < st->nargs; i++)
                free(st->args[i]);
        st->nargs = 0;
        for (size_t i = 0; i < st->nroots; i++) {
                if (st->root_fd[i] >= 0)
                        close(st->root_fd[i]); /* our lock on it goes with it */
                free(st->roots[i]);
        }
        st->nroots = 0;
        for (size_t i = 0; i < st->nhidden; i++)
                free(st->hidden[i]);
        st->nhidden = 0;
        for (size_t i = 0; i < st->nph; i++)
                free(st->ph[i].path);
        st->nph = 0;
        int *fds[] = { &st->seccomp_fd, &st->info_rd, &st->info_wr, &st->block_rd, &st->block_wr, &st->broker_conn };
        for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
                if (*fds[i] >= 0) {
                        close(*fds[i]);
                        *fds[i] = -1;
                }
}

/* ---- bubblewrap ---------------------------------------------------------- */

/* The bwrap we run: $CREDBROKER_BWRAP (tests) or /usr/bin/bwrap, never a
 * PATH lookup.  It must be a root-owned regular executable that only root
 * may change: CMD's whole confinement is its work. */
static int find_bwrap(struct sb_state *st) {
        const char *p = secure_getenv("CREDBROKER_BWRAP");
        struct stat sb;

        st->bwrap = p && *p ? p : "/usr/bin/bwrap";
        if (st->bwrap[0] != '/')
                return -cli_usage("sandbox: CREDBROKER_BWRAP must be an absolute path, not '%.256s'", st->bwrap);
        if (stat(st->bwrap, &sb) < 0)
                return -cli_fail(-ENOENT, "sandbox: bubblewrap not found at %s (%s): install it (apt-get install "
                                          "bubblewrap); CMD was not run unconfined", st->bwrap, strerror(errno));
        if (!S_ISREG(sb.st_mode) || !(sb.st_mode & 0111))
                return -cli_fail(-EACCES, "sandbox: %s is not an executable file; CMD was not run", st->bwrap);
        if (sb.st_uid != 0 || (sb.st_mode & 022))
                return -cli_fail(-EPERM, "sandbox: %s must be owned by root and writable by root only (owner %u, "
                                         "mode %04o); CMD was not run", st->bwrap, (unsigned)sb.st_uid,
                                 (unsigned)(sb.st_mode & 07777));
        return 0;
}
/* ---- exec's hooks ---------------------------------------------------------- */

static int hook_wrap(void *ud, char **cmd, char ***ret_argv) {
        struct sb_state *st = ud;
        int p[2], r;

        if ((r = sb_seccomp_filter(st)) < 0)
                return r;
        /* bwrap's ends are inherited (no close-on-exec), ours are not. */
        if (pipe2(p, O_CLOEXEC) < 0)
                return -cli_fail(-errno, "sandbox: pipe: %s", strerror(errno));
        st->info_rd = p[0];
        st->info_wr = p[1];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -cli_fail(-errno, "sandbox: pipe: %s", strerror(errno));
        st->block_rd = p[0];
        st->block_wr = p[1];
        /* Nothing else we inherited reaches CMD: an open directory or
         * socket would be a way around the whole view (openat on a
         * directory outside it, a connected socket to a host service). */
        if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
                return -cli_fail(-errno, "sandbox: close_range: %s (Linux 5.11 needed)", strerror(errno));
        if (fcntl(st->info_wr, F_SETFD, 0) < 0 || fcntl(st->block_rd, F_SETFD, 0) < 0 ||
            fcntl(st->seccomp_fd, F_SETFD, 0) < 0)
                return -cli_fail(-errno, "sandbox: fcntl: %s", strerror(errno));
        /* Every failure below has been said; r is an exit code negated. */
        if ((r = sb_build_args(st, cmd)) < 0)
                return r;
        *ret_argv = st->args;
        return 0;
}

/* Read bwrap's --info-fd: {"child-pid": N, ...} once the namespaces exist.
 * EOF before it: bwrap failed (its own message went to stderr). */
static int read_info(struct sb_state *st) {
        char buf[SB_INFO_MAX + 1];
        size_t n = 0;
        json_t *o, *pid;

        for (;;) {
                struct pollfd pf = { .fd = st->info_rd, .events = POLLIN };
                int k = poll(&pf, 1, SB_INFO_TIMEOUT_MS);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return -cli_fail(-ETIMEDOUT, "sandbox: bubblewrap did not set the sandbox up within %d s; "
                                                     "CMD was not run", SB_INFO_TIMEOUT_MS / 1000);
                ssize_t m = read(st->info_rd, buf + n, SB_INFO_MAX - n);
                if (m < 0 && errno == EINTR)
                        continue;
                if (m <= 0)
                        break;
                n += (size_t)m;
                buf[n] = '\0';
                if (memchr(buf, '}', n) || n == SB_INFO_MAX)
                        break;
        }
        if (n == 0) {
                fprintf(stderr, "credbroker: sandbox: bubblewrap could not set up the sandbox (its reason "
                                "follows; unprivileged user namespaces may be disabled); CMD was not run\n");
                return -SB_EXIT_SETUP;
        }
        buf[n] = '\0';
        o = json_loadb(buf, n, JSON_DISABLE_EOF_CHECK, NULL);
        pid = o ? json_object_get(o, "child-pid") : NULL;
        if (!json_is_integer(pid) || json_integer_value(pid) <= 1) {
                json_decref(o);
                fprintf(stderr, "credbroker: sandbox: bubblewrap's --info-fd said no child pid; CMD was not run\n");
                return -SB_EXIT_SETUP;
        }
        st->sandbox_pid = (pid_t)json_integer_value(pid);
        json_decref(o);
        return 0;
}

static int hook_started(void *ud, pid_t pid) {
        struct sb_state *st = ud;
        int r;

        (void)pid;
        /* bwrap's ends: ours closed, so its exit is an EOF here (the
         * seccomp memfd stays open: it is filled at the release). */
        close(st->info_wr);
        close(st->block_rd);
        st->info_wr = st->block_rd = -1;
        /* Our placeholders are made while bwrap sets the sandbox up (they
         * are mounted by us, after it: nothing in its argv names them). */
        if ((r = sb_placeholders_make(st)) < 0) {
                /* CMD must not run (it could not anyway: its seccomp
                 * program is written only at the release). */
                if (read_info(st) == 0) {
                        int pfd = (int)syscall(SYS_pidfd_open, st->sandbox_pid, 0);
                        if (pfd >= 0) {
                                (void)syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
                                close(pfd);
                        }
                }
                return r;
        }
        if ((r = read_info(st)) < 0)
                return r;
        /* The sandbox exists, CMD waits: its only way out is made now,
         * while a child waits for bwrap's set-up to mount our placeholders. */
        {
                int lfd = -1;
                pid_t mc = -1;
                if ((r = sb_mount_placeholders_start(st, st->sandbox_pid, &mc)) == 0 &&
                    (r = sb_make_listener(st->sandbox_pid, &lfd)) == 0) {
                        r = sb_hand_over(st, lfd);
                        close(lfd); /* the broker holds its own copy */
                }
                if (mc >= 0 && r < 0) {
                        kill(mc, SIGKILL);
                        while (waitpid(mc, NULL, 0) < 0 && errno == EINTR)
                                ;
                } else if (mc >= 0) {
                        r = sb_mount_placeholders_wait(mc);
                }
                if (r < 0) {
                        /* Never let bwrap read EOF on --block-fd: it would
                         * go on and run CMD.  The waiting process dies
                         * first (our uid owns its user namespace). */
                        int pfd = (int)syscall(SYS_pidfd_open, st->sandbox_pid, 0);
                        if (pfd >= 0) {
                                (void)syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
                                close(pfd);
                        }
                        return r;
                }
        }
        if ((r = sb_seccomp_fill(st)) < 0) {
                int pfd = (int)syscall(SYS_pidfd_open, st->sandbox_pid, 0);
                if (pfd >= 0) {
                        (void)syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
                        close(pfd);
                }
                return r;
        }
        if (write(st->block_wr, "x", 1) != 1)
                return -cli_fail(-errno, "sandbox: cannot release the command: %s", strerror(errno));
        close(st->block_wr);
        st->block_wr = -1;
        return 0;
}

int cmd_sandbox(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker sandbox [--client NAME] [--write PATH]... [--hide PATH]...\n"
                "                          [--proxy SECRET[=openai|anthropic|env:PREFIX]]... [--env VAR=SECRET]...\n"
                "                          [--allow-host HOST[:PORT]]...\n"
                "                          [--] CMD [ARGS...]\n"
                "  Run CMD under bubblewrap (/usr/bin/bwrap): new user, mount, pid, ipc, uts and network\n"
                "  namespaces (only lo inside: no network), the system read-only, writable only the\n"
                "  working directory, each --write PATH and a private /tmp; credentials of common tools,\n"
                "  shell history and the broker's directories hidden (and each --hide PATH); shell\n"
                "  start-up files, .git/hooks, .git/config, .mcp.json and editor settings never writable,\n"
                "  even in the working directory; a new session (no TIOCSTI), no new privileges, a\n"
                "  seccomp filter (ptrace, keyctl, bpf, mount, modules, clock, raw/packet and Unix\n"
                "  sockets, ... refused).  docs/sandbox.md has every rule and why.\n"
                "  The only way out: credbrokerd serves its proxy on 127.0.0.1:8411 inside the sandbox\n"
                "  (a listener made in the sandbox's network namespace and handed to the broker over\n"
                "  sandbox.sock, next to tools.sock); HTTP_PROXY, HTTPS_PROXY and ALL_PROXY point at it.\n"
                "  The broker must find a client of its policy selecting you (--client NAME: that one).\n"
                "  --proxy: as exec (a \"proxy\" grant); its base URL is that listener.\n"
                "  --env VAR=SECRET: as exec (a \"redeem\" grant; CMD's output is masked).\n"
                "  HTTPS without a credential: CONNECT tunnels to the hosts of the client's\n"
                "  \"egress\": {\"allow\": [...]} (credbroker-policy(5)); the TLS server name must be the\n"
                "  CONNECTed host; --allow-host HOST[:PORT] narrows that list for this sandbox.\n"
                "  Not yet in this build: plain-HTTP forwarding, the outbound leak guard (docs/sandbox.md).\n"
                "  Exit status: CMD's; 125 if the sandbox could not be set up (CMD did not run);\n"
                "  credbroker's own codes before that.\n";
        static const struct option opts[] = {
                { "write", required_argument, NULL, 'w' },   { "hide", required_argument, NULL, 'H' },
                { "env", required_argument, NULL, 'e' },     { "proxy", required_argument, NULL, 'p' },
                { "client", required_argument, NULL, 'c' },  { "allow-host", required_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' },          {},
        };
        struct sb_state st = { .seccomp_fd = -1, .info_rd = -1, .info_wr = -1, .block_rd = -1, .block_wr = -1,
                               .broker_conn = -1 };
        struct cli_exec_hooks hooks = { .wrap = hook_wrap, .started = hook_started, .proxy_url = SB_URL, .ud = &st };
        char **xargv = NULL;
        size_t xn = 0;
        int ch, r;

        xargv = calloc(2 * (size_t)argc + 2, sizeof(char *)); /* --env=X becomes two */
        if (!xargv)
                return cli_fail(-ENOMEM, "out of memory");
        xargv[xn++] = "sandbox";
        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
                switch (ch) {
                case 'w':
                case 'H':
                        if ((ch == 'w' ? st.nwrite : st.nhide) >= SB_PATHS_MAX) {
                                r = cli_usage("sandbox: at most %d --write and %d --hide", SB_PATHS_MAX, SB_PATHS_MAX);
                                goto out;
                        }
                        if (ch == 'w')
                                st.write_arg[st.nwrite++] = optarg;
                        else
                                st.hide_arg[st.nhide++] = optarg;
                        break;
                case 'e':
                case 'p':
                        xargv[xn++] = ch == 'e' ? "--env" : "--proxy";
                        xargv[xn++] = optarg;
                        break;
                case 'c':
                        if (strlen(optarg) > 64) {
                                r = cli_usage("sandbox: --client: a client name has at most 64 characters");
                                goto out;
                        }
                        st.client = optarg;
                        break;
                case 'a':
                        if (st.nallow >= SB_ALLOW_MAX || strlen(optarg) > 260 || !*optarg) {
                                r = cli_usage("sandbox: --allow-host takes HOST[:PORT] (at most %d of them)",
                                              SB_ALLOW_MAX);
                                goto out;
                        }
                        st.allow[st.nallow++] = optarg;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        r = CB_EXIT_OK;
                        goto out;
                default:
                        r = cli_usage("sandbox: unknown option '%.64s' (sandbox --help)", argv[optind - 1]);
                        goto out;
                }
        }
        if (optind >= argc) {
                r = cli_usage("sandbox needs a command after the options (sandbox -- CMD ARGS...)");
                goto out;
        }
        if ((r = find_bwrap(&st)) < 0) {
                r = -r;
                goto out;
        }
        if (!getcwd(st.cwd, sizeof(st.cwd))) {
                r = cli_fail(-errno, "sandbox: getcwd: %s", strerror(errno));
                goto out;
        }
        if ((r = sb_add_root(&st, st.cwd, true)) < 0) {
                r = -r;
                goto out;
        }
        snprintf(st.cwd, sizeof(st.cwd), "%s", st.roots[0]);
        for (size_t i = 0; i < st.nwrite; i++)
                if ((r = sb_add_root(&st, st.write_arg[i], false)) < 0) {
                        r = -r;
                        goto out;
                }
        xargv[xn++] = "--";
        for (int i = optind; i < argc; i++) {
                size_t u = strlen(st.cmdline);
                if (u < sizeof(st.cmdline) - 1)
                        snprintf(st.cmdline + u, sizeof(st.cmdline) - u, "%s%s", i > optind ? " " : "", argv[i]);
                xargv[xn++] = argv[i];
        }
        xargv[xn] = NULL;
        /* The clock file times come from (coarse): anything CMD changes
         * has a ctime at or after this (cli_sandbox_nested.c). */
        struct timespec since;
        clock_gettime(CLOCK_REALTIME_COARSE, &since);
        r = cli_exec_run((int)xn, xargv, &hooks);
        sb_placeholders_remove(&st);
        /* A repository CMD changed that could not be moved aside, or a tree
         * not fully checked: the caller must not take CMD's status for
         * "done" (4, integrity; said on stderr). */
        if (sb_check_nested(&st, &since) < 0)
                r = CB_EXIT_INTEGRITY;
out:
        sb_free(&st);
        free(xargv);
        return r;
}
