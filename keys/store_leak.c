/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leak marks (store.h): a CB_REC_LEAK record per leaked version, holding a
 * keyed hash of its value, so that what leaked is refused for ever by the
 * store itself (sealed and counted like every other record: deleting or
 * editing a mark breaks the MAC chain, restoring an older store is what
 * the generation and the tpm2 counter catch).  Also the cheap check that
 * the files did not change under an open handle.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "error.h"
#include "fsutil.h"
#include "store_derive.h"
#include "store_internal.h"

#define LEAK_KEY_CTX "cbleakh1"

/* BLAKE2b-256 of value keyed with a KEK-derived key. */
static int leak_hash(const cb_store *s, const void *value, size_t len, unsigned char out[CB_MAC_LEN]) {
        unsigned char key[CB_DERIVED_KEY_LEN];
        int r = cb_store_derive_key(s, LEAK_KEY_CTX, 1, key);

        if (r == 0)
                crypto_generichash(out, CB_MAC_LEN, value, len, key, sizeof(key));
        sodium_memzero(key, sizeof(key));
        return r;
}

int cb_store_apply_leak(cb_store *s, const cb_record *rec) {
        struct secret *sec = cb_store_find(s, (const char *)rec->name, rec->name_len);
        cb_version_info *v = sec ? cb_store_find_version(sec, rec->version, NULL) : NULL;
        struct leakmark *m;

        if (!v)
                return cb_error_set(-EBADMSG, "leak mark for a version that does not exist");
        v->leaked = true;
        if (s->nleaks == s->capleaks) {
                size_t nc = s->capleaks ? s->capleaks * 2 : 8;
                struct leakmark *nl = realloc(s->leaks, nc * sizeof(*nl));
                if (!nl)
                        return -ENOMEM;
                s->leaks = nl;
                s->capleaks = nc;
        }
        m = &s->leaks[s->nleaks];
        m->name = strndup((const char *)rec->name, rec->name_len);
        if (!m->name)
                return -ENOMEM;
        m->version = rec->version;
        m->time = rec->time;
        memcpy(m->hash, rec->leak_hash, CB_MAC_LEN);
        s->nleaks++;
        return 0;
}

int cb_store_emit_leaks(const cb_store *s, uint64_t gen, cb_buf *batch, unsigned char head[CB_MAC_LEN],
                        int (*frame)(const cb_store *, cb_buf *, unsigned char *, const cb_buf *)) {
        cb_buf body = CB_BUF_INIT;
        int r = 0;

        /* After every secret's versions, so each mark finds its version. */
        for (size_t i = 0; i < s->nleaks && r >= 0; i++) {
                const struct leakmark *m = &s->leaks[i];

                cb_buf_reset(&body);
                r = cb_record_encode(&body, &(cb_record){ .type = CB_REC_LEAK, .generation = gen, .time = m->time,
                                                          .name = (const unsigned char *)m->name,
                                                          .name_len = strlen(m->name), .version = m->version,
                                                          .leak_hash = m->hash });
                if (r >= 0)
                        r = frame(s, batch, head, &body);
        }
        cb_buf_free(&body);
        return r;
}

bool cb_store_value_leaked(const cb_store *s, const void *value, size_t len) {
        unsigned char h[CB_MAC_LEN];
        bool hit = false;

        if (!s->nleaks)
                return false;
        if (leak_hash(s, value, len, h) < 0)
                return true; /* cannot tell: refuse rather than risk storing a leaked value */
        for (size_t i = 0; i < s->nleaks; i++)
                hit |= sodium_memcmp(h, s->leaks[i].hash, CB_MAC_LEN) == 0;
        sodium_memzero(h, sizeof(h));
        return hit;
}

size_t cb_store_leaked_count(const cb_store *s) {
        return s->nleaks;
}

static int mark_leaked_locked(cb_store *s, const char *name, uint32_t version, uint32_t *ret_version) {
        unsigned char h[CB_MAC_LEN];
        const cb_version_info *vi;
        cb_secbuf *val = NULL;
        uint32_t got = 0;
        size_t nv;
        int lockfd = -1, r;

        r = cb_store_versions(s, name, &vi, &nv);
        if (r < 0)
                return r;
        for (size_t i = 0; i < nv && !version; i++)
                if (vi[i].state == CB_VS_CURRENT)
                        version = vi[i].version;
        for (size_t i = 0; i < nv; i++)
                if (vi[i].version == version && vi[i].leaked) {
                        if (ret_version)
                                *ret_version = version;
                        return 0; /* marked already */
                }
        r = cb_store_get_ex(s, name, version, true, CB_STORE_LEAKED_OK, &val, &got, NULL);
        if (r < 0)
                return r;
        r = leak_hash(s, cb_secbuf_data(val), cb_secbuf_len(val), h);
        cb_secbuf_free(val);
        if (r < 0)
                return r;
        r = cb_store_txn_begin(s, &lockfd);
        if (r < 0)
                goto out;
        r = cb_store_commit_one(s, &(cb_record){ .type = CB_REC_LEAK, .generation = s->hdr.generation + 1,
                                                 .time = cb_store_now(), .name = (const unsigned char *)name,
                                                 .name_len = strlen(name), .version = got, .leak_hash = h });
        if (r >= 0 && ret_version)
                *ret_version = got;
out:
        if (lockfd >= 0)
                close(lockfd);
        sodium_memzero(h, sizeof(h));
        return r;
}

