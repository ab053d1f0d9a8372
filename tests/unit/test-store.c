/* SPDX-License-Identifier: Apache-2.0 */
/* Store API: round trips, names, caps, version states, destroy. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cbtest.h"
#include "error.h"
#include "store.h"

static cb_unlock_spec *keyfile_spec(const char *dir) {
        cb_unlock_spec *spec;
        char spec_str[4200];

        snprintf(spec_str, sizeof(spec_str), "keyfile:%s", cbtest_path(dir, "key"));
        ASSERT_OK(cb_unlock_spec_parse(spec_str, &spec));
        return spec;
}

/* A fresh store in a new subdirectory; returns it open. */
static cb_store *fresh(const char *sub, cb_unlock_spec **ret_spec, const char **ret_dir) {
        static char dirs[8][4096];
        static int k;
        char *dir = dirs[k++ % 8];
        cb_unlock_spec *spec;
        cb_store *s;

        snprintf(dir, 4096, "%s/%s", cbtest_tmpdir(), sub);
        ASSERT_OK(mkdir(dir, 0700));
        spec = keyfile_spec(dir);
        ASSERT_OK(cb_store_create(cbtest_path(dir, "state"), spec));
        ASSERT_OK(cb_store_open(cbtest_path(dir, "state"), spec, &s));
        if (ret_spec)
                *ret_spec = spec;
        else
                cb_unlock_spec_free(spec);
        if (ret_dir)
                *ret_dir = dir;
        return s;
}

static void value_for(unsigned i, unsigned char *buf, size_t *len) {
        *len = 1 + (i * 7919u) % 200;
        for (size_t j = 0; j < *len; j++)
                buf[j] = (unsigned char)(i * 31 + j * 17);
}

static void expect_value(cb_store *s, const char *name, uint32_t version, const void *val, size_t len) {
        cb_secbuf *got = NULL;
        uint32_t v = 0;

        ASSERT_OK(cb_store_get(s, name, version, true, &got, &v, NULL));
        ASSERT_EQ(cb_secbuf_len(got), len);
        ASSERT_MEMEQ(cb_secbuf_data(got), val, len);
        if (version)
                ASSERT_EQ(v, version);
        cb_secbuf_free(got);
}

TEST(round_trip_one) {
        cb_unlock_spec *spec;
        const char *dir;
        cb_store *s = fresh("one", &spec, &dir);
        uint32_t v = 0;

        ASSERT_OK(cb_store_put(s, "api-key", "hunter2", 7, NULL, CB_VS_CURRENT, &v));
        ASSERT_EQ(v, 1);
        expect_value(s, "api-key", 0, "hunter2", 7);
        cb_store_close(s);
        ASSERT_OK(cb_store_open(cbtest_path(dir, "state"), spec, &s));
        expect_value(s, "api-key", 0, "hunter2", 7);
        expect_value(s, "api-key", 1, "hunter2", 7);
        ASSERT_EQ(cb_store_count(s), 1);
        cb_store_close(s);
        cb_unlock_spec_free(spec);
}

TEST(round_trip_thousand) {
        cb_unlock_spec *spec;
        const char *dir;
        cb_store *s = fresh("thousand", &spec, &dir);
        unsigned char val[256];
        size_t len;
        char name[32];

        for (unsigned i = 0; i < 1000; i++) {
                snprintf(name, sizeof(name), "secret-%04u", i);
                value_for(i, val, &len);
                ASSERT_OK(cb_store_put(s, name, val, len, NULL, CB_VS_CURRENT, NULL));
        }
        cb_store_close(s);
        ASSERT_OK(cb_store_open(cbtest_path(dir, "state"), spec, &s));
        ASSERT_EQ(cb_store_count(s), 1000);
        for (unsigned i = 0; i < 1000; i++) {
                snprintf(name, sizeof(name), "secret-%04u", i);
                value_for(i, val, &len);
                expect_value(s, name, 0, val, len);
        }
        const char **names;
        size_t n;
        ASSERT_OK(cb_store_names(s, &names, &n));
        ASSERT_EQ(n, 1000);
        for (size_t i = 1; i < n; i++)
                ASSERT_TRUE(strcmp(names[i - 1], names[i]) < 0);
        free(names);
        size_t ns, nv;
        ASSERT_OK(cb_store_verify(s, &ns, &nv));
        ASSERT_EQ(ns, 1000);
        ASSERT_EQ(nv, 1000);
        cb_store_close(s);
        cb_unlock_spec_free(spec);
}

