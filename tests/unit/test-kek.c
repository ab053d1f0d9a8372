/* SPDX-License-Identifier: Apache-2.0 */
/* Unlock specs and providers: parsing, key file and passphrase sources. */
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbtest.h"
#include "error.h"
#include "kek.h"
#include "store.h"

TEST(spec_parse) {
        cb_unlock_spec *s;

        ASSERT_OK(cb_unlock_spec_parse("passphrase", &s));
        ASSERT_EQ(s->kind, CB_UNLOCK_PASSPHRASE);
        ASSERT_TRUE(s->path == NULL && s->fd == -1);
        cb_unlock_spec_free(s);
        ASSERT_OK(cb_unlock_spec_parse("passphrase:/etc/pw", &s));
        ASSERT_STREQ(s->path, "/etc/pw");
        cb_unlock_spec_free(s);
        ASSERT_OK(cb_unlock_spec_parse("passphrase:fd:3", &s));
        ASSERT_EQ(s->fd, 3);
        cb_unlock_spec_free(s);
        ASSERT_OK(cb_unlock_spec_parse("keyfile:/k", &s));
        ASSERT_EQ(s->kind, CB_UNLOCK_KEYFILE);
        ASSERT_STREQ(s->path, "/k");
        cb_unlock_spec_free(s);
        ASSERT_OK(cb_unlock_spec_parse("tpm2", &s));
        ASSERT_EQ(s->kind, CB_UNLOCK_TPM2);
        cb_unlock_spec_free(s);
        ASSERT_OK(cb_unlock_spec_parse("tpm2+keyfile:/k", &s));
        ASSERT_EQ(s->kind, CB_UNLOCK_TPM2_KEYFILE);
        cb_unlock_spec_free(s);
        const char *bad[] = { "", "pass", "keyfile", "keyfile:", "passphrase:fd:", "passphrase:fd:x",
                              "passphrase:fd:-1", "tpm3", "tpm2+keyfile:", NULL };
        for (size_t i = 0; bad[i]; i++) {
                s = NULL;
                if (cb_unlock_spec_parse(bad[i], &s) != -EINVAL)
                        cbtest_fail(__FILE__, __LINE__, "spec accepted: '%s'", bad[i]);
        }
}

static void write_key(const char *path, size_t n, mode_t mode) {
        unsigned char k[8192];

        memset(k, 0x5a, sizeof(k));
        (void)unlink(path);
        ASSERT_OK(cbtest_write_file(path, k, n));
        ASSERT_OK(chmod(path, mode));
}

TEST(keyfile_checks) {
        const char *p = cbtest_path(cbtest_tmpdir(), "kf");
        cb_secbuf *k;

        write_key(p, 32, 0400);
        ASSERT_OK(cb_keyfile_read(p, &k));
        ASSERT_EQ(cb_secbuf_len(k), 32);
        cb_secbuf_free(k);
        write_key(p, 32, 0440);
        ASSERT_ERR(cb_keyfile_read(p, &k), -EPERM);
        ASSERT_CONTAINS(cb_error_last(), "group or others");
        write_key(p, 32, 0604);
        ASSERT_ERR(cb_keyfile_read(p, &k), -EPERM);
        write_key(p, 32, 0600);
        ASSERT_OK(chown(p, 65534, 65534));
        ASSERT_ERR(cb_keyfile_read(p, &k), -EPERM);
        ASSERT_CONTAINS(cb_error_last(), "owned by uid 65534");
        write_key(p, 31, 0400);
        ASSERT_ERR(cb_keyfile_read(p, &k), -EINVAL);
        ASSERT_CONTAINS(cb_error_last(), "at least 32");
        write_key(p, 4097, 0400);
        ASSERT_ERR(cb_keyfile_read(p, &k), -E2BIG);
        ASSERT_ERR(cb_keyfile_read(cbtest_path(cbtest_tmpdir(), "missing"), &k), -ENOENT);
}

