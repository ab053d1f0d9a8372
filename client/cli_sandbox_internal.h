/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Between the files of `credbroker sandbox` (not an API):
 *   cli_sandbox.c          the verb: options, bubblewrap, exec's hooks
 *   cli_sandbox_view.c     the file system view: bwrap's argv
 *   cli_sandbox_gitpaths.c git's hook and configuration paths in the view
 *   cli_sandbox_git.c      git's configuration syntax (the parser)
 *   cli_sandbox_nested.c   nested repositories, checked when CMD ends
 *   cli_sandbox_mount.c    the launcher's own mounts inside the sandbox
 *   cli_sandbox_seccomp.c  the seccomp filter handed to bwrap as BPF
 *   cli_sandbox_broker.c   the broker's listener inside the sandbox and its
 *                          hand-over on sandbox.sock
 * Each function returns 0 or an exit code negated, after printing why.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

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
        char hidden_kind[SB_PATHS_MAX + 64];      /* mounted by us: 'd' a read-only tmpfs, 'f' /dev/null; 0: bwrap */
        size_t nhidden;
        struct {
                char *path;
                bool dir;
                const char *content;              /* a file's: what it holds (NULL: empty; static) */
                size_t root;                      /* its writable root (roots[], root_fd[]) */
                bool ours;                        /* ours to make: mounted by sb_mount_placeholders */
                bool made;                        /* made (by sb_build_args, or sb_placeholders_make) */
                dev_t dev;
                ino_t ino;
        } ph[SB_PLACEHOLDERS_MAX];                /* placeholders: made by us, or another sandbox's */
        size_t nph;
        bool launcher_mounts;                     /* our placeholders mounted by us, not by bwrap */
        int root_fd[SB_PATHS_MAX + 1];            /* each root directory, flock(LOCK_SH) held; -1 */
        const char *bwrap;
        const char *client;                       /* --client, or NULL */
        const char *allow[SB_ALLOW_MAX];          /* --allow-host: narrows the client's egress.allow */
        size_t nallow;
        char cmdline[257];                        /* CMD for the broker's status and audit (display) */
        int seccomp_fd, info_rd, info_wr, block_rd, block_wr;
        int broker_conn;                          /* sandbox.sock: open for the sandbox's life */
        pid_t sandbox_pid;                        /* CMD's pid (the sandbox's init's, our namespace) */
};

/* cli_sandbox_nested.c: once CMD has ended, move aside each nested git
 * directory below a writable root in which something git takes
 * configuration or hooks from changed at or after since
 * (CLOCK_REALTIME_COARSE, taken before CMD started), saying so. */
struct timespec;
int sb_check_nested(struct sb_state *st, const struct timespec *since); /* -1: something left unchecked or unmoved (said) */

/* cli_sandbox_view.c, for the files beside it */
/* Append one of bwrap's arguments (printf-style). */
int sb_arg_add(struct sb_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Is p equal to dir or below it? */
bool sb_path_under(const char *p, const char *dir);
/* Could CMD (only our ids are mapped) create an entry next to path? */
bool sb_may_create_in(const char *path);
/* A missing protected entry p of root k: a read-only placeholder (a file
 * holding content, NULL: empty; or a directory).  *made: false when it
 * appeared meanwhile (then handled as existing). */
struct stat;
int sb_make_placeholder(struct sb_state *st, size_t k, const char *p, bool dir, const char *content, bool *made);
/* Make the placeholder p on disk (marked, O_EXCL-like): -EEXIST if it exists. */
int sb_create_placeholder(const char *p, bool dir, const char *content, struct stat *sb);

/* cli_sandbox_gitpaths.c: core.hooksPath, included configuration and
 * submodules' .git inside root k kept read-only (docs/sandbox.md). */
int sb_deny_git_paths(struct sb_state *st, size_t k);

/* cli_sandbox_view.c */
/* Add arg (the working directory, or a --write) as a writable root, by its
 * real path; a system directory is refused. */
int sb_add_root(struct sb_state *st, const char *arg, bool is_cwd);
/* bwrap's argv for cmd into st->args (namespaces, the view, the
 * environment, the descriptors). */
int sb_build_args(struct sb_state *st, char **cmd);
/* Remove the placeholders that are still empty ones, for each root no
 * other sandbox uses (flock: the last one out removes them). */
void sb_placeholders_remove(struct sb_state *st);

/* Make the placeholders sb_build_args left to make (with launcher mounts:
 * while bwrap sets the sandbox up).  cli_sandbox_view.c */
int sb_placeholders_make(struct sb_state *st);
/* Bind each placeholder we made read-only over itself, then hide each
 * hidden path, inside the sandbox whose init is spid (when
 * st->launcher_mounts), once bwrap has set the sandbox up and waits on
 * --block-fd.  Started by _start (a child: *pid),
 * finished by _wait (its verdict).  cli_sandbox_view.c */
int sb_mount_placeholders_start(struct sb_state *st, pid_t spid, pid_t *ret_child);
int sb_mount_placeholders_wait(pid_t child);

/* cli_sandbox_seccomp.c: the filter's memfd (st->seccomp_fd), empty until
 * sb_seccomp_fill writes the program and seals it, just before CMD is
 * released (bwrap reads it only then; empty, bwrap dies: fail closed). */
int sb_seccomp_filter(struct sb_state *st);
int sb_seccomp_fill(struct sb_state *st);

/* cli_sandbox_broker.c */
/* Make the listener on 127.0.0.1:SB_PORT inside the sandbox whose init is
 * spid (*ret_fd, ours to close). */
int sb_make_listener(pid_t spid, int *ret_fd);
/* Hand listener lfd to the broker on sandbox.sock; the connection is kept
 * in st->broker_conn for the sandbox's life. */
int sb_hand_over(struct sb_state *st, int lfd);
