/* SPDX-License-Identifier: Apache-2.0 */
/* The token table: binding, expiry, use limits, revocation, process binding. */
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbtest.h"
#include "error.h"
#include "policy.h"
#include "tokens.h"

static cb_peer peer_of(uid_t uid, unsigned char exe_byte) {
        cb_peer p;

        memset(&p, 0, sizeof(p));
        p.uid = uid;
        p.gid = uid;
        p.pid = getpid();
        p.pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
        ASSERT_TRUE(p.pidfd >= 0);
        p.pidfd_pinned = true; /* as from SO_PEERPIDFD */
        memset(p.exe_sha256, exe_byte, 32);
        return p;
}

TEST(issue_and_use) {
        cb_tokens *t = cb_tokens_new(0, 0);
        cb_peer me = peer_of(1000, 1);
        const cb_token_info *info, *u;
        char tok[CB_TOKEN_LEN + 1];

        ASSERT_OK(cb_tokens_issue(t, &me, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, false, tok, &info));
        ASSERT_OK(cb_token_check(tok, strlen(tok)));
        ASSERT_EQ(strncmp(info->accessor, "cba_", 4), 0);
        ASSERT_EQ(strlen(info->accessor), CB_ACCESSOR_LEN);
        ASSERT_TRUE(strstr(info->accessor, tok + 4) == NULL);
        ASSERT_OK(cb_tokens_use(t, tok, strlen(tok), &me, CB_USE_REDEEM, &u));
        ASSERT_STREQ(u->secret, "gh");
        ASSERT_EQ(u->used, 1);
        /* Scope it lacks. */
        ASSERT_ERR(cb_tokens_use(t, tok, strlen(tok), &me, CB_USE_PROXY, &u), -EPERM);
        ASSERT_EQ(cb_tokens_count(t), 1);
        close(me.pidfd);
        cb_tokens_free(t);
}

TEST(bound_to_uid_and_exe) {
        cb_tokens *t = cb_tokens_new(0, 0);
        cb_peer me = peer_of(1000, 1), other_uid = peer_of(1001, 1), other_exe = peer_of(1000, 2);
        const cb_token_info *u;
        char tok[CB_TOKEN_LEN + 1];

        ASSERT_OK(cb_tokens_issue(t, &me, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, false, tok, NULL));
        ASSERT_ERR(cb_tokens_use(t, tok, strlen(tok), &other_uid, CB_USE_REDEEM, &u), -EPERM);
        ASSERT_CONTAINS(cb_error_last(), "uid");
        ASSERT_ERR(cb_tokens_use(t, tok, strlen(tok), &other_exe, CB_USE_REDEEM, &u), -EPERM);
        ASSERT_CONTAINS(cb_error_last(), "executable");
        ASSERT_FALSE(strstr(cb_error_last(), tok));
        ASSERT_OK(cb_tokens_use(t, tok, strlen(tok), &me, CB_USE_REDEEM, &u));
        close(me.pidfd), close(other_uid.pidfd), close(other_exe.pidfd);
        cb_tokens_free(t);
}

TEST(garbage_and_unknown) {
        cb_tokens *t = cb_tokens_new(0, 0);
        cb_peer me = peer_of(1000, 1);
        const cb_token_info *u;
        char tok[CB_TOKEN_LEN + 1];

        ASSERT_ERR(cb_tokens_use(t, "nope", 4, &me, CB_USE_REDEEM, &u), -EINVAL);
        cb_token_generate(tok); /* well-formed, never issued */
        ASSERT_ERR(cb_tokens_use(t, tok, strlen(tok), &me, CB_USE_REDEEM, &u), -ENOENT);
        ASSERT_OK(cb_tokens_issue(t, &me, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, false, tok, NULL));
        tok[10] = tok[10] == 'a' ? 'b' : 'a'; /* CRC catches it */
        ASSERT_ERR(cb_tokens_use(t, tok, strlen(tok), &me, CB_USE_REDEEM, &u), -EINVAL);
        close(me.pidfd);
        cb_tokens_free(t);
}

