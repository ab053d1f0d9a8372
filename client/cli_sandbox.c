/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker sandbox: run CMD under bubblewrap where the broker is its only
 * way out (issue 17; the choices and why: docs/sandbox.md).
 *
 * The launcher (this file) builds bwrap's arguments -- namespaces, the
 * file system view, a seccomp filter made with libseccomp and handed over
 * as BPF -- and runs bwrap through exec's machinery (cli_tool.c), so
 * --env values and --proxy tokens, output masking, signal forwarding and
 * the exit status are exec's.  bwrap is started with --info-fd and
 * --block-fd: CMD does not run until the launcher has read the sandbox's
 * pid and released it.
 *
 * Values never pass through argv: --env values reach CMD through exec's
 * environment (bwrap passes it on); bwrap's argv holds paths and names.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <unistd.h>

#include <linux/close_range.h>
#include <linux/netlink.h>
#include <linux/nsfs.h>
#include <seccomp.h>

#include <jansson.h>

#include "cli.h"

#define SB_ARGS_MAX 2048      /* bwrap's argv */
#define SB_PATHS_MAX 64       /* --write, --hide */
#define SB_PLACEHOLDERS_MAX 256
#define SB_INFO_MAX 4096      /* bwrap's --info-fd JSON */
#define SB_INFO_TIMEOUT_MS 30000
#define SB_EXIT_SETUP 125     /* the sandbox could not be set up: CMD never ran */
#define SB_PORT 8411          /* the broker's listener inside the sandbox's own lo */
#define SB_URL "http://127.0.0.1:8411"
#define SB_REPLY_MAX 4096
#define SB_ALLOW_MAX 32
#define SB_REPLY_TIMEOUT_MS 35000 /* the broker may hash our executable first */

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
} deny_write[] = {
        { ".bashrc", false, NULL },  { ".bash_profile", false, NULL }, { ".bash_login", false, NULL },
        { ".bash_logout", false, NULL }, { ".profile", false, NULL }, { ".zshrc", false, NULL },
        { ".zshenv", false, NULL },  { ".zprofile", false, NULL }, { ".zlogin", false, NULL },
        { ".zlogout", false, NULL }, { ".inputrc", false, NULL }, { ".envrc", false, NULL },
        { ".gitconfig", false, NULL }, { ".npmrc", false, NULL }, { ".mcp.json", false, NULL },
        { ".git/hooks", true, ".git" }, { ".git/config", false, ".git" },
        { ".vscode", true, NULL },   { ".idea", true, NULL }, { ".zed", true, NULL },
        { ".cursor", true, NULL },   { ".claude", true, NULL }, { ".config/fish", true, ".config" },
        { ".config/nvim", true, ".config" }, { ".vim", true, NULL }, { ".emacs.d", true, NULL },
};

/* System directories never made writable (the system stays read-only). */
static const char *const system_dirs[] = {
        "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot",
        "/proc", "/sys", "/dev", "/run", "/var/lib", "/var/log", "/var/spool", "/var/cache",
};

struct sb_state {
        char *args[SB_ARGS_MAX];
        size_t nargs;
        bool overflow;
        char cwd[PATH_MAX];
        char *roots[SB_PATHS_MAX + 1];           /* writable: cwd first, then --write (real paths) */
        size_t nroots;
        const char *write_arg[SB_PATHS_MAX], *hide_arg[SB_PATHS_MAX];
        size_t nwrite, nhide;
        char *hidden[SB_PATHS_MAX + 64];          /* real paths hidden */
        size_t nhidden;
        struct {
                char *path;
                bool dir;
        } ph[SB_PLACEHOLDERS_MAX];                /* placeholders bwrap creates */
        size_t nph;
        const char *bwrap;
        const char *client;                       /* --client, or NULL */
        const char *allow[SB_ALLOW_MAX];          /* --allow-host: narrows the client's egress.allow */
        size_t nallow;
        char cmdline[257];                        /* CMD for the broker's status and audit (display) */
        int seccomp_fd, info_rd, info_wr, block_rd, block_wr;
        int broker_conn;                          /* sandbox.sock: open for the sandbox's life */
        pid_t sandbox_pid;                        /* CMD's pid (the sandbox's init's, our namespace) */
};

