/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The commit path: put, state changes, destroy (by compaction).
 * Protocol summary in store.c; every function here returns with the store's
 * memory equal to what is on disk, or with s->broken set when a failure
 * left that uncertain (then every later write refuses: reopen).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fsutil.h"
#include "store_internal.h"

int cb_store_txn_begin(cb_store *s, int *ret_lock) {
        unsigned char *disk = NULL;
        size_t n = 0;
        struct stat st;
        int lockfd, r;

        if (s->readonly_why[0])
                return cb_error_set(-EROFS, "'%s' is open read-only: %s", s->dir, s->readonly_why);
        if (s->rollback_pending)
                return cb_error_set(-EROFS, "'%s' is older than the anti-rollback counter and was opened only to "
                                    "accept that: nothing is written before it is accepted", s->dir);
        if (s->broken)
                return cb_error_set(-EIO, "an earlier write to '%s' ended in an unknown state; reopen the store",
                                    s->dir);
        if (__atomic_load_n(&s->stale, __ATOMIC_ACQUIRE))
                return cb_error_set(CB_E_ROLLBACK, "the store in '%s' was changed by another process since it was "
                                    "opened; reopen it", s->dir);
        lockfd = cb_lock_dir(s->dirfd, 1);
        if (lockfd < 0)
                return cb_error_set(lockfd, "cannot lock '%s': %s", s->dir, strerror(-lockfd));
        r = cb_read_file_at(s->dirfd, "header", CB_HEADER_MAX, &disk, &n);
        if (r < 0) {
                r = cb_error_set(r, "%s/header: %s", s->dir, strerror(-r));
                goto fail;
        }
        if (n != s->hdr_len || memcmp(disk, s->hdr_bytes, n) != 0) {
                __atomic_store_n(&s->stale, true, __ATOMIC_RELEASE);
                r = cb_error_set(CB_E_ROLLBACK, "the store in '%s' was changed by another process since it was "
                                 "opened; reopen it", s->dir);
                goto fail;
        }
        if (fstat(s->logfd, &st) < 0) {
                r = -errno;
                goto fail;
        }
        if ((size_t)st.st_size < s->log.len) {
                r = cb_error_set(CB_E_INTEGRITY, "integrity error: %s/%s shrank under an open handle (%lld < %zu "
                                 "bytes); reopen the store", s->dir, s->logname, (long long)st.st_size, s->log.len);
                goto fail;
        }
        if ((size_t)st.st_size != s->log.len && ftruncate(s->logfd, (off_t)s->log.len) < 0) {
                r = cb_error_set(-errno, "%s/%s: cannot drop an uncommitted tail: %s", s->dir, s->logname,
                                 strerror(errno));
                goto fail;
        }
        if (s->counter_behind) {
                /* The last commit is durable but the anti-rollback counter
                 * did not follow it: until it does, a copy of the previous
                 * generation would pass the rollback check, so nothing more
                 * is written.  Catching up only moves the counter forward,
                 * to the generation on disk (checked above to be ours). */
                uint64_t counter_gen;

                r = cb_store_sync_generation(s, &counter_gen);
                if (r < 0) {
                        r = cb_error_set(r, "write refused: the anti-rollback counter is still behind the last "
                                         "commit of '%s' and cannot be advanced (%.160s); retry when the TPM is "
                                         "back", s->dir, cb_error_last());
                        goto fail;
                }
                s->counter_behind = false;
        }
        free(disk);
        *ret_lock = lockfd;
        return 0;
fail:
        free(disk);
        close(lockfd);
        return r;
}

/* Append u32 length | body | mac to batch, advancing head. */
static int frame(const cb_store *s, cb_buf *batch, unsigned char head[CB_MAC_LEN], const cb_buf *body) {
        size_t start = batch->len;
        int r;

        if (body->len > CB_RECORD_MAX)
                return cb_error_set(-E2BIG, "record larger than %d bytes", CB_RECORD_MAX);
        if ((r = cb_buf_put_u32(batch, (uint32_t)body->len)) < 0 || (r = cb_buf_put(batch, body->data, body->len)) < 0)
                return r;
        cb_log_chain_next(head, cb_store_key(s, K_LOGMAC), head, batch->data + start, 4 + body->len);
        return cb_buf_put(batch, head, CB_MAC_LEN);
}

