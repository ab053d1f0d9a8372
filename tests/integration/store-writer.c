/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store-writer: the victim process of test-store-crash.
 *
 *   store-writer DIR KEYFILE START COUNT [MODE]
 *
 * Opens the store in DIR (keyfile:KEYFILE) and performs operations
 * START..START+COUNT-1.  Everything it does is a function of the operation
 * number i and the store's state, and it reports every step on stdout, one
 * write(2) per line so a kill can never leave half a line:
 *
 *   ready                          store opened (recovery done)
 *   begin <i> <op> <name> v<N>     about to call the store
 *   ack <i> <op> <name> v<N>       the call returned success
 *   done                           all COUNT operations acknowledged
 *
 * op is put (a new current version, value from value_for(i)), disable,
 * previous, current (cb_store_set_state) or destroy (cb_store_destroy of a
 * non-current version: a compaction).  MODE is "mix" (default: mostly puts,
 * some state changes and destroys) or "put" (only puts).  In both modes a
 * put to a secret that has LIVE_CAP live versions becomes a destroy of its
 * oldest inactive one, so the store stays small however long a run is.
 *
 * CB_CRASH_AT=<hook point> [CB_CRASH_AT_N=<n>]: raise SIGKILL at the n-th
 * (default first) time the commit path reaches that point.
 *
 * MODE "forge" (COUNT must be 1; test-tpm.sh): instead of a put, append a
 * PUT record for s<START % 50> whose value does NOT decrypt, properly
 * MAC-chained with the store's own key, and commit it WITHOUT advancing
 * the anti-rollback counter: a copy that opens (every MAC holds) but fails
 * cb_store_verify.  Uses the store's internals (store_internal.h).
 *
 * CB_UNLOCK_SPEC=<spec> [CB_TPM2_TCTI=<tcti>]: unlock with that spec instead
 * of keyfile:KEYFILE (test-tpm.sh: a crash between the header commit and
 * the TPM counter increment).
 *
 * Exit 0 when done, 1 on any failure (message on stderr).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "error.h"
#include "fsutil.h"
#include "store.h"
#include "store_format.h"
#include "store_internal.h"

#define NAMES 50
#define VALUE_MAX_LEN 300
#define LIVE_CAP 4

enum op { OP_PUT, OP_DISABLE, OP_PREVIOUS, OP_CURRENT, OP_DESTROY };

static const char *const op_names[] = { "put", "disable", "previous", "current", "destroy" };

static const char *crash_at;
static unsigned long crash_n = 1, crash_seen;

static void crash_hook(const char *point) {
        if (strcmp(point, crash_at) == 0 && ++crash_seen == crash_n)
                raise(SIGKILL);
}