static int add(struct sb_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add(struct sb_state *st, const char *fmt, ...) {
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

static void sb_free(struct sb_state *st) {
        for (size_t i = 0; i < st->nargs; i++)
                free(st->args[i]);
        st->nargs = 0;
        for (size_t i = 0; i < st->nroots; i++)
                free(st->roots[i]);
        st->nroots = 0;
        for (size_t i = 0; i < st->nhidden; i++)
                free(st->hidden[i]);
        st->nhidden = 0;
        for (size_t i = 0; i < st->nph; i++)
                free(st->ph[i].path);
        st->nph = 0;
        int *fds[] = { &st->seccomp_fd, &st->info_rd, &st->info_wr, &st->block_rd, &st->block_wr, &st->broker_conn };
        for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
                if (*fds[i] >= 0) {
                        close(*fds[i]);
                        *fds[i] = -1;
                }
}

/* Is p equal to dir or below it? */
static bool under(const char *p, const char *dir) {
        size_t n = strlen(dir);

        if (n == 1 && dir[0] == '/')
                return true;
        return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* ---- bubblewrap ---------------------------------------------------------- */

/* The bwrap we run: $CREDBROKER_BWRAP (tests) or /usr/bin/bwrap, never a
 * PATH lookup.  It must be a root-owned regular executable that only root
 * may change: CMD's whole confinement is its work. */
static int find_bwrap(struct sb_state *st) {
        const char *p = secure_getenv("CREDBROKER_BWRAP");
        struct stat sb;

        st->bwrap = p && *p ? p : "/usr/bin/bwrap";
        if (st->bwrap[0] != '/')
                return -cli_usage("sandbox: CREDBROKER_BWRAP must be an absolute path, not '%.256s'", st->bwrap);
        if (stat(st->bwrap, &sb) < 0)
                return -cli_fail(-ENOENT, "sandbox: bubblewrap not found at %s (%s): install it (apt-get install "
                                          "bubblewrap); CMD was not run unconfined", st->bwrap, strerror(errno));
        if (!S_ISREG(sb.st_mode) || !(sb.st_mode & 0111))
                return -cli_fail(-EACCES, "sandbox: %s is not an executable file; CMD was not run", st->bwrap);
        if (sb.st_uid != 0 || (sb.st_mode & 022))
                return -cli_fail(-EPERM, "sandbox: %s must be owned by root and writable by root only (owner %u, "
                                         "mode %04o); CMD was not run", st->bwrap, (unsigned)sb.st_uid,
                                 (unsigned)(sb.st_mode & 07777));
        return 0;
}

/* ---- seccomp ------------------------------------------------------------- */

/* Refused with EPERM (a program sees a clean error, not a kill).  Each
 * line's why: docs/sandbox.md. */
static const char *const denied_calls[] = {
        /* reading or steering other processes */
        "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
        /* the kernel keyring (other sessions' secrets live there) */
        "keyctl", "add_key", "request_key",
        /* kernel attack surface, observation of others */
        "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
        "fanotify_init", "lookup_dcookie", "syslog", "vhangup", "iopl", "ioperm", "acct", "quotactl",
        "open_by_handle_at", "name_to_handle_at", "swapon", "swapoff", "reboot", "personality",
        /* the mount family */
        "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig",
        "fsmount", "fspick", "mount_setattr",
        /* kernel modules, kexec */
        "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
        /* the clock */
        "clock_settime", "clock_adjtime", "settimeofday", "adjtimex", "stime",
};

static int seccomp_filter(struct sb_state *st) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        const uint32_t deny = SCMP_ACT_ERRNO(EPERM);
        int r = ctx ? 0 : -ENOMEM, fd = -1;

        /* Another ABI's system calls (i386 through int 0x80, x32) would
         * dodge rules written for this one's numbers: they kill. */
        if (r == 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        for (size_t i = 0; r == 0 && i < sizeof(denied_calls) / sizeof(denied_calls[0]); i++) {
                int nr = seccomp_syscall_resolve_name(denied_calls[i]);
                if (nr == __NR_SCMP_ERROR)
                        continue; /* not a call of this architecture */
                r = seccomp_rule_add(ctx, deny, nr, 0);
        }
        /* socket(): only AF_INET and AF_INET6 (not raw, not packet) and
         * NETLINK_ROUTE in the sandbox's own network namespace.  No new
         * AF_UNIX socket: a host Unix socket (tools.sock, docker, dbus,
         * ssh-agent, an abstract one) cannot be reached.  socketpair()
         * stays: its two ends reach nothing else.  The family is an int
         * but the filter sees 64 bits: anything >= AF_MAX (upper bits set)
         * is refused as a whole. */
        for (int fam = 0; r == 0 && fam < AF_MAX; fam++)
                if (fam != AF_INET && fam != AF_INET6 && fam != AF_NETLINK)
                        r = seccomp_rule_add(ctx, deny, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)fam));
        if (r == 0)
                r = seccomp_rule_add(ctx, deny, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_GE, (scmp_datum_t)AF_MAX));
        static const int bad_types[] = { SOCK_RAW, SOCK_RDM, SOCK_PACKET };
        for (int k = 0; r == 0 && k < 2; k++)
                for (size_t t = 0; r == 0 && t < sizeof(bad_types) / sizeof(bad_types[0]); t++)
                        r = seccomp_rule_add(ctx, deny, SCMP_SYS(socket), 2,
                                             SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)(k ? AF_INET6 : AF_INET)),
                                             SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, (scmp_datum_t)bad_types[t]));
        if (r == 0)
                r = seccomp_rule_add(ctx, deny, SCMP_SYS(socket), 2, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)AF_NETLINK),
                                     SCMP_A2(SCMP_CMP_NE, (scmp_datum_t)NETLINK_ROUTE));
        /* Typing into a terminal (TIOCSTI) or the console (TIOCLINUX):
         * the command is 32 bits to the kernel, so only those are compared. */
        if (r == 0)
                r = seccomp_rule_add(ctx, deny, SCMP_SYS(ioctl), 1,
                                     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, (scmp_datum_t)TIOCSTI));
        if (r == 0)
                r = seccomp_rule_add(ctx, deny, SCMP_SYS(ioctl), 1,
                                     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, (scmp_datum_t)TIOCLINUX));
        if (r == 0) {
                /* bwrap reads the BPF program from this descriptor (it
                 * inherits it: no close-on-exec). */
                fd = memfd_create("credbroker-seccomp", MFD_ALLOW_SEALING);
                if (fd < 0)
                        r = -errno;
        }
        if (r == 0)
                r = seccomp_export_bpf(ctx, fd);
        if (r == 0 && lseek(fd, 0, SEEK_SET) < 0)
                r = -errno;
        if (r == 0)
                (void)fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
        seccomp_release(ctx);
        if (r < 0) {
                if (fd >= 0)
                        close(fd);
                return -cli_fail(r, "sandbox: cannot build the seccomp filter (libseccomp): %s", strerror(-r));
        }
        st->seccomp_fd = fd;
        return 0;
}