/* Atomically replace the header with new commit fields.  On failure the
 * old header is still in place (clean failure) unless s->broken is set. */
int cb_store_write_header(cb_store *s, uint64_t gen, const unsigned char log_id[CB_LOG_ID_LEN], uint64_t log_len,
                        const unsigned char head[CB_MAC_LEN]) {
        cb_buf out = CB_BUF_INIT;
        cb_header h = s->hdr;
        unsigned char *disk = NULL;
        size_t n = 0;
        int r;

        h.generation = gen;
        memcpy(h.log_id, log_id, CB_LOG_ID_LEN);
        h.log_len = log_len;
        memcpy(h.log_head, head, CB_MAC_LEN);
        r = cb_header_build(&out, &h, s->hdr_bytes + s->hdr.slots_off, s->hdr.slots_end - s->hdr.slots_off,
                            cb_store_key(s, K_HDRMAC));
        if (r < 0)
                goto out;
        /* Through a pre-allocated spare: a commit (a leak mark) must not
         * need a new block when an ordinary user has filled the disk. */
        r = cb_store_test_no_reserve
                    ? cb_atomic_replace(s->dirfd, "header", out.data, out.len)
                    : cb_atomic_replace_spare(s->dirfd, "header", CB_HEADER_SPARE, out.data, out.len, out.len + 4096);
        if (r < 0) {
                int e = r;
                /* Did the rename happen before the failure (fsync of the directory)? */
                if (cb_read_file_at(s->dirfd, "header", CB_HEADER_MAX, &disk, &n) < 0 || n != s->hdr_len ||
                    memcmp(disk, s->hdr_bytes, n) != 0)
                        s->broken = true;
                r = cb_error_set(e, "cannot write '%s/header': %s%s", s->dir, strerror(-e),
                                 s->broken ? " (commit state unknown: reopen the store)" : "; nothing was changed");
                goto out;
        }
        cb_store_note_header(s);
        cb_store_hook("header-committed");
        pthread_rwlock_wrlock(&s->mem); /* the header in memory: readers see the old or the new */
        free(s->hdr_bytes);
        s->hdr_bytes = out.data; /* ownership moves; parse cannot fail on what we built */
        s->hdr_len = out.len;
        out = (cb_buf)CB_BUF_INIT;
        r = cb_header_parse(s->hdr_bytes, s->hdr_len, &s->hdr);
        pthread_rwlock_unlock(&s->mem);
        if (r < 0)
                s->broken = true;
        if (r == 0 && s->rollback_prov) {
                /* The commit is durable; now the counter follows it.  If it
                 * cannot, a copy of the previous generation would still pass
                 * the rollback check: the next write catches the counter up
                 * first and is refused while it cannot (txn_begin); a reopen
                 * catches it up or fails closed.  This commit stands. */
                uint64_t counter_gen;

                if (cb_store_sync_generation(s, &counter_gen) < 0)
                        s->counter_behind = true;
        }
out:
        free(disk);
        cb_buf_free(&out);
        return r;
}

/* Take back an append that was not committed.  Open rolls complete records
 * forward, so the cut must be durable: otherwise a write reported as failed
 * could reappear after a crash.  If it cannot be made durable, the handle is
 * marked broken and the caller is told the outcome is unknown. */
static void undo_append(cb_store *s, size_t off) {
        if (ftruncate(s->logfd, (off_t)off) < 0 || fsync(s->logfd) < 0)
                s->broken = true;
}

