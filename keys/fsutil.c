/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fsutil.h"

int cb_pwrite_all(int fd, const void *p, size_t n, off_t off) {
        const unsigned char *q = p;

        while (n > 0) {
                ssize_t k = pwrite(fd, q, n, off);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                q += k;
                n -= (size_t)k;
                off += k;
        }
        return 0;
}

int cb_pread_all(int fd, void *p, size_t n, off_t off) {
        unsigned char *q = p;

        while (n > 0) {
                ssize_t k = pread(fd, q, n, off);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EBADMSG;
                q += k;
                n -= (size_t)k;
                off += k;
        }
        return 0;
}

int cb_fsync_dir(int dirfd) {
        return fsync(dirfd) < 0 ? -errno : 0;
}

int cb_atomic_replace(int dirfd, const char *name, const void *p, size_t n) {
        char tmp[256];
        int fd, r;

        if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", name) >= sizeof(tmp))
                return -ENAMETOOLONG;
        (void)unlinkat(dirfd, tmp, 0);
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        r = cb_pwrite_all(fd, p, n, 0);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(dirfd, tmp, 0);
                return r;
        }
        return cb_fsync_dir(dirfd);
}

static void spare_create(int dirfd, const char *spare, size_t reserve) {
        static const unsigned char zero[4096];
        int fd = openat(dirfd, spare, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600), r = 0;

        if (fd < 0)
                return;
        for (size_t off = 0; r == 0 && off < reserve; off += sizeof(zero))
                r = cb_pwrite_all(fd, zero, reserve - off < sizeof(zero) ? reserve - off : sizeof(zero), (off_t)off);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r < 0)
                (void)unlinkat(dirfd, spare, 0);
}

int cb_atomic_replace_spare(int dirfd, const char *name, const char *spare, const void *p, size_t n, size_t reserve) {
        struct stat st;
        int fd = openat(dirfd, spare, O_WRONLY | O_CLOEXEC | O_NOFOLLOW), r;

        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 && (size_t)st.st_size >= n &&
            cb_pwrite_all(fd, p, n, 0) == 0 && ftruncate(fd, (off_t)n) == 0 && fsync(fd) == 0) {
                close(fd);
                fd = -1;
                if (renameat2(dirfd, spare, dirfd, name, RENAME_EXCHANGE) == 0)
                        return cb_fsync_dir(dirfd); /* the old file is the next spare */
        }
        if (fd >= 0)
                close(fd);
        (void)unlinkat(dirfd, spare, 0);   /* unusable: written anew below */
        r = cb_atomic_replace(dirfd, name, p, n);
        if (r == 0)
                spare_create(dirfd, spare, reserve > n ? reserve : n);
        return r;
}

void cb_reserve_tail(int fd, off_t len, off_t want) {
        (void)fallocate(fd, FALLOC_FL_KEEP_SIZE, len, want);
}

int cb_read_file_at(int dirfd, const char *name, size_t max, unsigned char **ret, size_t *ret_len) {
        struct stat st;
        unsigned char *p;
        int fd, r;

        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                goto out;
        }
        if (!S_ISREG(st.st_mode)) {
                r = -EBADF;
                goto out;
        }
        if ((unsigned long long)st.st_size > max) {
                r = -EFBIG;
                goto out;
        }
        p = malloc((size_t)st.st_size + 1);
        if (!p) {
                r = -ENOMEM;
                goto out;
        }
        r = cb_pread_all(fd, p, (size_t)st.st_size, 0);
        if (r < 0) {
                free(p);
                goto out;
        }
        *ret = p;
        *ret_len = (size_t)st.st_size;
        r = 0;
out:
        close(fd);
        return r;
}

int cb_lock_dir(int dirfd, int exclusive) {
        int fd = openat(dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

        if (fd < 0)
                return -errno;
        while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
                if (errno != EINTR) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
        }
        return fd;
}

