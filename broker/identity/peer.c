/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Peer identity (see peer.h and DESIGN.md "Peer identity").
 *
 * Binding every /proc read to the right process:
 *
 *   1. SO_PEERCRED gives (uid, gid, pid) as of connect(); SO_PEERPIDFD gives
 *      a pidfd for that very process (the socket holds its struct pid, so
 *      no pid recycling can get in between).
 *   2. We read /proc/<pid>/exe (stat, readlink, and the file itself only
 *      when its hash is not cached) and, when asked, /proc/<pid>/cgroup.
 *      Each path names whatever process holds <pid> at that moment.
 *   3. Last, one check through the pidfd that the process is still alive.
 *      Alive now means alive since connect(), so at every lookup above the
 *      number <pid> named this process and no other (a newcomer can only
 *      get a pid once its holder is gone): everything read was its.  Just
 *      before, /proc/<pid>/exe must still name the inode we looked at
 *      first (an execve() in the middle counts as "replaced": -ESRCH).
 *
 *   On a cache hit that is 6 system calls: two getsockopt, stat,
 *   readlink, stat, poll (and the close of the pidfd in cb_peer_done).
 *   The server's path (cb_peer_identify_pidfd, the pidfd from SCM_PIDFD,
 *   hash not asked) is PIDFD_GET_INFO, stat, poll: the readlink and the
 *   mount namespace's stat are made once per process and executable file
 *   (peer_proc.c keeps the name under the pidfd's pidfs inode).
 *   cb_peer_identify_cred saves the SO_PEERCRED one when the caller read
 *   it once per connection (the server does, at accept): the kernel fixes
 *   a connected Unix socket's peer credentials at connect(), so reading
 *   them again per request returns the same (uid, gid, pid).  What must
 *   be per request, and stays so, is everything after: SO_PEERPIDFD, the
 *   /proc/<pid>/exe reads and the final liveness check through the pidfd
 *   -- that check is what makes the connect()-time pid safe to use.
 *
 * Executable hashes are cached by (dev, ino, size, mtime, ctime).  ctime
 * cannot be set by user space and moves on every write, but only with the
 * file system's timestamp granularity: a write landing in the same tick as
 * our fstat() could leave the key unchanged.  So, as git does for its index
 * ("racy git"), an entry is cached only if its ctime is CACHE_RACY_SEC older
 * than the moment we sampled it; younger files are hashed on every call.
 *
 * cb_peer_identify may run on several threads at once; the cache takes its
 * own lock for lookups and inserts, never while hashing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "error.h"
#include "peer.h"
#include "peer_internal.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77   /* Linux 6.5; glibc headers before 2.39 lack it */
#endif

#define HASH_CHUNK       (64 * 1024)
#define PROC_READ_CHUNK  4096          /* one read() of a /proc file */
#define CGROUP_FILE_MAX  (64 * 1024)   /* whole /proc/<pid>/cgroup, v1 lines included */
#define CACHE_RACY_SEC   2
#define CACHE_MAX        65536

typedef struct exe_key {
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtim;
        struct timespec ctim;
} exe_key;

typedef struct exe_entry {
        exe_key key;
        unsigned char sha256[32];
        uint64_t used;                 /* cache clock at last hit or insert */
} exe_entry;

struct cb_exe_cache {
        pthread_mutex_t lock;          /* held for lookups and inserts, never while hashing */
        size_t max;
        size_t n;
        uint64_t clock;
        exe_entry e[];
};

static int proc_errno(int e) {
        /* The process (or its /proc entry) went away. */
        return e == ENOENT || e == ESRCH ? -ESRCH : -e;
}

/* Record a failed /proc/<pid>/what access (r from proc_errno()). */
static int proc_fail(int r, pid_t pid, const char *what) {
        if (r == -ESRCH)
                return cb_error_set(r, "peer pid %d exited while being identified (/proc/%d/%s is gone)", (int)pid,
                                    (int)pid, what);
        return cb_error_set(r, "/proc/%d/%s: %s", (int)pid, what, strerror(-r));
}

/* ---- overflow ids ------------------------------------------------------ */

static uid_t overflow_uid = 65534;
static gid_t overflow_gid = 65534;
static bool gid_map_full;
static pthread_once_t overflow_once = PTHREAD_ONCE_INIT;

/* Does our user namespace map every gid (the initial namespace's
 * "0 0 4294967295")?  Then no peer's gid can show up as the overflow gid
 * for want of a mapping. */
static bool id_map_full(const char *path) {
        char buf[128];
        unsigned long a, b, c;
        char extra;
        ssize_t n;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        return sscanf(buf, " %lu %lu %lu %c", &a, &b, &c, &extra) == 3 && a == 0 && b == 0 && c == 4294967295UL;
}

static unsigned long read_sysctl_id(const char *path, unsigned long dflt) {
        char buf[32];
        unsigned long v;
        char *end;
        ssize_t n;
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return dflt;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return dflt;
        buf[n] = '\0';
        errno = 0;
        v = strtoul(buf, &end, 10);
        if (errno != 0 || end == buf || (*end != '\n' && *end != '\0') || v >= UINT32_MAX)
                return dflt;
        return v;
}

static void overflow_load(void) {
        overflow_uid = (uid_t)read_sysctl_id("/proc/sys/kernel/overflowuid", 65534);
        overflow_gid = (gid_t)read_sysctl_id("/proc/sys/kernel/overflowgid", 65534);
        gid_map_full = id_map_full("/proc/self/gid_map");
}

/* ---- pidfd ------------------------------------------------------------- */

/* 1 if the process behind pidfd is running, 0 if it exited.  A pidfd
 * polls readable once its process has exited, zombie or reaped (a signal-0
 * probe would still reach a zombie), so one poll() answers. */
int cb_pidfd_alive(int pidfd) {
        struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
        int r;

        if (pidfd < 0)
                return 0;
        do
                r = poll(&pfd, 1, 0);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return 0;
        return r == 0 || !(pfd.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL));
}

