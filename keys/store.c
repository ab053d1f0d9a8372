/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sealed store: open/unlock, the in-memory index, and the commit path.
 * Byte layout in store_format.h; why a header + append-only log in README.
 *
 * Commit protocol (every write): under an exclusive flock, check the header
 * on disk is the one we loaded (else -ESTALE), drop any uncommitted log tail,
 * append the framed records to the log and fsync it, then atomically
 * replace the header (temp, fsync, rename, fsync dir) with generation + 1,
 * the new log length and chain head.  A write is acknowledged only after
 * the rename.  A crash before it leaves a tail: the next open rolls its
 * complete records forward (they are MAC'd, so only we can have written
 * them) and drops a torn remainder.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "error.h"
#include "fsutil.h"
#include "store.h"
#include "store_format.h"
#include "store_internal.h"

void (*cb_store_test_hook)(const char *point);
bool cb_store_test_no_reserve;

void cb_store_hook(const char *point) {
        if (cb_store_test_hook)
                cb_store_test_hook(point);
}

const unsigned char *cb_store_key(const cb_store *s, size_t which) {
        return cb_secbuf_data(s->keys) + which;
}

const char *cb_version_state_name(enum cb_version_state st) {
        static const char *const names[] = { "?", "pending", "current", "previous", "disabled", "destroyed" };
        return st >= CB_VS_PENDING && st <= CB_VS_DESTROYED ? names[st] : "?";
}

int cb_version_state_parse(const char *str, enum cb_version_state *ret) {
        for (int i = CB_VS_PENDING; i <= CB_VS_DESTROYED; i++)
                if (strcmp(str, cb_version_state_name((enum cb_version_state)i)) == 0) {
                        *ret = (enum cb_version_state)i;
                        return 0;
                }
        return cb_error_set(-EINVAL, "unknown version state '%.32s'", str);
}

int cb_name_check(const char *name) {
        if (!name || name[0] == CB_INTERNAL_NAME_PREFIX || !cb_name_valid((const unsigned char *)name, strlen(name)))
                return cb_error_set(-EINVAL, "invalid secret name: use 1 to %d characters from A-Z a-z 0-9 . _ -, "
                                    "starting with a letter or digit", CB_NAME_MAX);
        return 0;
}

int cb_store_name_check(const char *name, unsigned flags) {
        if (!(flags & CB_STORE_INTERNAL))
                return cb_name_check(name);
        if (!name || name[0] != CB_INTERNAL_NAME_PREFIX || !cb_name_valid((const unsigned char *)name, strlen(name)))
                return cb_error_set(-EINVAL, "invalid internal name");
        return 0;
}

uint64_t cb_store_now(void) {
        return (uint64_t)time(NULL);
}

void cb_store_log_name(char out[8 + 2 * CB_LOG_ID_LEN], const unsigned char id[CB_LOG_ID_LEN]) {
        memcpy(out, "log-", 4);
        sodium_bin2hex(out + 4, 2 * CB_LOG_ID_LEN + 1, id, CB_LOG_ID_LEN);
}

/* ---- index ---------------------------------------------------------- */

static size_t ht_slot(const cb_store *s, const char *name, size_t len) {
        unsigned char h[crypto_shorthash_BYTES];
        uint64_t v;

        crypto_shorthash(h, (const unsigned char *)name, len, s->htkey);
        memcpy(&v, h, sizeof(v));
        return (size_t)v & (s->htcap - 1);
}

struct secret *cb_store_find(const cb_store *s, const char *name, size_t len) {
        if (!s->htcap)
                return NULL;
        for (size_t i = ht_slot(s, name, len);; i = (i + 1) & (s->htcap - 1)) {
                uint32_t e = s->ht[i];

                if (!e)
                        return NULL;
                struct secret *sec = &s->sec[e - 1];
                if (strlen(sec->name) == len && memcmp(sec->name, name, len) == 0)
                        return sec;
        }
}

static int ht_grow(cb_store *s) {
        size_t ncap = s->htcap ? s->htcap * 2 : 64;
        uint32_t *nt = calloc(ncap, sizeof(*nt));

        if (!nt)
                return -ENOMEM;
        free(s->ht);
        s->ht = nt;
        s->htcap = ncap;
        for (size_t k = 0; k < s->nsec; k++) {
                size_t i = ht_slot(s, s->sec[k].name, strlen(s->sec[k].name));
                while (s->ht[i])
                        i = (i + 1) & (ncap - 1);
                s->ht[i] = (uint32_t)(k + 1);
        }
        return 0;
}

