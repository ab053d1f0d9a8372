/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libcredbroker against the real daemon: a real credbrokerd with a store,
 * a policy and a value put through the CLI; forked children that drop to
 * real uids (61201: granted, 61202: nothing) call the public API only.
 * Checks that the library's answers match include/credbroker.h and
 * broker/API.md, that failures leave out-parameters alone and never carry
 * the value in cb_client_error(), and that the shared library exports
 * nothing but cb_* symbols.  Needs root; exits 77 naming what is missing.
 */
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <credbroker.h>

#include "cbtest.h"

#define UID_TOOL  61201 /* granted "libdemo" (redeem, proxy; max_ttl 60) */
#define UID_OTHER 61202 /* in no client selector */
#define MAX_TTL 60
#define TOKEN_LEN 40 /* "cbt_" + 30 base62 + 6 base62 CRC (README "Tokens") */
#define ACCESSOR_LEN 28 /* "cba_" + 24 hex (broker/tokens/tokens.h) */

static char dir[PATH_MAX / 2], self_exe[PATH_MAX / 2], tools_sock[PATH_MAX], admin_sock[PATH_MAX];
static char value1[64], value2[64];   /* the two versions put; never in any error text */
static unsigned put_version;          /* what the CLI reported for the last put */
static char passed_token[TOKEN_LEN + 1]; /* minted by UID_TOOL, presented by UID_OTHER */
static pid_t daemon_pid = -1, owner_pid;

/* Neither value may appear in s (not printed: the log must not hold it either). */
#define ASSERT_NO_VALUE(s) do {                                                       \
                const char *_s = (s);                                                  \
                if (!_s || strstr(_s, value1) || strstr(_s, value2))                   \
                        cbtest_fail(__FILE__, __LINE__, "a secret value (or NULL) in %s", #s); \
        } while (0)
/* expr fails with err, handle c says why (reason) and does not leak. */
#define ASSERT_REFUSED(expr, err, c, reason) do {                                     \
                ASSERT_ERR(expr, err);                                                 \
                ASSERT_CONTAINS(cb_client_error(c), reason);                           \
                ASSERT_NO_VALUE(cb_client_error(c));                                   \
        } while (0)

static const char *env_path(const char *name) {
        const char *p = getenv(name);

        if (!p || !*p)
                cbtest_fail(__FILE__, __LINE__, "%s is not set (meson sets it)", name);
        return p;
}

/* Runs last among atexit handlers (registered after cbtest_tmpdir's), so
 * the daemon is gone before the directory is removed.  Children skip it. */
static void kill_daemon(void) {
        if (daemon_pid > 0 && getpid() == owner_pid) {
                kill(daemon_pid, SIGKILL);
                waitpid(daemon_pid, NULL, 0);
                daemon_pid = -1;
        }
}

static bool drop_to(uid_t uid) {
        return setgroups(0, NULL) == 0 && setgid(uid) == 0 && setuid(uid) == 0 && getuid() == uid &&
               geteuid() == uid && getgid() == uid && setuid(0) < 0; /* and root cannot come back */
}

/* Run fn(fd) in a child as uid; the child's ASSERTs exit 1 with the reason on
 * stderr, so a clean exit 0 means every check in fn passed. */
static void run_as(uid_t uid, void (*fn)(int), int fd, const char *what) {
        int st;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                if (!drop_to(uid)) {
                        fprintf(stderr, "cannot become uid %u: %m\n", (unsigned)uid);
                        exit(1);
                }
                fn(fd);
                exit(0); /* not _exit: under ASan, LeakSanitizer checks the child too */
        }
        ASSERT_EQ(waitpid(pid, &st, 0), pid);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                cbtest_fail(__FILE__, __LINE__, "%s (uid %u) failed: wait status 0x%x", what, (unsigned)uid, st);
}

