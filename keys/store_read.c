/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's read path: decrypting a version (unwrap its DEK, open the
 * value), lookups, listings and the offline verification.  Nothing here
 * writes to disk.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "error.h"
#include "store_internal.h"

int cb_store_dek_aad(cb_buf *aad, const cb_store *s, const char *name, uint32_t version) {
        int r;

        if ((r = cb_buf_put(aad, "cbdek1", 6)) < 0 || (r = cb_buf_put(aad, s->hdr.store_id, CB_STORE_ID_LEN)) < 0 ||
            (r = cb_buf_put_lv(aad, name, strlen(name))) < 0 || (r = cb_buf_put_u32(aad, version)) < 0)
                return r;
        return 0;
}

int cb_store_val_aad(cb_buf *aad, const cb_store *s, const char *name, uint32_t version, const unsigned char *meta,
                     size_t meta_len) {
        int r;

        if ((r = cb_buf_put(aad, "cbval1", 6)) < 0 || (r = cb_buf_put(aad, s->hdr.store_id, CB_STORE_ID_LEN)) < 0 ||
            (r = cb_buf_put_lv(aad, name, strlen(name))) < 0 || (r = cb_buf_put_u32(aad, version)) < 0 ||
            (r = cb_buf_put_lv(aad, meta, meta_len)) < 0)
                return r;
        return 0;
}

/* Decrypt one version: unwrap its DEK into a scratch buffer of this call's
 * own (sodium_malloc'd, wiped and freed on every path: concurrent readers
 * never share one), then open the value into a new secret buffer (ret !=
 * NULL) or into the scratch buffer only to check it (ret == NULL, for
 * verify).  The caller holds the read side or the writers' mutex. */
static int decrypt_version(const cb_store *s, const struct secret *sec, size_t idx, cb_secbuf **ret) {
        const struct vloc *loc = &sec->loc[idx];
        uint32_t version = sec->v[idx].version;
        unsigned char *dek, *plain;
        cb_secbuf *scratch = NULL;
        cb_buf aad = CB_BUF_INIT;
        cb_secbuf *val = NULL;
        cb_record rec;
        int r;

        if (cb_record_parse(s->log.data + loc->body_off, loc->body_len, &rec) < 0 || rec.type != CB_REC_PUT ||
            rec.ct_len < ABYTES)
                return cb_error_set(CB_E_INTEGRITY, "integrity error: record of '%s' version %u unreadable",
                                    sec->name, version);
        scratch = cb_secbuf_new(ret ? 32 : 32 + rec.ct_len - ABYTES);
        if (!scratch)
                return -ENOMEM;
        dek = cb_secbuf_data(scratch);
        plain = dek + 32;
        if (ret) {
                val = cb_secbuf_new(rec.ct_len - ABYTES);
                if (!val) {
                        cb_secbuf_free(scratch);
                        return -ENOMEM;
                }
                plain = cb_secbuf_data(val);
        }
        if ((r = cb_store_dek_aad(&aad, s, sec->name, version)) < 0)
                goto out;
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(dek, NULL, NULL, rec.wrapped_dek, CB_WRAPPED_KEY_LEN, aad.data,
                                                       aad.len, rec.dek_nonce, cb_store_key(s, K_DEKWRAP)) != 0) {
                r = cb_error_set(CB_E_INTEGRITY, "integrity error: the key of '%s' version %u does not unwrap",
                                 sec->name, version);
                goto out;
        }
        cb_buf_reset(&aad);
        if ((r = cb_store_val_aad(&aad, s, sec->name, version, rec.meta, rec.meta_len)) < 0)
                goto out;
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, rec.ct, rec.ct_len, aad.data, aad.len,
                                                       rec.val_nonce, dek) != 0) {
                r = cb_error_set(CB_E_INTEGRITY, "integrity error: the value of '%s' version %u does not decrypt",
                                 sec->name, version);
                goto out;
        }
        if (ret) {
                *ret = val;
                val = NULL;
        }
        r = 0;
out:
        cb_wipe(dek, ret ? 32 : 32 + rec.ct_len - ABYTES);
        cb_secbuf_free(scratch); /* wipes too */
        cb_buf_free(&aad);
        cb_secbuf_free(val);
        return r;
}

int cb_store_get(cb_store *s, const char *name, uint32_t version, bool allow_inactive, cb_secbuf **ret_value,
                 uint32_t *ret_version, const cb_meta **ret_meta) {
        return cb_store_get_ex(s, name, version, allow_inactive, 0, ret_value, ret_version, ret_meta);
}