/* ---- the file system view ------------------------------------------------ */

static bool is_system_dir(const char *p) {
        if (strcmp(p, "/") == 0)
                return true;
        for (size_t i = 0; i < sizeof(system_dirs) / sizeof(system_dirs[0]); i++)
                if (under(p, system_dirs[i]))
                        return true;
        return false;
}

static int add_root(struct sb_state *st, const char *arg, bool is_cwd) {
        char rp[PATH_MAX];

        if (!realpath(arg, rp))
                return -cli_fail(-errno, "sandbox: %s %.256s: %s", is_cwd ? "working directory" : "--write", arg,
                                 strerror(errno));
        if (is_system_dir(rp))
                return -cli_usage("sandbox: %s %s is a system directory, which stays read-only; %s",
                                  is_cwd ? "the working directory" : "--write", rp,
                                  is_cwd ? "cd to a project directory first" : "give a directory of your own");
        for (size_t i = 0; i < st->nroots; i++)
                if (strcmp(st->roots[i], rp) == 0)
                        return 0;
        st->roots[st->nroots] = strdup(rp);
        if (!st->roots[st->nroots])
                return -cli_fail(-ENOMEM, "out of memory");
        st->nroots++;
        return 0;
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
static bool may_create_in(const char *path) {
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

/* The write-denied entries of one writable root. */
/* The directories that hold protected entries (".git", ".config") are
 * pinned first: an existing one is bound over itself, which makes it a
 * mount point that cannot be renamed or removed (else CMD renames .git
 * away, copies it back writable and plants a hook the user's next git
 * command runs); a .git file (a worktree's pointer) is bound read-only; a
 * missing one, where CMD could create it, gets a read-only placeholder
 * directory (a repository, or a .config, cannot be made there: git init
 * in a directory that is not a repository fails in the sandbox).  A
 * symlinked one is left as it is (docs/sandbox.md). */
static int pin_parent(struct sb_state *st, const char *root, const char *name) {
        char p[PATH_MAX];
        struct stat sb;
        int r;

        if (snprintf(p, sizeof(p), "%s/%s", root, name) >= (int)sizeof(p))
                return 0;
        if (lstat(p, &sb) == 0) {
                if (S_ISDIR(sb.st_mode))
                        return (r = add(st, "--bind")) < 0 || (r = add(st, "%s", p)) < 0 || (r = add(st, "%s", p)) < 0
                                       ? r
                                       : 0;
                if (S_ISREG(sb.st_mode))
                        return (r = add(st, "--ro-bind")) < 0 || (r = add(st, "%s", p)) < 0 ||
                                               (r = add(st, "%s", p)) < 0
                                       ? r
                                       : 0;
                return 0;
        }
        if (errno != ENOENT || !may_create_in(p))
                return 0;
        if (st->nph >= SB_PLACEHOLDERS_MAX)
                return -cli_usage("sandbox: too many writable directories");
        st->ph[st->nph].path = strdup(p);
        if (!st->ph[st->nph].path)
                return -cli_fail(-ENOMEM, "out of memory");
        st->ph[st->nph].dir = true;
        st->nph++;
        if ((r = add(st, "--tmpfs")) < 0 || (r = add(st, "%s", p)) < 0 || (r = add(st, "--remount-ro")) < 0 ||
            (r = add(st, "%s", p)) < 0)
                return r;
        return 0;
}

static int deny_root(struct sb_state *st, const char *root) {
        int r0;

        if ((r0 = pin_parent(st, root, ".git")) < 0 || (r0 = pin_parent(st, root, ".config")) < 0)
                return r0;
        for (size_t i = 0; i < sizeof(deny_write) / sizeof(deny_write[0]); i++) {
                const struct deny *d = &deny_write[i];
                char p[PATH_MAX], need[PATH_MAX], rp[PATH_MAX];
                struct stat sb;
                int r;

                if (snprintf(p, sizeof(p), "%s/%s", root, d->name) >= (int)sizeof(p))
                        continue;
                if (d->needs_dir) {
                        snprintf(need, sizeof(need), "%s/%s", root, d->needs_dir);
                        if (lstat(need, &sb) < 0 || !S_ISDIR(sb.st_mode))
                                continue;
                }
                if (realpath(p, rp)) {
                        /* It exists (a symlink: what it names is made
                         * read-only, wherever it is). */
                        if ((r = add(st, "--ro-bind")) < 0 || (r = add(st, "%s", rp)) < 0 || (r = add(st, "%s", rp)) < 0)
                                return r;
                        continue;
                }
                if (errno != ENOENT || lstat(p, &sb) == 0)
                        continue; /* a dangling symlink: bwrap would follow it out; left alone (docs) */
                if (!may_create_in(p))
                        continue; /* CMD cannot create it either (only our ids are mapped inside) */
                if (st->nph >= SB_PLACEHOLDERS_MAX)
                        return -cli_usage("sandbox: too many writable directories");
                st->ph[st->nph].path = strdup(p);
                if (!st->ph[st->nph].path)
                        return -cli_fail(-ENOMEM, "out of memory");
                st->ph[st->nph].dir = d->dir;
                st->nph++;
                if (d->dir)
                        r = add(st, "--tmpfs");
                else
                        r = add(st, "--ro-bind");
                if (r < 0 || (!d->dir && (r = add(st, "/dev/null")) < 0) || (r = add(st, "%s", p)) < 0)
                        return r;
                if (d->dir && ((r = add(st, "--remount-ro")) < 0 || (r = add(st, "%s", p)) < 0))
                        return r;
        }
        return 0;
}

/* Remove the placeholders bwrap created that are still empty ones. */
static void placeholders_remove(struct sb_state *st) {
        for (size_t i = st->nph; i-- > 0;) {
                struct stat sb;

                if (lstat(st->ph[i].path, &sb) < 0)
                        continue;
                if (st->ph[i].dir && S_ISDIR(sb.st_mode))
                        (void)rmdir(st->ph[i].path); /* fails unless empty */
                else if (!st->ph[i].dir && S_ISREG(sb.st_mode) && sb.st_size == 0)
                        (void)unlink(st->ph[i].path);
        }
}

static int build_args(struct sb_state *st, char **cmd) {
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
        if ((r = add(st, "%s", st->bwrap)) < 0)
                return r;
        for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
                if ((r = add(st, "%s", fixed[i])) < 0)
                        return r;
        /* Writable: the working directory and --write, then what in them
         * stays read-only, then what is hidden (over both). */
        for (size_t i = 0; i < st->nroots; i++)
                if ((r = add(st, "--bind")) < 0 || (r = add(st, "%s", st->roots[i])) < 0 ||
                    (r = add(st, "%s", st->roots[i])) < 0)
                        return r;
        for (size_t i = 0; i < st->nroots; i++) {
                struct stat sb;
                if (stat(st->roots[i], &sb) == 0 && S_ISDIR(sb.st_mode) && (r = deny_root(st, st->roots[i])) < 0)
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
                        if (under(st->roots[k], st->hidden[i]))
                                return -cli_usage("sandbox: %s %s is inside the hidden %s",
                                                  k == 0 ? "the working directory" : "--write", st->roots[k],
                                                  st->hidden[i]);
                if (stat(st->hidden[i], &sb) < 0)
                        continue;
                if (S_ISDIR(sb.st_mode)) {
                        if ((r = add(st, "--tmpfs")) < 0 || (r = add(st, "%s", st->hidden[i])) < 0 ||
                            (r = add(st, "--remount-ro")) < 0 || (r = add(st, "%s", st->hidden[i])) < 0)
                                return r;
                } else if ((r = add(st, "--ro-bind")) < 0 || (r = add(st, "/dev/null")) < 0 ||
                           (r = add(st, "%s", st->hidden[i])) < 0) {
                        return r;
                }
        }
        /* Every proxy-aware program goes to the broker's listener, which
         * is the only thing its network namespace holds; local base URLs
         * (the --proxy presets) are reached directly. */
        static const char *const proxy_vars[] = { "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy",
                                                  "https_proxy", "all_proxy" };
        for (size_t i = 0; i < sizeof(proxy_vars) / sizeof(proxy_vars[0]); i++)
                if ((r = add(st, "--setenv")) < 0 || (r = add(st, "%s", proxy_vars[i])) < 0 ||
                    (r = add(st, "%s", SB_URL)) < 0)
                        return r;
        if ((r = add(st, "--setenv")) < 0 || (r = add(st, "NO_PROXY")) < 0 || (r = add(st, "127.0.0.1,localhost,::1")) < 0 ||
            (r = add(st, "--setenv")) < 0 || (r = add(st, "no_proxy")) < 0 || (r = add(st, "127.0.0.1,localhost,::1")) < 0)
                return r;
        /* The broker's sockets are not the sandbox's business. */
        static const char *const unset[] = { "CREDBROKER_SOCKET", "CREDBROKER_ADMIN_SOCKET", "SSH_AUTH_SOCK",
                                             "DBUS_SESSION_BUS_ADDRESS" };
        for (size_t i = 0; i < sizeof(unset) / sizeof(unset[0]); i++)
                if ((r = add(st, "--unsetenv")) < 0 || (r = add(st, "%s", unset[i])) < 0)
                        return r;
        if ((r = add(st, "--chdir")) < 0 || (r = add(st, "%s", st->cwd)) < 0 ||
            (r = add(st, "--seccomp")) < 0 || (r = add(st, "%d", st->seccomp_fd)) < 0 ||
            (r = add(st, "--info-fd")) < 0 || (r = add(st, "%d", st->info_wr)) < 0 ||
            (r = add(st, "--block-fd")) < 0 || (r = add(st, "%d", st->block_rd)) < 0 || (r = add(st, "--")) < 0)
                return r;
        for (size_t i = 0; cmd[i]; i++)
                if ((r = add(st, "%s", cmd[i])) < 0)
                        return r;
        return 0;
}

/* ---- exec's hooks ---------------------------------------------------------- */

static int hook_wrap(void *ud, char **cmd, char ***ret_argv) {
        struct sb_state *st = ud;
        int p[2], r;

        if ((r = seccomp_filter(st)) < 0)
                return r;
        /* bwrap's ends are inherited (no close-on-exec), ours are not. */
        if (pipe2(p, O_CLOEXEC) < 0)
                return -cli_fail(-errno, "sandbox: pipe: %s", strerror(errno));
        st->info_rd = p[0];
        st->info_wr = p[1];
        if (pipe2(p, O_CLOEXEC) < 0)
                return -cli_fail(-errno, "sandbox: pipe: %s", strerror(errno));
        st->block_rd = p[0];
        st->block_wr = p[1];
        /* Nothing else we inherited reaches CMD: an open directory or
         * socket would be a way around the whole view (openat on a
         * directory outside it, a connected socket to a host service). */
        if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
                return -cli_fail(-errno, "sandbox: close_range: %s (Linux 5.11 needed)", strerror(errno));
        if (fcntl(st->info_wr, F_SETFD, 0) < 0 || fcntl(st->block_rd, F_SETFD, 0) < 0 ||
            fcntl(st->seccomp_fd, F_SETFD, 0) < 0)
                return -cli_fail(-errno, "sandbox: fcntl: %s", strerror(errno));
        /* Every failure below has been said; r is an exit code negated. */
        if ((r = build_args(st, cmd)) < 0)
                return r;
        *ret_argv = st->args;
        return 0;
}

/* Read bwrap's --info-fd: {"child-pid": N, ...} once the namespaces exist.
 * EOF before it: bwrap failed (its own message went to stderr). */
static int read_info(struct sb_state *st) {
        char buf[SB_INFO_MAX + 1];
        size_t n = 0;
        json_t *o, *pid;

        for (;;) {
                struct pollfd pf = { .fd = st->info_rd, .events = POLLIN };
                int k = poll(&pf, 1, SB_INFO_TIMEOUT_MS);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return -cli_fail(-ETIMEDOUT, "sandbox: bubblewrap did not set the sandbox up within %d s; "
                                                     "CMD was not run", SB_INFO_TIMEOUT_MS / 1000);
                ssize_t m = read(st->info_rd, buf + n, SB_INFO_MAX - n);
                if (m < 0 && errno == EINTR)
                        continue;
                if (m <= 0)
                        break;
                n += (size_t)m;
                buf[n] = '\0';
                if (memchr(buf, '}', n) || n == SB_INFO_MAX)
                        break;
        }
        if (n == 0) {
                fprintf(stderr, "credbroker: sandbox: bubblewrap could not set up the sandbox (its reason "
                                "follows; unprivileged user namespaces may be disabled); CMD was not run\n");
                return -SB_EXIT_SETUP;
        }
        buf[n] = '\0';
        o = json_loadb(buf, n, JSON_DISABLE_EOF_CHECK, NULL);
        pid = o ? json_object_get(o, "child-pid") : NULL;
        if (!json_is_integer(pid) || json_integer_value(pid) <= 1) {
                json_decref(o);
                fprintf(stderr, "credbroker: sandbox: bubblewrap's --info-fd said no child pid; CMD was not run\n");
                return -SB_EXIT_SETUP;
        }
        st->sandbox_pid = (pid_t)json_integer_value(pid);
        json_decref(o);
        return 0;
}

/* ---- the broker's listener inside the sandbox -------------------------------- */

/* A child enters the sandbox's user and network namespaces (by pidfd: the
 * process bwrap holds on --block-fd, so the pid cannot have been reused),
 * makes the listening socket on 127.0.0.1:SB_PORT there and sends it back.
 * Only the launcher's own forked child ever runs in those namespaces
 * before CMD; nothing of the sandbox runs here. */
static int make_listener(pid_t spid, int *ret_fd) {
        int sv[2], fd = -1, st = 0;
        pid_t c;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -cli_fail(-errno, "sandbox: socketpair: %s", strerror(errno));
        c = fork();
        if (c < 0) {
                close(sv[0]);
                close(sv[1]);
                return -cli_fail(-errno, "sandbox: fork: %s", strerror(errno));
        }
        if (c == 0) {
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(SB_PORT),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                char nsp[64];
                const char *step = "pidfd_open";
                int pfd = (int)syscall(SYS_pidfd_open, spid, 0), nfd = -1, ufd = -1, l;
                snprintf(nsp, sizeof(nsp), "/proc/%d/ns/net", (int)spid);
                /* The network namespace, then the user namespace that owns
                 * it (bwrap's outer one: with --disable-userns the process
                 * itself sits in a nested one, which holds no power over
                 * that network namespace); the pidfd shows the pid was
                 * still bwrap's child when the namespace was opened. */
                if (pfd >= 0 && (step = "open ns/net", (nfd = open(nsp, O_RDONLY | O_CLOEXEC)) >= 0) &&
                    (step = "pidfd", poll(&(struct pollfd){ .fd = pfd, .events = POLLIN }, 1, 0) == 0) &&
                    (step = "NS_GET_USERNS", (ufd = ioctl(nfd, NS_GET_USERNS)) >= 0) &&
                    (step = "setns user", getuid() == 0 || setns(ufd, CLONE_NEWUSER) == 0) &&
                    (step = "setns net", setns(nfd, CLONE_NEWNET) == 0)) {
                        {
                                /* bwrap brings lo up (and gives it
                                 * 127.0.0.1) in the sandbox's child, which
                                 * may not have done so yet: --info-fd is
                                 * written at once.  Doing it from here
                                 * makes bwrap's own RTM_NEWADDR fail, so a
                                 * bind that finds no address yet is retried
                                 * for up to a second instead. */
                                int br = -1;
                                step = "socket";
                                l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                                for (int i = 0; l >= 0 && i < 1000; i++) {
                                        br = bind(l, (struct sockaddr *)&a, sizeof(a));
                                        if (br == 0 || errno != EADDRNOTAVAIL)
                                                break;
                                        usleep(1000);
                                }
                                if (l >= 0 && (step = "bind", br == 0) &&
                                    (step = "listen", listen(l, 128) == 0)) {
                                        union {
                                                struct cmsghdr align;
                                                char b[CMSG_SPACE(sizeof(int))];
                                        } ctl = { 0 };
                                        char one = 'L';
                                        struct iovec iov = { .iov_base = &one, .iov_len = 1 };
                                        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                                                            .msg_controllen = sizeof(ctl.b) };
                                        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
                                        cm->cmsg_level = SOL_SOCKET;
                                        cm->cmsg_type = SCM_RIGHTS;
                                        cm->cmsg_len = CMSG_LEN(sizeof(int));
                                        memcpy(CMSG_DATA(cm), &l, sizeof(int));
                                        _exit(sendmsg(sv[1], &m, MSG_NOSIGNAL) == 1 ? 0 : 3);
                                }
                        }
                }
                dprintf(STDERR_FILENO, "credbroker: sandbox: the listener inside the sandbox: %s: %s\n", step,
                        strerror(errno));
                _exit(2);
        }
        close(sv[1]);
        {
                union {
                        struct cmsghdr align;
                        char b[CMSG_SPACE(sizeof(int))];
                } ctl;
                char b;
                struct iovec iov = { .iov_base = &b, .iov_len = 1 };
                struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                                    .msg_controllen = sizeof(ctl.b) };
                if (recvmsg(sv[0], &m, MSG_CMSG_CLOEXEC) == 1) {
                        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
                        if (cm && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int)))
                                memcpy(&fd, CMSG_DATA(cm), sizeof(int));
                }
        }
        close(sv[0]);
        while (waitpid(c, &st, 0) < 0 && errno == EINTR)
                ;
        if (fd < 0)
                return -cli_fail(-EIO, "sandbox: could not make the broker's listener inside the sandbox");
        *ret_fd = fd;
        return 0;
}