static int peer_pidfd(int fd, pid_t pid, int *ret_pidfd, bool *ret_pinned) {
        socklen_t len = sizeof(int);
        int pidfd = -1;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0) {
                if (len != sizeof(int) || pidfd < 0) {
                        if (pidfd >= 0)
                                close(pidfd);
                        return cb_error_set(-EPROTO, "SO_PEERPIDFD: unexpected answer");
                }
                *ret_pidfd = pidfd;
                *ret_pinned = true;
                return 0;
        }
        if (errno == ESRCH)
                return cb_error_set(-ESRCH, "peer pid %d exited before it could be identified", (int)pid);
        if (errno != ENOPROTOOPT)
                return cb_error_set(-errno, "SO_PEERPIDFD: %s", strerror(errno));

        /* Kernel before 6.5.  Weaker: pidfd_open() names whatever process
         * holds the number now, so if the peer exited and its pid was
         * recycled between connect() and this call we pin the newcomer.
         * The window is small (the peer must exit and ~pid_max forks must
         * happen), and the uid from SO_PEERCRED is still the connect()-time
         * one, but the executable and cgroup reported may then belong to
         * the newcomer, and "alive at the end" proves nothing about the
         * connecting process.  So process-bound tokens are refused then
         * (pidfd_pinned stays false). */
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0) {
                int r = proc_errno(errno);

                return cb_error_set(r, "pidfd_open(%d): %s", (int)pid, strerror(-r));
        }
        *ret_pidfd = pidfd;
        *ret_pinned = false;
        return 0;
}

/* ---- /proc readers ----------------------------------------------------- */

/* Line-at-a-time scanner for /proc/<pid>/cgroup: keeps the first
 * sizeof(line) - 1 bytes of the current line and notes if there were more. */
