/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker sandbox: nested repositories, checked when CMD has ended (red
 * team rt8 A1).  Inside a writable directory CMD may make a repository of
 * its own (git clone, git init) or change one below the top, and register
 * it in the top repository's index as a submodule: the user's next
 * `git status` at the top then enters it and runs its core.fsmonitor or
 * hooks.  The top repository's own configuration and hooks are kept
 * read-only while CMD runs (cli_sandbox_view.c); a nested one cannot be
 * (it may not exist yet).  So once CMD has ended -- its pid namespace is
 * gone, nothing of it runs any more -- the launcher walks each writable
 * directory for `.git` entries below its top, and a nested git directory
 * in which CMD changed what git takes configuration or hooks from is moved
 * aside (`.git` renamed `.git.credbroker-review`, never replacing
 * anything), with a message saying where and how to restore it after a
 * review.
 *
 * "Changed by CMD" is a ctime at or after the sandbox started: a process
 * can set a file's times but not its ctime, nor the clock, so this cannot
 * be hidden from inside (a change made meanwhile by the user or another
 * sandbox is treated the same: the message says so).  What counts in a
 * git directory: anything but the data git writes on its own (objects,
 * refs, logs, the index, HEAD and its kin, lock files): its config (unless
 * every key is one git init, git clone or a commit's identity sets:
 * cli_sandbox_git.c), config.worktree, commondir, gitdir, info/, modules/,
 * worktrees/, and each hook (the samples excepted: git never runs
 * those).  A .git *file* (a pointer to a git directory) or symlink changed
 * by CMD is moved aside the same way.
 *
 * Bounded: at most SB_NESTED_MAX entries are looked at per directory; past
 * that, a warning says the check was not complete.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/fs.h>

#include "cli.h"
#include "cli_sandbox_git.h"
#include "cli_sandbox_internal.h"

#define SB_NESTED_MAX 2000000u /* entries looked at per writable directory */
#define SB_NESTED_DEPTH 64

struct nested {
        struct timespec since;
        unsigned long seen;
        bool incomplete;
        unsigned moved;
        dev_t dev;
};

static bool changed(const struct stat *sb, const struct timespec *since) {
        return sb->st_ctim.tv_sec > since->tv_sec ||
               (sb->st_ctim.tv_sec == since->tv_sec && sb->st_ctim.tv_nsec >= since->tv_nsec);
}

/* What git writes in its directory as it works, whatever the command. */
static bool git_data(const char *name) {
        static const char *const data[] = {
                "objects", "refs", "logs", "index", "HEAD", "ORIG_HEAD", "FETCH_HEAD", "MERGE_HEAD", "MERGE_MSG",
                "MERGE_MODE", "MERGE_RR", "CHERRY_PICK_HEAD", "REVERT_HEAD", "BISECT_LOG", "AUTO_MERGE",
                "COMMIT_EDITMSG", "TAG_EDITMSG", "packed-refs", "description", "shallow", "sequencer",
                "rebase-merge", "rebase-apply", "rr-cache", "branches", "lfs", "gc.log", "gc.pid",
        };
        size_t n = strlen(name);

        if (n > 5 && strcmp(name + n - 5, ".lock") == 0)
                return true;
        for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++)
                if (strcmp(name, data[i]) == 0)
                        return true;
        return false;
}

/* Did something change below dir (at most a few levels) since? */
static bool changed_below(int dfd, const struct timespec *since, int depth) {
        DIR *d = fdopendir(dfd);
        struct dirent *e;
        bool any = false;

        if (!d) {
                close(dfd);
                return true; /* cannot look: treated as changed */
        }
        while (!any && (e = readdir(d))) {
                struct stat sb;
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                        continue;
                if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || changed(&sb, since)) {
                        any = true;
                        break;
                }
                if (S_ISDIR(sb.st_mode)) {
                        if (depth >= 8) {
                                any = true;
                                break;
                        }
                        int c = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (c < 0 || changed_below(c, since, depth + 1))
                                any = true;
                }
        }
        closedir(d);
        return any;
}