int cb_store_mark_leaked(cb_store *s, const char *name, uint32_t version, uint32_t *ret_version) {
        /* Marked already (a leaked value sighted again): answered on the
         * read side, never waiting for a writer's commit. */
        const cb_version_info *vi;
        uint32_t want = version, marked = 0;
        size_t nv;

        cb_store_read_lock(s);
        if (cb_store_versions(s, name, &vi, &nv) == 0) {
                for (size_t i = 0; i < nv && !want; i++)
                        if (vi[i].state == CB_VS_CURRENT)
                                want = vi[i].version;
                for (size_t i = 0; i < nv; i++)
                        if (want && vi[i].version == want && vi[i].leaked)
                                marked = want;
        }
        cb_store_read_unlock(s);
        if (marked) {
                if (ret_version)
                        *ret_version = marked;
                return 0;
        }
        cb_store_write_lock(s);
        int r = mark_leaked_locked(s, name, version, ret_version);
        cb_store_write_unlock(s);
        return r;
}

/* ---- freshness ---- */

static int check_fresh_locked(cb_store *s);

void cb_store_note_header(cb_store *s) {
        struct stat st;

        if (fstatat(s->dirfd, "header", &st, AT_SYMLINK_NOFOLLOW) < 0) {
                s->hdr_ino = 0; /* the next check reads the bytes */
                return;
        }
        s->hdr_dev = st.st_dev;
        s->hdr_ino = st.st_ino;
        s->hdr_size = st.st_size;
        s->hdr_mtim = st.st_mtim;
        s->hdr_ctim = st.st_ctim;
}

static bool same_time(struct timespec a, struct timespec b) {
        return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* Readers run this under the read side only, concurrently with each other
 * and with a writer's I/O: it needs the writers' mutex (it may note the
 * header or set stale, and a writer between its header rename and its note
 * would look like another process's change).  It takes it with trylock,
 * never waiting: while a write is under way (or a caller holds the mutex
 * around a read-check-write) the check is skipped -- that writer's
 * txn_begin compares the header on disk with ours under the directory
 * lock anyway, and the next read checks again. */
int cb_store_check_fresh(cb_store *s) {
        int r;

        if (__atomic_load_n(&s->stale, __ATOMIC_ACQUIRE))
                return check_fresh_locked(s);
        if (pthread_mutex_trylock(&s->wr) != 0)
                return 0;
        r = check_fresh_locked(s);
        pthread_mutex_unlock(&s->wr);
        return r;
}

static int check_fresh_locked(cb_store *s) {
        unsigned char *disk = NULL;
        struct stat st;
        size_t n = 0;
        bool same;

        if (__atomic_load_n(&s->stale, __ATOMIC_ACQUIRE))
                goto stale;
        if (fstatat(s->dirfd, "header", &st, AT_SYMLINK_NOFOLLOW) == 0 && s->hdr_ino && st.st_dev == s->hdr_dev &&
            st.st_ino == s->hdr_ino && st.st_size == s->hdr_size && same_time(st.st_mtim, s->hdr_mtim) &&
            same_time(st.st_ctim, s->hdr_ctim))
                return 0;
        /* Something about the file changed (or a stat failed): the bytes
         * decide.  Our own commits note the header they wrote, so this is
         * another process, or a touch. */
        same = cb_read_file_at(s->dirfd, "header", CB_HEADER_MAX, &disk, &n) == 0 && n == s->hdr_len &&
               memcmp(disk, s->hdr_bytes, n) == 0;
        free(disk);
        if (same) {
                cb_store_note_header(s);
                return 0;
        }
        __atomic_store_n(&s->stale, true, __ATOMIC_RELEASE);
stale:
        return cb_error_set(CB_E_ROLLBACK, "the store in '%s' was changed by another process (or replaced) since "
                            "this daemon opened it: refusing to serve what may be stale; restart to reopen it",
                            s->dir);
}