TEST(binary_values_up_to_cap) {
        cb_unlock_spec *spec;
        const char *dir;
        cb_store *s = fresh("binary", &spec, &dir);
        static unsigned char big[CB_VALUE_MAX + 1];
        size_t sizes[] = { 1, 2, 255, 4096, 65535, CB_VALUE_MAX };

        randombytes_buf(big, sizeof(big));
        big[0] = 0; /* NUL bytes are fine in values */
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                char name[32];
                snprintf(name, sizeof(name), "bin%zu", i);
                ASSERT_OK(cb_store_put(s, name, big, sizes[i], NULL, CB_VS_CURRENT, NULL));
        }
        ASSERT_ERR(cb_store_put(s, "too-big", big, CB_VALUE_MAX + 1, NULL, CB_VS_CURRENT, NULL), -E2BIG);
        ASSERT_CONTAINS(cb_error_last(), "limit");
        ASSERT_ERR(cb_store_put(s, "empty", big, 0, NULL, CB_VS_CURRENT, NULL), -EINVAL);
        cb_store_close(s);
        ASSERT_OK(cb_store_open(cbtest_path(dir, "state"), spec, &s));
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                char name[32];
                snprintf(name, sizeof(name), "bin%zu", i);
                expect_value(s, name, 0, big, sizes[i]);
        }
        ASSERT_EQ(cb_store_count(s), sizeof(sizes) / sizeof(sizes[0]));
        cb_store_close(s);
        cb_unlock_spec_free(spec);
}

TEST(names_checked) {
        cb_store *s = fresh("names", NULL, NULL);
        char longname[CB_NAME_MAX + 2];
        const char *bad[] = { "", "-lead", ".hidden", "_x", "has space", "a/b", "a\nb", "ä", "a:b", "x*", NULL };
        const char *good[] = { "a", "A-b_c.d", "0day", "github-token", "x.y.z", NULL };

        for (size_t i = 0; bad[i]; i++) {
                ASSERT_ERR(cb_store_put(s, bad[i], "v", 1, NULL, CB_VS_CURRENT, NULL), -EINVAL);
                ASSERT_CONTAINS(cb_error_last(), "invalid secret name");
        }
        for (size_t i = 0; good[i]; i++)
                ASSERT_OK(cb_store_put(s, good[i], "v", 1, NULL, CB_VS_CURRENT, NULL));
        memset(longname, 'a', sizeof(longname));
        longname[CB_NAME_MAX] = '\0';
        ASSERT_OK(cb_store_put(s, longname, "v", 1, NULL, CB_VS_CURRENT, NULL));
        longname[CB_NAME_MAX] = 'a';
        longname[CB_NAME_MAX + 1] = '\0';
        ASSERT_ERR(cb_store_put(s, longname, "v", 1, NULL, CB_VS_CURRENT, NULL), -EINVAL);
        ASSERT_ERR(cb_store_get(s, "nope", 0, false, &(cb_secbuf *){ NULL }, NULL, NULL), -ENOENT);
        cb_store_close(s);
}

