/* SPDX-License-Identifier: Apache-2.0 */
/* The fixture of the broker/identity/peer.c tests (see peer-fixture.h). */
#include <elf.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cbtest.h"
#include "error.h"
#include "peer.h"

#include "peer-fixture.h"

void sha256_file(const char *path, unsigned char out[32]) {
        size_t n;
        unsigned char *p = cbtest_read_file(path, &n);

        ASSERT_TRUE(p != NULL);
        crypto_hash_sha256(out, p, n);
        free(p);
}

void copy_file(const char *from, const char *to, mode_t mode) {
        size_t n;
        unsigned char *p = cbtest_read_file(from, &n);

        ASSERT_TRUE(p != NULL);
        ASSERT_OK(cbtest_write_file(to, p, n));
        ASSERT_OK(chmod(to, mode));
        free(p);
}

/* The "0::" line of /proc/<self>/cgroup, "" if none. */
void self_cgroup(char *out, size_t cap) {
        char *p = (char *)cbtest_read_file("/proc/self/cgroup", NULL), *l;

        ASSERT_TRUE(p != NULL);
        out[0] = '\0';
        for (l = strtok(p, "\n"); l; l = strtok(NULL, "\n"))
                if (strncmp(l, "0::", 3) == 0)
                        snprintf(out, cap, "%s", l + 3);
        free(p);
}

void sockaddr_for(const char *path, struct sockaddr_un *sa) {
        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        ASSERT_TRUE(strlen(path) < sizeof(sa->sun_path));
        strcpy(sa->sun_path, path);
}

/* A listening socket in the test directory that any uid can connect to. */
int listen_at(const char *name, char *ret_path, size_t cap) {
        struct sockaddr_un sa;
        int fd;

        snprintf(ret_path, cap, "%s", cbtest_path(cbtest_tmpdir(), name));
        sockaddr_for(ret_path, &sa);
        (void)unlink(ret_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
        ASSERT_OK(listen(fd, 8));
        ASSERT_OK(chmod(cbtest_tmpdir(), 0711));
        ASSERT_OK(chmod(ret_path, 0666));
        return fd;
}


/* Fork a child that connects to sock and then execs o->argv (the socket
 * stays open across exec) or pauses.  Returns once the child is connected
 * and has exec'd or is pausing; *ret_stage and *ret_errno report a
 * failure in the child (ST_READY/0 on success). */
pid_t spawn_peer(const char *sock, const spawn_opts *o, int *ret_stage, int *ret_errno) {
        int sync[2], msg[2] = { 0, 0 };
        pid_t pid, parent;
        ssize_t k;

        ASSERT_OK(pipe2(sync, O_CLOEXEC));
        parent = getpid();
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                struct sockaddr_un sa;
                int fd;

                close(sync[0]);
                if (o->drop && (setgroups(0, NULL) < 0 || setgid(o->gid) < 0 || setuid(o->uid) < 0)) {
                        msg[0] = ST_SETUP, msg[1] = errno;
                        goto fail;
                }
                /* Die with the test: a failed ASSERT must not leave a
                 * paused child holding the test's stdout open.  (After the
                 * uid change, which clears the death signal.) */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(126);
                sockaddr_for(sock, &sa);
                fd = socket(AF_UNIX, SOCK_STREAM, 0);     /* no CLOEXEC: kept across exec */
                if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                        msg[0] = ST_CONNECT, msg[1] = errno;
                        goto fail;
                }
                if (o->argv) {
                        execv(o->argv[0], o->argv);
                        msg[0] = ST_EXEC, msg[1] = errno;
                        goto fail;
                }
                (void)!write(sync[1], msg, sizeof(msg));
                for (;;)
                        pause();
        fail:
                (void)!write(sync[1], msg, sizeof(msg));
                _exit(127);
        }
        close(sync[1]);
        /* EOF without a message: the CLOEXEC write end went away in exec. */
        do
                k = read(sync[0], msg, sizeof(msg));
        while (k < 0 && errno == EINTR);
        close(sync[0]);
        if (k == 0) {
                msg[0] = ST_READY, msg[1] = 0;
        } else {
                ASSERT_EQ(k, (ssize_t)sizeof(msg));
        }
        *ret_stage = msg[0];
        *ret_errno = msg[1];
        return pid;
}

/* spawn_peer that must succeed; returns the accepted connection. */
int spawn_ok(int lfd, const char *sock, const spawn_opts *o, pid_t *ret_pid) {
        int stage, err, c;

        *ret_pid = spawn_peer(sock, o, &stage, &err);
        if (stage != ST_READY)
                cbtest_fail(__FILE__, __LINE__, "child failed at stage %d: %s", stage, strerror(err));
        c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        ASSERT_TRUE(c >= 0);
        return c;
}

void kill_reap(pid_t pid) {
        int status;

        ASSERT_OK(kill(pid, SIGKILL));
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFSIGNALED(status));
}

void need_root(void) {
        if (geteuid() != 0)
                cbtest_skip("the remaining tests need root (setuid, namespaces, cgroups)");
}

unsigned read_sysctl(const char *path, unsigned dflt) {
        char *p = (char *)cbtest_read_file(path, NULL);
        unsigned v = dflt;

        if (p && sscanf(p, "%u", &v) != 1)
                v = dflt;
        free(p);
        return v;
}
