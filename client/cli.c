/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "cli.h"
#include "error.h"

static const struct verb {
        const char *name;
        int (*fn)(int argc, char **argv);
        const char *summary;
} verbs[] = {
        { "init", cmd_init, "create a store offline: init --state-dir DIR --unlock SPEC" },
        { "check", cmd_check, "verify a store offline: check --state-dir DIR --unlock SPEC [--json]" },
};

int cli_fail(int r, const char *fmt, ...) {
        va_list ap;

        fputs("credbroker: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        switch (r) {
        case CB_E_BADKEY:
                return CB_EXIT_BADKEY;
        case CB_E_INTEGRITY:
        case CB_E_ROLLBACK:
                return CB_EXIT_INTEGRITY;
        case -ENOENT:
                return CB_EXIT_NOTFOUND;
        case -EEXIST:
                return CB_EXIT_EXISTS;
        case -EPERM:
        case -EACCES:
                return CB_EXIT_DENIED;
        case -EINVAL:
                return CB_EXIT_USAGE;
        default:
                return CB_EXIT_FAIL;
        }
}

int cli_usage(const char *fmt, ...) {
        va_list ap;

        fputs("credbroker: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs(" (see 'credbroker --help')\n", stderr);
        return CB_EXIT_USAGE;
}

static void help(FILE *f) {
        fputs("usage: credbroker COMMAND [ARGS]\n\ncommands:\n", f);
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
                fprintf(f, "  %-8s %s\n", verbs[i].name, verbs[i].summary);
        fputs("\nSecret values are read from stdin or files, never from arguments.\n"
              "'credbroker COMMAND --help' describes a command.\n", f);
}

int main(int argc, char **argv) {
        const struct rlimit no_core = { 0, 0 };

        /* The CLI handles keys too (init, check): no core dumps, no ptrace. */
        (void)setrlimit(RLIMIT_CORE, &no_core);
        (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (argc < 2)
                return help(stderr), CB_EXIT_USAGE;
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)
                return help(stdout), CB_EXIT_OK;
        if (strcmp(argv[1], "--version") == 0)
                return puts("credbroker 0.1.0"), CB_EXIT_OK;
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
                if (strcmp(argv[1], verbs[i].name) == 0)
                        return verbs[i].fn(argc - 1, argv + 1);
        return cli_usage("unknown command '%.64s'", argv[1]);
}
