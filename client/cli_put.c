/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `credbroker put` and what it shares with `rotate` (cli_rotate.c): the
 * value is read from stdin (or a terminal, echo off) into sodium_malloc
 * memory and sent base64-encoded in a request body built in sodium_malloc
 * memory, all wiped afterwards; the metadata goes through jansson, the
 * value never does.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "cli.h"
#include "credbroker.h"
#include "error.h"
#include "store.h"

/* ---- put ---- */

/* Well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF) without NUL: what the broker may send back as "value". */
bool is_text(const unsigned char *p, size_t n) {
        size_t i = 0;

        while (i < n) {
                unsigned char c = p[i];
                size_t k;
                uint32_t cp;

                if (c == 0)
                        return false;
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        k = 1, cp = c & 0x1f;
                else if (c >= 0xe0 && c <= 0xef)
                        k = 2, cp = c & 0x0f;
                else if (c >= 0xf0 && c <= 0xf4)
                        k = 3, cp = c & 0x07;
                else
                        return false;
                if (n - i <= k)
                        return false;
                for (size_t j = 1; j <= k; j++) {
                        if ((p[i + j] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (p[i + j] & 0x3f);
                }
                if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += k + 1;
        }
        return true;
}

static struct termios saved_tty;
static volatile sig_atomic_t tty_saved;

static void restore_tty_and_die(int sig) {
        if (tty_saved)
                (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
        signal(sig, SIG_DFL);
        raise(sig);
}

/* Read the value: from a terminal, one line with echo off; otherwise all of
 * stdin.  *ret is sodium_malloc'd (free with sodium_free).  Messages start
 * with verb.  Returns 0 or the exit code negated. */
int read_value(const char *verb, const char *name, bool keep_newline, unsigned char **ret, size_t *ret_len) {
        const size_t cap = CB_VALUE_MAX + 2; /* a max-size value plus "\n", plus one to see overflow */
        unsigned char *v = sodium_malloc(cap);
        bool tty = isatty(STDIN_FILENO);
        size_t n = 0;
        int r = 0;

        if (!v)
                return -cli_fail(-ENOMEM, "out of memory");
        if (tty) {
                struct termios t;
                if (tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
                        t = saved_tty;
                        t.c_lflag &= ~(tcflag_t)ECHO;
                        tty_saved = 1;
                        signal(SIGINT, restore_tty_and_die);
                        signal(SIGTERM, restore_tty_and_die);
                        signal(SIGHUP, restore_tty_and_die);
                        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
                }
                fprintf(stderr, "value for %s (not echoed): ", name);
                fflush(stderr);
        }
        while (n < cap) {
                ssize_t k = read(STDIN_FILENO, v + n, cap - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        break;
                }
                if (k == 0)
                        break;
                n += (size_t)k;
                if (tty && v[n - 1] == '\n')
                        break; /* one line from a terminal */
        }
        if (tty) {
                if (tty_saved) {
                        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
                        tty_saved = 0;
                        signal(SIGINT, SIG_DFL);
                        signal(SIGTERM, SIG_DFL);
                        signal(SIGHUP, SIG_DFL);
                }
                fputc('\n', stderr);
        }
        if (r < 0) {
                sodium_free(v);
                return -cli_fail(r, "%s: reading the value from stdin: %s", verb, strerror(-r));
        }
        if (n >= cap) {
                sodium_free(v);
                return -cli_fail(-EMSGSIZE, "%s: the value is larger than %d bytes", verb, CB_VALUE_MAX);
        }
        /* One trailing newline goes, from text only: `echo KEY | credbroker put`
         * must store KEY, while binary input is kept byte for byte. */
        if (n && v[n - 1] == '\n' && (tty || (!keep_newline && is_text(v, n))))
                v[--n] = 0;
        if (n == 0) {
                sodium_free(v);
                return -cli_usage("%s: refusing an empty value (pipe it on stdin)", verb);
        }
        if (n > CB_VALUE_MAX) {
                sodium_free(v);
                return -cli_fail(-EMSGSIZE, "%s: the value is larger than %d bytes", verb, CB_VALUE_MAX);
        }
        *ret = v;
        *ret_len = n;
        return 0;
}

static int push_string(json_t *meta, const char *field, const char *s) {
        json_t *a = json_object_get(meta, field);

        if (!a) {
                a = json_array();
                if (!a || json_object_set_new(meta, field, a) < 0)
                        return -ENOMEM;
        }
        return json_array_append_new(a, json_string(s)) < 0 ? -EINVAL : 0;
}

/* --ca-file: made absolute with realpath() (the broker has another working
 * directory) and checked to be a regular file we can read, so a typo fails
 * here and not at the first proxied request.  *ret is malloc'd.  Returns 0
 * or the exit code after printing why. */
static int ca_file_arg(const char *arg, char **ret) {
        cb_meta m = { 0 };
        struct stat st;
        char *p;
        int fd, r;

        p = realpath(arg, NULL);
        if (!p)
                return cli_usage("put: --ca-file %.256s: %s", arg, strerror(errno));
        /* O_NONBLOCK: a FIFO must not hang us; it is refused below. */
        fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                r = cli_usage("put: --ca-file %.256s: cannot read it: %s", arg, strerror(errno));
                free(p);
                return r;
        }
        r = fstat(fd, &st) < 0 || !S_ISREG(st.st_mode);
        close(fd);
        if (r) {
                free(p);
                return cli_usage("put: --ca-file %.256s: not a regular file", arg);
        }
        m.ca_file = p;
        if (cb_meta_validate(&m) < 0) {
                r = cli_usage("put: %s", cb_error_last());
                free(p);
                return r;
        }
        *ret = p;
        return 0;
}

/* --pin: the broker checks it too; checking here spares typing the value
 * for nothing.  Returns 0 or the exit code after printing why. */
static int pin_arg(const char *arg) {
        cb_meta m = { .pin = (char *)arg }; /* validate writes only hosts (lower-casing) */

        if (cb_meta_validate(&m) < 0)
                return cli_usage("put: %s", cb_error_last());
        return 0;
}

/* {"value_base64":"<b64>", <meta fields>} in sodium_malloc memory. */
int build_put_body(json_t *meta, const unsigned char *v, size_t n, char **ret, size_t *ret_len) {
        const char head[] = "{\"value_base64\":\"";
        size_t b64cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL), b64len, mlen, len;
        char *mtext, *body;

        mlen = json_dumpb(meta, NULL, 0, JSON_COMPACT);
        if (mlen < 2)
                return -EINVAL;
        mtext = malloc(mlen);
        if (!mtext || json_dumpb(meta, mtext, mlen, JSON_COMPACT) != mlen) {
                free(mtext);
                return -ENOMEM;
        }
        /* head + b64 + "\"," + meta without its '{' (meta always has "name"). */
        len = sizeof(head) - 1 + (b64cap - 1) + 2 + (mlen - 1);
        body = sodium_malloc(len + 1);
        if (!body) {
                free(mtext);
                return -ENOMEM;
        }
        memcpy(body, head, sizeof(head) - 1);
        sodium_bin2base64(body + sizeof(head) - 1, b64cap, v, n, sodium_base64_VARIANT_ORIGINAL);
        b64len = strlen(body + sizeof(head) - 1);
        len = sizeof(head) - 1 + b64len;
        memcpy(body + len, "\",", 2);
        len += 2;
        memcpy(body + len, mtext + 1, mlen - 1);
        len += mlen - 1;
        body[len] = 0;
        free(mtext);
        *ret = body;
        *ret_len = len;
        return 0;
}

int cmd_put(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker put NAME [--host H]... [--inject TEMPLATE] [--method M]...\n"
                "                      [--path-prefix P]... [--not-after TIME] [--label K=V]...\n"
                "                      [--ca-file PATH] [--pin sha256//BASE64[;sha256//BASE64]...]\n"
                "                      [--keep-newline] [--json]  < VALUE\n"
                "  Store a new version of NAME (admin.sock).  The value is read from stdin, never from\n"
                "  arguments: from a terminal, one line with echo off; otherwise all of stdin, binary-safe,\n"
                "  at most 64 KiB.  If the input is text (UTF-8 without NUL) one trailing \"\\n\" is\n"
                "  dropped, so `echo KEY | credbroker put NAME` stores KEY; --keep-newline keeps it.\n"
                "  Binary input is stored byte for byte.  An empty value is refused.\n"
                "  The metadata is sealed with the value:\n"
                "  --host NAME[:PORT] (HTTPS) or http://NAME[:PORT]: where the value may be sent;\n"
                "  --inject 'Header-Name: text {} text' | basic:USER | query:PARAM;\n"
                "  --method GET (repeatable; none = any); --path-prefix /v1/ (repeatable; none = any);\n"
                "  --not-after TIME (UNIXTIME, +90m/+1d, RFC 3339): refuse to hand it out after that; --label K=V (repeatable);\n"
                "  --ca-file PATH: a PEM CA bundle the broker trusts for these hosts instead of the\n"
                "    system store (a readable regular file; stored as an absolute path, symlinks resolved);\n"
                "  --pin sha256//BASE64: the upstream's public key must have this SHA-256 (base64, 44\n"
                "    characters); up to 16, separated by ';' (curl's --pinnedpubkey syntax).\n";
        static const struct option opts[] = {
                { "host", required_argument, NULL, 'H' },
                { "inject", required_argument, NULL, 'I' },
                { "method", required_argument, NULL, 'M' },
                { "path-prefix", required_argument, NULL, 'P' },
                { "not-after", required_argument, NULL, 'N' },
                { "label", required_argument, NULL, 'L' },
                { "ca-file", required_argument, NULL, 'C' },
                { "pin", required_argument, NULL, 'p' },
                { "keep-newline", no_argument, NULL, 'k' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        uint64_t not_after = 0;
        bool keep = false, json = false;
        unsigned char *value = NULL;
        char *body = NULL;
        size_t vlen = 0, blen = 0;
        json_t *meta = json_object(), *answer = NULL;
        int ch, r;

        if (!meta || sodium_init() < 0) {
                json_decref(meta);
                return cli_fail(-ENOMEM, "out of memory");
        }
        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                r = 0;
                switch (ch) {
                case 'H':
                        r = push_string(meta, "hosts", optarg);
                        break;
                case 'I':
                        if (json_object_get(meta, "inject")) {
                                r = cli_usage("put: --inject given twice");
                                goto out;
                        }
                        r = json_object_set_new(meta, "inject", json_string(optarg)) < 0 ? -EINVAL : 0;
                        break;
                case 'M':
                        r = push_string(meta, "methods", optarg);
                        break;
                case 'P':
                        r = push_string(meta, "path_prefixes", optarg);
                        break;
                case 'N':
                        if (cli_parse_time(optarg, &not_after) < 0) {
                                r = cli_usage("put: --not-after takes UNIXTIME, +N[s|m|h|d] or an RFC 3339 time");
                                goto out;
                        }
                        r = json_object_set_new(meta, "not_after", json_integer((json_int_t)not_after));
                        break;
                case 'L':
                        if (!strchr(optarg, '=') || optarg[0] == '=') {
                                r = cli_usage("put: --label takes KEY=VALUE");
                                goto out;
                        }
                        r = push_string(meta, "labels", optarg);
                        break;
                case 'C': {
                        char *ca = NULL;

                        if (json_object_get(meta, "ca_file")) {
                                r = cli_usage("put: --ca-file given twice");
                                goto out;
                        }
                        if ((r = ca_file_arg(optarg, &ca)) != 0)
                                goto out;
                        r = json_object_set_new(meta, "ca_file", json_string(ca)) < 0 ? -EINVAL : 0;
                        free(ca);
                        break;
                }
                case 'p':
                        if (json_object_get(meta, "pin")) {
                                r = cli_usage("put: --pin given twice (separate several keys with ';')");
                                goto out;
                        }
                        if ((r = pin_arg(optarg)) != 0)
                                goto out;
                        r = json_object_set_new(meta, "pin", json_string(optarg)) < 0 ? -EINVAL : 0;
                        break;
                case 'k':
                        keep = true;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        r = CB_EXIT_OK;
                        goto out;
                default:
                        r = cli_usage("put: unknown or incomplete option '%.64s'", argv[optind - 1]);
                        goto out;
                }
                if (r < 0) {
                        r = cli_usage("put: option '%.64s' is not valid UTF-8 text", argv[optind - 1]);
                        goto out;
                }
        }
        if (!cli_one_name(argc, argv, "put", "NAME (the value comes from stdin)")) {
                r = CB_EXIT_USAGE;
                goto out;
        }
        json_object_set_new(meta, "name", json_string(argv[optind]));
        r = read_value("put", argv[optind], keep, &value, &vlen);
        if (r < 0) {
                r = -r;
                goto out;
        }
        r = build_put_body(meta, value, vlen, &body, &blen);
        sodium_free(value);
        value = NULL;
        if (r < 0) {
                r = cli_fail(r, "put: cannot build the request: %s", strerror(-r));
                goto out;
        }
        r = admin_call("put", "POST", "/v1/admin/secrets", body, blen, json, &answer);
        if (r < 0) {
                r = -r;
                goto out;
        }
        if (!json) {
                fputs("stored ", stdout);
                cli_put_safe(json_string_value(json_object_get(answer, "name")));
                printf(" version %lld\n", (long long)json_integer_value(json_object_get(answer, "version")));
        }
        r = CB_EXIT_OK;
out:
        sodium_free(value);
        sodium_free(body);
        json_decref(meta);
        json_decref(answer);
        return r;
}