static int add_secret(cb_store *s, const unsigned char *name, size_t len, struct secret **ret) {
        int r;

        if (s->nsec >= CB_SECRETS_MAX)
                return cb_error_set(-ENOSPC, "store holds the maximum of %d secrets", CB_SECRETS_MAX);
        if ((s->nsec + 1) * 2 > s->htcap && (r = ht_grow(s)) < 0)
                return r;
        if (s->nsec == s->capsec) {
                size_t nc = s->capsec ? s->capsec * 2 : 16;
                struct secret *ns = realloc(s->sec, nc * sizeof(*ns));
                if (!ns)
                        return -ENOMEM;
                s->sec = ns;
                s->capsec = nc;
        }
        struct secret *sec = &s->sec[s->nsec];
        memset(sec, 0, sizeof(*sec));
        sec->name = strndup((const char *)name, len);
        if (!sec->name)
                return -ENOMEM;
        size_t i = ht_slot(s, sec->name, len);
        while (s->ht[i])
                i = (i + 1) & (s->htcap - 1);
        s->ht[i] = (uint32_t)(++s->nsec);
        *ret = sec;
        return 0;
}

void cb_store_free_index(cb_store *s) {
        for (size_t k = 0; k < s->nsec; k++) {
                for (size_t i = 0; i < s->sec[k].n; i++)
                        cb_meta_free((cb_meta *)s->sec[k].v[i].meta);
                free(s->sec[k].v);
                free(s->sec[k].loc);
                free(s->sec[k].name);
        }
        for (size_t k = 0; k < s->nleaks; k++)
                free(s->leaks[k].name);
        free(s->leaks);
        s->leaks = NULL;
        s->nleaks = s->capleaks = 0;
        free(s->sec);
        free(s->ht);
        s->sec = NULL;
        s->ht = NULL;
        s->nsec = s->capsec = s->htcap = 0;
}

cb_version_info *cb_store_find_version(struct secret *sec, uint32_t version, size_t *ret_idx) {
        for (size_t i = sec->n; i-- > 0;)
                if (sec->v[i].version == version) {
                        if (ret_idx)
                                *ret_idx = i;
                        return &sec->v[i];
                }
        return NULL;
}

bool cb_store_sec_deleted(const struct secret *sec) {
        for (size_t i = 0; i < sec->n; i++)
                if (sec->v[i].state != CB_VS_DESTROYED)
                        return false;
        return sec->n > 0;
}

cb_version_info *cb_store_current_of(struct secret *sec) {
        for (size_t i = sec->n; i-- > 0;)
                if (sec->v[i].state == CB_VS_CURRENT)
                        return &sec->v[i];
        return NULL;
}

/* Make v current, demoting the old current to previous. */
static void set_state(struct secret *sec, cb_version_info *v, uint8_t state, uint64_t t) {
        if (state == CB_VS_CURRENT) {
                cb_version_info *cur = cb_store_current_of(sec);
                if (cur && cur != v) {
                        cur->state = CB_VS_PREVIOUS;
                        cur->changed = t;
                }
        }
        v->state = state;
        v->changed = t;
}

/* Apply one verified record to the index.  The same code runs at load and
 * after a commit, so what a writer sees is what the next reader sees.
 * Returns -EBADMSG (message set) for a record that breaks an invariant. */
