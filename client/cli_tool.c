/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tool verbs: token, fetch, exec.  They talk to tools.sock through
 * libcredbroker.  The broker identifies the process on the other end of the
 * socket, which is this CLI: a grant meant for `credbroker fetch` or `exec`
 * names credbroker's executable (plus the uid, gid or cgroup of the tool
 * that runs it).
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
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "credbroker.h"
#include "error.h"
#include "match.h"
#include "store.h"

#define FETCH_TTL 10 /* seconds: fetch and exec redeem at once */
#define EXEC_BINDINGS_MAX 64 /* --env and --file values per exec */
#define EXEC_READ_BUF (64 * 1024)

/* ---- helpers shared with cli_admin.c ---- */

int cli_write_all(int fd, const void *p, size_t n) {
        const unsigned char *s = p;

        while (n) {
                ssize_t k = write(fd, s, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                s += k;
                n -= (size_t)k;
        }
        return 0;
}

int cli_connect(int admin, cb_client **ret) {
        int r = admin ? cb_client_new_admin(cli_admin_socket, ret) : cb_client_new(cli_socket, ret);

        if (r < 0)
                return -cli_fail(r, "cannot use the %s socket: %s", admin ? "admin" : "tool",
                                 r == -ENAMETOOLONG ? "path too long for a Unix socket" : strerror(-r));
        if (!admin)
                cb_client_on_pending(*ret, cli_on_pending, NULL);
        return 0;
}

int cli_fail_client(int r, const cb_client *c, const char *verb) {
        return cli_fail(r, "%s: %s", verb, cb_client_error(c));
}

/* getopt loop shared by the verbs here.  Returns 1 after --help, 0, or a
 * negated exit code. */
static int unknown_option(int argc, char **argv) {
        (void)argc;
        return -cli_usage("%s: unknown or incomplete option '%.64s'", argv[0], argv[optind - 1]);
}

/* Get a short-lived redeem token for name and redeem it. */
static int fetch_one(cb_client *c, const char *verb, const char *name, cb_secret **ret) {
        char *tok = NULL;
        int r;

        r = cb_client_token(c, name, "redeem", FETCH_TTL, &tok, NULL, NULL);
        if (r < 0)
                return -cli_fail_client(r, c, verb);
        r = cb_client_redeem(c, tok, ret);
        cb_token_free(tok);
        if (r < 0)
                return -cli_fail_client(r, c, verb);
        return 0;
}

/* ---- token ---- */

int cmd_token(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker token SECRET [--use proxy|redeem] [--ttl SECONDS] [--bind exe|process|uid] [--json]\n"
                "  Ask the broker (tools.sock) for a token for SECRET.  The policy must grant this use\n"
                "  to the caller: the broker sees credbroker's executable and the caller's uid/gid/cgroup.\n"
                "  --use proxy (the default, as for POST /v1/token): for /v1/proxy/SECRET/...,\n"
                "    the value never leaves the broker;\n"
                "  --use redeem: exchangeable for the value (POST /v1/redeem) until it expires or the\n"
                "    grant's max_uses is spent.\n"
                "  --ttl: lifetime, seconds or 90m/8h/1d (default: the broker's, capped by the grant).\n"
                "  --bind: who may present it: exe (default: the requesting executable, here\n"
                "    credbroker itself), process, or uid (proxy tokens only: any program of this\n"
                "    uid, e.g. an SDK given the token as its API key).\n"
                "  Prints the token on stdout (one line); accessor and lifetime on stderr; --json:\n"
                "  {\"token\",\"accessor\",\"use\",\"bind\",\"expires_in\"} on stdout.\n"
                "  Under a grant with \"approval\": true, first waits for an operator's decision\n"
                "  (the request's ID is printed on stderr); denied or timed out: exit 7.\n";
        static const struct option opts[] = {
                { "use", required_argument, NULL, 'u' },
                { "ttl", required_argument, NULL, 't' },
                { "bind", required_argument, NULL, 'b' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *use = "proxy", *bind = NULL;
        bool json = false;
        unsigned long long ttl = 0;
        cb_client *c = NULL;
        char *tok = NULL, *acc = NULL;
        unsigned expires = 0;
        int ch, r;

        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (ch) {
                case 'u':
                        if (strcmp(optarg, "proxy") != 0 && strcmp(optarg, "redeem") != 0)
                                return cli_usage("token: --use takes proxy or redeem");
                        use = optarg;
                        break;
                case 't':
                        if (cli_parse_duration(optarg, UINT32_MAX, &ttl) < 0 || ttl == 0)
                                return cli_usage("token: --ttl takes seconds or a duration (90m, 8h, 1d)");
                        break;
                case 'b':
                        if (strcmp(optarg, "exe") != 0 && strcmp(optarg, "process") != 0 && strcmp(optarg, "uid") != 0)
                                return cli_usage("token: --bind takes exe, process or uid");
                        bind = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return CB_EXIT_OK;
                default:
                        return -unknown_option(argc, argv);
                }
        }
        if (!cli_one_name(argc, argv, "token", "SECRET"))
                return CB_EXIT_USAGE;
        r = cli_connect(0, &c);
        if (r < 0)
                return -r;
        r = cb_client_token_bind(c, argv[optind], use, (unsigned)ttl, bind, &tok, &acc, &expires);
        if (r < 0) {
                r = cli_fail_client(r, c, "token");
                goto out;
        }
        if (json) {
                /* The token is what this command exists to print; jansson's
                 * copies are wiped on free (libcredbroker's allocator hooks). */
                json_t *o = json_object();

                if (o && (json_object_set_new(o, "token", json_string(tok)) < 0 ||
                          json_object_set_new(o, "accessor", json_string(acc)) < 0 ||
                          json_object_set_new(o, "use", json_string(use)) < 0 ||
                          json_object_set_new(o, "bind", json_string(bind ? bind : "exe")) < 0 ||
                          json_object_set_new(o, "expires_in", json_integer((json_int_t)expires)) < 0)) {
                        json_decref(o);
                        o = NULL;
                }
                char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;

                json_decref(o);
                r = t ? cli_write_all(STDOUT_FILENO, t, strlen(t)) : -ENOMEM;
                if (r >= 0)
                        r = cli_write_all(STDOUT_FILENO, "\n", 1);
                if (t) {
                        sodium_memzero(t, strlen(t));
                        free(t);
                }
                if (r < 0) {
                        r = cli_fail(r, "token: cannot write the answer to stdout");
                        goto out;
                }
                r = CB_EXIT_OK;
                goto out;
        }
        {
                struct iovec iov[2] = { { tok, strlen(tok) }, { (void *)"\n", 1 } };
                ssize_t want = (ssize_t)(iov[0].iov_len + 1), k;
                do
                        k = writev(STDOUT_FILENO, iov, 2);
                while (k < 0 && errno == EINTR);
                if (k != want) {
                        r = cli_fail(k < 0 ? -errno : -EIO, "token: cannot write the token to stdout");
                        goto out;
                }
        }
        fprintf(stderr, "accessor %s, %s, expires in %u s\n", acc, use, expires);
        r = CB_EXIT_OK;
out:
        cb_token_free(tok);
        free(acc);
        cb_client_free(c);
        return r;
}

/* ---- fetch ---- */

int cmd_fetch(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker fetch SECRET [--newline | --json]\n"
                "  Get a one-shot redeem token for SECRET and redeem it: needs a \"redeem\" grant.\n"
                "  Writes the value to stdout exactly as stored (binary-safe, nothing added);\n"
                "  --newline appends one \"\\n\".  Prefer 'credbroker exec', which masks the value\n"
                "  in the command's output, or a proxy token, which never reveals it.\n"
                "  --json: {\"secret\",\"version\",\"value\"} (\"value_base64\" instead when the value is\n"
                "  not UTF-8 text without NUL), as POST /v1/redeem answers.\n";
        static const struct option opts[] = {
                { "newline", no_argument, NULL, 'n' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool newline = false, json = false;
        cb_client *c = NULL;
        cb_secret *s = NULL;
        int ch, r;

        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (ch) {
                case 'n':
                        newline = true;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return CB_EXIT_OK;
                default:
                        return -unknown_option(argc, argv);
                }
        }
        if (!cli_one_name(argc, argv, "fetch", "SECRET"))
                return CB_EXIT_USAGE;
        if (json && newline)
                return cli_usage("fetch: --json and --newline do not go together");
        r = cli_connect(0, &c);
        if (r < 0)
                return -r;
        r = fetch_one(c, "fetch", argv[optind], &s);
        if (r < 0) {
                r = -r;
                goto out;
        }
        signal(SIGPIPE, SIG_IGN); /* a closed stdout is an error message, not a silent death */
        r = json ? cli_write_value_json(s) : cli_write_all(STDOUT_FILENO, cb_secret_value(s), cb_secret_len(s));
        if (r >= 0 && (newline || json))
                r = cli_write_all(STDOUT_FILENO, "\n", 1);
        if (r < 0) {
                r = cli_fail(r, "fetch: cannot write the value to stdout: %s", strerror(-r));
                goto out;
        }
        r = CB_EXIT_OK;
out:
        cb_secret_free(s);
        cb_client_free(c);
        return r;
}

/* ---- exec ---- */

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

static bool env_name_ok(const char *s, size_t n) {
        if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(s[i] == '_' || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
                      (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

static int add_binding(struct exec_state *st, const char *arg, bool file) {
        const char *opt = file ? "--file" : "--env";
        const char *eq = strrchr(arg, '='); /* secret names hold no '=', paths may */
        struct binding *b;
        char *target;

        if (st->nb >= EXEC_BINDINGS_MAX)
                return -cli_usage("exec: at most %d --env/--file", EXEC_BINDINGS_MAX);
        if (!eq || eq == arg || !eq[1])
                return -cli_usage("exec: %s takes %s=SECRET", opt, file ? "PATH" : "VAR");
        if (cb_name_check(eq + 1) < 0)
                return -cli_usage("exec: %s %.64s: %s", opt, arg, cb_error_last());
        if (!file && !env_name_ok(arg, (size_t)(eq - arg)))
                return -cli_usage("exec: --env: '%.*s' is not a variable name", (int)(eq - arg > 64 ? 64 : eq - arg),
                                  arg);
        target = strndup(arg, (size_t)(eq - arg));
        if (!target)
                return -cli_fail(-ENOMEM, "out of memory");
        for (size_t i = 0; i < st->nb; i++)
                if (st->b[i].file == file && strcmp(st->b[i].target, target) == 0) {
                        free(target);
                        return -cli_usage("exec: %s %.64s given twice", opt, arg);
                }
        b = &st->b[st->nb++];
        b->target = target;
        b->secret = (char *)eq + 1;
        b->file = file;
        return 0;
}

/* Fetch each distinct secret once. */
static int exec_fetch(struct exec_state *st, cb_client *c) {
        for (size_t i = 0; i < st->nb; i++) {
                size_t k;
                for (k = 0; k < st->nval; k++)
                        if (strcmp(cb_secret_name(st->val[k]), st->b[i].secret) == 0)
                                break;
                if (k == st->nval) {
                        int r = fetch_one(c, "exec", st->b[i].secret, &st->val[k]);
                        if (r < 0)
                                return r;
                        st->nval++;
                }
                st->b[i].value = k;
        }
        return 0;
}

/* The child's environment: ours, minus the variables we set, plus them. */
static int exec_env(struct exec_state *st) {
        extern char **environ;
        size_t n = 0, k = 0;

        while (environ[n])
                n++;
        st->envp = calloc(n + st->nb + 2 * st->npx + 1, sizeof(char *));
        if (!st->envp)
                return -cli_fail(-ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                size_t len = strcspn(environ[i], "=");
                bool ours = false;
                for (size_t j = 0; j < st->nb && !ours; j++)
                        ours = !st->b[j].file && strlen(st->b[j].target) == len &&
                               strncmp(st->b[j].target, environ[i], len) == 0;
                for (size_t j = 0; j < st->npx && !ours; j++)
                        ours = strncmp(st->px[j].env_base, environ[i], len + 1) == 0 ||
                               strncmp(st->px[j].env_key, environ[i], len + 1) == 0;
                if (!ours)
                        st->envp[k++] = environ[i];
        }
        for (size_t j = 0; j < st->nb; j++) {
                const cb_secret *v = st->val[st->b[j].value];
                size_t tl = strlen(st->b[j].target), vl = cb_secret_len(v);
                char *s;

                if (st->b[j].file)
                        continue;
                if (memchr(cb_secret_value(v), 0, vl))
                        return -cli_fail(-EINVAL, "exec: secret '%s' holds a NUL byte and cannot go into an "
                                         "environment variable (use --file)", st->b[j].secret);
                s = sodium_malloc(tl + 1 + vl + 1);
                if (!s)
                        return -cli_fail(-ENOMEM, "out of memory");
                memcpy(s, st->b[j].target, tl);
                s[tl] = '=';
                memcpy(s + tl + 1, cb_secret_value(v), vl);
                s[tl + 1 + vl] = 0;
                st->envstr[st->nenvstr++] = s;
                st->envp[k++] = s;
        }
        for (size_t j = 0; j < st->npx; j++) {
                st->envp[k++] = st->px[j].env_base;
                st->envp[k++] = st->px[j].env_key;
        }
        return 0;
}

static int exec_files(struct exec_state *st) {
        for (size_t j = 0; j < st->nb; j++) {
                struct binding *b = &st->b[j];
                const cb_secret *v;
                struct stat sb;
                int fd, r;

                if (!b->file)
                        continue;
                v = st->val[b->value];
                fd = open(b->target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
                if (fd < 0) {
                        r = -errno;
                        return -cli_fail(r, "exec: --file %.256s: %s%s", b->target, strerror(-r),
                                         r == -EEXIST ? " (refusing to overwrite it)" : "");
                }
                if (fstat(fd, &sb) == 0) {
                        b->dev = sb.st_dev;
                        b->ino = sb.st_ino;
                        b->created = true;
                }
                r = cli_write_all(fd, cb_secret_value(v), cb_secret_len(v));
                if (close(fd) < 0 && r >= 0)
                        r = -errno;
                if (!b->created) {
                        (void)unlink(b->target);
                        r = r < 0 ? r : -EIO;
                }
                if (r < 0)
                        return -cli_fail(r, "exec: cannot write %.256s: %s", b->target, strerror(-r));
        }
        return 0;
}

/* Remove the --file files we created, if they are still ours. */
static void exec_unlink(struct exec_state *st) {
        for (size_t j = 0; j < st->nb; j++) {
                struct stat sb;

                if (!st->b[j].file || !st->b[j].created)
                        continue;
                if (lstat(st->b[j].target, &sb) == 0 && sb.st_dev == st->b[j].dev && sb.st_ino == st->b[j].ino)
                        (void)unlink(st->b[j].target);
                st->b[j].created = false;
        }
}

static void exec_wipe_env(struct exec_state *st) {
        for (size_t i = 0; i < st->nenvstr; i++)
                sodium_free(st->envstr[i]);
        st->nenvstr = 0;
        free(st->envp);
        st->envp = NULL;
}

static void exec_free(struct exec_state *st) {
        exec_unlink(st);
        exec_wipe_env(st);
        for (size_t i = 0; i < st->nval; i++)
                cb_secret_free(st->val[i]);
        st->nval = 0;
        for (size_t i = 0; i < st->nb; i++)
                free((char *)st->b[i].target);
        st->nb = 0;
}

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
                        r = add_binding(&st, optarg, ch == 'f');
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
                        r = -unknown_option(argc, argv);
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

        r = cli_connect(0, &c);
        if (r < 0 || (r = exec_fetch(&st, c)) < 0 ||
            (r = cli_proxy_mint(st.px, st.npx, c,
                                h && h->proxy_url ? h->proxy_url
                                : proxy_url && *proxy_url ? proxy_url : "http://127.0.0.1:8411", !h)) < 0 ||
            (r = exec_env(&st)) < 0) {
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
        r = exec_files(&st);
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
        exec_wipe_env(&st);
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
        exec_free(&st);
        return r;
}
