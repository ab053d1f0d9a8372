/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A full disk.  The store lives on a small private tmpfs (root with
 * CAP_SYS_ADMIN; otherwise the test skips), a filler file takes the rest of
 * the space, and every write that cannot fit must fail cleanly: -ENOSPC, a
 * message saying nothing was changed, the files on disk exactly as before,
 * the open handle still serving every acknowledged value, a fresh open
 * holding exactly the acknowledged secrets, and writes working again once
 * space is freed.
 *
 * Three places can run out of space: the log append of a put or state
 * change, the new log file of a compaction (destroy), and the header temp
 * file every commit writes last.  A test hook tells which one a failure hit
 * (did the commit path reach "log-written" / "compact-log-written"?), and
 * the filler is shrunk step by step until each has been seen.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cbtest.h"
#include "error.h"
#include "store.h"

#define TMPFS_SIZE "256k"
#define PAGE 4096

/* ---- mounts ------------------------------------------------------------ */

static char mounts[4][4096];
static int n_mounts;

static void umount_all(void) {
        for (int i = n_mounts; i-- > 0;)
                (void)umount2(mounts[i], MNT_DETACH);
}

static const char *mount_tmpfs(const char *sub) {
        static bool ns_ready;
        char *path;

        ASSERT_TRUE(n_mounts < (int)(sizeof(mounts) / sizeof(mounts[0])));
        path = mounts[n_mounts];
        snprintf(path, sizeof(mounts[0]), "%s/%s", cbtest_tmpdir(), sub);
        ASSERT_OK(mkdir(path, 0700));
        if (!ns_ready) {
                /* A mount namespace of our own, so a killed test leaves no
                 * mount behind; the umount at exit is for the normal case
                 * (it runs before cbtest removes the tmpdir). */
                if (unshare(CLONE_NEWNS) == 0)
                        (void)mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
                atexit(umount_all);
                ns_ready = true;
        }
        if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=" TMPFS_SIZE ",mode=0700") < 0) {
                if (errno == EPERM)
                        cbtest_skip("root with CAP_SYS_ADMIN to mount a tmpfs for ENOSPC");
                cbtest_fail(__FILE__, __LINE__, "mount tmpfs on %s: %s", path, strerror(errno));
        }
        n_mounts++;
        return path;
}

/* ---- filler ------------------------------------------------------------ */

/* Grow the filler until the file system is full; returns its size. */
static off_t fill(const char *path) {
        static const unsigned char chunk[PAGE] = { 0x5a };
        struct stat st;
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

        ASSERT_TRUE(fd >= 0);
        for (size_t n = sizeof(chunk); n >= 1;) {
                ssize_t k = write(fd, chunk, n);
                if (k < 0 && errno == ENOSPC)
                        n /= 2; /* then the last bytes of a page, if the fs is not page-granular */
                else if (k <= 0)
                        cbtest_fail(__FILE__, __LINE__, "filling %s: %s", path, strerror(errno));
        }
        ASSERT_OK(fstat(fd, &st));
        close(fd);
        return st.st_size;
}

static void set_size(const char *path, off_t size) {
        ASSERT_OK(truncate(path, size));
}

/* ---- hook -------------------------------------------------------------- */

enum { H_LOG_WRITTEN = 1, H_COMPACT_WRITTEN = 2, H_HEADER_COMMITTED = 4 };
static unsigned hooks_seen;

static void hook(const char *point) {
        if (strcmp(point, "log-written") == 0)
                hooks_seen |= H_LOG_WRITTEN;
        else if (strcmp(point, "compact-log-written") == 0)
                hooks_seen |= H_COMPACT_WRITTEN;
        else if (strcmp(point, "header-committed") == 0)
                hooks_seen |= H_HEADER_COMMITTED;
}

/* Where a write ran out of space. */
enum fail_mode { FAIL_NONE, FAIL_LOG, FAIL_HEADER, FAIL_MODES };
static const char *const fail_names[] = { "none", "log", "header temp file" };

/* ---- what was acknowledged --------------------------------------------- */

