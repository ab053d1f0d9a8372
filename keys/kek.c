/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "error.h"
#include "kek.h"

#define PASSPHRASE_MAX 1024

const char *cb_unlock_kind_name(enum cb_unlock_kind k) {
        switch (k) {
        case CB_UNLOCK_PASSPHRASE:
                return "passphrase";
        case CB_UNLOCK_KEYFILE:
                return "keyfile";
        case CB_UNLOCK_TPM2:
                return "tpm2";
        case CB_UNLOCK_TPM2_KEYFILE:
                return "tpm2+keyfile";
        }
        return "unknown";
}

void cb_unlock_spec_free(cb_unlock_spec *s) {
        if (!s)
                return;
        free(s->path);
        free(s->tpm2_tcti);
        free(s->tpm2_pcrs);
        free(s);
}

cb_unlock_spec *cb_unlock_spec_dup(const cb_unlock_spec *s) {
        cb_unlock_spec *d = calloc(1, sizeof(*d));

        if (!d)
                return NULL;
        *d = *s;
        d->path = d->tpm2_tcti = d->tpm2_pcrs = NULL;
        if ((s->path && !(d->path = strdup(s->path))) || (s->tpm2_tcti && !(d->tpm2_tcti = strdup(s->tpm2_tcti))) ||
            (s->tpm2_pcrs && !(d->tpm2_pcrs = strdup(s->tpm2_pcrs)))) {
                cb_unlock_spec_free(d);
                return NULL;
        }
        return d;
}

int cb_unlock_spec_parse(const char *str, cb_unlock_spec **ret) {
        cb_unlock_spec *s;
        const char *arg = NULL;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->fd = -1;
        if (strcmp(str, "passphrase") == 0) {
                s->kind = CB_UNLOCK_PASSPHRASE;
        } else if (strncmp(str, "passphrase:fd:", 14) == 0) {
                char *e;
                long fd;

                s->kind = CB_UNLOCK_PASSPHRASE;
                errno = 0;
                fd = strtol(str + 14, &e, 10);
                if (errno || *e || e == str + 14 || fd < 0 || fd > 65535) {
                        cb_unlock_spec_free(s);
                        return cb_error_set(-EINVAL, "unlock spec: 'passphrase:fd:N' needs a file descriptor number");
                }
                s->fd = (int)fd;
        } else if (strncmp(str, "passphrase:", 11) == 0) {
                s->kind = CB_UNLOCK_PASSPHRASE;
                arg = str + 11;
        } else if (strncmp(str, "keyfile:", 8) == 0) {
                s->kind = CB_UNLOCK_KEYFILE;
                arg = str + 8;
        } else if (strcmp(str, "tpm2") == 0) {
                s->kind = CB_UNLOCK_TPM2;
        } else if (strncmp(str, "tpm2+keyfile:", 13) == 0) {
                s->kind = CB_UNLOCK_TPM2_KEYFILE;
                arg = str + 13;
        } else {
                cb_unlock_spec_free(s);
                return cb_error_set(-EINVAL, "unlock spec '%.64s' not understood: use passphrase[:FILE], "
                                    "passphrase:fd:N, keyfile:PATH, tpm2 or tpm2+keyfile:PATH", str);
        }
        if (arg) {
                if (*arg == '\0') {
                        cb_unlock_spec_free(s);
                        return cb_error_set(-EINVAL, "unlock spec: empty path");
                }
                s->path = strdup(arg);
                if (!s->path) {
                        cb_unlock_spec_free(s);
                        return -ENOMEM;
                }
        }
        *ret = s;
        return 0;
}

const cb_unlock_provider *cb_unlock_provider_get(enum cb_unlock_kind kind) {
        switch (kind) {
        case CB_UNLOCK_PASSPHRASE:
                return &cb_provider_passphrase;
        case CB_UNLOCK_KEYFILE:
                return &cb_provider_keyfile;
        case CB_UNLOCK_TPM2:
                return &cb_provider_tpm2;
        case CB_UNLOCK_TPM2_KEYFILE:
                return &cb_provider_tpm2_keyfile;
        }
        return NULL;
}

/* Read up to cap bytes from fd into s (stopping at EOF, or at a newline
 * when stop_at_nl), leaving the count in *n. */
static int read_into(int fd, cb_secbuf *s, size_t cap, int stop_at_nl, size_t *n) {
        unsigned char *d = cb_secbuf_data(s);

        *n = 0;
        while (*n < cap) {
                ssize_t k = read(fd, d + *n, stop_at_nl ? 1 : cap - *n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                *n += (size_t)k;
                if (stop_at_nl && d[*n - 1] == '\n')
                        break;
        }
        if (*n == cap && !(stop_at_nl && d[*n - 1] == '\n')) {
                /* A longer secret would be silently cut: refuse instead. */
                char extra;
                if (read(fd, &extra, 1) == 1 && !(stop_at_nl && extra == '\n'))
                        return -E2BIG;
        }
        return 0;
}

/* A file holding a secret must be ours and private.  Pipes and terminals
 * (/dev/fd/N, /dev/stdin) are not files anyone else can read. */
static int check_private_file(int fd, const char *path, const char *what) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return cb_error_set(-errno, "%s '%s': %s", what, path, strerror(errno));
        if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode) && !S_ISSOCK(st.st_mode))
                return cb_error_set(-EINVAL, "%s '%s': not a regular file", what, path);
        /* A pipe or terminal must be ours as well: a FIFO someone else
         * planted at the path would let them choose the secret. */
        if (st.st_uid != geteuid())
                return cb_error_set(-EPERM, "%s '%s' is owned by uid %u, not by uid %u: refusing it", what, path,
                                    (unsigned)st.st_uid, (unsigned)geteuid());
        if (S_ISREG(st.st_mode) && (st.st_mode & 077))
                return cb_error_set(-EPERM, "%s '%s' has mode %04o: it must not be accessible by group or "
                                    "others (chmod 0400)", what, path, (unsigned)(st.st_mode & 07777));
        return 0;
}

