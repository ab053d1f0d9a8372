/* SPDX-License-Identifier: Apache-2.0 */
/*
 * broker/identity/peer.c where it takes root to set the scene: peers under other
 * uids and the overflow uid, peers in other pid namespaces, a recycled
 * pid, cgroup paths.  Without root the program skips (exit 77).
 */
#include <stdio.h>
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

/* The overflow gid is also a real group (Debian's "nogroup"): in a user
 * namespace that maps every gid (the initial one) it cannot stand for an
 * unmapped gid, so a client whose primary group it is gets identified. */
static bool gid_map_full(void) {
        FILE *f = fopen("/proc/self/gid_map", "re");
        unsigned long a = 1, b = 1, c = 0;
        bool full;

        if (!f)
                return false;
        full = fscanf(f, " %lu %lu %lu", &a, &b, &c) == 3 && a == 0 && b == 0 && c == 4294967295UL;
        fclose(f);
        return full;
}

TEST(overflow_uid_refused_overflow_gid_only_when_unmapped) {
        unsigned ou = read_sysctl("/proc/sys/kernel/overflowuid", 65534);
        unsigned og = read_sysctl("/proc/sys/kernel/overflowgid", 65534);

        need_root();
        expect_refused(ou, 1002, "overflow uid");
        if (!gid_map_full()) {
                expect_refused(1001, og, "overflow gid");
                return;
        }
        spawn_opts o = { .drop = true, .uid = 1001, .gid = og };
        char sock[PATH_MAX];
        int lfd = listen_at("nogroup.sock", sock, sizeof(sock)), c;
        cb_peer p;
        pid_t pid;

        c = spawn_ok(lfd, sock, &o, &pid);
        ASSERT_OK(cb_peer_identify(c, NULL, 0, &p));
        ASSERT_EQ(p.uid, 1001);
        ASSERT_EQ(p.gid, og);
        cb_peer_done(&p);
        kill_reap(pid);
        close(c);
        close(lfd);
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
        /* (The broker's own mount namespace was read before this test
         * entered a new one, so the path may carry the other-namespace
         * mark: the path itself is what is checked.) */
        ASSERT_TRUE(strncmp(q.exe_path, real, strlen(real)) == 0);
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