static uint64_t splitmix(uint64_t *x) {
        uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static void value_bytes(uint64_t seed, unsigned char *out, size_t len) {
        for (size_t j = 0; j < len; j++)
                out[j] = (unsigned char)splitmix(&seed);
}

struct acked {
        char name[16];
        uint32_t version;
        uint64_t seed;
        size_t len;
        bool destroyed;
};

struct env {
        char dir[4096];
        char filler[4096];
        cb_unlock_spec *spec;
        cb_store *s;
        struct acked *a;
        size_t n, cap;
        uint64_t next_seed;
        unsigned seen[FAIL_MODES];
};

static struct acked *find_acked(struct env *e, const char *name, uint32_t version) {
        for (size_t i = 0; i < e->n; i++)
                if (strcmp(e->a[i].name, name) == 0 && e->a[i].version == version)
                        return &e->a[i];
        return NULL;
}

static void env_init(struct env *e, const char *mnt, const char *keyname) {
        char spec_str[4200];

        memset(e, 0, sizeof(*e));
        snprintf(e->dir, sizeof(e->dir), "%s/state", mnt);
        snprintf(e->filler, sizeof(e->filler), "%s/filler", mnt);
        /* The key file lives outside the small file system. */
        snprintf(spec_str, sizeof(spec_str), "keyfile:%s", cbtest_path(cbtest_tmpdir(), keyname));
        ASSERT_OK(cb_unlock_spec_parse(spec_str, &e->spec));
        ASSERT_OK(cb_store_create(e->dir, e->spec));
        ASSERT_OK(cb_store_open(e->dir, e->spec, &e->s));
        e->next_seed = 1;
        cb_store_test_hook = hook;
        cb_store_test_no_reserve = true; /* walk the paths that can run out of space */
}

static void env_free(struct env *e) {
        cb_store_test_hook = NULL;
        cb_store_close(e->s);
        cb_unlock_spec_free(e->spec);
        free(e->a);
}

/* Every acknowledged value is served by s, and s holds nothing else. */
static void expect_acked(struct env *e, cb_store *s, const char *when) {
        size_t names = 0, nn;
        const char **list;

        for (size_t i = 0; i < e->n; i++) {
                const struct acked *a = &e->a[i];
                const cb_version_info *v;
                size_t nv, expect_nv = 0;
                cb_secbuf *got = NULL;
                uint32_t last = 0;
                int r;

                if (!find_acked(e, a->name, 1) || find_acked(e, a->name, 1) == a)
                        names++;
                r = cb_store_get(s, a->name, a->version, true, &got, NULL, NULL);
                if (a->destroyed) {
                        if (r != -EKEYREVOKED)
                                cbtest_fail(__FILE__, __LINE__, "%s: destroyed '%s' v%u: get gave %d", when, a->name,
                                            a->version, r);
                } else {
                        unsigned char *want = malloc(a->len);
                        ASSERT_TRUE(want);
                        if (r < 0)
                                cbtest_fail(__FILE__, __LINE__, "%s: get '%s' v%u: %s", when, a->name, a->version,
                                            cb_error_last());
                        value_bytes(a->seed, want, a->len);
                        if (cb_secbuf_len(got) != a->len || memcmp(cb_secbuf_data(got), want, a->len) != 0)
                                cbtest_fail(__FILE__, __LINE__, "%s: '%s' v%u holds a wrong value", when, a->name,
                                            a->version);
                        free(want);
                        cb_secbuf_free(got);
                }
                /* Versions: exactly the acknowledged ones, the newest current. */
                ASSERT_OK(cb_store_versions(s, a->name, &v, &nv));
                for (size_t j = 0; j < e->n; j++)
                        if (strcmp(e->a[j].name, a->name) == 0) {
                                expect_nv++;
                                if (e->a[j].version > last)
                                        last = e->a[j].version;
                        }
                if (nv != expect_nv)
                        cbtest_fail(__FILE__, __LINE__, "%s: '%s' has %zu versions, %zu acknowledged", when, a->name,
                                    nv, expect_nv);
                for (size_t j = 0; j < nv; j++) {
                        const struct acked *x = find_acked(e, a->name, v[j].version);
                        enum cb_version_state want = !x ? 0
                                                     : x->destroyed ? CB_VS_DESTROYED
                                                     : v[j].version == last ? CB_VS_CURRENT
                                                                            : CB_VS_PREVIOUS;
                        if (v[j].state != want)
                                cbtest_fail(__FILE__, __LINE__, "%s: '%s' v%u is %s, expected %s", when, a->name,
                                            v[j].version, cb_version_state_name(v[j].state),
                                            x ? cb_version_state_name(want) : "no such version");
                }
        }
        ASSERT_OK(cb_store_names(s, &list, &nn));
        free(list);
        if (nn != names)
                cbtest_fail(__FILE__, __LINE__, "%s: %zu secrets in the store, %zu acknowledged", when, nn, names);
}

/* A fresh handle: opens, verifies and holds exactly what was acknowledged. */
static void expect_reopen(struct env *e, const char *when) {
        cb_store *s2 = NULL;
        int r;

        r = cb_store_open(e->dir, e->spec, &s2);
        if (r < 0)
                cbtest_fail(__FILE__, __LINE__, "%s: reopen: %s", when, cb_error_last());
        r = cb_store_verify(s2, NULL, NULL);
        if (r < 0)
                cbtest_fail(__FILE__, __LINE__, "%s: verify: %s", when, cb_error_last());
        expect_acked(e, s2, when);
        cb_store_close(s2);
}

/* ---- the files on disk ---------------------------------------------------- */

struct snap {
        unsigned char *header;
        size_t header_len;
        char log[256];
        off_t log_size;
        unsigned entries;
};

static void snap_take(const struct env *e, struct snap *sn) {
        DIR *d = opendir(e->dir);
        struct dirent *de;
        unsigned logs = 0;

        memset(sn, 0, sizeof(*sn));
        ASSERT_TRUE(d);
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                sn->entries++;
                if (strncmp(de->d_name, "log-", 4) == 0) {
                        struct stat st;
                        logs++;
                        snprintf(sn->log, sizeof(sn->log), "%s", de->d_name);
                        ASSERT_OK(fstatat(dirfd(d), de->d_name, &st, 0));
                        sn->log_size = st.st_size;
                } else if (strcmp(de->d_name, "header") != 0 && strcmp(de->d_name, "lock") != 0) {
                        cbtest_fail(__FILE__, __LINE__, "unexpected file '%s' in the state directory", de->d_name);
                }
        }
        closedir(d);
        if (logs != 1)
                cbtest_fail(__FILE__, __LINE__, "%u log files in the state directory", logs);
        sn->header = cbtest_read_file(cbtest_path(e->dir, "header"), &sn->header_len);
        ASSERT_TRUE(sn->header);
}

