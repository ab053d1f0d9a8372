/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "cli.h"
#include "error.h"
#include "store.h"

static const struct verb {
        const char *name;
        int (*fn)(int argc, char **argv);
        const char *summary;
} verbs[] = {
        { "init", cmd_init, "create a store offline: init --state-dir DIR --unlock SPEC" },
        { "check", cmd_check, "verify a store offline: check --state-dir DIR --unlock SPEC [--json]" },
        { "tpm", cmd_tpm, "what the TPM offers: tpm [--tpm2-tcti S] [--json]; tpm accept-rollback ..." },
        { "token", cmd_token, "tool: print a token: token SECRET [--use proxy|redeem] [--ttl SECONDS] [--bind exe|process|uid]" },
        { "fetch", cmd_fetch, "tool: print a value (needs a redeem grant): fetch SECRET [--newline]" },
        { "exec", cmd_exec, "tool: run a command with secrets, output masked: exec --proxy SECRET | --env VAR=SECRET... -- CMD" },
        { "sandbox", cmd_sandbox, "tool: run a command in a bubblewrap sandbox: sandbox [--write P]... [--hide P]... -- CMD" },
        { "put", cmd_put, "admin: store a value read from stdin: put NAME [--host H]... [--inject T] ..." },
        { "list", cmd_list, "admin: list secrets (metadata only): list [--json]" },
        { "show", cmd_show, "admin: a secret's versions and metadata: show NAME [--json]" },
        { "delete", cmd_delete, "admin: revoke a secret's tokens and destroy every version: delete NAME --yes" },
        { "rotate", cmd_rotate, "admin: new version: rotate NAME [--leaked] [--grace S] [--generate|--hook CMD]" },
        { "versions", cmd_versions, "admin: a secret's versions and what each state means: versions NAME [--json]" },
        { "version", cmd_version, "admin: version enable|disable|destroy NAME VERSION" },
        { "revoke", cmd_revoke, "admin: revoke tokens: revoke --accessor A | --secret NAME | --client C" },
        { "status", cmd_status, "admin: the broker's state: status [--json]" },
        { "metrics", cmd_metrics, "admin: the broker's counters, Prometheus text format: metrics" },
        { "policy", cmd_policy, "check a policy file, or reload the broker's: policy check FILE [--json] | policy reload [--json]" },
        { "approvals", cmd_approvals, "admin: token requests held for approval: approvals [--json]" },
        { "approve", cmd_approve, "admin: approve a held token request: approve ID" },
        { "deny", cmd_deny, "admin: deny a held token request: deny ID" },
        { "pubkey", cmd_pubkey, "admin: the provisioning public key: pubkey [--list|--rotate|--retire ID] [--json]" },
        { "seal", cmd_seal, "offline: seal stdin for a broker: seal --recipient KEY --name NAME [--host H]..." },
        { "import", cmd_import, "admin: import sealed blobs: import [--dry-run] BLOB|FILE|-..." },
        { "audit", cmd_audit, "operators: audit verify FILE... [--state-dir DIR --unlock SPEC] | audit grep --accessor A FILE..." },
        { "scan", cmd_scan, "find secrets/tokens in text (names only): scan [--admin] [--json] [FILE|-]" },
        { "redact", cmd_redact, "filter stdin to stdout, secrets/tokens -> [REDACTED:NAME]: redact [--admin]" },
};

const char *cli_socket;
const char *cli_admin_socket;

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
        case -ETIME:  /* token expired */
        case -EDQUOT: /* token used up */
                return CB_EXIT_DENIED;
        case -ECONNREFUSED:
        case -ETIMEDOUT:
        case -EBUSY:
        case -EAGAIN:
                return CB_EXIT_UNAVAILABLE;
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

const char *cli_one_name(int argc, char **argv, const char *verb, const char *what) {
        if (argc - optind != 1) {
                cli_usage("%s takes exactly one %s", verb, what);
                return NULL;
        }
        if (cb_name_check(argv[optind]) < 0) {
                cli_usage("%s: %s", verb, cb_error_last());
                return NULL;
        }
        return argv[optind];
}

