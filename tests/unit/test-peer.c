/* SPDX-License-Identifier: Apache-2.0 */
/*
 * broker/peer.c against real processes and sockets: ourselves over a
 * socketpair, children that exec other binaries, drop to other uids, die,
 * or live in other pid namespaces.  Tests that need root (setuid, pid and
 * mount namespaces, cgroups) come last; without root the program skips
 * there (exit 77) after the others passed.
 */
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

#define ST_READY   0   /* child connected and is pausing (no exec) */
#define ST_SETUP   1
#define ST_CONNECT 2
#define ST_EXEC    3

/* ---- helpers ----------------------------------------------------------- */

static void sha256_file(const char *path, unsigned char out[32]) {
        size_t n;
        unsigned char *p = cbtest_read_file(path, &n);

        ASSERT_TRUE(p != NULL);
        crypto_hash_sha256(out, p, n);
        free(p);
}

static void copy_file(const char *from, const char *to, mode_t mode) {
        size_t n;
        unsigned char *p = cbtest_read_file(from, &n);

        ASSERT_TRUE(p != NULL);
        ASSERT_OK(cbtest_write_file(to, p, n));
        ASSERT_OK(chmod(to, mode));
        free(p);
}

/* The "0::" line of /proc/<self>/cgroup, "" if none. */
static void self_cgroup(char *out, size_t cap) {
        char *p = (char *)cbtest_read_file("/proc/self/cgroup", NULL), *l;

        ASSERT_TRUE(p != NULL);
        out[0] = '\0';
        for (l = strtok(p, "\n"); l; l = strtok(NULL, "\n"))
                if (strncmp(l, "0::", 3) == 0)
                        snprintf(out, cap, "%s", l + 3);
        free(p);
}

static void sockaddr_for(const char *path, struct sockaddr_un *sa) {
        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        ASSERT_TRUE(strlen(path) < sizeof(sa->sun_path));
        strcpy(sa->sun_path, path);
}

