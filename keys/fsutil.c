/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <fcntl.h>
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
