/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admin verbs: list, show, revoke, status (admin.sock, through
 * cb_client_request) and policy (check: credbrokerd --check-policy; reload:
 * admin.sock), and the helpers the other admin verbs share (admin_call,
 * put_safe).  `put`, the one that handles a value, is in cli_put.c.
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
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "cli.h"
#include "credbroker.h"
#include "error.h"
#include "store.h"

/* ---- output helpers ---- */

/* Broker-supplied text on a terminal: no control characters. */
void cli_put_safe(const char *s) {
        for (; s && *s; s++)
                putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static const char *time_text(json_t *j, char buf[32]) {
        time_t t;
        struct tm tm;

        if (!json_is_integer(j))
                return "-";
        t = (time_t)json_integer_value(j);
        if (!gmtime_r(&t, &tm) || !strftime(buf, 32, "%Y-%m-%d %H:%M:%SZ", &tm))
                return "?";
        return buf;
}

/* Print a JSON array of strings joined by sep; "-" if empty or absent. */
static void put_list(json_t *a, const char *sep) {
        size_t i, n = json_array_size(a);
        json_t *v;

        if (n == 0) {
                fputs("-", stdout);
                return;
        }
        json_array_foreach(a, i, v) {
                if (i)
                        fputs(sep, stdout);
                cli_put_safe(json_is_string(v) ? json_string_value(v) : "?");
        }
}

/* Run one admin request; on success *ret is the parsed answer (an object)
 * and, if raw is set, the text is printed as is (--json).  Returns 0 or the
 * exit code negated after printing why. */
int admin_call(const char *verb, const char *method, const char *path, const void *body, size_t len,
                      bool raw, json_t **ret) {
        cb_client *c = NULL;
        char *text = NULL;
        json_t *o = NULL;
        int r;

        r = cli_connect(1, &c);
        if (r < 0)
                return r;
        r = cb_client_request(c, method, path, body, len, &text, NULL);
        if (r < 0) {
                r = -cli_fail_client(r, c, verb);
                goto out;
        }
        o = json_loads(text, 0, NULL);
        if (!json_is_object(o)) {
                r = -cli_fail(-EPROTO, "%s: malformed answer from the broker", verb);
                goto out;
        }
        if (raw)
                printf("%s\n", text);
        *ret = o;
        o = NULL;
        r = 0;
out:
        json_decref(o);
        free(text);
        cb_client_free(c);
        return r;
}

/* Parse options for the verbs that take only --json (and maybe one NAME).
 * Returns 1 after --help, 0, or the exit code negated. */
static int simple_opts(int argc, char **argv, const char *usage, int nargs, bool *json) {
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int ch;

        *json = false;
        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (ch) {
                case 'j':
                        *json = true;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 1;
                default:
                        return -cli_usage("%s: unknown or incomplete option '%.64s'", argv[0], argv[optind - 1]);
                }
        }
        if (argc - optind != nargs)
                return -cli_usage("%s takes %s", argv[0], nargs ? "one NAME" : "no arguments");
        return 0;
}

/* ---- list, show ---- */

int cmd_list(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker list [--json]\n"
                "  Every secret's name, current version, version count, hosts and injection\n"
                "  template (admin.sock).  Never a value.\n";
        json_t *o = NULL, *arr, *e;
        size_t i, w = 4;
        bool json;
        int r;

        r = simple_opts(argc, argv, usage, 0, &json);
        if (r)
                return r > 0 ? CB_EXIT_OK : -r;
        r = admin_call("list", "GET", "/v1/admin/secrets", NULL, 0, json, &o);
        if (r < 0)
                return -r;
        arr = json_object_get(o, "secrets");
        if (!json) {
                if (json_array_size(arr) == 0)
                        puts("no secrets stored");
                json_array_foreach(arr, i, e) {
                        size_t l = strlen(json_string_value(json_object_get(e, "name")) ?: "?");
                        if (l > w)
                                w = l;
                }
                if (json_array_size(arr))
                        printf("%-*s  %-7s  %-8s  %s\n", (int)w, "NAME", "CURRENT", "VERSIONS", "HOSTS / INJECT");
                json_array_foreach(arr, i, e) {
                        const char *name = json_string_value(json_object_get(e, "name")) ?: "?";
                        json_t *cur = json_object_get(e, "current");
                        char cv[24] = "-";

                        if (json_is_integer(cur))
                                snprintf(cv, sizeof(cv), "v%lld", (long long)json_integer_value(cur));
                        cli_put_safe(name);
                        printf("%*s  %-7s  %-8lld  ", (int)(w - strlen(name)), "", cv,
                               (long long)json_integer_value(json_object_get(e, "versions")));
                        put_list(json_object_get(e, "hosts"), ",");
                        if (json_is_string(json_object_get(e, "inject"))) {
                                fputs(" / ", stdout);
                                cli_put_safe(json_string_value(json_object_get(e, "inject")));
                        }
                        if (json_is_true(json_object_get(e, "compromised")))
                                fputs("  [COMPROMISED: leaked, rotate it]", stdout);
                        putchar('\n');
                }
        }
        json_decref(o);
        return CB_EXIT_OK;
}