/* A listening socket in the test directory that any uid can connect to. */
static int listen_at(const char *name, char *ret_path, size_t cap) {
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

typedef struct spawn_opts {
        bool drop;             /* setgroups/setgid/setuid before connecting */
        uid_t uid;
        gid_t gid;
        char *const *argv;     /* exec this after connecting, or NULL: pause() */
} spawn_opts;

/* Fork a child that connects to sock and then execs o->argv (the socket
 * stays open across exec) or pauses.  Returns once the child is connected
 * and has exec'd or is pausing; *ret_stage and *ret_errno report a
 * failure in the child (ST_READY/0 on success). */
static pid_t spawn_peer(const char *sock, const spawn_opts *o, int *ret_stage, int *ret_errno) {
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
static int spawn_ok(int lfd, const char *sock, const spawn_opts *o, pid_t *ret_pid) {
        int stage, err, c;

        *ret_pid = spawn_peer(sock, o, &stage, &err);
        if (stage != ST_READY)
                cbtest_fail(__FILE__, __LINE__, "child failed at stage %d: %s", stage, strerror(err));
        c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        ASSERT_TRUE(c >= 0);
        return c;
}

static void kill_reap(pid_t pid) {
        int status;

        ASSERT_OK(kill(pid, SIGKILL));
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFSIGNALED(status));
}

static void need_root(void) {
        if (geteuid() != 0)
                cbtest_skip("the remaining tests need root (setuid, namespaces, cgroups)");
}

static unsigned read_sysctl(const char *path, unsigned dflt) {
        char *p = (char *)cbtest_read_file(path, NULL);
        unsigned v = dflt;

        if (p && sscanf(p, "%u", &v) != 1)
                v = dflt;
        free(p);
        return v;
}

/* ---- tests ------------------------------------------------------------- */

TEST(sha256_fd_matches_contents) {
        const char *path = cbtest_path(cbtest_tmpdir(), "blob");
        size_t n = 3 * 64 * 1024 + 17;    /* crosses the 64 KiB read size */
        unsigned char *p = malloc(n), want[32], got[32];
        int fd, pfd[2];

        ASSERT_TRUE(p != NULL);
        randombytes_buf(p, n);
        ASSERT_OK(cbtest_write_file(path, p, n));
        crypto_hash_sha256(want, p, n);

        fd = open(path, O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(cb_sha256_fd(fd, got));
        ASSERT_MEMEQ(got, want, 32);
        /* The fd position does not matter. */
        ASSERT_EQ(lseek(fd, 12345, SEEK_SET), 12345);
        memset(got, 0, sizeof(got));
        ASSERT_OK(cb_sha256_fd(fd, got));
        ASSERT_MEMEQ(got, want, 32);
        ASSERT_EQ(lseek(fd, 0, SEEK_CUR), 12345);
        close(fd);

        /* Empty file. */
        ASSERT_OK(cbtest_write_file(path, "", 0));
        crypto_hash_sha256(want, (const unsigned char *)"", 0);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(cb_sha256_fd(fd, got));
        ASSERT_MEMEQ(got, want, 32);
        close(fd);

        /* Not a regular file. */
        ASSERT_OK(pipe2(pfd, O_CLOEXEC));
        ASSERT_ERR(cb_sha256_fd(pfd[0], got), -EINVAL);
        ASSERT_TRUE(cb_error_last()[0] != '\0');
        close(pfd[0]);
        close(pfd[1]);
        free(p);
}

TEST(identify_self_over_socketpair) {
        char exe[PATH_MAX], cg[CB_CGROUP_MAX], hex[65];
        unsigned char want[32];
        cb_exe_cache *cache = cb_exe_cache_new(8);
        cb_peer p, q;
        ssize_t n;
        int sv[2];

        ASSERT_TRUE(cache != NULL);
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        ASSERT_TRUE(n > 0);
        exe[n] = '\0';
        sha256_file(exe, want);
        sodium_bin2hex(hex, sizeof(hex), want, sizeof(want));
        self_cgroup(cg, sizeof(cg));

        ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
        /* Twice through the cache, once without one: all three agree. */
        for (int round = 0; round < 3; round++) {
                memset(&p, 0xa5, sizeof(p));
                /* The cgroup only when asked for. */
                ASSERT_OK(cb_peer_identify(sv[0], round < 2 ? cache : NULL, round == 1 ? 0 : CB_PEER_CGROUP, &p));
                ASSERT_EQ(p.uid, getuid());
                ASSERT_EQ(p.gid, getgid());
                ASSERT_EQ(p.pid, getpid());
                ASSERT_STREQ(p.exe_path, exe);
                ASSERT_MEMEQ(p.exe_sha256, want, 32);
                ASSERT_STREQ(p.exe_sha256_hex, hex);
                ASSERT_EQ(p.cgroup_known, round != 1);
                ASSERT_STREQ(p.cgroup, round == 1 ? "" : cg);
                ASSERT_TRUE(p.pidfd >= 0);
                {
                        /* Pinned exactly when the kernel has SO_PEERPIDFD (6.5+). */
                        int probe = -1;
                        socklen_t plen = sizeof(probe);
                        bool have = getsockopt(sv[0], SOL_SOCKET, 77 /* SO_PEERPIDFD */, &probe, &plen) == 0;

                        if (probe >= 0)
                                close(probe);
                        ASSERT_EQ(p.pidfd_pinned, have);
                }
                ASSERT_TRUE(fcntl(p.pidfd, F_GETFD) & FD_CLOEXEC);
                ASSERT_EQ(cb_peer_alive(&p), 1);
                cb_peer_done(&p);
                ASSERT_EQ(p.pidfd, -1);
                ASSERT_EQ(cb_peer_alive(&p), 0);
        }

        /* A failure leaves *ret alone. */
        memset(&q, 0x5a, sizeof(q));
        {
                int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                ASSERT_TRUE(s >= 0);
                ASSERT_ERR(cb_peer_identify(s, cache, 0, &q), -EPERM);   /* not connected: pid 0 */
                close(s);
        }
        ASSERT_EQ(q.pid, (pid_t)0x5a5a5a5a);
        close(sv[0]);
        close(sv[1]);
        cb_exe_cache_free(cache);
}

TEST(identify_child_that_exec_d_another_binary) {
        /* A program whose name has spaces and parentheses ("sl) 9 (x"):
         * reported as it is, path and hash. */
        const char *prog = cbtest_path(cbtest_tmpdir(), "sl) 9 (x");
        char sock[PATH_MAX], real[PATH_MAX];
        char *argv[] = { (char *)prog, (char *)"5", NULL };
        spawn_opts o = { .argv = argv };
        unsigned char want[32];
        cb_peer p;
        pid_t pid;
        int lfd, c;

        copy_file("/bin/sleep", prog, 0755);
        ASSERT_TRUE(realpath(prog, real) != NULL);
        sha256_file(prog, want);
        lfd = listen_at("exec.sock", sock, sizeof(sock));
        c = spawn_ok(lfd, sock, &o, &pid);

        ASSERT_OK(cb_peer_identify(c, NULL, 0, &p));
        ASSERT_EQ(p.pid, pid);
        ASSERT_EQ(p.uid, getuid());
        ASSERT_STREQ(p.exe_path, real);
        ASSERT_MEMEQ(p.exe_sha256, want, 32);
        ASSERT_EQ(cb_peer_alive(&p), 1);
        cb_peer_done(&p);
        kill_reap(pid);
        close(c);

        /* And the system's own binary, whatever /bin/sleep resolves to. */
        argv[0] = (char *)"/bin/sleep";
        ASSERT_TRUE(realpath("/bin/sleep", real) != NULL);
        sha256_file(real, want);
        c = spawn_ok(lfd, sock, &o, &pid);
        ASSERT_OK(cb_peer_identify(c, NULL, 0, &p));
        ASSERT_STREQ(p.exe_path, real);
        ASSERT_MEMEQ(p.exe_sha256, want, 32);
        cb_peer_done(&p);
        kill_reap(pid);
        close(c);
        close(lfd);
}

TEST(huge_executable_is_refused_not_hashed) {
        /* A sparse file costs its owner nothing; hashing it would stall a
         * server thread.  Above CB_EXE_HASH_MAX: refused, at once. */
        const char *prog = cbtest_path(cbtest_tmpdir(), "huge-sleep");
        char *argv[] = { (char *)prog, (char *)"5", NULL };
        spawn_opts o = { .argv = argv };
        char sock[PATH_MAX];
        cb_peer p;
        pid_t pid;
        int lfd, c;

        copy_file("/bin/sleep", prog, 0755);
        ASSERT_OK(truncate(prog, (off_t)CB_EXE_HASH_MAX + 1)); /* still a valid ELF: zeros after it */
        lfd = listen_at("huge.sock", sock, sizeof(sock));
        c = spawn_ok(lfd, sock, &o, &pid);
        /* -EFBIG comes from the size check, which runs before the file is
         * opened: nothing was read. */
        ASSERT_ERR(cb_peer_identify(c, NULL, 0, &p), -EFBIG);
        ASSERT_CONTAINS(cb_error_last(), "MiB the broker will hash");
        kill_reap(pid);
        close(c);
        close(lfd);
        ASSERT_OK(unlink(prog));
}

TEST(dead_peer_is_never_identified) {
        spawn_opts o = { .argv = NULL };
        struct ucred uc;
        socklen_t len = sizeof(uc);
        char sock[PATH_MAX];
        siginfo_t si;
        cb_peer p, q;
        pid_t pid;
        int lfd, c;

        lfd = listen_at("dead.sock", sock, sizeof(sock));
        c = spawn_ok(lfd, sock, &o, &pid);
        ASSERT_OK(cb_peer_identify(c, NULL, 0, &p));
        ASSERT_EQ(p.pid, pid);
        ASSERT_EQ(cb_peer_alive(&p), 1);

        /* Zombie: killed, not yet reaped.  Signal 0 still reaches it; the
         * pidfd poll must not. */
        ASSERT_OK(kill(pid, SIGKILL));
        memset(&si, 0, sizeof(si));
        ASSERT_OK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT));
        ASSERT_EQ(si.si_pid, pid);
        ASSERT_EQ(cb_peer_alive(&p), 0);
        cb_error_clear();
        ASSERT_ERR(cb_peer_identify(c, NULL, 0, &q), -ESRCH);
        ASSERT_TRUE(cb_error_last()[0] != '\0');

        /* Reaped. */
        ASSERT_EQ(waitpid(pid, NULL, 0), pid);
        ASSERT_OK(getsockopt(c, SOL_SOCKET, SO_PEERCRED, &uc, &len));
        ASSERT_EQ(uc.pid, pid);   /* the kernel still reports the old pid */
        ASSERT_EQ(cb_peer_alive(&p), 0);
        cb_error_clear();
        ASSERT_ERR(cb_peer_identify(c, NULL, 0, &q), -ESRCH);
        ASSERT_CONTAINS(cb_error_last(), "exited");
        cb_peer_done(&p);
        close(c);
        close(lfd);
}

