/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Crash consistency of the commit protocol.  A writer process
 * ($CB_STORE_WRITER, store-writer.c) performs puts, state changes and
 * destroys (compactions) and reports each one before ("begin") and after
 * ("ack") the call; we SIGKILL it at random moments, or let it kill itself
 * at a named point of the commit path, and then check:
 *
 *   - the store opens and verifies (no integrity error);
 *   - every acknowledged operation is there, exactly: names, versions,
 *     states and values equal a model built from the ack lines;
 *   - the one operation in flight at the kill is either absent or exactly
 *     right (and present once the header was committed);
 *   - exactly one log file is left after the open.
 *
 * The stores live on a private tmpfs when we may mount one: a process kill
 * leaves the page cache as it was, so a disk adds nothing but fsync stalls
 * (seconds on a busy host) that would blow the time budget.
 * CBTEST_CRASH_ON_DISK=1 uses the tmpdir's own file system instead.
 *
 * CBTEST_SEED=<n> replays a run (the seed is printed).
 */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbtest.h"
#include "error.h"
#include "store.h"

#define NAMES 50
#define VALUE_MAX_LEN 300
#define MIN_ITERATIONS 200
#define MAX_ITERATIONS 400
#define TIME_BUDGET_US (20 * 1000000LL) /* stop adding iterations past MIN_ITERATIONS after this */
#define WRITER_TIMEOUT_US (60 * 1000000LL)
#define WRITER_COUNT 1000000

/* ---- deterministic data: keep in sync with store-writer.c ------------- */