TEST(use_limit_and_expiry) {
        cb_tokens *t = cb_tokens_new(0, 0);
        cb_peer me = peer_of(1000, 1);
        const cb_token_info *u;
        char tok[CB_TOKEN_LEN + 1], tok2[CB_TOKEN_LEN + 1];

        ASSERT_OK(cb_tokens_issue(t, &me, "tool", "gh", 0, CB_USE_REDEEM, 300, 2, false, tok, NULL));
        ASSERT_OK(cb_tokens_use(t, tok, strlen(tok), &me, CB_USE_REDEEM, &u));
        ASSERT_OK(cb_tokens_use(t, tok, strlen(tok), &me, CB_USE_REDEEM, &u));
        ASSERT_ERR(cb_tokens_use(t, tok, strlen(tok), &me, CB_USE_REDEEM, &u), -EDQUOT);
        /* TTL 1 s: refused once it has passed (sweep and lazy check). */
        ASSERT_OK(cb_tokens_issue(t, &me, "tool", "gh", 0, CB_USE_REDEEM, 1, 0, false, tok2, NULL));
        sleep(2);
        ASSERT_ERR(cb_tokens_use(t, tok2, strlen(tok2), &me, CB_USE_REDEEM, &u), -ETIME);
        ASSERT_ERR(cb_tokens_use(t, tok2, strlen(tok2), &me, CB_USE_REDEEM, &u), -ENOENT); /* gone now */
        close(me.pidfd);
        cb_tokens_free(t);
}

TEST(revocation) {
        cb_tokens *t = cb_tokens_new(0, 0);
        cb_peer me = peer_of(1000, 1);
        const cb_token_info *info, *u;
        char a[CB_TOKEN_LEN + 1], b[CB_TOKEN_LEN + 1], c[CB_TOKEN_LEN + 1], acc[CB_ACCESSOR_LEN + 1];

        ASSERT_OK(cb_tokens_issue(t, &me, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, false, a, &info));
        memcpy(acc, info->accessor, sizeof(acc));
        ASSERT_OK(cb_tokens_issue(t, &me, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, false, b, NULL));
        ASSERT_OK(cb_tokens_issue(t, &me, "other", "slack", 0, CB_USE_REDEEM, 300, 0, false, c, NULL));
        ASSERT_EQ(cb_tokens_revoke_accessor(t, acc), 1);
        ASSERT_ERR(cb_tokens_use(t, a, strlen(a), &me, CB_USE_REDEEM, &u), -ENOENT);
        ASSERT_OK(cb_tokens_use(t, b, strlen(b), &me, CB_USE_REDEEM, &u));
        ASSERT_EQ(cb_tokens_revoke_secret(t, "gh"), 1);
        ASSERT_ERR(cb_tokens_use(t, b, strlen(b), &me, CB_USE_REDEEM, &u), -ENOENT);
        ASSERT_EQ(cb_tokens_revoke_client(t, "other"), 1);
        ASSERT_ERR(cb_tokens_use(t, c, strlen(c), &me, CB_USE_REDEEM, &u), -ENOENT);
        ASSERT_EQ(cb_tokens_count(t), 0);
        close(me.pidfd);
        cb_tokens_free(t);
}

TEST(process_binding) {
        cb_tokens *t = cb_tokens_new(0, 0);
        cb_peer child, me = peer_of(1000, 1);
        const cb_token_info *u;
        char tok[CB_TOKEN_LEN + 1];
        pid_t pid = fork();

        if (pid == 0) {
                pause();
                _exit(0);
        }
        child = me;
        child.pid = pid;
        child.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        ASSERT_OK(cb_tokens_issue(t, &child, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, true, tok, NULL));
        ASSERT_OK(cb_tokens_use(t, tok, strlen(tok), &child, CB_USE_REDEEM, &u));
        /* Same uid and exe, another process: refused. */
        ASSERT_ERR(cb_tokens_use(t, tok, strlen(tok), &me, CB_USE_REDEEM, &u), -ESRCH);
        /* The process exits: the token dies with it, already as a zombie
         * (its pid is not free yet, but the process is gone) ... */
        kill(pid, SIGKILL);
        siginfo_t si;
        ASSERT_OK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT));
        ASSERT_ERR(cb_tokens_use(t, tok, strlen(tok), &child, CB_USE_REDEEM, &u), -ESRCH);
        ASSERT_CONTAINS(cb_error_last(), "exited");
        waitpid(pid, NULL, 0);
        /* ... so a newcomer given the same pid later finds no token: the
         * daemon test reproduces that with a real recycled pid. */
        ASSERT_ERR(cb_tokens_use(t, tok, strlen(tok), &child, CB_USE_REDEEM, &u), -ENOENT);
        ASSERT_EQ(cb_tokens_count(t), 0);
        close(child.pidfd);
        close(me.pidfd);
        cb_tokens_free(t);
}

