/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cbtest.h"

#define MAX_TESTS 256

static struct {
        const char *name;
        cbtest_fn fn;
} tests[MAX_TESTS];
static size_t n_tests;
static char tmpdir[4096];
static pid_t tmpdir_owner;

void cbtest_register(const char *name, cbtest_fn fn) {
        if (n_tests == MAX_TESTS) {
                fprintf(stderr, "cbtest: too many tests\n");
                abort();
        }
        tests[n_tests].name = name;
        tests[n_tests].fn = fn;
        n_tests++;
}

_Noreturn void cbtest_fail(const char *file, int line, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "FAIL %s:%d: ", file, line);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(1);
}

_Noreturn void cbtest_skip(const char *why, ...) {
        va_list ap;

        fprintf(stdout, "SKIP: missing prerequisite: ");
        va_start(ap, why);
        vfprintf(stdout, why, ap);
        va_end(ap);
        fputc('\n', stdout);
        fflush(stdout);
        exit(77);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
        (void)st, (void)flag, (void)ftw;
        (void)remove(p);
        return 0;
}

static void rm_tmpdir(void) {
        if (tmpdir[0] && getpid() == tmpdir_owner && !getenv("CBTEST_KEEP"))
                (void)nftw(tmpdir, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

const char *cbtest_tmpdir(void) {
        if (!tmpdir[0]) {
                const char *base = getenv("TMPDIR");

                snprintf(tmpdir, sizeof(tmpdir), "%s/cbtest.XXXXXX", base && *base ? base : "/tmp");
                if (!mkdtemp(tmpdir)) {
                        perror("mkdtemp");
                        exit(1);
                }
                tmpdir_owner = getpid();
                atexit(rm_tmpdir);
        }
        return tmpdir;
}

const char *cbtest_path(const char *dir, const char *name) {
        static char ring[16][4096];
        static unsigned k;
        char *b = ring[k++ % 16];

        snprintf(b, 4096, "%s/%s", dir, name);
        return b;
}

unsigned char *cbtest_read_file(const char *path, size_t *ret_len) {
        FILE *f = fopen(path, "rb");
        unsigned char *p = NULL;
        size_t n = 0, cap = 0;

        if (!f)
                return NULL;
        for (;;) {
                if (n + 4096 + 1 > cap) {
                        cap = cap ? cap * 2 : 8192;
                        p = realloc(p, cap);
                        if (!p)
                                abort();
                }
                size_t k = fread(p + n, 1, 4096, f);
                n += k;
                if (k == 0)
                        break;
        }
        fclose(f);
        p[n] = 0;
        if (ret_len)
                *ret_len = n;
        return p;
}

int cbtest_write_file(const char *path, const void *p, size_t n) {
        FILE *f = fopen(path, "wb");

        if (!f)
                return -errno;
        if (fwrite(p, 1, n, f) != n) {
                fclose(f);
                return -EIO;
        }
        return fclose(f) == 0 ? 0 : -errno;
}

static void drain(int fd, char **buf, size_t *len, size_t *cap) {
        char tmp[4096];
        ssize_t k = read(fd, tmp, sizeof(tmp));

        if (k <= 0)
                return;
        if (*len + (size_t)k + 1 > *cap) {
                *cap = (*len + (size_t)k + 1) * 2;
                *buf = realloc(*buf, *cap);
                if (!*buf)
                        abort();
        }
        memcpy(*buf + *len, tmp, (size_t)k);
        *len += (size_t)k;
        (*buf)[*len] = 0;
}

int cbtest_run(char *const argv[], const void *in, size_t in_len, char **ret_out, char **ret_err) {
        int pin[2], pout[2], perr[2], status;
        char *ob = calloc(1, 1), *eb = calloc(1, 1);
        size_t ol = 0, oc = 1, el = 0, ec = 1, written = 0;
        pid_t pid;

        if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0)
                abort();
        pid = fork();
        if (pid < 0)
                abort();
        if (pid == 0) {
                dup2(pin[0], 0);
                dup2(pout[1], 1);
                dup2(perr[1], 2);
                execv(argv[0], argv);
                _exit(127);
        }
        close(pin[0]);
        close(pout[1]);
        close(perr[1]);
        signal(SIGPIPE, SIG_IGN);
        if (!in || in_len == 0) {
                close(pin[1]);
                pin[1] = -1;
        }
        for (;;) {
                struct pollfd p[3] = {
                        { pout[0], POLLIN, 0 },
                        { perr[0], POLLIN, 0 },
                        { pin[1], POLLOUT, 0 },
                };
                int np = pin[1] >= 0 ? 3 : 2;

                if (p[0].fd < 0 && p[1].fd < 0 && pin[1] < 0)
                        break;
                if (poll(p, (nfds_t)np, -1) < 0)
                        continue;
                for (int i = 0; i < 2; i++) {
                        if (p[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                                size_t before = i ? el : ol;

                                if (i)
                                        drain(perr[0], &eb, &el, &ec);
                                else
                                        drain(pout[0], &ob, &ol, &oc);
                                if ((i ? el : ol) == before) {
                                        close(i ? perr[0] : pout[0]);
                                        if (i)
                                                perr[0] = -1;
                                        else
                                                pout[0] = -1;
                                }
                        }
                }
                if (np == 3 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
                        ssize_t k = write(pin[1], (const char *)in + written, in_len - written);

                        if (k > 0)
                                written += (size_t)k;
                        if (k < 0 || written == in_len) {
                                close(pin[1]);
                                pin[1] = -1;
                        }
                }
        }
        if (waitpid(pid, &status, 0) < 0)
                abort();
        if (ret_out)
                *ret_out = ob;
        else
                free(ob);
        if (ret_err)
                *ret_err = eb;
        else
                free(eb);
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return WEXITSTATUS(status);
}

int main(int argc, char **argv) {
        const char *only = argc > 1 ? argv[1] : NULL;

        setvbuf(stdout, NULL, _IOLBF, 0);
        for (size_t i = 0; i < n_tests; i++) {
                if (only && strcmp(only, tests[i].name) != 0)
                        continue;
                printf("RUN  %s\n", tests[i].name);
                tests[i].fn();
                printf("ok   %s\n", tests[i].name);
        }
        return 0;
}
