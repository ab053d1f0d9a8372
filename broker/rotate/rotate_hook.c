/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon-run hooks of rotation (see rotate.h for what DIR/NAME and
 * DIR/_leaked are given and must print): the hook directory checked at
 * start, the hook slots, running a hook, and the threads that run the leak
 * hook and rotate with a rotation hook's output.  The rotation itself and
 * the grace sweep are in rotate.c; what the two share is in
 * rotate_internal.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "error.h"
#include "leak_react.h"
#include "log.h"
#include "rotate.h"
#include "rotate_internal.h"
#include "scan.h"

static char *hook_dir;
static int hook_dirfd = -1; /* the directory checked at start, held: renaming or re-pointing its path changes nothing */

static pthread_mutex_t hk_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hk_cond = PTHREAD_COND_INITIALIZER;
static struct hook_slot {
        bool used;
        char name[CB_NAME_MAX + 1]; /* the secret; "_leaked" for a leak hook run */
        pid_t pid;
} hk_slots[CB_ROTATE_HOOKS_MAX];
static unsigned hk_running;
static bool hk_stopping;

/* A directory owned by root or us and writable by no one else? */
static bool dir_safe(const struct stat *st) {
        return S_ISDIR(st->st_mode) && (st->st_uid == 0 || st->st_uid == geteuid()) && !(st->st_mode & 022);
}

int rotate_init(const char *dir) {
        struct stat st;

        if (!dir)
                return 0;
        if (dir[0] != '/')
                return cb_error_set(-EINVAL, "--rotate-hook-dir %s: must be an absolute path", dir);
        hook_dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (hook_dirfd < 0 || fstat(hook_dirfd, &st) < 0) {
                int e = errno;
                if (hook_dirfd >= 0)
                        close(hook_dirfd);
                hook_dirfd = -1;
                return cb_error_set(-e, "--rotate-hook-dir %s: %s", dir, strerror(e));
        }
        if (!dir_safe(&st)) {
                close(hook_dirfd);
                hook_dirfd = -1;
                return cb_error_set(-EPERM, "--rotate-hook-dir %s: must be a directory owned by root or uid %u and "
                                    "writable by no one else (hooks run as the broker)", dir, (unsigned)geteuid());
        }
        hook_dir = strdup(dir);
        return hook_dir ? 0 : -ENOMEM;
}

/* The path that runs DIR/file if it is a usable hook: a regular executable
 * file owned by root or us and writable by no one else, in the directory
 * checked at start, which must still be safe (checked again on the held
 * descriptor).  The file is opened with O_NOFOLLOW and checked on that
 * descriptor; the path returned is DIR/file only if it still names that
 * same file.  -ENOENT if absent, -EPERM if unsafe. */