static int dir_trusted(const char *dir, const char *path, uid_t owner, const char *what) {
        struct stat st;

        if (stat(dir, &st) < 0)
                return cb_error_set(-errno, "%s %s: cannot examine %s: %s", what, path, dir, strerror(errno));
        if (st.st_uid != 0 && st.st_uid != owner)
                return cb_error_set(-EPERM, "%s %s: directory %s is owned by uid %u, not root or uid %u: it could "
                                            "swap what the path leads to; refusing it",
                                    what, path, dir, (unsigned)st.st_uid, (unsigned)owner);
        if ((st.st_mode & 022) && !((st.st_mode & S_ISVTX) && st.st_uid == 0))
                return cb_error_set(-EPERM, "%s %s: directory %s is writable by group or others (mode %04o) and "
                                            "not a root-owned sticky directory: another user could rename it "
                                            "away and put its own in its place; refusing it",
                                    what, path, dir, (unsigned)(st.st_mode & 07777));
        return 0;
}

/* Every directory above path (lexically: "/a/b/c" -> "/a/b", "/a", "/"). */
static int chain_trusted(const char *path, const char *shown, uid_t owner, const char *what) {
        char buf[PATH_MAX];
        char *slash;
        int r;

        if (path[0] != '/') {
                if (!getcwd(buf, sizeof(buf)))
                        return cb_error_set(-errno, "%s %s: getcwd: %s", what, shown, strerror(errno));
                size_t n = strlen(buf);
                if (n + 1 + strlen(path) >= sizeof(buf))
                        return cb_error_set(-ENAMETOOLONG, "%s %s: path too long", what, shown);
                buf[n] = '/';
                strcpy(buf + n + 1, path);
        } else if (strlen(path) >= sizeof(buf)) {
                return cb_error_set(-ENAMETOOLONG, "%s %s: path too long", what, shown);
        } else {
                strcpy(buf, path);
        }
        for (;;) {
                size_t n = strlen(buf);
                while (n > 1 && buf[n - 1] == '/')
                        buf[--n] = '\0';
                slash = strrchr(buf, '/');
                if (!slash)
                        return 0;
                if (slash == buf) {
                        if (buf[1] == '\0')
                                return 0; /* "/" itself was the last checked */
                        buf[1] = '\0';
                } else {
                        *slash = '\0';
                }
                r = dir_trusted(buf, shown, owner, what);
                if (r < 0)
                        return r;
                if (strcmp(buf, "/") == 0)
                        return 0;
        }
}

int cb_path_check_trusted(const char *path, uid_t owner, const char *what) {
        char *real;
        int r;

        r = chain_trusted(path, path, owner, what);
        if (r < 0)
                return r;
        real = realpath(path, NULL);
        if (!real)
                return errno == ENOENT ? 0 : cb_error_set(-errno, "%s %s: %s", what, path, strerror(errno));
        r = chain_trusted(real, path, owner, what);
        free(real);
        return r;
}

int cb_lock_owner(const char *dir, const char *name, const char *what, int *ret_fd) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
        char pid[32], held[32] = "";
        struct stat st;
        ssize_t n;
        int dfd, fd, r;

        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dfd < 0)
                return cb_error_set(-errno, "%s '%s': %s", what, dir, strerror(errno));
        fd = openat(dfd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
        r = fd < 0 ? -errno : 0;
        close(dfd);
        if (r < 0)
                return cb_error_set(r, "%s '%s': cannot open its lock file %s: %s", what, dir, name, strerror(-r));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
                close(fd);
                return cb_error_set(-EPERM, "%s '%s': its lock file %s is not a regular file of uid %u with mode "
                                    "0600: refusing it", what, dir, name, (unsigned)geteuid());
        }
        /* An OFD lock: held by this open file description for as long as
         * the fd stays open (the daemon's whole life), released by the
         * kernel however the process ends, never by another thread's
         * close() of some other fd on the same file (as a POSIX lock
         * would be). */
        if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
                r = -errno;
                if (r == -EAGAIN || r == -EACCES) {
                        n = pread(fd, held, sizeof(held) - 1, 0);
                        held[n > 0 ? n : 0] = '\0';
                        held[strcspn(held, "\n")] = '\0';
                        r = cb_error_set(-EBUSY, "%s '%s' is in use by another credbrokerd (pid %s): one daemon "
                                         "per directory; stop it first", what, dir, held[0] ? held : "unknown");
                } else {
                        r = cb_error_set(r, "%s '%s': cannot lock %s: %s", what, dir, name, strerror(-r));
                }
                close(fd);
                return r;
        }
        n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) < 0 || cb_pwrite_all(fd, pid, (size_t)n, 0) < 0) {
                r = cb_error_set(-errno, "%s '%s': cannot write %s: %s", what, dir, name, strerror(errno));
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}
