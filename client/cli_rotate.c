/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rotation verbs (admin.sock): rotate, versions, version.
 *
 * rotate takes the new value from stdin, from an operator hook (--hook CMD,
 * run here, as the operator, by /bin/sh), or has the broker generate it
 * (--generate).  The CLI never has the old value (no admin route returns
 * one), so the hook cannot be given it: its argv is [sh, -c, CMD,
 * credbroker-hook, NAME], its environment this one's plus
 * CREDBROKER_ROTATE_SECRET=NAME, its stdin /dev/null.  The new value goes
 * from the hook's stdout into sodium_malloc memory and to the broker in a
 * body built there (build_put_body), wiped afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "error.h"
#include "store.h"

extern char **environ;

#define GRACE_MAX (30ull * 86400)
#define HOOK_TIMEOUT 60      /* seconds, like the daemon's hooks (CB_ROTATE_HOOK_TIMEOUT) */
#define HOOK_TIMEOUT_MAX 3600

static bool hook_timed_out; /* the last run_hook was killed for taking too long */

static const char *utc(json_t *j, char buf[32]) {
        time_t t;
        struct tm tm;

        if (!json_is_integer(j))
                return "-";
        t = (time_t)json_integer_value(j);
        if (!gmtime_r(&t, &tm) || !strftime(buf, 32, "%Y-%m-%d %H:%M:%SZ", &tm))
                return "?";
        return buf;
}

/* Run the operator's hook; its stdout (1..CB_VALUE_MAX bytes, one trailing
 * newline dropped from text unless keep_newline) into *ret (sodium_malloc;
 * sodium_free it).  Returns 0 or the exit code negated after saying why
 * (never quoting the output). */
static int run_hook(const char *cmd, const char *name, bool keep_newline, unsigned timeout, unsigned char **ret,
                    size_t *ret_len) {
        const size_t cap = CB_VALUE_MAX + 2;
        char *const argv[] = { (char *)"sh", (char *)"-c", (char *)cmd, (char *)"credbroker-hook", (char *)name, NULL };
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        unsigned char *v = sodium_malloc(cap);
        struct timespec t0, now;
        char **env = NULL, envname[32 + CB_NAME_MAX];
        size_t n = 0, nenv = 0;
        int p[2] = { -1, -1 }, status, r;
        pid_t pid;

        if (!v)
                return -cli_fail(-ENOMEM, "out of memory");
        for (char **e = environ; e && *e; e++)
                nenv++;
        env = calloc(nenv + 2, sizeof(*env));
        if (!env || pipe2(p, O_CLOEXEC) < 0) {
                r = -cli_fail(-errno, "rotate: cannot run the hook: %s", strerror(errno));
                goto out;
        }
        nenv = 0;
        for (char **e = environ; e && *e; e++)
                if (strncmp(*e, "CREDBROKER_ROTATE_SECRET=", 25) != 0)
                        env[nenv++] = *e;
        snprintf(envname, sizeof(envname), "CREDBROKER_ROTATE_SECRET=%s", name);
        env[nenv++] = envname;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        posix_spawn_file_actions_addclosefrom_np(&fa, 3); /* nothing of ours but stdin/out/err */
        /* Its own process group, so a timeout kills everything it started. */
        posix_spawnattr_init(&at);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
        posix_spawnattr_setpgroup(&at, 0);
        r = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, env);
        posix_spawnattr_destroy(&at);
        posix_spawn_file_actions_destroy(&fa);
        close(p[1]);
        p[1] = -1;
        if (r != 0) {
                r = -cli_fail(-r, "rotate: cannot run the hook: %s", strerror(r));
                goto out;
        }
        r = 0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
                struct pollfd pf = { .fd = p[0], .events = POLLIN };
                long left;

                clock_gettime(CLOCK_MONOTONIC, &now);
                left = (long)timeout * 1000 - ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
                if (left <= 0 || (poll(&pf, 1, (int)left) == 0)) {
                        (void)kill(-pid, SIGKILL);
                        r = -ETIMEDOUT;
                        break;
                }
                ssize_t k = read(p[0], v + n, n < cap ? cap - n : 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        break;
                }
                if (k == 0)
                        break;
                n += (size_t)k;
                if (n >= cap) {
                        r = -EMSGSIZE;
                        break;
                }
        }
        close(p[0]);
        p[0] = -1;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (r == -ETIMEDOUT) {
                hook_timed_out = true;
                r = -cli_fail(r, "rotate: the hook did not finish within %u s (killed); nothing was changed",
                              timeout);
                goto out;
        }
        if (r == -EMSGSIZE) {
                r = -cli_fail(r, "rotate: the hook printed more than %d bytes", CB_VALUE_MAX);
                goto out;
        }
        if (r < 0) {
                r = -cli_fail(r, "rotate: reading the hook's output: %s", strerror(-r));
                goto out;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                r = -cli_fail(-ECHILD, "rotate: the hook failed (%s %d); nothing was changed",
                              WIFEXITED(status) ? "exit status" : "signal",
                              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                goto out;
        }
        if (n && v[n - 1] == '\n' && !keep_newline && is_text(v, n))
                v[--n] = 0;
        if (n == 0) {
                r = -cli_fail(-EINVAL, "rotate: the hook printed no value; nothing was changed");
                goto out;
        }
        *ret = v;
        *ret_len = n;
        v = NULL;
out:
        if (p[0] >= 0)
                close(p[0]);
        if (p[1] >= 0)
                close(p[1]);
        free(env);
        sodium_free(v);
        return r;
}

