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
 * continuing the value.  The last value wins, as in git.  Include
 * directives ([include], [includeIf]) are not followed (documented).
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

int sb_git_hookspath(const char *s, size_t n, char *out, size_t outlen) {
        bool in_core = false;
        int found = 0;
        char tmp[SB_GITCONFIG_VALUE_MAX];

        if (n > SB_GITCONFIG_MAX || outlen == 0)
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
                        /* "[name]", "[name "sub"]" or "[name.sub]": only a bare
                         * "core" is the core section. */
                        size_t j = i + 1, k;
                        while (j < n && s[j] != ']' && s[j] != '\n')
                                j++;
                        if (j >= n || s[j] != ']')
                                return -1;
                        k = blanks(s, i + 1, j);
                        size_t e = j;
                        while (e > k && (s[e - 1] == ' ' || s[e - 1] == '\t'))
                                e--;
                        in_core = e - k == 4 && strncasecmp(s + k, "core", 4) == 0;
                        i = j + 1; /* a key may follow on the same line */
                        continue;
                }
                if (!isalpha((unsigned char)s[i]))
                        return -1;
                size_t k = i;
                while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '-'))
                        i++;
                bool ours = in_core && i - k == 9 && strncasecmp(s + k, "hookspath", 9) == 0;
                i = blanks(s, i, n);
                if (i < n && s[i] == '=') {
                        size_t e = value(s, i + 1, n, ours ? tmp : NULL, sizeof(tmp));
                        if (e == (size_t)-1)
                                return -1;
                        i = e;
                        if (ours) {
                                if (strlen(tmp) + 1 > outlen)
                                        return -1;
                                memcpy(out, tmp, strlen(tmp) + 1);
                                found = 1;
                        }
                } else if (i < n && s[i] != '\n' && s[i] != '#' && s[i] != ';') {
                        return -1;
                } else {
                        i = to_eol(s, i, n); /* "key" alone: a boolean true; not a path */
                        if (ours)
                                found = 0; /* git: core.hooksPath without a value is an error; taken as unset */
                }
        }
        return found;
}

int sb_git_hookspath_file(const char *path, char *out, size_t outlen) {
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
        else if ((r = sb_git_hookspath(buf, n, out, outlen)) < 0)
                r = -EINVAL;
        free(buf);
        return r;
}