/* May uid serve sandbox.sock?  The rule the library applies to tools.sock:
 * root, our own uid, or the broker's (--broker-uid, $CREDBROKER_BROKER_UID,
 * else the system user "credbroker"). */
static bool server_uid_ok(uid_t uid) {
        const char *bu = secure_getenv("CREDBROKER_BROKER_UID");
        struct passwd *pw;

        if (uid == 0 || uid == getuid())
                return true;
        if (bu && *bu)
                return strtoul(bu, NULL, 10) == (unsigned long)uid;
        pw = getpwnam("credbroker");
        return pw && pw->pw_uid == uid;
}

/* Hand the listener to the broker on sandbox.sock (next to tools.sock) and
 * keep the connection: the sandbox lives as long as it does. */
static int hand_over(struct sb_state *st, int lfd) {
        const char *ts = cli_socket ? cli_socket : secure_getenv("CREDBROKER_SOCKET");
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        char path[sizeof(a.sun_path)], reply[SB_REPLY_MAX + 1], *line = NULL;
        const char *slash;
        struct ucred uc;
        socklen_t ul = sizeof(uc);
        json_t *o = NULL;
        size_t n = 0;
        int c = -1, r;

        if (!ts || !*ts)
                ts = "/run/credbroker/tools.sock";
        slash = strrchr(ts, '/');
        if (!slash || (size_t)(slash - ts) + sizeof("/sandbox.sock") > sizeof(path))
                return -cli_usage("sandbox: the broker's socket path %.256s has no usable directory", ts);
        snprintf(path, sizeof(path), "%.*s/sandbox.sock", (int)(slash - ts), ts);
        strcpy(a.sun_path, path);
        c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0) {
                r = -cli_fail(-ECONNREFUSED, "sandbox: cannot reach the broker at %s: %s", path, strerror(errno));
                goto out;
        }
        if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0 || !server_uid_ok(uc.uid)) {
                r = -cli_fail(-EPERM, "sandbox: %s is served by uid %u, not the broker: refused", path,
                              (unsigned)uc.uid);
                goto out;
        }
        o = json_pack("{s:s, s:s}", "client", st->client ? st->client : "", "cmd", st->cmdline);
        if (o && st->nallow) {
                json_t *arr = json_array();
                for (size_t i = 0; arr && i < st->nallow; i++)
                        json_array_append_new(arr, json_string(st->allow[i]));
                json_object_set_new(o, "allow", arr);
        }
        line = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        o = NULL;
        if (!line) {
                r = -cli_fail(-ENOMEM, "out of memory");
                goto out;
        }
        {
                size_t ll = strlen(line);
                char *l2 = realloc(line, ll + 2);
                if (!l2) {
                        r = -cli_fail(-ENOMEM, "out of memory");
                        goto out;
                }
                line = l2;
                line[ll] = '\n';
                line[ll + 1] = '\0';
                union {
                        struct cmsghdr align;
                        char b[CMSG_SPACE(sizeof(int))];
                } ctl = { 0 };
                struct iovec iov = { .iov_base = line, .iov_len = ll + 1 };
                struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                                    .msg_controllen = sizeof(ctl.b) };
                struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(cm), &lfd, sizeof(int));
                if (sendmsg(c, &m, MSG_NOSIGNAL) != (ssize_t)(ll + 1)) {
                        r = -cli_fail(-errno, "sandbox: cannot send to the broker: %s", strerror(errno));
                        goto out;
                }
        }
        while (n < SB_REPLY_MAX && !memchr(reply, '\n', n)) {
                struct pollfd pf = { .fd = c, .events = POLLIN };
                int k = poll(&pf, 1, SB_REPLY_TIMEOUT_MS);
                if (k < 0 && errno == EINTR)
                        continue;
                ssize_t m = k > 0 ? read(c, reply + n, SB_REPLY_MAX - n) : -1;
                if (m <= 0) {
                        r = -cli_fail(-EIO, "sandbox: the broker did not answer the hand-over");
                        goto out;
                }
                n += (size_t)m;
        }
        reply[n] = '\0';
        o = json_loadb(reply, n, JSON_DISABLE_EOF_CHECK, NULL);
        const char *id = NULL, *msg = NULL;
        if (o && json_unpack(o, "{s:s}", "sandbox", &id) == 0) {
                st->broker_conn = c;
                c = -1;
                r = 0;
        } else if (o && json_unpack(o, "{s:s}", "message", &msg) == 0) {
                r = -cli_fail(-EPERM, "sandbox: the broker refused the sandbox: %.512s", msg);
        } else {
                r = -cli_fail(-EPROTO, "sandbox: the broker's answer is not understood");
        }