typedef struct cgroup_scan {
        char line[CB_CGROUP_MAX + 3];   /* "0::" + path (< CB_CGROUP_MAX) + NUL */
        size_t len;
        bool too_long;
        bool found;
} cgroup_scan;

static int cgroup_line_end(cgroup_scan *s, pid_t pid, char out[CB_CGROUP_MAX]) {
        bool v2 = s->len >= 3 && memcmp(s->line, "0::", 3) == 0;

        if (v2 && s->found)
                return cb_error_set(-EBADMSG, "/proc/%d/cgroup has two cgroup v2 lines", (int)pid);
        if (v2 && s->too_long)
                return cb_error_set(-ENAMETOOLONG, "peer pid %d: cgroup path longer than %d bytes", (int)pid,
                                    CB_CGROUP_MAX - 1);
        if (v2) {
                /* At most sizeof(line) - 1 - 3 = CB_CGROUP_MAX - 1 bytes. */
                memcpy(out, s->line + 3, s->len - 3);
                out[s->len - 3] = '\0';
                s->found = true;
        }
        s->len = 0;
        s->too_long = false;
        return 0;
}

/* The cgroup v2 line ("0::/path") of /proc/<pid>/cgroup into out, "" if
 * there is none.  Read in PROC_READ_CHUNK pieces (the v2 line comes last on
 * hybrid systems, after the v1 lines).  A v2 path that does not fit is
 * refused rather than cut, since a cut path would match a prefix selector
 * it does not belong under.  Two v2 lines are refused too: that could only
 * be a cgroup name holding a newline (the kernel forbids those today). */
static int proc_cgroup(pid_t pid, char out[CB_CGROUP_MAX]) {
        cgroup_scan s = { .len = 0 };
        char chunk[PROC_READ_CHUNK];
        size_t total = 0;
        int fd, r = 0;

        out[0] = '\0';
        char path[32];

        snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                return proc_fail(proc_errno(errno), pid, "cgroup");
        }
        for (;;) {
                ssize_t k = read(fd, chunk, sizeof(chunk));

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = proc_fail(proc_errno(errno), pid, "cgroup");
                        goto out;
                }
                if (k == 0)
                        break;
                total += (size_t)k;
                if (total > CGROUP_FILE_MAX) {
                        r = cb_error_set(-EFBIG, "/proc/%d/cgroup is larger than %d bytes", (int)pid,
                                         CGROUP_FILE_MAX);
                        goto out;
                }
                for (ssize_t i = 0; i < k; i++) {
                        if (chunk[i] == '\n') {
                                r = cgroup_line_end(&s, pid, out);
                                if (r < 0)
                                        goto out;
                        } else if (s.len < sizeof(s.line) - 1) {
                                s.line[s.len++] = chunk[i];
                        } else {
                                s.too_long = true;
                        }
                }
        }
        if (s.len > 0 || s.too_long)
                r = cgroup_line_end(&s, pid, out);   /* no final newline */
out:
        close(fd);
        if (r < 0)
                out[0] = '\0';
        return r;
}

/* ---- hashing and the cache --------------------------------------------- */

/* Hash fd's first `limit` bytes, or all of it when limit is -1.  With a
 * limit, a file that turns out shorter or longer than that is refused
 * (-EAGAIN) the moment it shows: a file grown while being hashed (sparse:
 * free for its owner) must not keep the reader busy. */
