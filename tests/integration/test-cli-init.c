/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CLI's offline verbs, run as a process ($CREDBROKER_CLI): init creates
 * private files and refuses to overwrite; check verifies and maps failures
 * to the documented exit codes (cli.h) with one line on stderr naming the
 * file; key and passphrase files that others could read are refused; no
 * secret ever appears in the output.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cbtest.h"
#include "error.h"
#include "store.h"

/* Must never appear in any CLI output. */
#define SECRET_VALUE "cbtest-distinctive-VALUE-5f0c2a9e71"
#define PASSPHRASE "correct horse battery staple 7731"
#define WRONG_PASSPHRASE "incorrect horse battery staple 7731"

enum { EXIT_OK = 0, EXIT_USAGE = 2, EXIT_BADKEY = 3, EXIT_INTEGRITY = 4, EXIT_EXISTS = 6, EXIT_DENIED = 7 };

static unsigned cli_runs;

static const char *cli(void) {
        const char *p = getenv("CREDBROKER_CLI");

        if (!p || !*p)
                cbtest_fail(__FILE__, __LINE__, "CREDBROKER_CLI is not set (meson sets it)");
        return p;
}

static void check_no_secrets(const char *what, const char *text) {
        if (strstr(text, SECRET_VALUE) || strstr(text, PASSPHRASE) || strstr(text, WRONG_PASSPHRASE))
                cbtest_fail(__FILE__, __LINE__, "a secret appears in the CLI's %s: %s", what, text);
}

/* What a CLI run left: exit code, stdout, stderr (malloc'd). */
struct res {
        int rc;
        char *out, *err;
};

static void res_free(struct res *r) {
        free(r->out);
        free(r->err);
}

/* Run the CLI with args. */
static struct res run_argv(const char *const *args) {
        const char *argv[32];
        struct res r;
        size_t n = 0;

        argv[n++] = cli();
        for (; *args; args++) {
                ASSERT_TRUE(n < sizeof(argv) / sizeof(argv[0]) - 1);
                argv[n++] = *args;
        }
        argv[n] = NULL;
        r.rc = cbtest_run((char *const *)argv, NULL, 0, &r.out, &r.err);
        check_no_secrets("stdout", r.out);
        check_no_secrets("stderr", r.err);
        cli_runs++;
        return r;
}

#define RUN(...) run_argv((const char *const[]){ __VA_ARGS__, NULL })

/* The same with fd 3 reading fd3_data (for passphrase:fd:3). */
static struct res run_fd3(const char *fd3_data, const char *const *args) {
        const char *argv[32];
        struct res r;
        const char *outp = cbtest_path(cbtest_tmpdir(), "fd3.out"), *errp = cbtest_path(cbtest_tmpdir(), "fd3.err");
        size_t n = 0;
        int p[2], of, ef, status;
        pid_t pid;