TEST(metadata_sealed_and_validated) {
        cb_unlock_spec *spec;
        const char *dir;
        cb_store *s = fresh("meta", &spec, &dir);
        cb_meta m = { 0 };
        const cb_meta *got;
        cb_secbuf *val;

        m.inject = strdup("Authorization: Bearer {}");
        ASSERT_OK(cb_strv_push(&m.hosts, "API.GitHub.com", 64));
        ASSERT_OK(cb_strv_push(&m.hosts, "http://127.0.0.1:8080", 64));
        ASSERT_OK(cb_strv_push(&m.methods, "GET", 16));
        ASSERT_OK(cb_strv_push(&m.path_prefixes, "/repos/", 64));
        ASSERT_OK(cb_strv_push(&m.labels, "owner=team-a", 32));
        m.not_after = 4102444800ULL;
        ASSERT_OK(cb_store_put(s, "gh", "tok", 3, &m, CB_VS_CURRENT, NULL));
        cb_store_close(s);
        ASSERT_OK(cb_store_open(cbtest_path(dir, "state"), spec, &s));
        ASSERT_OK(cb_store_get(s, "gh", 0, false, &val, NULL, &got));
        cb_secbuf_free(val);
        ASSERT_STREQ(got->inject, "Authorization: Bearer {}");
        ASSERT_EQ(got->hosts.n, 2);
        ASSERT_STREQ(got->hosts.v[0], "api.github.com"); /* normalised */
        ASSERT_STREQ(got->hosts.v[1], "http://127.0.0.1:8080");
        ASSERT_STREQ(got->methods.v[0], "GET");
        ASSERT_STREQ(got->path_prefixes.v[0], "/repos/");
        ASSERT_STREQ(got->labels.v[0], "owner=team-a");
        ASSERT_EQ(got->not_after, 4102444800ULL);

        /* Bad metadata is refused with the field named. */
        cb_meta_clear(&m);
        m.inject = strdup("Authorization: Bearer");
        ASSERT_ERR(cb_store_put(s, "gh", "tok", 3, &m, CB_VS_CURRENT, NULL), -EINVAL);
        ASSERT_CONTAINS(cb_error_last(), "{}");
        cb_meta_clear(&m);
        ASSERT_OK(cb_strv_push(&m.hosts, "https://evil.example", 64));
        ASSERT_ERR(cb_store_put(s, "gh", "tok", 3, &m, CB_VS_CURRENT, NULL), -EINVAL);
        ASSERT_CONTAINS(cb_error_last(), "host");
        cb_meta_clear(&m);
        ASSERT_OK(cb_strv_push(&m.methods, "get", 16));
        ASSERT_ERR(cb_store_put(s, "gh", "tok", 3, &m, CB_VS_CURRENT, NULL), -EINVAL);
        cb_meta_clear(&m);
        /* Nothing was added by the refusals. */
        const cb_version_info *vi;
        size_t n;
        ASSERT_OK(cb_store_versions(s, "gh", &vi, &n));
        ASSERT_EQ(n, 1);
        cb_store_close(s);
        cb_unlock_spec_free(spec);
}

TEST(version_states) {
        cb_unlock_spec *spec;
        const char *dir;
        cb_store *s = fresh("states", &spec, &dir);
        const cb_version_info *vi;
        size_t n;
        uint32_t v;
        cb_secbuf *val;

        ASSERT_ERR(cb_store_put(s, "k", "v0", 2, NULL, CB_VS_PENDING, NULL), -EINVAL); /* first must be current */
        ASSERT_OK(cb_store_put(s, "k", "v1", 2, NULL, CB_VS_CURRENT, &v));
        ASSERT_OK(cb_store_put(s, "k", "v2", 2, NULL, CB_VS_PENDING, &v));
        ASSERT_EQ(v, 2);
        /* Pending is not served without allow_inactive; current still v1. */
        ASSERT_ERR(cb_store_get(s, "k", 2, false, &val, NULL, NULL), -EPERM);
        expect_value(s, "k", 0, "v1", 2);
        /* Promote v2: v1 becomes previous in the same commit. */
        ASSERT_OK(cb_store_set_state(s, "k", 2, CB_VS_CURRENT));
        ASSERT_OK(cb_store_versions(s, "k", &vi, &n));
        ASSERT_EQ(n, 2);
        ASSERT_EQ(vi[0].state, CB_VS_PREVIOUS);
        ASSERT_EQ(vi[1].state, CB_VS_CURRENT);
        expect_value(s, "k", 0, "v2", 2);
        /* The current version cannot be disabled: exactly one current. */
        ASSERT_ERR(cb_store_set_state(s, "k", 2, CB_VS_DISABLED), -EBUSY);
        ASSERT_OK(cb_store_set_state(s, "k", 1, CB_VS_DISABLED));
        ASSERT_OK(cb_store_set_state(s, "k", 1, CB_VS_DISABLED)); /* idempotent */
        ASSERT_ERR(cb_store_get(s, "k", 1, false, &val, NULL, NULL), -EPERM);
        ASSERT_ERR(cb_store_set_state(s, "k", 9, CB_VS_DISABLED), -ENOENT);
        ASSERT_ERR(cb_store_set_state(s, "k", 1, CB_VS_PENDING), -EINVAL);
        /* A plain put makes a new current; old current -> previous. */
        ASSERT_OK(cb_store_put(s, "k", "v3", 2, NULL, CB_VS_CURRENT, &v));
        ASSERT_EQ(v, 3);
        cb_store_close(s);
        ASSERT_OK(cb_store_open(cbtest_path(dir, "state"), spec, &s));
        ASSERT_OK(cb_store_versions(s, "k", &vi, &n));
        ASSERT_EQ(n, 3);
        ASSERT_EQ(vi[0].state, CB_VS_DISABLED);
        ASSERT_EQ(vi[1].state, CB_VS_PREVIOUS);
        ASSERT_EQ(vi[2].state, CB_VS_CURRENT);
        /* Roll back to v2 (e.g. a bad rotation). */
        ASSERT_OK(cb_store_set_state(s, "k", 2, CB_VS_CURRENT));
        expect_value(s, "k", 0, "v2", 2);
        ASSERT_OK(cb_store_versions(s, "k", &vi, &n));
        ASSERT_EQ(vi[2].state, CB_VS_PREVIOUS);
        cb_store_close(s);
        cb_unlock_spec_free(spec);
}

