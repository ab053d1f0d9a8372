/* SPDX-License-Identifier: Apache-2.0 */
/*
 * exec's values: --env VAR=SECRET and --file PATH=SECRET parsed, each
 * secret fetched once, put into the child's environment (sodium_malloc
 * strings) or into files created for it, and wiped or removed after.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "cli_tool_internal.h"
#include "credbroker.h"
#include "error.h"
#include "store.h"

static bool env_name_ok(const char *s, size_t n) {
        if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!(s[i] == '_' || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
                      (s[i] >= '0' && s[i] <= '9')))
                        return false;
        return true;
}

int cli_exec_add_binding(struct exec_state *st, const char *arg, bool file) {
        const char *opt = file ? "--file" : "--env";
        const char *eq = strrchr(arg, '='); /* secret names hold no '=', paths may */
        struct binding *b;
        char *target;

        if (st->nb >= EXEC_BINDINGS_MAX)
                return -cli_usage("exec: at most %d --env/--file", EXEC_BINDINGS_MAX);
        if (!eq || eq == arg || !eq[1])
                return -cli_usage("exec: %s takes %s=SECRET", opt, file ? "PATH" : "VAR");
        if (cb_name_check(eq + 1) < 0)
                return -cli_usage("exec: %s %.64s: %s", opt, arg, cb_error_last());
        if (!file && !env_name_ok(arg, (size_t)(eq - arg)))
                return -cli_usage("exec: --env: '%.*s' is not a variable name", (int)(eq - arg > 64 ? 64 : eq - arg),
                                  arg);
        target = strndup(arg, (size_t)(eq - arg));
        if (!target)
                return -cli_fail(-ENOMEM, "out of memory");
        for (size_t i = 0; i < st->nb; i++)
                if (st->b[i].file == file && strcmp(st->b[i].target, target) == 0) {
                        free(target);
                        return -cli_usage("exec: %s %.64s given twice", opt, arg);
                }
        b = &st->b[st->nb++];
        b->target = target;
        b->secret = (char *)eq + 1;
        b->file = file;
        return 0;
}

/* Fetch each distinct secret once. */
int cli_exec_fetch(struct exec_state *st, cb_client *c) {
        for (size_t i = 0; i < st->nb; i++) {
                size_t k;
                for (k = 0; k < st->nval; k++)
                        if (strcmp(cb_secret_name(st->val[k]), st->b[i].secret) == 0)
                                break;
                if (k == st->nval) {
                        int r = cli_fetch_one(c, "exec", st->b[i].secret, &st->val[k]);
                        if (r < 0)
                                return r;
                        st->nval++;
                }
                st->b[i].value = k;
        }
        return 0;
}

/* The child's environment: ours, minus the variables we set, plus them. */
int cli_exec_env(struct exec_state *st) {
        extern char **environ;
        size_t n = 0, k = 0;

        while (environ[n])
                n++;
        st->envp = calloc(n + st->nb + 2 * st->npx + 1, sizeof(char *));
        if (!st->envp)
                return -cli_fail(-ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
                size_t len = strcspn(environ[i], "=");
                bool ours = false;
                for (size_t j = 0; j < st->nb && !ours; j++)
                        ours = !st->b[j].file && strlen(st->b[j].target) == len &&
                               strncmp(st->b[j].target, environ[i], len) == 0;
                for (size_t j = 0; j < st->npx && !ours; j++)
                        ours = strncmp(st->px[j].env_base, environ[i], len + 1) == 0 ||
                               strncmp(st->px[j].env_key, environ[i], len + 1) == 0;
                if (!ours)
                        st->envp[k++] = environ[i];
        }
        for (size_t j = 0; j < st->nb; j++) {
                const cb_secret *v = st->val[st->b[j].value];
                size_t tl = strlen(st->b[j].target), vl = cb_secret_len(v);
                char *s;

                if (st->b[j].file)
                        continue;
                if (memchr(cb_secret_value(v), 0, vl))
                        return -cli_fail(-EINVAL, "exec: secret '%s' holds a NUL byte and cannot go into an "
                                         "environment variable (use --file)", st->b[j].secret);
                s = sodium_malloc(tl + 1 + vl + 1);
                if (!s)
                        return -cli_fail(-ENOMEM, "out of memory");
                memcpy(s, st->b[j].target, tl);
                s[tl] = '=';
                memcpy(s + tl + 1, cb_secret_value(v), vl);
                s[tl + 1 + vl] = 0;
                st->envstr[st->nenvstr++] = s;
                st->envp[k++] = s;
        }
        for (size_t j = 0; j < st->npx; j++) {
                st->envp[k++] = st->px[j].env_base;
                st->envp[k++] = st->px[j].env_key;
        }
        return 0;
}

int cli_exec_files(struct exec_state *st) {
        for (size_t j = 0; j < st->nb; j++) {
                struct binding *b = &st->b[j];
                const cb_secret *v;
                struct stat sb;
                int fd, r;

                if (!b->file)
                        continue;
                v = st->val[b->value];
                fd = open(b->target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
                if (fd < 0) {
                        r = -errno;
                        return -cli_fail(r, "exec: --file %.256s: %s%s", b->target, strerror(-r),
                                         r == -EEXIST ? " (refusing to overwrite it)" : "");
                }
                if (fstat(fd, &sb) == 0) {
                        b->dev = sb.st_dev;
                        b->ino = sb.st_ino;
                        b->created = true;
                }
                r = cli_write_all(fd, cb_secret_value(v), cb_secret_len(v));
                if (close(fd) < 0 && r >= 0)
                        r = -errno;
                if (!b->created) {
                        (void)unlink(b->target);
                        r = r < 0 ? r : -EIO;
                }
                if (r < 0)
                        return -cli_fail(r, "exec: cannot write %.256s: %s", b->target, strerror(-r));
        }
        return 0;
}

/* Remove the --file files we created, if they are still ours. */
static void exec_unlink(struct exec_state *st) {
        for (size_t j = 0; j < st->nb; j++) {
                struct stat sb;

                if (!st->b[j].file || !st->b[j].created)
                        continue;
                if (lstat(st->b[j].target, &sb) == 0 && sb.st_dev == st->b[j].dev && sb.st_ino == st->b[j].ino)
                        (void)unlink(st->b[j].target);
                st->b[j].created = false;
        }
}

void cli_exec_wipe_env(struct exec_state *st) {
        for (size_t i = 0; i < st->nenvstr; i++)
                sodium_free(st->envstr[i]);
        st->nenvstr = 0;
        free(st->envp);
        st->envp = NULL;
}

void cli_exec_free(struct exec_state *st) {
        exec_unlink(st);
        cli_exec_wipe_env(st);
        for (size_t i = 0; i < st->nval; i++)
                cb_secret_free(st->val[i]);
        st->nval = 0;
        for (size_t i = 0; i < st->nb; i++)
                free((char *)st->b[i].target);
        st->nb = 0;
}