int cmd_show(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker show NAME [--json]\n"
                "  A secret's versions (state, times) and sealed metadata (admin.sock).  Never a value.\n";
        char path[64 + CB_NAME_MAX], t1[32], t2[32];
        json_t *o = NULL, *e;
        size_t i;
        bool json;
        int r;

        r = simple_opts(argc, argv, usage, 1, &json);
        if (r)
                return r > 0 ? CB_EXIT_OK : -r;
        if (!cli_one_name(argc, argv, "show", "NAME"))
                return CB_EXIT_USAGE;
        snprintf(path, sizeof(path), "/v1/admin/secrets/%s", argv[optind]); /* [A-Za-z0-9._-]: no escaping */
        r = admin_call("show", "GET", path, NULL, 0, json, &o);
        if (r < 0)
                return -r;
        if (!json) {
                cli_put_safe(json_string_value(json_object_get(o, "name")));
                putchar('\n');
                json_array_foreach(json_object_get(o, "versions"), i, e) {
                        json_t *inj = json_object_get(e, "inject"), *na = json_object_get(e, "not_after");
                        json_t *ca = json_object_get(e, "ca_file"), *pin = json_object_get(e, "pin");

                        printf("  v%-4lld %-9s created %s  changed %s\n",
                               (long long)json_integer_value(json_object_get(e, "version")),
                               json_string_value(json_object_get(e, "state")) ?: "?",
                               time_text(json_object_get(e, "created"), t1),
                               time_text(json_object_get(e, "changed"), t2));
                        fputs("        hosts: ", stdout);
                        put_list(json_object_get(e, "hosts"), ", ");
                        fputs("\n        inject: ", stdout);
                        cli_put_safe(json_is_string(inj) ? json_string_value(inj) : "-");
                        fputs("\n        methods: ", stdout);
                        put_list(json_object_get(e, "methods"), ", ");
                        fputs("\n        path prefixes: ", stdout);
                        put_list(json_object_get(e, "path_prefixes"), ", ");
                        printf("\n        not after: %s\n        labels: ", time_text(na, t1));
                        put_list(json_object_get(e, "labels"), ", ");
                        if (json_is_string(ca)) {
                                fputs("\n        ca file: ", stdout);
                                cli_put_safe(json_string_value(ca));
                        }
                        if (json_is_string(pin)) {
                                fputs("\n        pin: ", stdout);
                                cli_put_safe(json_string_value(pin));
                        }
                        putchar('\n');
                }
        }
        json_decref(o);
        return CB_EXIT_OK;
}

/* ---- revoke ---- */