TEST(passphrase_sources) {
        const char *p = cbtest_path(cbtest_tmpdir(), "pw");
        cb_unlock_spec spec = { .kind = CB_UNLOCK_PASSPHRASE, .fd = -1 };
        cb_secbuf *pw;
        int fds[2];

        ASSERT_OK(cbtest_write_file(p, "correct horse\n", 14));
        ASSERT_OK(chmod(p, 0600));
        spec.path = (char *)p;
        ASSERT_OK(cb_passphrase_read(&spec, 0, &pw));
        ASSERT_EQ(cb_secbuf_len(pw), 13);
        ASSERT_MEMEQ(cb_secbuf_data(pw), "correct horse", 13);
        cb_secbuf_free(pw);
        ASSERT_OK(chmod(p, 0644));
        ASSERT_ERR(cb_passphrase_read(&spec, 0, &pw), -EPERM);
        ASSERT_OK(cbtest_write_file(p, "\n", 1));
        ASSERT_OK(chmod(p, 0600));
        ASSERT_ERR(cb_passphrase_read(&spec, 0, &pw), -EINVAL);
        ASSERT_CONTAINS(cb_error_last(), "empty");
        /* From a pipe: only the first line is the passphrase. */
        spec.path = NULL;
        ASSERT_OK(pipe(fds));
        ASSERT_EQ(write(fds[1], "pipe-pass\r\nrest", 15), 15);
        close(fds[1]);
        spec.fd = fds[0];
        ASSERT_OK(cb_passphrase_read(&spec, 0, &pw));
        ASSERT_EQ(cb_secbuf_len(pw), 9);
        ASSERT_MEMEQ(cb_secbuf_data(pw), "pipe-pass", 9);
        cb_secbuf_free(pw);
        close(fds[0]);
        /* Too long is refused, not cut. */
        char big[2000];
        memset(big, 'a', sizeof(big));
        ASSERT_OK(pipe(fds));
        ASSERT_EQ(write(fds[1], big, sizeof(big)), (ssize_t)sizeof(big));
        close(fds[1]);
        spec.fd = fds[0];
        ASSERT_ERR(cb_passphrase_read(&spec, 0, &pw), -E2BIG);
        close(fds[0]);
        /* A closed fd (one we just closed: 250 might be inherited and open). */
        spec.fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(spec.fd >= 0);
        close(spec.fd);
        ASSERT_ERR(cb_passphrase_read(&spec, 0, &pw), -EBADF);
}

TEST(passphrase_store) {
        const char *dir = cbtest_path(cbtest_tmpdir(), "pstore");
        const char *p = cbtest_path(cbtest_tmpdir(), "pw2");
        char specstr[4200];
        cb_unlock_spec *spec;
        cb_store *s;

        ASSERT_OK(cbtest_write_file(p, "s3cret pass", 11));
        ASSERT_OK(chmod(p, 0600));
        snprintf(specstr, sizeof(specstr), "passphrase:%s", p);
        ASSERT_OK(cb_unlock_spec_parse(specstr, &spec));
        /* Out-of-range Argon2id costs are refused at enrolment. */
        spec->argon2_ops = 1;
        spec->argon2_mem = 1 << 20;
        ASSERT_ERR(cb_store_create(dir, spec), -EINVAL);
        spec->argon2_mem = 8 << 20;
        ASSERT_OK(cb_store_create(dir, spec));
        ASSERT_OK(cb_store_open(dir, spec, &s));
        ASSERT_OK(cb_store_put(s, "x", "v", 1, NULL, CB_VS_CURRENT, NULL));
        cb_store_close(s);
        ASSERT_OK(cbtest_write_file(p, "s3cret pasS", 11));
        ASSERT_ERR(cb_store_open(dir, spec, &s), CB_E_BADKEY);
        ASSERT_CONTAINS(cb_error_last(), "wrong passphrase");
        cb_unlock_spec_free(spec);
}

TEST(tpm2_fails_closed_without_tpm) {
        cb_unlock_spec *spec;

        /* No TPM behind the TCTI: an error saying so, never a silent
         * fallback to another provider.  (Port 1 on loopback: nothing
         * listens; tests/integration/test-tpm.sh runs the real thing.) */
        ASSERT_OK(cb_unlock_spec_parse("tpm2", &spec));
        ASSERT_TRUE(cb_unlock_provider_get(CB_UNLOCK_TPM2) != NULL);
        spec->tpm2_tcti = strdup("swtpm:host=127.0.0.1,port=1");
        ASSERT_ERR(cb_store_create(cbtest_path(cbtest_tmpdir(), "tpm"), spec), -ENODEV);
        ASSERT_CONTAINS(cb_error_last(), "TPM absent");
        cb_unlock_spec_free(spec);
}

