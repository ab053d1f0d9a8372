/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What identification learnt of a running process, kept under the
 * process's pidfs inode (issue 18: a cheap, lazy identity path).
 *
 * Since Linux 6.9 a pidfd is a file of pidfs, one inode per process (per
 * struct pid), numbered from a 64-bit counter that never goes back: no
 * two processes of one boot share an inode number, and the number of an
 * exited process never names another.  So what is fixed for a process's
 * life can be kept under it, and read with one fstat() of the pidfd the
 * request brought (SCM_PIDFD) instead of paths under /proc:
 *
 *   - whether it lives in the broker's pid namespace (cb_peer_writer_trusted):
 *     a process's pid namespace is fixed when it is created;
 *   - the name its executable showed (readlink of /proc/PID/exe, with the
 *     "(a name in the caller's mount namespace)" note), *for that file*:
 *     an execve() keeps the pidfs inode, so the entry also holds the
 *     executable's (dev, ino, size, mtime, ctime) and is used only when the
 *     request's own fresh stat() of /proc/PID/exe -- still made on every
 *     request: it is the file identity the policy matches -- gives the same
 *     five.  After an execve() of another file, or a file changed in place,
 *     the name is read again.  The name is only ever shown (audit,
 *     approvals, logs), never matched; when a process runs the same file
 *     again under another of its names (a hard link, a bind mount in a
 *     namespace of its own), the name shown stays the first: a name of
 *     that very file.
 *
 * Entries are written only after the request's final liveness check
 * through the pidfd (peer.c: alive at the end means every /proc/PID
 * lookup reached this process).  Without pidfs (every pidfd then has the
 * one inode of anon_inodefs) nothing is kept and every request reads
 * /proc as before.  Direct-mapped, PROC_CACHE_N entries; a collision
 * replaces.  Its own lock, held for a copy, never across a system call.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "peer.h"
#include "peer_internal.h"

#define PROC_CACHE_N 1024 /* a power of two */
#ifndef PID_FS_MAGIC
#define PID_FS_MAGIC 0x50494446
#endif

typedef struct proc_entry {
        uint64_t ino;            /* pidfs inode; 0: empty */
        bool pidns_ours;         /* known to live in the broker's pid namespace */
        bool exe_set;            /* exe_* and exe_path hold */
        dev_t exe_dev;
        ino_t exe_ino;
        off_t exe_size;
        struct timespec exe_mtim, exe_ctim;
        char *exe_path;          /* as shown, note included (malloc'd) */
} proc_entry;

static proc_entry tab[PROC_CACHE_N];
static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;
static bool pidfs;
static pthread_once_t pidfs_once = PTHREAD_ONCE_INIT;

static void pidfs_probe(void) {
        struct statfs sf;
        int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);

        if (fd < 0)
                return;
        pidfs = sizeof(ino_t) >= 8 && fstatfs(fd, &sf) == 0 && (uint64_t)sf.f_type == PID_FS_MAGIC;
        close(fd);
}

uint64_t cb_pidfd_ino(int pidfd) {
        struct stat st;

        pthread_once(&pidfs_once, pidfs_probe);
        if (!pidfs || pidfd < 0 || fstat(pidfd, &st) < 0)
                return 0;
        return (uint64_t)st.st_ino;
}

static proc_entry *slot(uint64_t ino) {
        return &tab[ino & (PROC_CACHE_N - 1)];
}

/* The slot for ino, emptied first when another process held it. */
static proc_entry *slot_for(uint64_t ino) {
        proc_entry *e = slot(ino);

        if (e->ino != ino) {
                free(e->exe_path);
                memset(e, 0, sizeof(*e));
                e->ino = ino;
        }
        return e;
}

bool cb_proc_pidns_ours(uint64_t ino) {
        bool r;

        if (!ino)
                return false;
        pthread_mutex_lock(&tab_lock);
        r = slot(ino)->ino == ino && slot(ino)->pidns_ours;
        pthread_mutex_unlock(&tab_lock);
        return r;
}

void cb_proc_set_pidns_ours(uint64_t ino) {
        if (!ino)
                return;
        pthread_mutex_lock(&tab_lock);
        slot_for(ino)->pidns_ours = true;
        pthread_mutex_unlock(&tab_lock);
}

static bool exe_same(const proc_entry *e, const struct stat *st) {
        return e->exe_set && e->exe_dev == st->st_dev && e->exe_ino == st->st_ino && e->exe_size == st->st_size &&
               e->exe_mtim.tv_sec == st->st_mtim.tv_sec && e->exe_mtim.tv_nsec == st->st_mtim.tv_nsec &&
               e->exe_ctim.tv_sec == st->st_ctim.tv_sec && e->exe_ctim.tv_nsec == st->st_ctim.tv_nsec;
}

bool cb_proc_exe_path_get(uint64_t ino, const struct stat *st, char *out, size_t out_len) {
        bool r = false;

        if (!ino)
                return false;
        pthread_mutex_lock(&tab_lock);
        proc_entry *e = slot(ino);
        if (e->ino == ino && exe_same(e, st)) {
                size_t n = strlen(e->exe_path);
                if (n < out_len) {
                        memcpy(out, e->exe_path, n + 1);
                        r = true;
                }
        }
        pthread_mutex_unlock(&tab_lock);
        return r;
}

void cb_proc_exe_path_set(uint64_t ino, const struct stat *st, const char *path) {
        char *copy;

        if (!ino || !(copy = strdup(path)))
                return;
        pthread_mutex_lock(&tab_lock);
        proc_entry *e = slot_for(ino);
        free(e->exe_path);
        e->exe_path = copy;
        e->exe_dev = st->st_dev;
        e->exe_ino = st->st_ino;
        e->exe_size = st->st_size;
        e->exe_mtim = st->st_mtim;
        e->exe_ctim = st->st_ctim;
        e->exe_set = true;
        pthread_mutex_unlock(&tab_lock);
}
