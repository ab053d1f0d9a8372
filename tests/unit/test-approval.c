/* SPDX-License-Identifier: Apache-2.0 */
/* The approval table: IDs, caps, who may collect, decisions, timeouts. */
#include <signal.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "approval.h"
#include "cbtest.h"
#include "error.h"
#include "policy.h"
#include "tokens.h"

static cb_peer peer_of(uid_t uid, pid_t pid, unsigned char exe_byte) {
        cb_peer p;

        memset(&p, 0, sizeof(p));
        p.uid = uid;
        p.gid = uid;
        p.pid = pid;
        p.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        ASSERT_TRUE(p.pidfd >= 0);
        p.pidfd_pinned = true; /* as from SO_PEERPIDFD */
        memset(p.exe_sha256, exe_byte, 32);
        snprintf(p.exe_path, sizeof(p.exe_path), "/usr/bin/tool%u", exe_byte);
        for (int i = 0; i < 32; i++)
                snprintf(p.exe_sha256_hex + 2 * i, 3, "%02x", exe_byte);
        return p;
}

struct events {
        char what[8][16];
        char id[8][CB_APPROVAL_ID_LEN + 1];
        size_t n;
};

static void on_event(const cb_approval *e, const char *what, void *ud) {
        struct events *ev = ud;

        ASSERT_TRUE(ev->n < 8);
        snprintf(ev->what[ev->n], sizeof(ev->what[0]), "%s", what);
        memcpy(ev->id[ev->n], e->id, sizeof(ev->id[0]));
        ev->n++;
}

TEST(add_and_dedupe) {
        cb_approvals *a = cb_approvals_new(0, 0, 120);
        cb_peer me = peer_of(1000, getpid(), 1);
        const cb_approval *e, *e2;
        char id[CB_APPROVAL_ID_LEN + 1];

        ASSERT_TRUE(a != NULL);
        ASSERT_EQ(cb_approvals_add(a, &me, "tool", "gh", CB_USE_REDEEM, 300, CB_BIND_EXE, 1000, &e), 0);
        ASSERT_EQ(strlen(e->id), CB_APPROVAL_ID_LEN);
        ASSERT_EQ(strspn(e->id, "0123456789abcdef"), CB_APPROVAL_ID_LEN);
        ASSERT_EQ(e->state, CB_APPROVAL_PENDING);
        ASSERT_EQ(e->deadline, 1120);
        ASSERT_EQ(e->uid, 1000);
        ASSERT_STREQ(e->exe_path, "/usr/bin/tool1");
        memcpy(id, e->id, sizeof(id));
        /* The same request again from the same process: the same entry. */
        ASSERT_EQ(cb_approvals_add(a, &me, "tool", "gh", CB_USE_REDEEM, 300, CB_BIND_EXE, 1001, &e2), 1);
        ASSERT_STREQ(e2->id, id);
        /* Different parameters: a new one, with another ID. */
        ASSERT_EQ(cb_approvals_add(a, &me, "tool", "gh", CB_USE_REDEEM, 60, CB_BIND_EXE, 1001, &e2), 0);
        ASSERT_TRUE(strcmp(e2->id, id) != 0);
        ASSERT_EQ(cb_approvals_count(a), 2);
        ASSERT_STREQ(cb_approvals_at(a, 0)->id, id); /* oldest first */
        close(me.pidfd);
        cb_approvals_free(a);
}