/* Append batch (framed records ending at head) to the log and commit. */
static int commit(cb_store *s, const cb_buf *batch, const unsigned char head[CB_MAC_LEN]) {
        size_t off = s->log.len;
        int r;

        /* Reserve now so nothing can fail in memory after the commit (the
         * bytes may move: readers are kept out for that only). */
        pthread_rwlock_wrlock(&s->mem);
        r = cb_buf_reserve(&s->log, batch->len);
        pthread_rwlock_unlock(&s->mem);
        if (r < 0)
                return r;
        r = cb_pwrite_all(s->logfd, batch->data, batch->len, (off_t)off);
        if (r < 0)
                goto undo;
        cb_store_hook("log-written");
        if (fsync(s->logfd) < 0) {
                r = -errno;
                goto undo;
        }
        cb_store_hook("log-synced");
        r = cb_store_write_header(s, s->hdr.generation + 1, s->hdr.log_id, off + batch->len, head);
        if (r < 0) {
                if (!s->broken)
                        undo_append(s, off);
                if (s->broken)
                        return cb_error_set(-EIO, "%s; the write may or may not have been applied: reopen the store",
                                            cb_error_last());
                return r;
        }
        /* Room for the next appends without a new block (a full disk
         * then still takes a leak mark); topped up when half used. */
        if (!cb_store_test_no_reserve && s->log_reserved < off + batch->len + CB_LOG_RESERVE / 2) {
                cb_reserve_tail(s->logfd, (off_t)(off + batch->len), CB_LOG_RESERVE);
                s->log_reserved = off + batch->len + CB_LOG_RESERVE;
        }
        /* Durable: publish it in memory (readers wait for this loop only). */
        pthread_rwlock_wrlock(&s->mem);
        r = cb_buf_put(&s->log, batch->data, batch->len);
        for (size_t p = off; r >= 0 && p < s->log.len;) {
                uint32_t len = cb_get_u32_at(s->log.data + p);
                cb_record rec;

                r = cb_record_parse(s->log.data + p + 4, len, &rec);
                if (r >= 0)
                        r = cb_store_apply_record(s, &rec, p + 4, len);
                p += 4 + (size_t)len + CB_MAC_LEN;
        }
        pthread_rwlock_unlock(&s->mem);
        if (r < 0) {
                s->broken = true;
                return cb_error_set(-EIO, "write committed but the in-memory index could not follow; reopen");
        }
        return 0;
undo:
        undo_append(s, off);
        if (s->broken)
                return cb_error_set(-EIO, "cannot append to '%s/%s': %s, nor take the append back: the write may "
                                    "or may not have been applied; reopen the store", s->dir, s->logname,
                                    strerror(-r));
        return cb_error_set(r, "cannot append to '%s/%s': %s; nothing was changed", s->dir, s->logname,
                            strerror(-r));
}

int cb_store_commit_one(cb_store *s, const cb_record *rec) {
        unsigned char head[CB_MAC_LEN];
        cb_buf body = CB_BUF_INIT, batch = CB_BUF_INIT;
        int r;

        memcpy(head, s->hdr.log_head, CB_MAC_LEN);
        if ((r = cb_record_encode(&body, rec)) >= 0 && (r = frame(s, &batch, head, &body)) >= 0)
                r = commit(s, &batch, head);
        cb_buf_free(&body);
        cb_buf_free(&batch);
        return r;
}

int cb_store_put(cb_store *s, const char *name, const void *value, size_t len, const cb_meta *meta,
                 enum cb_version_state state, uint32_t *ret_version) {
        return cb_store_put_ex(s, name, value, len, meta, state, 0, 0, ret_version);
}

