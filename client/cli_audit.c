/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker audit verify FILE...: ask the running broker (admin.sock) to
 * check audit files against its key and its in-memory head, or, with
 * --state-dir/--unlock, run `credbrokerd --verify-audit` offline.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "credbroker.h"

#define FILES_MAX 64
/* The slowest verify rate to allow for (a MAC and a JSON parse per
 * record): the soak's 516 MiB log verified in about 28 s (18 MiB/s) on a
 * shared 2-core machine at load 10-15; allow for a quarter of that. */
#define VERIFY_BYTES_PER_S (4ull << 20)

static const char usage[] =
        "usage: credbroker audit verify [--json] FILE...\n"
        "       credbroker audit grep --accessor cba_... FILE...  (see 'audit grep --help')\n"
        "       credbroker audit verify --state-dir DIR --unlock SPEC [--tpm2-tcti S] [--json] FILE...\n"
        "  Check audit log files (oldest first: rotated files, then the current one):\n"
        "  every record's MAC chain, and that nothing was edited, removed, reordered or\n"
        "  cut from the end.  Names the first bad record by file and line number.\n"
        "  Without --state-dir the running broker checks them (admin.sock) against its\n"
        "  key and the head it holds in memory; with --state-dir/--unlock, credbrokerd\n"
        "  checks them offline against the head checkpointed in the state directory.\n"
        "  Exit 0 intact, 4 not intact, other codes as usual.\n";

/* For text read from a file an attacker may have written. */
static void put_safe(const char *s) {
        for (; s && *s; s++)
                putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static int offline(const char *state_dir, const char *unlock, const char *tcti, int nfiles, char **files, bool json) {
        static const char *const rel[] = { "/../broker/credbrokerd", "/credbrokerd", "/../sbin/credbrokerd" };
        char daemon[PATH_MAX + 32], self[PATH_MAX];
        const char *env = getenv("CREDBROKER_DAEMON");
        char *av[8 + 2 * FILES_MAX];
        int k = 0;

        if (env && *env) {
                snprintf(daemon, sizeof(daemon), "%s", env);
        } else {
                ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
                char *slash;
                if (n < 0)
                        return cli_fail(-errno, "audit verify: cannot find my own executable: %s", strerror(errno));
                self[n] = 0;
                slash = strrchr(self, '/');
                if (slash)
                        *slash = 0;
                daemon[0] = 0;
                for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++)
                        if ((size_t)snprintf(daemon, sizeof(daemon), "%s%s", self, rel[i]) < sizeof(daemon) &&
                            access(daemon, X_OK) == 0)
                                break;
        }
        if (access(daemon, X_OK) < 0)
                return cli_fail(-ENOENT, "audit verify: credbrokerd not found (set $CREDBROKER_DAEMON)");
        av[k++] = daemon;
        av[k++] = (char *)"--state-dir";
        av[k++] = (char *)state_dir;
        av[k++] = (char *)"--unlock";
        av[k++] = (char *)unlock;
        if (tcti) {
                av[k++] = (char *)"--tpm2-tcti";
                av[k++] = (char *)tcti;
        }
        if (json)
                av[k++] = (char *)"--verify-json";
        for (int i = 0; i < nfiles; i++) {
                av[k++] = (char *)"--verify-audit";
                av[k++] = files[i];
        }
        av[k] = NULL;
        fflush(stdout);
        execv(daemon, av);
        return cli_fail(-errno, "audit verify: cannot run %.256s: %s", daemon, strerror(errno));
}

static int verify(int argc, char **argv) {
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },         { "state-dir", required_argument, NULL, 's' },
                { "unlock", required_argument, NULL, 'u' }, { "help", no_argument, NULL, 'h' },
                { "tpm2-tcti", required_argument, NULL, 'T' }, {},
        };
        const char *state_dir = NULL, *unlock = NULL, *tcti = NULL;
        char *text = NULL, *body = NULL;
        json_t *o = NULL, *files = NULL;
        cb_client *c = NULL;
        bool json = false;
        int opt, r, n;

        optind = 1;
        while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (opt) {
                case 'j': json = true; break;
                case 's': state_dir = optarg; break;
                case 'u': unlock = optarg; break;
                case 'T': tcti = optarg; break;
                case 'h': fputs(usage, stdout); return CB_EXIT_OK;
                default: return cli_usage("audit verify: bad option");
                }
        }
        n = argc - optind;
        if (n < 1 || n > FILES_MAX)
                return cli_usage("audit verify takes 1 to %d FILEs, oldest first", FILES_MAX);
        if (!state_dir != !unlock)
                return cli_usage("audit verify: --state-dir and --unlock go together");
        if (state_dir)
                return offline(state_dir, unlock, tcti, n, argv + optind, json);
        files = json_array();
        unsigned long long bytes = 0;
        for (int i = optind; i < argc; i++) {
                char *abs = realpath(argv[i], NULL);
                struct stat st;
                if (!abs) {
                        r = cli_fail(-errno, "audit verify: %s: %s", argv[i], strerror(errno));
                        goto out;
                }
                if (stat(abs, &st) == 0 && st.st_size > 0)
                        bytes += (unsigned long long)st.st_size;
                json_array_append_new(files, json_string(abs));
                free(abs);
        }
        o = json_pack("{s:O}", "files", files);
        body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        o = NULL;
        if (!body) {
                r = cli_fail(-ENOMEM, "audit verify: out of memory");
                goto out;
        }
        r = cli_connect(1, &c);
        if (r < 0) {
                r = -r;
                goto out;
        }
        /* The broker answers when it has read every record: give it the
         * usual 30 s plus a second per 4 MiB of log. */
        cb_client_set_timeout(c, (unsigned)(30 + bytes / VERIFY_BYTES_PER_S));
        r = cb_client_request(c, "POST", "/v1/admin/audit/verify", body, strlen(body), &text, NULL);
        if (r < 0) {
                r = cli_fail_client(r, c, "audit verify");
                goto out;
        }
        o = json_loads(text, 0, NULL);
        if (!json_is_object(o)) {
                r = cli_fail(-EPROTO, "audit verify: malformed answer from the broker");
                goto out;
        }
        bool intact = json_is_true(json_object_get(o, "intact"));
        if (json) {
                printf("%s\n", text);
        } else if (intact) {
                printf("intact: %lld records in %lld segment(s); ",
                       (long long)json_integer_value(json_object_get(o, "records")),
                       (long long)json_integer_value(json_object_get(o, "segments")));
                put_safe(json_string_value(json_object_get(o, "tail")));
                putchar('\n');
        } else {
                fputs("NOT INTACT: ", stdout);
                put_safe(json_string_value(json_object_get(o, "file")));
                printf(" line %lld: ", (long long)json_integer_value(json_object_get(o, "line")));
                put_safe(json_string_value(json_object_get(o, "problem")));
                putchar('\n');
        }
        r = intact ? CB_EXIT_OK : CB_EXIT_INTEGRITY;
out:
        json_decref(o);
        json_decref(files);
        free(body);
        free(text);
        cb_client_free(c);
        return r;
}

int cmd_audit(int argc, char **argv) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
                return fputs(usage, stdout), CB_EXIT_OK;
        if (argc >= 2 && strcmp(argv[1], "verify") == 0)
                return verify(argc - 1, argv + 1);
        if (argc >= 2 && strcmp(argv[1], "grep") == 0)
                return cli_audit_grep(argc - 1, argv + 1);
        return cli_usage("audit takes 'verify FILE...' or 'grep --accessor cba_... FILE...'");
}