/* Flip a byte the loader never reads: the last section header's sh_entsize
 * (section headers are for linkers and debuggers, not for exec). */
static void patch_elf_in_place(const char *path) {
        Elf64_Ehdr eh;
        unsigned char b;
        off_t at;
        int fd = open(path, O_RDWR | O_CLOEXEC);

        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(pread(fd, &eh, sizeof(eh), 0), (ssize_t)sizeof(eh));
        ASSERT_TRUE(memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64);
        ASSERT_TRUE(eh.e_shnum > 0 && eh.e_shentsize == sizeof(Elf64_Shdr));
        at = (off_t)(eh.e_shoff + (Elf64_Off)(eh.e_shnum - 1) * eh.e_shentsize + offsetof(Elf64_Shdr, sh_entsize) + 7);
        ASSERT_EQ(pread(fd, &b, 1, at), 1);
        b ^= 0x40;
        ASSERT_EQ(pwrite(fd, &b, 1, at), 1);
        close(fd);
}

static void run_and_identify(int lfd, const char *sock, const char *prog, cb_exe_cache *cache, unsigned char out[32]) {
        char *argv[] = { (char *)prog, (char *)"5", NULL };
        spawn_opts o = { .argv = argv };
        cb_peer p;
        pid_t pid;
        int c = spawn_ok(lfd, sock, &o, &pid);

        ASSERT_OK(cb_peer_identify(c, cache, 0, &p));
        ASSERT_EQ(p.pid, pid);
        memcpy(out, p.exe_sha256, 32);
        cb_peer_done(&p);
        kill_reap(pid);
        close(c);
}