out:
        json_decref(o);
        free(line);
        if (c >= 0)
                close(c);
        return r;
}

static int hook_started(void *ud, pid_t pid) {
        struct sb_state *st = ud;
        int r;

        (void)pid;
        /* bwrap's ends: ours closed, so its exit is an EOF here. */
        close(st->info_wr);
        close(st->block_rd);
        close(st->seccomp_fd);
        st->info_wr = st->block_rd = st->seccomp_fd = -1;
        if ((r = read_info(st)) < 0)
                return r;
        /* The sandbox exists, CMD waits: its only way out is made now. */
        {
                int lfd = -1;
                if ((r = make_listener(st->sandbox_pid, &lfd)) == 0) {
                        r = hand_over(st, lfd);
                        close(lfd); /* the broker holds its own copy */
                }
                if (r < 0) {
                        /* Never let bwrap read EOF on --block-fd: it would
                         * go on and run CMD.  The waiting process dies
                         * first (our uid owns its user namespace). */
                        int pfd = (int)syscall(SYS_pidfd_open, st->sandbox_pid, 0);
                        if (pfd >= 0) {
                                (void)syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0);
                                close(pfd);
                        }
                        return r;
                }
        }
        if (write(st->block_wr, "x", 1) != 1)
                return -cli_fail(-errno, "sandbox: cannot release the command: %s", strerror(errno));
        close(st->block_wr);
        st->block_wr = -1;
        return 0;
}