static void snap_expect_same(const struct env *e, struct snap *before, const char *when) {
        struct snap now;

        snap_take(e, &now);
        if (now.header_len != before->header_len || memcmp(now.header, before->header, now.header_len) != 0)
                cbtest_fail(__FILE__, __LINE__, "%s: the header changed", when);
        if (strcmp(now.log, before->log) != 0 || now.log_size != before->log_size)
                cbtest_fail(__FILE__, __LINE__, "%s: the log changed (%s, %lld bytes; was %s, %lld bytes)", when,
                            now.log, (long long)now.log_size, before->log, (long long)before->log_size);
        if (now.entries != before->entries)
                cbtest_fail(__FILE__, __LINE__, "%s: %u files in the state directory, was %u", when, now.entries,
                            before->entries);
        free(now.header);
        free(before->header);
        before->header = NULL;
}

/* A failed write: -ENOSPC, says nothing changed, and nothing did. */
static enum fail_mode expect_clean_enospc(struct env *e, int r, struct snap *before, const char *what,
                                          unsigned written_hook) {
        const char *msg = cb_error_last();
        enum fail_mode mode = hooks_seen & written_hook ? FAIL_HEADER : FAIL_LOG;

        if (r != -ENOSPC)
                cbtest_fail(__FILE__, __LINE__, "%s on a full file system (out of space in the %s): got %d (%s), "
                            "not -ENOSPC; message: %s", what, fail_names[mode], r, strerror(-r), msg);
        if (!strstr(msg, "nothing was changed") || !strstr(msg, strerror(ENOSPC)))
                cbtest_fail(__FILE__, __LINE__, "%s: message does not say ENOSPC and nothing was changed: %s", what,
                            msg);
        if (mode == FAIL_HEADER && !strstr(msg, "header"))
                cbtest_fail(__FILE__, __LINE__, "%s: out of space in the header but the message says: %s", what,
                            msg);
        ASSERT_FALSE(hooks_seen & H_HEADER_COMMITTED);
        snap_expect_same(e, before, what);
        e->seen[mode]++;
        return mode;
}

static enum fail_mode try_put(struct env *e, const char *name, size_t len) {
        unsigned char *val = malloc(len);
        uint64_t seed = e->next_seed++;
        struct snap before;
        uint32_t v = 0;
        char what[96];
        int r;