static int sha256_fd_limit(int fd, off_t limit, unsigned char out[32]) {
        crypto_hash_sha256_state st;
        unsigned char *buf;
        struct stat sb;
        off_t off = 0;
        int r = 0;

        if (fstat(fd, &sb) < 0)
                return cb_error_set(-errno, "fstat: %s", strerror(errno));
        if (!S_ISREG(sb.st_mode))
                return cb_error_set(-EINVAL, "not a regular file: cannot hash it");
        buf = malloc(HASH_CHUNK);
        if (!buf)
                return cb_error_set(-ENOMEM, "out of memory");
        crypto_hash_sha256_init(&st);
        for (;;) {
                size_t want = HASH_CHUNK;

                if (limit >= 0 && (off_t)want > limit - off + 1)
                        want = (size_t)(limit - off + 1); /* one byte past the end: it must not be there */
                ssize_t k = pread(fd, buf, want, off);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = cb_error_set(-errno, "read at offset %lld: %s", (long long)off, strerror(errno));
                        goto out;
                }
                if (limit >= 0 && off + k > limit) {
                        r = cb_error_set(-EAGAIN, "the file grew past %lld bytes while being hashed",
                                         (long long)limit);
                        goto out;
                }
                if (k == 0)
                        break;
                crypto_hash_sha256_update(&st, buf, (unsigned long long)k);
                off += k;
        }
        if (limit >= 0 && off != limit) {
                r = cb_error_set(-EAGAIN, "the file shrank to %lld bytes while being hashed", (long long)off);
                goto out;
        }
        crypto_hash_sha256_final(&st, out);
out:
        free(buf);
        return r;
}

int cb_sha256_fd(int fd, unsigned char out[32]) {
        return sha256_fd_limit(fd, -1, out);
}

cb_exe_cache *cb_exe_cache_new(size_t max_entries) {
        cb_exe_cache *c;

        if (max_entries > CACHE_MAX)
                max_entries = CACHE_MAX;
        c = calloc(1, sizeof(*c) + max_entries * sizeof(exe_entry));
        if (!c)
                return NULL;
        c->max = max_entries;
        pthread_mutex_init(&c->lock, NULL);
        return c;
}

void cb_exe_cache_free(cb_exe_cache *c) {
        if (!c)
                return;
        pthread_mutex_destroy(&c->lock);
        free(c);
}

static void key_from_stat(const struct stat *st, exe_key *k) {
        memset(k, 0, sizeof(*k));
        k->dev = st->st_dev;
        k->ino = st->st_ino;
        k->size = st->st_size;
        k->mtim = st->st_mtim;
        k->ctim = st->st_ctim;
}

static bool key_eq(const exe_key *a, const exe_key *b) {
        return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
               a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec &&
               a->ctim.tv_sec == b->ctim.tv_sec && a->ctim.tv_nsec == b->ctim.tv_nsec;
}

static bool cache_lookup(cb_exe_cache *c, const exe_key *k, unsigned char out[32]) {
        bool hit = false;

        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n; i++)
                if (key_eq(&c->e[i].key, k)) {
                        c->e[i].used = ++c->clock;
                        memcpy(out, c->e[i].sha256, 32);
                        hit = true;
                        break;
                }
        pthread_mutex_unlock(&c->lock);
        return hit;
}

/* Insert, evicting the least recently used entry when full. */
static void cache_insert(cb_exe_cache *c, const exe_key *k, const unsigned char sha[32]) {
        exe_entry *e;

        if (c->max == 0)
                return;
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n; i++)
                if (key_eq(&c->e[i].key, k)) {  /* another thread got there first */
                        pthread_mutex_unlock(&c->lock);
                        return;
                }
        if (c->n < c->max)
                e = &c->e[c->n++];
        else {
                e = &c->e[0];
                for (size_t i = 1; i < c->n; i++)
                        if (c->e[i].used < e->used)
                                e = &c->e[i];
        }
        e->key = *k;
        memcpy(e->sha256, sha, 32);
        e->used = ++c->clock;
        pthread_mutex_unlock(&c->lock);
}

/* The SHA-256 of exe (/proc/<pid>/exe), whose stat is *st: from the
 * cache, else by opening and hashing it (the opened file must be the one
 * *st describes). */

