/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store-bench: the measuring half of tests/bench/store.sh.  Uses only the
 * public keys/ API (store.h, kek.h, meta.h, secmem.h, error.h).
 *
 *   store-bench fill DIR KEYFILE N      create a keyfile store, put N secrets
 *   store-bench open DIR KEYFILE NAME   time open+unlock, then one get of NAME
 *   store-bench readraw DIR             time read()ing every file in DIR
 *
 * Output is "key value" lines on stdout for the script to pick up; errors go
 * to stderr with exit status 1 (2 for usage).  Each subcommand is meant to
 * run in a fresh process, so peak RSS printed by "open" is the open's own.
 *
 * Never prints a secret value: values are generated here, only their count
 * and sizes are reported, and every copy is wiped after use.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "kek.h"
#include "meta.h"
#include "secmem.h"
#include "store.h"

#define NAME_FMT "bench-%06zu"
#define VALUE_MIN 40
#define VALUE_MAX 100
#define WARM_LOOKUPS 1000

static uint64_t now_ns(void) {
        struct timespec ts;

        if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0) {
                perror("clock_gettime");
                exit(1);
        }
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int fail(const char *what, int r) {
        const char *msg = cb_error_last();

        fprintf(stderr, "store-bench: %s: %s\n", what, *msg ? msg : strerror(-r));
        return 1;
}

static int parse_count(const char *s, size_t *ret) {
        char *e;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &e, 10);
        if (errno || *e || e == s || v == 0 || v > CB_SECRETS_MAX)
                return -EINVAL;
        *ret = (size_t)v;
        return 0;
}

static int keyfile_spec(const char *keyfile, cb_unlock_spec **ret) {
        char spec[4096 + 16];

        if ((size_t)snprintf(spec, sizeof(spec), "keyfile:%s", keyfile) >= sizeof(spec))
                return cb_error_set(-ENAMETOOLONG, "key file path too long");
        return cb_unlock_spec_parse(spec, ret);
}

/* ---- synthetic but realistic secrets ----------------------------------- */

/* splitmix64: deterministic, so two runs build byte-identical plaintexts
 * (the ciphertexts differ: nonces and DEKs are random). */
static uint64_t rng_next(uint64_t *st) {
        uint64_t z = (*st += 0x9e3779b97f4a7c15u);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        return z ^ (z >> 31);
}

/* An API-token-looking value of VALUE_MIN..VALUE_MAX bytes. */
static size_t make_value(uint64_t *rng, char *out) {
        static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        static const char *const prefixes[] = { "ghp_", "sk_live_", "xoxb-", "glpat-", "AKIA", "" };
        const char *pfx = prefixes[rng_next(rng) % (sizeof(prefixes) / sizeof(prefixes[0]))];
        size_t len = VALUE_MIN + (size_t)(rng_next(rng) % (VALUE_MAX - VALUE_MIN + 1));
        size_t i = strlen(pfx);

        memcpy(out, pfx, i);
        for (; i < len; i++)
                out[i] = alnum[rng_next(rng) % (sizeof(alnum) - 1)];
        return len;
}

/* An inject template and one or two hosts, as an operator would set them. */
static int make_meta(size_t i, uint64_t *rng, cb_meta *m) {
        static const char *const templates[] = {
                "Authorization: Bearer {}", "X-Api-Key: {}", "Authorization: token {}",
                "basic:deploy-bot",         "query:api_key",
        };
        char host[128];
        int r;

        cb_meta_clear(m);
        m->inject = strdup(templates[i % (sizeof(templates) / sizeof(templates[0]))]);
        if (!m->inject)
                return -ENOMEM;
        snprintf(host, sizeof(host), "api.svc%zu.example.com", i);
        if ((r = cb_strv_push(&m->hosts, host, CB_META_MAX_HOSTS)) < 0)
                return r;
        if (rng_next(rng) % 2) {
                snprintf(host, sizeof(host), "http://internal-%zu.corp.example:8080", i % 97);
                if ((r = cb_strv_push(&m->hosts, host, CB_META_MAX_HOSTS)) < 0)
                        return r;
        }
        return 0;
}

/* ---- fill -------------------------------------------------------------- */

