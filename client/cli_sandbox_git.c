/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker sandbox: where git would look for hooks (core.hooksPath), read
 * from git's configuration files so that a hooks directory inside a
 * writable root is kept read-only like .git/hooks (docs/sandbox.md).
 *
 * The parser reads git-config(1)'s syntax as far as core.hooksPath needs:
 * sections ("[core]", case-insensitive; a subsection is another section),
 * "key = value" and "key" lines, comments (# and ;) outside quotes, double
 * quotes, the escapes \" \\ \n \t \b, and a backslash at the end of a line
 * continuing the value.  The last value wins, as in git.  The files named
 * by include.path and includeIf.*.path (every condition) are reported to
 * the caller, which reads them too.
 * Input is capped (SB_GITCONFIG_MAX); a value longer than the caller's
 * buffer is an error, never cut.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_sandbox_git.h"

/* Skip blanks (not newlines). */
static size_t blanks(const char *s, size_t i, size_t n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
                i++;
        return i;
}

static size_t to_eol(const char *s, size_t i, size_t n) {
        while (i < n && s[i] != '\n')
                i++;
        return i;
}

/* A value from s[i] to its end of line (continuations followed): written
 * to out (NUL-terminated) when out is not NULL.  Returns the index after
 * it, or (size_t)-1 when malformed or longer than outlen - 1. */
static size_t value(const char *s, size_t i, size_t n, char *out, size_t outlen) {
        size_t o = 0, pending_ws = 0;
        bool quoted = false;

        i = blanks(s, i, n);
        for (; i < n; i++) {
                char c = s[i];
                if (c == '\n') {
                        if (quoted)
                                return (size_t)-1; /* a quote left open at the end of the line */
                        break;
                }
                if (!quoted && (c == '#' || c == ';')) {
                        i = to_eol(s, i, n);
                        break;
                }
                if (c == '\\') {
                        if (++i >= n)
                                return (size_t)-1;
                        c = s[i];
                        if (c == '\n')
                                continue; /* continued on the next line */
                        if (c == '\r' && i + 1 < n && s[i + 1] == '\n') {
                                i++;
                                continue;
                        }
                        c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'b' ? '\b' : c;
                        if (c != '\n' && c != '\t' && c != '\b' && c != '"' && c != '\\')
                                return (size_t)-1; /* an unknown escape: git refuses the file */
                } else if (c == '"') {
                        quoted = !quoted;
                        continue;
                } else if (!quoted && (c == ' ' || c == '\t' || c == '\r')) {
                        pending_ws++; /* kept only if something follows */
                        continue;
                }
                for (; pending_ws; pending_ws--) {
                        if (o + 1 >= outlen)
                                return (size_t)-1;
                        if (out)
                                out[o] = ' ';
                        o++;
                }
                if (o + 1 >= outlen)
                        return (size_t)-1;
                if (out)
                        out[o] = c;
                o++;
        }
        if (quoted)
                return (size_t)-1;
        if (out)
                out[o] = '\0';
        return i;
}

static int config_scan(const char *s, size_t n, sb_git_config_cb cb, void *ud, bool cb_keys) {
        int sect = 0; /* 1: [core], 2: [include] or [includeIf "..."], 3: [submodule "..."], 0: any other */
        char tmp[SB_GITCONFIG_VALUE_MAX], sect_name[40];
        size_t sect_len = 0;
        bool sect_sub = false;

        if (n > SB_GITCONFIG_MAX)
                return -1;
        for (size_t i = 0; i < n;) {
                i = blanks(s, i, n);
                if (i >= n)
                        break;
                if (s[i] == '\n') {
                        i++;
                        continue;
                }
                if (s[i] == '#' || s[i] == ';') {
                        i = to_eol(s, i, n);
                        continue;
                }
                if (s[i] == '[') {
                        /* "[name]", "[name "sub"]" or "[name.sub]": [core] alone is
                         * the core section; [include] and [includeIf ...] (any
                         * condition: all are taken, whatever git decides) name
                         * files git may read. */
                        size_t j = i + 1, k, e;
                        bool quoted = false;
                        while (j < n && s[j] != '\n' && (quoted || s[j] != ']')) {
                                if (s[j] == '\\' && quoted && j + 1 < n && s[j + 1] != '\n')
                                        j++;
                                else if (s[j] == '"')
                                        quoted = !quoted;
                                j++;
                        }
                        if (j >= n || s[j] != ']')
                                return -1;
                        k = blanks(s, i + 1, j);
                        e = k;
                        while (e < j && (isalnum((unsigned char)s[e]) || s[e] == '-'))
                                e++;
                        size_t after = blanks(s, e, j);
                        bool bare = after == j;
                        sect_len = e - k;
                        for (size_t q = 0; q < sect_len && q < sizeof(sect_name); q++)
                                sect_name[q] = (char)tolower((unsigned char)s[k + q]);
                        sect_sub = !bare;
                        if (e - k == 4 && strncasecmp(s + k, "core", 4) == 0 && bare)
                                sect = 1;
                        else if ((e - k == 7 && strncasecmp(s + k, "include", 7) == 0 && bare) ||
                                 (e - k == 9 && strncasecmp(s + k, "includeif", 9) == 0))
                                sect = 2;
                        else if (e - k == 9 && strncasecmp(s + k, "submodule", 9) == 0 && !bare)
                                sect = 3;
                        else
                                sect = 0;
                        i = j + 1; /* a key may follow on the same line */
                        continue;
                }
                if (!isalpha((unsigned char)s[i]))
                        return -1;
                size_t k = i;
                while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '-'))
                        i++;
                if (cb_keys) {
                        /* Every key, for sb_git_config_safe: "section.key", or
                         * "section.*.key" under a subsection, lowercase. */
                        char name[96];
                        size_t nl = sect_len < 40 ? sect_len : 40, kl = i - k < 40 ? i - k : 40;
                        memcpy(name, sect_name, nl);
                        size_t o = nl;
                        if (sect_sub) {
                                memcpy(name + o, ".*", 2);
                                o += 2;
                        }
                        name[o++] = '.';
                        for (size_t q = 0; q < kl; q++)
                                name[o++] = (char)tolower((unsigned char)s[k + q]);
                        name[o] = '\0';
                        if (sect_len > 40 || i - k > 40)
                                name[0] = '?'; /* too long to be one we know */
                        if (cb(ud, SB_GIT_KEY, name) < 0)
                                return -1;
                }
                int kind = sect == 1 && i - k == 9 && strncasecmp(s + k, "hookspath", 9) == 0 ? SB_GIT_HOOKSPATH
                           : sect == 2 && i - k == 4 && strncasecmp(s + k, "path", 4) == 0 ? SB_GIT_INCLUDE
                           : sect == 3 && i - k == 4 && strncasecmp(s + k, "path", 4) == 0 ? SB_GIT_SUBMODULE
                                                                                          : -1;
                i = blanks(s, i, n);
                if (i < n && s[i] == '=') {
                        size_t e = value(s, i + 1, n, kind >= 0 ? tmp : NULL, sizeof(tmp));
                        if (e == (size_t)-1)
                                return -1;
                        i = e;
                        if (kind >= 0 && cb && !cb_keys && cb(ud, kind, tmp) < 0)
                                return -1;
                } else if (i < n && s[i] != '\n' && s[i] != '#' && s[i] != ';') {
                        return -1;
                } else {
                        i = to_eol(s, i, n); /* "key" alone: a boolean true; not a path */
                }
        }
        return 0;
}