TEST(cache_never_serves_a_stale_hash) {
        const char *prog = cbtest_path(cbtest_tmpdir(), "prog");
        unsigned char h1[32], h2[32], h3[32], want[32], got[32];
        cb_exe_cache *cache = cb_exe_cache_new(4);
        struct timespec nap = { 2, 600 * 1000 * 1000 };
        struct stat st1, st2;
        char sock[PATH_MAX];
        int lfd;

        ASSERT_TRUE(cache != NULL);
        lfd = listen_at("cache.sock", sock, sizeof(sock));
        copy_file("/bin/sleep", prog, 0755);
        /* peer.c caches only files whose ctime is a couple of seconds old
         * (a younger file could change within one timestamp tick); wait so
         * that the first hash does land in the cache. */
        ASSERT_OK(nanosleep(&nap, NULL));
        ASSERT_OK(stat(prog, &st1));

        sha256_file(prog, want);
        run_and_identify(lfd, sock, prog, cache, h1);
        ASSERT_MEMEQ(h1, want, 32);
        run_and_identify(lfd, sock, prog, cache, got);   /* served from the cache */
        ASSERT_MEMEQ(got, want, 32);

        /* Same inode, same size, one byte different. */
        patch_elf_in_place(prog);
        ASSERT_OK(stat(prog, &st2));
        ASSERT_EQ(st2.st_ino, st1.st_ino);
        ASSERT_EQ(st2.st_size, st1.st_size);
        ASSERT_TRUE(st2.st_ctim.tv_sec != st1.st_ctim.tv_sec || st2.st_ctim.tv_nsec != st1.st_ctim.tv_nsec);
        sha256_file(prog, want);
        run_and_identify(lfd, sock, prog, cache, h2);
        ASSERT_MEMEQ(h2, want, 32);
        ASSERT_FALSE(memcmp(h1, h2, 32) == 0);

        /* Same inode, longer. */
        {
                int fd = open(prog, O_WRONLY | O_APPEND | O_CLOEXEC);

                ASSERT_TRUE(fd >= 0);
                ASSERT_EQ(write(fd, "tail", 4), 4);
                close(fd);
        }
        sha256_file(prog, want);
        run_and_identify(lfd, sock, prog, cache, h3);
        ASSERT_MEMEQ(h3, want, 32);
        ASSERT_FALSE(memcmp(h2, h3, 32) == 0);

        cb_exe_cache_free(cache);
        close(lfd);
}

