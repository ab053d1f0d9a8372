/* SPDX-License-Identifier: Apache-2.0 */
/* The broker's provisioning keys in the store, and importing a blob.  See
 * provision.h for the layout and the rules. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "error.h"
#include "provision.h"

#define LABEL_ID "key_id="
#define LABEL_PK "public_key="

const char *cb_prov_refusal_code(enum cb_prov_refusal r) {
        switch (r) {
        case CB_PROV_OK: return "ok";
        case CB_PROV_MALFORMED: return "malformed";
        case CB_PROV_UNKNOWN_KEY: return "unknown_key";
        case CB_PROV_TAMPERED: return "tampered";
        case CB_PROV_EXPIRED: return "expired";
        case CB_PROV_FUTURE: return "future";
        case CB_PROV_NAME_MISMATCH: return "name_mismatch";
        case CB_PROV_REPLAY: return "replay";
        case CB_PROV_STORE: return "store_failed";
        }
        return "?";
}

/* Fill id and pk from a version's labels; false if they are missing or
 * disagree (the id is a hash of the key). */
static bool key_from_meta(const cb_meta *m, cb_prov_key_info *k) {
        bool have_id = false, have_pk = false;
        unsigned char id[CB_PROV_KEY_ID_LEN];

        for (size_t i = 0; m && i < m->labels.n; i++) {
                const char *l = m->labels.v[i];

                if (strncmp(l, LABEL_ID, strlen(LABEL_ID)) == 0)
                        have_id = cb_prov_key_id_parse(l + strlen(LABEL_ID), k->key_id) == 0;
                else if (strncmp(l, LABEL_PK, strlen(LABEL_PK)) == 0)
                        have_pk = cb_prov_pk_parse(l + strlen(LABEL_PK), k->pk) == 0;
        }
        if (!have_id || !have_pk)
                return false;
        cb_prov_key_id(k->pk, id);
        return sodium_memcmp(id, k->key_id, sizeof(id)) == 0;
}

int cb_prov_keys_list(cb_store *s, cb_prov_key_info **ret, size_t *ret_n) {
        const cb_version_info *vi;
        cb_prov_key_info *out;
        size_t n;
        int r;

        r = cb_store_versions_ex(s, CB_PROV_KEYS_NAME, CB_STORE_INTERNAL, &vi, &n);
        if (r == -ENOENT) {
                cb_error_clear();
                n = 0;
        } else if (r < 0) {
                return r;
        }
        out = calloc(n ? n : 1, sizeof(*out));
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                out[i].version = vi[i].version;
                out[i].state = vi[i].state;
                out[i].created = vi[i].created;
                if (vi[i].state != CB_VS_DESTROYED) {
                        out[i].known = key_from_meta(vi[i].meta, &out[i]);
                        if (!out[i].known) {
                                free(out);
                                return cb_error_set(CB_E_INTEGRITY, "provisioning key version %u has no valid "
                                                    "key id / public key labels", vi[i].version);
                        }
                }
        }
        *ret = out;
        *ret_n = n;
        return 0;
}

int cb_prov_keys_current(cb_store *s, cb_prov_key_info *ret) {
        cb_prov_key_info *keys;
        size_t n;
        int r = cb_prov_keys_list(s, &keys, &n);

        if (r < 0)
                return r;
        r = cb_error_set(-ENOENT, "the store has no provisioning key yet");
        for (size_t i = 0; i < n; i++)
                if (keys[i].state == CB_VS_CURRENT) {
                        *ret = keys[i];
                        cb_error_clear();
                        r = 0;
                }
        free(keys);
        return r;
}