int cb_store_get_ex(cb_store *s, const char *name, uint32_t version, bool allow_inactive, unsigned flags,
                    cb_secbuf **ret_value, uint32_t *ret_version, const cb_meta **ret_meta) {
        struct secret *sec;
        cb_version_info *v;
        size_t idx;
        int r;

        if (cb_store_name_check(name, flags & CB_STORE_INTERNAL) < 0)
                return -EINVAL;
        if ((r = cb_store_check_fresh(s)) < 0)
                return r;
        sec = cb_store_find(s, name, strlen(name));
        if (!sec)
                return cb_error_set(-ENOENT, "no secret named '%s'", name);
        if (version == 0) {
                v = cb_store_current_of(sec);
                if (!v && cb_store_sec_deleted(sec))
                        return cb_error_set(-ENOENT, "secret '%s' was deleted", name);
                if (!v || !cb_store_find_version(sec, v->version, &idx))
                        return cb_error_set(CB_E_INTEGRITY, "secret '%s' has no current version", name);
        } else if (!(v = cb_store_find_version(sec, version, &idx))) {
                return cb_error_set(-ENOENT, "secret '%s' has no version %u", name, version);
        }
        if (v->state == CB_VS_DESTROYED)
                return cb_error_set(-EKEYREVOKED, "version %u of '%s' is destroyed", v->version, name);
        if (!allow_inactive && (v->state == CB_VS_PENDING || v->state == CB_VS_DISABLED))
                return cb_error_set(-EPERM, "version %u of '%s' is %s", v->version, name,
                                    cb_version_state_name(v->state));
        if (v->leaked && !(flags & CB_STORE_LEAKED_OK))
                return cb_error_set(-EKEYREVOKED, "version %u of '%s' leaked: it is never served", v->version, name);
        r = decrypt_version(s, sec, idx, ret_value);
        if (r < 0)
                return r;
        if (ret_version)
                *ret_version = v->version;
        if (ret_meta)
                *ret_meta = v->meta;
        return 0;
}

static int cmp_names(const void *a, const void *b) {
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int cb_store_names(cb_store *s, const char ***ret_names, size_t *ret_n) {
        const char **v = malloc((s->nsec ? s->nsec : 1) * sizeof(*v));
        size_t n = 0;

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < s->nsec; i++)
                if (s->sec[i].name[0] != CB_INTERNAL_NAME_PREFIX && /* store.h: never listed */
                    !cb_store_sec_deleted(&s->sec[i]))
                        v[n++] = s->sec[i].name;
        qsort(v, n, sizeof(*v), cmp_names);
        *ret_names = v;
        *ret_n = n;
        return 0;
}

int cb_store_versions(cb_store *s, const char *name, const cb_version_info **ret, size_t *ret_n) {
        return cb_store_versions_ex(s, name, 0, ret, ret_n);
}

int cb_store_versions_ex(cb_store *s, const char *name, unsigned flags, const cb_version_info **ret, size_t *ret_n) {
        struct secret *sec;

        if (cb_store_name_check(name, flags) < 0)
                return cb_error_set(-ENOENT, "no secret named '%.128s'", name ? name : "");
        sec = cb_store_find(s, name, strlen(name));
        if (!sec)
                return cb_error_set(-ENOENT, "no secret named '%s'", name);
        *ret = sec->v;
        *ret_n = sec->n;
        return 0;
}

size_t cb_store_count(const cb_store *s) {
        size_t n = 0;

        for (size_t i = 0; i < s->nsec; i++)
                n += s->sec[i].name[0] != CB_INTERNAL_NAME_PREFIX && !cb_store_sec_deleted(&s->sec[i]);
        return n;
}

uint64_t cb_store_generation(const cb_store *s) {
        return s->hdr.generation;
}

void cb_store_id_hex(const cb_store *s, char out[33]) {
        sodium_bin2hex(out, 33, s->hdr.store_id, CB_STORE_ID_LEN);
}

int cb_store_verify(cb_store *s, size_t *ret_secrets, size_t *ret_versions) {
        size_t versions = 0, uncounted = 0; /* internal or deleted */

        for (size_t k = 0; k < s->nsec; k++) {
                struct secret *sec = &s->sec[k];
                size_t cur = 0;

                for (size_t i = 0; i < sec->n; i++) {
                        int r;

                        cur += sec->v[i].state == CB_VS_CURRENT;
                        if (sec->v[i].state == CB_VS_DESTROYED)
                                continue;
                        r = decrypt_version(s, sec, i, NULL);
                        if (r < 0)
                                return r;
                        versions += sec->name[0] != CB_INTERNAL_NAME_PREFIX; /* verified, not counted */
                }
                if (cur != 1 && !(cur == 0 && cb_store_sec_deleted(sec)))
                        return cb_error_set(CB_E_INTEGRITY, "integrity error: secret '%s' has %zu current versions",
                                            sec->name, cur);
        }
        for (size_t k = 0; k < s->nsec; k++)
                uncounted += s->sec[k].name[0] == CB_INTERNAL_NAME_PREFIX || cb_store_sec_deleted(&s->sec[k]);
        if (ret_secrets)
                *ret_secrets = s->nsec - uncounted;
        if (ret_versions)
                *ret_versions = versions;
        return 0;
}