static void help(FILE *f) {
        fputs("usage: credbroker [--socket PATH] [--admin-socket PATH] [--broker-uid UID] COMMAND [ARGS]\n\ncommands:\n", f);
        for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
                fprintf(f, "  %-8s %s\n", verbs[i].name, verbs[i].summary);
        fputs("\nSecret values are read from stdin or files, never from arguments.\n"
              "Sockets: --socket / $CREDBROKER_SOCKET (default /run/credbroker/tools.sock),\n"
              "--admin-socket / $CREDBROKER_ADMIN_SOCKET (default /run/credbroker/admin.sock).\n"
              "Nothing is sent to a socket served by a uid other than root, yours or the\n"
              "user 'credbroker', unless --broker-uid UID / $CREDBROKER_BROKER_UID names it.\n"
              "Exit codes: 0 ok, 1 failure, 2 usage, 3 wrong key, 4 integrity, 5 not found,\n"
              "6 exists, 7 denied, 8 broker unavailable; exec: the command's own status.\n"
              "'credbroker COMMAND --help' describes a command.\n", f);
}

/* Global options before COMMAND: --socket PATH, --admin-socket PATH (or
 * --opt=PATH).  Returns the index of COMMAND, or -1 after a usage error. */
static int global_options(int argc, char **argv) {
        static const char *broker_uid;
        int i = 1;

        while (i < argc && strncmp(argv[i], "--", 2) == 0 && argv[i][2]) {
                static const struct {
                        const char *name;
                        const char **var;
                } g[] = { { "--socket", &cli_socket }, { "--admin-socket", &cli_admin_socket },
                          { "--broker-uid", &broker_uid } };
                size_t k, n = 0;

                for (k = 0; k < sizeof(g) / sizeof(g[0]); k++) {
                        n = strlen(g[k].name);
                        if (strncmp(argv[i], g[k].name, n) == 0 && (argv[i][n] == 0 || argv[i][n] == '='))
                                break;
                }
                if (k == sizeof(g) / sizeof(g[0]))
                        break; /* --help, --version, or a verb's business */
                if (argv[i][n] == '=') {
                        *g[k].var = argv[i] + n + 1;
                        i++;
                } else if (i + 1 < argc) {
                        *g[k].var = argv[i + 1];
                        i += 2;
                } else {
                        cli_usage("%s needs a PATH", g[k].name);
                        return -1;
                }
                if (!**g[k].var) {
                        cli_usage("%s needs a non-empty PATH", g[k].name);
                        return -1;
                }
        }
        /* --broker-uid UID: the uid the broker runs as, if not root; the
         * library checks the socket's server against it before sending
         * anything (cb_client_set_broker_uid). */
        if (broker_uid) {
                unsigned long long v;
                if (cli_parse_u64(broker_uid, UINT32_MAX - 1, &v) < 0) {
                        cli_usage("--broker-uid needs a numeric uid");
                        return -1;
                }
                if (setenv("CREDBROKER_BROKER_UID", broker_uid, 1) < 0)
                        return -1;
        }
        return i;
}

int main(int argc, char **argv) {
        const struct rlimit no_core = { 0, 0 };
        int i;

        /* The CLI handles keys too (init, check): no core dumps, no ptrace. */
        (void)setrlimit(RLIMIT_CORE, &no_core);
        (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        i = global_options(argc, argv);
        if (i < 0)
                return CB_EXIT_USAGE;
        if (i >= argc)
                return help(stderr), CB_EXIT_USAGE;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "help") == 0)
                return help(stdout), CB_EXIT_OK;
        if (strcmp(argv[i], "--list-commands") == 0) { /* for shell completion */
                for (size_t k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++)
                        puts(verbs[k].name);
                return CB_EXIT_OK;
        }
        if (strcmp(argv[i], "--version") == 0)
                return puts("credbroker 0.1.0"), CB_EXIT_OK;
        /* "VERB -h" is "VERB --help" for every verb, here rather than in
         * each verb's option table (later arguments may be CMD's, for exec). */
        if (i + 1 < argc && strcmp(argv[i + 1], "-h") == 0)
                argv[i + 1] = (char *)"--help";
        for (size_t k = 0; k < sizeof(verbs) / sizeof(verbs[0]); k++)
                if (strcmp(argv[i], verbs[k].name) == 0)
                        return verbs[k].fn(argc - i, argv + i);
        return cli_usage("unknown command '%.64s'", argv[i]);
}