static void check_token_format(const char *t) {
        ASSERT_EQ(strlen(t), TOKEN_LEN);
        ASSERT_TRUE(strncmp(t, "cbt_", 4) == 0);
        for (const char *p = t + 4; *p; p++)
                ASSERT_TRUE((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'));
}

/* ---- setup: store, policy, daemon, two versions put through the CLI ---- */

static void put(const char *name, const char *value) {
        char *argv[] = { (char *)env_path("CREDBROKER_CLI"), "--admin-socket", admin_sock, "put", (char *)name, NULL };
        char *out, *err, want[64];

        /* The value goes on stdin, never argv (README: values never in arguments). */
        ASSERT_EQ(cbtest_run(argv, value, strlen(value), &out, &err), 0);
        ASSERT_NO_VALUE(out);
        ASSERT_NO_VALUE(err);
        snprintf(want, sizeof(want), "stored %s version ", name);
        ASSERT_CONTAINS(out, want);
        put_version = (unsigned)strtoul(strstr(out, want) + strlen(want), NULL, 10);
        free(out);
        free(err);
}

static void setup(void) {
        unsigned char rnd[2][8];
        char policy[PATH_MAX], key[PATH_MAX], state[PATH_MAX], pol[PATH_MAX], unlock[PATH_MAX + 16];
        char *out = NULL, *err = NULL;
        ssize_t n;
        int st;
        pid_t pid;

        if (daemon_pid > 0)
                return;
        if (geteuid() != 0)
                cbtest_skip("root (to run library clients under uids %d and %d)", UID_TOOL, UID_OTHER);
        /* Can we fork and switch uid at all (no seccomp, no user-namespace limits)? */
        fflush(NULL);
        pid = fork();
        if (pid < 0)
                cbtest_skip("fork: %m");
        if (pid == 0)
                _exit(drop_to(UID_TOOL) ? 0 : 1);
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                cbtest_skip("switching a child to uid %d (setgroups/setgid/setuid)", UID_TOOL);

        n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
        ASSERT_TRUE(n > 0 && (size_t)n < sizeof(self_exe) - 1);
        self_exe[n] = 0;
        ASSERT_TRUE(!strpbrk(self_exe, "\"\\")); /* pasted into JSON below */
        ASSERT_EQ(getrandom(rnd, sizeof(rnd), 0), (ssize_t)sizeof(rnd));
        for (int v = 0; v < 2; v++) {
                char *p = v ? value2 : value1;
                p += sprintf(p, "cbtest-lib-VALUE%d-", v + 1);
                for (size_t i = 0; i < sizeof(rnd[v]); i++)
                        p += sprintf(p, "%02x", rnd[v][i]);
        }

        snprintf(dir, sizeof(dir), "%s", cbtest_tmpdir());
        owner_pid = getpid();
        atexit(kill_daemon);
        ASSERT_OK(chmod(dir, 0755)); /* the clients must reach run/tools.sock */
        snprintf(key, sizeof(key), "%s/key", dir);
        snprintf(state, sizeof(state), "%s/state", dir);
        snprintf(pol, sizeof(pol), "%s/policy.json", dir);
        snprintf(unlock, sizeof(unlock), "keyfile:%s", key);
        snprintf(tools_sock, sizeof(tools_sock), "%s/run/tools.sock", dir);
        snprintf(admin_sock, sizeof(admin_sock), "%s/run/admin.sock", dir);

        char *init[] = { (char *)env_path("CREDBROKER_CLI"), "init", "--state-dir", state, "--unlock", unlock, NULL };
        if (cbtest_run(init, NULL, 0, &out, &err) != 0)
                cbtest_fail(__FILE__, __LINE__, "credbroker init failed: %s", err);
        free(out);
        free(err);

        /* "libmissing" is granted but never stored: tells not_found from forbidden. */
        snprintf(policy, sizeof(policy),
                 "{\"clients\": {\"libtest\": {\"uid\": %d, \"exe\": \"%s\"}},\n"
                 " \"grants\": [{\"client\": \"libtest\", \"secret\": \"libdemo\", \"use\": [\"redeem\", \"proxy\"],"
                 " \"max_ttl\": %d},\n"
                 "  {\"client\": \"libtest\", \"secret\": \"libmissing\", \"use\": [\"redeem\"], \"max_ttl\": %d}],\n"
                 " \"admins\": {\"uids\": [0]}}\n",
                 UID_TOOL, self_exe, MAX_TTL, MAX_TTL);
        ASSERT_OK(cbtest_write_file(pol, policy, strlen(policy)));
        ASSERT_OK(chmod(pol, 0644));

        fflush(NULL);
        daemon_pid = fork();
        ASSERT_TRUE(daemon_pid >= 0);
        if (daemon_pid == 0) {
                char *argv[] = { (char *)env_path("CREDBROKERD"), "--state-dir", state, "--run-dir",
                                 (char *)cbtest_path(dir, "run"), "--policy", pol, "--unlock", unlock, NULL };
                int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
                int log = open(cbtest_path(dir, "daemon.out"), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

                if (in < 0 || log < 0 || dup2(in, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
                        _exit(127);
                execv(argv[0], argv);
                _exit(127);
        }
        for (int i = 0; i < 300 && (access(tools_sock, F_OK) < 0 || access(admin_sock, F_OK) < 0); i++) {
                if (waitpid(daemon_pid, &st, WNOHANG) == daemon_pid) {
                        daemon_pid = -1;
                        char *log = (char *)cbtest_read_file(cbtest_path(dir, "daemon.out"), NULL);
                        cbtest_fail(__FILE__, __LINE__, "credbrokerd exited at start (status 0x%x): %s", st,
                                    log ? log : "");
                }
                usleep(50 * 1000);
        }
        ASSERT_OK(access(tools_sock, F_OK));
        ASSERT_OK(access(admin_sock, F_OK));
        /* Two versions, so the version a redeem reports is not 1 by luck. */
        put("libdemo", value1);
        put("libdemo", value2);
        ASSERT_EQ(put_version, 2);
}

/* ---- what the children do ---- */

/* UID_TOOL: the granted path, the documented refusals, a token for UID_OTHER. */
static void child_granted(int fd) {
        cb_client *c = NULL, *a = NULL;
        cb_secret *s = NULL;
        char *tok = NULL, *acc = NULL, *json = NULL, body[128];
        unsigned exp = 0;
        long status = 0;

        ASSERT_OK(cb_client_new(tools_sock, &c));
        ASSERT_STREQ(cb_client_socket(c), tools_sock);
        ASSERT_OK(cb_client_health(c));
        ASSERT_STREQ(cb_client_error(c), "");

        /* A token of the documented shape, its accessor, and the ttl asked for. */
        ASSERT_OK(cb_client_token(c, "libdemo", "redeem", 30, &tok, &acc, &exp));
        check_token_format(tok);
        ASSERT_EQ(strlen(acc), ACCESSOR_LEN);
        ASSERT_TRUE(strncmp(acc, "cba_", 4) == 0);
        ASSERT_EQ(exp, 30);

        /* Redeem: the current version's bytes, length, name and version. */
        ASSERT_OK(cb_client_redeem(c, tok, &s));
        ASSERT_EQ(cb_secret_len(s), strlen(value2));
        ASSERT_MEMEQ(cb_secret_value(s), value2, strlen(value2));
        ASSERT_EQ(cb_secret_value(s)[cb_secret_len(s)], 0); /* the documented trailing NUL */
        ASSERT_STREQ(cb_secret_name(s), "libdemo");
        ASSERT_EQ(cb_secret_version(s), put_version);
        cb_secret_free(s);
        s = NULL;

        /* Introspect through the generic call: the holder sees the accessor
         * and one use, never a value. */
        snprintf(body, sizeof(body), "{\"token\":\"%s\"}", tok);
        ASSERT_OK(cb_client_request(c, "POST", "/v1/introspect", body, strlen(body), &json, &status));
        ASSERT_EQ(status, 200);
        ASSERT_CONTAINS(json, acc);
        ASSERT_CONTAINS(json, "\"used\":1");
        ASSERT_NO_VALUE(json);
        free(json);
        json = NULL;
        /* The generic call refuses the value route locally. */
        ASSERT_REFUSED(cb_client_request(c, "POST", "/v1/redeem", body, strlen(body), &json, NULL), -EINVAL, c,
                       "cb_client_redeem");
        ASSERT_TRUE(json == NULL);
        cb_token_free(tok);
        free(acc);
        tok = NULL;

        /* TTL: above the grant's max_ttl, and 0 (the default, 300 s), are
         * capped to max_ttl (README "Tokens", header: "capped by the grant"). */
        ASSERT_OK(cb_client_token(c, "libdemo", "redeem", 3600, &tok, NULL, &exp));
        ASSERT_EQ(exp, MAX_TTL);
        cb_token_free(tok);
        ASSERT_OK(cb_client_token(c, "libdemo", "redeem", 0, &tok, NULL, &exp));
        ASSERT_EQ(exp, MAX_TTL);
        cb_token_free(tok);
        tok = NULL;
        /* Beyond the broker's hard limit (86400 s) it is bad_request, -EINVAL. */
        ASSERT_REFUSED(cb_client_token(c, "libdemo", "redeem", 86401, &tok, NULL, &exp), -EINVAL, c, "'ttl'");
        ASSERT_TRUE(tok == NULL);

        /* A proxy token never yields a value. */
        ASSERT_OK(cb_client_token(c, "libdemo", "proxy", 30, &tok, NULL, NULL));
        check_token_format(tok);
        ASSERT_REFUSED(cb_client_redeem(c, tok, &s), CB_ERR_TOKEN, c, "for proxy use only");
        ASSERT_TRUE(s == NULL);
        cb_token_free(tok);
        /* No use named: the broker's default, proxy, which cannot redeem. */
        ASSERT_OK(cb_client_token(c, "libdemo", NULL, 30, &tok, NULL, NULL));
        ASSERT_REFUSED(cb_client_redeem(c, tok, &s), CB_ERR_TOKEN, c, "ask for one with \"use\": \"redeem\"");
        ASSERT_TRUE(s == NULL);
        cb_token_free(tok);
        tok = NULL;

        /* Unknown secrets: not granted is forbidden (the grant is checked
         * first, so names are not probed); granted but not stored is not_found. */
        ASSERT_REFUSED(cb_client_token(c, "nosuchsecret", "redeem", 30, &tok, NULL, NULL), CB_ERR_DENIED, c,
                       "no grant");
        ASSERT_REFUSED(cb_client_token(c, "libmissing", "redeem", 30, &tok, NULL, NULL), -ENOENT, c,
                       "no secret named 'libmissing'");
        ASSERT_TRUE(tok == NULL);
        /* Bad tokens: refused by the library before sending, or by the broker. */
        ASSERT_REFUSED(cb_client_redeem(c, "cbt_\"x", &s), CB_ERR_TOKEN, c, "not a token");
        ASSERT_REFUSED(cb_client_redeem(c, "cbt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &s), CB_ERR_TOKEN, c,
                       "not a credbroker token"); /* right shape, wrong CRC */
        ASSERT_TRUE(s == NULL);

        /* A token for UID_OTHER to present (through the parent). */
        ASSERT_OK(cb_client_token(c, "libdemo", "redeem", MAX_TTL, &tok, NULL, NULL));
        ASSERT_EQ(write(fd, tok, strlen(tok)), (ssize_t)strlen(tok));
        cb_token_free(tok);
        cb_client_free(c);

        /* admin.sock is 0600: a non-admin cannot even connect (CB_ERR_DENIED). */
        ASSERT_OK(cb_client_new_admin(admin_sock, &a));
        ASSERT_REFUSED(cb_client_request(a, "GET", "/v1/admin/status", NULL, 0, &json, &status), CB_ERR_DENIED, a,
                       "Permission denied");
        ASSERT_TRUE(json == NULL);
        cb_client_free(a);
}

/* UID_OTHER: no grant, and UID_TOOL's token is not transferable. */
static void child_other(int fd) {
        cb_client *c = NULL;
        cb_secret *s = NULL;
        char *tok = NULL, *json = NULL, body[128], want[64];

        (void)fd;
        ASSERT_OK(cb_client_new(tools_sock, &c));
        ASSERT_OK(cb_client_health(c)); /* health is for anyone */
        snprintf(want, sizeof(want), "no grant lets uid %d", UID_OTHER);
        ASSERT_REFUSED(cb_client_token(c, "libdemo", "redeem", 30, &tok, NULL, NULL), CB_ERR_DENIED, c, want);
        ASSERT_REFUSED(cb_client_token(c, "libdemo", "proxy", 30, &tok, NULL, NULL), CB_ERR_DENIED, c, want);
        ASSERT_TRUE(tok == NULL);
        snprintf(want, sizeof(want), "belongs to uid %d", UID_TOOL);
        ASSERT_REFUSED(cb_client_redeem(c, passed_token, &s), CB_ERR_TOKEN, c, want);
        ASSERT_TRUE(s == NULL);
        snprintf(body, sizeof(body), "{\"token\":\"%s\"}", passed_token);
        ASSERT_REFUSED(cb_client_request(c, "POST", "/v1/introspect", body, strlen(body), &json, NULL), CB_ERR_TOKEN,
                       c, "belongs to another caller");
        ASSERT_TRUE(json == NULL);
        cb_client_free(c);
}

/* UID_TOOL again: the token UID_OTHER was refused still works for its owner
 * (the refusal was about identity), and admin.sock opened to all (0666)
 * still refuses a non-admin by policy. */
static void child_owner_again(int fd) {
        cb_client *c = NULL;
        cb_secret *s = NULL;
        char *json = NULL;

        (void)fd;
        ASSERT_OK(cb_client_new(tools_sock, &c));
        ASSERT_OK(cb_client_redeem(c, passed_token, &s));
        ASSERT_EQ(cb_secret_len(s), strlen(value2));
        ASSERT_MEMEQ(cb_secret_value(s), value2, strlen(value2));
        cb_secret_free(s);
        cb_client_free(c);

        ASSERT_OK(cb_client_new_admin(admin_sock, &c));
        ASSERT_REFUSED(cb_client_request(c, "GET", "/v1/admin/status", NULL, 0, &json, NULL), CB_ERR_DENIED, c,
                       "not an admin");
        ASSERT_TRUE(json == NULL);
        cb_client_free(c);
}

/* ---- tests, in order ---- */

/* -fvisibility=hidden + CB_EXPORT: the shared library's dynamic symbol
 * table holds the cb_* API and nothing else (no libsodium, jansson, curl or
 * file-local helpers leaking out to clash with the embedding program). */
TEST(exports_only_cb_symbols) {
        char *argv[] = { "/usr/bin/env", "nm", "-D", "--defined-only", (char *)env_path("CB_LIBCREDBROKER"), NULL };
        char *out = NULL, *err = NULL, *save = NULL, name[256], type;
        unsigned n_fn = 0;
        int rc = cbtest_run(argv, NULL, 0, &out, &err);

        if (rc == 127) { /* env: nm not in PATH (binutils absent) */
                printf("note: nm not found: exported-symbol check skipped\n");
                free(out);
                free(err);
                return;
        }
        if (rc != 0)
                cbtest_fail(__FILE__, __LINE__, "nm failed on %s: %s", argv[4], err);
        for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                if (sscanf(l, "%*s %c %255s", &type, name) != 2)
                        cbtest_fail(__FILE__, __LINE__, "unexpected nm line: %s", l);
                if (strchr("TtWwi", type))
                        n_fn++;
                else if (strcmp(name, "_edata") == 0 || strcmp(name, "_end") == 0 || strcmp(name, "__bss_start") == 0)
                        continue; /* linker-made markers, not code */
                if (strncmp(name, "cb_", 3) != 0)
                        cbtest_fail(__FILE__, __LINE__, "%s exports '%s' (type %c), not a cb_* symbol", argv[4], name,
                                    type);
        }
        ASSERT_TRUE(n_fn >= 15); /* the header's 15 functions, at least: nm really read the table */
        free(out);
        free(err);
}

TEST(granted_client) {
        int p[2];
        ssize_t n;

        setup();
        ASSERT_OK(pipe2(p, O_CLOEXEC));
        run_as(UID_TOOL, child_granted, p[1], "child_granted");
        close(p[1]);
        n = read(p[0], passed_token, sizeof(passed_token) - 1);
        close(p[0]);
        ASSERT_EQ(n, TOKEN_LEN);
        passed_token[n] = 0;
        check_token_format(passed_token);
}

TEST(other_uid_refused) {
        setup();
        run_as(UID_OTHER, child_other, -1, "child_other");
        ASSERT_OK(chmod(admin_sock, 0666)); /* past the socket mode, to the policy check */
        run_as(UID_TOOL, child_owner_again, -1, "child_owner_again");
        ASSERT_OK(chmod(admin_sock, 0600));
}

TEST(bad_sockets_and_admin) {
        cb_client *c = NULL;
        char *json = NULL, longpath[200];
        long status = 0;

        setup();
        /* No socket there: cb_client_new does not connect (header), so it
         * succeeds; the first call fails with CB_ERR_UNREACHABLE. */
        ASSERT_OK(cb_client_new(cbtest_path(dir, "run/nosuch.sock"), &c));
        ASSERT_REFUSED(cb_client_health(c), CB_ERR_UNREACHABLE, c, "cannot connect to the broker");
        ASSERT_CONTAINS(cb_client_error(c), "nosuch.sock");
        cb_client_free(c);
        /* A path that cannot fit in sun_path is refused up front, *ret untouched. */
        memset(longpath, 'x', sizeof(longpath) - 1);
        longpath[0] = '/';
        longpath[sizeof(longpath) - 1] = 0;
        c = NULL;
        ASSERT_ERR(cb_client_new(longpath, &c), -ENAMETOOLONG);
        ASSERT_TRUE(c == NULL);
        /* Control: root, an admin, is served on admin.sock through the library. */
        ASSERT_OK(cb_client_new_admin(admin_sock, &c));
        ASSERT_OK(cb_client_request(c, "GET", "/v1/admin/status", NULL, 0, &json, &status));
        ASSERT_EQ(status, 200);
        ASSERT_CONTAINS(json, "\"secrets\":1");
        ASSERT_NO_VALUE(json);
        free(json);
        cb_client_free(c);
}

/* A server that answers each request after 2 s: a real process on a real
 * socket (root, so the client's server-uid check passes). */
static pid_t slow_server(const char *path) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        pid_t pid;

        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        unlink(path);
        if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 4) < 0)
                cbtest_fail(__FILE__, __LINE__, "slow server: %s", strerror(errno));
        pid = fork();
        if (pid == 0) {
                for (;;) {
                        char buf[4096];
                        int c = accept(l, NULL, NULL);
                        if (c < 0)
                                _exit(0);
                        (void)!read(c, buf, sizeof(buf));
                        sleep(2);
                        static const char ans[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                                  "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
                        (void)!write(c, ans, sizeof(ans) - 1);
                        close(c);
                }
        }
        close(l);
        return pid;
}

/* How long a request waits for its answer is the caller's (the CLI's
 * audit verify gives a large log more than the default 30 s). */
TEST(timeout_is_the_callers) {
        const char *path = cbtest_path(dir, "slow.sock");
        cb_client *c = NULL;
        char *json = NULL;
        long status = 0;

        setup();
        pid_t pid = slow_server(path);
        ASSERT_OK(cb_client_new_admin(path, &c));
        cb_client_set_timeout(c, 1);
        ASSERT_ERR(cb_client_request(c, "GET", "/v1/admin/status", NULL, 0, &json, &status), -ETIMEDOUT);
        ASSERT_CONTAINS(cb_client_error(c), "within 1 s");
        cb_client_set_timeout(c, 10);
        ASSERT_OK(cb_client_request(c, "GET", "/v1/admin/status", NULL, 0, &json, &status));
        ASSERT_EQ(status, 200);
        free(json);
        cb_client_free(c);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        unlink(path);
}

TEST(daemon_stops_cleanly) {
        char *log;
        int st = 0;
        pid_t w = 0;

        setup();
        ASSERT_OK(kill(daemon_pid, SIGTERM));
        for (int i = 0; i < 300 && (w = waitpid(daemon_pid, &st, WNOHANG)) == 0; i++)
                usleep(50 * 1000);
        ASSERT_EQ(w, daemon_pid); /* it did exit, within 15 s */
        ASSERT_TRUE(WIFEXITED(st));
        ASSERT_EQ(WEXITSTATUS(st), 0);
        daemon_pid = -1;
        ASSERT_TRUE(access(tools_sock, F_OK) < 0); /* sockets removed on exit */
        log = (char *)cbtest_read_file(cbtest_path(dir, "daemon.out"), NULL);
        ASSERT_NO_VALUE(log);
        free(log);
}