        ASSERT_TRUE(val);
        value_bytes(seed, val, len);
        snap_take(e, &before);
        hooks_seen = 0;
        r = cb_store_put(e->s, name, val, len, NULL, CB_VS_CURRENT, &v);
        free(val);
        if (r >= 0) {
                if (e->n == e->cap) {
                        e->cap = e->cap ? e->cap * 2 : 64;
                        e->a = realloc(e->a, e->cap * sizeof(*e->a));
                        ASSERT_TRUE(e->a);
                }
                e->a[e->n] = (struct acked){ .version = v, .seed = seed, .len = len };
                snprintf(e->a[e->n].name, sizeof(e->a[e->n].name), "%s", name);
                e->n++;
                free(before.header);
                return FAIL_NONE;
        }
        snprintf(what, sizeof(what), "put '%s' (%zu bytes)", name, len);
        return expect_clean_enospc(e, r, &before, what, H_LOG_WRITTEN);
}

TEST(put_until_full) {
        const char *mnt = mount_tmpfs("fs-put");
        static const size_t sizes[] = { 150, 5000, 20000 };
        enum fail_mode first = FAIL_NONE;
        struct env e;
        size_t before_full;
        off_t size;
        char name[16];
        unsigned i, steps;

        env_init(&e, mnt, "key-put");
        /* Nearly full: the filler leaves 12 pages. */
        size = fill(e.filler);
        set_size(e.filler, size - 12 * PAGE);
        for (i = 0; i < 10000 && first == FAIL_NONE; i++) {
                snprintf(name, sizeof(name), "p%u", i % 40);
                first = try_put(&e, name, 100 + (i * 37) % 201);
        }
        ASSERT_NE(first, FAIL_NONE);
        before_full = e.n;
        printf("%zu puts acknowledged, then ENOSPC in the %s\n", before_full, fail_names[first]);
        expect_acked(&e, e.s, "same handle after the first ENOSPC");
        expect_reopen(&e, "reopen after the first ENOSPC");

        /* Now walk the free space up from zero in small steps, with small
         * and large values, until both the log append and the header temp
         * file have run out of space. */
        size = fill(e.filler);
        for (steps = 0; steps < 16 * PAGE / 64 && !(e.seen[FAIL_LOG] && e.seen[FAIL_HEADER]); steps++) {
                for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
                        snprintf(name, sizeof(name), "q%u", (steps + (unsigned)k) % 16);
                        (void)try_put(&e, name, sizes[k]);
                }
                size -= 64;
                set_size(e.filler, size);
        }
        printf("filler walk: %u steps of 64 bytes; failures: %u in the log, %u in the header temp file; "
               "%zu puts acknowledged in all\n", steps, e.seen[FAIL_LOG], e.seen[FAIL_HEADER], e.n);
        ASSERT_TRUE(e.seen[FAIL_LOG] > 0);
        ASSERT_TRUE(e.seen[FAIL_HEADER] > 0);
        expect_acked(&e, e.s, "same handle after the filler walk");
        expect_reopen(&e, "reopen after the filler walk");

        /* Space again: the same handle writes. */
        ASSERT_OK(unlink(e.filler));
        size_t acked = e.n;
        for (i = 0; i < 20; i++) {
                snprintf(name, sizeof(name), "r%u", i);
                ASSERT_EQ(try_put(&e, name, 100 + i * 10), FAIL_NONE);
        }
        ASSERT_EQ(e.n, acked + 20);
        expect_acked(&e, e.s, "same handle after freeing space");
        expect_reopen(&e, "reopen after freeing space");
        env_free(&e);
}