static int exe_hash_file(const char *exe, const exe_key *kp, cb_exe_cache *cache, pid_t pid, unsigned char out[32]) {
        struct timespec now;
        struct stat opened, after;
        exe_key k = *kp, k2;
        bool racy;
        int exefd, r;

        /* *st was sampled before this clock read, so any later write gets a
         * ctime no earlier than about now. */
        if (clock_gettime(CLOCK_REALTIME, &now) < 0)
                return cb_error_set(-errno, "clock_gettime: %s", strerror(errno));
        exefd = open(exe, O_RDONLY | O_CLOEXEC);
        if (exefd < 0)
                return proc_fail(proc_errno(errno), pid, "exe");
        if (fstat(exefd, &opened) < 0) {
                r = cb_error_set(-errno, "/proc/%d/exe: fstat: %s", (int)pid, strerror(errno));
                goto out;
        }
        key_from_stat(&opened, &k2);
        if (!key_eq(&k, &k2)) {
                r = cb_error_set(-ESRCH, "peer pid %d executed another program while being identified", (int)pid);
                goto out;
        }
        r = sha256_fd_limit(exefd, k.size, out); /* never more than the size checked against the caps */
        if (r < 0) {
                r = cb_error_set(r, "peer pid %d: hashing the executable: %s", (int)pid, cb_error_last());
                goto out;
        }
        if (fstat(exefd, &after) < 0) {
                r = cb_error_set(-errno, "fstat: %s", strerror(errno));
                goto out;
        }
        key_from_stat(&after, &k2);
        if (!key_eq(&k, &k2)) {
                /* Only possible once no process executes the file (ETXTBSY
                 * otherwise): the hash mixes two contents. */
                r = cb_error_set(-EAGAIN, "peer pid %d: the executable changed while being hashed", (int)pid);
                goto out;
        }
        racy = k.ctim.tv_sec > now.tv_sec - CACHE_RACY_SEC;
        if (cache && !racy)
                cache_insert(cache, &k, out);
        r = 0;
out:
        close(exefd);
        return r;
}

int cb_peer_hash_file(const char *exe, const struct stat *st, cb_exe_cache *cache, pid_t pid, unsigned char out[32]) {
        exe_key k;

        key_from_stat(st, &k);
        return exe_hash_file(exe, &k, cache, pid, out);
}

int cb_exe_cache_get(cb_exe_cache *c, const struct stat *st, unsigned char out[32]) {
        exe_key k;

        if (!c)
                return 0;
        key_from_stat(st, &k);
        return cache_lookup(c, &k, out) ? 1 : 0;
}

static int exe_hash(const char *exe, const struct stat *st, cb_exe_cache *cache, pid_t pid, uid_t uid,
                    unsigned char out[32]) {
        exe_key k;
        int r;

        key_from_stat(st, &k);
        if (cache && cache_lookup(cache, &k, out))
                return 0;
        /* An executable made huge (a sparse file costs its owner nothing)
         * must not keep the broker reading. */
        if (st->st_size > CB_EXE_HASH_MAX)
                return cb_error_set(-EFBIG, "peer pid %d: its executable is %lld bytes, more than the %d MiB the "
                                            "broker will hash",
                                    (int)pid, (long long)st->st_size, CB_EXE_HASH_MAX >> 20);
        r = cb_peer_budget_take(uid, (uint64_t)st->st_size, pid);
        if (r < 0)
                return r;
        r = exe_hash_file(exe, &k, cache, pid, out);
        cb_peer_budget_put(uid);
        return r;
}


/* ---- identify ---------------------------------------------------------- */

int cb_peer_cred_read(int fd, struct ucred *ret) {
        socklen_t len = sizeof(*ret);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, ret, &len) < 0)
                return cb_error_set(-errno, "SO_PEERCRED: %s", strerror(errno));
        if (len != sizeof(*ret))
                return cb_error_set(-EPROTO, "SO_PEERCRED: short answer");
        return 0;
}

int cb_peer_identify(int fd, cb_exe_cache *cache, unsigned what, cb_peer *ret) {
        struct ucred uc;
        int r;

        if (!ret)
                return cb_error_set(-EINVAL, "cb_peer_identify: no output");
        r = cb_peer_cred_read(fd, &uc);
        if (r < 0)
                return r;
        return cb_peer_identify_cred(fd, &uc, cache, what, ret);
}