        argv[n++] = cli();
        for (; *args; args++) {
                ASSERT_TRUE(n < sizeof(argv) / sizeof(argv[0]) - 1);
                argv[n++] = *args;
        }
        argv[n] = NULL;
        ASSERT_OK(pipe2(p, O_CLOEXEC));
        ASSERT_EQ(write(p[1], fd3_data, strlen(fd3_data)), (ssize_t)strlen(fd3_data));
        close(p[1]);
        of = open(outp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ef = open(errp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ASSERT_TRUE(of >= 0 && ef >= 0);
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (null < 0 || dup2(null, 0) < 0 || dup2(of, 1) < 0 || dup2(ef, 2) < 0)
                        _exit(127);
                /* dup2 onto itself would keep O_CLOEXEC. */
                if (p[0] == 3 ? fcntl(3, F_SETFD, 0) < 0 : dup2(p[0], 3) < 0)
                        _exit(127);
                execv(argv[0], (char *const *)argv);
                _exit(127);
        }
        close(p[0]);
        close(of);
        close(ef);
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        r.out = (char *)cbtest_read_file(outp, NULL);
        r.err = (char *)cbtest_read_file(errp, NULL);
        ASSERT_TRUE(r.out && r.err);
        check_no_secrets("stdout", r.out);
        check_no_secrets("stderr", r.err);
        cli_runs++;
        r.rc = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
        return r;
}

#define RUN_FD3(data, ...) run_fd3((data), (const char *const[]){ __VA_ARGS__, NULL })

/* Exit code rc, nothing on stdout, and exactly one line on stderr
 * ("credbroker: ...") containing each of the given words. */
static void expect_failure_at(int line, struct res r, int want, const char *word1, const char *word2) {
        const char *nl = strchr(r.err, '\n');

        if (r.rc != want)
                cbtest_fail(__FILE__, line, "exit %d, expected %d; stderr: %s", r.rc, want, r.err);
        if (strncmp(r.err, "credbroker: ", 12) != 0 || !nl || nl[1] != '\0')
                cbtest_fail(__FILE__, line, "stderr is not one 'credbroker: ' line: \"%s\"", r.err);
        if ((word1 && !strstr(r.err, word1)) || (word2 && !strstr(r.err, word2)))
                cbtest_fail(__FILE__, line, "stderr does not mention \"%s\"%s%s%s: %s", word1, word2 ? " and \"" : "",
                            word2 ? word2 : "", word2 ? "\"" : "", r.err);
        if (r.out[0])
                cbtest_fail(__FILE__, line, "a failure printed on stdout: %s", r.out);
        res_free(&r);
}

static void expect_success_at(int line, struct res r, const char *stdout_prefix) {
        if (r.rc != EXIT_OK)
                cbtest_fail(__FILE__, line, "exit %d, expected 0; stderr: %s", r.rc, r.err);
        if (r.err[0])
                cbtest_fail(__FILE__, line, "success but stderr says: %s", r.err);
        if (stdout_prefix && strncmp(r.out, stdout_prefix, strlen(stdout_prefix)) != 0)
                cbtest_fail(__FILE__, line, "stdout does not start with \"%s\": \"%s\"", stdout_prefix, r.out);
        res_free(&r);
}

#define expect_failure(...) expect_failure_at(__LINE__, __VA_ARGS__)
#define expect_success(...) expect_success_at(__LINE__, __VA_ARGS__)

/* ---- fixtures ---------------------------------------------------------- */

struct fx {
        char base[2048];
        char state[4096];
        char key[4096];
        char unlock[4200];
};

static void fx_init(struct fx *f, const char *sub) {
        snprintf(f->base, sizeof(f->base), "%s/%s", cbtest_tmpdir(), sub);
        ASSERT_OK(mkdir(f->base, 0700));
        snprintf(f->state, sizeof(f->state), "%s/state", f->base);
        snprintf(f->key, sizeof(f->key), "%s/key", f->base);
        snprintf(f->unlock, sizeof(f->unlock), "keyfile:%s", f->key);
}

/* A store made by the CLI with the keyfile provider. */
static void fx_init_store(struct fx *f, const char *sub) {

        fx_init(f, sub);
        expect_success(RUN("init", "--state-dir", f->state, "--unlock", f->unlock), "created store");
}

static void expect_mode(const char *path, mode_t type, mode_t mode) {
        struct stat st;

        if (lstat(path, &st) < 0)
                cbtest_fail(__FILE__, __LINE__, "%s: %s", path, strerror(errno));
        if ((st.st_mode & S_IFMT) != type || (st.st_mode & 07777) != mode || st.st_uid != geteuid())
                cbtest_fail(__FILE__, __LINE__, "%s: type %o mode %04o uid %u; expected type %o mode %04o uid %u",
                            path, (unsigned)(st.st_mode & S_IFMT), (unsigned)(st.st_mode & 07777),
                            (unsigned)st.st_uid, (unsigned)type, (unsigned)mode, (unsigned)geteuid());
}

static const char *log_name(const char *state) {
        static char name[256];
        DIR *d = opendir(state);
        struct dirent *e;
        unsigned n = 0;

        ASSERT_TRUE(d);
        while ((e = readdir(d)))
                if (strncmp(e->d_name, "log-", 4) == 0) {
                        snprintf(name, sizeof(name), "%s", e->d_name);
                        n++;
                }
        closedir(d);
        ASSERT_EQ(n, 1);
        return name;
}

/* Every file of dir (sorted) with its mode and bytes, as one blob. */
static unsigned char *dir_blob(const char *dir, size_t *ret_len) {
        struct dirent **list;
        unsigned char *blob = NULL;
        size_t len = 0;
        int n = scandir(dir, &list, NULL, alphasort);

        ASSERT_TRUE(n >= 0);
        for (int i = 0; i < n; i++) {
                const char *path = cbtest_path(dir, list[i]->d_name);
                unsigned char *data = NULL;
                size_t dlen = 0;
                struct stat st;
                char head[600];

                ASSERT_OK(lstat(path, &st));
                if (S_ISREG(st.st_mode)) {
                        data = cbtest_read_file(path, &dlen);
                        ASSERT_TRUE(data);
                }
                int hl = snprintf(head, sizeof(head), "%s|%o|%zu|", list[i]->d_name, (unsigned)st.st_mode, dlen);
                blob = realloc(blob, len + (size_t)hl + dlen + 1);
                ASSERT_TRUE(blob);
                memcpy(blob + len, head, (size_t)hl);
                if (dlen)
                        memcpy(blob + len + hl, data, dlen);
                len += (size_t)hl + dlen;
                free(data);
                free(list[i]);
        }
        free(list);
        *ret_len = len;
        return blob;
}

static void flip_byte(const char *path, size_t off) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        unsigned char b;

        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(pread(fd, &b, 1, (off_t)off), 1);
        b ^= 0x20;
        ASSERT_EQ(pwrite(fd, &b, 1, (off_t)off), 1);
        close(fd);
}