static int put_ex_locked(cb_store *s, const char *name, const void *value, size_t len, const cb_meta *meta,
                         enum cb_version_state state, uint64_t created, unsigned flags, uint32_t *ret_version) {
        unsigned char dek_nonce[CB_NONCE_LEN], val_nonce[CB_NONCE_LEN], wrapped[CB_WRAPPED_KEY_LEN];
        static const cb_meta empty;
        cb_buf metab = CB_BUF_INIT, aad = CB_BUF_INIT;
        unsigned char *ct = NULL;
        cb_secbuf *dek = NULL;
        cb_meta *m = NULL;
        struct secret *sec = NULL;
        uint32_t version;
        int lockfd = -1, r;

        if ((r = cb_store_name_check(name, flags)) < 0)
                return r;
        if (len == 0)
                return cb_error_set(-EINVAL, "empty value for '%s'", name);
        if (len > CB_VALUE_MAX)
                return cb_error_set(-E2BIG, "value for '%s' is %zu bytes; the limit is %d", name, len, CB_VALUE_MAX);
        if (state != CB_VS_CURRENT && state != CB_VS_PENDING)
                return cb_error_set(-EINVAL, "a new version is either current or pending");
        if ((r = cb_meta_copy(meta ? meta : &empty, &m)) < 0 || (r = cb_meta_validate(m)) < 0 ||
            (r = cb_meta_encode(m, &metab)) < 0)
                goto out;
        r = cb_store_txn_begin(s, &lockfd);
        if (r < 0)
                goto out;
        /* After txn_begin: the leak marks are the ones on disk. */
        if (cb_store_value_leaked(s, value, len)) {
                r = cb_error_set(-EKEYREJECTED, "this value of '%s' was marked leaked earlier and is never stored "
                                 "again: use a new value", name);
                goto out;
        }
        sec = cb_store_find(s, name, strlen(name));
        if ((!sec || cb_store_sec_deleted(sec)) && state != CB_VS_CURRENT) {
                r = cb_error_set(-EINVAL, "the first version of '%s' must be current", name);
                goto out;
        }
        if (sec && (sec->n >= CB_VERSIONS_MAX || sec->v[sec->n - 1].version == UINT32_MAX)) {
                r = cb_error_set(-ENOSPC, "'%s' has the maximum number of versions", name);
                goto out;
        }
        version = sec ? sec->v[sec->n - 1].version + 1 : 1;

        dek = cb_secbuf_new(32);
        ct = malloc(len + ABYTES);
        if (!dek || !ct) {
                r = -ENOMEM;
                goto out;
        }
        randombytes_buf(cb_secbuf_data(dek), 32);
        randombytes_buf(dek_nonce, sizeof(dek_nonce));
        randombytes_buf(val_nonce, sizeof(val_nonce));
        if ((r = cb_store_dek_aad(&aad, s, name, version)) < 0)
                goto out;
        crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped, NULL, cb_secbuf_data(dek), 32, aad.data, aad.len, NULL,
                                                   dek_nonce, cb_store_key(s, K_DEKWRAP));
        cb_buf_reset(&aad);
        if ((r = cb_store_val_aad(&aad, s, name, version, metab.data, metab.len)) < 0)
                goto out;
        crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, value, len, aad.data, aad.len, NULL, val_nonce,
                                                   cb_secbuf_data(dek));
        r = cb_store_commit_one(s, &(cb_record){
                .type = CB_REC_PUT,
                .generation = s->hdr.generation + 1,
                .time = cb_store_now(),
                .name = (const unsigned char *)name,
                .name_len = strlen(name),
                .version = version,
                .state = (uint8_t)state,
                .created = created ? created : cb_store_now(),
                .meta = metab.data,
                .meta_len = metab.len,
                .dek_nonce = dek_nonce,
                .wrapped_dek = wrapped,
                .val_nonce = val_nonce,
                .ct = ct,
                .ct_len = len + ABYTES,
        });
        if (r >= 0 && ret_version)
                *ret_version = version;
out:
        if (lockfd >= 0)
                close(lockfd);
        cb_secbuf_free(dek);
        free(ct);
        cb_buf_free(&metab);
        cb_buf_free(&aad);
        cb_meta_free(m);
        return r;
}