int cmd_revoke(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker revoke --accessor A | --secret NAME | --client C [--json]\n"
                "  Revoke one token (by its accessor), every token for a secret, or every token\n"
                "  issued to a policy client (admin.sock).  Prints how many were revoked.\n";
        static const struct option opts[] = {
                { "accessor", required_argument, NULL, 'a' },
                { "secret", required_argument, NULL, 's' },
                { "client", required_argument, NULL, 'c' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *field = NULL, *val = NULL;
        char body[1024];
        json_t *q, *o = NULL;
        bool json = false;
        size_t n;
        int ch, r;

        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (ch) {
                case 'a':
                case 's':
                case 'c':
                        if (field)
                                return cli_usage("revoke takes exactly one of --accessor, --secret, --client");
                        field = ch == 'a' ? "accessor" : ch == 's' ? "secret" : "client";
                        val = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return CB_EXIT_OK;
                default:
                        return cli_usage("revoke: unknown or incomplete option '%.64s'", argv[optind - 1]);
                }
        }
        if (optind != argc)
                return cli_usage("revoke: unexpected argument '%.64s'", argv[optind]);
        if (!field)
                return cli_usage("revoke needs --accessor A, --secret NAME or --client C");
        q = json_pack("{s:s}", field, val);
        n = q ? json_dumpb(q, body, sizeof(body), JSON_COMPACT) : 0;
        json_decref(q);
        if (n == 0 || n >= sizeof(body))
                return cli_usage("revoke: --%s must be UTF-8 text, at most a few hundred bytes", field);
        r = admin_call("revoke", "POST", "/v1/admin/revoke", body, n, json, &o);
        if (r < 0)
                return -r;
        if (!json) {
                long long k = (long long)json_integer_value(json_object_get(o, "revoked"));
                printf("revoked %lld token%s\n", k, k == 1 ? "" : "s");
        }
        json_decref(o);
        return CB_EXIT_OK;
}

/* ---- delete ---- */

int cmd_delete(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker delete NAME --yes [--json]\n"
                "  Delete a secret (admin.sock): revoke its tokens, cut its proxied requests in\n"
                "  flight, and destroy every version, the current one included (the values are\n"
                "  removed from disk; the version numbers stay, as tombstones).  Cannot be undone:\n"
                "  --yes is required.  A later put of NAME starts a new current version.\n";
        static const struct option opts[] = {
                { "yes", no_argument, NULL, 'y' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool yes = false, json = false;
        const char *name;
        char path[256];
        json_t *o = NULL;
        int ch, r;

        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (ch) {
                case 'y': yes = true; break;
                case 'j': json = true; break;
                case 'h': fputs(usage, stdout); return CB_EXIT_OK;
                default: return cli_usage("delete: unknown or incomplete option '%.64s'", argv[optind - 1]);
                }
        }
        name = cli_one_name(argc, argv, "delete", "NAME");
        if (!name)
                return CB_EXIT_USAGE;
        if (!yes)
                return cli_usage("delete destroys every version of '%s' for good: add --yes", name);
        snprintf(path, sizeof(path), "/v1/admin/secrets/%s", name);
        r = admin_call("delete", "DELETE", path, NULL, 0, json, &o);
        if (r < 0)
                return -r;
        if (!json)
                printf("deleted %s: every version destroyed, %lld token(s) revoked\n", name,
                       (long long)json_integer_value(json_object_get(o, "revoked")));
        json_decref(o);
        return CB_EXIT_OK;
}

/* ---- metrics ---- */

int cmd_metrics(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker metrics\n"
                "  The broker's counters in the Prometheus text format (GET /metrics on admin.sock):\n"
                "  requests by route and decision, proxied requests by secret and upstream status,\n"
                "  proxy durations, live tokens, pending approvals, rotations, leak sightings,\n"
                "  audit write failures, alerts by kind and refused connections.  Already\n"
                "  machine-readable: no --json.\n";
        cb_client *c = NULL;
        char *text = NULL;
        bool json;
        int r;

        r = simple_opts(argc, argv, usage, 0, &json);
        if (r)
                return r > 0 ? CB_EXIT_OK : -r;
        if (json)
                return cli_usage("metrics: the answer is Prometheus text; there is no --json");
        r = cli_connect(1, &c);
        if (r < 0)
                return -r;
        r = cb_client_request(c, "GET", "/v1/admin/metrics", NULL, 0, &text, NULL);
        if (r < 0)
                r = cli_fail_client(r, c, "metrics");
        else
                r = fputs(text, stdout) < 0 ? CB_EXIT_FAIL : CB_EXIT_OK;
        free(text);
        cb_client_free(c);
        return r;
}

/* ---- status ---- */

int cmd_status(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker status [--json]\n"
                "  The broker's version, uptime, live tokens, secrets, store generation, policy\n"
                "  size and connections refused over the per-uid limit (admin.sock).\n";
        json_t *o = NULL, *pol;
        unsigned long long up;
        bool json;
        int r;

        r = simple_opts(argc, argv, usage, 0, &json);
        if (r)
                return r > 0 ? CB_EXIT_OK : -r;
        r = admin_call("status", "GET", "/v1/admin/status", NULL, 0, json, &o);
        if (r < 0)
                return -r;
        if (!json) {
                up = (unsigned long long)json_integer_value(json_object_get(o, "uptime"));
                pol = json_object_get(o, "policy");
                fputs("credbrokerd ", stdout);
                cli_put_safe(json_string_value(json_object_get(o, "version")) ?: "?");
                printf(", up %llud %02lluh%02llum%02llus\n", up / 86400, up / 3600 % 24, up / 60 % 60, up % 60);
                printf("  secrets: %lld, live tokens: %lld, store generation: %lld\n",
                       (long long)json_integer_value(json_object_get(o, "secrets")),
                       (long long)json_integer_value(json_object_get(o, "tokens")),
                       (long long)json_integer_value(json_object_get(o, "generation")));
                printf("  policy: %lld clients, %lld grants\n",
                       (long long)json_integer_value(json_object_get(pol, "clients")),
                       (long long)json_integer_value(json_object_get(pol, "grants")));
                printf("  connections refused (per-uid limit): %lld\n",
                       (long long)json_integer_value(json_object_get(o, "connections_refused")));
                json_t *sc = json_object_get(o, "scanner");
                if (sc) { /* the leak scanner (broker/scan.c) */
                        printf("  leak scanner: %lld patterns over %lld live versions; not scannable (under %lld "
                               "bytes): ", (long long)json_integer_value(json_object_get(sc, "patterns")),
                               (long long)json_integer_value(json_object_get(sc, "secret_versions")),
                               (long long)json_integer_value(json_object_get(sc, "min_length")));
                        put_list(json_object_get(sc, "not_scannable"), ", ");
                        fputs("\n  compromised (leaked, not yet rotated): ", stdout);
                        put_list(json_object_get(sc, "compromised"), ", ");
                        putchar('\n');
                }
        }
        json_decref(o);
        return CB_EXIT_OK;
}

/* ---- policy ---- */

/* credbrokerd: $CREDBROKER_DAEMON, else next to us in the build tree
 * (client/../broker/), the same directory, or ../sbin (installed). */
static int find_daemon(char *out, size_t len) {
        static const char *const rel[] = { "/../broker/credbrokerd", "/credbrokerd", "/../sbin/credbrokerd" };
        const char *env = getenv("CREDBROKER_DAEMON");
        char self[PATH_MAX];
        ssize_t n;
        char *slash;

        if (env && *env) {
                if (access(env, X_OK) < 0)
                        return cli_fail(-errno, "policy check: $CREDBROKER_DAEMON %.256s: %s", env, strerror(errno));
                snprintf(out, len, "%s", env);
                return 0;
        }
        n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0)
                return cli_fail(-errno, "policy check: cannot find my own executable: %s", strerror(errno));
        self[n] = 0;
        slash = strrchr(self, '/');
        if (slash)
                *slash = 0;
        for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
                if ((size_t)snprintf(out, len, "%s%s", self, rel[i]) < len && access(out, X_OK) == 0)
                        return 0;
        }
        return cli_fail(-ENOENT, "policy check: credbrokerd not found next to %s (set $CREDBROKER_DAEMON)", self);
}

