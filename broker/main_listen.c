/* SPDX-License-Identifier: Apache-2.0 */
/*
 * credbrokerd's sockets (split from main.c, issue 18): the run dir that
 * holds them, the Unix listeners (tools.sock, admin.sock) and the loopback
 * TCP listener (--listen-tcp).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "error.h"
#include "fsutil.h"
#include "main_internal.h"

/* The run dir holds the sockets: it must be ours, a real directory, and not
 * writable by others (who could replace a socket with their own). */
int prepare_run_dir(const char *dir) {
        struct stat st;
        int r;

        /* Its parents too: one another uid can write lets that uid rename
         * the run dir away and put its own sockets where clients look. */
        r = cb_path_check_trusted(dir, geteuid(), "run dir");
        if (r < 0)
                return r;

        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return cb_error_set(-errno, "cannot create run dir %s: %s", dir, strerror(errno));
        if (lstat(dir, &st) < 0)
                return cb_error_set(-errno, "run dir %s: %s", dir, strerror(errno));
        if (S_ISLNK(st.st_mode))
                return cb_error_set(-ELOOP, "run dir %s is a symlink: refusing it", dir);
        if (!S_ISDIR(st.st_mode))
                return cb_error_set(-ENOTDIR, "run dir %s is not a directory", dir);
        if (st.st_uid != geteuid())
                return cb_error_set(-EPERM, "run dir %s is owned by uid %u, not by uid %u: refusing it", dir,
                                    (unsigned)st.st_uid, (unsigned)geteuid());
        if (st.st_mode & 022)
                return cb_error_set(-EPERM, "run dir %s is writable by group or others (mode %04o)", dir,
                                    (unsigned)(st.st_mode & 07777));
        return 0;
}

int listen_unix(const char *dir, const char *name, mode_t mode, gid_t gid, char *path_out, size_t cap) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        mode_t old;
        int fd, r;

        if ((size_t)snprintf(path_out, cap, "%s/%s", dir, name) >= cap || strlen(path_out) >= sizeof(a.sun_path))
                return cb_error_set(-ENAMETOOLONG, "socket path %s/%s is too long", dir, name);
        strcpy(a.sun_path, path_out);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* Never unlink a socket a live daemon serves (even if its lock file
         * was removed): a non-blocking connect that is accepted, or finds a
         * full backlog, means someone listens there. */
        {
                int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                bool live = probe >= 0 && (connect(probe, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EAGAIN);
                if (probe >= 0)
                        close(probe);
                if (live) {
                        close(fd);
                        return cb_error_set(-EADDRINUSE, "%s is served by another live process: refusing to "
                                            "replace it (stop that daemon first)", path_out);
                }
        }
        (void)unlink(path_out);
        old = umask(0177); /* no window where the socket is more open than asked */
        r = bind(fd, (struct sockaddr *)&a, sizeof(a));
        umask(old);
        if (r < 0 || chmod(path_out, mode) < 0 || (gid != (gid_t)-1 && chown(path_out, (uid_t)-1, gid) < 0) ||
            listen(fd, 128) < 0) {
                r = cb_error_set(-errno, "cannot listen on %s: %s", path_out, strerror(errno));
                close(fd);
                return r;
        }
        return fd;
}

/* --listen-tcp ADDR:PORT: loopback only (127.0.0.0/8 or [::1]); port 0
 * picks a free one.  desc receives "ADDR:PORT" as bound. */
int listen_loopback(const char *spec, char *desc, size_t cap, bool check_only) {
        struct sockaddr_storage ss = { 0 };
        socklen_t sl;
        const char *colon = strrchr(spec, ':');
        char host[64];
        unsigned long port;
        char *end;
        int fd, one = 1;

        if (!colon || (size_t)(colon - spec) >= sizeof(host))
                return cb_error_set(-EINVAL, "--listen-tcp: want 127.0.0.1:PORT or [::1]:PORT, not '%s'", spec);
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end || port > 65535)
                return cb_error_set(-EINVAL, "--listen-tcp: bad port in '%s'", spec);
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, host, &a4->sin_addr) == 1 && (ntohl(a4->sin_addr.s_addr) >> 24) == 127) {
                a4->sin_family = AF_INET;
                a4->sin_port = htons((uint16_t)port);
                sl = sizeof(*a4);
        } else if (strcmp(host, "[::1]") == 0) {
                a6->sin6_family = AF_INET6;
                a6->sin6_addr = in6addr_loopback;
                a6->sin6_port = htons((uint16_t)port);
                sl = sizeof(*a6);
        } else {
                return cb_error_set(-EINVAL, "--listen-tcp: only a loopback address (127.x.x.x or [::1]), not '%s': "
                                             "tokens are the only credential over TCP, the broker must not be "
                                             "reachable from other machines", host);
        }
        if (check_only)
                return 0;
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return cb_error_set(-errno, "--listen-tcp: socket: %s", strerror(errno));
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 128) < 0) {
                int e = errno;
                close(fd);
                return cb_error_set(-e, "--listen-tcp %s: %s", spec, strerror(e));
        }
        sl = sizeof(ss);
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        snprintf(desc, cap, "%s:%u", ss.ss_family == AF_INET ? host : "[::1]",
                 (unsigned)ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port));
        return fd;
}