/* Bytes of the plaintext must not be anywhere under the state dir. */
static bool dir_contains(const char *dir, const void *needle, size_t n) {
        DIR *d = opendir(dir);
        struct dirent *e;
        bool found = false;

        ASSERT_TRUE(d != NULL);
        while ((e = readdir(d)) && !found) {
                size_t len;
                unsigned char *p;

                if (e->d_name[0] == '.')
                        continue;
                p = cbtest_read_file(cbtest_path(dir, e->d_name), &len);
                ASSERT_TRUE(p != NULL);
                for (size_t i = 0; i + n <= len && !found; i++)
                        found = memcmp(p + i, needle, n) == 0;
                free(p);
        }
        closedir(d);
        return found;
}

TEST(destroy_wipes_material) {
        cb_unlock_spec *spec;
        const char *dir;
        cb_store *s = fresh("destroy", &spec, &dir);
        const cb_version_info *vi;
        cb_secbuf *val;
        size_t n;
        unsigned char ct_probe[32];

        ASSERT_OK(cb_store_put(s, "d", "first-value-xyzzy", 17, NULL, CB_VS_CURRENT, NULL));
        ASSERT_OK(cb_store_put(s, "d", "second-value", 12, NULL, CB_VS_CURRENT, NULL));
        ASSERT_OK(cb_store_put(s, "other", "o", 1, NULL, CB_VS_CURRENT, NULL));
        ASSERT_ERR(cb_store_destroy(s, "d", 2), -EBUSY);
        /* Remember some bytes of the v1 record (its wrapped key) from disk. */
        {
                DIR *d = opendir(cbtest_path(dir, "state"));
                struct dirent *e;
                while ((e = readdir(d)))
                        if (strncmp(e->d_name, "log-", 4) == 0) {
                                size_t len;
                                unsigned char *p = cbtest_read_file(
                                        cbtest_path(cbtest_path(dir, "state"), e->d_name), &len);
                                /* first record: 4 len, 1 type, 8 gen, 8 time, 4+1 name, 4 ver, 1 st, 8 cr, 4 meta, 24 nonce */
                                memcpy(ct_probe, p + 4 + 1 + 8 + 8 + 5 + 4 + 1 + 8 + 4 + 24, sizeof(ct_probe));
                                free(p);
                        }
                closedir(d);
        }
        ASSERT_TRUE(dir_contains(cbtest_path(dir, "state"), ct_probe, sizeof(ct_probe)));
        ASSERT_OK(cb_store_destroy(s, "d", 1));
        ASSERT_OK(cb_store_destroy(s, "d", 1)); /* idempotent */
        ASSERT_FALSE(dir_contains(cbtest_path(dir, "state"), ct_probe, sizeof(ct_probe)));
        ASSERT_ERR(cb_store_get(s, "d", 1, true, &val, NULL, NULL), -EKEYREVOKED);
        ASSERT_ERR(cb_store_set_state(s, "d", 1, CB_VS_CURRENT), -EKEYREVOKED);
        expect_value(s, "d", 0, "second-value", 12);
        expect_value(s, "other", 0, "o", 1);
        /* Version numbers are never reused after a destroy. */
        uint32_t v;
        ASSERT_OK(cb_store_put(s, "d", "third", 5, NULL, CB_VS_CURRENT, &v));
        ASSERT_EQ(v, 3);
        cb_store_close(s);
        ASSERT_OK(cb_store_open(cbtest_path(dir, "state"), spec, &s));
        ASSERT_OK(cb_store_versions(s, "d", &vi, &n));
        ASSERT_EQ(n, 3);
        ASSERT_EQ(vi[0].state, CB_VS_DESTROYED);
        ASSERT_EQ(vi[1].state, CB_VS_PREVIOUS);
        ASSERT_EQ(vi[2].state, CB_VS_CURRENT);
        expect_value(s, "d", 2, "second-value", 12);
        ASSERT_OK(cb_store_verify(s, NULL, NULL));
        /* Exactly one log file remains. */
        int logs = 0;
        DIR *d = opendir(cbtest_path(dir, "state"));
        struct dirent *e;
        while ((e = readdir(d)))
                logs += strncmp(e->d_name, "log-", 4) == 0;
        closedir(d);
        ASSERT_EQ(logs, 1);
        cb_store_close(s);
        cb_unlock_spec_free(spec);
}