static _Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void die(const char *fmt, ...) {
        va_list ap;

        fputs("store-writer: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(1);
}

/* One line, one write(2): a line in the pipe is always whole. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
        char line[256];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof(line))
                die("line too long");
        for (size_t off = 0; off < (size_t)n;) {
                ssize_t k = write(STDOUT_FILENO, line + off, (size_t)n - off);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        die("stdout: %s", strerror(errno));
                off += (size_t)k;
        }
}

/* ---- deterministic data: keep in sync with test-store-crash.c ---------- */

static uint64_t splitmix(uint64_t *x) {
        uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

/* The value put by operation i: 100..300 bytes, all byte values possible. */
static size_t value_for(uint64_t i, unsigned char out[VALUE_MAX_LEN]) {
        uint64_t x = i * 2654435761ULL + 17;
        size_t len = 100 + (size_t)(splitmix(&x) % 201);

        for (size_t j = 0; j < len; j++)
                out[j] = (unsigned char)splitmix(&x);
        return len;
}

/* ---- choosing an operation --------------------------------------------- */

/* A non-current, non-destroyed version of name picked by h, or 0. */
static uint32_t pick_inactive(cb_store *s, const char *name, uint64_t h, bool oldest,
                              enum cb_version_state *ret_state) {
        const cb_version_info *v;
        size_t n, cand = 0, k;

        if (cb_store_versions(s, name, &v, &n) < 0)
                return 0;
        for (size_t j = 0; j < n; j++)
                cand += v[j].state != CB_VS_CURRENT && v[j].state != CB_VS_DESTROYED;
        if (!cand)
                return 0;
        k = oldest ? 0 : (size_t)(h % cand);
        for (size_t j = 0; j < n; j++) {
                if (v[j].state == CB_VS_CURRENT || v[j].state == CB_VS_DESTROYED)
                        continue;
                if (k-- == 0) {
                        *ret_state = v[j].state;
                        return v[j].version;
                }
        }
        return 0;
}

static size_t live_versions(cb_store *s, const char *name) {
        const cb_version_info *v;
        size_t n, live = 0;

        if (cb_store_versions(s, name, &v, &n) < 0)
                return 0;
        for (size_t j = 0; j < n; j++)
                live += v[j].state != CB_VS_DESTROYED;
        return live;
}

static uint32_t next_version(cb_store *s, const char *name) {
        const cb_version_info *v;
        size_t n;

        if (cb_store_versions(s, name, &v, &n) < 0 || n == 0)
                return 1;
        return v[n - 1].version + 1;
}

static enum op choose(cb_store *s, uint64_t i, bool mix, char name[16], uint32_t *ret_version) {
        uint64_t x = i ^ 0x5eed5eed5eedULL;
        uint64_t sel = splitmix(&x) % 100, h = splitmix(&x);
        enum cb_version_state st = 0;
        uint32_t ver;

        if (mix && sel < 24) {
                snprintf(name, 16, "s%u", (unsigned)(h % NAMES));
                ver = pick_inactive(s, name, splitmix(&x), sel < 12, &st);
                if (ver) {
                        *ret_version = ver;
                        if (sel < 12)
                                return OP_DESTROY;
                        if (st == CB_VS_DISABLED)
                                return OP_PREVIOUS;
                        return splitmix(&x) & 1 ? OP_DISABLE : OP_CURRENT;
                }
        }
        snprintf(name, 16, "s%u", (unsigned)(i % NAMES));
        /* Bound the live versions per secret (so checking a store stays
         * cheap however long a run is): at the cap, destroy instead. */
        if (live_versions(s, name) >= LIVE_CAP && (ver = pick_inactive(s, name, 0, true, &st))) {
                *ret_version = ver;
                return OP_DESTROY;
        }
        *ret_version = next_version(s, name);
        return OP_PUT;
}

static int perform(cb_store *s, uint64_t i, enum op op, const char *name, uint32_t version) {
        unsigned char val[VALUE_MAX_LEN];
        uint32_t got = 0;
        size_t len;
        int r;

        switch (op) {
        case OP_PUT:
                len = value_for(i, val);
                r = cb_store_put(s, name, val, len, NULL, CB_VS_CURRENT, &got);
                if (r >= 0 && got != version)
                        die("op %llu: put '%s' made version %u, expected %u", (unsigned long long)i, name, got,
                            version);
                return r;
        case OP_DISABLE:
                return cb_store_set_state(s, name, version, CB_VS_DISABLED);
        case OP_PREVIOUS:
                return cb_store_set_state(s, name, version, CB_VS_PREVIOUS);
        case OP_CURRENT:
                return cb_store_set_state(s, name, version, CB_VS_CURRENT);
        case OP_DESTROY:
                return cb_store_destroy(s, name, version);
        }
        return -EINVAL;
}

/* MODE forge: see the top comment. */
static int forge(cb_store *s, const char *name, uint32_t version) {
        static const cb_meta empty;
        unsigned char dek_nonce[CB_NONCE_LEN], val_nonce[CB_NONCE_LEN], wrapped[CB_WRAPPED_KEY_LEN], ct[64];
        unsigned char head[CB_MAC_LEN];
        cb_buf metab = CB_BUF_INIT, body = CB_BUF_INIT, framed = CB_BUF_INIT;
        int r;

        randombytes_buf(dek_nonce, sizeof(dek_nonce));
        randombytes_buf(val_nonce, sizeof(val_nonce));
        randombytes_buf(wrapped, sizeof(wrapped));
        randombytes_buf(ct, sizeof(ct));
        if ((r = cb_meta_encode(&empty, &metab)) < 0 ||
            (r = cb_record_encode(&body, &(cb_record){
                .type = CB_REC_PUT, .generation = s->hdr.generation + 1, .time = cb_store_now(),
                .name = (const unsigned char *)name, .name_len = strlen(name), .version = version,
                .state = CB_VS_CURRENT, .created = cb_store_now(), .meta = metab.data, .meta_len = metab.len,
                .dek_nonce = dek_nonce, .wrapped_dek = wrapped, .val_nonce = val_nonce, .ct = ct,
                .ct_len = sizeof(ct) })) < 0 ||
            (r = cb_buf_put_u32(&framed, (uint32_t)body.len)) < 0 || (r = cb_buf_put(&framed, body.data, body.len)) < 0)
                goto out;
        cb_log_chain_next(head, cb_store_key(s, K_LOGMAC), s->hdr.log_head, framed.data, framed.len);
        if ((r = cb_buf_put(&framed, head, CB_MAC_LEN)) < 0 ||
            (r = cb_pwrite_all(s->logfd, framed.data, framed.len, (off_t)s->log.len)) < 0)
                goto out;
        if (fsync(s->logfd) < 0) {
                r = -errno;
                goto out;
        }
        s->rollback_prov = NULL; /* the counter does not follow this commit */
        r = cb_store_write_header(s, s->hdr.generation + 1, s->hdr.log_id, s->log.len + framed.len, head);
out:
        cb_buf_free(&metab);
        cb_buf_free(&body);
        cb_buf_free(&framed);
        return r;
}

static int parse_u64(const char *str, uint64_t *ret) {
        char *e;

        errno = 0;
        *ret = strtoull(str, &e, 10);
        return errno || *e || e == str || str[0] == '-' ? -EINVAL : 0;
}

int main(int argc, char **argv) {
        char spec_str[4200];
        cb_unlock_spec *spec = NULL;
        cb_store *s = NULL;
        uint64_t start, count;
        bool mix = true, forging = false;
        int r;

        if (argc < 5 || argc > 6 || parse_u64(argv[3], &start) < 0 || parse_u64(argv[4], &count) < 0)
                die("usage: store-writer DIR KEYFILE START COUNT [mix|put|forge]");
        if (argc == 6) {
                if (strcmp(argv[5], "put") == 0)
                        mix = false;
                else if (strcmp(argv[5], "forge") == 0)
                        forging = true;
                else if (strcmp(argv[5], "mix") != 0)
                        die("unknown mode '%s'", argv[5]);
        }
        crash_at = getenv("CB_CRASH_AT");
        if (crash_at && *crash_at) {
                const char *n = getenv("CB_CRASH_AT_N");
                uint64_t v;

                if (n && *n) {
                        if (parse_u64(n, &v) < 0 || v == 0)
                                die("CB_CRASH_AT_N must be a positive number");
                        crash_n = (unsigned long)v;
                }
                cb_store_test_hook = crash_hook;
        }
        snprintf(spec_str, sizeof(spec_str), "keyfile:%s", argv[2]);
        if (getenv("CB_UNLOCK_SPEC"))
                snprintf(spec_str, sizeof(spec_str), "%s", getenv("CB_UNLOCK_SPEC"));
        if (cb_unlock_spec_parse(spec_str, &spec) < 0)
                die("%s", cb_error_last());
        if (getenv("CB_TPM2_TCTI") && !(spec->tpm2_tcti = strdup(getenv("CB_TPM2_TCTI"))))
                die("out of memory");
        r = cb_store_open(argv[1], spec, &s);
        if (r < 0)
                die("open: %s", cb_error_last());
        say("ready\n");
        if (forging) {
                char name[16];

                if (count != 1)
                        die("forge: COUNT must be 1");
                snprintf(name, sizeof(name), "s%u", (unsigned)(start % NAMES));
                r = forge(s, name, next_version(s, name));
                if (r < 0)
                        die("forge: %s (%s)", cb_error_last(), strerror(-r));
                say("done\n");
                cb_store_close(s);
                cb_unlock_spec_free(spec);
                return 0;
        }
        for (uint64_t i = start; i < start + count; i++) {
                char name[16];
                uint32_t version;
                enum op op = choose(s, i, mix, name, &version);

                say("begin %llu %s %s v%u\n", (unsigned long long)i, op_names[op], name, version);
                r = perform(s, i, op, name, version);
                if (r < 0)
                        die("op %llu: %s %s v%u: %s (%s)", (unsigned long long)i, op_names[op], name, version,
                            cb_error_last(), strerror(-r));
                say("ack %llu %s %s v%u\n", (unsigned long long)i, op_names[op], name, version);
        }
        say("done\n");
        cb_store_close(s);
        cb_unlock_spec_free(spec);
        return 0;
}