/* --test CMD: run it with the new value on stdin (never in argv or the
 * environment).  Returns its exit status, or -errno. */
static int run_test(const char *cmd, const char *name, const unsigned char *v, size_t n) {
        char *const argv[] = { (char *)"sh", (char *)"-c", (char *)cmd, (char *)"credbroker-test", (char *)name, NULL };
        posix_spawn_file_actions_t fa;
        void (*old)(int);
        int p[2], status, r;
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[0], 0);
        posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        r = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(p[0]);
        if (r != 0) {
                close(p[1]);
                return -r;
        }
        old = signal(SIGPIPE, SIG_IGN); /* a test that does not read its stdin is fine */
        (void)cli_write_all(p[1], v, n);
        close(p[1]);
        signal(SIGPIPE, old);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* --leaked: mark NAME's current version leaked in the store and revoke its
 * tokens (failed == NULL), or report that the rotation failed (failed:
 * why; the broker keeps the mark and raises rotation_failed).  0, or an
 * exit code after saying why. */
static int contain(const char *name, const char *failed, bool quiet) {
        json_t *q = json_pack("{s:s, s:b}", "secret", name, "compromised", 1), *ro = NULL;
        char *b;
        int r;

        if (q && failed)
                json_object_set_new(q, "rotation_failed", json_string(failed));
        b = q ? json_dumps(q, JSON_COMPACT) : NULL;
        json_decref(q);
        if (!b)
                return cli_fail(-ENOMEM, "out of memory");
        r = admin_call("rotate", "POST", "/v1/admin/revoke", b, strlen(b), false, &ro);
        free(b);
        if (r < 0)
                return -r;
        if (!quiet && !failed)
                printf("%s marked compromised and %lld token(s) revoked before the new value is had\n", name,
                       (long long)json_integer_value(json_object_get(ro, "revoked")));
        json_decref(ro);
        return 0;
}