int cb_store_apply_record(cb_store *s, const cb_record *rec, size_t body_off, size_t body_len) {
        struct secret *sec = cb_store_find(s, (const char *)rec->name, rec->name_len);
        cb_version_info *v;
        int r;

        if (rec->type == CB_REC_LEAK)
                return cb_store_apply_leak(s, rec);
        if (rec->type == CB_REC_STATE) {
                if (!sec || !(v = cb_store_find_version(sec, rec->version, NULL)))
                        return cb_error_set(-EBADMSG, "state change for a version that does not exist");
                if (v->state == CB_VS_DESTROYED)
                        return cb_error_set(-EBADMSG, "state change for a destroyed version");
                set_state(sec, v, rec->state, rec->time);
                return 0;
        }
        if (!sec && (r = add_secret(s, rec->name, rec->name_len, &sec)) < 0)
                return r;
        if (sec->n && sec->v[sec->n - 1].version >= rec->version)
                return cb_error_set(-EBADMSG, "version %u of '%s' out of order (replayed or reordered)",
                                    rec->version, sec->name);
        if (sec->n >= CB_VERSIONS_MAX)
                return cb_error_set(-EBADMSG, "too many versions of '%s'", sec->name);
        if (sec->n == sec->cap) {
                size_t nc = sec->cap ? sec->cap * 2 : 2;
                cb_version_info *nv = realloc(sec->v, nc * sizeof(*nv));
                if (!nv)
                        return -ENOMEM;
                sec->v = nv;
                struct vloc *nl = realloc(sec->loc, nc * sizeof(*nl));
                if (!nl)
                        return -ENOMEM;
                sec->loc = nl;
                sec->cap = nc;
        }
        v = &sec->v[sec->n];
        memset(v, 0, sizeof(*v));
        v->version = rec->version;
        v->created = rec->created;
        v->state = CB_VS_DESTROYED;
        v->changed = rec->time;
        sec->loc[sec->n] = (struct vloc){ 0, 0 };
        if (rec->type == CB_REC_PUT) {
                cb_meta *m;

                r = cb_meta_decode(rec->meta, rec->meta_len, &m);
                if (r < 0)
                        return r == -ENOMEM ? r : cb_error_set(-EBADMSG, "malformed metadata");
                v->meta = m;
                sec->loc[sec->n] = (struct vloc){ body_off, body_len };
        }
        sec->n++;
        if (rec->type == CB_REC_PUT)
                set_state(sec, v, rec->state, rec->time);
        return 0;
}

/* Verify the chain over p[0..committed) strictly and build the index; then
 * roll forward over p[committed..avail): records there were appended by a
 * writer that died before (or a header copy older than) the commit.  They
 * chain from the committed head under the log MAC key, so only a holder of
 * the KEK can have written them; a complete, valid one is kept, the first
 * torn or invalid one ends the log.  *ret_end, *ret_head and *ret_gen say
 * where the log really ends.  (Rolling forward makes restoring an older
 * header harmless; truncating the log below the committed length is still
 * refused.) */
int cb_store_load_log(cb_store *s, const unsigned char *p, size_t committed, size_t avail, const char *path,
                      size_t *ret_end, unsigned char ret_head[CB_MAC_LEN], uint64_t *ret_gen) {
        unsigned char chain[CB_MAC_LEN];
        uint64_t last_gen = 0;
        size_t off = 0, idx = 0;
        int r;

        cb_log_chain_start(chain, cb_store_key(s, K_LOGMAC), s->hdr.store_id, s->hdr.log_id);
        for (;;) {
                bool tail = off >= committed;
                cb_record rec;
                uint32_t len;

                if (off == committed && sodium_memcmp(chain, s->hdr.log_head, CB_MAC_LEN) != 0)
                        return cb_error_set(CB_E_INTEGRITY, "integrity error: %s: does not match the head "
                                            "committed in the header (replaced by another copy)", path);
                if (off >= avail)
                        break;
                idx++;
                if (avail - off < 4 + CB_MAC_LEN || (len = cb_get_u32_at(p + off)) > CB_RECORD_MAX ||
                    len > avail - off - 4 - CB_MAC_LEN) {
                        if (tail)
                                break; /* torn */
                        return cb_error_set(CB_E_INTEGRITY, "integrity error: %s: record %zu at offset %zu: "
                                            "truncated or bad length", path, idx, off);
                }
                if (!tail && (committed - off < 4 + CB_MAC_LEN || len > committed - off - 4 - CB_MAC_LEN))
                        return cb_error_set(CB_E_INTEGRITY, "integrity error: %s: record %zu at offset %zu: "
                                            "crosses the committed end", path, idx, off);
                unsigned char next[CB_MAC_LEN];
                cb_log_chain_next(next, cb_store_key(s, K_LOGMAC), chain, p + off, 4 + (size_t)len);
                if (sodium_memcmp(next, p + off + 4 + len, CB_MAC_LEN) != 0) {
                        if (tail)
                                break;
                        return cb_error_set(CB_E_INTEGRITY, "integrity error: %s: record %zu at offset %zu: MAC "
                                            "mismatch (modified, reordered or replaced)", path, idx, off);
                }
                if (cb_record_parse(p + off + 4, len, &rec) < 0)
                        return cb_error_set(CB_E_INTEGRITY, "integrity error: %s: record %zu at offset %zu: "
                                            "malformed", path, idx, off);
                if (rec.generation < last_gen || (!tail && rec.generation > s->hdr.generation) ||
                    (tail && rec.generation <= s->hdr.generation))
                        return cb_error_set(CB_E_INTEGRITY, "integrity error: %s: record %zu: generation %llu out "
                                            "of order", path, idx, (unsigned long long)rec.generation);
                /* An interrupted write leaves exactly one commit past the
                 * header.  Anything later means the header is older than the
                 * log: an old header put back (with the log cut to taste)
                 * would otherwise roll the store back to a chosen point. */
                if (tail && rec.generation != s->hdr.generation + 1)
                        return cb_error_set(CB_E_INTEGRITY, "integrity error: %s: holds generation %llu but the "
                                            "header commits only %llu: the header is older than the log (restored "
                                            "from a copy?)", path, (unsigned long long)rec.generation,
                                            (unsigned long long)s->hdr.generation);
                last_gen = rec.generation;
                r = cb_store_apply_record(s, &rec, off + 4, len);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return cb_error_set(CB_E_INTEGRITY, "integrity error: %s: record %zu at offset %zu: %s",
                                            path, idx, off, cb_error_last());
                memcpy(chain, next, CB_MAC_LEN);
                off += 4 + (size_t)len + CB_MAC_LEN;
        }
        for (size_t k = 0; k < s->nsec; k++) {
                size_t cur = 0;
                for (size_t i = 0; i < s->sec[k].n; i++)
                        cur += s->sec[k].v[i].state == CB_VS_CURRENT;
                /* None only for a deleted secret: every version destroyed. */
                if (cur != 1 && !(cur == 0 && cb_store_sec_deleted(&s->sec[k])))
                        return cb_error_set(CB_E_INTEGRITY, "integrity error: %s: secret '%s' has %zu current "
                                            "versions", path, s->sec[k].name, cur);
        }
        *ret_end = off;
        memcpy(ret_head, chain, CB_MAC_LEN);
        *ret_gen = last_gen > s->hdr.generation ? last_gen : s->hdr.generation;
        return 0;
}