/* The process's current credentials, all of them, must still be (uid,
 * gid).  PIDFD_GET_INFO (Linux 6.13) reads them through the pidfd; before
 * that, /proc/<pid>/status (safe by the liveness check at the end, as the
 * other /proc reads). */
struct cb_pidfd_info {
        uint64_t mask;
        uint64_t cgroupid;
        uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
        uint32_t spare0[1];
};
#define CB_PIDFD_GET_INFO _IOWR(0xFF, 11, struct cb_pidfd_info)
#define CB_PIDFD_INFO_CREDS (1u << 1)

static int ids_check(pid_t pid, uid_t uid, gid_t gid, const uint32_t u[4], const uint32_t g[4]) {
        /* A root process (every uid 0) may have a thread write under
         * another uid (per-thread credentials, set with the raw system
         * call: test harnesses do): it could become that uid anyway, so the
         * writing thread's credentials stand.  The /proc and pidfd views
         * only show the process's main thread. */
        if (u[0] == 0 && u[1] == 0 && u[2] == 0 && u[3] == 0)
                return 0;
        for (int i = 0; i < 4; i++)
                if (u[i] != (uint32_t)uid || g[i] != (uint32_t)gid)
                        return cb_error_set(-EPERM, "peer pid %d now runs as uid %u/%u/%u/%u gid %u/%u/%u/%u "
                                                    "(real/effective/saved/fs), not the uid %u gid %u it sent "
                                                    "with: a process that changed (or is changing) its "
                                                    "credentials is refused",
                                            (int)pid, u[0], u[1], u[2], u[3], g[0], g[1], g[2], g[3],
                                            (unsigned)uid, (unsigned)gid);
        return 0;
}

static int proc_status_ids(pid_t pid, uint32_t u[4], uint32_t g[4]) {
        char path[32], buf[PROC_READ_CHUNK + 1];
        const char *l;
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return proc_fail(proc_errno(errno), pid, "status");
        do
                n = read(fd, buf, sizeof(buf) - 1);
        while (n < 0 && errno == EINTR);
        close(fd);
        if (n < 0)
                return proc_fail(proc_errno(errno), pid, "status");
        buf[n] = '\0';
        /* Uid: and Gid: are lines 8 and 9, well inside the first 4 KiB. */
        if (!(l = strstr(buf, "\nUid:\t")) || sscanf(l, "\nUid:\t%u\t%u\t%u\t%u", &u[0], &u[1], &u[2], &u[3]) != 4 ||
            !(l = strstr(buf, "\nGid:\t")) || sscanf(l, "\nGid:\t%u\t%u\t%u\t%u", &g[0], &g[1], &g[2], &g[3]) != 4)
                return cb_error_set(-EBADMSG, "/proc/%d/status: no Uid:/Gid: lines", (int)pid);
        return 0;
}

static int current_ids(int pidfd, pid_t pid, uid_t uid, gid_t gid) {
        struct cb_pidfd_info info = { .mask = CB_PIDFD_INFO_CREDS };
        uint32_t u[4], g[4];
        int r;

        if (ioctl(pidfd, CB_PIDFD_GET_INFO, &info) == 0 && (info.mask & CB_PIDFD_INFO_CREDS)) {
                u[0] = info.ruid, u[1] = info.euid, u[2] = info.suid, u[3] = info.fsuid;
                g[0] = info.rgid, g[1] = info.egid, g[2] = info.sgid, g[3] = info.fsgid;
        } else if (errno == ESRCH) {
                return cb_error_set(-ESRCH, "peer pid %d exited while being identified", (int)pid);
        } else if ((r = proc_status_ids(pid, u, g)) < 0) {
                return r;
        }
        return ids_check(pid, uid, gid, u, g);
}

/* pidfd: -1 to take one from the socket fd (SO_PEERPIDFD), else borrowed;
 * pidfd_ino: its pidfs inode, or 0 (nothing kept under it, peer_proc.c). */
