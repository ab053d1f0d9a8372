/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Rotation orchestration (see rotate.h for the steps and why each state in
 * between is safe), the grace sweep, and the daemon-run hooks.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

#include <sodium.h>

#include "alert.h"
#include "daemon.h"
#include "error.h"
#include "rotate.h"
#include "rotation_label.h"
#include "scan.h"

static char *hook_dir;
static int hook_dirfd = -1; /* the directory checked at start, held: renaming or re-pointing its path changes nothing */
static uint64_t next_due; /* earliest grace deadline known; 0 = rescan (under cbd.lock) */

static bool has_label(const cb_meta *m, const char *label) {
        for (size_t i = 0; m && i < m->labels.n; i++)
                if (strcmp(m->labels.v[i], label) == 0)
                        return true;
        return false;
}

/* ---- audit ---- */

static int audit_event(json_t *o) {
        int r;

        if (!o)
                return -ENOMEM;
        json_object_set_new(o, "time", json_integer((json_int_t)time(NULL)));
        r = audit_emit(o);
        json_decref(o);
        return r;
}

/* ---- the grace sweep ---- */

/* Disable name's previous versions whose grace ran out; lower *next to the
 * earliest deadline still ahead.  Appends disabled version numbers to
 * disabled (may be NULL). */
static int sweep_secret(const char *name, uint64_t now, json_t *disabled, uint64_t *next) {
        uint32_t due[64];
        const cb_version_info *vi;
        size_t nv, ndue = 0;
        int64_t grace = -1;
        int r;

        r = cb_store_versions(cbd.store, name, &vi, &nv);
        if (r < 0)
                return r;
        for (size_t i = 0; i < nv; i++)
                if (vi[i].state == CB_VS_CURRENT)
                        grace = cb_rotation_grace(vi[i].meta, NULL);
        if (grace < 0)
                return 0; /* made current by a put: previous versions are the operator's call */
        for (size_t i = 0; i < nv; i++) {
                uint64_t deadline;

                if (vi[i].state != CB_VS_PREVIOUS)
                        continue;
                deadline = vi[i].changed + (uint64_t)grace;
                if (deadline > now) {
                        if (deadline < *next)
                                *next = deadline;
                } else if (ndue < sizeof(due) / sizeof(due[0])) {
                        due[ndue++] = vi[i].version;
                } else {
                        *next = now; /* the rest at the next tick */
                }
        }
        for (size_t i = 0; i < ndue; i++) {
                r = cb_store_set_state(cbd.store, name, due[i], CB_VS_DISABLED);
                if (r < 0)
                        return r;
                if (disabled)
                        json_array_append_new(disabled, json_integer(due[i]));
                (void)audit_event(json_pack("{s:s, s:s, s:I}", "event", "grace_expired", "secret", name, "version",
                                            (json_int_t)due[i]));
        }
        return 0;
}

uint32_t rotate_leaked_by(const cb_version_info *vi, size_t nv, uint32_t v) {
        const size_t pl = strlen(CB_ROTATE_LEAKED_LABEL);

        for (size_t i = 0; i < nv; i++) {
                bool leaked = false;

                (void)cb_rotation_grace(vi[i].meta, &leaked);
                if (leaked && vi[i].version > v)
                        return vi[i].version;
                for (size_t k = 0; vi[i].meta && k < vi[i].meta->labels.n; k++) {
                        const char *l = vi[i].meta->labels.v[k];
                        char *end;
                        unsigned long long n;

                        if (strncmp(l, CB_ROTATE_LEAKED_LABEL, pl) != 0)
                                continue;
                        errno = 0;
                        n = strtoull(l + pl, &end, 10);
                        /* Unreadable: fail closed, as if everything before it leaked. */
                        if (errno || end == l + pl || *end || n >= vi[i].version || v <= n)
                                return vi[i].version;
                }
        }
        return 0;
}

int rotate_version_check(const char *name, uint32_t version, uint64_t now) {
        const cb_version_info *vi, *target = NULL;
        int64_t grace = -1;
        size_t nv;

        if (cb_store_versions(cbd.store, name, &vi, &nv) < 0)
                return 0; /* the store's own answer follows */
        for (size_t i = 0; i < nv; i++) {
                if (vi[i].version == version)
                        target = &vi[i];
                if (vi[i].state == CB_VS_CURRENT)
                        grace = cb_rotation_grace(vi[i].meta, NULL);
        }
        if (!target || target->state != CB_VS_PREVIOUS)
                return 0; /* current is served; the rest the store refuses */
        if (grace >= 0 && target->changed + (uint64_t)grace <= now)
                return cb_error_set(-EPERM, "version %" PRIu32 " of '%s' is past its grace", version, name);
        if (rotate_leaked_by(vi, nv, version))
                return cb_error_set(-EPERM, "version %" PRIu32 " of '%s' leaked", version, name);
        return 0;
}