static int cmd_fill(const char *dir, const char *keyfile, const char *count) {
        cb_unlock_spec *spec = NULL;
        cb_store *s = NULL;
        cb_meta meta = { 0 };
        char value[VALUE_MAX], name[CB_NAME_MAX + 1];
        uint64_t rng = 0x5eed, total_ns = 0, first_ns = 0, last_ns = 0, value_bytes = 0;
        size_t n, tenth;
        int r, ret = 1;

        if (parse_count(count, &n) < 0) {
                fprintf(stderr, "store-bench: N must be 1..%d\n", CB_SECRETS_MAX);
                return 2;
        }
        tenth = n >= 10 ? n / 10 : 1;
        if ((r = keyfile_spec(keyfile, &spec)) < 0) {
                ret = fail("unlock spec", r);
                goto out;
        }
        if ((r = cb_store_create(dir, spec)) < 0) {
                ret = fail("create", r);
                goto out;
        }
        if ((r = cb_store_open(dir, spec, &s)) < 0) {
                ret = fail("open after create", r);
                goto out;
        }
        for (size_t i = 1; i <= n; i++) {
                size_t len = make_value(&rng, value);
                uint64_t t0, dt;

                snprintf(name, sizeof(name), NAME_FMT, i);
                if ((r = make_meta(i, &rng, &meta)) < 0) {
                        ret = fail("metadata", r);
                        goto out;
                }
                t0 = now_ns();
                r = cb_store_put(s, name, value, len, &meta, CB_VS_CURRENT, NULL);
                dt = now_ns() - t0;
                cb_wipe(value, sizeof(value));
                if (r < 0) {
                        fprintf(stderr, "store-bench: put %s (%zu of %zu): %s\n", name, i, n, cb_error_last());
                        goto out;
                }
                total_ns += dt;
                value_bytes += len;
                if (i <= tenth)
                        first_ns += dt;
                if (i > n - tenth)
                        last_ns += dt;
        }
        if (cb_store_count(s) != n) {
                fprintf(stderr, "store-bench: store holds %zu secrets after %zu puts\n", cb_store_count(s), n);
                goto out;
        }
        printf("secrets %zu\n", n);
        printf("value_bytes_avg %.1f\n", (double)value_bytes / (double)n);
        printf("put_total_s %.3f\n", (double)total_ns / 1e9);
        printf("put_per_s %.0f\n", (double)n * 1e9 / (double)(total_ns ? total_ns : 1));
        /* The same rate over the first and the last tenth shows whether a put
         * gets slower as the store grows. */
        printf("put_per_s_first_tenth %.0f\n", (double)tenth * 1e9 / (double)(first_ns ? first_ns : 1));
        printf("put_per_s_last_tenth %.0f\n", (double)tenth * 1e9 / (double)(last_ns ? last_ns : 1));
        ret = 0;
out:
        cb_meta_clear(&meta);
        cb_store_close(s);
        cb_unlock_spec_free(spec);
        return ret;
}

/* ---- open -------------------------------------------------------------- */

/* A "VmXXX:  1234 kB" line of /proc/self/status in MB, or -1. */
static double proc_status_mb(const char *key) {
        char line[256];
        size_t klen = strlen(key);
        double mb = -1;
        FILE *f = fopen("/proc/self/status", "re");

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
                        unsigned long long kb;
                        if (sscanf(line + klen + 1, "%llu", &kb) == 1)
                                mb = (double)kb / 1024.0;
                        break;
                }
        fclose(f);
        return mb;
}