/* The config at gfd/name, changed since: 1 when every key is safe. */
static int config_safe(int gfd, const char *name) {
        int fd = openat(gfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), r = 0;
        struct stat sb;
        char *buf = NULL;
        size_t n = 0;
        ssize_t k;

        if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > SB_GITCONFIG_MAX ||
            !(buf = malloc((size_t)sb.st_size + 1)))
                goto out;
        while (n < (size_t)sb.st_size && (k = read(fd, buf + n, (size_t)sb.st_size - n)) > 0)
                n += (size_t)k;
        r = sb_git_config_safe(buf, n) == 1;
out:
        free(buf);
        if (fd >= 0)
                close(fd);
        return r;
}

/* Is the git directory gfd one CMD changed where git takes configuration
 * or hooks from?  why: what (for the message). */
static bool gitdir_tampered(int gfd, const struct timespec *since, char *why, size_t whylen) {
        DIR *d = fdopendir(gfd);
        struct dirent *e;
        bool bad = false;

        if (!d) {
                close(gfd);
                snprintf(why, whylen, "it could not be read");
                return true;
        }
        while (!bad && (e = readdir(d))) {
                struct stat sb;
                const char *n = e->d_name;
                if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || git_data(n))
                        continue;
                if (fstatat(dirfd(d), n, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
                        bad = true;
                        snprintf(why, whylen, "%s could not be read", n);
                        break;
                }
                if (strcmp(n, "hooks") == 0 && S_ISDIR(sb.st_mode)) {
                        /* Each hook changed since (a sample excepted). */
                        int h = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        DIR *hd = h >= 0 ? fdopendir(h) : NULL;
                        struct dirent *he;
                        if (!hd) {
                                if (h >= 0)
                                        close(h);
                                bad = true;
                                snprintf(why, whylen, "hooks/ could not be read");
                                break;
                        }
                        while ((he = readdir(hd))) {
                                struct stat hs;
                                size_t hl = strlen(he->d_name);
                                if (strcmp(he->d_name, ".") == 0 || strcmp(he->d_name, "..") == 0 ||
                                    (hl > 7 && strcmp(he->d_name + hl - 7, ".sample") == 0))
                                        continue;
                                if (fstatat(dirfd(hd), he->d_name, &hs, AT_SYMLINK_NOFOLLOW) < 0 ||
                                    changed(&hs, since)) {
                                        bad = true;
                                        snprintf(why, whylen, "its hook %.100s was made or changed", he->d_name);
                                        break;
                                }
                        }
                        closedir(hd);
                        continue;
                }
                if (strcmp(n, "info") == 0 && S_ISDIR(sb.st_mode)) {
                        /* info/exclude and info/sparse-checkout (git init writes
                         * the first) are patterns; anything else made or
                         * changed (attributes, which can name a filter) counts. */
                        int h = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        DIR *id = h >= 0 ? fdopendir(h) : NULL;
                        struct dirent *ie;
                        if (!id) {
                                if (h >= 0)
                                        close(h);
                                bad = true;
                                snprintf(why, whylen, "info/ could not be read");
                                break;
                        }
                        while ((ie = readdir(id))) {
                                struct stat is;
                                if (strcmp(ie->d_name, ".") == 0 || strcmp(ie->d_name, "..") == 0 ||
                                    strcmp(ie->d_name, "exclude") == 0 || strcmp(ie->d_name, "sparse-checkout") == 0)
                                        continue;
                                if (fstatat(dirfd(id), ie->d_name, &is, AT_SYMLINK_NOFOLLOW) < 0 ||
                                    changed(&is, since)) {
                                        bad = true;
                                        snprintf(why, whylen, "its info/%.100s was made or changed", ie->d_name);
                                        break;
                                }
                        }
                        closedir(id);
                        continue;
                }
                if (strcmp(n, "config") == 0 && S_ISREG(sb.st_mode)) {
                        if (changed(&sb, since) && !config_safe(dirfd(d), n)) {
                                bad = true;
                                snprintf(why, whylen, "its config was written with settings beyond what git init, "
                                                      "git clone or a commit's identity set");
                        }
                        continue;
                }
                /* Anything else git may take configuration from (config.worktree,
                 * commondir, gitdir, info/, modules/, worktrees/, unknown
                 * files): changed since, or changed below. */
                bool ch = changed(&sb, since);
                if (!ch && S_ISDIR(sb.st_mode)) {
                        int c = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        ch = c < 0 || changed_below(c, since, 0);
                }
                if (ch) {
                        bad = true;
                        snprintf(why, whylen, "its %.100s was made or changed", n);
                }
        }
        closedir(d);
        return bad;
}