static int identify(int fd, const struct ucred *cred, int pidfd, bool pidfd_pinned, uint64_t pidfd_ino,
                    cb_exe_cache *cache, unsigned what, cb_peer *ret) {
        cb_peer p = { .pidfd = -1 };
        struct ucred uc;
        struct stat st, st2;
        char exe[32];
        bool name_read = false; /* exe_path read now, not kept from before (peer_proc.c) */
        int r;
        ssize_t n;

        if (!ret || !cred)
                return cb_error_set(-EINVAL, "cb_peer_identify: no output or no credentials");
        uc = *cred;
        pthread_once(&overflow_once, overflow_load);
        if (uc.pid <= 0)
                return cb_error_set(-EPERM, "peer has pid 0: it is in a pid namespace we cannot see into "
                                            "(or the socket is not connected); refusing it");
        if (uc.uid == (uid_t)-1 || uc.gid == (gid_t)-1)
                return cb_error_set(-EPERM, "peer pid %d has no credentials; refusing it", (int)uc.pid);
        if (uc.uid == overflow_uid)
                return cb_error_set(-EPERM, "peer pid %d has the overflow uid %u (its uid is not mapped into "
                                            "our user namespace); refusing it", (int)uc.pid, (unsigned)uc.uid);
        /* The overflow gid is also Debian's "nogroup", a genuine primary
         * group: it only means "unmapped" when our own gid map is partial. */
        if (uc.gid == overflow_gid && !gid_map_full)
                return cb_error_set(-EPERM, "peer pid %d has the overflow gid %u (its gid is not mapped into "
                                            "our user namespace); refusing it", (int)uc.pid, (unsigned)uc.gid);
        p.uid = uc.uid;
        p.gid = uc.gid;
        p.pid = uc.pid;

        if (pidfd >= 0) {
                p.pidfd = pidfd;
                p.pidfd_pinned = pidfd_pinned;
                p.pidfd_borrowed = true;
        } else if (fd >= 0) {
                r = peer_pidfd(fd, p.pid, &p.pidfd, &p.pidfd_pinned);
                if (r < 0)
                        return r;
        } else {
                /* No SCM_PIDFD (Linux < 6.5): as peer_pidfd's fallback. */
                p.pidfd = (int)syscall(SYS_pidfd_open, p.pid, 0);
                if (p.pidfd < 0) {
                        r = proc_errno(errno);
                        return cb_error_set(r, "pidfd_open(%d): %s", (int)p.pid, strerror(-r));
                }
                p.pidfd_pinned = false;
        }
        if (pidfd >= 0 || fd < 0) {
                r = current_ids(p.pidfd, p.pid, p.uid, p.gid);
                if (r < 0)
                        goto out;
        }

        snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)p.pid);
        if (!(what & CB_PEER_SKIP_EXE)) {
                /* The pidfd check at the end proves every /proc/<pid> lookup
                 * here reached the pidfd's process (see the top). */
                if (stat(exe, &st) < 0) {
                        r = proc_fail(proc_errno(errno), p.pid, "exe");
                        goto out;
                }
                if (!S_ISREG(st.st_mode)) {
                        r = cb_error_set(-EINVAL, "%s is not a regular file", exe);
                        goto out;
                }
                /* The name only ever shown: kept per process and file,
                 * the stat above being this request's own (peer_proc.c). */
                if (!cb_proc_exe_path_get(pidfd_ino, &st, p.exe_path, sizeof(p.exe_path))) {
                        n = readlink(exe, p.exe_path, sizeof(p.exe_path));
                        if (n < 0) {
                                r = proc_fail(proc_errno(errno), p.pid, "exe");
                                goto out;
                        }
                        if ((size_t)n >= sizeof(p.exe_path)) {
                                r = cb_error_set(-ENAMETOOLONG, "%s: path longer than %d bytes", exe, PATH_MAX - 1);
                                goto out;
                        }
                        p.exe_path[n] = '\0';
                        if (!cb_peer_same_mntns(p.pid)) {
                                /* The name is the caller's to choose: say so
                                 * wherever it is shown (approvals, audit, logs);
                                 * the hash is of the file actually run. */
                                static const char note[] = " (a name in the caller's mount namespace)";
                                size_t keep = sizeof(p.exe_path) - sizeof(note);
                                memcpy(p.exe_path + ((size_t)n < keep ? (size_t)n : keep), note, sizeof(note));
                        }
                        name_read = true;
                }
                p.exe_dev = st.st_dev;
                p.exe_ino = st.st_ino;
                p.exe_st = st;
                p.exe_known = st.st_nlink > 0; /* an unlinked binary is no file a policy can name */

                if (!(what & CB_PEER_SKIP_HASH)) {
                        r = exe_hash(exe, &st, cache, p.pid, p.uid, p.exe_sha256);
                        if (r < 0)
                                goto out;
                        sodium_bin2hex(p.exe_sha256_hex, sizeof(p.exe_sha256_hex), p.exe_sha256,
                                       sizeof(p.exe_sha256));
                        p.hash_known = true;
                }
        }

        if (what & CB_PEER_CGROUP) {
                r = proc_cgroup(p.pid, p.cgroup);
                if (r < 0)
                        goto out;
                p.cgroup_known = true;
        }

        if (!(what & (CB_PEER_SKIP_EXE | CB_PEER_SKIP_HASH))) {
                /* An execve() since the first look would make path, hash
                 * and the process disagree.  (Without the hash nothing here
                 * was read through the path but the logged readlink: the
                 * identity is the first stat's, and a hash computed later
                 * is checked against that stat by its worker.) */
                if (stat(exe, &st2) < 0) {
                        r = proc_fail(proc_errno(errno), p.pid, "exe");
                        goto out;
                }
                if (st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
                        r = cb_error_set(-ESRCH, "peer pid %d executed another program while being identified",
                                         (int)p.pid);
                        goto out;
                }
        }
        if (name_read && pidfd_ino) {
                /* The name is kept only if no execve() came between the
                 * stat and the readlink: else it could be the next
                 * program's, kept for the file before. */
                struct stat st3;

                name_read = stat(exe, &st3) == 0 && st3.st_dev == st.st_dev && st3.st_ino == st.st_ino;
        }
        /* Alive now, so alive (and holding this pid) at every lookup above. */
        if (!cb_pidfd_alive(p.pidfd)) {
                r = cb_error_set(-ESRCH, "peer pid %d exited while being identified", (int)p.pid);
                goto out;
        }

        if (name_read && pidfd_ino)
                cb_proc_exe_path_set(pidfd_ino, &st, p.exe_path);
        *ret = p;
        p.pidfd = -1;       /* moved to *ret */
        r = 0;
out:
        if (p.pidfd >= 0 && !p.pidfd_borrowed)
                close(p.pidfd);
        return r;
}

int cb_peer_identify_cred(int fd, const struct ucred *cred, cb_exe_cache *cache, unsigned what, cb_peer *ret) {
        return identify(fd, cred, -1, false, 0, cache, what, ret);
}

int cb_peer_identify_pidfd(const struct ucred *cred, int pidfd, uint64_t pidfd_ino, cb_exe_cache *cache,
                           unsigned what, cb_peer *ret) {
        return identify(-1, cred, pidfd, pidfd >= 0, pidfd >= 0 ? pidfd_ino : 0, cache, what, ret);
}

int cb_peer_alive(const cb_peer *p) {
        return p && cb_pidfd_alive(p->pidfd);
}

void cb_peer_done(cb_peer *p) {
        if (!p)
                return;
        if (p->pidfd >= 0 && !p->pidfd_borrowed)
                close(p->pidfd);
        p->pidfd = -1;
        p->pidfd_borrowed = false;
}