TEST(caps_and_pinning) {
        cb_approvals *a = cb_approvals_new(3, 2, 120);
        cb_peer u1 = peer_of(1000, getpid(), 1), u2 = peer_of(1001, getpid(), 1), u3 = peer_of(1002, getpid(), 1);
        const cb_approval *e;

        ASSERT_OK(cb_approvals_add(a, &u1, "t", "s", CB_USE_REDEEM, 1, 0, 0, &e));
        ASSERT_OK(cb_approvals_add(a, &u1, "t", "s", CB_USE_REDEEM, 2, 0, 0, &e));
        ASSERT_ERR(cb_approvals_add(a, &u1, "t", "s", CB_USE_REDEEM, 3, 0, 0, &e), -ENOSPC);
        ASSERT_CONTAINS(cb_error_last(), "uid 1000");
        /* A retry of a held request is still answered at the cap. */
        ASSERT_EQ(cb_approvals_add(a, &u1, "t", "s", CB_USE_REDEEM, 2, 0, 0, &e), 1);
        ASSERT_OK(cb_approvals_add(a, &u2, "t", "s", CB_USE_REDEEM, 1, 0, 0, &e));
        ASSERT_ERR(cb_approvals_add(a, &u3, "t", "s", CB_USE_REDEEM, 1, 0, 0, &e), -ENOSPC);
        ASSERT_CONTAINS(cb_error_last(), "maximum of 3");
        u3.pidfd_pinned = false;
        ASSERT_ERR(cb_approvals_add(a, &u3, "t", "s", CB_USE_REDEEM, 1, 0, 0, &e), -EOPNOTSUPP);
        ASSERT_TRUE(cb_approvals_new(0, 0, 0) == NULL);
        ASSERT_TRUE(cb_approvals_new(0, 0, CB_APPROVAL_TIMEOUT_MAX + 1) == NULL);
        close(u1.pidfd);
        close(u2.pidfd);
        close(u3.pidfd);
        cb_approvals_free(a);
}

TEST(lookup) {
        cb_approvals *a = cb_approvals_new(0, 0, 120);
        cb_peer me = peer_of(1000, getpid(), 1);
        const cb_approval *e, *f;
        char up[CB_APPROVAL_ID_LEN + 1];

        ASSERT_OK(cb_approvals_add(a, &me, "t", "s", CB_USE_REDEEM, 1, 0, 0, &e));
        ASSERT_OK(cb_approvals_lookup(a, e->id, &f));
        ASSERT_TRUE(f == e);
        snprintf(up, sizeof(up), "%.8s", e->id);
        ASSERT_OK(cb_approvals_lookup(a, up, &f));
        ASSERT_TRUE(f == e);
        for (char *p = up; *p; p++)
                if (*p >= 'a' && *p <= 'f')
                        *p = (char)(*p - 'a' + 'A');
        ASSERT_OK(cb_approvals_lookup(a, up, &f));
        up[7] = 0;
        ASSERT_ERR(cb_approvals_lookup(a, up, &f), -EINVAL);
        ASSERT_ERR(cb_approvals_lookup(a, "zzzzzzzz", &f), -EINVAL);
        ASSERT_ERR(cb_approvals_lookup(a, "0123456789abcdef0123456789abcdef0", &f), -EINVAL);
        snprintf(up, sizeof(up), "%s", e->id);
        up[0] = up[0] == '0' ? '1' : '0';
        ASSERT_ERR(cb_approvals_lookup(a, up, &f), -ENOENT);
        close(me.pidfd);
        cb_approvals_free(a);
}

