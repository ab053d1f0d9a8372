/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker exec (and the machinery `credbroker sandbox` runs on, through
 * cli_exec_hooks): fetch the values (cli_exec_values.c), run CMD in a
 * session of its own, pass its stdout and stderr through one masker over
 * every value's forms (keys/match.h), forward signals, return its status.
 *
 * Values never pass through argv, stderr or an error message; they live in
 * cb_secret (sodium_malloc) memory, are copied only into the masker
 * (sodium_malloc), the child's environment strings (sodium_malloc, freed in
 * the parent right after fork) and --file files.
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
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "cli_tool_internal.h"
#include "credbroker.h"
#include "match.h"

#define EXEC_READ_BUF (64 * 1024)

static volatile sig_atomic_t child_pid;

/* Pass on signals sent to us (kill, a supervisor); signals from the
 * terminal (si_code SI_KERNEL) reach the child's process group anyway. */
static void forward_signal(int sig, siginfo_t *si, void *uc) {
        (void)uc;
        if (child_pid > 0 && (!si || si->si_code != SI_KERNEL))
                (void)kill((pid_t)child_pid, sig);
}

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

struct sink {
        int fd;
        bool broken;
};

static int sink_write(void *userdata, const void *p, size_t n) {
        struct sink *s = userdata;
        int r = cli_write_all(s->fd, p, n);

        if (r < 0)
                s->broken = true;
        return r;
}

/* The child: a session of its own, so it has no controlling terminal --
 * output written to /dev/tty would reach whoever reads the terminal (an
 * agent harness running tools on a pty) past the masker.  in_fd >= 0: its
 * stdin is that pipe (our stdin is a terminal, which it must not hold
 * either: a terminal descriptor is writable). */
_Noreturn static void exec_child(char **cmd, char **envp, int in_fd, int out_fd, int err_fd, const sigset_t *sigmask) {
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        int e;

        for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
                (void)sigaction(forwarded[i], &dfl, NULL);
        (void)sigaction(SIGPIPE, &dfl, NULL);
        (void)sigprocmask(SIG_SETMASK, sigmask, NULL);
        if (setsid() < 0)
                _exit(127);
        if ((in_fd >= 0 && dup2(in_fd, STDIN_FILENO) < 0) || dup2(out_fd, STDOUT_FILENO) < 0 ||
            dup2(err_fd, STDERR_FILENO) < 0)
                _exit(127);
        execvpe(cmd[0], cmd, envp);
        e = errno;
        dprintf(STDERR_FILENO, "credbroker: exec: cannot run '%.256s': %s\n", cmd[0], strerror(e));
        _exit(e == ENOENT ? 127 : 126);
}

/* Pump the child's stdout and stderr through their masking streams until
 * both end; with in_fd >= 0, also our stdin (a terminal) into the child's
 * stdin pipe, never blocking on it (the pipe is non-blocking; a pending
 * piece waits for POLLOUT while the outputs keep flowing). */
