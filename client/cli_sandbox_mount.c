/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbroker sandbox: the launcher's own mounts inside the sandbox -- its
 * placeholders and the hidden paths -- made with the new mount API once
 * bwrap has set the sandbox up and before CMD is released
 * (docs/sandbox.md, "Start-up cost").
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
#include "cli_sandbox_internal.h"

/* ---- our placeholders, mounted from outside ------------------------------- */

int sb_placeholders_make(struct sb_state *st) {
        for (size_t i = 0; i < st->nph; i++) {
                struct stat sb;
                int r;

                if (!st->ph[i].ours || st->ph[i].made)
                        continue;
                r = sb_create_placeholder(st->ph[i].path, st->ph[i].dir, st->ph[i].content, &sb);
                if (r == -EEXIST) {
                        /* It appeared since we looked: most likely another
                         * sandbox starting in the same directory made it
                         * (we both hold the shared lock).  Protected all
                         * the same -- mounted read-only over itself -- and
                         * removed by the last one out if a placeholder. */
                        if (lstat(st->ph[i].path, &sb) < 0 || !(S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode)))
                                return -cli_fail(-EBUSY, "sandbox: %s appeared while the sandbox was being set up, and "
                                                         "not as a file or directory; CMD was not run",
                                                 st->ph[i].path);
                        st->ph[i].dir = S_ISDIR(sb.st_mode);
                        st->ph[i].made = true; /* removed at exit only if marked and empty */
                        st->ph[i].dev = sb.st_dev;
                        st->ph[i].ino = sb.st_ino;
                        continue;
                }
                if (r < 0)
                        return -cli_fail(r, "sandbox: cannot make the read-only placeholder %s: %s; CMD was not run",
                                         st->ph[i].path, strerror(-r));
                st->ph[i].made = true;
                st->ph[i].dev = sb.st_dev;
                st->ph[i].ino = sb.st_ino;
        }
        return 0;
}

/* In a child: wait until bwrap has finished setting the sandbox up (its
 * init then leaves for the nested user namespace of --disable-userns: the
 * mount tree is final, pivoted, the old root gone; bwrap does that just
 * before it blocks on --block-fd), enter the user namespace that owns the
 * sandbox's namespaces and its mount namespace, and bind each placeholder
 * we made read-only (and nosuid, nodev) over itself: open_tree(CLONE) +
 * mount_setattr + move_mount, no /proc/self/mountinfo to read.  Each
 * placeholder is opened without following a symlink and must still be the
 * inode we made (a swap on the host is refused).  Nothing of the sandbox
 * runs yet (CMD waits on --block-fd): no race with it. */
