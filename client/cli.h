/* SPDX-License-Identifier: Apache-2.0 */
/* The credbroker CLI: shared helpers and the exit-code contract. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

/* Exit codes (documented in README).  Scripts may rely on them. */
enum {
        CB_EXIT_OK = 0,
        CB_EXIT_FAIL = 1,      /* any other failure */
        CB_EXIT_USAGE = 2,     /* bad arguments */
        CB_EXIT_BADKEY = 3,    /* wrong passphrase or key file */
        CB_EXIT_INTEGRITY = 4, /* a store file failed an integrity check */
        CB_EXIT_NOTFOUND = 5,  /* no such store / secret */
        CB_EXIT_EXISTS = 6,    /* refusing to overwrite */
        CB_EXIT_DENIED = 7,    /* permission / policy refusal, token refused */
        CB_EXIT_UNAVAILABLE = 8, /* broker unreachable, timed out, busy or rate limiting */
        CB_EXIT_SCAN_ERROR = 9, /* scan/redact failed (there 1 means "found") */
};

/* Global options (cli.c): --socket, --admin-socket.  NULL: the environment
 * ($CREDBROKER_SOCKET, $CREDBROKER_ADMIN_SOCKET), then the default. */
extern const char *cli_socket;
extern const char *cli_admin_socket;

/* Print "credbroker: <msg>" (one line) and map a negative errno to an exit
 * code. */
int cli_fail(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* After option parsing: exactly one operand left, a valid secret name.
 * Returns it, or NULL after printing usage (exit CB_EXIT_USAGE). */
const char *cli_one_name(int argc, char **argv, const char *verb, const char *what);

/* Verbs (cli_store.c). */
int cmd_init(int argc, char **argv);
int cmd_check(int argc, char **argv);

/* TPM report and anti-rollback recovery (cli_tpm.c). */
int cmd_tpm(int argc, char **argv);

/* Talking to the broker (cli_tool.c).  cli_connect opens a handle on the
 * tool (admin = 0) or admin socket, or prints why not and returns the exit
 * code negated.  cli_fail_client prints "credbroker: VERB: <library
 * message>" and maps r. */
typedef struct cb_client cb_client;
int cli_connect(int admin, cb_client **ret);
int cli_fail_client(int r, const cb_client *c, const char *verb);
/* Decimal without sign, at most max: 0 or -EINVAL. */
int cli_parse_u64(const char *s, unsigned long long max, unsigned long long *ret);
/* write(2) all of p[0..n), retrying on EINTR: 0 or -errno. */
int cli_write_all(int fd, const void *p, size_t n);

/* A time given on the command line (cli_parse.c): UNIXTIME (seconds), a
 * duration from now (+90m or 90m; s, m, h, d), or RFC 3339
 * (2027-01-31T12:00:00Z, +01:00 offsets).  0 and *ret, or -EINVAL. */
#include <stdint.h>
int cli_parse_time(const char *s, uint64_t *ret);
/* A duration: N seconds, or N followed by s, m, h or d; at most max
 * seconds.  0 and *ret, or -EINVAL. */
int cli_parse_duration(const char *s, unsigned long long max, unsigned long long *ret);

/* Tool verbs (cli_tool.c; exec: cli_exec.c). */
int cmd_token(int argc, char **argv);
int cmd_fetch(int argc, char **argv);
int cmd_exec(int argc, char **argv);
/* exec's machinery (cli_exec.c) for other launchers (sandbox, cli_sandbox.c): after
 * exec's own options (--env, --file, --proxy) are handled and values and
 * tokens fetched, wrap(ud, cmd, &argv) replaces the command run with one
 * that runs it (the hook owns the new argv); started(ud, pid) runs in the
 * parent after the fork and before output is pumped (the child is then
 * expected to wait for it); a negative return from either is an exit code
 * negated: the child is killed, nothing of CMD ran.  proxy_url: --proxy's
 * base, used without asking who serves it.  No --env/--proxy is needed. */
struct cli_exec_hooks {
        int (*wrap)(void *ud, char **cmd, char ***ret_argv);
        int (*started)(void *ud, pid_t pid);
        const char *proxy_url;
        void *ud;
};
int cli_exec_run(int argc, char **argv, const struct cli_exec_hooks *h);
int cmd_sandbox(int argc, char **argv);

/* {"secret","version","value"} or, when the value is not UTF-8 text
 * without NUL, "value_base64" instead (as POST /v1/redeem answers), to
 * stdout without a newline (cli_value_json.c).  0 or a negative errno. */
typedef struct cb_secret cb_secret;
int cli_write_value_json(const cb_secret *s);

/* exec --proxy (cli_exec_proxy.c).  cli_proxy_parse reads one
 * SECRET[=openai|anthropic|env:PREFIX]; cli_proxy_mint asks for each
 * secret's uid-bound proxy token and builds PREFIX_BASE_URL=URL/v1/proxy/
 * SECRET[/v1] and PREFIX_API_KEY=TOKEN (sodium_malloc); cli_proxy_release
 * revokes the tokens (POST /v1/revoke) and wipes everything.  Both return
 * 0 or an exit code negated (after printing why). */
#define CLI_PROXY_MAX 8
struct cli_proxy {
        char secret[129];
        char prefix[64];
        const char *path_suffix;
        char *token;
        char *env_base, *env_key;
        unsigned expires;
};
int cli_proxy_parse(struct cli_proxy *p, const char *arg);
/* check: ask who serves url first (exec); the sandbox's listener is its
 * launcher's own, in a network namespace no one else reaches. */
int cli_proxy_mint(struct cli_proxy *p, size_t n, cb_client *c, const char *url, bool check);
void cli_proxy_release(struct cli_proxy *p, size_t n);

/* Admin verbs (cli_admin.c). */
int cmd_put(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_policy(int argc, char **argv);

/* Approval verbs (cli_approve.c); cli_on_pending prints the "waiting for
 * approval" line (a cb_client_pending_fn, set by cli_connect on tools.sock). */
int cmd_approvals(int argc, char **argv);
int cmd_approve(int argc, char **argv);
int cmd_deny(int argc, char **argv);
int cli_on_pending(const char *approval_id, unsigned timeout_s, void *userdata);
/* Provisioning verbs (cli_provision.c). */
int cmd_pubkey(int argc, char **argv);
int cmd_seal(int argc, char **argv);
int cmd_import(int argc, char **argv);
/* Audit verbs (cli_audit.c). */
int cmd_audit(int argc, char **argv);
/* audit grep --accessor A FILE... (cli_audit_grep.c); argv[0] is "grep". */
int cli_audit_grep(int argc, char **argv);
/* Leak scanner verbs (cli_scan.c). */
int cmd_scan(int argc, char **argv);
int cmd_redact(int argc, char **argv);
/* Shared by the admin verbs: admin_call (cli_admin.c), the value and
 * metadata input of put (cli_put.c), reused by cli_rotate.c. */
int admin_call(const char *verb, const char *method, const char *path, const void *body, size_t len, bool raw,
               json_t **ret);
int read_value(const char *verb, const char *name, bool keep_newline, unsigned char **ret, size_t *ret_len);
int build_put_body(json_t *meta, const unsigned char *v, size_t n, char **ret, size_t *ret_len);
bool is_text(const unsigned char *p, size_t n);
/* Broker-supplied text to stdout with control characters shown as '?'. */
void cli_put_safe(const char *s);

/* Rotation verbs (cli_rotate.c). */
int cmd_rotate(int argc, char **argv);
int cmd_versions(int argc, char **argv);
int cmd_version(int argc, char **argv);