void rotate_changed(void) {
        next_due = 0;
}

void rotate_sweep(uint64_t now) {
        const char **names = NULL;
        char **copy = NULL;
        uint64_t next = UINT64_MAX;
        size_t n = 0;

        if (next_due > now)
                return;
        /* Writes invalidate the store's name array: work on a copy. */
        if (cb_store_names(cbd.store, &names, &n) < 0 || !(copy = calloc(n + 1, sizeof(*copy)))) {
                free(names);
                next_due = now + 5;
                return;
        }
        for (size_t i = 0; i < n; i++)
                if (!(copy[i] = strdup(names[i])))
                        next = now + 5;
        free(names);
        for (size_t i = 0; i < n; i++) {
                if (copy[i] && sweep_secret(copy[i], now, NULL, &next) < 0) {
                        fprintf(stderr, "credbrokerd: grace sweep: '%s': %s (retrying in 5 s)\n", copy[i],
                                cb_error_last());
                        if (now + 5 < next)
                                next = now + 5;
                }
                free(copy[i]);
        }
        free(copy);
        next_due = next;
}

/* A leaked rotation of name failed: its leaked version old (0: the current
 * one) stays marked compromised, so no token is issued for it until a
 * rotation succeeds, and an alert says so.  Under cbd.lock. */
static void leaked_failed(const char *name, uint32_t old, const char *source, const char *why) {
        json_t *ev;

        scanner_mark_compromised(name, old);
        ev = json_pack("{s:s, s:s, s:s, s:b}", "secret", name, "source", source, "message", why, "compromised",
                       scanner_is_compromised(name));
        if (ev && old)
                json_object_set_new(ev, "version", json_integer((json_int_t)old));
        alert_raise("rotation_failed", ev);
        json_decref(ev);
}