static int hook_path(const char *file, char *out, size_t cap) {
        struct stat st, dst, pst;
        int fd;

        if (!hook_dir || hook_dirfd < 0)
                return -ENOENT;
        if ((size_t)snprintf(out, cap, "%s/%s", hook_dir, file) >= cap)
                return -ENAMETOOLONG;
        if (fstat(hook_dirfd, &dst) < 0 || !dir_safe(&dst)) {
                cb_log(CB_LOG_WARNING, "hook directory %s is no longer a directory owned by root or uid %u "
                        "and writable by no one else: no hook runs", hook_dir, (unsigned)geteuid());
                return -EPERM;
        }
        fd = openat(hook_dirfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 && errno != ELOOP)
                return -errno;
        if (fd < 0) {
                cb_log(CB_LOG_WARNING, "hook %s ignored: a symbolic link", out);
                return -EPERM;
        }
        if (fstat(fd, &st) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        close(fd);
        /* Executed by path: the path must name the file just checked (the
         * directory's path could have been re-pointed since the start). */
        if (stat(out, &pst) < 0 || pst.st_dev != st.st_dev || pst.st_ino != st.st_ino) {
                cb_log(CB_LOG_WARNING, "hook %s ignored: its path no longer names the file in the hook "
                        "directory checked at start", out);
                return -EPERM;
        }
        if (!S_ISREG(st.st_mode) || !(st.st_mode & S_IXUSR) || (st.st_uid != 0 && st.st_uid != geteuid()) ||
            (st.st_mode & 022)) {
                cb_log(CB_LOG_WARNING, "hook %s ignored: not an executable regular file owned by root or uid %u "
                        "and writable by no one else", out, (unsigned)geteuid());
                return -EPERM;
        }
        return 0;
}

static int slot_take(const char *name) {
        int k = -1;

        pthread_mutex_lock(&hk_lock);
        if (!hk_stopping)
                for (int i = 0; i < CB_ROTATE_HOOKS_MAX; i++)
                        if (!hk_slots[i].used) {
                                hk_slots[i] = (struct hook_slot){ .used = true };
                                snprintf(hk_slots[i].name, sizeof(hk_slots[i].name), "%s", name);
                                hk_running++;
                                k = i;
                                break;
                        }
        pthread_mutex_unlock(&hk_lock);
        return k;
}

static void slot_release(int k) {
        pthread_mutex_lock(&hk_lock);
        hk_slots[k].used = false;
        hk_running--;
        pthread_cond_broadcast(&hk_cond);
        pthread_mutex_unlock(&hk_lock);
}

static bool slot_busy(const char *name) {
        bool busy = false;

        pthread_mutex_lock(&hk_lock);
        for (int i = 0; i < CB_ROTATE_HOOKS_MAX; i++)
                busy |= hk_slots[i].used && strcmp(hk_slots[i].name, name) == 0;
        pthread_mutex_unlock(&hk_lock);
        return busy;
}

/* Run path with argv [path, name] and a minimal environment in its own
 * process group; write in[0..inlen) to its stdin (else /dev/null); collect
 * its stdout into *ret_out (else discard it).  Killed after
 * CB_ROTATE_HOOK_TIMEOUT.  0 when it exited 0, -errno otherwise (message
 * set; never containing its output). */
static int run_hook(int slot, const char *path, const char *name, const char *reason, const char *in, size_t inlen,
                    cb_secbuf **ret_out) {
        char env_secret[16 + CB_NAME_MAX + 1], env_reason[64];
        char *const argv[] = { (char *)path, (char *)name, NULL };
        char *const envp[] = { (char *)"PATH=/usr/local/bin:/usr/bin:/bin", env_secret, env_reason, NULL };
        int outp[2] = { -1, -1 }, inp[2] = { -1, -1 }, status = 0, r;
        uint64_t deadline = (uint64_t)time(NULL) + CB_ROTATE_HOOK_TIMEOUT;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        cb_secbuf *out = NULL;
        size_t n = 0, cap = CB_VALUE_MAX + 2;
        sigset_t none, dfl;
        pid_t pid = -1;

        snprintf(env_secret, sizeof(env_secret), "CREDBROKER_SECRET=%s", name);
        snprintf(env_reason, sizeof(env_reason), "CREDBROKER_REASON=%s", reason);
        if (pipe2(outp, O_CLOEXEC) < 0 || (in && pipe2(inp, O_CLOEXEC) < 0))
                return cb_error_set(-errno, "hook %s: pipe: %s", path, strerror(errno));
        if (ret_out && !(out = cb_secbuf_new(cap))) {
                r = cb_error_set(-ENOMEM, "out of memory");
                goto out;
        }
        posix_spawn_file_actions_init(&fa);
        posix_spawnattr_init(&at);
        sigemptyset(&none);
        sigemptyset(&dfl);
        sigaddset(&dfl, SIGPIPE);
        sigaddset(&dfl, SIGTERM);
        sigaddset(&dfl, SIGINT);
        sigaddset(&dfl, SIGHUP);
        posix_spawnattr_setsigmask(&at, &none);
        posix_spawnattr_setsigdefault(&at, &dfl);
        posix_spawnattr_setpgroup(&at, 0);
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
        if (in)
                posix_spawn_file_actions_adddup2(&fa, inp[0], 0);
        else
                posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        if (ret_out)
                posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
        else
                posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        int ef = cb_log_child_stderr(); /* its diagnostics, stamped (log.h) */
        if (ef >= 0)
                posix_spawn_file_actions_adddup2(&fa, ef, 2);
        /* Only stdin, stdout and stderr: no socket, store or pidfd of ours,
         * even one a library opened without O_CLOEXEC. */
        posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        pthread_mutex_lock(&hk_lock);
        r = hk_stopping ? ECANCELED : posix_spawn(&pid, path, &fa, &at, argv, envp);
        if (r == 0)
                hk_slots[slot].pid = pid;
        pthread_mutex_unlock(&hk_lock);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&at);
        if (r != 0) {
                r = cb_error_set(-r, "hook %s: cannot run it: %s", path, strerror(r));
                goto out;
        }
        close(outp[1]);
        outp[1] = -1;
        if (in) {
                close(inp[0]);
                inp[0] = -1;
                /* Events are small (< PIPE_BUF): one write, no deadlock with its stdout. */
                if (write(inp[1], in, inlen) != (ssize_t)inlen)
                        cb_log(CB_LOG_WARNING, "hook %s: could not write its input: %s", path, strerror(errno));
                close(inp[1]);
                inp[1] = -1;
        }
        r = 0;
        for (;;) {
                unsigned char scratch[4096];
                struct pollfd pfd = { .fd = outp[0], .events = POLLIN };
                uint64_t now = (uint64_t)time(NULL);
                ssize_t k;
                int pr;

                if (now >= deadline) {
                        r = cb_error_set(-ETIMEDOUT, "hook %s: killed after %d s", path, CB_ROTATE_HOOK_TIMEOUT);
                        break;
                }
                pr = poll(&pfd, 1, (int)(deadline - now) * 1000);
                if (pr < 0 && errno == EINTR)
                        continue;
                if (pr <= 0)
                        continue; /* timeout: the deadline check above ends it */
                if (ret_out)
                        k = read(outp[0], cb_secbuf_data(out) + n, n < cap ? cap - n : 0);
                else
                        k = read(outp[0], scratch, sizeof(scratch));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                if (ret_out)
                        n += (size_t)k;
                if (ret_out && n >= cap) {
                        r = cb_error_set(-E2BIG, "hook %s: printed more than %d bytes", path, CB_VALUE_MAX);
                        break;
                }
        }
        /* Its stdout is closed (or it is to be killed): wait for it until the
         * same deadline.  A hook may close stdout and carry on (or leave
         * children behind), so the exit is watched without reaping
         * (WNOWAIT): the process group is killed while its pid still names
         * it, then the hook is reaped. */
        while (r == 0) {
                siginfo_t si = { 0 };

                if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno != EINTR) {
                        r = cb_error_set(-errno, "hook %s: waitid: %s", path, strerror(errno));
                        break;
                }
                if (si.si_pid == pid)
                        break;
                if ((uint64_t)time(NULL) >= deadline) {
                        r = cb_error_set(-ETIMEDOUT, "hook %s: killed after %d s", path, CB_ROTATE_HOOK_TIMEOUT);
                        break;
                }
                (void)nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
        (void)kill(-pid, SIGKILL); /* the hook if it is still running, whatever it left behind either way */
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        pthread_mutex_lock(&hk_lock);
        hk_slots[slot].pid = 0;
        pthread_mutex_unlock(&hk_lock);
        if (r < 0)
                goto out;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                r = cb_error_set(-ECHILD, "hook %s failed (%s %d)", path, WIFEXITED(status) ? "exit status" : "signal",
                                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                goto out;
        }
        if (ret_out) {
                unsigned char *p = cb_secbuf_data(out);
                if (n && p[n - 1] == '\n')
                        n--;
                if (n == 0) {
                        r = cb_error_set(-EINVAL, "hook %s printed no value", path);
                        goto out;
                }
                cb_secbuf_truncate(out, n);
                *ret_out = out;
                out = NULL;
        }
out:
        for (int i = 0; i < 2; i++) {
                if (outp[i] >= 0)
                        close(outp[i]);
                if (inp[i] >= 0)
                        close(inp[i]);
        }
        cb_secbuf_free(out);
        return r;
}