static void write_private(const char *path, const void *p, size_t n, mode_t mode) {
        (void)unlink(path);
        ASSERT_OK(cbtest_write_file(path, p, n));
        ASSERT_OK(chmod(path, mode));
}

/* ---- tests ------------------------------------------------------------- */

TEST(init_creates_private_files) {
        struct fx f;
        char other_key[4200], other_unlock[4300];
        unsigned char *before, *after, *kb, *ka;
        size_t bl, al, kbl, kal;
        mode_t old = umask(0); /* modes must not depend on the caller's umask */
        struct stat st;

        fx_init(&f, "init");
        expect_success(RUN("init", "--state-dir", f.state, "--unlock", f.unlock), "created store");
        umask(old);
        expect_mode(f.state, S_IFDIR, 0700);
        expect_mode(cbtest_path(f.state, "header"), S_IFREG, 0600);
        expect_mode(cbtest_path(f.state, "lock"), S_IFREG, 0600);
        expect_mode(cbtest_path(f.state, log_name(f.state)), S_IFREG, 0600);
        expect_mode(f.key, S_IFREG, 0400);
        ASSERT_OK(stat(f.key, &st));
        ASSERT_EQ(st.st_size, 32);
        {
                struct dirent **list;
                int n = scandir(f.state, &list, NULL, alphasort);
                /* . .. header header.spare lock log-<id>: the spare is the
                 * header's pre-allocated stand-in (a commit on a full disk). */
                ASSERT_EQ(n, 6);
                expect_mode(cbtest_path(f.state, "header.spare"), S_IFREG, 0600);
                for (int i = 0; i < n; i++)
                        free(list[i]);
                free(list);
        }

        /* A second init changes nothing: not the store, not the key. */
        before = dir_blob(f.state, &bl);
        kb = cbtest_read_file(f.key, &kbl);
        expect_failure(RUN("init", "--state-dir", f.state, "--unlock", f.unlock), EXIT_EXISTS,
                       "already exists", f.state);
        snprintf(other_key, sizeof(other_key), "%s/other-key", f.base);
        snprintf(other_unlock, sizeof(other_unlock), "keyfile:%s", other_key);
        expect_failure(RUN("init", "--state-dir", f.state, "--unlock", other_unlock), EXIT_EXISTS, "already exists",
                       NULL);
        ASSERT_TRUE(access(other_key, F_OK) < 0 && errno == ENOENT); /* refused before enrolling */
        after = dir_blob(f.state, &al);
        ka = cbtest_read_file(f.key, &kal);
        ASSERT_EQ(al, bl);
        ASSERT_MEMEQ(after, before, bl);
        ASSERT_EQ(kal, kbl);
        ASSERT_MEMEQ(ka, kb, kbl);
        free(before);
        free(after);
        free(kb);
        free(ka);

        expect_success(RUN("check", "--state-dir", f.state, "--unlock", f.unlock), "ok:");
        expect_success(RUN("check", "--state-dir", f.state, "--unlock", f.unlock, "--json"), "{\"ok\":true");
}

