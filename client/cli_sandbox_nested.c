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
 * Bounded: at most SB_NESTED_MAX entries and SB_NESTED_DEPTH levels per
 * writable directory; a directory of ours we cannot list is given u+rx
 * for the look.  What could not be checked, or moved aside, is said, and
 * the launcher then exits 4 (cli_sandbox.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/fs.h>

#include "cli.h"
#include "cli_sandbox_git.h"
#include "cli_sandbox_internal.h"

#define SB_NESTED_MAX 2000000u /* entries looked at per writable directory */
#define SB_NESTED_DEPTH 1024

struct nested {
        struct timespec since;
        unsigned long seen;
        bool incomplete;
        unsigned moved;
        unsigned failed;  /* could not be moved aside, or a directory not checked */
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
                        /* Each hook changed since (a sample excepted); every
                         * one when hooks/ itself was made, moved in or
                         * changed (an old hooks directory renamed into place
                         * keeps its hooks' old ctimes: red team rt9 B7). */
                        const struct timespec zero = { 0 }, *hs_since = changed(&sb, since) ? &zero : since;
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
                                    changed(&hs, hs_since)) {
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

/* Move dfd/name (a .git, or a git directory's HEAD) aside under a name
 * CMD could not guess (red team rt9 B9: it took every predictable one),
 * never replacing anything; failing that, take every permission from it
 * (git then cannot use it) and count a failure (a non-zero exit). */
static void move_aside(struct nested *nc, int dfd, const char *name, const char *where, const char *why) {
        char to[80];
        int e = 0;

        for (int i = 0; i < 8; i++) {
                unsigned char rnd[8];
                if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
                        break;
                snprintf(to, sizeof(to), "%s.credbroker-review-%02x%02x%02x%02x%02x%02x%02x%02x", name, rnd[0], rnd[1],
                         rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
                if (syscall(SYS_renameat2, dfd, name, dfd, to, RENAME_NOREPLACE) == 0) {
                        nc->moved++;
                        fprintf(stderr,
                                "credbroker: sandbox: %s/%s: %s while the sandbox ran (CMD, or someone else "
                                "meanwhile), so git could run code of CMD's there, even from a repository above "
                                "it: moved to %s/%s. Review its config and hooks, then: mv %s/%s %s/%s\n",
                                where, name, why, where, to, where, to, where, name);
                        return;
                }
                e = errno;
                if (e != EEXIST)
                        break;
        }
        bool locked = fchmodat(dfd, name, 0, 0) == 0;
        nc->failed++;
        fprintf(stderr, "credbroker: sandbox: %s/%s: %s while the sandbox ran, and it could not be moved aside "
                        "(%s)%s: do not run git there, or above it, before reviewing its config and hooks\n",
                where, name, why, strerror(e ? e : errno), locked ? "; its permissions were taken away (mode 0)" : "");
}

/* Open dirfd/name for reading; one of ours that we cannot read (CMD can
 * make a directory git passes through but a listing cannot: mode 0311,
 * red team rt9 B4) is given u+rx for the look, and its mode back after. */
static int open_dir(int dfd, const char *name, const struct stat *sb, mode_t *restore) {
        int c = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        *restore = (mode_t)-1;
        if (c >= 0 || errno != EACCES || sb->st_uid != geteuid())
                return c;
        if (fchmodat(dfd, name, (sb->st_mode & 07777) | S_IRUSR | S_IXUSR, 0) < 0)
                return -1;
        *restore = sb->st_mode & 07777;
        c = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (c < 0) {
                if (fchmodat(dfd, name, *restore, 0) < 0) { /* nothing more to do: it stays u+rx */ }
                *restore = (mode_t)-1;
        }
        return c;
}

/* A git directory found at dirfd(d)/name (a .git, or a directory git
 * would take for a bare repository: HEAD, objects/, refs/): moved aside
 * when CMD changed what git takes configuration or hooks from.  A .git
 * directory made, moved in or changed itself is judged whole, whatever
 * the ages of what it holds (rt9 B10: renamed back into place by a second
 * sandbox, its contents kept their old ctimes). */
static void judge(struct nested *nc, int dfd, const char *name, const char *where, bool bare) {
        struct stat sb;
        char why[160];
        const struct timespec zero = { 0 };

        if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
                return;
        if (!S_ISDIR(sb.st_mode)) {
                if (changed(&sb, &nc->since))
                        move_aside(nc, dfd, name, where,
                                   S_ISLNK(sb.st_mode) ? "a .git symlink was made or changed"
                                                       : "a .git file (a pointer to a git directory) was made or changed");
                return;
        }
        int g = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (g < 0) {
                move_aside(nc, dfd, name, where, "it could not be read");
                return;
        }
        if (!gitdir_tampered(g, changed(&sb, &nc->since) && !bare ? &zero : &nc->since, why, sizeof(why)))
                return;
        if (bare) {
                /* A directory of the project that git would take for a bare
                 * repository (rt9 B2): its HEAD moved aside, so it is not one. */
                char w[PATH_MAX + 8];
                snprintf(w, sizeof(w), "%s%s%s", where, name[0] == '.' && !name[1] ? "" : "/", name[0] == '.' && !name[1] ? "" : name);
                int b = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (b >= 0) {
                        move_aside(nc, b, "HEAD", w, why);
                        close(b);
                }
                return;
        }
        move_aside(nc, dfd, name, where, why);
}

static void walk(struct nested *nc, int dfd, char *path, size_t pl, size_t cap, int depth) {
        DIR *d = fdopendir(dfd);
        struct dirent *e;
        bool head = false, objects = false, refs = false;

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
                head = head || strcmp(n, "HEAD") == 0;
                objects = objects || strcmp(n, "objects") == 0;
                refs = refs || strcmp(n, "refs") == 0;
                if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN && strcmp(n, ".git") != 0)
                        continue;
                if (fstatat(dirfd(d), n, &sb, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (strcmp(n, ".git") == 0) {
                        if (depth == 0)
                                continue; /* the top's: kept read-only while CMD ran */
                        path[pl] = '\0';
                        judge(nc, dirfd(d), ".git", path, false);
                        continue;
                }
                if (!S_ISDIR(sb.st_mode) || sb.st_dev != nc->dev)
                        continue; /* another file system mounted there: not the root's */
                if (depth >= SB_NESTED_DEPTH) {
                        nc->incomplete = true;
                        continue;
                }
                size_t nl = strlen(n);
                mode_t restore;
                int c = open_dir(dirfd(d), n, &sb, &restore);
                if (c < 0) {
                        nc->incomplete = true;
                        continue;
                }
                bool cut = pl + 1 + nl >= cap; /* too long to name: walked all the same */
                if (!cut) {
                        path[pl] = '/';
                        memcpy(path + pl + 1, n, nl + 1);
                }
                walk(nc, c, path, cut ? pl : pl + 1 + nl, cap, depth + 1);
                path[pl] = '\0';
                if (restore != (mode_t)-1)
                        if (fchmodat(dirfd(d), n, restore, 0) < 0) { /* left u+rx: still ours */ }
        }
        /* This directory itself looks like a bare repository. */
        if (head && objects && refs) {
                path[pl] = '\0';
                judge(nc, dirfd(d), ".", path, true);
        }
        closedir(d);
}

int sb_check_nested(struct sb_state *st, const struct timespec *since) {
        int bad = 0;

        for (size_t k = 0; k < st->nroots; k++) {
                struct nested nc = { .since = *since };
                char path[PATH_MAX];
                struct stat sb;
                int fd = open(st->roots[k], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

                if (fd < 0 || fstat(fd, &sb) < 0) {
                        if (fd >= 0)
                                close(fd);
                        fprintf(stderr, "credbroker: sandbox: %s could not be checked for repositories CMD made or "
                                        "changed: review nested .git directories before running git there\n",
                                st->roots[k]);
                        bad = 1;
                        continue;
                }
                nc.dev = sb.st_dev;
                snprintf(path, sizeof(path), "%s", st->roots[k]);
                walk(&nc, fd, path, strlen(path), sizeof(path), 0);
                if (nc.incomplete)
                        fprintf(stderr, "credbroker: sandbox: %s: not every directory could be checked for "
                                        "repositories CMD made or changed (over %u entries, over %d levels, or "
                                        "unreadable): review nested .git directories before running git there\n",
                                st->roots[k], SB_NESTED_MAX, SB_NESTED_DEPTH);
                bad |= nc.incomplete || nc.failed;
        }
        return bad ? -1 : 0;
}