/* The checker's verdict as one JSON object on stdout (policy check --json):
 * {"file","valid","clients","grants","notes":[...],"warnings":[...]} or
 * {"file","valid":false,"error"}.  text is what credbrokerd printed. */
static int policy_check_json(const char *file, char *text, bool valid) {
        json_t *o = json_pack("{s:s, s:b}", "file", file, "valid", valid);
        json_t *notes = json_array(), *warnings = json_array();
        char *line, *save = NULL, *t;
        bool first = true;

        if (!o || !notes || !warnings) {
                json_decref(o);
                json_decref(notes);
                json_decref(warnings);
                return cli_fail(-EINVAL, "policy check --json: the file name is not UTF-8 (or out of memory)");
        }
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), first = false) {
                const char *sep;
                size_t nc = 0, ng = 0;

                if (!valid) { /* "invalid: REASON" */
                        json_object_set_new(o, "error", json_string(strncmp(line, "invalid: ", 9) ? line : line + 9));
                        break;
                }
                /* "ok: FILE: N clients, M grants" (FILE may hold ": ") */
                if (first && (sep = strrchr(line, ':')) && sscanf(sep, ": %zu clients, %zu grants", &nc, &ng) == 2) {
                        json_object_set_new(o, "clients", json_integer((json_int_t)nc));
                        json_object_set_new(o, "grants", json_integer((json_int_t)ng));
                } else if (strncmp(line, "warning: ", 9) == 0) {
                        json_array_append_new(warnings, json_string(line + 9));
                } else {
                        json_array_append_new(notes, json_string(line));
                }
        }
        if (valid) {
                json_object_set_new(o, "notes", notes);
                json_object_set_new(o, "warnings", warnings);
        } else {
                json_decref(notes);
                json_decref(warnings);
        }
        t = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(o);
        if (!t)
                return cli_fail(-ENOMEM, "out of memory");
        puts(t);
        free(t);
        return valid ? CB_EXIT_OK : CB_EXIT_USAGE;
}

