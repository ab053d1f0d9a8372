/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tool verbs: token, fetch (exec: cli_exec.c).  They talk to tools.sock
 * through libcredbroker.  The broker identifies the process on the other
 * end of the socket, which is this CLI: a grant meant for `credbroker
 * fetch` or `exec` names credbroker's executable (plus the uid, gid or
 * cgroup of the tool that runs it).
 *
 * Values never pass through argv, stderr or an error message; they live in
 * cb_secret (sodium_malloc) memory.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "cli_tool_internal.h"
#include "credbroker.h"

#define FETCH_TTL 10 /* seconds: fetch and exec redeem at once */

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
                                 r == -ENAMETOOLONG ? "path too long for a Unix socket"
                                 : r == -ELIBACC    ? "libcurl (libcurl.so.4, loaded on first use) could not be "
                                                      "loaded: install it (Debian: libcurl4)"
                                                    : strerror(-r));
        if (!admin)
                cb_client_on_pending(*ret, cli_on_pending, NULL);
        return 0;
}

int cli_fail_client(int r, const cb_client *c, const char *verb) {
        return cli_fail(r, "%s: %s", verb, cb_client_error(c));
}

/* getopt loop shared by the verbs here.  Returns 1 after --help, 0, or a
 * negated exit code. */
int cli_unknown_option(int argc, char **argv) {
        (void)argc;
        return -cli_usage("%s: unknown or incomplete option '%.64s'", argv[0], argv[optind - 1]);
}

/* Get a short-lived redeem token for name and redeem it. */
int cli_fetch_one(cb_client *c, const char *verb, const char *name, cb_secret **ret) {
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
                        return -cli_unknown_option(argc, argv);
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
                        return -cli_unknown_option(argc, argv);
                }
        }
        if (!cli_one_name(argc, argv, "fetch", "SECRET"))
                return CB_EXIT_USAGE;
        if (json && newline)
                return cli_usage("fetch: --json and --newline do not go together");
        r = cli_connect(0, &c);
        if (r < 0)
                return -r;
        r = cli_fetch_one(c, "fetch", argv[optind], &s);
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