static int cmd_open(const char *dir, const char *keyfile, const char *name) {
        cb_unlock_spec *spec = NULL;
        cb_store *s = NULL;
        cb_secbuf *val = NULL;
        const cb_meta *meta = NULL;
        const char **names = NULL;
        size_t nnames = 0, got = 0;
        uint32_t version = 0;
        uint64_t t0, open_ns, get_ns, warm_ns = 0;
        struct rusage ru;
        double rss_before;
        int r, ret = 1;

        if ((r = keyfile_spec(keyfile, &spec)) < 0) {
                ret = fail("unlock spec", r);
                goto out;
        }
        rss_before = proc_status_mb("VmRSS");

        t0 = now_ns();
        r = cb_store_open(dir, spec, &s);
        open_ns = now_ns() - t0;
        if (r < 0) {
                ret = fail("open", r);
                goto out;
        }
        t0 = now_ns();
        r = cb_store_get(s, name, 0, false, &val, &version, &meta);
        get_ns = now_ns() - t0;
        if (r < 0) {
                ret = fail("get", r);
                goto out;
        }
        /* Peak so far: open + one lookup, before anything else allocates. */
        if (getrusage(RUSAGE_SELF, &ru) < 0) {
                perror("getrusage");
                goto out;
        }
        printf("secrets %zu\n", cb_store_count(s));
        printf("value_len %zu\n", cb_secbuf_len(val));
        printf("open_ms %.3f\n", (double)open_ns / 1e6);
        printf("lookup_us %.1f\n", (double)get_ns / 1e3);
        printf("rss_before_open_mb %.2f\n", rss_before);
        printf("maxrss_mb %.2f\n", (double)ru.ru_maxrss / 1024.0); /* ru_maxrss is in KiB on Linux */
        printf("vmhwm_mb %.2f\n", proc_status_mb("VmHWM"));
        /* Below the peak when open frees a transient buffer. */
        printf("vmrss_after_open_mb %.2f\n", proc_status_mb("VmRSS"));
        cb_secbuf_freep(&val);

        /* Warm lookups spread over the store: the steady-state cost. */
        if ((r = cb_store_names(s, &names, &nnames)) < 0) {
                ret = fail("names", r);
                goto out;
        }
        for (size_t i = 0; nnames && i < WARM_LOOKUPS; i++) {
                const char *nm = names[(i * 7919u) % nnames];

                t0 = now_ns();
                r = cb_store_get(s, nm, 0, false, &val, NULL, NULL);
                warm_ns += now_ns() - t0;
                cb_secbuf_freep(&val);
                if (r < 0) {
                        ret = fail("get (warm)", r);
                        goto out;
                }
                got++;
        }
        if (got)
                printf("lookup_warm_avg_us %.2f\n", (double)warm_ns / 1e3 / (double)got);
        ret = 0;
out:
        free(names);
        cb_secbuf_free(val);
        cb_store_close(s);
        cb_unlock_spec_free(spec);
        return ret;
}

/* ---- readraw: the I/O floor --------------------------------------------- */

/* Read every regular file in dir into memory the way a loader would (one
 * buffer per file, sized by fstat), and nothing else. */
static int cmd_readraw(const char *dir) {
        uint64_t t0, dt, bytes = 0;
        size_t files = 0;
        struct dirent *e;
        DIR *d;
        int dfd, ret = 1;

        t0 = now_ns();
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || !(d = fdopendir(dfd))) {
                fprintf(stderr, "store-bench: %s: %s\n", dir, strerror(errno));
                if (dfd >= 0)
                        close(dfd);
                return 1;
        }
        while ((e = readdir(d))) {
                struct stat st;
                unsigned char *buf;
                size_t off = 0;
                int fd;

                if (e->d_name[0] == '.')
                        continue;
                fd = openat(dfd, e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                        if (fd >= 0)
                                close(fd);
                        continue;
                }
                buf = malloc((size_t)st.st_size + 1);
                if (!buf) {
                        close(fd);
                        goto out;
                }
                while (off < (size_t)st.st_size) {
                        ssize_t k = read(fd, buf + off, (size_t)st.st_size - off);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0)
                                break;
                        off += (size_t)k;
                }
                close(fd);
                bytes += off;
                free(buf);
                files++;
        }
        dt = now_ns() - t0;
        printf("readraw_files %zu\n", files);
        printf("readraw_bytes %" PRIu64 "\n", bytes);
        printf("readraw_ms %.3f\n", (double)dt / 1e6);
        ret = 0;
out:
        closedir(d);
        return ret;
}

static void usage(void) {
        fprintf(stderr, "usage: store-bench fill DIR KEYFILE N\n"
                        "       store-bench open DIR KEYFILE NAME\n"
                        "       store-bench readraw DIR\n");
}

int main(int argc, char **argv) {
        int ret;

        if (argc == 5 && strcmp(argv[1], "fill") == 0)
                ret = cmd_fill(argv[2], argv[3], argv[4]);
        else if (argc == 5 && strcmp(argv[1], "open") == 0)
                ret = cmd_open(argv[2], argv[3], argv[4]);
        else if (argc == 3 && strcmp(argv[1], "readraw") == 0)
                ret = cmd_readraw(argv[2]);
        else {
                usage();
                return 2;
        }
        if (fflush(stdout) != 0)
                return 1;
        return ret;
}