/* ---- open / create ---------------------------------------------------- */

static int open_state_dir(const char *dir, int create, int *ret_fd) {
        struct stat st;
        int fd;

        if (create && mkdir(dir, 0700) < 0 && errno != EEXIST)
                return cb_error_set(-errno, "cannot create state directory '%s': %s", dir, strerror(errno));
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                int e = errno;
                /* With O_DIRECTORY a symlink fails as ENOTDIR or ELOOP. */
                if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode))
                        return cb_error_set(-ELOOP, "state directory '%s' is a symlink: refusing it", dir);
                return cb_error_set(-e, "state directory '%s': %s", dir, strerror(e));
        }
        if (fstat(fd, &st) < 0 || st.st_uid != geteuid() || (st.st_mode & 077)) {
                close(fd);
                return cb_error_set(-EPERM, "state directory '%s' must be owned by uid %u and have mode 0700", dir,
                                    (unsigned)geteuid());
        }
        *ret_fd = fd;
        return 0;
}

static void derive_subkeys(cb_store *s) {
        unsigned char *k = cb_secbuf_data(s->keys);

        crypto_kdf_derive_from_key(k + K_DEKWRAP, 32, 1, "cbstorek", k + K_KEK);
        crypto_kdf_derive_from_key(k + K_HDRMAC, 32, 2, "cbstorek", k + K_KEK);
        crypto_kdf_derive_from_key(k + K_LOGMAC, 32, 3, "cbstorek", k + K_KEK);
}

static int kek_aad(cb_buf *aad, const unsigned char *store_id, uint8_t kind, const unsigned char *params, size_t n) {
        int r;

        if ((r = cb_buf_put(aad, "cbkek1", 6)) < 0 || (r = cb_buf_put(aad, store_id, CB_STORE_ID_LEN)) < 0 ||
            (r = cb_buf_put_u8(aad, kind)) < 0 || (r = cb_buf_put_lv(aad, params, n)) < 0)
                return r;
        return 0;
}

static cb_store *store_new(void) {
        cb_store *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        s->dirfd = s->logfd = -1;
        pthread_rwlock_init(&s->mem, NULL);
        pthread_mutexattr_t ma;
        pthread_mutexattr_init(&ma);
        pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
        pthread_mutex_init(&s->wr, &ma);
        pthread_mutexattr_destroy(&ma);
        s->keys = cb_secbuf_new(KEYS_LEN);
        if (!s->keys) {
                pthread_mutex_destroy(&s->wr);
                pthread_rwlock_destroy(&s->mem);
                free(s);
                return NULL;
        }
        randombytes_buf(s->htkey, sizeof(s->htkey));
        return s;
}