TEST(refuses_wrong_or_exposed_keys) {
        unsigned char key[32], other[32];
        unsigned char *kb;
        size_t kl;
        char spec[4300], path[4200];
        struct fx f;

        fx_init_store(&f, "keys");
        kb = cbtest_read_file(f.key, &kl);
        ASSERT_TRUE(kb && kl == sizeof(key));
        memcpy(key, kb, sizeof(key));
        free(kb);

        /* Another key: exit 3. */
        memcpy(other, key, sizeof(other));
        other[7] ^= 1;
        snprintf(path, sizeof(path), "%s/wrong-key", f.base);
        write_private(path, other, sizeof(other), 0400);
        snprintf(spec, sizeof(spec), "keyfile:%s", path);
        expect_failure(RUN("check", "--state-dir", f.state, "--unlock", spec), EXIT_BADKEY, "wrong key", NULL);

        /* The right key, but readable by others: refused before use. */
        snprintf(path, sizeof(path), "%s/key-0644", f.base);
        write_private(path, key, sizeof(key), 0644);
        snprintf(spec, sizeof(spec), "keyfile:%s", path);
        expect_failure(RUN("check", "--state-dir", f.state, "--unlock", spec), EXIT_DENIED, "mode", path);
        write_private(path, key, sizeof(key), 0440);
        expect_failure(RUN("check", "--state-dir", f.state, "--unlock", spec), EXIT_DENIED, "mode", NULL);

        /* The right key, owned by someone else. */
        snprintf(path, sizeof(path), "%s/key-nobody", f.base);
        write_private(path, key, sizeof(key), 0400);
        if (geteuid() == 0) {
                ASSERT_OK(chown(path, 65534, 65534));
                snprintf(spec, sizeof(spec), "keyfile:%s", path);
                expect_failure(RUN("check", "--state-dir", f.state, "--unlock", spec), EXIT_DENIED, "owned", NULL);
        } else {
                printf("not root: the foreign-owner case is not run\n");
        }

        /* The right key still works. */
        expect_success(RUN("check", "--state-dir", f.state, "--unlock", f.unlock), "ok:");
}