TEST(cache_eviction_keeps_answers_right) {
        char exe[PATH_MAX], sock[PATH_MAX], real[PATH_MAX];
        unsigned char self_h[32], sleep_h[32], got[32];
        cb_exe_cache *one = cb_exe_cache_new(1), *none = cb_exe_cache_new(0);
        ssize_t n;
        int sv[2], lfd;

        ASSERT_TRUE(one != NULL && none != NULL);
        n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        ASSERT_TRUE(n > 0);
        exe[n] = '\0';
        sha256_file(exe, self_h);
        ASSERT_TRUE(realpath("/bin/sleep", real) != NULL);
        sha256_file(real, sleep_h);
        ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
        lfd = listen_at("evict.sock", sock, sizeof(sock));

        for (int i = 0; i < 3; i++) {
                cb_exe_cache *c = i == 2 ? none : one;
                cb_peer p;

                ASSERT_OK(cb_peer_identify(sv[0], c, 0, &p));
                ASSERT_MEMEQ(p.exe_sha256, self_h, 32);
                cb_peer_done(&p);
                run_and_identify(lfd, sock, "/bin/sleep", c, got);
                ASSERT_MEMEQ(got, sleep_h, 32);
        }
        cb_exe_cache_free(one);
        cb_exe_cache_free(none);
        cb_exe_cache_free(NULL);
        close(sv[0]);
        close(sv[1]);
        close(lfd);
}

/* ---- root only from here ----------------------------------------------- */

TEST(peer_with_another_uid) {
        spawn_opts o = { .drop = true, .uid = 1001, .gid = 1002 };
        char sock[PATH_MAX];
        int lfd, c, stage, err;
        cb_peer p;
        pid_t pid;

        need_root();
        lfd = listen_at("uid.sock", sock, sizeof(sock));
        pid = spawn_peer(sock, &o, &stage, &err);
        if (stage == ST_SETUP) {
                waitpid(pid, NULL, 0);
                cbtest_skip("cannot switch to uid 1001: %s", strerror(err));
        }
        ASSERT_EQ(stage, ST_READY);
        c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        ASSERT_TRUE(c >= 0);
        ASSERT_OK(cb_peer_identify(c, NULL, 0, &p));
        ASSERT_EQ(p.uid, 1001);
        ASSERT_EQ(p.gid, 1002);
        ASSERT_EQ(p.pid, pid);
        ASSERT_EQ(cb_peer_alive(&p), 1);   /* as root; EPERM from the signal check counts as alive too */
        cb_peer_done(&p);
        kill_reap(pid);
        close(c);
        close(lfd);
}

static void expect_refused(uid_t uid, gid_t gid, const char *needle) {
        spawn_opts o = { .drop = true, .uid = uid, .gid = gid };
        char sock[PATH_MAX];
        int lfd, c;
        cb_peer p;
        pid_t pid;

        lfd = listen_at("overflow.sock", sock, sizeof(sock));
        c = spawn_ok(lfd, sock, &o, &pid);
        cb_error_clear();
        memset(&p, 0, sizeof(p));
        ASSERT_ERR(cb_peer_identify(c, NULL, 0, &p), -EPERM);
        ASSERT_CONTAINS(cb_error_last(), needle);
        ASSERT_EQ(p.pid, 0);
        kill_reap(pid);
        close(c);
        close(lfd);
}

TEST(overflow_uid_and_gid_are_refused) {
        unsigned ou = read_sysctl("/proc/sys/kernel/overflowuid", 65534);
        unsigned og = read_sysctl("/proc/sys/kernel/overflowgid", 65534);

        need_root();
        expect_refused(ou, 1002, "overflow uid");
        expect_refused(1001, og, "overflow gid");
}

/* Run fn in a child that is pid 1 of a new pid namespace (and has a mount
 * namespace with that namespace's /proc); returns its exit status, or -1
 * if namespaces are not available here. */