void cb_store_close(cb_store *s) {
        if (!s)
                return;
        cb_store_free_index(s);
        cb_buf_free(&s->log);
        free(s->hdr_bytes);
        cb_secbuf_free(s->keys);
        cb_unlock_spec_free(s->rollback_spec);
        if (s->logfd >= 0)
                close(s->logfd);
        if (s->dirfd >= 0)
                close(s->dirfd);
        free(s->dir);
        pthread_rwlock_destroy(&s->mem);
        pthread_mutex_destroy(&s->wr);
        free(s);
}

void cb_store_read_lock(const cb_store *s) {
        pthread_rwlock_rdlock(&((cb_store *)s)->mem);
}

void cb_store_read_unlock(const cb_store *s) {
        pthread_rwlock_unlock(&((cb_store *)s)->mem);
}

void cb_store_write_lock(cb_store *s) {
        pthread_mutex_lock(&s->wr);
}

void cb_store_write_unlock(cb_store *s) {
        pthread_mutex_unlock(&s->wr);
}

int cb_store_create(const char *dir, const cb_unlock_spec *spec) {
        const cb_unlock_provider *prov = cb_unlock_provider_get(spec->kind);
        cb_buf params = CB_BUF_INIT, slots = CB_BUF_INIT, aad = CB_BUF_INIT, hdr = CB_BUF_INIT;
        unsigned char nonce[CB_NONCE_LEN], wrapped[CB_WRAPPED_KEY_LEN];
        cb_secbuf *wrapkey = NULL;
        cb_store *s = NULL;
        int lockfd = -1, fd, r;

        if (sodium_init() < 0)
                return cb_error_set(-EIO, "libsodium failed to initialise");
        if (!prov)
                return cb_error_set(-EOPNOTSUPP, "unlock provider '%s' is not available in this build",
                                    cb_unlock_kind_name(spec->kind));
        s = store_new();
        if (!s)
                return -ENOMEM;
        r = open_state_dir(dir, 1, &s->dirfd);
        if (r < 0)
                goto out;
        lockfd = cb_lock_dir(s->dirfd, 1);
        if (lockfd < 0) {
                r = cb_error_set(lockfd, "cannot lock '%s': %s", dir, strerror(-lockfd));
                goto out;
        }
        if (faccessat(s->dirfd, "header", F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                r = cb_error_set(-EEXIST, "a store already exists in '%s'; refusing to overwrite it", dir);
                goto out;
        }
        randombytes_buf(s->hdr.store_id, CB_STORE_ID_LEN);
        randombytes_buf(s->hdr.log_id, CB_LOG_ID_LEN);
        randombytes_buf(cb_secbuf_data(s->keys) + K_KEK, CB_KEK_LEN);
        derive_subkeys(s);
        r = prov->enroll(spec, s->hdr.store_id, &params, &wrapkey);
        if (r < 0)
                goto out;
        if ((r = kek_aad(&aad, s->hdr.store_id, (uint8_t)spec->kind, params.data, params.len)) < 0)
                goto out;
        randombytes_buf(nonce, sizeof(nonce));
        crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped, NULL, cb_store_key(s, K_KEK), CB_KEK_LEN, aad.data, aad.len, NULL,
                                                   nonce, cb_secbuf_data(wrapkey));
        if ((r = cb_header_put_slot(&slots, (uint8_t)spec->kind, params.data, params.len, nonce, wrapped)) < 0)
                goto out;
        s->hdr.created = cb_store_now();
        s->hdr.nslots = 1;
        s->hdr.generation = 1;
        s->hdr.log_len = 0;
        cb_log_chain_start(s->hdr.log_head, cb_store_key(s, K_LOGMAC), s->hdr.store_id, s->hdr.log_id);
        if ((r = cb_header_build(&hdr, &s->hdr, slots.data, slots.len, cb_store_key(s, K_HDRMAC))) < 0)
                goto out;
        cb_store_log_name(s->logname, s->hdr.log_id);
        fd = openat(s->dirfd, s->logname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || fsync(fd) < 0) {
                r = cb_error_set(-errno, "cannot create '%s/%s': %s", dir, s->logname, strerror(errno));
                if (fd >= 0)
                        close(fd);
                goto out;
        }
        close(fd);
        r = cb_atomic_replace(s->dirfd, "header", hdr.data, hdr.len);
        if (r < 0) {
                (void)unlinkat(s->dirfd, s->logname, 0);
                r = cb_error_set(r, "cannot write '%s/header': %s", dir, strerror(-r));
        }
out:
        if (lockfd >= 0)
                close(lockfd);
        cb_wipe(wrapped, sizeof(wrapped));
        cb_secbuf_free(wrapkey);
        cb_buf_free(&params);
        cb_buf_free(&slots);
        cb_buf_free(&aad);
        cb_buf_free(&hdr);
        cb_store_close(s);
        return r;
}