static int policy_check(const char *file, bool json) {
        char daemon[PATH_MAX + 32], out[4096];
        size_t n = 0;
        int p[2], status, r;
        pid_t pid;

        r = find_daemon(daemon, sizeof(daemon));
        if (r)
                return r;
        if (pipe2(p, O_CLOEXEC) < 0)
                return cli_fail(-errno, "policy check: pipe: %s", strerror(errno));
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid < 0) {
                r = -errno;
                close(p[0]);
                close(p[1]);
                return cli_fail(r, "policy check: fork: %s", strerror(-r));
        }
        if (pid == 0) {
                char *const av[] = { daemon, (char *)"--check-policy", (char *)file, NULL };
                if (dup2(p[1], STDOUT_FILENO) >= 0 && dup2(p[1], STDERR_FILENO) >= 0)
                        execv(daemon, av);
                _exit(127);
        }
        close(p[1]);
        for (;;) {
                ssize_t k = read(p[0], out + n, sizeof(out) - 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                n += (size_t)k;
                if (n == sizeof(out) - 1) {
                        char sink[512];
                        while (read(p[0], sink, sizeof(sink)) > 0)
                                ; /* drain so the child can exit */
                        break;
                }
        }
        close(p[0]);
        out[n] = 0;
        /* Lines as the checker wrote them (what each exe path resolved to,
         * warnings), no terminal control; an error is its first line. */
        for (char *s = out; *s; s++)
                if (((unsigned char)*s < 0x20 && *s != '\n') || *s == 0x7f)
                        *s = '?';
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return cli_fail(-errno, "policy check: waiting for credbrokerd: %s", strerror(errno));
        if (json && WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 2))
                return policy_check_json(file, out, WEXITSTATUS(status) == 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                printf("%s%s", out, n && out[n - 1] == '\n' ? "" : "\n");
                return CB_EXIT_OK;
        }
        out[strcspn(out, "\n")] = 0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
                fprintf(stderr, "credbroker: policy check: %s\n", out);
                return CB_EXIT_USAGE;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !out[0])
                return cli_fail(-ENOEXEC, "policy check: cannot run %.256s", daemon);
        return cli_fail(-EIO, "policy check: %.256s failed (%s %d)%s%s", daemon,
                        WIFEXITED(status) ? "exit" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), out[0] ? ": " : "", out);
}

int cmd_policy(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker policy check FILE [--json] | policy reload [--json]\n"
                "  check: validate a policy file offline with 'credbrokerd --check-policy FILE'\n"
                "    (credbrokerd is looked up in $CREDBROKER_DAEMON, then next to credbroker).\n"
                "    Prints the verdict; exit 0 valid, 2 invalid.  --json: {\"file\",\"valid\",\n"
                "    \"clients\",\"grants\",\"notes\",\"warnings\"} or {\"file\",\"valid\":false,\"error\"}.\n"
                "  reload: make the running broker reload its policy file (admin.sock); an\n"
                "    invalid file is refused with the exact error and the old policy stays.\n";
        json_t *o = NULL;
        bool json;
        int r;

        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
                return fputs(usage, stdout), CB_EXIT_OK;
        if (argc >= 2 && strcmp(argv[1], "check") == 0) {
                const char *file = NULL;
                bool js = false;
                for (int i = 2; i < argc; i++) {
                        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
                                return fputs(usage, stdout), CB_EXIT_OK;
                        if (strcmp(argv[i], "--json") == 0)
                                js = true;
                        else if (argv[i][0] == '-' || file)
                                return cli_usage("policy check takes one FILE and --json");
                        else
                                file = argv[i];
                }
                if (!file)
                        return cli_usage("policy check takes one FILE");
                return policy_check(file, js);
        }
        if (argc >= 2 && strcmp(argv[1], "reload") == 0) {
                r = simple_opts(argc - 1, argv + 1, usage, 0, &json);
                if (r)
                        return r > 0 ? CB_EXIT_OK : -r;
                r = admin_call("policy reload", "POST", "/v1/admin/policy/reload", NULL, 0, json, &o);
                if (r < 0)
                        return -r;
                if (!json)
                        printf("policy reloaded: %lld clients, %lld grants\n",
                               (long long)json_integer_value(json_object_get(o, "clients")),
                               (long long)json_integer_value(json_object_get(o, "grants")));
                json_decref(o);
                return CB_EXIT_OK;
        }
        return cli_usage("policy takes 'check FILE' or 'reload'");
}