TEST(plaintext_never_on_disk) {
        cb_unlock_spec *spec;
        const char *dir;
        cb_store *s = fresh("plain", &spec, &dir);
        const char *val = "sk-live-PLAINTEXT-CANARY-0123456789";
        cb_meta m = { 0 };

        m.inject = strdup("x-api-key: {}");
        ASSERT_OK(cb_strv_push(&m.hosts, "api.example.com", 64));
        for (int i = 0; i < 5; i++) {
                ASSERT_OK(cb_store_put(s, "canary", val, strlen(val), &m, CB_VS_CURRENT, NULL));
                ASSERT_OK(cb_store_put(s, "canary", val, strlen(val), &m, CB_VS_PENDING, NULL));
        }
        ASSERT_OK(cb_store_destroy(s, "canary", 2));
        cb_meta_clear(&m);
        cb_store_close(s);
        /* Neither the value nor any 8-byte window of it is on disk. */
        for (size_t off = 0; off + 8 <= strlen(val); off++)
                ASSERT_FALSE(dir_contains(cbtest_path(dir, "state"), val + off, 8));
        ASSERT_TRUE(dir_contains(cbtest_path(dir, "state"), "api.example.com", 15)); /* the probe works */
        cb_unlock_spec_free(spec);
}

TEST(second_handle_is_stale) {
        cb_unlock_spec *spec;
        const char *dir;
        cb_store *a = fresh("stale", &spec, &dir), *b;

        ASSERT_OK(cb_store_open(cbtest_path(dir, "state"), spec, &b));
        ASSERT_OK(cb_store_put(a, "x", "1", 1, NULL, CB_VS_CURRENT, NULL));
        /* b's view is older than the disk: it must not write over a's commit. */
        ASSERT_ERR(cb_store_put(b, "y", "2", 1, NULL, CB_VS_CURRENT, NULL), CB_E_ROLLBACK);
        ASSERT_CONTAINS(cb_error_last(), "reopen");
        cb_store_close(b);
        ASSERT_OK(cb_store_open(cbtest_path(dir, "state"), spec, &b));
        expect_value(b, "x", 0, "1", 1);
        cb_store_close(a);
        cb_store_close(b);
        cb_unlock_spec_free(spec);
}

TEST(state_dir_permissions) {
        cb_unlock_spec *spec;
        const char *dir;
        cb_store *s = fresh("perms", &spec, &dir), *s2;

        cb_store_close(s);
        ASSERT_OK(chmod(cbtest_path(dir, "state"), 0750));
        ASSERT_ERR(cb_store_open(cbtest_path(dir, "state"), spec, &s2), -EPERM);
        ASSERT_CONTAINS(cb_error_last(), "0700");
        ASSERT_OK(chmod(cbtest_path(dir, "state"), 0700));
        ASSERT_OK(symlink(cbtest_path(dir, "state"), cbtest_path(dir, "link")));
        ASSERT_TRUE(cb_store_open(cbtest_path(dir, "link"), spec, &s2) < 0);
        ASSERT_CONTAINS(cb_error_last(), "symlink");
        ASSERT_ERR(cb_store_create(cbtest_path(dir, "state"), spec), -EEXIST);
        cb_unlock_spec_free(spec);
}