struct hook_job {
        int slot;
        bool leaked;
        uint32_t grace;
        uint32_t old; /* leaked: the current version when it was asked for (the leaked one) */
        const char *source;
        char name[CB_NAME_MAX + 1];
        char *event; /* leak hook: its stdin */
};

/* The leak hook after a leaked rotation: best effort, reported on stderr. */
static void *leak_hook_thread(void *arg) {
        struct hook_job *j = arg;
        char path[4096];

        if (hook_path("_leaked", path, sizeof(path)) == 0 &&
            run_hook(j->slot, path, j->name, "leaked", j->event, strlen(j->event), NULL) < 0)
                cb_log(CB_LOG_ERR, "leak hook for '%s': %s", j->name, cb_error_last());
        slot_release(j->slot);
        free(j->event);
        free(j);
        return NULL;
}

static int start_thread(void *(*fn)(void *), struct hook_job *j) {
        pthread_attr_t a;
        pthread_t t;
        int r;

        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&t, &a, fn, j);
        pthread_attr_destroy(&a);
        return -r;
}

/* Start the leak hook for a leaked rotation (if there is one).  Returns
 * whether it was started. */
bool rotate_leak_hook_start(const char *name, json_t *summary) {
        char path[4096];
        struct hook_job *j;
        json_t *ev;

        if (hook_path("_leaked", path, sizeof(path)) < 0)
                return false;
        j = calloc(1, sizeof(*j));
        ev = json_pack("{s:s, s:s, s:O, s:O, s:O}", "event", "leaked_rotation", "secret", name, "version",
                       json_object_get(summary, "version"), "previous", json_object_get(summary, "previous"),
                       "revoked", json_object_get(summary, "revoked"));
        if (!j || !ev || !(j->event = json_dumps(ev, JSON_COMPACT))) {
                json_decref(ev);
                free(j);
                return false;
        }
        json_decref(ev);
        snprintf(j->name, sizeof(j->name), "%s", name);
        j->slot = slot_take("_leaked");
        if (j->slot < 0) {
                cb_log(CB_LOG_WARNING, "leak hook for '%s' not run: %d hooks are running already", name,
                        CB_ROTATE_HOOKS_MAX);
        } else if (start_thread(leak_hook_thread, j) == 0) {
                return true;
        } else {
                slot_release(j->slot);
        }
        free(j->event);
        free(j);
        return false;
}