TEST(sweep_releases_exited_processes) {
        cb_tokens *t = cb_tokens_new(0, 0);
        cb_peer me = peer_of(1000, 1), child;
        const cb_token_info *u;
        char gone[CB_TOKEN_LEN + 1], mine[CB_TOKEN_LEN + 1];
        pid_t pid = fork();

        if (pid == 0) {
                pause();
                _exit(0);
        }
        child = me;
        child.pid = pid;
        child.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        ASSERT_TRUE(child.pidfd >= 0);
        cb_tokens_limit_bound(t, 1, 1);
        ASSERT_OK(cb_tokens_issue(t, &child, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, true, gone, NULL));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        /* The sweep gives the pidfd back (the cap of 1 bound token frees
         * up) but keeps the entry a minute, so its holder hears why. */
        uint64_t now = (uint64_t)time(NULL);
        ASSERT_EQ(cb_tokens_sweep(t, now), 0);
        ASSERT_EQ(cb_tokens_count(t), 1);
        ASSERT_OK(cb_tokens_issue(t, &me, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, true, mine, NULL));
        ASSERT_ERR(cb_tokens_use(t, gone, strlen(gone), &child, CB_USE_REDEEM, &u), -ESRCH);
        ASSERT_CONTAINS(cb_error_last(), "exited");
        ASSERT_EQ(cb_tokens_count(t), 1);
        ASSERT_OK(cb_tokens_use(t, mine, strlen(mine), &me, CB_USE_REDEEM, &u));
        close(child.pidfd);
        cb_tokens_free(t);

        /* Left alone, such an entry goes a minute after the sweep saw it. */
        t = cb_tokens_new(0, 0);
        pid = fork();
        if (pid == 0) {
                pause();
                _exit(0);
        }
        child.pid = pid;
        child.pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        ASSERT_TRUE(child.pidfd >= 0);
        ASSERT_OK(cb_tokens_issue(t, &child, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, true, gone, NULL));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        ASSERT_EQ(cb_tokens_sweep(t, now), 0);
        ASSERT_EQ(cb_tokens_sweep(t, now + 59), 0);
        ASSERT_EQ(cb_tokens_sweep(t, now + 61), 1);
        ASSERT_EQ(cb_tokens_count(t), 0);
        close(child.pidfd);
        close(me.pidfd);
        cb_tokens_free(t);
}

TEST(process_bound_caps) {
        cb_tokens *t = cb_tokens_new(0, 0);
        cb_peer a = peer_of(1000, 1), b = peer_of(1001, 1);
        char tok[CB_TOKEN_LEN + 1];

        /* Each process-bound token holds a pidfd: capped per uid and in all. */
        cb_tokens_limit_bound(t, 5, 3);
        for (int i = 0; i < 3; i++)
                ASSERT_OK(cb_tokens_issue(t, &a, "c", "gh", 0, CB_USE_REDEEM, 300, 0, true, tok, NULL));
        ASSERT_ERR(cb_tokens_issue(t, &a, "c", "gh", 0, CB_USE_REDEEM, 300, 0, true, tok, NULL), -ENOSPC);
        ASSERT_CONTAINS(cb_error_last(), "process-bound");
        /* Unbound tokens are not held back by it. */
        ASSERT_OK(cb_tokens_issue(t, &a, "c", "gh", 0, CB_USE_REDEEM, 300, 0, false, tok, NULL));
        for (int i = 0; i < 2; i++)
                ASSERT_OK(cb_tokens_issue(t, &b, "c", "gh", 0, CB_USE_REDEEM, 300, 0, true, tok, NULL));
        ASSERT_ERR(cb_tokens_issue(t, &b, "c", "gh", 0, CB_USE_REDEEM, 300, 0, true, tok, NULL), -ENOSPC);
        ASSERT_CONTAINS(cb_error_last(), "the broker holds");
        /* Revoking gives the room back. */
        ASSERT_EQ(cb_tokens_revoke_secret(t, "gh"), 6);
        ASSERT_OK(cb_tokens_issue(t, &a, "c", "gh", 0, CB_USE_REDEEM, 300, 0, true, tok, NULL));
        /* A pidfd that does not pin the connecting process (the pre-6.5
         * pidfd_open fallback) cannot carry a process binding. */
        b.pidfd_pinned = false;
        ASSERT_ERR(cb_tokens_issue(t, &b, "c", "gh", 0, CB_USE_REDEEM, 300, 0, true, tok, NULL), -EOPNOTSUPP);
        ASSERT_OK(cb_tokens_issue(t, &b, "c", "gh", 0, CB_USE_REDEEM, 300, 0, false, tok, NULL));
        close(a.pidfd), close(b.pidfd);
        cb_tokens_free(t);
}