/* Unwrap the KEK through the slot matching spec's provider. */
static int unlock(cb_store *s, const cb_unlock_spec *spec, const char *hdrpath) {
        const cb_unlock_provider *prov = cb_unlock_provider_get(spec->kind);
        cb_buf aad = CB_BUF_INIT;
        cb_secbuf *wrapkey = NULL;
        const cb_hdr_slot *slot = NULL;
        int r;

        for (size_t i = 0; i < s->hdr.nslots; i++)
                if (s->hdr.slots[i].kind == spec->kind)
                        slot = &s->hdr.slots[i];
        if (!slot) {
                char kinds[128] = "";
                for (size_t i = 0; i < s->hdr.nslots; i++)
                        snprintf(kinds + strlen(kinds), sizeof(kinds) - strlen(kinds), "%s%s", i ? ", " : "",
                                 cb_unlock_kind_name((enum cb_unlock_kind)s->hdr.slots[i].kind));
                return cb_error_set(-ENOKEY, "%s: the store has no '%s' unlock slot (it has: %s)", hdrpath,
                                    cb_unlock_kind_name(spec->kind), kinds);
        }
        if (!prov)
                return cb_error_set(-EOPNOTSUPP, "the store needs the '%s' unlock provider, which is not available "
                                    "in this build", cb_unlock_kind_name(spec->kind));
        r = prov->recover(spec, s->hdr.store_id, slot->params, slot->params_len, &wrapkey);
        if (r < 0)
                return r;
        r = kek_aad(&aad, s->hdr.store_id, slot->kind, slot->params, slot->params_len);
        if (r >= 0 && crypto_aead_xchacha20poly1305_ietf_decrypt(cb_secbuf_data(s->keys) + K_KEK, NULL, NULL,
                                                                 slot->wrapped, CB_WRAPPED_KEY_LEN, aad.data,
                                                                 aad.len, slot->nonce, cb_secbuf_data(wrapkey)) != 0)
                r = cb_error_set(CB_E_BADKEY, "wrong %s: it does not unlock the store in '%s'",
                                 spec->kind == CB_UNLOCK_PASSPHRASE ? "passphrase" : "key", s->dir);
        cb_secbuf_free(wrapkey);
        cb_buf_free(&aad);
        if (r < 0)
                return r;
        derive_subkeys(s);
        if (s->hdr_len >= CB_MAC_LEN * 2) {
                unsigned char mac[CB_MAC_LEN];
                crypto_generichash(mac, sizeof(mac), s->hdr_bytes, s->hdr.mac_off, cb_store_key(s, K_HDRMAC), 32);
                if (sodium_memcmp(mac, s->hdr_bytes + s->hdr.mac_off, CB_MAC_LEN) != 0)
                        return cb_error_set(CB_E_INTEGRITY, "integrity error: %s: MAC mismatch (modified)", hdrpath);
        }
        if (prov->sync_generation) {
                s->rollback_spec = cb_unlock_spec_dup(spec);
                if (!s->rollback_spec)
                        return -ENOMEM;
                s->rollback_prov = prov;
        }
        return 0;
}

int cb_store_sync_generation(cb_store *s, uint64_t *ret_counter_gen) {
        if (!s->rollback_prov)
                return 0;
        for (size_t i = 0; i < s->hdr.nslots; i++)
                if (s->hdr.slots[i].kind == s->rollback_spec->kind)
                        return s->rollback_prov->sync_generation(s->rollback_spec, s->hdr.slots[i].params,
                                                                 s->hdr.slots[i].params_len, s->hdr.generation,
                                                                 ret_counter_gen);
        return cb_error_set(-ENOKEY, "the store lost its '%s' slot", cb_unlock_kind_name(s->rollback_spec->kind));
}