/* ---- readers and one writer (cb_store_read_lock) ------------------------ */

/* A writer whose disk I/O is slow (a hook sleeps 300 ms after the log's
 * fsync and again after the header is committed) does not hold up a
 * reader on the read side: the reader's longest wait stays far below the
 * writer's I/O, and it sees the new version only once it is committed. */
#include <pthread.h>
#include <time.h>
static volatile int slow_io_phase; /* 1: the writer is in its I/O; 2: it returned */
static void slow_hook(const char *point) {
        if (strcmp(point, "log-synced") == 0 || strcmp(point, "header-committed") == 0) {
                __atomic_store_n(&slow_io_phase, 1, __ATOMIC_RELEASE);
                usleep(300000);
        }
}
static uint64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
struct slow_reader {
        cb_store *s;
        uint64_t max_wait_ns;
        unsigned reads_in_io, early_new;
};
static void *slow_reader_run(void *arg) {
        struct slow_reader *r = arg;
        while (__atomic_load_n(&slow_io_phase, __ATOMIC_ACQUIRE) != 2) {
                const cb_version_info *vi;
                size_t nv = 0;
                int phase = __atomic_load_n(&slow_io_phase, __ATOMIC_ACQUIRE);
                uint64_t t0 = mono_ns();
                cb_store_read_lock(r->s);
                uint64_t waited = mono_ns() - t0;
                if (cb_store_versions(r->s, "k", &vi, &nv) == 0 && nv == 2 && phase == 0)
                        r->early_new++; /* seen before the writer even reached its I/O */
                cb_store_read_unlock(r->s);
                if (waited > r->max_wait_ns)
                        r->max_wait_ns = waited;
                if (phase == 1)
                        r->reads_in_io++;
                usleep(1000);
        }
        return NULL;
}
TEST(readers_never_wait_for_a_writers_io) {
        cb_store *s = fresh("rw", NULL, NULL);
        struct slow_reader r = { .s = s };
        pthread_t th;
        uint32_t v;

        ASSERT_OK(cb_store_put(s, "k", "value-one", 9, NULL, CB_VS_CURRENT, &v));
        slow_io_phase = 0;
        ASSERT_EQ(pthread_create(&th, NULL, slow_reader_run, &r), 0);
        usleep(20000);
        cb_store_test_hook = slow_hook;
        ASSERT_OK(cb_store_put(s, "k", "value-two", 9, NULL, CB_VS_CURRENT, &v)); /* ~600 ms of "I/O" */
        cb_store_test_hook = NULL;
        __atomic_store_n(&slow_io_phase, 2, __ATOMIC_RELEASE);
        pthread_join(th, NULL);
        ASSERT_EQ(v, 2);
        ASSERT_TRUE(r.reads_in_io > 50);              /* the reader ran all through the writer's I/O */
        ASSERT_TRUE(r.max_wait_ns < 100 * 1000000ull); /* and never waited for it (it lasted 600 ms) */
        ASSERT_EQ(r.early_new, 0);
        cb_store_close(s);
}

/* ---- parallel readers, self-serialising writers (issue 18) -------------- */

/* Readers decrypt in parallel on the read side, each with a scratch
 * buffer of its own, while writers that nobody serialises for them (they
 * serialise on the store's own writers' mutex) commit through slow I/O:
 * every value read is the right one, and no read waits for the I/O.  With
 * one shared decrypt buffer (before), parallel decrypts overwrote each
 * other's unwrapped key: "does not decrypt" integrity errors or wrong
 * values; with writers left to their callers, two unserialised puts broke
 * the log chain. */