TEST(approve_and_collect) {
        cb_approvals *a = cb_approvals_new(0, 0, 120);
        cb_peer me = peer_of(1000, getpid(), 1), other_uid = peer_of(1001, getpid(), 1),
                other_exe = peer_of(1000, getpid(), 2), other_pid = peer_of(1000, getppid(), 1),
                admin = peer_of(0, getppid(), 9);
        const cb_approval *e;
        cb_approval c;
        char id[CB_APPROVAL_ID_LEN + 1];

        ASSERT_OK(cb_approvals_add(a, &me, "tool", "gh", CB_USE_PROXY, 60, CB_BIND_PROCESS, 10, &e));
        memcpy(id, e->id, sizeof(id));
        /* Only the requesting process may poll; the same answer otherwise. */
        ASSERT_ERR(cb_approvals_collect(a, id, &other_uid, 11, &c), -ENOENT);
        ASSERT_ERR(cb_approvals_collect(a, id, &other_exe, 11, &c), -ENOENT);
        ASSERT_ERR(cb_approvals_collect(a, id, &other_pid, 11, &c), -ENOENT);
        ASSERT_ERR(cb_approvals_collect(a, "0123456789abcdef0123456789abcdef", &me, 11, &c), -ENOENT);
        ASSERT_OK(cb_approvals_collect(a, id, &me, 11, &c));
        ASSERT_EQ(c.state, CB_APPROVAL_PENDING);
        ASSERT_EQ(c.pidfd, -1);
        ASSERT_EQ(cb_approvals_count(a), 1); /* pending: still held */
        /* The requester's uid cannot approve; it may deny. */
        ASSERT_ERR(cb_approvals_decide(a, id, true, &other_exe, 12), -EPERM);
        ASSERT_OK(cb_approvals_check_decide(a, id, false, &other_exe));
        ASSERT_OK(cb_approvals_check_decide(a, id, true, &admin));
        ASSERT_EQ(e->state, CB_APPROVAL_PENDING); /* a check changes nothing */
        ASSERT_OK(cb_approvals_decide(a, id, true, &admin, 12));
        ASSERT_ERR(cb_approvals_decide(a, id, false, &admin, 13), -EALREADY);
        ASSERT_ERR(cb_approvals_collect(a, id, &other_uid, 13, &c), -ENOENT);
        ASSERT_OK(cb_approvals_collect(a, id, &me, 13, &c));
        ASSERT_EQ(c.state, CB_APPROVAL_APPROVED);
        ASSERT_EQ(c.by_uid, 0);
        ASSERT_EQ(c.by_pid, getppid());
        ASSERT_STREQ(c.by_exe, "/usr/bin/tool9");
        ASSERT_STREQ(c.secret, "gh");
        ASSERT_EQ(c.use, CB_USE_PROXY);
        ASSERT_EQ(c.ttl, 60);
        ASSERT_EQ(c.bind, CB_BIND_PROCESS);
        /* Handed out once. */
        ASSERT_ERR(cb_approvals_collect(a, id, &me, 14, &c), -ENOENT);
        ASSERT_EQ(cb_approvals_count(a), 0);
        ASSERT_ERR(cb_approvals_decide(a, id, true, &admin, 14), -ENOENT);
        close(me.pidfd);
        close(other_uid.pidfd);
        close(other_exe.pidfd);
        close(other_pid.pidfd);
        close(admin.pidfd);
        cb_approvals_free(a);
}

TEST(timeout_and_keep) {
        cb_approvals *a = cb_approvals_new(0, 0, 5);
        cb_peer me = peer_of(1000, getpid(), 1), admin = peer_of(0, getppid(), 9);
        struct events ev = { 0 };
        const cb_approval *e;
        cb_approval c;
        char t[CB_APPROVAL_ID_LEN + 1], ap[CB_APPROVAL_ID_LEN + 1], dn[CB_APPROVAL_ID_LEN + 1];

        ASSERT_OK(cb_approvals_add(a, &me, "tool", "gh", CB_USE_REDEEM, 1, 0, 100, &e));
        memcpy(t, e->id, sizeof(t));
        ASSERT_OK(cb_approvals_add(a, &me, "tool", "gh", CB_USE_REDEEM, 2, 0, 100, &e));
        memcpy(ap, e->id, sizeof(ap));
        ASSERT_OK(cb_approvals_add(a, &me, "tool", "gh", CB_USE_REDEEM, 3, 0, 100, &e));
        memcpy(dn, e->id, sizeof(dn));
        ASSERT_OK(cb_approvals_decide(a, ap, true, &admin, 101));
        ASSERT_OK(cb_approvals_decide(a, dn, false, &admin, 101));
        ASSERT_EQ(cb_approvals_sweep(a, 104, on_event, &ev), 0);
        ASSERT_EQ(cb_approvals_sweep(a, 105, on_event, &ev), 0); /* never before the full timeout */
        ASSERT_EQ(cb_approvals_sweep(a, 106, on_event, &ev), 1);
        ASSERT_STREQ(ev.what[0], "timeout");
        ASSERT_STREQ(ev.id[0], t);
        ASSERT_ERR(cb_approvals_decide(a, t, true, &admin, 106), -EALREADY);
        /* Decided requests wait CB_APPROVAL_KEEP s for their requester. */
        ASSERT_EQ(cb_approvals_sweep(a, 101 + CB_APPROVAL_KEEP, on_event, &ev), 1);
        ASSERT_STREQ(ev.what[1], "uncollected");
        ASSERT_STREQ(ev.id[1], ap);
        ASSERT_EQ(cb_approvals_count(a), 1); /* the denial went silently; the timeout is kept */
        ASSERT_OK(cb_approvals_collect(a, t, &me, 106, &c));
        ASSERT_EQ(c.state, CB_APPROVAL_EXPIRED);
        ASSERT_EQ(c.by_uid, (uid_t)-1);
        ASSERT_EQ(cb_approvals_count(a), 0);
        close(me.pidfd);
        close(admin.pidfd);
        cb_approvals_free(a);
}

