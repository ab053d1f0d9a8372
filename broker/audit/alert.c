/* SPDX-License-Identifier: Apache-2.0 */
/* Alerts: stderr line, operator hook on a worker thread, denial bursts
 * (see alert.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "alert.h"
#include "audit_format.h"
#include "log.h"
#include "metrics.h"

#define DENY_CLIENTS 256 /* clients tracked at once; the least recently denied is forgotten */
#define QKEY_MAX 128

/* A queued event: its line, the (kind, client) it coalesces under ("" =
 * never), and how many later events of that key were merged into it. */
typedef struct qent {
        char *line;
        char key[QKEY_MAX];
        uint64_t merged;
} qent;

typedef struct deny_client {
        bool used;
        uid_t uid;
        char exe_sha256[65];
        uint64_t last_ms, alerted_ms;
        bool alerted;
        size_t next;    /* ring position */
        uint64_t *ring; /* the last deny_n denial times (ms), 0 = none */
} deny_client;

static struct {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        char *hook;
        qent q[ALERT_QUEUE_MAX];
        size_t qhead, qlen;
        uint64_t dropped;
        bool running, stopping;
        pthread_t worker;
        unsigned deny_n, deny_window, timeout_s;
        deny_client clients[DENY_CLIENTS];
        uint64_t *rings;
        cb_audit_keys *ids; /* sodium_malloc: the key identifiers are hashed under */
} al = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the hook ---- */