static int lookup(cb_store *s, const char *name, uint32_t version, unsigned flags, struct secret **ret_sec,
                  size_t *ret_idx) {
        struct secret *sec = NULL;

        if (cb_store_name_check(name, flags) < 0)
                return -EINVAL;
        sec = cb_store_find(s, name, strlen(name));
        if (!sec)
                return cb_error_set(-ENOENT, "no secret named '%s'", name);
        if (!cb_store_find_version(sec, version, ret_idx))
                return cb_error_set(-ENOENT, "secret '%s' has no version %u", name, version);
        *ret_sec = sec;
        return 0;
}

static int set_state_locked(cb_store *s, const char *name, uint32_t version, enum cb_version_state state) {
        struct secret *sec = NULL;
        cb_version_info *v;
        size_t idx = 0;
        int lockfd = -1, r;

        if (state != CB_VS_CURRENT && state != CB_VS_PREVIOUS && state != CB_VS_DISABLED)
                return cb_error_set(-EINVAL, "a version can be made current, previous or disabled here");
        r = cb_store_txn_begin(s, &lockfd);
        if (r < 0)
                return r;
        r = lookup(s, name, version, 0, &sec, &idx);
        if (r < 0)
                goto out;
        v = &sec->v[idx];
        if (v->state == CB_VS_DESTROYED) {
                r = cb_error_set(-EKEYREVOKED, "version %u of '%s' is destroyed", version, name);
                goto out;
        }
        if (v->state == state)
                goto out; /* already there: idempotent, so re-running a step is safe */
        if (state == CB_VS_CURRENT && v->leaked) {
                r = cb_error_set(-EKEYREVOKED, "version %u of '%s' leaked: it is never made current again", version,
                                 name);
                goto out;
        }
        if (v->state == CB_VS_CURRENT) {
                r = cb_error_set(-EBUSY, "version %u of '%s' is current: make another version current first",
                                 version, name);
                goto out;
        }
        r = cb_store_commit_one(s, &(cb_record){
                .type = CB_REC_STATE,
                .generation = s->hdr.generation + 1,
                .time = cb_store_now(),
                .name = (const unsigned char *)name,
                .name_len = strlen(name),
                .version = version,
                .state = (uint8_t)state,
        });
out:
        close(lockfd);
        return r;
}

/* Rewrite the whole log into a new file, turning the version (tsec, tidx)
 * (if any) and every destroyed version into tombstones; then commit the
 * header pointing at it and wipe the old file. */