/* Wipe and unlink log files other than the current one (left by a compaction
 * that was interrupted, or replaced by one).  Caller holds the exclusive
 * lock.  The directory is synced before the first wipe, so the header that
 * names the current log is durable before an older log is destroyed.  A
 * file that cannot be wiped is left in place (retried at the next open) and
 * reported: -EIO. */
int cb_store_remove_stale_logs(cb_store *s) {
        /* A fresh open, not dup(): a dup shares the directory offset, so a
         * second scan through it would see nothing. */
        int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        bool synced = false, removed = false, failed = false;
        DIR *d;
        struct dirent *e;

        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -ENOMEM;
        }
        while ((e = readdir(d))) {
                static const unsigned char zero[4096];
                struct stat st;
                bool wiped = false;
                int lf;

                if (strncmp(e->d_name, "log-", 4) != 0 || strcmp(e->d_name, s->logname) == 0)
                        continue;
                if (!synced) {
                        if (cb_fsync_dir(s->dirfd) < 0) {
                                failed = true;
                                break;
                        }
                        synced = true;
                }
                lf = openat(s->dirfd, e->d_name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
                if (lf >= 0 && fstat(lf, &st) == 0 && S_ISREG(st.st_mode)) {
                        wiped = true;
                        for (off_t o = 0; o < st.st_size && wiped; o += (off_t)sizeof(zero))
                                wiped = cb_pwrite_all(lf, zero, sizeof(zero), o) == 0;
                        wiped = wiped && fsync(lf) == 0;
                }
                if (lf >= 0)
                        close(lf);
                if (wiped && unlinkat(s->dirfd, e->d_name, 0) == 0)
                        removed = true;
                else
                        failed = true;
        }
        closedir(d);
        if (removed && cb_fsync_dir(s->dirfd) < 0)
                failed = true;
        return failed ? -EIO : 0;
}