TEST(caps_and_growth) {
        cb_tokens *t = cb_tokens_new(5000, 3000);
        cb_peer a = peer_of(1000, 1), b = peer_of(1001, 1);
        char tok[CB_TOKEN_LEN + 1];
        static char first[CB_TOKEN_LEN + 1];
        const cb_token_info *u;

        for (int i = 0; i < 3000; i++) {
                ASSERT_OK(cb_tokens_issue(t, &a, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, false, tok, NULL));
                if (i == 0)
                        memcpy(first, tok, sizeof(first));
        }
        ASSERT_ERR(cb_tokens_issue(t, &a, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, false, tok, NULL), -ENOSPC);
        ASSERT_CONTAINS(cb_error_last(), "uid 1000");
        for (int i = 0; i < 2000; i++)
                ASSERT_OK(cb_tokens_issue(t, &b, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, false, tok, NULL));
        ASSERT_ERR(cb_tokens_issue(t, &b, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, false, tok, NULL), -ENOSPC);
        ASSERT_EQ(cb_tokens_count(t), 5000);
        /* Tokens issued before the table grew still resolve. */
        ASSERT_OK(cb_tokens_use(t, first, strlen(first), &a, CB_USE_REDEEM, &u));
        ASSERT_OK(cb_tokens_use(t, tok, strlen(tok), &b, CB_USE_REDEEM, &u));
        /* A check then a count (the proxy's two steps) finds the entry in
         * its chunk, the first and the last of five; an address that is not
         * an entry's is refused. */
        ASSERT_OK(cb_tokens_check(t, first, strlen(first), &a, CB_USE_REDEEM, &u));
        ASSERT_OK(cb_tokens_count_checked(t, u));
        ASSERT_EQ(u->used, 2);
        ASSERT_OK(cb_tokens_check(t, tok, strlen(tok), &b, CB_USE_REDEEM, &u));
        ASSERT_OK(cb_tokens_count_checked(t, u));
        ASSERT_EQ(u->used, 2);
        ASSERT_ERR(cb_tokens_count_checked(t, (const cb_token_info *)((const char *)u + 1)), -ENOENT);
        ASSERT_ERR(cb_tokens_count_checked(t, NULL), -ENOENT);
        ASSERT_EQ(cb_tokens_revoke_secret(t, "gh"), 5000);
        /* Revoked tokens no longer count against their uid. */
        for (int i = 0; i < 3000; i++)
                ASSERT_OK(cb_tokens_issue(t, &a, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, false, tok, NULL));
        ASSERT_ERR(cb_tokens_issue(t, &a, "tool", "gh", 0, CB_USE_REDEEM, 300, 0, false, tok, NULL), -ENOSPC);
        ASSERT_EQ(cb_tokens_revoke_client(t, "tool"), 3000);
        close(a.pidfd), close(b.pidfd);
        cb_tokens_free(t);

        /* Many uids (the per-uid counters grow and shed zero counts): each
         * still capped at its own limit. */
        t = cb_tokens_new(0, 3);
        for (int round = 0; round < 2; round++) {
                for (uid_t uid = 2000; uid < 2700; uid++) {
                        cb_peer p = peer_of(uid, 1);
                        for (int i = 0; i < 3; i++)
                                ASSERT_OK(cb_tokens_issue(t, &p, "c", "gh", 0, CB_USE_REDEEM, 300, 0, false, tok,
                                                          NULL));
                        ASSERT_ERR(cb_tokens_issue(t, &p, "c", "gh", 0, CB_USE_REDEEM, 300, 0, false, tok, NULL),
                                   -ENOSPC);
                        close(p.pidfd);
                }
                ASSERT_EQ(cb_tokens_count(t), 2100);
                ASSERT_EQ(cb_tokens_revoke_secret(t, "gh"), 2100);
        }
        cb_tokens_free(t);
}