int cmd_sandbox(int argc, char **argv) {
        static const char usage[] =
                "usage: credbroker sandbox [--client NAME] [--write PATH]... [--hide PATH]...\n"
                "                          [--proxy SECRET[=openai|anthropic|env:PREFIX]]... [--env VAR=SECRET]...\n"
                "                          [--allow-host HOST[:PORT]]...\n"
                "                          [--] CMD [ARGS...]\n"
                "  Run CMD under bubblewrap (/usr/bin/bwrap): new user, mount, pid, ipc, uts and network\n"
                "  namespaces (only lo inside: no network), the system read-only, writable only the\n"
                "  working directory, each --write PATH and a private /tmp; credentials of common tools,\n"
                "  shell history and the broker's directories hidden (and each --hide PATH); shell\n"
                "  start-up files, .git/hooks, .git/config, .mcp.json and editor settings never writable,\n"
                "  even in the working directory; a new session (no TIOCSTI), no new privileges, a\n"
                "  seccomp filter (ptrace, keyctl, bpf, mount, modules, clock, raw/packet and Unix\n"
                "  sockets, ... refused).  docs/sandbox.md has every rule and why.\n"
                "  The only way out: credbrokerd serves its proxy on 127.0.0.1:8411 inside the sandbox\n"
                "  (a listener made in the sandbox's network namespace and handed to the broker over\n"
                "  sandbox.sock, next to tools.sock); HTTP_PROXY, HTTPS_PROXY and ALL_PROXY point at it.\n"
                "  The broker must find a client of its policy selecting you (--client NAME: that one).\n"
                "  --proxy: as exec (a \"proxy\" grant); its base URL is that listener.\n"
                "  --env VAR=SECRET: as exec (a \"redeem\" grant; CMD's output is masked).\n"
                "  HTTPS without a credential: CONNECT tunnels to the hosts of the client's\n"
                "  \"egress\": {\"allow\": [...]} (credbroker-policy(5)); the TLS server name must be the\n"
                "  CONNECTed host; --allow-host HOST[:PORT] narrows that list for this sandbox.\n"
                "  Not yet in this build: plain-HTTP forwarding, the outbound leak guard (docs/sandbox.md).\n"
                "  Exit status: CMD's; 125 if the sandbox could not be set up (CMD did not run);\n"
                "  credbroker's own codes before that.\n";
        static const struct option opts[] = {
                { "write", required_argument, NULL, 'w' },   { "hide", required_argument, NULL, 'H' },
                { "env", required_argument, NULL, 'e' },     { "proxy", required_argument, NULL, 'p' },
                { "client", required_argument, NULL, 'c' },  { "allow-host", required_argument, NULL, 'a' },
                { "help", no_argument, NULL, 'h' },          {},
        };
        struct sb_state st = { .seccomp_fd = -1, .info_rd = -1, .info_wr = -1, .block_rd = -1, .block_wr = -1,
                               .broker_conn = -1 };
        struct cli_exec_hooks hooks = { .wrap = hook_wrap, .started = hook_started, .proxy_url = SB_URL, .ud = &st };
        char **xargv = NULL;
        size_t xn = 0;
        int ch, r;

        xargv = calloc(2 * (size_t)argc + 2, sizeof(char *)); /* --env=X becomes two */
        if (!xargv)
                return cli_fail(-ENOMEM, "out of memory");
        xargv[xn++] = "sandbox";
        optind = 1;
        opterr = 0;
        while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
                switch (ch) {
                case 'w':
                case 'H':
                        if ((ch == 'w' ? st.nwrite : st.nhide) >= SB_PATHS_MAX) {
                                r = cli_usage("sandbox: at most %d --write and %d --hide", SB_PATHS_MAX, SB_PATHS_MAX);
                                goto out;
                        }
                        if (ch == 'w')
                                st.write_arg[st.nwrite++] = optarg;
                        else
                                st.hide_arg[st.nhide++] = optarg;
                        break;
                case 'e':
                case 'p':
                        xargv[xn++] = ch == 'e' ? "--env" : "--proxy";
                        xargv[xn++] = optarg;
                        break;
                case 'c':
                        if (strlen(optarg) > 64) {
                                r = cli_usage("sandbox: --client: a client name has at most 64 characters");
                                goto out;
                        }
                        st.client = optarg;
                        break;
                case 'a':
                        if (st.nallow >= SB_ALLOW_MAX || strlen(optarg) > 260 || !*optarg) {
                                r = cli_usage("sandbox: --allow-host takes HOST[:PORT] (at most %d of them)",
                                              SB_ALLOW_MAX);
                                goto out;
                        }
                        st.allow[st.nallow++] = optarg;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        r = CB_EXIT_OK;
                        goto out;
                default:
                        r = cli_usage("sandbox: unknown option '%.64s' (sandbox --help)", argv[optind - 1]);
                        goto out;
                }
        }
        if (optind >= argc) {
                r = cli_usage("sandbox needs a command after the options (sandbox -- CMD ARGS...)");
                goto out;
        }
        if ((r = find_bwrap(&st)) < 0) {
                r = -r;
                goto out;
        }
        if (!getcwd(st.cwd, sizeof(st.cwd))) {
                r = cli_fail(-errno, "sandbox: getcwd: %s", strerror(errno));
                goto out;
        }
        if ((r = add_root(&st, st.cwd, true)) < 0) {
                r = -r;
                goto out;
        }
        snprintf(st.cwd, sizeof(st.cwd), "%s", st.roots[0]);
        for (size_t i = 0; i < st.nwrite; i++)
                if ((r = add_root(&st, st.write_arg[i], false)) < 0) {
                        r = -r;
                        goto out;
                }
        xargv[xn++] = "--";
        for (int i = optind; i < argc; i++) {
                size_t u = strlen(st.cmdline);
                if (u < sizeof(st.cmdline) - 1)
                        snprintf(st.cmdline + u, sizeof(st.cmdline) - u, "%s%s", i > optind ? " " : "", argv[i]);
                xargv[xn++] = argv[i];
        }
        xargv[xn] = NULL;
        r = cli_exec_run((int)xn, xargv, &hooks);
        placeholders_remove(&st);
out:
        sb_free(&st);
        free(xargv);
        return r;
}
