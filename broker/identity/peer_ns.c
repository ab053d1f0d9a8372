/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whether a writer's pid claim can be trusted (see peer.h,
 * cb_peer_writer_trusted): pid namespaces and who owns them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "peer.h"
#include "peer_internal.h"

static int gone(pid_t pid) {
        int e = errno;

        if (e == ENOENT || e == ESRCH)
                return cb_error_set(-ESRCH, "peer pid %d exited while being identified", (int)pid);
        return cb_error_set(-e, "/proc/%d/ns/pid: %s", (int)pid, strerror(e));
}

/* Our own pid, user and mount namespaces (device, inode), read once.
 *
 * Their nsfs files are kept open for the life of the daemon (never read
 * again): the kernel keeps one dentry per namespace only while something
 * holds it, and drops it at the last close.  Held here, stat() of a
 * caller's /proc/PID/ns/{pid,user,mnt} -- the same namespace as ours for
 * nearly every caller -- finds it in place instead of allocating and
 * freeing an inode and a dentry each time (measured here: 5.6 -> 2.6 us
 * per stat, three per token request). */
static struct { dev_t dev; ino_t pidns, userns, mntns; int r; int fd[3]; } self_ns;
static pthread_once_t self_ns_once = PTHREAD_ONCE_INIT;

static void self_ns_load(void) {
        static const char *const path[3] = { "/proc/self/ns/pid", "/proc/self/ns/user", "/proc/self/ns/mnt" };
        struct stat st[3];

        for (int i = 0; i < 3; i++) {
                self_ns.fd[i] = open(path[i], O_RDONLY | O_CLOEXEC);
                if (self_ns.fd[i] < 0 || fstat(self_ns.fd[i], &st[i]) < 0) {
                        self_ns.r = -errno;
                        for (int j = 0; j <= i; j++)
                                if (self_ns.fd[j] >= 0)
                                        close(self_ns.fd[j]);
                        return;
                }
        }
        self_ns.dev = st[0].st_dev;
        self_ns.pidns = st[0].st_ino;
        self_ns.userns = st[1].st_ino;
        self_ns.mntns = st[2].st_dev == st[0].st_dev ? st[2].st_ino : 0;
}

/* Is every pid namespace from nsfd's up to (not including) ours owned by
 * our user namespace?  Then no process in them holds CAP_SYS_ADMIN over
 * their owner without holding it over ours.  Consumes nsfd. */
static bool pidns_chain_ours(int nsfd) {
        struct stat st;
        bool ok = false;

        for (int depth = 0; depth < 32; depth++) {
                int ufd, parent;

                if (fstat(nsfd, &st) < 0)
                        break;
                if (st.st_ino == self_ns.pidns && st.st_dev == self_ns.dev) {
                        ok = true;
                        break;
                }
                ufd = ioctl(nsfd, NS_GET_USERNS);
                if (ufd < 0)
                        break;
                bool owned = fstat(ufd, &st) == 0 && st.st_ino == self_ns.userns && st.st_dev == self_ns.dev;
                close(ufd);
                if (!owned)
                        break;
                parent = ioctl(nsfd, NS_GET_PARENT);
                if (parent < 0)
                        break;
                close(nsfd);
                nsfd = parent;
        }
        close(nsfd);
        return ok;
}

int cb_peer_writer_trusted(pid_t writer, int writer_pidfd, uint64_t writer_ino, pid_t connector) {
        struct stat st;
        char path[40];
        int fd;

        /* Seen in our pid namespace before, under the inode of the very
         * process this claim's SCM_PIDFD names (peer_proc.c). */
        if (writer_ino && cb_proc_pidns_ours(writer_ino))
                return 0;
        pthread_once(&self_ns_once, self_ns_load);
        if (self_ns.r < 0)
                return cb_error_set(self_ns.r, "/proc/self/ns: %s", strerror(-self_ns.r));
        snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)writer);
        if (stat(path, &st) < 0)
                return gone(writer);
        if (st.st_ino == self_ns.pidns && st.st_dev == self_ns.dev) {
                /* Alive now: the stat reached the pidfd's process. */
                if (writer_ino && writer_pidfd >= 0 && cb_pidfd_alive(writer_pidfd))
                        cb_proc_set_pidns_ours(writer_ino);
                return 0;
        }
        if (writer != connector)
                return cb_error_set(-EPERM, "the writer names pid %d, which is neither the process that connected "
                                            "nor in the broker's pid namespace: a process in its own pid namespace "
                                            "may name any pid there, so the claim cannot be trusted; refused",
                                    (int)writer);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return gone(writer);
        if (!pidns_chain_ours(fd))
                return cb_error_set(-EPERM, "peer pid %d is in a pid namespace owned by another user namespace "
                                            "(a rootless container or unshare -Urp): a process there may name any "
                                            "pid of it as the writer, so the claim cannot be trusted; refused",
                                    (int)writer);
        return 0;
}

bool cb_peer_same_mntns(pid_t pid) {
        struct stat st;
        char path[40];

        pthread_once(&self_ns_once, self_ns_load);
        if (self_ns.r < 0 || self_ns.mntns == 0)
                return false;
        snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid);
        return stat(path, &st) == 0 && st.st_ino == self_ns.mntns && st.st_dev == self_ns.dev;
}

uid_t cb_peer_account_uid(pid_t pid, uid_t uid) {
        struct stat st;
        char path[40];
        uid_t owner = CB_PEER_ACCOUNT_UNKNOWN;
        int fd;

        pthread_once(&self_ns_once, self_ns_load);
        if (self_ns.r < 0 || pid <= 0)
                return uid;
        snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
        if (stat(path, &st) < 0)
                return CB_PEER_ACCOUNT_UNKNOWN;
        if (st.st_ino == self_ns.userns && st.st_dev == self_ns.dev)
                return uid;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return CB_PEER_ACCOUNT_UNKNOWN;
        /* Up the chain to the namespace whose parent is ours: its owner
         * (NS_GET_OWNER_UID answers in our namespace's terms). */
        for (int depth = 0; depth < 32; depth++) {
                int parent = ioctl(fd, NS_GET_PARENT);
                if (parent < 0)
                        break;
                if (fstat(parent, &st) == 0 && st.st_ino == self_ns.userns && st.st_dev == self_ns.dev) {
                        uid_t u;
                        if (ioctl(fd, NS_GET_OWNER_UID, &u) == 0)
                                owner = u;
                        close(parent);
                        break;
                }
                close(fd);
                fd = parent;
        }
        close(fd);
        return owner;
}