TEST(destroy_on_full_disk) {
        const char *mnt = mount_tmpfs("fs-compact");
        struct env e;
        struct snap before;
        char name[16], what[64];
        off_t size;
        int r = -1;
        unsigned steps;

        env_init(&e, mnt, "key-compact");
        for (unsigned v = 0; v < 3; v++)
                for (unsigned k = 0; k < 20; k++) {
                        snprintf(name, sizeof(name), "c%u", k);
                        ASSERT_EQ(try_put(&e, name, 100 + (k * 53 + v * 11) % 201), FAIL_NONE);
                }
        size = fill(e.filler);

        /* A state change needs a log append and a header too. */
        snap_take(&e, &before);
        hooks_seen = 0;
        r = cb_store_set_state(e.s, "c1", 1, CB_VS_DISABLED);
        (void)expect_clean_enospc(&e, r, &before, "set_state on a full file system", H_LOG_WRITTEN);
        expect_acked(&e, e.s, "same handle after a failed state change");

        /* Destroy c0 v1 (a compaction: a whole new log file) with the free
         * space growing from zero: first the new log cannot be written, then
         * it can but the header cannot, then it works. */
        e.seen[FAIL_LOG] = e.seen[FAIL_HEADER] = 0;
        for (steps = 0; steps < 64 * PAGE / 1024; steps++) {
                snap_take(&e, &before);
                hooks_seen = 0;
                r = cb_store_destroy(e.s, "c0", 1);
                if (r >= 0) {
                        free(before.header);
                        break;
                }
                snprintf(what, sizeof(what), "destroy c0 v1 (step %u)", steps);
                enum fail_mode m = expect_clean_enospc(&e, r, &before, what, H_COMPACT_WRITTEN);
                expect_acked(&e, e.s, what);
                if (e.seen[m] == 1)
                        expect_reopen(&e, what);
                size -= 1024;
                set_size(e.filler, size);
        }
        printf("destroy: failed %u times in the new log, %u times in the header temp file, then worked\n",
               e.seen[FAIL_LOG], e.seen[FAIL_HEADER]);
        ASSERT_OK(r);
        ASSERT_TRUE(e.seen[FAIL_LOG] > 0);
        ASSERT_TRUE(e.seen[FAIL_HEADER] > 0);
        find_acked(&e, "c0", 1)->destroyed = true;
        expect_acked(&e, e.s, "same handle after destroy");
        snap_take(&e, &before); /* one log file, nothing left over */
        free(before.header);
        expect_reopen(&e, "reopen after destroy");

        /* And with the filler gone, everything works on the same handle. */
        ASSERT_OK(unlink(e.filler));
        ASSERT_OK(cb_store_set_state(e.s, "c1", 1, CB_VS_DISABLED));
        ASSERT_OK(cb_store_set_state(e.s, "c1", 1, CB_VS_PREVIOUS));
        ASSERT_OK(cb_store_destroy(e.s, "c2", 2));
        find_acked(&e, "c2", 2)->destroyed = true;
        expect_acked(&e, e.s, "same handle after freeing space");
        expect_reopen(&e, "reopen after freeing space");
        env_free(&e);
}

/* A writer dies after its log append is durable but before the header
 * commit; then the disk fills up.  Open must still serve the recovered,
 * authentic state (read-only) and refuse writes with a clear reason; once
 * space is back, a reopen commits the recovery and writes work again. */
static void die_after_log_synced(const char *point) {
        if (strcmp(point, "log-synced") == 0)
                raise(SIGKILL);
}

TEST(recovery_on_full_disk) {
        const char *mnt = mount_tmpfs("recover");
        struct env e;
        cb_secbuf *v;
        pid_t pid;
        int status;

        env_init(&e, mnt, "key-recover");
        ASSERT_OK(cb_store_put(e.s, "before", "b", 1, NULL, CB_VS_CURRENT, NULL));
        cb_store_close(e.s);
        e.s = NULL;
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                cb_store *s;
                cb_store_test_hook = die_after_log_synced;
                if (cb_store_open(e.dir, e.spec, &s) < 0 ||
                    cb_store_put(s, "inflight", "i", 1, NULL, CB_VS_CURRENT, NULL) < 0)
                        _exit(3);
                _exit(4); /* the hook should have killed us */
        }
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        (void)fill(e.filler);

        ASSERT_OK(cb_store_open(e.dir, e.spec, &e.s));
        ASSERT_OK(cb_store_get(e.s, "before", 0, false, &v, NULL, NULL));
        cb_secbuf_free(v);
        ASSERT_OK(cb_store_get(e.s, "inflight", 0, false, &v, NULL, NULL)); /* rolled forward */
        ASSERT_MEMEQ(cb_secbuf_data(v), "i", 1);
        cb_secbuf_free(v);
        ASSERT_ERR(cb_store_put(e.s, "after", "a", 1, NULL, CB_VS_CURRENT, NULL), -EROFS);
        ASSERT_CONTAINS(cb_error_last(), "read-only");
        ASSERT_OK(cb_store_verify(e.s, NULL, NULL));
        cb_store_close(e.s);

        ASSERT_OK(unlink(e.filler));
        ASSERT_OK(cb_store_open(e.dir, e.spec, &e.s));
        ASSERT_OK(cb_store_put(e.s, "after", "a", 1, NULL, CB_VS_CURRENT, NULL));
        cb_store_close(e.s);
        ASSERT_OK(cb_store_open(e.dir, e.spec, &e.s));
        ASSERT_EQ(cb_store_count(e.s), 3);
        env_free(&e);
}