int sb_git_config_scan(const char *s, size_t n, sb_git_config_cb cb, void *ud) {
        return config_scan(s, n, cb, ud, false);
}

/* What a repository made by a command may carry in its configuration and
 * still be taken as git itself made it (git init, git clone, a commit's
 * identity): nothing here names a program, a file or a URL git would run
 * or read as configuration. */
static const char *const safe_keys[] = {
        "core.repositoryformatversion", "core.filemode", "core.bare", "core.logallrefupdates", "core.ignorecase",
        "core.precomposeunicode", "core.symlinks", "core.autocrlf", "core.eol", "core.safecrlf",
        "extensions.objectformat", "remote.*.url", "remote.*.fetch", "remote.*.tagopt", "branch.*.remote",
        "branch.*.merge", "branch.*.rebase", "user.name", "user.email", "init.defaultbranch",
};

static int check_key(void *ud, int kind, const char *v) {
        if (kind != SB_GIT_KEY)
                return 0;
        for (size_t i = 0; i < sizeof(safe_keys) / sizeof(safe_keys[0]); i++)
                if (strcmp(v, safe_keys[i]) == 0)
                        return 0;
        *(bool *)ud = false;
        return -1;
}

int sb_git_config_safe(const char *s, size_t n) {
        bool safe = true;
        int r = config_scan(s, n, check_key, &safe, true);

        if (!safe)
                return 0;
        return r < 0 ? -1 : 1;
}

struct last_hp {
        char *out;
        size_t outlen;
        int found;
};

static int keep_last(void *ud, int kind, const char *v) {
        struct last_hp *l = ud;

        if (kind != SB_GIT_HOOKSPATH)
                return 0;
        if (strlen(v) + 1 > l->outlen)
                return -1;
        memcpy(l->out, v, strlen(v) + 1);
        l->found = 1;
        return 0;
}

int sb_git_hookspath(const char *s, size_t n, char *out, size_t outlen) {
        struct last_hp l = { out, outlen, 0 };

        if (outlen == 0 || sb_git_config_scan(s, n, keep_last, &l) < 0)
                return -1;
        return l.found;
}

int sb_git_config_scan_file(const char *path, sb_git_config_cb cb, void *ud) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        struct stat sb;
        char *buf;
        ssize_t k;
        size_t n = 0;
        int r;

        if (fd < 0)
                return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
        if (fstat(fd, &sb) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        if (!S_ISREG(sb.st_mode)) {
                close(fd);
                return 0; /* not a file: git would not read it either */
        }
        if (sb.st_size > SB_GITCONFIG_MAX) {
                close(fd);
                return -EFBIG;
        }
        buf = malloc(SB_GITCONFIG_MAX + 1);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        while (n <= SB_GITCONFIG_MAX && (k = read(fd, buf + n, SB_GITCONFIG_MAX + 1 - n)) > 0)
                n += (size_t)k;
        close(fd);
        if (n > SB_GITCONFIG_MAX)
                r = -EFBIG;
        else
                r = sb_git_config_scan(buf, n, cb, ud) < 0 ? -EINVAL : 1;
        free(buf);
        return r;
}