static void run_hook(const char *cmd, const char *line) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t at;
        sigset_t none, def;
        int p[2] = { -1, -1 };
        pid_t pid;
        int status, r;

        if (pipe2(p, O_CLOEXEC) < 0) {
                cb_log(CB_LOG_WARNING, "alert hook: pipe: %s", strerror(errno));
                return;
        }
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[0], STDIN_FILENO);
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        int ef = cb_log_child_stderr(); /* its diagnostics, stamped (log.h) */
        if (ef >= 0)
                posix_spawn_file_actions_adddup2(&fa, ef, STDERR_FILENO);
        /* Only stdin, stdout and stderr: no socket, log, store or pidfd of
         * ours, even one a library opened without O_CLOEXEC. */
        posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        posix_spawnattr_init(&at);
        sigemptyset(&none);
        sigemptyset(&def);
        sigaddset(&def, SIGPIPE);
        sigaddset(&def, SIGTERM);
        sigaddset(&def, SIGINT);
        sigaddset(&def, SIGHUP);
        posix_spawnattr_setsigmask(&at, &none);
        posix_spawnattr_setsigdefault(&at, &def);
        posix_spawnattr_setpgroup(&at, 0); /* its own group: a timeout kills its children too */
        posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
        char *const argv[] = { (char *)"sh", (char *)"-c", (char *)cmd, NULL };
        /* Not the daemon's environment (it may hold anything the service
         * manager put there): a fixed PATH only. */
        char *const envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
        r = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&at);
        close(p[0]);
        if (r != 0) {
                close(p[1]);
                cb_log(CB_LOG_WARNING, "alert hook: cannot run /bin/sh: %s", strerror(r));
                return;
        }
        /* An event is far smaller than a pipe's buffer: a hook that does
         * not read cannot block us. */
        (void)fcntl(p[1], F_SETFL, O_NONBLOCK);
        size_t n = strlen(line);
        if (write(p[1], line, n) != (ssize_t)n)
                cb_log(CB_LOG_WARNING, "alert hook: the event did not fit the pipe");
        close(p[1]);
        uint64_t deadline = now_ms() + (uint64_t)al.timeout_s * 1000u;
        for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR)
                        return;
                pthread_mutex_lock(&al.lock);
                bool stop = al.stopping;
                pthread_mutex_unlock(&al.lock);
                if (stop || now_ms() >= deadline) {
                        if (!stop)
                                cb_log(CB_LOG_WARNING, "alert hook: still running after %u s: killed",
                                        al.timeout_s);
                        kill(-pid, SIGKILL);
                        kill(pid, SIGKILL);
                        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                                ;
                        return;
                }
                struct timespec ts = { 0, 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                cb_log(CB_LOG_WARNING, "alert hook: %s %d", WIFEXITED(status) ? "exit status" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

static void *worker(void *arg) {
        (void)arg;
        pthread_mutex_lock(&al.lock);
        for (;;) {
                while (!al.qlen && !al.stopping)
                        pthread_cond_wait(&al.cond, &al.lock);
                if (al.stopping)
                        break;
                char *line = al.q[al.qhead].line;
                uint64_t merged = al.q[al.qhead].merged;
                al.qhead = (al.qhead + 1) % ALERT_QUEUE_MAX;
                al.qlen--;
                pthread_mutex_unlock(&al.lock);
                /* Say how many like it were folded in: the line is a
                 * compact object ending in "}\n". */
                size_t n = strlen(line);
                char *m = merged && n >= 2 ? malloc(n + 48) : NULL;
                if (m) {
                        memcpy(m, line, n - 2);
                        snprintf(m + n - 2, 48, ",\"coalesced\":%llu}\n", (unsigned long long)merged);
                        free(line);
                        line = m;
                }
                run_hook(al.hook, line);
                free(line);
                pthread_mutex_lock(&al.lock);
        }
        pthread_mutex_unlock(&al.lock);
        return NULL;
}

/* ---- raising ---- */

/* Under al.lock: the identifier key, random for the process until the
 * audit log supplies its segment's (then hashes match its records). */
static cb_audit_keys *id_keys_locked(void) {
        if (!al.ids && sodium_init() >= 0) { /* idempotent; the daemon has called it already */
                al.ids = sodium_malloc(sizeof(*al.ids));
                if (al.ids)
                        randombytes_buf(al.ids, sizeof(*al.ids));
        }
        return al.ids;
}

void alert_set_id_keys(const cb_audit_keys *k) {
        pthread_mutex_lock(&al.lock);
        cb_audit_keys *ids = id_keys_locked();
        if (ids)
                memcpy(ids, k, sizeof(*ids));
        pthread_mutex_unlock(&al.lock);
}

/* Kinds that must reach the hook even while others flood the queue: they
 * have ALERT_QUEUE_RESERVED slots of their own and are never coalesced. */
static bool priority_kind(const char *kind) {
        return strcmp(kind, "leak") == 0 || strcmp(kind, "canary") == 0 || strcmp(kind, "audit_write_failed") == 0;
}

/* The (kind, client) an event coalesces under: uid and executable hash
 * (or client name); "" for an event that names no client. */
static void coalesce_key(const char *kind, json_t *o, char key[QKEY_MAX]) {
        json_t *uid = json_object_get(o, "uid"), *exe = json_object_get(o, "exe_sha256"),
               *client = json_object_get(o, "client");

        key[0] = 0;
        if (priority_kind(kind) || (!json_is_integer(uid) && !json_is_string(client)))
                return;
        snprintf(key, QKEY_MAX, "%.32s|%lld|%.64s|%.24s", kind,
                 json_is_integer(uid) ? (long long)json_integer_value(uid) : -1LL,
                 json_is_string(exe) ? json_string_value(exe) : "",
                 json_is_string(client) ? json_string_value(client) : "");
}

void alert_raise(const char *kind, json_t *event) {
        static const char *const never[] = { "value", "token", "secret_value" };
        json_t *o = json_object();
        const char *key;
        json_t *v;
        char *line;

        metrics_alert(kind);
        if (!o)
                return;
        if (json_is_object(event))
                json_object_foreach(event, key, v) {
                        bool drop = false;
                        for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
                                drop |= strcmp(key, never[i]) == 0;
                        if (!drop && strcmp(key, "kind") != 0 && strcmp(key, "time") != 0)
                                json_object_set_new(o, key, json_deep_copy(v)); /* hashed below: not the caller's */
                }
        json_object_set_new(o, "kind", json_string(kind));
        json_object_set_new(o, "time", json_integer((json_int_t)time(NULL)));
        pthread_mutex_lock(&al.lock);
        /* Token accessors only as keyed hashes, in members and free text. */
        cb_audit_keys *ids = id_keys_locked();
        if (!ids) {
                pthread_mutex_unlock(&al.lock);
                json_decref(o);
                cb_log(CB_LOG_WARNING, "ALERT %s: (out of memory building the event)", kind);
                return;
        }
        cb_audit_hide_ids(ids, o);
        char qkey[QKEY_MAX];
        coalesce_key(kind, o, qkey);
        if (al.dropped)
                json_object_set_new(o, "alerts_dropped_before", json_integer((json_int_t)al.dropped));
        line = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!line) {
                pthread_mutex_unlock(&al.lock);
                return;
        }
        cb_log(CB_LOG_WARNING, "ALERT %s: %s", kind, line);
        if (al.running && !al.stopping) {
                /* One queued event per (kind, client): a flood from one
                 * client is one hook run saying how many it stands for. */
                qent *same = NULL;
                for (size_t i = 0; qkey[0] && i < al.qlen && !same; i++) {
                        qent *e = &al.q[(al.qhead + i) % ALERT_QUEUE_MAX];
                        if (strcmp(e->key, qkey) == 0)
                                same = e;
                }
                size_t cap = priority_kind(kind) ? ALERT_QUEUE_MAX : ALERT_QUEUE_MAX - ALERT_QUEUE_RESERVED;
                if (same) {
                        same->merged++;
                } else if (al.qlen >= cap) {
                        al.dropped++;
                } else {
                        size_t n = strlen(line);
                        char *q = realloc(line, n + 2);
                        if (q) {
                                q[n] = '\n';
                                q[n + 1] = 0;
                                qent *e = &al.q[(al.qhead + al.qlen) % ALERT_QUEUE_MAX];
                                e->line = q;
                                e->merged = 0;
                                memcpy(e->key, qkey, sizeof(e->key));
                                al.qlen++;
                                al.dropped = 0;
                                line = NULL;
                                pthread_cond_signal(&al.cond);
                        }
                }
        }
        pthread_mutex_unlock(&al.lock);
        free(line);
}

/* ---- denial bursts ---- */

void alert_note_denial(uid_t uid, const char *exe_sha256, const char *exe, const char *route, unsigned status) {
        deny_client *c = NULL, *oldest = NULL;
        uint64_t t = now_ms();
        json_t *ev = NULL;

        if (!exe_sha256)
                exe_sha256 = "";
        pthread_mutex_lock(&al.lock);
        if (!al.deny_n)
                goto out;
        for (size_t i = 0; i < DENY_CLIENTS; i++) {
                deny_client *d = &al.clients[i];
                if (d->used && d->uid == uid && strcmp(d->exe_sha256, exe_sha256) == 0) {
                        c = d;
                        break;
                }
                if (!oldest || !d->used || (oldest->used && d->last_ms < oldest->last_ms))
                        oldest = d;
        }
        if (!c) {
                c = oldest;
                c->used = true;
                c->uid = uid;
                snprintf(c->exe_sha256, sizeof(c->exe_sha256), "%s", exe_sha256);
                c->alerted = false;
                c->next = 0;
                memset(c->ring, 0, al.deny_n * sizeof(*c->ring));
        }
        c->last_ms = t;
        c->ring[c->next] = t;
        c->next = (c->next + 1) % al.deny_n;
        /* ring[next] is now the oldest of the last deny_n denials. */
        uint64_t first = c->ring[c->next];
        uint64_t win = (uint64_t)al.deny_window * 1000u;
        if (first && t - first <= win && (!c->alerted || t - c->alerted_ms > win)) {
                c->alerted = true;
                c->alerted_ms = t;
                /* exe and route need not be UTF-8: lossy (\xNN), so the alert is never lost. */
                ev = json_pack("{s:i, s:o*, s:o*, s:i, s:i, s:o*, s:i}", "uid", (int)uid, "exe",
                               cb_json_string_lossy(exe), "exe_sha256", cb_json_string_lossy(exe_sha256), "denials",
                               (int)al.deny_n, "window_seconds", (int)al.deny_window, "last_route",
                               cb_json_string_lossy(route), "last_status", (int)status);
                if (!ev) /* out of memory: the alert still goes out, bare */
                        ev = json_pack("{s:i}", "uid", (int)uid);
        }
out:
        pthread_mutex_unlock(&al.lock);
        if (ev) {
                alert_raise("denial_burst", ev);
                json_decref(ev);
        }
}

int alert_parse_seconds(const char *s, unsigned long max, unsigned long *ret) {
        unsigned long v, mul = 1;
        char *end;

        if (!s || *s < '0' || *s > '9') /* strtoul would take blanks, signs */
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        if (*end) {
                mul = end[0] == 's' ? 1 : end[0] == 'm' ? 60 : end[0] == 'h' ? 3600 : end[0] == 'd' ? 86400 : 0;
                if (!mul || end[1])
                        return -EINVAL;
        }
        if (v > max / mul)
                return -EINVAL;
        *ret = v * mul;
        return 0;
}

int alert_parse_rule(const char *s, unsigned *ret_n, unsigned *ret_window) {
        unsigned long n, w;
        char *end;

        if (strcmp(s, "off") == 0) {
                *ret_n = 0;
                *ret_window = 0;
                return 0;
        }
        errno = 0;
        n = strtoul(s, &end, 10);
        if (errno || end == s || *end != '/' || n < 1 || n > ALERT_DENIAL_N_MAX)
                return -EINVAL;
        if (alert_parse_seconds(end + 1, 86400, &w) < 0 || w < 1)
                return -EINVAL;
        *ret_n = (unsigned)n;
        *ret_window = (unsigned)w;
        return 0;
}

int alert_init(const char *hook, unsigned timeout_s, unsigned deny_n, unsigned deny_window) {
        int r;

        al.timeout_s = timeout_s ? timeout_s : ALERT_HOOK_TIMEOUT_S;
        al.stopping = false;
        al.dropped = 0;
        memset(al.clients, 0, sizeof(al.clients));
        if (deny_n) {
                al.rings = calloc((size_t)DENY_CLIENTS * deny_n, sizeof(*al.rings));
                if (!al.rings)
                        return -ENOMEM;
                for (size_t i = 0; i < DENY_CLIENTS; i++)
                        al.clients[i].ring = al.rings + i * deny_n;
        }
        al.deny_n = deny_n;
        al.deny_window = deny_window;
        if (!hook)
                return 0;
        al.hook = strdup(hook);
        if (!al.hook)
                return -ENOMEM;
        r = pthread_create(&al.worker, NULL, worker, NULL);
        if (r != 0)
                return -r;
        al.running = true;
        return 0;
}

void alert_stop(void) {
        pthread_mutex_lock(&al.lock);
        al.stopping = true;
        pthread_cond_broadcast(&al.cond);
        bool running = al.running;
        pthread_mutex_unlock(&al.lock);
        if (running)
                pthread_join(al.worker, NULL);
        al.running = false;
        for (; al.qlen; al.qlen--, al.qhead = (al.qhead + 1) % ALERT_QUEUE_MAX)
                free(al.q[al.qhead].line);
        free(al.hook);
        free(al.rings);
        al.hook = NULL;
        al.rings = NULL;
        al.deny_n = 0;
}