static void strip_newline(cb_secbuf *s, size_t *n) {
        unsigned char *d = cb_secbuf_data(s);

        if (*n && d[*n - 1] == '\n')
                (*n)--;
        if (*n && d[*n - 1] == '\r')
                (*n)--;
        cb_secbuf_truncate(s, *n);
}

static int prompt_tty(cb_secbuf *s, const char *prompt, size_t *n) {
        struct termios old, raw;
        int fd, r;

        fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return cb_error_set(-ENOTTY, "no terminal to ask for the passphrase: use passphrase:FILE "
                                    "or passphrase:fd:N");
        if (tcgetattr(fd, &old) < 0) {
                close(fd);
                return cb_error_set(-ENOTTY, "cannot turn off echo on the terminal");
        }
        raw = old;
        raw.c_lflag &= ~(tcflag_t)ECHO;
        raw.c_lflag |= ECHONL;
        /* Echo off (TCSAFLUSH drops typeahead) before the prompt: an answer
         * typed right after the prompt must not be flushed away. */
        if (tcsetattr(fd, TCSAFLUSH, &raw) < 0) {
                close(fd);
                return cb_error_set(-ENOTTY, "cannot turn off echo on the terminal");
        }
        (void)!write(fd, prompt, strlen(prompt));
        r = read_into(fd, s, PASSPHRASE_MAX, 1, n);
        (void)tcsetattr(fd, TCSAFLUSH, &old);
        close(fd);
        return r;
}

int cb_passphrase_read(const cb_unlock_spec *spec, int confirm, cb_secbuf **ret) {
        cb_secbuf *s, *again = NULL;
        size_t n = 0, n2 = 0;
        int r;

        s = cb_secbuf_new(PASSPHRASE_MAX);
        if (!s)
                return -ENOMEM;
        if (spec->fd >= 0) {
                r = read_into(spec->fd, s, PASSPHRASE_MAX, 1, &n);
                if (r == -EBADF)
                        r = cb_error_set(r, "passphrase fd %d is not open", spec->fd);
        } else if (spec->path) {
                int fd = open(spec->path, O_RDONLY | O_CLOEXEC);

                if (fd < 0) {
                        r = cb_error_set(-errno, "passphrase file '%s': %s", spec->path, strerror(errno));
                        goto out;
                }
                r = check_private_file(fd, spec->path, "passphrase file");
                if (r == 0)
                        r = read_into(fd, s, PASSPHRASE_MAX, 1, &n);
                close(fd);
        } else {
                r = prompt_tty(s, "credbroker passphrase: ", &n);
                if (r == 0 && confirm) {
                        again = cb_secbuf_new(PASSPHRASE_MAX);
                        if (!again) {
                                r = -ENOMEM;
                                goto out;
                        }
                        r = prompt_tty(again, "repeat passphrase: ", &n2);
                        if (r == 0) {
                                strip_newline(again, &n2);
                                strip_newline(s, &n);
                                if (n != n2 || cb_memcmp_ct(cb_secbuf_data(s), cb_secbuf_data(again), n) != 0)
                                        r = cb_error_set(-EINVAL, "passphrases do not match");
                        }
                }
        }
        if (r == -E2BIG)
                r = cb_error_set(r, "passphrase longer than %d bytes", PASSPHRASE_MAX);
        if (r < 0)
                goto out;
        strip_newline(s, &n);
        if (n == 0) {
                r = cb_error_set(-EINVAL, "empty passphrase");
                goto out;
        }
        *ret = s;
        s = NULL;
out:
        cb_secbuf_free(s);
        cb_secbuf_free(again);
        return r;
}

int cb_keyfile_read(const char *path, cb_secbuf **ret) {
        cb_secbuf *s = NULL;
        size_t n = 0;
        int fd, r;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return cb_error_set(-errno, "key file '%s': %s", path, strerror(errno));
        r = check_private_file(fd, path, "key file");
        if (r < 0)
                goto out;
        s = cb_secbuf_new(4096);
        if (!s) {
                r = -ENOMEM;
                goto out;
        }
        r = read_into(fd, s, 4096, 0, &n);
        if (r == -E2BIG)
                r = cb_error_set(r, "key file '%s' is larger than 4096 bytes", path);
        if (r < 0)
                goto out;
        if (n < 32) {
                r = cb_error_set(-EINVAL, "key file '%s' holds %zu bytes; at least 32 are needed", path, n);
                goto out;
        }
        cb_secbuf_truncate(s, n);
        *ret = s;
        s = NULL;
out:
        cb_secbuf_free(s);
        close(fd);
        return r;
}