/* The prompt on /dev/tty: a child gets a pseudo-terminal as its controlling
 * terminal; the parent answers both prompts.  Echo must be off: the typed
 * passphrase never comes back through the terminal. */
static int run_prompt(const char *first, const char *second, char *screen, size_t cap) {
        int master, slave, status;
        size_t got = 0;
        pid_t pid;

        ASSERT_OK(openpty(&master, &slave, NULL, NULL, NULL));
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                cb_unlock_spec spec = { .kind = CB_UNLOCK_PASSPHRASE, .fd = -1 };
                cb_secbuf *pw;

                close(master);
                if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
                        _exit(10);
                if (cb_passphrase_read(&spec, 1, &pw) < 0)
                        _exit(strstr(cb_error_last(), "do not match") ? 3 : 2);
                _exit(cb_secbuf_len(pw) == strlen(first) && memcmp(cb_secbuf_data(pw), first, strlen(first)) == 0
                              ? 0 : 4);
        }
        close(slave);
        /* Answer each prompt once it appears. */
        const char *answers[] = { first, second };
        for (int k = 0; k < 2; k++) {
                const char *want = k ? "repeat passphrase: " : "credbroker passphrase: ";
                while (!memmem(screen, got, want, strlen(want))) {
                        ssize_t n = read(master, screen + got, cap - 1 - got);
                        ASSERT_TRUE(n > 0);
                        got += (size_t)n;
                }
                char line[256];
                snprintf(line, sizeof(line), "%s\n", answers[k]);
                ASSERT_EQ(write(master, line, strlen(line)), (ssize_t)strlen(line));
        }
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        for (;;) { /* drain what the child wrote after the last answer */
                struct pollfd p = { master, POLLIN, 0 };
                if (poll(&p, 1, 100) <= 0 || !(p.revents & POLLIN))
                        break;
                ssize_t n = read(master, screen + got, cap - 1 - got);
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        screen[got] = '\0';
        close(master);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

TEST(passphrase_prompt_on_tty) {
        static char screen[4096];

        alarm(20); /* a lost answer would block both sides: fail, don't hang */
        ASSERT_EQ(run_prompt("tty pass phrase", "tty pass phrase", screen, sizeof(screen)), 0);
        ASSERT_FALSE(memmem(screen, strlen(screen), "tty pass", 8)); /* echo was off */
        memset(screen, 0, sizeof(screen));
        ASSERT_EQ(run_prompt("first one", "second one", screen, sizeof(screen)), 3); /* mismatch refused */
        ASSERT_FALSE(memmem(screen, strlen(screen), "one", 3));
        alarm(0);
}

TEST(passphrase_review_regressions) {
        cb_unlock_spec spec = { .kind = CB_UNLOCK_PASSPHRASE, .fd = -1 };
        const char *fifo = cbtest_path(cbtest_tmpdir(), "pp.fifo");
        static char line[1100];
        cb_secbuf *pw;
        int fds[2];

        /* Exactly 1023 characters + newline + more: accepted, not "too long". */
        memset(line, 'p', 1023);
        memcpy(line + 1023, "\nsecond line\n", 13);
        ASSERT_OK(pipe(fds));
        ASSERT_EQ(write(fds[1], line, 1036), 1036);
        close(fds[1]);
        spec.fd = fds[0];
        ASSERT_OK(cb_passphrase_read(&spec, 0, &pw));
        ASSERT_EQ(cb_secbuf_len(pw), 1023);
        cb_secbuf_free(pw);
        close(fds[0]);
        /* A FIFO someone else owns is refused (they would choose the
         * passphrase); opening it would block, so only the check runs:
         * O_NONBLOCK open for reading succeeds without a writer. */
        ASSERT_OK(mkfifo(fifo, 0600));
        ASSERT_OK(chown(fifo, 65534, 65534));
        spec.fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        ASSERT_TRUE(spec.fd >= 0);
        close(spec.fd);
        spec.fd = -1;
        spec.path = (char *)fifo;
        int wfd = open(fifo, O_RDWR | O_CLOEXEC); /* keep a writer so open() does not block */
        ASSERT_TRUE(wfd >= 0);
        ASSERT_ERR(cb_passphrase_read(&spec, 0, &pw), -EPERM);
        ASSERT_CONTAINS(cb_error_last(), "owned by uid 65534");
        close(wfd);
}