int cb_prov_keys_rotate(cb_store *s, cb_prov_key_info *ret_new) {
        unsigned char pk[crypto_box_PUBLICKEYBYTES], id[CB_PROV_KEY_ID_LEN];
        char pktext[CB_PROV_PK_TEXT_LEN], idhex[CB_PROV_KEY_ID_HEX];
        char lid[sizeof(LABEL_ID) + CB_PROV_KEY_ID_HEX], lpk[sizeof(LABEL_PK) + CB_PROV_PK_TEXT_LEN];
        char *labels[2] = { lid, lpk };
        cb_meta m = { .labels = { labels, 2 } };
        cb_secbuf *sk = cb_secbuf_new(crypto_box_SECRETKEYBYTES);
        uint32_t version;
        int r;

        if (!sk)
                return -ENOMEM;
        crypto_box_keypair(pk, cb_secbuf_data(sk));
        cb_prov_key_id(pk, id);
        cb_prov_key_id_hex(id, idhex);
        cb_prov_pk_format(pk, pktext);
        snprintf(lid, sizeof(lid), "%s%s", LABEL_ID, idhex);
        snprintf(lpk, sizeof(lpk), "%s%s", LABEL_PK, pktext);
        r = cb_store_put_ex(s, CB_PROV_KEYS_NAME, cb_secbuf_data(sk), cb_secbuf_len(sk), &m, CB_VS_CURRENT, 0,
                            CB_STORE_INTERNAL, &version);
        cb_secbuf_free(sk);
        if (r < 0)
                return r;
        if (ret_new) {
                memset(ret_new, 0, sizeof(*ret_new));
                ret_new->version = version;
                ret_new->state = CB_VS_CURRENT;
                ret_new->known = true;
                memcpy(ret_new->key_id, id, sizeof(id));
                memcpy(ret_new->pk, pk, sizeof(pk));
        }
        return 0;
}

int cb_prov_keys_ensure(cb_store *s, bool *ret_created) {
        cb_prov_key_info k;
        int r = cb_prov_keys_current(s, &k);

        if (ret_created)
                *ret_created = false;
        if (r != -ENOENT)
                return r;
        cb_error_clear();
        r = cb_prov_keys_rotate(s, NULL);
        if (r == 0 && ret_created)
                *ret_created = true;
        return r;
}

int cb_prov_keys_retire(cb_store *s, const unsigned char key_id[CB_PROV_KEY_ID_LEN]) {
        cb_prov_key_info *keys;
        char hex[CB_PROV_KEY_ID_HEX];
        size_t n;
        int r = cb_prov_keys_list(s, &keys, &n);

        if (r < 0)
                return r;
        cb_prov_key_id_hex(key_id, hex);
        r = cb_error_set(-ENOENT, "no provisioning key %s (unknown or already retired)", hex);
        for (size_t i = 0; i < n; i++) {
                if (!keys[i].known || sodium_memcmp(keys[i].key_id, key_id, CB_PROV_KEY_ID_LEN) != 0)
                        continue;
                if (keys[i].state == CB_VS_CURRENT)
                        r = cb_error_set(-EBUSY, "key %s is the current provisioning key: 'pubkey --rotate' "
                                         "first, then retire it", hex);
                else
                        r = cb_store_destroy_ex(s, CB_PROV_KEYS_NAME, keys[i].version, CB_STORE_INTERNAL);
                break;
        }
        free(keys);
        return r;
}

/* The private key of an accepted (current or previous) key with this id. */
static int load_key(cb_store *s, const unsigned char key_id[CB_PROV_KEY_ID_LEN],
                    unsigned char pk[crypto_box_PUBLICKEYBYTES], cb_secbuf **ret_sk) {
        unsigned char check[crypto_box_PUBLICKEYBYTES];
        cb_prov_key_info *keys;
        char hex[CB_PROV_KEY_ID_HEX];
        cb_secbuf *sk = NULL;
        size_t n;
        int r = cb_prov_keys_list(s, &keys, &n);

        if (r < 0)
                return r;
        cb_prov_key_id_hex(key_id, hex);
        r = cb_error_set(-ENOKEY, "sealed to key %s, which is not a provisioning key of this broker (another "
                         "broker's, or retired)", hex);
        for (size_t i = 0; i < n; i++) {
                if (!keys[i].known || sodium_memcmp(keys[i].key_id, key_id, CB_PROV_KEY_ID_LEN) != 0 ||
                    (keys[i].state != CB_VS_CURRENT && keys[i].state != CB_VS_PREVIOUS))
                        continue;
                r = cb_store_get_ex(s, CB_PROV_KEYS_NAME, keys[i].version, false, CB_STORE_INTERNAL, &sk, NULL,
                                    NULL);
                if (r < 0)
                        break;
                if (cb_secbuf_len(sk) != crypto_box_SECRETKEYBYTES ||
                    crypto_scalarmult_base(check, cb_secbuf_data(sk)) != 0 ||
                    sodium_memcmp(check, keys[i].pk, sizeof(check)) != 0) {
                        cb_secbuf_free(sk);
                        r = cb_error_set(CB_E_INTEGRITY, "provisioning key %s does not match its public key", hex);
                        break;
                }
                memcpy(pk, keys[i].pk, crypto_box_PUBLICKEYBYTES);
                *ret_sk = sk;
                cb_error_clear();
                r = 0;
                break;
        }
        free(keys);
        return r;
}

