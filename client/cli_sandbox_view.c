/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker sandbox: the file system view (docs/sandbox.md), written as
 * bubblewrap's arguments.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/xattr.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/mount.h>
#include <linux/nsfs.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "cli.h"
#include "cli_sandbox_git.h"
#include "cli_sandbox_internal.h"

/* Under the user's home: hidden (an empty read-only directory, or an empty
 * file, in their place).  Credentials of common tools and shell history. */
static const char *const hidden_home[] = {
        ".ssh", ".aws", ".config/gcloud", ".docker", ".kube", ".netrc", ".git-credentials",
        ".gnupg", ".password-store", ".config/gh", ".config/hub", ".azure", ".oci", ".npmrc",
        ".pypirc", ".cargo/credentials", ".cargo/credentials.toml", ".terraform.d", ".vault-token",
        ".local/share/keyrings", ".config/credbroker",
        ".bash_history", ".zsh_history", ".histfile", ".python_history", ".node_repl_history",
        ".lesshst", ".psql_history", ".mysql_history", ".sqlite_history", ".local/share/fish/fish_history",
};

/* The broker's own directories (packaged defaults); the directories of
 * the sockets in use are added at run time. */
static const char *const hidden_system[] = {
        "/etc/credbroker", "/var/lib/credbroker", "/run/credbroker", "/var/log/credbroker",
};

/* Never writable at the top of a writable directory (the working directory,
 * --write): what a shell, git, an editor or an agent would later run or
 * load.  An existing one is bound read-only over itself; a missing one gets
 * a read-only placeholder for the sandbox's life (removed at exit when it
 * is still an empty placeholder). */
static const struct deny {
        const char *name;
        bool dir;
        const char *needs_dir; /* only when this directory exists (".git") */
        const char *content;   /* a missing file's placeholder holds this (NULL: empty) */
        bool existing_only;    /* kept read-only when present; no placeholder when missing */
} deny_write[] = {
        { ".bashrc", false, NULL },  { ".bash_profile", false, NULL }, { ".bash_login", false, NULL },
        { ".bash_logout", false, NULL }, { ".profile", false, NULL }, { ".zshrc", false, NULL },
        { ".zshenv", false, NULL },  { ".zprofile", false, NULL }, { ".zlogin", false, NULL },
        { ".zlogout", false, NULL }, { ".inputrc", false, NULL }, { ".envrc", false, NULL },
        { ".gitconfig", false, NULL }, { ".npmrc", false, NULL }, { ".mcp.json", false, NULL },
        { ".git/hooks", true, ".git" }, { ".git/config", false, ".git" },
        /* What else in .git git reads its configuration or hooks from (red
         * team rt7 F1): commondir names the directory config and hooks come
         * from (a missing one's placeholder names .git itself, which is
         * what git assumes without one); config.worktree; info/; the
         * submodules' and linked worktrees' own git directories. */
        { ".git/commondir", false, ".git", ".\n" }, { ".git/config.worktree", false, ".git" },
        { ".git/info", true, ".git" }, { ".git/modules", true, ".git" }, { ".git/worktrees", true, ".git" },
        /* Hook managers' configurations, which an installed hook runs. */
        { ".pre-commit-config.yaml", false, NULL, NULL, true }, { ".pre-commit-config.yml", false, NULL, NULL, true },
        { "lefthook.yml", false, NULL, NULL, true }, { ".lefthook.yml", false, NULL, NULL, true },
        { "lefthook.yaml", false, NULL, NULL, true }, { ".lefthook.yaml", false, NULL, NULL, true },
        { ".vscode", true, NULL },   { ".idea", true, NULL }, { ".zed", true, NULL },
        { ".cursor", true, NULL },   { ".claude", true, NULL }, { ".config/fish", true, ".config" },
        { ".config/nvim", true, ".config" }, { ".vim", true, NULL }, { ".emacs.d", true, NULL },
};

/* System directories never made writable (the system stays read-only). */
static const char *const system_dirs[] = {
        "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot",
        "/proc", "/sys", "/dev", "/run", "/var/lib", "/var/log", "/var/spool", "/var/cache",
};