static int in_new_pidns(void (*fn)(void *), void *arg, bool mount_proc) {
        int status;
        pid_t c;

        (void)cbtest_tmpdir();   /* created (and owned) by this process */
        c = fork();
        ASSERT_TRUE(c >= 0);
        if (c == 0) {
                pid_t init;

                if (unshare(CLONE_NEWPID | (mount_proc ? CLONE_NEWNS : 0)) < 0)
                        _exit(77);
                if (mount_proc && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                        _exit(77);
                init = fork();
                if (init < 0)
                        _exit(2);
                if (init == 0) {
                        if (getpid() != 1)
                                _exit(3);
                        if (mount_proc && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                                _exit(77);
                        fn(arg);
                        _exit(0);
                }
                if (waitpid(init, &status, 0) != init)
                        _exit(4);
                _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 5);
        }
        ASSERT_EQ(waitpid(c, &status, 0), c);
        ASSERT_TRUE(WIFEXITED(status));
        return WEXITSTATUS(status) == 77 ? -1 : WEXITSTATUS(status);
}

static void identify_from_inside(void *arg) {
        int fd = *(int *)arg;
        cb_peer p;

        cb_error_clear();
        ASSERT_ERR(cb_peer_identify(fd, NULL, 0, &p), -EPERM);
        ASSERT_CONTAINS(cb_error_last(), "pid 0");
}

TEST(peer_outside_our_pid_namespace_is_refused) {
        int sv[2], r;

        need_root();
        /* socketpair() records its creator (this process) as the peer of
         * both ends; seen from a child pid namespace it has pid 0. */
        ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
        r = in_new_pidns(identify_from_inside, &sv[1], false);
        if (r < 0)
                cbtest_skip("cannot create a pid namespace");
        ASSERT_EQ(r, 0);
        close(sv[0]);
        close(sv[1]);
}

/* In a fresh pid namespace pids are predictable: kill the peer (pid 2),
 * have the kernel hand pid 2 to a new process running another binary, and
 * identify the old connection. */
static void pid_reuse_inside(void *arg) {
        const char *sock = arg;
        char *argv[] = { (char *)"/bin/sleep", (char *)"5", NULL };
        spawn_opts pause_o = { .argv = NULL }, exec_o = { .argv = argv };
        char real[PATH_MAX], link[PATH_MAX];
        int lfd, c, c2, fd;
        pid_t a, b;
        cb_peer p, q;
        ssize_t n;

        {
                struct sockaddr_un sa;

                sockaddr_for(sock, &sa);
                (void)unlink(sock);
                lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                ASSERT_TRUE(lfd >= 0);
                ASSERT_OK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)));
                ASSERT_OK(listen(lfd, 8));
        }
        c = spawn_ok(lfd, sock, &pause_o, &a);
        ASSERT_EQ(a, 2);
        ASSERT_OK(cb_peer_identify(c, NULL, 0, &p));
        ASSERT_EQ(p.pid, 2);
        kill_reap(a);

        fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, "1", 1), 1);
        close(fd);
        c2 = spawn_ok(lfd, sock, &exec_o, &b);
        ASSERT_EQ(b, a);   /* the pid was recycled */
        ASSERT_TRUE(realpath("/bin/sleep", real) != NULL);
        n = readlink("/proc/2/exe", link, sizeof(link) - 1);
        ASSERT_TRUE(n > 0);
        link[n] = '\0';
        ASSERT_STREQ(link, real);   /* /proc/2 now shows the newcomer */

        ASSERT_EQ(cb_peer_alive(&p), 0);
        cb_error_clear();
        ASSERT_ERR(cb_peer_identify(c, NULL, 0, &q), -ESRCH);
        ASSERT_TRUE(cb_error_last()[0] != '\0');
        /* The newcomer's own connection is fine. */
        ASSERT_OK(cb_peer_identify(c2, NULL, 0, &q));
        ASSERT_EQ(q.pid, 2);
        ASSERT_STREQ(q.exe_path, real);
        cb_peer_done(&q);
        cb_peer_done(&p);
        kill_reap(b);
}

TEST(recycled_pid_does_not_inherit_identity) {
        char sock[PATH_MAX];
        int r;

        need_root();
        snprintf(sock, sizeof(sock), "%s", cbtest_path(cbtest_tmpdir(), "reuse.sock"));
        r = in_new_pidns(pid_reuse_inside, sock, true);
        if (r < 0)
                cbtest_skip("cannot create pid and mount namespaces");
        ASSERT_EQ(r, 0);
}

/* ---- cgroup paths ------------------------------------------------------ */

/* The cgroup2 mount point, or false. */
static bool cgroup2_mount(char *out, size_t cap) {
        char *p = (char *)cbtest_read_file("/proc/self/mountinfo", NULL), *l;
        bool found = false;

        ASSERT_TRUE(p != NULL);
        for (l = strtok(p, "\n"); l && !found; l = strtok(NULL, "\n")) {
                char root[PATH_MAX], mnt[PATH_MAX];
                const char *sep = strstr(l, " - cgroup2 ");

                if (sep && sscanf(l, "%*s %*s %*s %4095s %4095s", root, mnt) == 2 && strcmp(root, "/") == 0) {
                        snprintf(out, cap, "%s", mnt);
                        found = true;
                }
        }
        free(p);
        return found;
}