/* Run the rotation hook, then rotate with its output. */
static void *hook_rotate_thread(void *arg) {
        struct hook_job *j = arg;
        cb_secbuf *val = NULL;
        char path[4096];
        int r;

        r = hook_path(j->name, path, sizeof(path));
        if (r < 0)
                cb_error_set(r, "no usable rotation hook");
        else
                r = run_hook(j->slot, path, j->name, j->leaked ? "leak" : "rotate", NULL, 0, &val);
        rotate_lock();
        pthread_mutex_lock(&hk_lock);
        bool stopping = hk_stopping;
        pthread_mutex_unlock(&hk_lock);
        bool tried = r >= 0 && !stopping; /* rotate_run reached */
        if (tried)
                r = rotate_secret(j->name, cb_secbuf_data(val), cb_secbuf_len(val), j->grace, j->leaked, j->source,
                                  NULL);
        if (r < 0 && !stopping) {
                cb_log(CB_LOG_ERR, "hook rotation of '%s' failed: %s", j->name, cb_error_last());
                (void)rotate_audit_event(json_pack("{s:s, s:s, s:s, s:s, s:s}", "event", "rotate", "source", j->source,
                                            "secret", j->name, "result", "failed", "message", cb_error_last()));
                /* rotate_run contained a failure of its own already; a hook that failed
                 * never reached it. */
                if (j->leaked && !tried)
                        rotate_leaked_failed(j->name, j->old, j->source, cb_error_last());
        }
        rotate_unlock();
        cb_secbuf_free(val);
        slot_release(j->slot);
        free(j);
        return NULL;
}