int sb_arg_add(struct sb_state *st, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        int n;

        if (st->nargs + 1 >= SB_ARGS_MAX) {
                if (!st->overflow)
                        (void)cli_usage("sandbox: too many paths for one sandbox");
                st->overflow = true;
                return -CB_EXIT_USAGE;
        }
        va_start(ap, fmt);
        n = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -cli_fail(-ENOMEM, "out of memory");
        st->args[st->nargs++] = s;
        st->args[st->nargs] = NULL;
        return 0;
}

/* Is p equal to dir or below it? */
bool sb_path_under(const char *p, const char *dir) {
        size_t n = strlen(dir);

        if (n == 1 && dir[0] == '/')
                return true;
        return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* ---- the file system view ------------------------------------------------ */

static bool is_system_dir(const char *p) {
        if (strcmp(p, "/") == 0)
                return true;
        for (size_t i = 0; i < sizeof(system_dirs) / sizeof(system_dirs[0]); i++)
                if (sb_path_under(p, system_dirs[i]))
                        return true;
        return false;
}

/* The home directory's start-up area (red team rt7 F6).  With the home, or
 * a directory holding it, writable, CMD could write what the user's
 * session later runs without asking: ~/.config/git/config (core.fsmonitor),
 * a user-site .pth, ~/.config/systemd/user, ~/.config/autostart,
 * ~/.local/bin, .bash_aliases, ... -- too many to keep read-only one by
 * one.  So such a root is refused, and so is one inside ~/.config or
 * ~/.local.  Returns the home rp collides with, or NULL. */
static const char *home_area(const char *rp, char homes[2][PATH_MAX]) {
        const char *cand[2] = { getenv("HOME"), NULL };
        struct passwd *pw = getpwuid(getuid());
        char sub[PATH_MAX + 16];

        cand[1] = pw ? pw->pw_dir : NULL;
        for (size_t i = 0; i < 2; i++) {
                if (!cand[i] || cand[i][0] != '/' || !realpath(cand[i], homes[i]) || strcmp(homes[i], "/") == 0)
                        continue;
                if (sb_path_under(homes[i], rp))
                        return homes[i]; /* the home, or above it */
                for (size_t j = 0; j < 2; j++) {
                        if (snprintf(sub, sizeof(sub), "%s/%s", homes[i], j ? ".local" : ".config") >= (int)sizeof(sub))
                                continue;
                        if (sb_path_under(rp, sub))
                                return homes[i];
                }
        }
        return NULL;
}

int sb_add_root(struct sb_state *st, const char *arg, bool is_cwd) {
        char rp[PATH_MAX], homes[2][PATH_MAX];
        const char *home;

        if (!realpath(arg, rp))
                return -cli_fail(-errno, "sandbox: %s %.256s: %s", is_cwd ? "working directory" : "--write", arg,
                                 strerror(errno));
        if (is_system_dir(rp))
                return -cli_usage("sandbox: %s %s is a system directory, which stays read-only; %s",
                                  is_cwd ? "the working directory" : "--write", rp,
                                  is_cwd ? "cd to a project directory first" : "give a directory of your own");
        if ((home = home_area(rp, homes)))
                return -cli_usage("sandbox: %s %s would make the start-up files of your home %s writable "
                                  "(~/.config, ~/.local, shell and git configuration: what your next session "
                                  "runs); %s",
                                  is_cwd ? "the working directory" : "--write", rp, home,
                                  is_cwd ? "cd to a project directory first" : "give a project directory");
        for (size_t i = 0; i < st->nroots; i++)
                if (strcmp(st->roots[i], rp) == 0)
                        return 0;
        st->roots[st->nroots] = strdup(rp);
        if (!st->roots[st->nroots])
                return -cli_fail(-ENOMEM, "out of memory");
        st->root_fd[st->nroots] = -1;
        st->nroots++;
        return 0;
}

static bool is_placeholder(const struct sb_state *st, const char *p) {
        for (size_t i = 0; i < st->nph; i++)
                if (strcmp(st->ph[i].path, p) == 0)
                        return true;
        return false;
}

/* Hide path if it exists (its real path: a symlink is followed to what it
 * names).  user: given with --hide (a missing one is an error). */
static int add_hidden(struct sb_state *st, const char *path, bool user) {
        char rp[PATH_MAX];

        if (!realpath(path, rp)) {
                if (user && errno == ENOENT)
                        return -cli_usage("sandbox: --hide %.256s: no such file or directory", path);
                return 0; /* nothing there: nothing to hide */
        }
        if (strcmp(rp, "/") == 0)
                return -cli_usage("sandbox: --hide /: nothing would be left");
        if (!user && is_placeholder(st, rp))
                return 0; /* a placeholder we made (~/.npmrc when the home is a root): empty already */
        for (size_t i = 0; i < st->nhidden; i++)
                if (strcmp(st->hidden[i], rp) == 0)
                        return 0;
        if (st->nhidden >= sizeof(st->hidden) / sizeof(st->hidden[0]))
                return -cli_usage("sandbox: too many hidden paths");
        st->hidden[st->nhidden] = strdup(rp);
        if (!st->hidden[st->nhidden])
                return -cli_fail(-ENOMEM, "out of memory");
        st->nhidden++;
        return 0;
}

static int hide_home(struct sb_state *st, const char *home) {
        char p[PATH_MAX];
        int r = 0;

        if (!home || home[0] != '/')
                return 0;
        for (size_t i = 0; r == 0 && i < sizeof(hidden_home) / sizeof(hidden_home[0]); i++) {
                if (snprintf(p, sizeof(p), "%s/%s", home, hidden_home[i]) >= (int)sizeof(p))
                        continue;
                r = add_hidden(st, p, false);
        }
        return r;
}

/* The directory holding a socket path (the run dir), hidden. */
static int hide_socket_dir(struct sb_state *st, const char *sock) {
        char d[PATH_MAX], *slash;

        if (!sock || sock[0] != '/' || strlen(sock) >= sizeof(d))
                return 0;
        strcpy(d, sock);
        slash = strrchr(d, '/');
        if (!slash || slash == d)
                return 0;
        *slash = '\0';
        return add_hidden(st, d, false);
}

/* Could we (and so CMD: only our uid and gid are mapped in its user
 * namespace) create an entry next to path?  Owner, group (ours or a
 * supplementary one) or other write permission on its directory. */
bool sb_may_create_in(const char *path) {
        char d[PATH_MAX], *slash;
        struct stat sb;
        gid_t groups[256];
        int ng;

        if (strlen(path) >= sizeof(d))
                return false;
        strcpy(d, path);
        slash = strrchr(d, '/');
        if (!slash || slash == d)
                return false;
        *slash = '\0';
        if (stat(d, &sb) < 0)
                return false;
        if (sb.st_uid == geteuid())
                return (sb.st_mode & S_IWUSR) != 0;
        if (sb.st_mode & S_IWOTH)
                return true;
        if (!(sb.st_mode & S_IWGRP))
                return false;
        if (sb.st_gid == getegid())
                return true;
        ng = getgroups((int)(sizeof(groups) / sizeof(groups[0])), groups);
        for (int i = 0; i < ng; i++)
                if (groups[i] == sb.st_gid)
                        return true;
        return false;
}

/* Placeholders and concurrent sandboxes.  A missing protected entry gets
 * an empty file or directory that the launcher makes on the host, marked
 * with the extended attribute SB_MARK (set before the entry appears under
 * its name: made under a temporary name, then renamed with
 * RENAME_NOREPLACE), and binds read-only over itself.  Two sandboxes may
 * share a working directory (an agent running tool calls in parallel):
 * the second finds the first one's placeholders -- marked and empty -- and
 * treats them as its own (read-only; a placeholder .git is not pinned
 * writable).  Were the first one to remove them when its CMD ends, the
 * second's mount would go with the name (unlinking a mount point of
 * another mount namespace detaches it there), and its CMD could then
 * create .bashrc or .git/hooks on the host.  So each launcher holds
 * flock(LOCK_SH) on each root directory for the sandbox's life, taken
 * before the root is looked at; at exit, only a launcher that gets
 * LOCK_EX (no other sandbox on that root) removes the placeholders it
 * knows (made or found) that are still marked and empty -- the last one
 * out cleans up, and never removes a user's own empty file.  A launcher
 * starting waits for such a removal (bounded: SB_LOCK_WAIT_MS, then it
 * refuses).  Where the file system has no user xattrs, placeholders are
 * unmarked: another sandbox binds them as existing entries and only their
 * maker removes them (when it is the last one out). */
#define SB_LOCK_WAIT_MS 3000
#define SB_MARK "user.credbroker.placeholder"

static int lock_root(struct sb_state *st, size_t k) {
        const char *root = st->roots[k];
        int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                return -cli_fail(-errno, "sandbox: %s: %s", root, strerror(errno));
        for (int waited = 0;; waited += 2) {
                if (flock(fd, LOCK_SH | LOCK_NB) == 0)
                        break;
                if (errno != EWOULDBLOCK && errno != EINTR) {
                        /* No flock here (some network file systems): the
                         * placeholders are then left in place at exit
                         * (empty files and directories), never removed
                         * under another sandbox. */
                        close(fd);
                        return 0;
                }
                if (waited >= SB_LOCK_WAIT_MS) {
                        close(fd);
                        return -cli_fail(-EBUSY, "sandbox: %s is locked (flock) by another process for more than "
                                                 "%d s (a sandbox removing its placeholders, or a process holding "
                                                 "a lock on the directory); CMD was not run",
                                         root, SB_LOCK_WAIT_MS / 1000);
                }
                (void)nanosleep(&(struct timespec){ .tv_nsec = 2000000 }, NULL);
        }
        st->root_fd[k] = fd;
        return 0;
}

/* Record p as a placeholder of root k. */
static int add_placeholder(struct sb_state *st, size_t k, const char *p, bool dir, const char *content) {
        if (st->nph >= SB_PLACEHOLDERS_MAX)
                return -cli_usage("sandbox: too many writable directories");
        st->ph[st->nph].path = strdup(p);
        if (!st->ph[st->nph].path)
                return -cli_fail(-ENOMEM, "out of memory");
        st->ph[st->nph].dir = dir;
        st->ph[st->nph].content = content;
        st->ph[st->nph].root = k;
        st->ph[st->nph].ours = false;
        st->ph[st->nph].made = false;
        st->nph++;
        return 0;
}

/* Does the regular file p hold exactly content (NULL: empty)? */
static bool file_holds(const char *p, const char *content) {
        size_t n = content ? strlen(content) : 0;
        char buf[16];
        struct stat sb;
        bool same;
        int fd;

        if (n >= sizeof(buf))
                return false;
        if ((fd = open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
                return false;
        same = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && (size_t)sb.st_size == n &&
               (n == 0 || (read(fd, buf, n) == (ssize_t)n && memcmp(buf, content, n) == 0));
        close(fd);
        return same;
}

/* Is p a placeholder's shape: a regular file holding content (NULL:
 * empty), or an empty directory (not a symlink)? */
static bool empty_entry(const char *p, bool *dir, const char *content) {
        struct stat sb;
        DIR *d;
        struct dirent *e;
        bool empty = true;

        if (lstat(p, &sb) < 0)
                return false;
        if (S_ISREG(sb.st_mode)) {
                *dir = false;
                return file_holds(p, content);
        }
        if (!S_ISDIR(sb.st_mode) || !(d = opendir(p)))
                return false;
        *dir = true;
        while (empty && (e = readdir(d)))
                empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
        closedir(d);
        return empty;
}

/* Is p a placeholder (ours or another sandbox's): marked, and empty? */
static bool marked_placeholder(const char *p, bool *dir, const char *content) {
        char v[4];

        return lgetxattr(p, SB_MARK, v, sizeof(v)) > 0 && empty_entry(p, dir, content);
}

/* Make the placeholder p: an empty file or directory made under a
 * temporary name next to it, marked, then renamed to p without replacing
 * anything (-EEXIST if p exists: it appeared since it was looked at). */
int sb_create_placeholder(const char *p, bool dir, const char *content, struct stat *sb) {
        static unsigned seq;
        char tmp[PATH_MAX];
        const char *slash = strrchr(p, '/');
        int fd, r = 0;

        if (!slash || snprintf(tmp, sizeof(tmp), "%.*s/.cbsb-placeholder-%d-%u", (int)(slash - p), p, (int)getpid(),
                               seq++) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        if (dir) {
                if (mkdir(tmp, 0755) < 0)
                        return -errno;
                fd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        } else {
                fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        }
        size_t cn = content && !dir ? strlen(content) : 0;
        if (fd < 0)
                r = -errno;
        else if (cn && write(fd, content, cn) != (ssize_t)cn)
                r = errno ? -errno : -EIO;
        else if (fsetxattr(fd, SB_MARK, "1", 1, XATTR_CREATE) < 0 && errno != ENOTSUP && errno != EOPNOTSUPP)
                r = -errno; /* no user xattrs here: unmarked (see above) */
        else if (fstat(fd, sb) < 0)
                r = -errno;
        if (fd >= 0)
                close(fd);
        if (r == 0 && syscall(SYS_renameat2, AT_FDCWD, tmp, AT_FDCWD, p, RENAME_NOREPLACE) < 0)
                r = -errno;
        if (r < 0)
                (void)(dir ? rmdir(tmp) : unlink(tmp));
        return r;
}

/* A protected entry p of root k that is missing and that CMD could create:
 * a placeholder, bound read-only over itself.  With launcher mounts it is
 * made while bwrap sets the sandbox up (sb_placeholders_make) and mounted
 * once it has (sb_mount_placeholders_start); else made now and bound by
 * bwrap.  *made: false when it appeared meanwhile (the caller then handles
 * it as an existing entry). */
int sb_make_placeholder(struct sb_state *st, size_t k, const char *p, bool dir, const char *content,
                            bool *made) {
        struct stat sb;
        int r;

        *made = false;
        if (st->launcher_mounts) {
                if ((r = add_placeholder(st, k, p, dir, content)) < 0)
                        return r;
                st->ph[st->nph - 1].ours = true;
                *made = true;
                return 0;
        }
        r = sb_create_placeholder(p, dir, content, &sb);
        if (r == -EEXIST)
                return 0;
        if (r < 0)
                return -cli_fail(r, "sandbox: cannot make the read-only placeholder %s: %s; CMD was not run", p,
                                 strerror(-r));
        *made = true;
        if ((r = add_placeholder(st, k, p, dir, content)) < 0)
                return r;
        st->ph[st->nph - 1].made = true;
        if ((r = sb_arg_add(st, "--ro-bind")) < 0 || (r = sb_arg_add(st, "%s", p)) < 0 || (r = sb_arg_add(st, "%s", p)) < 0)
                return r;
        return 0;
}

/* p is a placeholder found there (another sandbox's, or left by a killed
 * launcher): read-only here too, and removed by the last one out. */
static int adopt_placeholder(struct sb_state *st, size_t k, const char *p, bool dir, const char *content) {
        struct stat sb;
        int r;

        if ((r = add_placeholder(st, k, p, dir, content)) < 0)
                return r;
        st->ph[st->nph - 1].made = true; /* to remove, if still a placeholder */
        if (st->launcher_mounts && lstat(p, &sb) == 0) {
                st->ph[st->nph - 1].ours = true; /* mounted by us, checked against this inode */
                st->ph[st->nph - 1].dev = sb.st_dev;
                st->ph[st->nph - 1].ino = sb.st_ino;
                return 0;
        }
        if ((r = sb_arg_add(st, "--ro-bind")) < 0 || (r = sb_arg_add(st, "%s", p)) < 0 || (r = sb_arg_add(st, "%s", p)) < 0)
                return r;
        return 0;
}

/* The write-denied entries of one writable root. */
/* The directories that hold protected entries (".git", ".config") are
 * pinned first: an existing one is bound over itself, which makes it a
 * mount point that cannot be renamed or removed (else CMD renames .git
 * away, copies it back writable and plants a hook the user's next git
 * command runs); a .git file (a worktree's pointer) is bound read-only; a
 * missing one, where CMD could create it, gets a read-only placeholder
 * directory (a repository, or a .config, cannot be made there: git init
 * in a directory that is not a repository fails in the sandbox).  A
 * symlinked one refuses the launch.  A placeholder found
 * there is adopted (read-only). */
static int pin_parent(struct sb_state *st, size_t k, const char *name) {
        const char *root = st->roots[k];
        char p[PATH_MAX];
        struct stat sb;
        bool made = false, dir;
        int r;

        if (snprintf(p, sizeof(p), "%s/%s", root, name) >= (int)sizeof(p))
                return 0;
        if (lstat(p, &sb) < 0) {
                if (errno != ENOENT || !sb_may_create_in(p))
                        return 0;
                if ((r = sb_make_placeholder(st, k, p, true, NULL, &made)) < 0 || made)
                        return r;
                if (lstat(p, &sb) < 0)
                        return -cli_fail(-errno, "sandbox: %s: %s; CMD was not run", p, strerror(errno));
        }
        if (marked_placeholder(p, &dir, NULL))
                return adopt_placeholder(st, k, p, dir, NULL);
        if (S_ISDIR(sb.st_mode))
                return (r = sb_arg_add(st, "--bind")) < 0 || (r = sb_arg_add(st, "%s", p)) < 0 || (r = sb_arg_add(st, "%s", p)) < 0 ? r : 0;
        if (S_ISREG(sb.st_mode))
                return (r = sb_arg_add(st, "--ro-bind")) < 0 || (r = sb_arg_add(st, "%s", p)) < 0 || (r = sb_arg_add(st, "%s", p)) < 0 ? r
                                                                                                              : 0;
        /* A symlink: a mount cannot hold the link itself, and CMD could
         * replace it with a directory of its own (a .git with hooks the
         * user's next git command runs: red team rt8 A7). */
        if (S_ISLNK(sb.st_mode))
                return -cli_usage("sandbox: %s is a symlink, which the sandbox could replace (git and the tools "
                                  "reading %s would then take what CMD put there); CMD was not run",
                                  p, name);
        return 0;
}

static int deny_root(struct sb_state *st, size_t k) {
        const char *root = st->roots[k];
        int r0;

        if ((r0 = lock_root(st, k)) < 0 || (r0 = pin_parent(st, k, ".git")) < 0 ||
            (r0 = pin_parent(st, k, ".config")) < 0)
                return r0;
        for (size_t i = 0; i < sizeof(deny_write) / sizeof(deny_write[0]); i++) {
                const struct deny *d = &deny_write[i];
                char p[PATH_MAX], need[PATH_MAX], rp[PATH_MAX];
                struct stat sb;
                bool made, dir;
                int r;

                if (snprintf(p, sizeof(p), "%s/%s", root, d->name) >= (int)sizeof(p))
                        continue;
                if (d->needs_dir) {
                        snprintf(need, sizeof(need), "%s/%s", root, d->needs_dir);
                        if (lstat(need, &sb) < 0 || !S_ISDIR(sb.st_mode) || is_placeholder(st, need))
                                continue; /* none, or a read-only placeholder: nothing can be made in it */
                }
                if (lstat(p, &sb) < 0) {
                        if (errno != ENOENT || !sb_may_create_in(p) || d->existing_only)
                                continue; /* CMD cannot create it either (only our ids are mapped inside) */
                        if ((r = sb_make_placeholder(st, k, p, d->dir, d->content, &made)) < 0)
                                return r;
                        if (made)
                                continue;
                }
                if (marked_placeholder(p, &dir, d->content)) {
                        if ((r = adopt_placeholder(st, k, p, dir, d->content)) < 0)
                                return r;
                        continue;
                }
                if (!realpath(p, rp))
                        continue; /* a dangling symlink: bwrap would follow it out; left alone (docs) */
                /* It exists (a symlink: what it names is made read-only,
                 * wherever it is). */
                if ((r = sb_arg_add(st, "--ro-bind")) < 0 || (r = sb_arg_add(st, "%s", rp)) < 0 || (r = sb_arg_add(st, "%s", rp)) < 0)
                        return r;
        }
        return sb_deny_git_paths(st, k);
}

/* Remove the placeholders that are still empty ones, for each root that
 * no other sandbox uses now (LOCK_EX; else the last one out does). */
void sb_placeholders_remove(struct sb_state *st) {
        bool mine[SB_PATHS_MAX + 1] = { 0 };

        for (size_t k = 0; k < st->nroots; k++)
                mine[k] = st->root_fd[k] >= 0 && flock(st->root_fd[k], LOCK_EX | LOCK_NB) == 0;
        for (size_t i = st->nph; i-- > 0;) {
                struct stat sb;

                if (!mine[st->ph[i].root] || (st->ph[i].ours && !st->ph[i].made) || lstat(st->ph[i].path, &sb) < 0)
                        continue; /* not ours to remove (one we were to make was not made: someone else's) */
                char v[4];
                ssize_t m = lgetxattr(st->ph[i].path, SB_MARK, v, sizeof(v));
                if (m <= 0 && !(errno == ENOTSUP || errno == EOPNOTSUPP))
                        continue; /* unmarked where marks exist: not a placeholder (any more) */
                if (st->ph[i].dir && S_ISDIR(sb.st_mode))
                        (void)rmdir(st->ph[i].path); /* fails unless empty */
                else if (!st->ph[i].dir && file_holds(st->ph[i].path, st->ph[i].content))
                        (void)unlink(st->ph[i].path);
        }
}

int sb_build_args(struct sb_state *st, char **cmd) {
        const char *home = getenv("HOME");
        struct passwd *pw = getpwuid(getuid());
        int r;

        /* Namespaces: user, mount (implied), pid, ipc, uts, net (only lo),
         * cgroup where the kernel allows; no user namespace inside. */
        static const char *const fixed[] = {
                "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
                "--unshare-cgroup-try", "--disable-userns", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
        };
        /* Our placeholders are mounted by us (sb_mount_placeholders) where
         * the kernel has the new mount API (mount_setattr: Linux 5.12):
         * bwrap re-reads /proc/self/mountinfo for each mount it makes. */
        st->launcher_mounts = syscall(SYS_mount_setattr, -1, "", 0, NULL, (size_t)0) < 0 && errno != ENOSYS;
        if ((r = sb_arg_add(st, "%s", st->bwrap)) < 0)
                return r;
        for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
                if ((r = sb_arg_add(st, "%s", fixed[i])) < 0)
                        return r;
        /* Writable: the working directory and --write, then what in them
         * stays read-only, then what is hidden (over both). */
        for (size_t i = 0; i < st->nroots; i++)
                if ((r = sb_arg_add(st, "--bind")) < 0 || (r = sb_arg_add(st, "%s", st->roots[i])) < 0 ||
                    (r = sb_arg_add(st, "%s", st->roots[i])) < 0)
                        return r;
        for (size_t i = 0; i < st->nroots; i++) {
                struct stat sb;
                if (stat(st->roots[i], &sb) == 0 && S_ISDIR(sb.st_mode) && (r = deny_root(st, i)) < 0)
                        return r;
        }
        /* Start-up files of the home directory, should a --write cover it
         * only partly, are covered by deny_root when it is a root itself. */
        if ((r = hide_home(st, home)) < 0 || (pw && (r = hide_home(st, pw->pw_dir)) < 0))
                return r;
        for (size_t i = 0; i < sizeof(hidden_system) / sizeof(hidden_system[0]); i++)
                if ((r = add_hidden(st, hidden_system[i], false)) < 0)
                        return r;
        if ((r = hide_socket_dir(st, cli_socket ? cli_socket : secure_getenv("CREDBROKER_SOCKET"))) < 0 ||
            (r = hide_socket_dir(st, cli_admin_socket ? cli_admin_socket : secure_getenv("CREDBROKER_ADMIN_SOCKET"))) < 0)
                return r;
        for (size_t i = 0; i < st->nhide; i++)
                if ((r = add_hidden(st, st->hide_arg[i], true)) < 0)
                        return r;
        for (size_t i = 0; i < st->nhidden; i++) {
                struct stat sb;
                for (size_t k = 0; k < st->nroots; k++)
                        if (sb_path_under(st->roots[k], st->hidden[i]))
                                return -cli_usage("sandbox: %s %s is inside the hidden %s",
                                                  k == 0 ? "the working directory" : "--write", st->roots[k],
                                                  st->hidden[i]);
                st->hidden_kind[i] = 0;
                if (stat(st->hidden[i], &sb) < 0)
                        continue;
                if (st->launcher_mounts) {
                        st->hidden_kind[i] = S_ISDIR(sb.st_mode) ? 'd' : 'f'; /* mount_child, after the placeholders */
                        continue;
                }
                if (S_ISDIR(sb.st_mode)) {
                        if ((r = sb_arg_add(st, "--tmpfs")) < 0 || (r = sb_arg_add(st, "%s", st->hidden[i])) < 0 ||
                            (r = sb_arg_add(st, "--remount-ro")) < 0 || (r = sb_arg_add(st, "%s", st->hidden[i])) < 0)
                                return r;
                } else if ((r = sb_arg_add(st, "--ro-bind")) < 0 || (r = sb_arg_add(st, "/dev/null")) < 0 ||
                           (r = sb_arg_add(st, "%s", st->hidden[i])) < 0) {
                        return r;
                }
        }
        /* Every proxy-aware program goes to the broker's listener, which
         * is the only thing its network namespace holds; local base URLs
         * (the --proxy presets) are reached directly. */
        static const char *const proxy_vars[] = { "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy",
                                                  "https_proxy", "all_proxy" };
        for (size_t i = 0; i < sizeof(proxy_vars) / sizeof(proxy_vars[0]); i++)
                if ((r = sb_arg_add(st, "--setenv")) < 0 || (r = sb_arg_add(st, "%s", proxy_vars[i])) < 0 ||
                    (r = sb_arg_add(st, "%s", SB_URL)) < 0)
                        return r;
        if ((r = sb_arg_add(st, "--setenv")) < 0 || (r = sb_arg_add(st, "NO_PROXY")) < 0 || (r = sb_arg_add(st, "127.0.0.1,localhost,::1")) < 0 ||
            (r = sb_arg_add(st, "--setenv")) < 0 || (r = sb_arg_add(st, "no_proxy")) < 0 || (r = sb_arg_add(st, "127.0.0.1,localhost,::1")) < 0)
                return r;
        /* The broker's sockets are not the sandbox's business. */
        static const char *const unset[] = { "CREDBROKER_SOCKET", "CREDBROKER_ADMIN_SOCKET", "SSH_AUTH_SOCK",
                                             "DBUS_SESSION_BUS_ADDRESS" };
        for (size_t i = 0; i < sizeof(unset) / sizeof(unset[0]); i++)
                if ((r = sb_arg_add(st, "--unsetenv")) < 0 || (r = sb_arg_add(st, "%s", unset[i])) < 0)
                        return r;
        if ((r = sb_arg_add(st, "--chdir")) < 0 || (r = sb_arg_add(st, "%s", st->cwd)) < 0 ||
            (r = sb_arg_add(st, "--seccomp")) < 0 || (r = sb_arg_add(st, "%d", st->seccomp_fd)) < 0 ||
            (r = sb_arg_add(st, "--info-fd")) < 0 || (r = sb_arg_add(st, "%d", st->info_wr)) < 0 ||
            (r = sb_arg_add(st, "--block-fd")) < 0 || (r = sb_arg_add(st, "%d", st->block_rd)) < 0 || (r = sb_arg_add(st, "--")) < 0)
                return r;
        for (size_t i = 0; cmd[i]; i++)
                if ((r = sb_arg_add(st, "%s", cmd[i])) < 0)
                        return r;
        return 0;
}