TEST(refuses_open_state_dir) {
        char dir[4200], spec[4300];
        struct fx f;

        fx_init_store(&f, "dirmode");
        ASSERT_OK(chmod(f.state, 0755));
        expect_failure(RUN("check", "--state-dir", f.state, "--unlock", f.unlock), EXIT_DENIED, "0700", f.state);
        ASSERT_OK(chmod(f.state, 0700));
        expect_success(RUN("check", "--state-dir", f.state, "--unlock", f.unlock), "ok:");

        /* init into an existing directory others can read: refused, and
         * nothing is written into it. */
        snprintf(dir, sizeof(dir), "%s/open-dir", f.base);
        ASSERT_OK(mkdir(dir, 0755));
        ASSERT_OK(chmod(dir, 0755));
        snprintf(spec, sizeof(spec), "keyfile:%s/new-key", f.base);
        expect_failure(RUN("init", "--state-dir", dir, "--unlock", spec), EXIT_DENIED, "0700", NULL);
        ASSERT_TRUE(access(spec + strlen("keyfile:"), F_OK) < 0 && errno == ENOENT); /* no key made either */
        {
                struct dirent **list;
                int n = scandir(dir, &list, NULL, alphasort);
                ASSERT_EQ(n, 2);
                for (int i = 0; i < n; i++)
                        free(list[i]);
                free(list);
        }
}

TEST(check_names_the_damaged_file) {
        char logpath[4400];
        unsigned char *logb;
        size_t hl, ll;
        cb_unlock_spec *spec;
        cb_store *s;
        struct fx f;

        fx_init_store(&f, "damage");
        /* A secret in the log, through the library. */
        ASSERT_OK(cb_unlock_spec_parse(f.unlock, &spec));
        ASSERT_OK(cb_store_open(f.state, spec, &s));
        ASSERT_OK(cb_store_put(s, "api-token", SECRET_VALUE, strlen(SECRET_VALUE), NULL, CB_VS_CURRENT, NULL));
        cb_store_close(s);
        cb_unlock_spec_free(spec);
        expect_success(RUN("check", "--state-dir", f.state, "--unlock", f.unlock), "ok:");

        snprintf(logpath, sizeof(logpath), "%s/%s", f.state, log_name(f.state));
        logb = cbtest_read_file(logpath, &ll);
        ASSERT_TRUE(logb && ll > 100);
        ASSERT_TRUE(memmem(logb, ll, SECRET_VALUE, strlen(SECRET_VALUE)) == NULL); /* sealed on disk */
        free(logb);
        free(cbtest_read_file(cbtest_path(f.state, "header"), &hl));
        ASSERT_TRUE(hl > 100);

        /* Any flipped byte of the header: exit 4, naming the header. */
        const size_t hoffs[] = { 0, 8, 12, 30, hl / 2, hl - 65, hl - 33, hl - 1 };
        for (size_t i = 0; i < sizeof(hoffs) / sizeof(hoffs[0]); i++) {
                flip_byte(cbtest_path(f.state, "header"), hoffs[i]);
                expect_failure(RUN("check", "--state-dir", f.state, "--unlock", f.unlock), EXIT_INTEGRITY,
                               "header", "integrity");
                flip_byte(cbtest_path(f.state, "header"), hoffs[i]);
        }
        /* Any flipped byte of a committed log record: exit 4, naming the log. */
        const size_t loffs[] = { 0, 3, 4, 5, 20, ll / 2, ll - 40, ll - 33, ll - 1 };
        for (size_t i = 0; i < sizeof(loffs) / sizeof(loffs[0]); i++) {
                flip_byte(logpath, loffs[i]);
                expect_failure(RUN("check", "--state-dir", f.state, "--unlock", f.unlock), EXIT_INTEGRITY,
                               log_name(f.state), "integrity");
                flip_byte(logpath, loffs[i]);
        }
        expect_success(RUN("check", "--state-dir", f.state, "--unlock", f.unlock), "ok:");
}