/* ---- hooks ---- */

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
                fprintf(stderr, "credbrokerd: hook directory %s is no longer a directory owned by root or uid %u "
                        "and writable by no one else: no hook runs\n", hook_dir, (unsigned)geteuid());
                return -EPERM;
        }
        fd = openat(hook_dirfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 && errno != ELOOP)
                return -errno;
        if (fd < 0) {
                fprintf(stderr, "credbrokerd: hook %s ignored: a symbolic link\n", out);
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
                fprintf(stderr, "credbrokerd: hook %s ignored: its path no longer names the file in the hook "
                        "directory checked at start\n", out);
                return -EPERM;
        }
        if (!S_ISREG(st.st_mode) || !(st.st_mode & S_IXUSR) || (st.st_uid != 0 && st.st_uid != geteuid()) ||
            (st.st_mode & 022)) {
                fprintf(stderr, "credbrokerd: hook %s ignored: not an executable regular file owned by root or uid %u "
                        "and writable by no one else\n", out, (unsigned)geteuid());
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
                        fprintf(stderr, "credbrokerd: hook %s: could not write its input: %s\n", path, strerror(errno));
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
                fprintf(stderr, "credbrokerd: leak hook for '%s': %s\n", j->name, cb_error_last());
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
static bool leak_hook_start(const char *name, json_t *summary) {
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
                fprintf(stderr, "credbrokerd: leak hook for '%s' not run: %d hooks are running already\n", name,
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
        pthread_mutex_lock(&cbd.lock);
        pthread_mutex_lock(&hk_lock);
        bool stopping = hk_stopping;
        pthread_mutex_unlock(&hk_lock);
        bool tried = r >= 0 && !stopping; /* rotate_run reached */
        if (tried)
                r = rotate_secret(j->name, cb_secbuf_data(val), cb_secbuf_len(val), j->grace, j->leaked, j->source,
                                  NULL);
        if (r < 0 && !stopping) {
                fprintf(stderr, "credbrokerd: hook rotation of '%s' failed: %s\n", j->name, cb_error_last());
                (void)audit_event(json_pack("{s:s, s:s, s:s, s:s, s:s}", "event", "rotate", "source", j->source,
                                            "secret", j->name, "result", "failed", "message", cb_error_last()));
                /* rotate_run contained a failure of its own already; a hook that failed
                 * never reached it. */
                if (j->leaked && !tried)
                        leaked_failed(j->name, j->old, j->source, cb_error_last());
        }
        pthread_mutex_unlock(&cbd.lock);
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

                if (cb_store_versions(cbd.store, name, &vi, &nv) == 0)
                        for (size_t i = 0; i < nv; i++)
                                if (vi[i].state == CB_VS_CURRENT)
                                        old = vi[i].version;
                (void)cb_tokens_revoke_secret(cbd.tokens, name);
                (void)proxy_cancel_secret(name, "rotated after a leak");
                scanner_mark_compromised(name, old);
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
                        leaked_failed(name, j->old, source, "cannot start the rotation hook's thread");
                free(j);
                return cb_error_set(r, "cannot start a thread: %s", strerror(-r));
        }
        return 0;
}

int leak_rotate_request(const char *name) {
        int r = rotate_hook_start(name, 0, true, "leak");

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

/* ---- rotation ---- */

/* Record in m (the new version's sealed metadata) that every version up to
 * old leaked: the label CB_ROTATE_LEAKED_LABEL "N" replaces an earlier one
 * (versions only grow).  Later rotations copy it forward with the rest of
 * the metadata, so `version enable` can refuse those versions for good. */
static int mark_leaked_through(cb_meta *m, uint32_t old) {
        char label[64];
        size_t k = 0;
        int r;

        for (size_t i = 0; i < m->labels.n; i++) {
                if (strncmp(m->labels.v[i], CB_ROTATE_LEAKED_LABEL, strlen(CB_ROTATE_LEAKED_LABEL)) == 0)
                        free(m->labels.v[i]);
                else
                        m->labels.v[k++] = m->labels.v[i];
        }
        m->labels.n = k;
        snprintf(label, sizeof(label), CB_ROTATE_LEAKED_LABEL "%" PRIu32, old);
        r = cb_strv_push(&m->labels, label, CB_META_MAX_LABELS);
        return r < 0 ? cb_error_set(r, "cannot record the leak: the secret already has %d labels", CB_META_MAX_LABELS)
                     : 0;
}

/* Does value[0..len) equal a version of name that is not destroyed?  Its
 * number in *ret_version (0: none).  0 or -errno (message set).  The
 * comparisons are constant-time per version (sodium_memcmp). */
static int value_reused(const char *name, const void *value, size_t len, uint32_t *ret_version) {
        const cb_version_info *vi;
        uint32_t *vers = NULL;
        size_t nv, n = 0;
        int r;

        *ret_version = 0;
        r = cb_store_versions(cbd.store, name, &vi, &nv);
        if (r < 0)
                return cb_error_set(r, "no secret named '%s'", name);
        /* Copied: the store's array is not ours to hold across calls. */
        vers = calloc(nv ? nv : 1, sizeof(*vers));
        if (!vers)
                return cb_error_set(-ENOMEM, "out of memory");
        for (size_t i = 0; i < nv; i++)
                if (vi[i].state != CB_VS_DESTROYED)
                        vers[n++] = vi[i].version;
        r = 0;
        for (size_t i = 0; i < n && !*ret_version; i++) {
                cb_secbuf *old = NULL;
                int g = cb_store_get(cbd.store, name, vers[i], true, &old, NULL, NULL);

                if (g == -EKEYREVOKED || g == -ENOENT)
                        continue; /* destroyed (or gone) meanwhile: nothing to compare */
                if (g < 0) {
                        r = cb_error_set(g, "cannot read version %" PRIu32 " to compare: %s", vers[i],
                                         cb_error_last());
                        break;
                }
                if (cb_secbuf_len(old) == len && sodium_memcmp(cb_secbuf_data(old), value, len) == 0)
                        *ret_version = vers[i];
                cb_secbuf_free(old);
        }
        free(vers);
        return r;
}

/* "cbs_" + unpadded base64url of 32 random bytes (47 characters). */
static cb_secbuf *generate_value(void) {
        unsigned char raw[32];
        size_t cap = 4 + sodium_base64_ENCODED_LEN(sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        cb_secbuf *v = cb_secbuf_new(cap);
        char *p;

        if (!v)
                return NULL;
        p = (char *)cb_secbuf_data(v);
        randombytes_buf(raw, sizeof(raw));
        memcpy(p, "cbs_", 4);
        sodium_bin2base64(p + 4, cap - 4, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero(raw, sizeof(raw));
        cb_secbuf_truncate(v, strlen(p));
        return v;
}

int rotate_secret(const char *name, const void *value, size_t len, uint32_t grace, bool leaked, const char *source,
                  json_t **ret) {
        return rotate_run(ROTATE_FULL, name, value, len, grace, leaked, 0, source, ret);
}

int rotate_run(enum rotate_phase phase, const char *name, const void *value, size_t len, uint32_t grace, bool leaked,
               uint32_t promote, const char *source, json_t **ret) {
        const cb_version_info *vi;
        const cb_meta *cur_meta = NULL;
        cb_secbuf *gen = NULL;
        cb_meta *m = NULL;
        json_t *superseded = json_array(), *disabled = json_array(), *summary = NULL;
        uint32_t pending[64], old = 0, version = 0;
        size_t nv, npending = 0, revoked = 0, cut = 0;
        const char *step = "start";
        uint64_t next = UINT64_MAX;
        int r;

        if (!superseded || !disabled) {
                r = cb_error_set(-ENOMEM, "out of memory");
                goto out;
        }
        if (leaked)
                grace = 0;
        if (grace > CB_ROTATE_GRACE_MAX) {
                r = cb_error_set(-EINVAL, "grace %" PRIu32 " s is over the limit of %u s", grace, CB_ROTATE_GRACE_MAX);
                goto out;
        }
        r = cb_store_versions(cbd.store, name, &vi, &nv);
        if (r < 0) {
                r = cb_error_set(-ENOENT, "no secret named '%s' (rotate replaces a stored secret: put it first)", name);
                goto out;
        }
        for (size_t i = 0; i < nv; i++) {
                if (vi[i].state == CB_VS_CURRENT) {
                        old = vi[i].version;
                        cur_meta = vi[i].meta;
                } else if (vi[i].state == CB_VS_PENDING && vi[i].version != promote &&
                           npending < sizeof(pending) / sizeof(pending[0])) {
                        pending[npending++] = vi[i].version;
                }
        }
        if (!old) {
                r = cb_error_set(CB_E_INTEGRITY, "secret '%s' has no current version", name);
                goto out;
        }
        if (phase == ROTATE_PROMOTE) {
                const cb_version_info *p = NULL;
                int64_t g;

                for (size_t i = 0; i < nv; i++)
                        if (vi[i].version == promote)
                                p = &vi[i];
                if (p && p->state == CB_VS_CURRENT) {
                        /* Promoted already (a re-run after a lost answer). */
                        if (ret)
                                *ret = json_pack("{s:s, s:I, s:b}", "name", name, "version", (json_int_t)promote,
                                                 "already", 1);
                        r = 0;
                        goto out;
                }
                if (!p || p->state != CB_VS_PENDING) {
                        r = cb_error_set(p ? -EINVAL : -ENOENT, "version %" PRIu32 " of '%s' is %s, not pending: "
                                         "stage a new one", promote, name,
                                         p ? cb_version_state_name(p->state) : "absent");
                        goto out;
                }
                /* Staged with its grace sealed in: that is what it promises. */
                g = cb_rotation_grace(p->meta, &leaked);
                grace = g >= 0 ? (uint32_t)g : CB_ROTATE_GRACE_DEFAULT;
        } else if (!value) {
                if (!has_label(cur_meta, CB_ROTATE_GENERATE_LABEL)) {
                        r = cb_error_set(-EPERM, "'%s' does not allow generated values: only a secret whose current "
                                         "version carries the sealed label %s (put --label %s) may be generated "
                                         "by the broker", name, CB_ROTATE_GENERATE_LABEL, CB_ROTATE_GENERATE_LABEL);
                        goto out;
                }
                gen = generate_value();
                if (!gen) {
                        r = cb_error_set(-ENOMEM, "out of memory");
                        goto out;
                }
                value = cb_secbuf_data(gen);
                len = cb_secbuf_len(gen);
        }
        if (phase != ROTATE_PROMOTE && (r = cb_rotation_meta(cur_meta, grace, leaked, &m)) < 0)
                goto out;
        if (phase != ROTATE_PROMOTE && leaked && (r = mark_leaked_through(m, old)) < 0)
                goto out;
        /* Containment first: if any later step fails, the tokens are gone. */
        if (leaked) {
                revoked = cb_tokens_revoke_secret(cbd.tokens, name);
                cut = proxy_cancel_secret(name, "rotated after a leak");
        }
        /* A rotation that cannot be audited does not start, unless it answers
         * a leak: containment beats the record (stderr says so). */
        r = audit_event(json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:I, s:s}", "event", "rotate.begin", "source",
                                  source, "secret", name, "current", (json_int_t)old, "grace", (json_int_t)grace,
                                  "leaked", leaked, "revoked", (json_int_t)revoked, "phase",
                                  phase == ROTATE_STAGE ? "stage" : phase == ROTATE_PROMOTE ? "promote" : "full"));
        if (r < 0 && !leaked) {
                r = cb_error_set(-EIO, "the audit log cannot be written: rotation of '%s' not started", name);
                goto out;
        }
        if (r < 0)
                fprintf(stderr, "credbrokerd: audit log cannot be written; rotating leaked secret '%s' anyway\n",
                        name);
        if (phase != ROTATE_PROMOTE && !gen) {
                uint32_t same = 0;

                step = "comparing the new value with every version";
                r = value_reused(name, value, len, &same);
                if (r == 0 && same)
                        r = cb_error_set(-EEXIST, "the new value equals version %" PRIu32 "'s (a rotation needs a "
                                         "value the secret never had)", same);
                if (r < 0)
                        goto fail;
        }
        step = "superseding leftover pending versions";
        for (size_t i = 0; i < npending; i++) {
                r = cb_store_set_state(cbd.store, name, pending[i], CB_VS_DISABLED);
                if (r < 0)
                        goto fail;
                json_array_append_new(superseded, json_integer(pending[i]));
        }
        step = "storing the new version as pending";
        if (phase == ROTATE_PROMOTE)
                version = promote;
        else if ((r = cb_store_put(cbd.store, name, value, len, m, CB_VS_PENDING, &version)) < 0)
                goto fail;
        if (phase == ROTATE_STAGE) {
                summary = json_pack("{s:s, s:I, s:b, s:I, s:b, s:O}", "name", name, "version", (json_int_t)version,
                                    "staged", 1, "grace", (json_int_t)grace, "leaked", leaked, "superseded",
                                    superseded);
                (void)audit_event(json_pack("{s:s, s:s, s:s, s:I}", "event", "rotate.staged", "source", source,
                                            "secret", name, "version", (json_int_t)version));
                if (!summary) {
                        r = cb_error_set(-ENOMEM, "out of memory");
                        goto out;
                }
                if (ret) {
                        *ret = summary;
                        summary = NULL;
                }
                r = 0;
                goto out;
        }
        step = "making the new version current";
        r = cb_store_set_state(cbd.store, name, version, CB_VS_CURRENT);
        if (r < 0)
                goto fail;
        step = "disabling previous versions past their grace";
        r = sweep_secret(name, (uint64_t)time(NULL), disabled, &next);
        if (r < 0)
                goto fail;
        next_due = 0; /* deadlines changed: rescan at the next tick */
        summary = json_pack("{s:s, s:I, s:I, s:I, s:b, s:I, s:I, s:O, s:O, s:s}", "name", name, "version",
                            (json_int_t)version, "previous", (json_int_t)old, "grace", (json_int_t)grace, "leaked",
                            leaked, "revoked", (json_int_t)revoked, "proxy_cut", (json_int_t)cut, "superseded",
                            superseded, "disabled", disabled, "source", source);
        if (!summary) {
                r = cb_error_set(-ENOMEM, "out of memory");
                goto out;
        }
        if (leaked)
                json_object_set_new(summary, "leak_hook", json_boolean(leak_hook_start(name, summary)));
        {
                json_t *rec = json_deep_copy(summary);
                json_object_set_new(rec, "event", json_string("rotate"));
                json_object_del(rec, "name");
                json_object_set_new(rec, "secret", json_string(name));
                (void)audit_event(rec);
        }
        if (ret) {
                *ret = summary;
                summary = NULL;
        }
        r = 0;
        goto out;
fail:
        next_due = 0;
        r = cb_error_set(r, "rotation of '%s' stopped while %s: %s; 'credbroker versions %s' shows the state, which "
                         "is consistent; run the rotation again", name, step, cb_error_last(), name);
        (void)audit_event(json_pack("{s:s, s:s, s:s, s:s, s:s}", "event", "rotate", "source", source, "secret", name,
                                    "result", "failed", "message", cb_error_last()));
out:
        if (r < 0 && leaked && old) {
                /* The tokens are gone, but the leaked value may still be current:
                 * no new token for it until a rotation succeeds. */
                leaked_failed(name, old, source, cb_error_last());
                if (scanner_is_compromised(name))
                        r = cb_error_set(r, "%s; '%s' is marked compromised: no token is issued until a rotation "
                                         "succeeds", cb_error_last(), name);
        }
        cb_secbuf_free(gen);
        cb_meta_free(m);
        json_decref(superseded);
        json_decref(disabled);
        json_decref(summary);
        return r;
}