int cmd_rotate(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker rotate NAME [--grace SECONDS | --leaked] [--generate | --hook CMD | --broker-hook]\n"
                "                         [--hook-timeout SECONDS] [--test CMD] [--keep-newline] [--json]\n"
                "  Make a new version of NAME current (admin.sock): stored as pending, then made current;\n"
                "  the old current version becomes previous, served only to redeems that name it, for\n"
                "  --grace SECONDS (or 90m/8h/1d; default 300, at most 30 days), then disabled.\n"
                "  The metadata (hosts, template, ...) is kept.  The new value comes from stdin (as\n"
                "  for put), or from --hook CMD (run here by /bin/sh as you; it prints the value on\n"
                "  stdout; it gets the secret's name as $1 and in $CREDBROKER_ROTATE_SECRET, never the\n"
                "  old value; killed after --hook-timeout SECONDS or 5m, default 60), or\n"
                "  --generate (the broker mints \"cbs_\" + 43 base64url characters; only for a secret put\n"
                "  with --label generate=yes, one the broker is the source of), or --broker-hook (the\n"
                "  broker runs its own hook, DIR/NAME of its --rotate-hook-dir, in the background).\n"
                "  --test CMD: stage the new version (pending), run CMD (by /bin/sh, as you) with the\n"
                "  new value on stdin; exit 0 makes it current, anything else disables it.\n"
                "  --leaked: the old value leaked: it is marked leaked in the store before anything else\n"
                "  (never served or stored again), grace 0, every token of NAME revoked at once, every\n"
                "  older version disabled, the broker's leak hook run.  An interrupted rotation leaves a\n"
                "  consistent state ('credbroker versions NAME' explains it); run it again.\n";
        static const struct option opts[] = {
                { "grace", required_argument, NULL, 'g' }, { "leaked", no_argument, NULL, 'l' },
                { "generate", no_argument, NULL, 'G' },    { "hook", required_argument, NULL, 'k' },
                { "keep-newline", no_argument, NULL, 'n' }, { "json", no_argument, NULL, 'j' },
                { "broker-hook", no_argument, NULL, 'B' }, { "test", required_argument, NULL, 't' },
                { "hook-timeout", required_argument, NULL, 'T' }, { "help", no_argument, NULL, 'h' },
                {},
        };
        unsigned long long grace = 0, hook_timeout = HOOK_TIMEOUT;
        bool have_grace = false, leaked = false, generate = false, bhook = false, keep = false, json = false;
        const char *hook = NULL, *test = NULL, *name;
        unsigned char *value = NULL;
        char *body = NULL, t1[32];
        size_t vlen = 0, blen = 0;
        json_t *q = NULL, *o = NULL;
        int ch, r;

        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (ch) {
                case 'g':
                        if (cli_parse_duration(optarg, GRACE_MAX, &grace) < 0)
                                return cli_usage("rotate: --grace takes seconds or 90m/8h/1d, 0 to %llu s",
                                                 GRACE_MAX);
                        have_grace = true;
                        break;
                case 'l': leaked = true; break;
                case 'G': generate = true; break;
                case 'B': bhook = true; break;
                case 't': test = optarg; break;
                case 'k': hook = optarg; break;
                case 'T':
                        if (cli_parse_duration(optarg, HOOK_TIMEOUT_MAX, &hook_timeout) < 0 || !hook_timeout)
                                return cli_usage("rotate: --hook-timeout takes seconds or 5m, 1 to %u s",
                                                 HOOK_TIMEOUT_MAX);
                        break;
                case 'n': keep = true; break;
                case 'j': json = true; break;
                case 'h': fputs(usage, stdout); return CB_EXIT_OK;
                default: return cli_usage("rotate: unknown or incomplete option '%.64s'", argv[optind - 1]);
                }
        }
        if (!(name = cli_one_name(argc, argv, "rotate", "NAME (the value comes from stdin, --hook or --generate)")))
                return CB_EXIT_USAGE;
        if (generate + bhook + !!hook > 1)
                return cli_usage("rotate: --generate, --hook and --broker-hook are sources of the value: give one");
        if (test && (generate || bhook))
                return cli_usage("rotate: --test needs the value here: from stdin or --hook, not --generate or "
                                 "--broker-hook");
        if (leaked && have_grace)
                return cli_usage("rotate: --leaked means no grace: the old value is never served again");
        q = json_pack("{s:s}", "name", name);
        if (!q || sodium_init() < 0)
                return cli_fail(-ENOMEM, "out of memory");
        if (have_grace)
                json_object_set_new(q, "grace", json_integer((json_int_t)grace));
        if (leaked)
                json_object_set_new(q, "leaked", json_true());
        if (test)
                json_object_set_new(q, "stage", json_true());
        if (generate || bhook) {
                json_object_set_new(q, generate ? "generate" : "hook", json_true());
                body = json_dumps(q, JSON_COMPACT);
                blen = body ? strlen(body) : 0;
                if (!body) {
                        r = cli_fail(-ENOMEM, "out of memory");
                        goto out;
                }
        } else {
                if (leaked && hook) {
                        /* Contain first: the old value is marked leaked in the store (never
                         * served again) and its tokens revoked before the hook runs, which
                         * may fail or take its time; the old value leaked whatever it does. */
                        r = contain(name, NULL, json);
                        if (r)
                                goto out;
                }
                r = hook ? run_hook(hook, name, keep, (unsigned)hook_timeout, &value, &vlen)
                         : read_value("rotate", name, keep, &value, &vlen);
                if (r < 0) {
                        if (leaked && hook) {
                                /* Stays compromised; the broker raises rotation_failed. */
                                (void)contain(name, hook_timed_out ? "the CLI's rotation hook timed out"
                                              : hook ? "the CLI's rotation hook failed"
                                              : "the new value could not be read", true);
                                fprintf(stderr, "credbroker: rotate: (--leaked: '%s' stays marked compromised: its "
                                        "tokens are revoked and the leaked value is never served; rotate it "
                                        "again)\n", name);
                        }
                        r = -r;
                        goto out;
                }
                char *sb = NULL;
                r = build_put_body(q, value, vlen, &sb, &blen);
                if (!test) {
                        sodium_free(value);
                        value = NULL;
                }
                if (r < 0) {
                        r = cli_fail(r, "rotate: cannot build the request: %s", strerror(-r));
                        goto out;
                }
                body = sb;
        }
        r = admin_call("rotate", "POST", "/v1/admin/rotate", body, blen, json && !test, &o);
        if (generate || bhook)
                free(body);
        else
                sodium_free(body);
        body = NULL;
        if (r < 0) {
                r = -r;
                goto out;
        }
        if (test) {
                /* Staged: the new version is pending.  Test it, then promote or disable it. */
                long long v = (long long)json_integer_value(json_object_get(o, "version"));
                char path[96 + CB_NAME_MAX], pbody[64 + CB_NAME_MAX];
                int st = run_test(test, name, value, vlen);

                sodium_free(value);
                value = NULL;
                json_decref(o);
                o = NULL;
                if (st != 0) {
                        snprintf(path, sizeof(path), "/v1/admin/versions/%s/%lld", name, v);
                        r = admin_call("rotate", "POST", path, "{\"action\":\"disable\"}", 20, false, &o);
                        r = cli_fail(-ECHILD, "rotate: the test %s (%s %d); version %lld was staged and is %s; "
                                     "the current version is unchanged", st < 0 ? "could not run" : "failed",
                                     st < 0 ? "error" : "exit status", st < 0 ? -st : st, v,
                                     r < 0 ? "left pending (the next rotate disables it)" : "now disabled");
                        goto out;
                }
                snprintf(pbody, sizeof(pbody), "{\"name\":\"%s\",\"promote\":%lld}", name, v);
                r = admin_call("rotate", "POST", "/v1/admin/rotate", pbody, strlen(pbody), json, &o);
                if (r < 0) {
                        r = -r;
                        goto out;
                }
                if (!json_object_get(o, "previous")) { /* promoted already */
                        if (!json)
                                printf("version %lld of %s is current\n", v, name);
                        r = CB_EXIT_OK;
                        goto out;
                }
        }
        if (!json && bhook) {
                fputs("rotation of ", stdout);
                cli_put_safe(name);
                puts(" by the broker's hook started; 'credbroker versions NAME' shows when it is done");
        } else if (!json) {
                json_t *dis = json_object_get(o, "disabled"), *sup = json_object_get(o, "superseded"), *e;
                long long prev = (long long)json_integer_value(json_object_get(o, "previous"));
                size_t i;

                fputs("rotated ", stdout);
                cli_put_safe(name);
                printf("%s: version %lld is current", leaked ? " (leaked)" : "",
                       (long long)json_integer_value(json_object_get(o, "version")));
                if (leaked)
                        printf("; %lld token(s) revoked", (long long)json_integer_value(json_object_get(o, "revoked")));
                json_array_foreach(dis, i, e) printf("; version %lld disabled", (long long)json_integer_value(e));
                if (!json_array_size(dis) && prev) {
                        json_t *until = json_integer((json_int_t)time(NULL) +
                                                     json_integer_value(json_object_get(o, "grace")));
                        printf("; version %lld is previous until %s", prev, utc(until, t1));
                        json_decref(until);
                }
                json_array_foreach(sup, i, e)
                        printf("; pending version %lld (left by an unfinished rotation) disabled",
                               (long long)json_integer_value(e));
                if (leaked)
                        printf("; leak hook %s", json_is_true(json_object_get(o, "leak_hook")) ? "started" : "not configured");
                putchar('\n');
        }
        r = CB_EXIT_OK;