/* Make a cgroup whose path (as /proc/<pid>/cgroup shows it) is exactly len
 * bytes, under our own; rel gets that path, dirs the directories to remove
 * (deepest last).  false if cgroups cannot be created here. */
static bool make_cgroup(const char *mnt, size_t len, char *rel, size_t relcap, char dirs[][PATH_MAX],
                        size_t *ndirs) {
        char own[CB_CGROUP_MAX];

        self_cgroup(own, sizeof(own));
        snprintf(rel, relcap, "%s/cbtest-%d-%zu", strcmp(own, "/") == 0 ? "" : own, (int)getpid(), len);
        *ndirs = 0;
        for (;;) {
                ASSERT_TRUE(*ndirs < 8);
                snprintf(dirs[*ndirs], PATH_MAX, "%s%s", mnt, rel);
                if (mkdir(dirs[*ndirs], 0755) < 0) {
                        if (*ndirs == 0)
                                return false;
                        cbtest_fail(__FILE__, __LINE__, "mkdir %s: %s", dirs[*ndirs], strerror(errno));
                }
                (*ndirs)++;
                size_t have = strlen(rel);
                if (have == len)
                        return true;
                ASSERT_TRUE(have + 2 <= len);
                size_t k = len - have - 1;   /* one "/" + k name bytes */
                if (k > 200)
                        k = 200;
                if (len - have - 1 - k == 1)   /* leave no 1-byte remainder: "/" alone is no name */
                        k--;
                size_t at = have;
                rel[at++] = '/';
                memset(rel + at, 'c', k);
                rel[at + k] = '\0';
        }
}

/* What cgroup_case() made, undone at exit too so a failed ASSERT leaves
 * no cgroups behind on the host. */
static struct {
        char dirs[8][PATH_MAX];
        size_t n;
        pid_t child;
        pid_t owner;
} cg;

static void cgroup_cleanup(void) {
        if (getpid() != cg.owner)
                return;
        if (cg.child > 0) {
                (void)kill(cg.child, SIGKILL);
                (void)waitpid(cg.child, NULL, 0);
                cg.child = 0;
        }
        while (cg.n > 0)
                (void)rmdir(cg.dirs[--cg.n]);
}

static void cgroup_case(const char *mnt, const char *sock, int lfd, size_t len, bool fits) {
        char rel[2 * CB_CGROUP_MAX], procs[PATH_MAX + 32], num[32];
        spawn_opts o = { .argv = NULL };
        cb_peer p;
        int c, r;

        if (!cg.owner) {
                cg.owner = getpid();
                ASSERT_OK(atexit(cgroup_cleanup));
        }
        if (!make_cgroup(mnt, len, rel, sizeof(rel), cg.dirs, &cg.n))
                cbtest_skip("cannot create cgroups under %s: %s", mnt, strerror(errno));
        ASSERT_EQ(strlen(rel), len);
        c = spawn_ok(lfd, sock, &o, &cg.child);
        snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg.dirs[cg.n - 1]);
        snprintf(num, sizeof(num), "%d", (int)cg.child);
        r = cbtest_write_file(procs, num, strlen(num));
        if (r < 0)
                cbtest_skip("cannot move a process into %s: %s", procs, strerror(-r));
        r = cb_peer_identify(c, NULL, CB_PEER_CGROUP, &p);
        if (fits) {
                ASSERT_OK(r);
                ASSERT_STREQ(p.cgroup, rel);
                cb_peer_done(&p);
        } else {
                ASSERT_ERR(r, -ENAMETOOLONG);
                ASSERT_CONTAINS(cb_error_last(), "cgroup path longer");
        }
        kill_reap(cg.child);
        cg.child = 0;
        close(c);
        while (cg.n > 0)
                ASSERT_OK(rmdir(cg.dirs[--cg.n]));
}

TEST(cgroup_path_is_exact_or_refused) {
        char mnt[PATH_MAX], sock[PATH_MAX];
        int lfd;

        need_root();
        if (!cgroup2_mount(mnt, sizeof(mnt)))
                cbtest_skip("no cgroup2 mount");
        lfd = listen_at("cgroup.sock", sock, sizeof(sock));
        cgroup_case(mnt, sock, lfd, CB_CGROUP_MAX - 1, true);   /* the longest that fits */
        cgroup_case(mnt, sock, lfd, CB_CGROUP_MAX, false);      /* one more: refused, not cut */
        close(lfd);
}