static void exec_pump(int in_fd, int fds[2], cb_scan_stream *m[2]) {
        unsigned char *buf = sodium_malloc(EXEC_READ_BUF);
        unsigned char ibuf[4096];
        size_t ilen = 0, ioff = 0;
        struct pollfd p[4];
        bool in_open = in_fd >= 0;

        if (!buf) {
                (void)cli_fail(-ENOMEM, "exec: out of memory: the command's output is dropped");
                close(fds[0]);
                close(fds[1]);
                if (in_fd >= 0)
                        close(in_fd);
                return;
        }
        for (int i = 0; i < 2; i++)
                p[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
        while (p[0].fd >= 0 || p[1].fd >= 0) {
                p[2] = (struct pollfd){ .fd = in_open && ilen == 0 ? STDIN_FILENO : -1, .events = POLLIN };
                p[3] = (struct pollfd){ .fd = in_open && ilen > 0 ? in_fd : -1, .events = POLLOUT };
                if (poll(p, 4, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                for (int i = 0; i < 2; i++) {
                        ssize_t n;

                        if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                                continue;
                        n = read(p[i].fd, buf, EXEC_READ_BUF);
                        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (n > 0 && cb_scan_stream_feed(m[i], buf, (size_t)n) >= 0)
                                continue;
                        /* End of stream, a read error, or our output is gone
                         * (closing makes the child's next write fail as it
                         * would have without us). */
                        if (n == 0)
                                (void)cb_scan_stream_finish(m[i]);
                        close(p[i].fd);
                        p[i].fd = -1;
                }
                if (p[2].fd >= 0 && (p[2].revents & (POLLIN | POLLHUP | POLLERR))) {
                        ssize_t n = read(STDIN_FILENO, ibuf, sizeof(ibuf));
                        if (n > 0) {
                                ilen = (size_t)n;
                                ioff = 0;
                        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                                in_open = false;          /* end of our input: the child's ends too */
                                close(in_fd);
                        }
                }
                if (in_open && ilen > 0) {
                        ssize_t w = write(in_fd, ibuf + ioff, ilen);
                        if (w > 0) {
                                ioff += (size_t)w;
                                ilen -= (size_t)w;
                        } else if (w < 0 && errno != EINTR && errno != EAGAIN) {
                                in_open = false;          /* the child closed its stdin */
                                close(in_fd);
                        }
                }
        }
        if (in_open)
                close(in_fd);
        sodium_free(buf);
}

int cmd_exec(int argc, char **argv) {
        return cli_exec_run(argc, argv, NULL);
}

/* exec, and sandbox through hooks (cli.h): h NULL is plain exec. */
int cli_exec_run(int argc, char **argv, const struct cli_exec_hooks *h) {
        static const char usage[] =
                "usage: credbroker exec [--proxy SECRET[=openai|anthropic|env:PREFIX]]... [--proxy-url URL]\n"
                "                       [--env VAR=SECRET]... [--file PATH=SECRET]... [--] CMD [ARGS...]\n"
                "  --proxy: for an SDK in CMD (needs a \"proxy\" grant; the value never reaches CMD):\n"
                "  sets OPENAI_BASE_URL and OPENAI_API_KEY (=openai, the default), ANTHROPIC_BASE_URL\n"
                "  and ANTHROPIC_API_KEY (=anthropic), or PREFIX_BASE_URL and PREFIX_API_KEY, to the\n"
                "  broker's proxy (--proxy-url, $CREDBROKER_PROXY_URL, default http://127.0.0.1:8411)\n"
                "  and a proxy token any program of your uid may present while this exec runs: it is\n"
                "  revoked when CMD exits (refused once exec is gone, even after SIGKILL), and masked\n"
                "  in CMD's output.  A grant's max_ttl caps it (the operator's cap; one of 300 s or\n"
                "  less is said on stderr): a CMD still running then gets 401 expired.  Under a grant\n"
                "  without max_ttl it lives as long as exec, at most 86400 s.\n"
                "  Fetch each SECRET (needs a \"redeem\" grant), run CMD with the values, and pass CMD's\n"
                "  stdout and stderr through a masker: every occurrence of a value is replaced by\n"
                "  [REDACTED:SECRET], raw or encoded (base64, hex, %-escaped, JSON-escaped: see\n"
                "  docs/redaction-forms.md), also across read boundaries; a value shorter than 4 bytes\n"
                "  is refused.  --env puts a value in the environment variable VAR (values holding NUL\n"
                "  need --file).  --file writes the value to PATH, which must not exist (created\n"
                "  O_EXCL, mode 0400; put it on a tmpfs) and is removed when CMD ends.  stdin is CMD's\n"
                "  (relayed through a pipe when it is a terminal: CMD runs in a session of its own,\n"
                "  without a controlling terminal, so nothing it writes bypasses the masker).\n"
                "  Signals sent to credbroker are passed on.  Exit status: CMD's (128+N if killed by\n"
                "  signal N); 126/127 if CMD cannot be run; credbroker's own codes before it starts.\n";
        static const struct option opts[] = {
                { "env", required_argument, NULL, 'e' },
                { "file", required_argument, NULL, 'f' },
                { "proxy", required_argument, NULL, 'p' },
                { "proxy-url", required_argument, NULL, 'U' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *proxy_url = getenv("CREDBROKER_PROXY_URL");
        struct exec_state st = {};
        int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
        struct sigaction sa = { .sa_sigaction = forward_signal, .sa_flags = SA_SIGINFO | SA_RESTART };
        cb_scan_stream *m[2] = { NULL, NULL };
        struct sink sinks[2] = { { STDOUT_FILENO, false }, { STDERR_FILENO, false } };
        cb_matcher *forms = NULL;
        sigset_t block, old_mask;
        cb_client *c = NULL;
        char **cmd;
        pid_t pid, w;
        int ch, r, e, status = 0;

        optind = 1;
        opterr = 0;
        /* '+': stop at CMD, its options are its own. */
        while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
                switch (ch) {
                case 'e':
                case 'f':
                        r = cli_exec_add_binding(&st, optarg, ch == 'f');
                        if (r < 0) {
                                r = -r;
                                goto out;
                        }
                        break;
                case 'p':
                        if (st.npx == CLI_PROXY_MAX) {
                                r = cli_usage("exec: at most %d --proxy", CLI_PROXY_MAX);
                                goto out;
                        }
                        r = cli_proxy_parse(&st.px[st.npx], optarg);
                        if (r < 0) {
                                r = -r;
                                goto out;
                        }
                        st.npx++;
                        break;
                case 'U':
                        if (strncmp(optarg, "http://", 7) != 0) {
                                r = cli_usage("exec: --proxy-url takes http://127.0.0.1:PORT (the broker's "
                                              "--listen-tcp)");
                                goto out;
                        }
                        proxy_url = optarg;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        r = CB_EXIT_OK;
                        goto out;
                default:
                        r = -cli_unknown_option(argc, argv);
                        goto out;
                }
        }
        if (optind >= argc) {
                r = cli_usage("exec needs a command after the options (exec --env VAR=SECRET -- CMD ...)");
                goto out;
        }
        if (st.nb == 0 && st.npx == 0 && !h) {
                r = cli_usage("exec needs at least one --proxy SECRET, --env VAR=SECRET or --file PATH=SECRET");
                goto out;
        }
        cmd = argv + optind;

        /* A handle only when there is something to ask the broker for
         * (sandbox without --env/--proxy: none; making one costs libcurl's
         * and OpenSSL's initialisation and a user database lookup). */
        r = st.nb || st.npx ? cli_connect(0, &c) : 0;
        /* The masker and exec_pump's buffer are sodium_malloc memory (the
         * handle's first use did this). */
        if (r == 0 && sodium_init() < 0)
                r = -cli_fail(-ENOMEM, "exec: libsodium cannot be initialised");
        if (r < 0 || (r = cli_exec_fetch(&st, c)) < 0 ||
            (r = cli_proxy_mint(st.px, st.npx, c,
                                h && h->proxy_url ? h->proxy_url
                                : proxy_url && *proxy_url ? proxy_url : "http://127.0.0.1:8411", !h)) < 0 ||
            (r = cli_exec_env(&st)) < 0) {
                r = -r;
                goto out;
        }
        cb_client_free(c);
        c = NULL;
        /* sandbox: CMD runs inside what the hook wraps it in. */
        if (h && (r = h->wrap(h->ud, cmd, &cmd)) < 0) {
                r = -r;
                goto out;
        }
        /* One matcher over every value's forms (keys/match.h), one eager
         * stream per output: only a tail that may still become a value is
         * held back (prompts are not delayed). */
        {
                cb_matcher_builder *b = cb_matcher_builder_new(CB_MATCH_SHORT);
                size_t k;
                r = b ? 0 : -ENOMEM;
                for (k = 0; r >= 0 && k < st.nval; k++)
                        r = cb_matcher_builder_add(b, cb_secret_name(st.val[k]), 0, cb_secret_value(st.val[k]),
                                                   cb_secret_len(st.val[k]));
                if (r == -EMSGSIZE) {
                        cb_matcher_builder_free(b);
                        r = cli_fail(r, "exec: secret '%s' is shorter than %d bytes: its output could not be masked, "
                                        "refused", cb_secret_name(st.val[k - 1]), CB_MATCH_MIN_VALUE);
                        goto out;
                }
                /* exec --proxy's session tokens are masked too: the command
                 * may print its environment. */
                for (k = 0; r >= 0 && k < st.npx; k++)
                        r = cb_matcher_builder_add(b, st.px[k].secret, 0, (const unsigned char *)st.px[k].token,
                                                   strlen(st.px[k].token));
                if (r >= 0)
                        r = cb_matcher_build(b, &forms);
                else
                        cb_matcher_builder_free(b);
                for (int i = 0; r >= 0 && i < 2; i++) {
                        m[i] = cb_scan_stream_new(forms, NULL, sink_write, &sinks[i]);
                        if (!m[i])
                                r = -ENOMEM;
                        else
                                cb_scan_stream_eager(m[i]);
                }
                if (r < 0) {
                        r = cli_fail(r, "exec: cannot set up the output masker: %s", strerror(-r));
                        goto out;
                }
        }
        r = cli_exec_files(&st);
        if (r < 0) {
                r = -r;
                goto out;
        }
        /* Our stdin a terminal: the child gets a pipe we feed instead. */
        if (isatty(STDIN_FILENO) && (pipe2(in_pipe, O_CLOEXEC) < 0 || fcntl(in_pipe[1], F_SETFL, O_NONBLOCK) < 0)) {
                r = cli_fail(-errno, "exec: pipe: %s", strerror(errno));
                goto out;
        }
        if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) {
                r = cli_fail(-errno, "exec: pipe: %s", strerror(errno));
                goto out;
        }
        fflush(stdout);
        fflush(stderr);
        /* Hold the forwarded signals until child_pid is known: one that
         * arrives meanwhile is then passed on, not lost. */
        sigemptyset(&block);
        for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++) {
                sigaddset(&block, forwarded[i]);
                (void)sigaction(forwarded[i], &sa, NULL);
        }
        signal(SIGPIPE, SIG_IGN);
        sigprocmask(SIG_BLOCK, &block, &old_mask);
        pid = fork();
        if (pid == 0)
                exec_child(cmd, st.envp, in_pipe[0], out_pipe[1], err_pipe[1], &old_mask);
        if (pid > 0)
                child_pid = pid;
        e = errno;
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        if (pid < 0) {
                r = cli_fail(-e, "exec: fork: %s", strerror(e));
                goto out;
        }
        /* The parent needs no value any more: the maskers hold their own
         * copies. */
        cli_exec_wipe_env(&st);
        for (size_t i = 0; i < st.nval; i++)
                cb_secret_free(st.val[i]);
        st.nval = 0;
        close(out_pipe[1]);
        close(err_pipe[1]);
        out_pipe[1] = err_pipe[1] = -1;
        if (in_pipe[0] >= 0)
                close(in_pipe[0]);
        in_pipe[0] = -1;
        /* sandbox: set up what the sandbox needs from outside before CMD
         * starts (the child waits for it); on failure CMD never runs, and
         * what the child said (bubblewrap's reason) is passed on. */
        if (h && (r = h->started(h->ud, pid)) < 0) {
                int fds[2] = { out_pipe[0], err_pipe[0] };
                (void)kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                child_pid = 0;
                if (in_pipe[1] >= 0)
                        close(in_pipe[1]);
                in_pipe[1] = -1;
                exec_pump(-1, fds, m);
                out_pipe[0] = err_pipe[0] = -1; /* closed by exec_pump */
                r = -r;
                goto out;
        }
        {
                int fds[2] = { out_pipe[0], err_pipe[0] };
                exec_pump(in_pipe[1], fds, m);
                out_pipe[0] = err_pipe[0] = in_pipe[1] = -1; /* closed by exec_pump */
        }
        while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
                ;
        e = errno;
        child_pid = 0;
        if (w < 0)
                r = cli_fail(-e, "exec: waiting for the command: %s", strerror(e));
        else if (WIFEXITED(status))
                r = WEXITSTATUS(status);
        else if (WIFSIGNALED(status))
                r = 128 + WTERMSIG(status);
        else
                r = CB_EXIT_FAIL;
        cli_proxy_release(st.px, st.npx); /* the tokens end with CMD */
        st.npx = 0;
out:
        for (int i = 0; i < 2; i++) {
                if (in_pipe[i] >= 0)
                        close(in_pipe[i]);
                if (out_pipe[i] >= 0)
                        close(out_pipe[i]);
                if (err_pipe[i] >= 0)
                        close(err_pipe[i]);
                cb_scan_stream_free(m[i]);
        }
        cb_matcher_free(forms);
        cb_client_free(c);
        cli_proxy_release(st.px, st.npx);
        cli_exec_free(&st);
        return r;
}