out:
        sodium_free(value);
        if (body)
                generate || bhook ? free(body) : sodium_free(body);
        json_decref(q);
        json_decref(o);
        return r;
}

int cmd_versions(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker versions NAME [--json]\n"
                "  NAME's versions (admin.sock): state, created and changed times, labels, and what the\n"
                "  state means now (served or not, until when).  Never a value.\n";
        static const struct option opts[] = { { "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, {} };
        char path[64 + CB_NAME_MAX], t1[32], t2[32];
        const char *name;
        json_t *o = NULL, *e, *g;
        bool json = false;
        size_t i;
        int ch, r;

        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (ch == 'j')
                        json = true;
                else if (ch == 'h')
                        return fputs(usage, stdout), CB_EXIT_OK;
                else
                        return cli_usage("versions: unknown option '%.64s'", argv[optind - 1]);
        }
        if (!(name = cli_one_name(argc, argv, "versions", "NAME")))
                return CB_EXIT_USAGE;
        snprintf(path, sizeof(path), "/v1/admin/versions/%s", name); /* [A-Za-z0-9._-]: no escaping */
        r = admin_call("versions", "GET", path, NULL, 0, json, &o);
        if (r < 0)
                return -r;
        if (!json) {
                cli_put_safe(name);
                printf(": current version %lld", (long long)json_integer_value(json_object_get(o, "current")));
                g = json_object_get(o, "grace");
                if (json_is_true(json_object_get(o, "leaked")))
                        fputs(" (from a leaked rotation: older versions are never served)", stdout);
                else if (json_is_integer(g))
                        printf(" (rotated with a grace of %lld s)", (long long)json_integer_value(g));
                else
                        fputs(" (stored by put: no grace recorded)", stdout);
                putchar('\n');
                json_array_foreach(json_object_get(o, "versions"), i, e) {
                        json_t *until = json_object_get(e, "served_until");

                        printf("  v%-4lld %-9s created %s  changed %s\n",
                               (long long)json_integer_value(json_object_get(e, "version")),
                               json_string_value(json_object_get(e, "state")) ?: "?",
                               utc(json_object_get(e, "created"), t1), utc(json_object_get(e, "changed"), t2));
                        fputs("        ", stdout);
                        cli_put_safe(json_string_value(json_object_get(e, "note")));
                        if (json_is_integer(until))
                                printf(" (%s)", utc(until, t1));
                        putchar('\n');
                }
        }
        json_decref(o);
        return CB_EXIT_OK;
}

int cmd_version(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker version enable|disable|destroy NAME VERSION [--json]\n"
                "  enable: a disabled version becomes previous again (served to redeems that name it\n"
                "  for the current rotation's grace, counted from now; refused after a leaked rotation);\n"
                "  disable: a previous or pending version is no longer served; destroy: its key material\n"
                "  is wiped from disk (terminal).  The current version is replaced only by rotate.\n";
        static const struct option opts[] = { { "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, {} };
        char path[96 + CB_NAME_MAX], body[64];
        unsigned long long v;
        const char *action;
        bool json = false;
        json_t *o = NULL;
        int ch, r;

        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                if (ch == 'j')
                        json = true;
                else if (ch == 'h')
                        return fputs(usage, stdout), CB_EXIT_OK;
                else
                        return cli_usage("version: unknown option '%.64s'", argv[optind - 1]);
        }
        if (argc - optind != 3)
                return cli_usage("version takes enable|disable|destroy NAME VERSION");
        action = argv[optind];
        if (strcmp(action, "enable") && strcmp(action, "disable") && strcmp(action, "destroy"))
                return cli_usage("version: '%.32s' is not enable, disable or destroy", action);
        if (cb_name_check(argv[optind + 1]) < 0)
                return cli_usage("version: %s", cb_error_last());
        if (cli_parse_u64(argv[optind + 2], UINT32_MAX, &v) < 0 || v == 0)
                return cli_usage("version: VERSION must be a positive number");
        snprintf(path, sizeof(path), "/v1/admin/versions/%s/%llu", argv[optind + 1], v);
        snprintf(body, sizeof(body), "{\"action\":\"%s\"}", action);
        r = admin_call("version", "POST", path, body, strlen(body), json, &o);
        if (r < 0)
                return -r;
        if (!json) {
                cli_put_safe(argv[optind + 1]);
                printf(" version %llu: %s%s\n", v, action, strcmp(action, "destroy") == 0 ? "ed" : "d");
        }
        json_decref(o);
        return CB_EXIT_OK;
}