static int compact(cb_store *s, const struct secret *tsec, size_t tidx) {
        unsigned char log_id[CB_LOG_ID_LEN], head[CB_MAC_LEN];
        char newname[sizeof(s->logname)];
        cb_buf batch = CB_BUF_INIT, body = CB_BUF_INIT;
        uint64_t gen = s->hdr.generation + 1;
        int lockfd = -1, fd = -1, r;

        r = cb_store_txn_begin(s, &lockfd);
        if (r < 0)
                return r;
        randombytes_buf(log_id, sizeof(log_id));
        cb_store_log_name(newname, log_id);
        cb_log_chain_start(head, cb_store_key(s, K_LOGMAC), s->hdr.store_id, log_id);
        for (size_t k = 0; k < s->nsec && r >= 0; k++) {
                const struct secret *sec = &s->sec[k];

                for (size_t i = 0; i < sec->n && r >= 0; i++) {
                        const cb_version_info *v = &sec->v[i];
                        cb_record rec;

                        if (v->state == CB_VS_DESTROYED || (sec == tsec && (i == tidx || tidx == SIZE_MAX))) {
                                rec = (cb_record){ .type = CB_REC_TOMBSTONE, .created = v->created,
                                                   .time = v->state == CB_VS_DESTROYED ? v->changed : cb_store_now() };
                        } else if (cb_record_parse(s->log.data + sec->loc[i].body_off, sec->loc[i].body_len, &rec) < 0) {
                                r = cb_error_set(CB_E_INTEGRITY, "record of '%s' version %u unreadable", sec->name,
                                                 v->version);
                                break;
                        } else {
                                rec.state = (uint8_t)v->state;
                                rec.time = v->changed;
                        }
                        rec.generation = gen;
                        rec.name = (const unsigned char *)sec->name;
                        rec.name_len = strlen(sec->name);
                        rec.version = v->version;
                        cb_buf_reset(&body);
                        if ((r = cb_record_encode(&body, &rec)) >= 0)
                                r = frame(s, &batch, head, &body);
                }
        }
        if (r >= 0)
                r = cb_store_emit_leaks(s, gen, &batch, head, frame);
        if (r < 0)
                goto out;
        fd = openat(s->dirfd, newname, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || cb_pwrite_all(fd, batch.data, batch.len, 0) < 0 || fsync(fd) < 0 || cb_fsync_dir(s->dirfd) < 0) {
                r = cb_error_set(-errno, "cannot write '%s/%s': %s; nothing was changed", s->dir, newname,
                                 strerror(errno));
                (void)unlinkat(s->dirfd, newname, 0);
                goto out;
        }
        cb_store_hook("compact-log-written");
        r = cb_store_write_header(s, gen, log_id, batch.len, head);
        if (r < 0) {
                if (!s->broken)
                        (void)unlinkat(s->dirfd, newname, 0);
                goto out;
        }
        /* Committed.  The new log's index is built off to the side (its
         * whole MAC chain checked and every record parsed: work that grows
         * with the log) while readers go on with the old one; then both
         * are swapped under the write side, pointer moves only.  The copy
         * shares the keys and the header (not changed meanwhile: the
         * writers' mutex is held) and owns only the new index. */
        cb_store *nx = malloc(sizeof(*nx));
        if (!nx) {
                s->broken = true; /* committed, but the index cannot follow */
                r = cb_error_set(-EIO, "write committed but the in-memory index could not follow; reopen");
                goto out;
        }
        memcpy(nx, s, sizeof(*nx));
        nx->sec = NULL, nx->nsec = nx->capsec = 0;
        nx->ht = NULL, nx->htcap = 0;
        nx->leaks = NULL, nx->nleaks = nx->capleaks = 0;
        nx->log = batch;
        batch = (cb_buf)CB_BUF_INIT;
        {
                unsigned char h2[CB_MAC_LEN];
                uint64_t g2;
                size_t e2;
                r = cb_store_load_log(nx, nx->log.data, nx->log.len, nx->log.len, newname, &e2, h2, &g2);
        }
        int oldfd = s->logfd;
        pthread_rwlock_wrlock(&s->mem);
        memcpy(s->logname, newname, sizeof(newname));
        s->logfd = fd;
        s->log_reserved = 0; /* a new file: its reserve is asked for at the next commit */
        fd = -1;
        cb_store_free_index(s);
        cb_buf_free(&s->log);
        s->log = nx->log;
        s->sec = nx->sec, s->nsec = nx->nsec, s->capsec = nx->capsec;
        s->ht = nx->ht, s->htcap = nx->htcap;
        s->leaks = nx->leaks, s->nleaks = nx->nleaks, s->capleaks = nx->capleaks;
        pthread_rwlock_unlock(&s->mem);
        close(oldfd); /* no system call under the write side */
        free(nx); /* its index moved to s; the rest was s's own, borrowed */
        if (r < 0) {
                s->broken = true;
                goto out;
        }
        if (cb_store_remove_stale_logs(s) < 0) /* wipes and unlinks the old log */
                r = cb_error_set(-EIO, "the new state is committed, but the old log in '%s' could not be wiped; "
                                 "it is retried at the next open", s->dir);
out:
        if (fd >= 0)
                close(fd);
        close(lockfd);
        cb_buf_free(&batch);
        cb_buf_free(&body);
        return r;
}

int cb_store_destroy(cb_store *s, const char *name, uint32_t version) {
        return cb_store_destroy_ex(s, name, version, 0);
}