/* Move dfd/.git aside, never replacing anything. */
static void move_aside(struct nested *nc, int dfd, const char *where, const char *why) {
        char to[64];

        for (int i = 0; i < 100; i++) {
                snprintf(to, sizeof(to), i ? ".git.credbroker-review-%d" : ".git.credbroker-review", i);
                if (syscall(SYS_renameat2, dfd, ".git", dfd, to, RENAME_NOREPLACE) == 0) {
                        nc->moved++;
                        fprintf(stderr,
                                "credbroker: sandbox: %s/.git: %s while the sandbox ran (CMD, or someone else "
                                "meanwhile), so git could run code of CMD's there, even from the repository above "
                                "it: moved to %s/%s. Review its config and hooks, then: mv %s/%s %s/.git\n",
                                where, why, where, to, where, to, where);
                        return;
                }
                if (errno != EEXIST)
                        break;
        }
        fprintf(stderr, "credbroker: sandbox: %s/.git: %s while the sandbox ran, and it could not be moved aside "
                        "(%s): do not run git there before reviewing its config and hooks\n",
                where, why, strerror(errno));
}

static void walk(struct nested *nc, int dfd, char *path, size_t pl, size_t cap, int depth) {
        DIR *d = fdopendir(dfd);
        struct dirent *e;

        if (!d) {
                close(dfd);
                nc->incomplete = true;
                return;
        }
        while ((e = readdir(d))) {
                const char *n = e->d_name;
                struct stat sb;
                if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
                        continue;
                if (++nc->seen > SB_NESTED_MAX) {
                        nc->incomplete = true;
                        break;
                }
                if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN && strcmp(n, ".git") != 0)
                        continue;
                if (fstatat(dirfd(d), n, &sb, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (strcmp(n, ".git") == 0) {
                        char why[160];
                        if (depth == 0)
                                continue; /* the top's: kept read-only while CMD ran */
                        path[pl] = '\0';
                        if (S_ISDIR(sb.st_mode)) {
                                int g = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                                if (g < 0 || gitdir_tampered(g, &nc->since, why, sizeof(why)))
                                        move_aside(nc, dirfd(d), path, g < 0 ? "it could not be read" : why);
                        } else if (changed(&sb, &nc->since)) {
                                move_aside(nc, dirfd(d), path,
                                           S_ISLNK(sb.st_mode) ? "a .git symlink was made or changed"
                                                               : "a .git file (a pointer to a git directory) was "
                                                                 "made or changed");
                        }
                        continue;
                }
                if (!S_ISDIR(sb.st_mode) || sb.st_dev != nc->dev)
                        continue; /* another file system mounted there: not the root's */
                if (depth >= SB_NESTED_DEPTH) {
                        nc->incomplete = true;
                        continue;
                }
                size_t nl = strlen(n);
                if (pl + 1 + nl >= cap) {
                        nc->incomplete = true;
                        continue;
                }
                int c = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (c < 0) {
                        nc->incomplete = true;
                        continue;
                }
                path[pl] = '/';
                memcpy(path + pl + 1, n, nl + 1);
                walk(nc, c, path, pl + 1 + nl, cap, depth + 1);
                path[pl] = '\0';
        }
        closedir(d);
}

void sb_check_nested(struct sb_state *st, const struct timespec *since) {
        for (size_t k = 0; k < st->nroots; k++) {
                struct nested nc = { .since = *since };
                char path[PATH_MAX];
                struct stat sb;
                int fd = open(st->roots[k], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

                if (fd < 0 || fstat(fd, &sb) < 0) {
                        if (fd >= 0)
                                close(fd);
                        continue;
                }
                nc.dev = sb.st_dev;
                snprintf(path, sizeof(path), "%s", st->roots[k]);
                walk(&nc, fd, path, strlen(path), sizeof(path), 0);
                if (nc.incomplete)
                        fprintf(stderr, "credbroker: sandbox: %s: not every directory could be checked for "
                                        "repositories CMD made or changed (over %u entries, too deep, or unreadable): "
                                        "review nested .git directories before running git there\n",
                                st->roots[k], SB_NESTED_MAX);
        }
}
