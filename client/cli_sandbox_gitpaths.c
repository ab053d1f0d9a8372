/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker sandbox: the places outside .git that git takes hooks and
 * configuration from (core.hooksPath, included files, submodules' .git),
 * kept read-only inside a writable root (docs/sandbox.md, "The file
 * system"); cli_sandbox_view.c calls sb_deny_git_paths for each root.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_sandbox_git.h"
#include "cli_sandbox_internal.h"

/* Where git takes hooks and configuration from, when that is inside a
 * writable root (red team rt7 F5, rt8 A3/A4): core.hooksPath (husky's
 * .husky/_, .githooks) and the files include.path / includeIf.*.path name
 * (every condition: whatever git decides), read from the files git reads
 * -- the root's .git/config and .git/config.worktree, ~/.gitconfig,
 * $XDG_CONFIG_HOME/git/config, /etc/gitconfig -- and from each included
 * file in turn.  A relative hooksPath is relative to the root, an include
 * to the including file's directory, ~/ to the home.
 *
 * The path is walked as the kernel resolves it, component by component
 * from /: a symlink outside the root is followed (the sandbox cannot
 * change it), a symlink inside the root refuses the launch (the sandbox
 * could swap it), ".." climbs from where the walk is.  What it ends at,
 * when inside the root, is kept: each directory between the root and it
 * pinned (bound over itself: it cannot be renamed away and rebuilt), it
 * bound read-only; a missing one gets a read-only placeholder (a directory
 * for hooks, an empty file for an include), so it cannot be made.  (Before
 * this walk, "hooks/", "hooks/." and "x/../hooks" left the hooks writable:
 * rt8 A4.) */
#define SB_GIT_INCLUDES_MAX 32

/* Bind, inside root k, each directory from the root down to path (not
 * the root itself) over itself, then path: read-only (ro), else pinned. */
static int pin_down(struct sb_state *st, size_t k, const char *path, bool ro_last) {
        const char *root = st->roots[k];
        size_t rl = strlen(root);
        char p[PATH_MAX];
        int r;

        if (strcmp(path, root) == 0 || !sb_path_under(path, root))
                return 0;
        snprintf(p, sizeof(p), "%s", path);
        for (size_t i = rl + 1;; i++) {
                if (p[i] != '/' && p[i] != '\0')
                        continue;
                bool last = p[i] == '\0';
                p[i] = '\0';
                r = (r = sb_arg_add(st, "%s", last && ro_last ? "--ro-bind" : "--bind")) < 0 || (r = sb_arg_add(st, "%s", p)) < 0 ||
                                    (r = sb_arg_add(st, "%s", p)) < 0
                            ? r
                            : 0;
                if (r < 0 || last)
                        return r;
                p[i] = '/';
        }
}

static int protect_git_path(struct sb_state *st, size_t k, const char *value, bool dir) {
        const char *root = st->roots[k];
        char cur[PATH_MAX] = "", rp[PATH_MAX];
        size_t cl = 0;
        const char *s = value;
        struct stat sb;
        bool made;
        int r;

        if (value[0] != '/')
                return 0;
        /* Walk it as the kernel would; cur stays a real path (no symlink,
         * no "." or ".."), "" for /. */
        while (*s) {
                while (*s == '/')
                        s++;
                if (!*s)
                        break;
                const char *e = strchr(s, '/');
                size_t n = e ? (size_t)(e - s) : strlen(s);
                const char *c = s;
                s += n;
                if (n == 1 && c[0] == '.')
                        continue;
                if (n == 2 && c[0] == '.' && c[1] == '.') {
                        while (cl > 0 && cur[cl - 1] != '/')
                                cl--;
                        if (cl > 0)
                                cl--;
                        cur[cl] = '\0';
                        continue;
                }
                if (cl + 1 + n >= sizeof(cur))
                        return -cli_usage("sandbox: a git configuration path is too long: %.200s", value);
                size_t parent = cl;
                cur[cl++] = '/';
                memcpy(cur + cl, c, n);
                cl += n;
                cur[cl] = '\0';
                if (lstat(cur, &sb) < 0) {
                        if (errno != ENOENT)
                                return 0;
                        /* Missing: where CMD could make it (its parent inside
                         * the root), a read-only placeholder, the parent's
                         * directories pinned. */
                        cur[parent] = '\0';
                        const char *par = parent ? cur : "/";
                        bool inside = strcmp(par, root) == 0 || sb_path_under(par, root);
                        if (!inside)
                                return 0;
                        if ((r = pin_down(st, k, par, false)) < 0)
                                return r;
                        cur[parent] = '/';
                        if (!sb_may_create_in(cur))
                                return 0;
                        bool more = strspn(s, "/") != strlen(s);
                        r = sb_make_placeholder(st, k, cur, more ? true : dir, NULL, &made);
                        if (r < 0 || made)
                                return r;
                        return -cli_fail(-EBUSY, "sandbox: %s appeared as the sandbox was set up; CMD was not run",
                                         cur);
                }
                if (S_ISLNK(sb.st_mode)) {
                        if (sb_path_under(cur, root))
                                return -cli_usage("sandbox: git's configuration names %.200s, through the symlink %s "
                                                  "inside the writable %s, which the sandbox could swap; CMD was not "
                                                  "run",
                                                  value, cur, root);
                        if (!realpath(cur, rp))
                                return 0; /* dangling: git finds nothing there either */
                        snprintf(cur, sizeof(cur), "%s", strcmp(rp, "/") == 0 ? "" : rp);
                        cl = strlen(cur);
                }
        }
        /* It exists: read-only when inside the root, the directories
         * between pinned. */
        return pin_down(st, k, cl ? cur : "/", true);
}

struct git_scan {
        struct sb_state *st;
        size_t k;
        const char *dir;  /* the scanned file's directory (includes are relative to it) */
        unsigned *nfiles; /* files read so far (SB_GIT_INCLUDES_MAX) */
        int depth;
        bool gitmodules;  /* scanning .gitmodules: only submodule paths count */
        int err;          /* the first refusal (an exit code negated) */
};

static int scan_git_file(struct sb_state *st, size_t k, const char *path, unsigned *nfiles, int depth);

/* v made absolute: ~/ to the home, relative to base. */
static int git_abs(const char *v, const char *base, char *out, size_t outlen) {
        const char *home = getenv("HOME");
        int n;

        if (v[0] == '~' && (v[1] == '/' || v[1] == '\0'))
                n = home && home[0] == '/' ? snprintf(out, outlen, "%s/%s", home, v[1] ? v + 2 : "") : -1;
        else if (v[0] == '/')
                n = snprintf(out, outlen, "%s", v);
        else if (v[0] == '~' || v[0] == '\0')
                return -1; /* ~user/: not resolved (docs); empty: unset */
        else
                n = snprintf(out, outlen, "%s/%s", base, v);
        return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

static int on_git_value(void *ud, int kind, const char *v) {
        struct git_scan *g = ud;
        char p[PATH_MAX];
        struct stat sb;
        int r;

        /* .gitmodules: an initialised submodule's .git (a file naming its
         * git directory, or the directory) is kept read-only -- rewritten,
         * it pointed the user's next git status at a git directory CMD made
         * (red team rt8 A2). */
        if (kind == SB_GIT_SUBMODULE) {
                if (!g->gitmodules || v[0] == '/' || snprintf(p, sizeof(p), "%s/%s/.git", g->st->roots[g->k], v) >=
                                                             (int)sizeof(p) || lstat(p, &sb) < 0)
                        return 0;
                if ((r = protect_git_path(g->st, g->k, p, false)) < 0) {
                        g->err = r;
                        return -1;
                }
                return 0;
        }
        if (g->gitmodules)
                return 0; /* git reads nothing else of .gitmodules that runs code */

        if (git_abs(v, kind == SB_GIT_HOOKSPATH ? g->st->roots[g->k] : g->dir, p, sizeof(p)) < 0)
                return 0;
        /* husky (v9): hooksPath .husky/_, whose scripts run the user's
         * .husky/<hook>: the whole of .husky is kept (rt8 A5). */
        size_t pl = strlen(p);
        while (pl > 1 && (p[pl - 1] == '/' || (p[pl - 1] == '.' && p[pl - 2] == '/')))
                p[--pl] = '\0';
        if (kind == SB_GIT_HOOKSPATH && pl > 2 && strcmp(p + pl - 2, "/_") == 0)
                p[pl - 2] = '\0';
        if ((r = protect_git_path(g->st, g->k, p, kind == SB_GIT_HOOKSPATH)) < 0) {
                g->err = r;
                return -1;
        }
        if (kind == SB_GIT_INCLUDE && (r = scan_git_file(g->st, g->k, p, g->nfiles, g->depth + 1)) < 0) {
                g->err = r;
                return -1;
        }
        return 0;
}

static int scan_git_file(struct sb_state *st, size_t k, const char *path, unsigned *nfiles, int depth) {
        char dir[PATH_MAX];
        size_t pl = strlen(path);
        struct git_scan g = { .st = st, .k = k, .dir = dir, .nfiles = nfiles, .depth = depth,
                              .gitmodules = pl >= 12 && strcmp(path + pl - 12, "/.gitmodules") == 0 };
        int r;

        if (depth > 8 || ++*nfiles > SB_GIT_INCLUDES_MAX)
                return -cli_usage("sandbox: git's configuration includes more than %d files (or nests them deeper "
                                  "than 8), so where git takes its hooks from is not known; CMD was not run",
                                  SB_GIT_INCLUDES_MAX);
        snprintf(dir, sizeof(dir), "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash)
                *(slash == dir ? slash + 1 : slash) = '\0';
        r = sb_git_config_scan_file(path, on_git_value, &g);
        if (g.err < 0)
                return g.err;
        if (r < 0)
                return -cli_fail(r, "sandbox: %s: %s, so where git takes its hooks from is not known; CMD was "
                                    "not run",
                                 path, r == -EINVAL ? "not git configuration syntax (or a value over 4 KiB)"
                                                    : r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
        return 0;
}

/* The top repository's hooks that are symlinks into the working tree (a
 * project's scripts/pre-commit linked from .git/hooks: red team rt9 B5):
 * what they name is kept read-only as the hooks are. */
static int deny_linked_hooks(struct sb_state *st, size_t k) {
        char dir[PATH_MAX], lnk[PATH_MAX], p[PATH_MAX * 2 + 2];
        struct dirent *e;
        DIR *d;
        int r = 0;

        if (snprintf(dir, sizeof(dir), "%s/.git/hooks", st->roots[k]) >= (int)sizeof(dir) || !(d = opendir(dir)))
                return 0;
        while (r == 0 && (e = readdir(d))) {
                struct stat sb;
                ssize_t n;
                if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(sb.st_mode) ||
                    (n = readlinkat(dirfd(d), e->d_name, lnk, sizeof(lnk) - 1)) <= 0)
                        continue;
                lnk[n] = '\0';
                if (lnk[0] == '/')
                        snprintf(p, sizeof(p), "%s", lnk);
                else
                        snprintf(p, sizeof(p), "%s/%s", dir, lnk);
                if (strlen(p) < PATH_MAX)
                        r = protect_git_path(st, k, p, false);
        }
        closedir(d);
        return r;
}

int sb_deny_git_paths(struct sb_state *st, size_t k) {
        const char *home = getenv("HOME"), *xdg = getenv("XDG_CONFIG_HOME");
        char files[5][PATH_MAX];
        size_t nf = 0;
        unsigned nfiles = 0;
        int r;

        snprintf(files[nf++], PATH_MAX, "%s/.git/config", st->roots[k]);
        snprintf(files[nf++], PATH_MAX, "%s/.git/config.worktree", st->roots[k]);
        if (home && home[0] == '/') {
                snprintf(files[nf++], PATH_MAX, "%s/.gitconfig", home);
                if (!xdg || xdg[0] != '/')
                        snprintf(files[nf++], PATH_MAX, "%s/.config/git/config", home);
        }
        if (xdg && xdg[0] == '/')
                snprintf(files[nf++], PATH_MAX, "%s/git/config", xdg);
        for (size_t i = 0; i < nf; i++)
                if ((r = scan_git_file(st, k, files[i], &nfiles, 0)) < 0)
                        return r;
        if ((r = scan_git_file(st, k, "/etc/gitconfig", &nfiles, 0)) < 0)
                return r;
        char gm[PATH_MAX];
        if ((r = deny_linked_hooks(st, k)) < 0)
                return r;
        if (snprintf(gm, sizeof(gm), "%s/.gitmodules", st->roots[k]) >= (int)sizeof(gm))
                return 0;
        return scan_git_file(st, k, gm, &nfiles, 0);
}