static int mount_child(const struct sb_state *st, pid_t spid) {
        char nsp[64];
        const char *step = "pidfd_open";
        int pfd = (int)syscall(SYS_pidfd_open, spid, 0), nfd = -1, ufd = -1, mfd = -1;
        struct stat us, cur;

        if (pfd < 0)
                goto fail;
        snprintf(nsp, sizeof(nsp), "/proc/%d/ns/net", (int)spid);
        step = "open ns/net";
        if ((nfd = open(nsp, O_RDONLY | O_CLOEXEC)) < 0)
                goto fail;
        step = "NS_GET_USERNS";
        if ((ufd = ioctl(nfd, NS_GET_USERNS)) < 0 || fstat(ufd, &us) < 0)
                goto fail;
        snprintf(nsp, sizeof(nsp), "/proc/%d/ns/user", (int)spid);
        step = "waiting for bubblewrap's set-up";
        for (int i = 0;; i++) {
                if (poll(&(struct pollfd){ .fd = pfd, .events = POLLIN }, 1, 0) != 0) {
                        errno = ESRCH; /* it ended: bwrap failed (it said why) */
                        goto fail;
                }
                if (stat(nsp, &cur) < 0)
                        goto fail;
                if (cur.st_ino != us.st_ino || cur.st_dev != us.st_dev)
                        break;
                if (i >= SB_INFO_TIMEOUT_MS * 10) {
                        errno = ETIMEDOUT;
                        goto fail;
                }
                (void)nanosleep(&(struct timespec){ .tv_nsec = 100000 }, NULL);
        }
        snprintf(nsp, sizeof(nsp), "/proc/%d/ns/mnt", (int)spid);
        step = "open ns/mnt";
        if ((mfd = open(nsp, O_RDONLY | O_CLOEXEC)) < 0)
                goto fail;
        /* Checked again after the open: still bwrap's child. */
        step = "pidfd";
        if (poll(&(struct pollfd){ .fd = pfd, .events = POLLIN }, 1, 0) != 0) {
                errno = ESRCH;
                goto fail;
        }
        step = "setns user";
        if (getuid() != 0 && setns(ufd, CLONE_NEWUSER) < 0)
                goto fail;
        step = "setns mnt";
        if (setns(mfd, CLONE_NEWNS) < 0)
                goto fail;
        for (size_t i = 0; i < st->nph; i++) {
                struct mount_attr ma = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV };
                struct stat sb;
                int t, m;

                if (!st->ph[i].ours)
                        continue;
                step = st->ph[i].path;
                t = open(st->ph[i].path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (t < 0)
                        goto fail;
                if (fstat(t, &sb) < 0 || sb.st_dev != st->ph[i].dev || sb.st_ino != st->ph[i].ino ||
                    (st->ph[i].dir ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode))) {
                        errno = EBUSY; /* replaced since we made it */
                        goto fail;
                }
                m = (int)syscall(SYS_open_tree, t, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
                if (m < 0 || syscall(SYS_mount_setattr, m, "", AT_EMPTY_PATH, &ma, sizeof(ma)) < 0 ||
                    syscall(SYS_move_mount, m, "", t, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        goto fail;
                close(m);
                close(t);
        }
        /* Then the hidden paths, as bwrap would (after everything else):
         * an empty read-only tmpfs on a directory, the sandbox's /dev/null
         * (nodev: opening it fails) on anything else.  One that the
         * sandbox's view does not have (under its private /tmp) is not
         * there to hide. */
        for (size_t i = 0; i < st->nhidden; i++) {
                struct mount_attr ma = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV };
                struct stat sb;
                bool dir = st->hidden_kind[i] == 'd';
                int t, m, fs;

                if (!st->hidden_kind[i])
                        continue;
                step = st->hidden[i];
                t = open(st->hidden[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (t < 0 && errno == ENOENT)
                        continue;
                if (t < 0 || fstat(t, &sb) < 0)
                        goto fail;
                if (dir != S_ISDIR(sb.st_mode) || S_ISLNK(sb.st_mode)) {
                        errno = EBUSY; /* replaced since we looked */
                        goto fail;
                }
                if (dir) {
                        fs = (int)syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
                        if (fs < 0 || syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "mode", "0755", 0) < 0 ||
                            syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                                goto fail;
                        m = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, ma.attr_set);
                        close(fs);
                } else {
                        m = (int)syscall(SYS_open_tree, AT_FDCWD, "/dev/null", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
                        if (m >= 0 && syscall(SYS_mount_setattr, m, "", AT_EMPTY_PATH, &ma, sizeof(ma)) < 0)
                                goto fail;
                }
                if (m < 0 || syscall(SYS_move_mount, m, "", t, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                        goto fail;
                close(m);
                close(t);
        }
        _exit(0);
fail:
        dprintf(STDERR_FILENO, "credbroker: sandbox: the read-only placeholders inside the sandbox: %s: %s\n", step,
                strerror(errno));
        _exit(2);
}

int sb_mount_placeholders_start(struct sb_state *st, pid_t spid, pid_t *ret_child) {
        bool any = false;
        pid_t c;

        *ret_child = -1;
        for (size_t i = 0; i < st->nph; i++)
                any = any || st->ph[i].ours;
        for (size_t i = 0; i < st->nhidden; i++)
                any = any || st->hidden_kind[i];
        if (!st->launcher_mounts || !any)
                return 0;
        c = fork();
        if (c < 0)
                return -cli_fail(-errno, "sandbox: fork: %s", strerror(errno));
        if (c == 0)
                mount_child(st, spid);
        *ret_child = c;
        return 0;
}

int sb_mount_placeholders_wait(pid_t child) {
        int ws = 0;

        if (child < 0)
                return 0;
        while (waitpid(child, &ws, 0) < 0)
                if (errno != EINTR)
                        return -cli_fail(-errno, "sandbox: waitpid: %s", strerror(errno));
        if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
                fprintf(stderr, "credbroker: sandbox: the read-only placeholders could not be mounted; CMD was not run\n");
                return -SB_EXIT_SETUP;
        }
        return 0;
}