static uint64_t splitmix(uint64_t *x) {
        uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static size_t value_for(uint64_t i, unsigned char out[VALUE_MAX_LEN]) {
        uint64_t x = i * 2654435761ULL + 17;
        size_t len = 100 + (size_t)(splitmix(&x) % 201);

        for (size_t j = 0; j < len; j++)
                out[j] = (unsigned char)splitmix(&x);
        return len;
}

/* ---- the model ------------------------------------------------------- */

enum op { OP_PUT, OP_DISABLE, OP_PREVIOUS, OP_CURRENT, OP_DESTROY };
static const char *const op_names[] = { "put", "disable", "previous", "current", "destroy" };

struct opline {
        uint64_t i;
        enum op op;
        unsigned name; /* s<name> */
        uint32_t version;
};

struct mver {
        uint32_t version;
        enum cb_version_state state;
        uint64_t put_op; /* the operation whose value it holds */
        bool value_checked;
};

struct msec {
        struct mver *v;
        size_t n, cap;
};

struct world {
        char dir[4096];
        char keyfile[4096];
        cb_unlock_spec *spec;
        struct msec model[NAMES];
        uint64_t next; /* the first operation not known to be done */
        /* statistics */
        unsigned iterations, kills, inflight_at_kill, inflight_landed, hook_kills;
        unsigned inflight_by_op[5], landed_by_op[5];
        uint64_t acked;
};

static const char *writer_path(void) {
        const char *p = getenv("CB_STORE_WRITER");

        if (!p || !*p)
                cbtest_fail(__FILE__, __LINE__, "CB_STORE_WRITER is not set (meson sets it)");
        return p;
}

static struct mver *model_find(struct world *w, unsigned name, uint32_t version) {
        struct msec *m = &w->model[name];

        for (size_t j = 0; j < m->n; j++)
                if (m->v[j].version == version)
                        return &m->v[j];
        return NULL;
}

static void model_demote_current(struct world *w, unsigned name) {
        struct msec *m = &w->model[name];

        for (size_t j = 0; j < m->n; j++)
                if (m->v[j].state == CB_VS_CURRENT)
                        m->v[j].state = CB_VS_PREVIOUS;
}

/* Apply a done operation; also checks the writer chose something legal. */
static void model_apply(struct world *w, const struct opline *o) {
        struct msec *m = &w->model[o->name];
        struct mver *v;

        if (o->op == OP_PUT) {
                uint32_t expect = m->n ? m->v[m->n - 1].version + 1 : 1;
                if (o->version != expect)
                        cbtest_fail(__FILE__, __LINE__, "op %" PRIu64 ": put s%u v%u, model expects v%u", o->i,
                                    o->name, o->version, expect);
                if (m->n == m->cap) {
                        m->cap = m->cap ? m->cap * 2 : 8;
                        m->v = realloc(m->v, m->cap * sizeof(*m->v));
                        ASSERT_TRUE(m->v);
                }
                model_demote_current(w, o->name);
                m->v[m->n++] = (struct mver){ o->version, CB_VS_CURRENT, o->i, false };
                return;
        }
        v = model_find(w, o->name, o->version);
        if (!v || v->state == CB_VS_DESTROYED || v->state == CB_VS_CURRENT)
                cbtest_fail(__FILE__, __LINE__, "op %" PRIu64 ": %s s%u v%u on a version the model has %s", o->i,
                            op_names[o->op], o->name, o->version,
                            v ? cb_version_state_name(v->state) : "never seen");
        switch (o->op) {
        case OP_DISABLE:
                v->state = CB_VS_DISABLED;
                break;
        case OP_PREVIOUS:
                v->state = CB_VS_PREVIOUS;
                break;
        case OP_CURRENT:
                model_demote_current(w, o->name);
                v->state = CB_VS_CURRENT;
                break;
        case OP_DESTROY:
                v->state = CB_VS_DESTROYED;
                break;
        case OP_PUT:
                break;
        }
}

static enum cb_version_state op_target(enum op op) {
        switch (op) {
        case OP_PUT:
        case OP_CURRENT:
                return CB_VS_CURRENT;
        case OP_DISABLE:
                return CB_VS_DISABLED;
        case OP_PREVIOUS:
                return CB_VS_PREVIOUS;
        case OP_DESTROY:
                return CB_VS_DESTROYED;
        }
        return 0;
}

/* Did the unacknowledged operation o reach the store?  (The full
 * comparison afterwards checks that what is there is exactly right.) */
static bool op_landed(cb_store *s, const struct opline *o) {
        const cb_version_info *v;
        char name[16];
        size_t n;

        snprintf(name, sizeof(name), "s%u", o->name);
        if (cb_store_versions(s, name, &v, &n) < 0)
                return false;
        for (size_t j = 0; j < n; j++)
                if (v[j].version == o->version)
                        return o->op == OP_PUT || v[j].state == op_target(o->op);
        return false;
}

/* Compare the store with the model: names, versions and states always;
 * values of versions not yet checked (values never change), or all of them
 * when full (decrypting is what costs: guarded memory per call). */
static void expect_model(struct world *w, cb_store *s, const char *when, bool full) {
        unsigned char want[VALUE_MAX_LEN];
        const char **names;
        size_t nnames, expect_names = 0;

        ASSERT_OK(cb_store_names(s, &names, &nnames));
        for (size_t k = 0; k < nnames; k++) {
                unsigned idx;
                char tail;
                if (sscanf(names[k], "s%u%c", &idx, &tail) != 1 || idx >= NAMES || !w->model[idx].n)
                        cbtest_fail(__FILE__, __LINE__, "%s: the store holds '%s', which was never put", when,
                                    names[k]);
        }
        free(names);
        for (unsigned k = 0; k < NAMES; k++)
                expect_names += w->model[k].n > 0;
        if (nnames != expect_names)
                cbtest_fail(__FILE__, __LINE__, "%s: %zu secrets in the store, %zu expected", when, nnames,
                            expect_names);

        for (unsigned k = 0; k < NAMES; k++) {
                struct msec *m = &w->model[k];
                const cb_version_info *v;
                uint32_t current = 0;
                char name[16];
                size_t n;

                if (!m->n)
                        continue;
                snprintf(name, sizeof(name), "s%u", k);
                ASSERT_OK(cb_store_versions(s, name, &v, &n));
                if (n != m->n)
                        cbtest_fail(__FILE__, __LINE__, "%s: '%s' has %zu versions, %zu expected", when, name, n,
                                    m->n);
                for (size_t j = 0; j < n; j++) {
                        struct mver *e = &m->v[j];
                        cb_secbuf *got = NULL;
                        int r;

                        if (v[j].version != e->version || v[j].state != e->state)
                                cbtest_fail(__FILE__, __LINE__, "%s: '%s' version %u is %s; expected version %u %s",
                                            when, name, v[j].version, cb_version_state_name(v[j].state),
                                            e->version, cb_version_state_name(e->state));
                        if (e->state == CB_VS_CURRENT)
                                current = e->version;
                        if (e->state != CB_VS_DESTROYED && e->value_checked && !full)
                                continue;
                        r = cb_store_get(s, name, e->version, true, &got, NULL, NULL);
                        if (e->state == CB_VS_DESTROYED) {
                                if (r != -EKEYREVOKED)
                                        cbtest_fail(__FILE__, __LINE__, "%s: destroyed '%s' v%u: get gave %d",
                                                    when, name, e->version, r);
                                continue;
                        }
                        if (r < 0)
                                cbtest_fail(__FILE__, __LINE__, "%s: get '%s' v%u: %s", when, name, e->version,
                                            cb_error_last());
                        size_t len = value_for(e->put_op, want);
                        if (cb_secbuf_len(got) != len || memcmp(cb_secbuf_data(got), want, len) != 0)
                                cbtest_fail(__FILE__, __LINE__, "%s: '%s' v%u does not hold the value of op %" PRIu64,
                                            when, name, e->version, e->put_op);
                        cb_secbuf_free(got);
                        e->value_checked = true;
                }
                if (full) {
                        uint32_t gotv = 0;
                        cb_secbuf *got = NULL;
                        ASSERT_OK(cb_store_get(s, name, 0, false, &got, &gotv, NULL));
                        cb_secbuf_free(got);
                        ASSERT_EQ(gotv, current);
                }
        }
}

static unsigned count_logs(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *e;
        unsigned n = 0;

        ASSERT_TRUE(d);
        while ((e = readdir(d)))
                n += strncmp(e->d_name, "log-", 4) == 0;
        closedir(d);
        return n;
}

/* ---- running the writer ------------------------------------------------ */

static int64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t rng_state;

static uint64_t rnd(uint64_t bound) {
        return splitmix(&rng_state) % bound;
}

struct session {
        pid_t pid;
        int fd;
        char buf[4096];
        size_t len;
        bool ready, done, eof, killed;
        bool have_begin, begin_acked;
        struct opline begin;
        unsigned acks;
};

static pid_t spawn_writer(struct world *w, const char *mode, const char *crash_at, unsigned crash_n, int *ret_fd) {
        char start[32], count[32], nbuf[32];
        pid_t pid, parent = getpid();
        int p[2];

        snprintf(start, sizeof(start), "%" PRIu64, w->next);
        snprintf(count, sizeof(count), "%d", WRITER_COUNT);
        snprintf(nbuf, sizeof(nbuf), "%u", crash_n);
        ASSERT_OK(pipe2(p, O_CLOEXEC));
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                /* Never outlive the test (killed by a timeout, say). */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                if (dup2(p[1], STDOUT_FILENO) < 0)
                        _exit(127);
                if (crash_at) {
                        setenv("CB_CRASH_AT", crash_at, 1);
                        setenv("CB_CRASH_AT_N", nbuf, 1);
                } else {
                        unsetenv("CB_CRASH_AT");
                        unsetenv("CB_CRASH_AT_N");
                }
                execl(writer_path(), writer_path(), w->dir, w->keyfile, start, count, mode, (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        *ret_fd = p[0];
        return pid;
}

static bool parse_opline(const char *line, const char *verb, struct opline *o) {
        char op[16], vb[8];
        unsigned long long i;
        unsigned name, version;
        int end = -1;

        if (sscanf(line, "%7s %llu %15s s%u v%u%n", vb, &i, op, &name, &version, &end) != 5 || end < 0 ||
            line[end] != '\0' || strcmp(vb, verb) != 0 || name >= NAMES)
                return false;
        for (size_t k = 0; k < sizeof(op_names) / sizeof(op_names[0]); k++)
                if (strcmp(op, op_names[k]) == 0) {
                        *o = (struct opline){ i, (enum op)k, name, version };
                        return true;
                }
        return false;
}

static void handle_line(struct world *w, struct session *se, const char *line) {
        struct opline o;

        if (strcmp(line, "ready") == 0) {
                ASSERT_FALSE(se->ready);
                se->ready = true;
        } else if (strcmp(line, "done") == 0) {
                se->done = true;
        } else if (parse_opline(line, "begin", &o)) {
                if (se->have_begin && !se->begin_acked)
                        cbtest_fail(__FILE__, __LINE__, "writer began op %" PRIu64 " before op %" PRIu64 " was acked",
                                    o.i, se->begin.i);
                if (o.i != w->next)
                        cbtest_fail(__FILE__, __LINE__, "writer began op %" PRIu64 ", expected %" PRIu64, o.i,
                                    w->next);
                se->begin = o;
                se->have_begin = true;
                se->begin_acked = false;
        } else if (parse_opline(line, "ack", &o)) {
                if (!se->have_begin || se->begin_acked || o.i != se->begin.i || o.op != se->begin.op ||
                    o.name != se->begin.name || o.version != se->begin.version)
                        cbtest_fail(__FILE__, __LINE__, "ack line '%s' does not match the last begin", line);
                model_apply(w, &o);
                se->begin_acked = true;
                se->acks++;
                w->acked++;
                w->next = o.i + 1;
        } else {
                cbtest_fail(__FILE__, __LINE__, "unexpected writer output '%s'", line);
        }
}

/* Read what is there (the fd is readable); sets se->eof at end of file. */
static void pump(struct world *w, struct session *se) {
        ssize_t k = read(se->fd, se->buf + se->len, sizeof(se->buf) - se->len - 1);
        char *nl;

        if (k < 0 && errno == EINTR)
                return;
        ASSERT_TRUE(k >= 0);
        if (k == 0) {
                se->eof = true;
                return;
        }
        se->len += (size_t)k;
        se->buf[se->len] = '\0';
        while ((nl = memchr(se->buf, '\n', se->len))) {
                *nl = '\0';
                handle_line(w, se, se->buf);
                se->len -= (size_t)(nl + 1 - se->buf);
                memmove(se->buf, nl + 1, se->len);
        }
        ASSERT_TRUE(se->len < sizeof(se->buf) - 1);
}

static void kill_writer(struct session *se) {
        if (!se->killed) {
                ASSERT_OK(kill(se->pid, SIGKILL));
                se->killed = true;
        }
}

/* Wait for the fd to become readable (or hung up) until deadline_us (<0:
 * no deadline); false when the deadline passed first. */
static bool wait_readable(int fd, int64_t deadline_us) {
        for (;;) {
                struct pollfd p = { fd, POLLIN, 0 };
                struct timespec ts, *tsp = NULL;
                int r;

                if (deadline_us >= 0) {
                        int64_t left = deadline_us - now_us();
                        if (left < 0)
                                left = 0;
                        ts.tv_sec = (time_t)(left / 1000000);
                        ts.tv_nsec = (long)(left % 1000000) * 1000;
                        tsp = &ts;
                }
                r = ppoll(&p, 1, tsp, NULL);
                if (r < 0 && errno == EINTR)
                        continue;
                ASSERT_TRUE(r >= 0);
                return r > 0;
        }
}

/* Reap the writer; it must have died of SIGKILL (ours or its own). */
static void reap(struct world *w, struct session *se, bool expect_sigkill) {
        int status;

        while (!se->eof)
                pump(w, se);
        close(se->fd);
        ASSERT_EQ(waitpid(se->pid, &status, 0), se->pid);
        if (expect_sigkill && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
                return;
        if (!expect_sigkill && WIFEXITED(status) && WEXITSTATUS(status) == 0 && se->done)
                return;
        if (WIFSIGNALED(status))
                cbtest_fail(__FILE__, __LINE__, "writer died of signal %d (%s)", WTERMSIG(status),
                            expect_sigkill ? "unexpected" : "expected a clean exit");
        cbtest_fail(__FILE__, __LINE__, "writer exited with status %d%s (see its message above)", WEXITSTATUS(status),
                    expect_sigkill ? " before it was killed" : "");
}

/* After the writer is gone: reopen, verify, account for the op in flight
 * and compare everything with the model. */
static void check_after(struct world *w, struct session *se, const char *point, bool full) {
        bool inflight = se->have_begin && !se->begin_acked, landed = false;
        char when[128];
        cb_store *s = NULL;
        int r;

        snprintf(when, sizeof(when), "after kill %u%s%s (next op %" PRIu64 ")", w->kills, point ? " at " : "",
                 point ? point : "", w->next);
        r = cb_store_open(w->dir, w->spec, &s);
        if (r < 0)
                cbtest_fail(__FILE__, __LINE__, "%s: open: %s (%s)", when, cb_error_last(), strerror(-r));
        r = cb_store_verify(s, NULL, NULL);
        if (r < 0)
                cbtest_fail(__FILE__, __LINE__, "%s: verify: %s (%s)", when, cb_error_last(), strerror(-r));
        if (inflight) {
                w->inflight_at_kill++;
                w->inflight_by_op[se->begin.op]++;
                landed = op_landed(s, &se->begin);
                if (landed) {
                        model_apply(w, &se->begin);
                        w->next = se->begin.i + 1;
                        w->inflight_landed++;
                        w->landed_by_op[se->begin.op]++;
                }
        }
        expect_model(w, s, when, full);
        if (count_logs(w->dir) != 1)
                cbtest_fail(__FILE__, __LINE__, "%s: %u log files left after open", when, count_logs(w->dir));
        if (point) {
                /* The writer killed itself inside an operation, after "begin". */
                if (!inflight)
                        cbtest_fail(__FILE__, __LINE__, "%s: no operation in flight", when);
                if (strcmp(point, "compact-log-written") == 0 && se->begin.op != OP_DESTROY)
                        cbtest_fail(__FILE__, __LINE__, "%s: in flight was %s, not a destroy", when,
                                    op_names[se->begin.op]);
                /* Past the header rename the operation is committed. */
                if (strcmp(point, "header-committed") == 0 && !landed)
                        cbtest_fail(__FILE__, __LINE__, "%s: op %" PRIu64 " (%s s%u v%u) was committed but is "
                                    "missing after reopen", when, se->begin.i, op_names[se->begin.op],
                                    se->begin.name, se->begin.version);
                printf("  %-20s op %-6" PRIu64 " %-8s s%u v%u: %s after reopen\n", point, se->begin.i,
                       op_names[se->begin.op], se->begin.name, se->begin.version, landed ? "present" : "absent");
        }
        cb_store_close(s);
}

static char tmpfs_mnt[4096];

static void umount_tmpfs(void) {
        if (tmpfs_mnt[0])
                (void)umount2(tmpfs_mnt, MNT_DETACH);
}

static const char *state_base(void) {
        static char base[4096];
        const char *disk = getenv("CBTEST_CRASH_ON_DISK");

        if (base[0])
                return base;
        snprintf(base, sizeof(base), "%s/fs", cbtest_tmpdir());
        ASSERT_OK(mkdir(base, 0700));
        /* A mount namespace of our own: the mount cannot outlive us. */
        if (!(disk && *disk && strcmp(disk, "0") != 0) && unshare(CLONE_NEWNS) == 0 &&
            mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
            mount("tmpfs", base, "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=0700") == 0) {
                snprintf(tmpfs_mnt, sizeof(tmpfs_mnt), "%s", base);
                atexit(umount_tmpfs); /* runs before cbtest's removal of the tmpdir */
                printf("stores on a private tmpfs at %s\n", base);
        } else {
                printf("stores on the file system of %s\n", base);
        }
        return base;
}

/* Every value once more, from a fresh open. */
static void final_check(struct world *w) {
        cb_store *s = NULL;
        size_t nsec = 0, nver = 0;

        ASSERT_OK(cb_store_open(w->dir, w->spec, &s));
        ASSERT_OK(cb_store_verify(s, &nsec, &nver));
        expect_model(w, s, "final check", true);
        printf("final check: %zu secrets, %zu live versions, all as acknowledged\n", nsec, nver);
        cb_store_close(s);
}

static void world_init(struct world *w, const char *sub) {
        char spec_str[4200];
        const char *base = cbtest_path(state_base(), sub);

        memset(w, 0, sizeof(*w));
        ASSERT_OK(mkdir(base, 0700));
        snprintf(w->dir, sizeof(w->dir), "%s/state", base);
        snprintf(w->keyfile, sizeof(w->keyfile), "%s/key", base);
        snprintf(spec_str, sizeof(spec_str), "keyfile:%s", w->keyfile);
        ASSERT_OK(cb_unlock_spec_parse(spec_str, &w->spec));
        ASSERT_OK(cb_store_create(w->dir, w->spec));
}

static void world_free(struct world *w) {
        for (unsigned k = 0; k < NAMES; k++)
                free(w->model[k].v);
        cb_unlock_spec_free(w->spec);
}

/* Let the writer run unhindered for a while so there is history to break. */
static void warm_up(struct world *w, unsigned ops) {
        struct session se = { 0 };

        se.pid = spawn_writer(w, "mix", NULL, 0, &se.fd);
        while (!se.eof && se.acks < ops) {
                wait_readable(se.fd, -1);
                pump(w, &se);
        }
        kill_writer(&se);
        reap(w, &se, true);
        check_after(w, &se, NULL, true);
}

TEST(hook_points) {
        static const char *const points[] = { "log-written", "log-synced", "header-committed", "compact-log-written" };
        struct world w;

        world_init(&w, "hooks");
        warm_up(&w, 120);
        for (size_t p = 0; p < sizeof(points) / sizeof(points[0]); p++)
                for (unsigned n = 1; n <= 3; n += 2) {
                        struct session se = { 0 };
                        int64_t deadline = now_us() + WRITER_TIMEOUT_US;

                        se.pid = spawn_writer(&w, "mix", points[p], n, &se.fd);
                        while (!se.eof) {
                                if (!wait_readable(se.fd, deadline)) {
                                        kill_writer(&se);
                                        cbtest_fail(__FILE__, __LINE__, "writer did not reach '%s' in time",
                                                    points[p]);
                                }
                                pump(&w, &se);
                                if (se.done)
                                        cbtest_fail(__FILE__, __LINE__, "writer finished without reaching '%s'",
                                                    points[p]);
                        }
                        reap(&w, &se, true);
                        w.kills++;
                        w.hook_kills++;
                        check_after(&w, &se, points[p], true);
                }
        final_check(&w);
        printf("hook points: %u self-kills, %" PRIu64 " ops acknowledged, %u in-flight ops present after reopen\n",
               w.hook_kills, w.acked, w.inflight_landed);
        world_free(&w);
}

enum kill_mode { KILL_DELAY_SPAWN, KILL_DELAY_READY, KILL_AFTER_ACKS, KILL_MODES };

TEST(random_kills) {
        static const char *const mode_names[] = { "delay-from-spawn", "delay-from-ready", "after-acks" };
        unsigned per_mode[KILL_MODES] = { 0 };
        const char *seed_env = getenv("CBTEST_SEED");
        uint64_t seed;
        int64_t t0 = now_us();
        struct world w;

        seed = seed_env && *seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        rng_state = seed;
        printf("random_kills: seed %" PRIu64 " (replay with CBTEST_SEED=%" PRIu64 ")\n", seed, seed);
        world_init(&w, "random");
        warm_up(&w, 60);
        while (w.iterations < MIN_ITERATIONS || (w.iterations < MAX_ITERATIONS && now_us() - t0 < TIME_BUDGET_US)) {
                /* Delays from spawn mostly end in process start-up (slow under
                 * ASan), so they get a smaller share. */
                uint64_t pick = rnd(10);
                enum kill_mode mode = pick < 2 ? KILL_DELAY_SPAWN : pick < 6 ? KILL_DELAY_READY : KILL_AFTER_ACKS;
                struct session se = { 0 };
                int64_t start = now_us(), deadline = -1, delay = (int64_t)rnd(30001);
                unsigned want_acks = (unsigned)rnd(7);

                se.pid = spawn_writer(&w, rnd(5) ? "mix" : "put", NULL, 0, &se.fd);
                if (mode == KILL_DELAY_SPAWN)
                        deadline = start + delay;
                while (!se.eof) {
                        int64_t d = deadline;

                        if (se.killed)
                                d = -1; /* just drain */
                        else if (d < 0)
                                d = start + WRITER_TIMEOUT_US;
                        if (!wait_readable(se.fd, d)) {
                                if (!se.killed && deadline >= 0 && now_us() >= deadline) {
                                        kill_writer(&se);
                                        continue;
                                }
                                kill_writer(&se);
                                cbtest_fail(__FILE__, __LINE__, "writer made no progress for %lld s",
                                            (long long)(WRITER_TIMEOUT_US / 1000000));
                        }
                        pump(&w, &se);
                        if (se.killed)
                                continue;
                        if (se.done)
                                cbtest_fail(__FILE__, __LINE__, "writer ran out of operations");
                        if (mode == KILL_DELAY_READY && se.ready && deadline < 0)
                                deadline = now_us() + delay;
                        if (mode == KILL_AFTER_ACKS && se.ready && se.acks >= want_acks)
                                kill_writer(&se);
                        else if (deadline >= 0 && now_us() >= deadline)
                                kill_writer(&se);
                }
                reap(&w, &se, se.killed); /* not killed: it exited, and reap says how */
                w.iterations++;
                w.kills++;
                per_mode[mode]++;
                check_after(&w, &se, NULL, w.iterations % 25 == 0);
        }
        printf("random_kills: %u iterations in %.1f s (%u %s, %u %s, %u %s); %" PRIu64 " ops acknowledged; "
               "%u kills landed mid-operation, %u of those ops were present after reopen\n",
               w.iterations, (double)(now_us() - t0) / 1e6, per_mode[0], mode_names[0], per_mode[1], mode_names[1],
               per_mode[2], mode_names[2], w.acked, w.inflight_at_kill, w.inflight_landed);
        printf("random_kills: in flight at the kill (present after reopen): put %u (%u), state change %u (%u), "
               "destroy %u (%u)\n", w.inflight_by_op[OP_PUT], w.landed_by_op[OP_PUT],
               w.inflight_by_op[OP_DISABLE] + w.inflight_by_op[OP_PREVIOUS] + w.inflight_by_op[OP_CURRENT],
               w.landed_by_op[OP_DISABLE] + w.landed_by_op[OP_PREVIOUS] + w.landed_by_op[OP_CURRENT],
               w.inflight_by_op[OP_DESTROY], w.landed_by_op[OP_DESTROY]);
        ASSERT_TRUE(w.iterations >= MIN_ITERATIONS);
        final_check(&w);
        world_free(&w);
}