TEST(requester_exits) {
        cb_approvals *a = cb_approvals_new(0, 0, 120);
        cb_peer admin = peer_of(0, getpid(), 9), child;
        struct events ev = { 0 };
        const cb_approval *e;
        char id[CB_APPROVAL_ID_LEN + 1];
        int fds[2];
        char x;

        ASSERT_OK(pipe(fds));
        pid_t pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                close(fds[1]);
                (void)!read(fds[0], &x, 1);
                _exit(0);
        }
        close(fds[0]);
        child = peer_of(1000, pid, 1);
        ASSERT_OK(cb_approvals_add(a, &child, "tool", "gh", CB_USE_REDEEM, 1, 0, 0, &e));
        memcpy(id, e->id, sizeof(id));
        ASSERT_EQ(cb_approvals_sweep(a, 1, on_event, &ev), 0);
        close(fds[1]); /* the child exits */
        waitpid(pid, NULL, 0);
        ASSERT_ERR(cb_approvals_check_decide(a, id, true, &admin), -ESRCH);
        /* Its pid, even if reused, no longer collects: the pidfd shows the exit. */
        ASSERT_EQ(cb_approvals_sweep(a, 2, on_event, &ev), 1);
        ASSERT_STREQ(ev.what[0], "abandoned");
        ASSERT_EQ(cb_approvals_count(a), 0);
        close(child.pidfd);
        close(admin.pidfd);
        cb_approvals_free(a);
}

static volatile sig_atomic_t ticks;

static void on_tick(int sig) {
        (void)sig;
        ticks++;
}

/* A signal that lands while the table polls a requester's pidfd (the
 * daemon's SIGHUP, libFuzzer's SIGALRM) interrupts poll() with EINTR: that
 * is not the requester exiting.  Found by the fuzz-approval smoke. */
TEST(signals_do_not_end_a_live_request) {
        cb_approvals *a = cb_approvals_new(0, 0, 120);
        cb_peer me = peer_of(1000, getpid(), 1), admin = peer_of(0, getpid(), 9);
        struct sigaction sa, old;
        struct itimerval it = { .it_interval = { 0, 20 }, .it_value = { 0, 20 } }, off = { 0 };
        const cb_approval *e;
        char id[CB_APPROVAL_ID_LEN + 1];
        cb_approval c;
        long bad = 0;

        ASSERT_TRUE(a != NULL);
        ASSERT_OK(cb_approvals_add(a, &me, "tool", "gh", CB_USE_REDEEM, 1, 0, 0, &e));
        memcpy(id, e->id, sizeof(id));
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_tick; /* no SA_RESTART: poll() would not restart anyway */
        sigemptyset(&sa.sa_mask);
        ASSERT_OK(sigaction(SIGALRM, &sa, &old));
        ASSERT_OK(setitimer(ITIMER_REAL, &it, NULL));
        for (long i = 0; i < 300000 && ticks < 20000; i++) {
                if (cb_approvals_check_decide(a, id, false, &admin) != 0)
                        bad++;
                if (cb_approvals_collect(a, id, &me, 0, &c) != 0)
                        bad++;
        }
        ASSERT_OK(setitimer(ITIMER_REAL, &off, NULL));
        ASSERT_OK(sigaction(SIGALRM, &old, NULL));
        ASSERT_TRUE(ticks > 0);
        ASSERT_EQ(bad, 0);
        ASSERT_EQ(cb_approvals_sweep(a, 1, NULL, NULL), 0);
        ASSERT_EQ(cb_approvals_count(a), 1);
        close(me.pidfd);
        close(admin.pidfd);
        cb_approvals_free(a);
}
