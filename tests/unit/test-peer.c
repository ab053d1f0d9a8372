/* SPDX-License-Identifier: Apache-2.0 */
/*
 * broker/identity/peer.c against real processes and sockets: ourselves over a
 * socketpair, children that exec other binaries or die, and the exe hash
 * cache.  What needs root (other uids, pid namespaces, cgroups) is in
 * test-peer-root.c.
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
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "cbtest.h"
#include "error.h"
#include "peer.h"

#include "peer-fixture.h"

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

/* What is kept of a process under its pidfs inode (peer_proc.c) follows
 * an execve(): the inode stays, the executable changes, and the name shown
 * is read again for the new file -- and again when the same file is
 * replaced in place.  Without pidfs (ino 0) nothing is kept. */
TEST(process_cache_follows_exec) {
        const char *prog = cbtest_path(cbtest_tmpdir(), "after-exec");
        char self_real[PATH_MAX], prog_real[PATH_MAX];
        int go[2];
        struct ucred uc;
        cb_peer p;
        pid_t pid;
        int pidfd;
        uint64_t ino;

        copy_file("/bin/sleep", prog, 0755);
        ASSERT_TRUE(realpath(prog, prog_real) != NULL);
        ASSERT_TRUE(realpath("/proc/self/exe", self_real) != NULL);
        ASSERT_OK(pipe2(go, O_CLOEXEC));
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                char b;
                close(go[1]);
                if (read(go[0], &b, 1) == 1)
                        execl(prog, prog, "30", (char *)NULL);
                _exit(127);
        }
        close(go[0]);
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        ASSERT_TRUE(pidfd >= 0);
        ino = cb_pidfd_ino(pidfd);
        if (!ino) {
                kill_reap(pid);
                close(go[1]);
                close(pidfd);
                fprintf(stderr, "# no pidfs here (Linux < 6.9): nothing is kept per process, nothing to test\n");
                return;
        }
        {
                int self = (int)syscall(SYS_pidfd_open, getpid(), 0);
                ASSERT_TRUE(self >= 0);
                ASSERT_TRUE(cb_pidfd_ino(self) != ino); /* one inode per process */
                close(self);
        }
        uc = (struct ucred){ .pid = pid, .uid = getuid(), .gid = getgid() };
        for (int round = 0; round < 2; round++) { /* read, then kept */
                ASSERT_OK(cb_peer_identify_pidfd(&uc, pidfd, ino, NULL, CB_PEER_SKIP_HASH, &p));
                ASSERT_STREQ(p.exe_path, self_real);
                cb_peer_done(&p);
        }
        /* execve(): same pid, same pidfd, same inode; another file. */
        ASSERT_EQ(write(go[1], "x", 1), 1);
        close(go[1]);
        for (int i = 0; i < 500; i++) {
                char now[PATH_MAX];
                char path[64];
                snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
                ssize_t n = readlink(path, now, sizeof(now) - 1);
                if (n > 0 && (now[n] = '\0', strcmp(now, prog_real) == 0))
                        break;
                usleep(10000);
        }
        ASSERT_EQ(cb_pidfd_ino(pidfd), ino);
        ASSERT_OK(cb_peer_identify_pidfd(&uc, pidfd, ino, NULL, CB_PEER_SKIP_HASH, &p));
        ASSERT_STREQ(p.exe_path, prog_real);
        cb_peer_done(&p);
        kill_reap(pid);
        close(pidfd);
}

/* The server reads SO_PEERCRED once per connection (cb_peer_cred_read, at
 * accept) and identifies every request with it (cb_peer_identify_cred):
 * the same answer as cb_peer_identify, the executable still read per
 * request (an exec between requests shows), and a dead peer refused
 * although the cached credentials still name its pid. */
TEST(creds_read_at_accept_identify_every_request) {
        char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)"sleep 0.3; exec /bin/sleep 5", NULL };
        spawn_opts o = { .argv = argv };
        char sock[PATH_MAX], sh[PATH_MAX], sleep_real[PATH_MAX], exe[64], now[PATH_MAX];
        unsigned char want[32];
        struct ucred uc, bad;
        siginfo_t si;
        cb_peer p, q;
        pid_t pid;
        int lfd, c;

        ASSERT_TRUE(realpath("/bin/sh", sh) != NULL);
        ASSERT_TRUE(realpath("/bin/sleep", sleep_real) != NULL);
        lfd = listen_at("cred.sock", sock, sizeof(sock));
        c = spawn_ok(lfd, sock, &o, &pid);
        ASSERT_OK(cb_peer_cred_read(c, &uc));
        ASSERT_EQ(uc.pid, pid);
        ASSERT_EQ(uc.uid, getuid());

        /* Request 1: the shell, as cb_peer_identify sees it. */
        ASSERT_OK(cb_peer_identify_cred(c, &uc, NULL, 0, &p));
        ASSERT_OK(cb_peer_identify(c, NULL, 0, &q));
        ASSERT_EQ(p.pid, q.pid);
        ASSERT_EQ(p.uid, q.uid);
        ASSERT_EQ(p.gid, q.gid);
        ASSERT_STREQ(p.exe_path, sh);
        ASSERT_STREQ(p.exe_path, q.exe_path);
        ASSERT_MEMEQ(p.exe_sha256, q.exe_sha256, 32);
        ASSERT_EQ(p.pidfd_pinned, q.pidfd_pinned);
        cb_peer_done(&q);
        cb_peer_done(&p);

        /* It execs /bin/sleep; request 2 with the same cached credentials
         * reports the new executable. */
        snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)pid);
        for (int i = 0; i < 500; i++) {
                ssize_t n = readlink(exe, now, sizeof(now) - 1);
                now[n > 0 ? n : 0] = '\0';
                if (!strcmp(now, sleep_real))
                        break;
                usleep(10000);
        }
        ASSERT_STREQ(now, sleep_real);
        sha256_file(sleep_real, want);
        ASSERT_OK(cb_peer_identify_cred(c, &uc, NULL, 0, &p));
        ASSERT_EQ(p.pid, pid);
        ASSERT_STREQ(p.exe_path, sleep_real);
        ASSERT_MEMEQ(p.exe_sha256, want, 32);
        cb_peer_done(&p);

        /* Credentials that cannot be a live peer's are refused as by
         * cb_peer_identify; none at all is a caller error. */
        bad = uc;
        bad.pid = 0;
        ASSERT_ERR(cb_peer_identify_cred(c, &bad, NULL, 0, &p), -EPERM);
        bad = uc;
        bad.uid = (uid_t)-1;
        ASSERT_ERR(cb_peer_identify_cred(c, &bad, NULL, 0, &p), -EPERM);
        ASSERT_ERR(cb_peer_identify_cred(c, NULL, NULL, 0, &p), -EINVAL);

        /* Dead (zombie, then reaped): the cached pid is never trusted. */
        ASSERT_OK(kill(pid, SIGKILL));
        memset(&si, 0, sizeof(si));
        ASSERT_OK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT));
        ASSERT_ERR(cb_peer_identify_cred(c, &uc, NULL, 0, &p), -ESRCH);
        ASSERT_EQ(waitpid(pid, NULL, 0), pid);
        cb_error_clear();
        ASSERT_ERR(cb_peer_identify_cred(c, &uc, NULL, 0, &p), -ESRCH);
        ASSERT_CONTAINS(cb_error_last(), "exited");
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