int rotate_hook_start(const char *name, uint32_t grace, bool leaked, const char *source) {
        struct hook_job *j;
        char path[4096];
        uint32_t old = 0;
        int r;

        if (cb_name_check(name) < 0)
                return -EINVAL;
        if (leaked) {
                /* Containment now, whether or not a hook can run, and not when (or
                 * if) the hook's rotation ends: every token revoked, proxied
                 * requests cut, and the leaked version marked compromised (no
                 * token) until a new version is current. */
                const cb_version_info *vi;
                size_t nv;

                if (cb_store_versions(rotate_cur.store, name, &vi, &nv) == 0)
                        for (size_t i = 0; i < nv; i++)
                                if (vi[i].state == CB_VS_CURRENT)
                                        old = vi[i].version;
                /* Marked first, then revoked: a token issue racing this
                 * (api_tool.c, no lock) either sees the mark or is fenced
                 * by the revocation (red team rt6 F1). */
                scanner_mark_compromised(name, old);
                (void)cb_tokens_revoke_secret(rotate_cur.tokens, name);
                (void)leak_cut_secret(name, "rotated after a leak");
        }
        r = hook_path(name, path, sizeof(path));
        if (r < 0)
                return cb_error_set(-ENOENT, "no rotation hook for '%s'%s", name,
                                    hook_dir ? " in the hook directory" : " (the broker has no --rotate-hook-dir)");
        if (slot_busy(name))
                return cb_error_set(-EALREADY, "a hook rotation of '%s' is running already", name);
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->grace = leaked ? 0 : grace;
        j->leaked = leaked;
        j->old = old;
        j->source = source;
        snprintf(j->name, sizeof(j->name), "%s", name);
        j->slot = slot_take(name);
        if (j->slot < 0) {
                free(j);
                return cb_error_set(-EAGAIN, "%d hooks are running already", CB_ROTATE_HOOKS_MAX);
        }
        r = start_thread(hook_rotate_thread, j);
        if (r < 0) {
                slot_release(j->slot);
                if (leaked)
                        rotate_leaked_failed(name, j->old, source, "cannot start the rotation hook's thread");
                free(j);
                return cb_error_set(r, "cannot start a thread: %s", strerror(-r));
        }
        return 0;
}

int leak_rotate_request(const char *name) {
        rotate_lock();
        int r = rotate_hook_start(name, 0, true, "leak");
        rotate_unlock();

        /* One running already rotates away from whatever leaked. */
        return r == -EALREADY ? 0 : r == -ENOENT || r == -EINVAL ? -ENOENT : r;
}

void rotate_stop(void) {
        pthread_mutex_lock(&hk_lock);
        hk_stopping = true;
        for (int i = 0; i < CB_ROTATE_HOOKS_MAX; i++)
                if (hk_slots[i].used && hk_slots[i].pid > 0)
                        (void)kill(-hk_slots[i].pid, SIGKILL);
        while (hk_running > 0)
                pthread_cond_wait(&hk_cond, &hk_lock);
        pthread_mutex_unlock(&hk_lock);
        free(hook_dir);
        hook_dir = NULL;
        if (hook_dirfd >= 0)
                close(hook_dirfd);
        hook_dirfd = -1;
}