TEST(passphrase_providers) {
        const char *argon[] = { "--argon2-mem-mib", "8", "--argon2-ops", "1" };
        char pf[4200], wf[4200], spec[4300], wspec[4300], state2[4200];
        struct fx f;

        fx_init(&f, "pass");
        snprintf(pf, sizeof(pf), "%s/pass", f.base);
        snprintf(wf, sizeof(wf), "%s/wrong-pass", f.base);
        write_private(pf, PASSPHRASE "\n", strlen(PASSPHRASE) + 1, 0600);
        write_private(wf, WRONG_PASSPHRASE "\n", strlen(WRONG_PASSPHRASE) + 1, 0600);
        snprintf(spec, sizeof(spec), "passphrase:%s", pf);
        snprintf(wspec, sizeof(wspec), "passphrase:%s", wf);

        /* passphrase:FILE */
        expect_success(RUN("init", "--state-dir", f.state, "--unlock", spec, argon[0], argon[1], argon[2],
                           argon[3]), "created store");
        expect_success(RUN("check", "--state-dir", f.state, "--unlock", spec), "ok:");
        expect_failure(RUN("check", "--state-dir", f.state, "--unlock", wspec), EXIT_BADKEY, "wrong passphrase", NULL);
        ASSERT_OK(chmod(pf, 0644));
        expect_failure(RUN("check", "--state-dir", f.state, "--unlock", spec), EXIT_DENIED, "mode", NULL);
        ASSERT_OK(chmod(pf, 0600));

        /* passphrase:fd:3, from a pipe */
        snprintf(state2, sizeof(state2), "%s/state-fd", f.base);
        expect_success(RUN_FD3(PASSPHRASE "\n", "init", "--state-dir", state2, "--unlock",
                               "passphrase:fd:3", argon[0], argon[1], argon[2], argon[3]), "created store");
        expect_success(RUN_FD3(PASSPHRASE "\n", "check", "--state-dir", state2, "--unlock", "passphrase:fd:3"), "ok:");
        expect_success(RUN("check", "--state-dir", state2, "--unlock", spec), "ok:");
        expect_failure(RUN_FD3(WRONG_PASSPHRASE "\n", "check", "--state-dir", state2, "--unlock",
                               "passphrase:fd:3"),
                       EXIT_BADKEY, "wrong passphrase", NULL);
        /* The file-based store opens from the fd too: same passphrase. */
        expect_success(RUN_FD3(PASSPHRASE, "check", "--state-dir", f.state, "--unlock", "passphrase:fd:3"), "ok:");
}

TEST(usage) {
        struct res r;

        r = RUN("--help");
        ASSERT_EQ(r.rc, EXIT_OK);
        ASSERT_CONTAINS(r.out, "usage:");
        ASSERT_CONTAINS(r.out, "init");
        ASSERT_CONTAINS(r.out, "check");
        res_free(&r);
        expect_success(RUN("init", "--help"), "usage: credbroker init");
        expect_success(RUN("check", "--help"), "usage: credbroker check");

        expect_failure(RUN("init", "--bogus"), EXIT_USAGE, "--bogus", NULL);
        expect_failure(RUN("check", "--state-dir", "/nonexistent", "--unlock", "keyfile:/nonexistent",
                           "--frobnicate"),
                       EXIT_USAGE, "--frobnicate", NULL);
        expect_failure(RUN("frobnicate"), EXIT_USAGE, "unknown command", "frobnicate");
        expect_failure(RUN("init", "--state-dir", "/nonexistent"), EXIT_USAGE, "--unlock", NULL);
        expect_failure(RUN("init", "--state-dir", "/nonexistent", "--unlock", "keyfile:/x", "extra"), EXIT_USAGE,
                       "extra", NULL);
        expect_failure(RUN("check", "--state-dir", "/nonexistent", "--unlock", "magic"), EXIT_USAGE, "magic", NULL);
        expect_failure(RUN("init", "--state-dir", "/nonexistent", "--unlock", "keyfile:/x", "--argon2-ops", "many"),
                       EXIT_USAGE, "--argon2-ops", NULL);
        r = run_argv((const char *const[]){ NULL });
        ASSERT_EQ(r.rc, EXIT_USAGE);
        res_free(&r);
        printf("%u CLI runs, no secret in any output\n", cli_runs);
}