static int refuse(cb_prov_result *res, enum cb_prov_refusal why, int r) {
        res->refusal = why;
        return r;
}

int cb_prov_import(cb_store *s, const char *text, size_t len, const char *expect_name, uint64_t now, bool dry_run,
                   cb_prov_result *res) {
        unsigned char kid[CB_PROV_KEY_ID_LEN], pk[crypto_box_PUBLICKEYBYTES];
        cb_prov_payload pl = { 0 };
        const cb_version_info *vi;
        unsigned char *box = NULL;
        cb_secbuf *sk = NULL;
        size_t box_len = 0, nv = 0;
        int r;

        memset(res, 0, sizeof(*res));
        r = cb_prov_blob_parse(text, len, kid, &box, &box_len);
        if (r < 0) {
                r = refuse(res, r == -ENOMEM ? CB_PROV_STORE : CB_PROV_MALFORMED, r);
                goto out;
        }
        cb_prov_key_id_hex(kid, res->key_id);
        r = load_key(s, kid, pk, &sk);
        if (r < 0) {
                r = refuse(res, r == -ENOKEY ? CB_PROV_UNKNOWN_KEY : CB_PROV_STORE, r);
                goto out;
        }
        r = cb_prov_open(box, box_len, pk, cb_secbuf_data(sk), kid, &pl);
        if (r < 0) {
                r = refuse(res, r == -EKEYREJECTED ? CB_PROV_TAMPERED : r == -EBADMSG ? CB_PROV_MALFORMED : CB_PROV_STORE,
                           r == -EKEYREJECTED ? -EBADMSG : r);
                goto out;
        }
        memcpy(res->name, pl.name, sizeof(res->name));
        res->created = pl.created;
        if (expect_name && strcmp(expect_name, pl.name) != 0) {
                r = refuse(res, CB_PROV_NAME_MISMATCH,
                           cb_error_set(-EINVAL, "the file is named for '%.128s' but the blob is sealed for '%s'",
                                        expect_name, pl.name));
                goto out;
        }
        if (pl.not_after && now > pl.not_after) {
                r = refuse(res, CB_PROV_EXPIRED,
                           cb_error_set(-ETIME, "blob for '%s' expired: not_after %llu is past (now %llu)", pl.name,
                                        (unsigned long long)pl.not_after, (unsigned long long)now));
                goto out;
        }
        if (pl.created > now + CB_PROV_FUTURE_SKEW) {
                r = refuse(res, CB_PROV_FUTURE,
                           cb_error_set(-EINVAL, "blob for '%s' claims to be sealed at %llu, more than %d s after "
                                        "now (%llu): check the sealing machine's clock", pl.name,
                                        (unsigned long long)pl.created, CB_PROV_FUTURE_SKEW,
                                        (unsigned long long)now));
                goto out;
        }
        r = cb_store_versions(s, pl.name, &vi, &nv);
        if (r < 0 && r != -ENOENT) {
                r = refuse(res, CB_PROV_STORE, r);
                goto out;
        }
        cb_error_clear();
        for (size_t i = 0; r == 0 && i < nv; i++)
                if (vi[i].created >= pl.created) {
                        r = refuse(res, CB_PROV_REPLAY,
                                   cb_error_set(-ESTALE, "replay refused: the blob for '%s' was sealed at %llu, not "
                                                "after version %u (created %llu)", pl.name,
                                                (unsigned long long)pl.created, vi[i].version,
                                                (unsigned long long)vi[i].created));
                        goto out;
                }
        if (dry_run) {
                r = 0;
                goto out;
        }
        r = cb_store_put_ex(s, pl.name, cb_secbuf_data(pl.value), cb_secbuf_len(pl.value), pl.meta, CB_VS_CURRENT,
                            pl.created, 0, &res->version);
        if (r < 0)
                r = refuse(res, CB_PROV_STORE, r);
out:
        cb_prov_payload_clear(&pl);
        cb_secbuf_free(sk);
        free(box);
        return r;
}