#define PAR_SECRETS 8
struct par_reader {
        cb_store *s;
        unsigned reads, bad, failed;
        uint64_t max_wait_ns;
};
static void par_value(unsigned i, char *buf, size_t cap) {
        snprintf(buf, cap, "value-of-secret-%u-%0*u", i, (int)(20 + i * 37 % 200), i); /* lengths differ */
}
static void *par_reader_run(void *arg) {
        struct par_reader *r = arg;
        char want[512], name[16];
        while (__atomic_load_n(&slow_io_phase, __ATOMIC_ACQUIRE) != 2) {
                for (unsigned i = 0; i < PAR_SECRETS; i++) {
                        cb_secbuf *val = NULL;
                        snprintf(name, sizeof(name), "p%u", i);
                        par_value(i, want, sizeof(want));
                        uint64_t t0 = mono_ns();
                        cb_store_read_lock(r->s);
                        uint64_t waited = mono_ns() - t0;
                        int rr = cb_store_get(r->s, name, 1, true, &val, NULL, NULL);
                        cb_store_read_unlock(r->s);
                        if (waited > r->max_wait_ns)
                                r->max_wait_ns = waited;
                        if (rr < 0)
                                r->failed++;
                        else if (cb_secbuf_len(val) != strlen(want) || memcmp(cb_secbuf_data(val), want, strlen(want)))
                                r->bad++;
                        cb_secbuf_free(val);
                        r->reads++;
                }
                usleep(100);
        }
        return NULL;
}
struct par_writer {
        cb_store *s;
        const char *name;
        int failed;
};
static void *par_writer_run(void *arg) {
        struct par_writer *w = arg;
        char v[64];
        for (unsigned i = 0; i < 3; i++) {
                uint32_t ver;
                snprintf(v, sizeof(v), "%s-written-%u-xxxxxxxx", w->name, i);
                if (cb_store_put(w->s, w->name, v, strlen(v), NULL, CB_VS_CURRENT, &ver) < 0)
                        w->failed++;
        }
        return NULL;
}
TEST(parallel_decrypts_and_unserialised_writers) {
        cb_store *s = fresh("par", NULL, NULL);
        struct par_reader rd[4];
        struct par_writer wr[2] = { { .name = "w0" }, { .name = "w1" } };
        pthread_t rt[4], wt[2];
        char v[512], name[16];
        uint32_t ver;
        size_t nsec = 0, nver = 0;

        for (unsigned i = 0; i < PAR_SECRETS; i++) {
                snprintf(name, sizeof(name), "p%u", i);
                par_value(i, v, sizeof(v));
                ASSERT_OK(cb_store_put(s, name, v, strlen(v), NULL, CB_VS_CURRENT, &ver));
        }
        slow_io_phase = 0;
        for (int i = 0; i < 4; i++) {
                rd[i] = (struct par_reader){ .s = s };
                ASSERT_EQ(pthread_create(&rt[i], NULL, par_reader_run, &rd[i]), 0);
        }
        cb_store_test_hook = slow_hook; /* each commit: 2 x 300 ms of "I/O" */
        for (int i = 0; i < 2; i++) {
                wr[i].s = s;
                ASSERT_EQ(pthread_create(&wt[i], NULL, par_writer_run, &wr[i]), 0);
        }
        for (int i = 0; i < 2; i++)
                pthread_join(wt[i], NULL);
        cb_store_test_hook = NULL;
        __atomic_store_n(&slow_io_phase, 2, __ATOMIC_RELEASE);
        unsigned reads = 0, bad = 0, failed = 0;
        uint64_t max_wait = 0;
        for (int i = 0; i < 4; i++) {
                pthread_join(rt[i], NULL);
                reads += rd[i].reads, bad += rd[i].bad, failed += rd[i].failed;
                if (rd[i].max_wait_ns > max_wait)
                        max_wait = rd[i].max_wait_ns;
        }
        fprintf(stderr, "  %u parallel reads during 6 slow commits: %u wrong, %u failed, longest wait %.1f ms\n", reads,
                bad, failed, (double)max_wait / 1e6);
        ASSERT_EQ(wr[0].failed + wr[1].failed, 0);
        ASSERT_TRUE(reads > 1000);
        ASSERT_EQ(bad, 0);
        ASSERT_EQ(failed, 0);
        ASSERT_TRUE(max_wait < 100 * 1000000ull); /* the commits' I/O lasted ~3.6 s */
        ASSERT_OK(cb_store_verify(s, &nsec, &nver));
        ASSERT_EQ(nsec, PAR_SECRETS + 2);
        ASSERT_EQ(nver, PAR_SECRETS + 6);
        cb_store_close(s);
}