static int destroy_ex_locked(cb_store *s, const char *name, uint32_t version, unsigned flags) {
        struct secret *sec = NULL;
        size_t idx = 0;
        int r;

        r = lookup(s, name, version, flags, &sec, &idx);
        if (r < 0)
                return r;
        if (sec->v[idx].state == CB_VS_DESTROYED)
                return 0;
        if (sec->v[idx].state == CB_VS_CURRENT)
                return cb_error_set(-EBUSY, "version %u of '%s' is current: make another version current first",
                                    version, name);
        return compact(s, sec, idx);
}

static int delete_locked(cb_store *s, const char *name) {
        struct secret *sec;

        if (cb_store_name_check(name, 0) < 0)
                return cb_error_set(-EINVAL, "invalid secret name");
        sec = cb_store_find(s, name, strlen(name));
        if (!sec)
                return cb_error_set(-ENOENT, "no secret named '%s'", name);
        if (cb_store_sec_deleted(sec))
                return 0;
        return compact(s, sec, SIZE_MAX);
}

static int compact_all_locked(cb_store *s) {
        return compact(s, NULL, 0);
}

static int accept_rollback_locked(cb_store *s, uint64_t *ret_generation) {
        uint64_t counter_gen = 0;
        int lockfd = -1, r;

        if (!s->rollback_pending) {
                *ret_generation = s->hdr.generation;
                return 0;
        }
        s->rollback_pending = false; /* for txn_begin; set again below unless committed */
        r = cb_store_txn_begin(s, &lockfd);
        if (r < 0)
                goto out;
        /* Read the counter again: it may have moved since the open. */
        r = cb_store_sync_generation(s, &counter_gen);
        if (r >= 0) {
                r = cb_error_set(-ESTALE, "'%s' is no longer older than the anti-rollback counter; reopen it",
                                 s->dir);
                goto out;
        }
        if (r != CB_E_ROLLBACK || counter_gen <= s->hdr.generation)
                goto out;
        /* Every record, the rolled-forward tail included, is at or below
         * the new generation, so the log still loads. */
        r = cb_store_write_header(s, counter_gen, s->hdr.log_id, s->pending_end, s->pending_head);
        if (r < 0)
                goto out;
        *ret_generation = s->hdr.generation;
        (void)cb_store_remove_stale_logs(s); /* a failure is retried at the next open */
        r = 1;
out:
        if (r < 0 && !s->broken)
                s->rollback_pending = true;
        if (lockfd >= 0)
                close(lockfd);
        return r;
}

int cb_store_put_ex(cb_store *s, const char *name, const void *value, size_t len, const cb_meta *meta,
                    enum cb_version_state state, uint64_t created, unsigned flags, uint32_t *ret_version) {
        cb_store_write_lock(s);
        int r = put_ex_locked(s, name, value, len, meta, state, created, flags, ret_version);
        cb_store_write_unlock(s);
        return r;
}

int cb_store_set_state(cb_store *s, const char *name, uint32_t version, enum cb_version_state state) {
        cb_store_write_lock(s);
        int r = set_state_locked(s, name, version, state);
        cb_store_write_unlock(s);
        return r;
}

int cb_store_destroy_ex(cb_store *s, const char *name, uint32_t version, unsigned flags) {
        cb_store_write_lock(s);
        int r = destroy_ex_locked(s, name, version, flags);
        cb_store_write_unlock(s);
        return r;
}

int cb_store_delete(cb_store *s, const char *name) {
        cb_store_write_lock(s);
        int r = delete_locked(s, name);
        cb_store_write_unlock(s);
        return r;
}

int cb_store_compact(cb_store *s) {
        cb_store_write_lock(s);
        int r = compact_all_locked(s);
        cb_store_write_unlock(s);
        return r;
}

int cb_store_accept_rollback(cb_store *s, uint64_t *ret_generation) {
        cb_store_write_lock(s);
        int r = accept_rollback_locked(s, ret_generation);
        cb_store_write_unlock(s);
        return r;
}