int cb_store_open(const char *dir, const cb_unlock_spec *spec, cb_store **ret) {
        char hdrpath[4096], logpath[4096];
        unsigned char head[CB_MAC_LEN];
        unsigned char *logp = NULL;
        uint64_t gen = 0;
        size_t end = 0;
        size_t loglen = 0;
        cb_store *s;
        int lockfd = -1, r;

        if (sodium_init() < 0)
                return cb_error_set(-EIO, "libsodium failed to initialise");
        s = store_new();
        if (!s)
                return -ENOMEM;
        s->dir = strdup(dir);
        if (!s->dir) {
                r = -ENOMEM;
                goto out;
        }
        snprintf(hdrpath, sizeof(hdrpath), "%s/header", dir);
        r = open_state_dir(dir, 0, &s->dirfd);
        if (r < 0)
                goto out;
        /* Exclusive: open finishes recovery of an interrupted write. */
        lockfd = cb_lock_dir(s->dirfd, 1);
        if (lockfd < 0) {
                r = cb_error_set(lockfd, "cannot lock '%s': %s", dir, strerror(-lockfd));
                goto out;
        }
        /* The files in it: regular, ours, and readable by no one else (a
         * group- or world-accessible header or log was put there by hand). */
        for (int i = 0; i < 2; i++) {
                const char *f = i ? "lock" : "header";
                struct stat fst;

                if (fstatat(s->dirfd, f, &fst, AT_SYMLINK_NOFOLLOW) < 0)
                        continue; /* absent: reported below (header) or created (lock) */
                if (!S_ISREG(fst.st_mode) || fst.st_uid != geteuid() || (fst.st_mode & 077)) {
                        r = cb_error_set(-EPERM, "%s/%s must be a regular file owned by uid %u with mode 0600 "
                                         "(it is mode %04o, uid %u): refusing the store", dir, f,
                                         (unsigned)geteuid(), (unsigned)(fst.st_mode & 07777), (unsigned)fst.st_uid);
                        goto out;
                }
        }
        cb_store_note_header(s); /* before the read: a swap in between shows as a change */
        r = cb_read_file_at(s->dirfd, "header", CB_HEADER_MAX, &s->hdr_bytes, &s->hdr_len);
        if (r == -ENOENT) {
                r = cb_error_set(r, "no store in '%s' (create one with 'credbroker init')", dir);
                goto out;
        }
        if (r == -EFBIG)
                r = cb_error_set(CB_E_INTEGRITY, "integrity error: %s: too large", hdrpath);
        if (r < 0) {
                r = cb_error_set(r, "%s: %s", hdrpath, strerror(-r));
                goto out;
        }
        r = cb_header_parse(s->hdr_bytes, s->hdr_len, &s->hdr);
        if (r < 0) {
                r = cb_error_set(r, "%s%s: %s", r == CB_E_INTEGRITY ? "integrity error: " : "", hdrpath,
                                 cb_error_last());
                goto out;
        }
        r = unlock(s, spec, hdrpath);
        if (r < 0)
                goto out;
        cb_store_log_name(s->logname, s->hdr.log_id);
        snprintf(logpath, sizeof(logpath), "%s/%s", dir, s->logname);
        s->logfd = openat(s->dirfd, s->logname, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (s->logfd < 0) {
                r = cb_error_set(errno == ENOENT ? CB_E_INTEGRITY : -errno, "%s%s: %s",
                                 errno == ENOENT ? "integrity error: " : "", logpath, strerror(errno));
                goto out;
        }
        {
                struct stat lst;
                if (fstat(s->logfd, &lst) < 0 || !S_ISREG(lst.st_mode) || lst.st_uid != geteuid() ||
                    (lst.st_mode & 077)) {
                        r = cb_error_set(-EPERM, "%s must be a regular file owned by uid %u with mode 0600: "
                                         "refusing the store", logpath, (unsigned)geteuid());
                        goto out;
                }
        }
        r = cb_read_file_at(s->dirfd, s->logname, CB_LOG_MAX, &logp, &loglen);
        if (r < 0) {
                r = cb_error_set(r == -EFBIG ? CB_E_INTEGRITY : r, "%s: %s", logpath, strerror(-r));
                goto out;
        }
        if (loglen < s->hdr.log_len) {
                r = cb_error_set(CB_E_INTEGRITY, "integrity error: %s: truncated (%zu bytes, %llu committed)",
                                 logpath, loglen, (unsigned long long)s->hdr.log_len);
                goto out;
        }
        r = cb_store_load_log(s, logp, (size_t)s->hdr.log_len, loglen, logpath, &end, head, &gen);
        if (r < 0)
                goto out;
        /* Adopt the buffer we read instead of copying it. */
        s->log = (cb_buf){ logp, end, loglen + 1 };
        logp = NULL;
        if (loglen > end && (ftruncate(s->logfd, (off_t)end) < 0 || fsync(s->logfd) < 0)) {
                r = cb_error_set(-errno, "%s: cannot drop a torn tail: %s", logpath, strerror(errno));
                goto out;
        }
        /* Anti-rollback (tpm2), before anything is written: the committed
         * generation must not be older than the provider's counter (a
         * counter behind it is caught up).  The counter never counts an
         * uncommitted tail, so this is checked before the tail is rolled
         * forward, and an older copy is refused untouched.  An operator who
         * restored a copy on purpose opens with accept_rollback: the store
         * opens without writing anything, and only
         * cb_store_accept_rollback, after the caller verified the copy,
         * raises the generation to the counter's. */
        {
                uint64_t counter_gen = 0;

                r = cb_store_sync_generation(s, &counter_gen);
                if (r == CB_E_ROLLBACK && spec->accept_rollback && counter_gen > s->hdr.generation) {
                        s->rollback_pending = true;
                        s->pending_end = end;
                        memcpy(s->pending_head, head, CB_MAC_LEN);
                        r = 0;
                }
                if (r < 0)
                        goto out;
        }
        if (end > s->hdr.log_len && !s->rollback_pending) {
                /* Commit what was rolled forward so every later reader agrees.
                 * If that cannot be written (disk full), the recovered state is
                 * still authentic: serve reads, refuse writes until a reopen. */
                r = cb_store_write_header(s, gen, s->hdr.log_id, end, head);
                if (r < 0 && s->broken) {
                        r = cb_error_set(r, "cannot complete recovery of '%s': %s", dir, cb_error_last());
                        goto out;
                }
                if (r < 0) {
                        snprintf(s->readonly_why, sizeof(s->readonly_why), "recovering an interrupted write "
                                 "needs a header commit that failed (%s); free space and reopen", strerror(-r));
                        r = 0;
                }
        }
        if (!s->rollback_pending)
                (void)cb_store_remove_stale_logs(s); /* a failure is retried at the next open */
        *ret = s;
        s = NULL;
out:
        free(logp);
        if (lockfd >= 0)
                close(lockfd);
        cb_store_close(s);
        return r;
}
