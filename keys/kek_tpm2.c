/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tpm2 and tpm2+keyfile providers.
 *
 * Enrolment: 32 random bytes (the TPM secret) are sealed as a KEYEDHASH
 * object under the deterministic SRK, optionally bound to sha256 PCRs; an
 * NV counter is defined for anti-rollback.  The wrapping key is
 *
 *   tpm2:          BLAKE2b-256(key = salt || store id, "cbtpm2v1" || secret)
 *   tpm2+keyfile:  BLAKE2b-256(key = salt || store id, "cbtpm2kf" || secret
 *                              || key file contents)
 *
 * so tpm2+keyfile needs both the TPM (and its PCR state) and the key file.
 * Parameters: tpm2_params.h.  Nothing the TPM returns is trusted to have a
 * particular size beyond what tpm2.c checks.
 *
 * Anti-rollback: the counter stands for generation (value - base + 1).  It
 * is advanced only after a header commit, so it is never ahead of a
 * committed header; a crash between commit and increment leaves it behind,
 * and the next open catches it up.
 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "error.h"
#include "kek.h"
#include "tpm2.h"
#include "tpm2_params.h"

#define TPM_SECRET_LEN 32
#define CATCH_UP_MAX 1024

static int derive(const cb_tpm2_params *prm, const unsigned char store_id[CB_STORE_ID_LEN], const cb_secbuf *tpm_secret,
                  const cb_secbuf *keyfile, cb_secbuf **ret_wrapkey) {
        crypto_generichash_state *st;
        unsigned char k[CB_TPM2_SALT_LEN + CB_STORE_ID_LEN];
        cb_secbuf *key, *stbuf;

        key = cb_secbuf_new(CB_KEK_LEN);
        stbuf = cb_secbuf_new(sizeof(crypto_generichash_state));
        if (!key || !stbuf) {
                cb_secbuf_free(key);
                cb_secbuf_free(stbuf);
                return -ENOMEM;
        }
        st = (crypto_generichash_state *)(void *)cb_secbuf_data(stbuf);
        memcpy(k, prm->salt, CB_TPM2_SALT_LEN);
        memcpy(k + CB_TPM2_SALT_LEN, store_id, CB_STORE_ID_LEN);
        crypto_generichash_init(st, k, sizeof(k), CB_KEK_LEN);
        crypto_generichash_update(st, (const unsigned char *)(keyfile ? "cbtpm2kf" : "cbtpm2v1"), 8);
        crypto_generichash_update(st, cb_secbuf_data(tpm_secret), cb_secbuf_len(tpm_secret));
        if (keyfile)
                crypto_generichash_update(st, cb_secbuf_data(keyfile), cb_secbuf_len(keyfile));
        crypto_generichash_final(st, cb_secbuf_data(key), CB_KEK_LEN);
        cb_secbuf_free(stbuf);
        *ret_wrapkey = key;
        return 0;
}

static bool wants_keyfile(const cb_unlock_spec *spec) {
        return spec->kind == CB_UNLOCK_TPM2_KEYFILE;
}

static int tpm2_enroll(const cb_unlock_spec *spec, const unsigned char store_id[CB_STORE_ID_LEN], cb_buf *params,
                       cb_secbuf **ret_wrapkey) {
        cb_buf pub = CB_BUF_INIT, priv = CB_BUF_INIT;
        cb_secbuf *secret = NULL, *keyfile = NULL;
        cb_tpm2_params prm;
        cb_tpm2 *t = NULL;
        int r;

        memset(&prm, 0, sizeof(prm));
        if (spec->tpm2_pcrs && (r = cb_tpm2_pcrs_parse(spec->tpm2_pcrs, &prm.pcr_mask)) < 0)
                return r;
        if (wants_keyfile(spec)) {
                if (!spec->path)
                        return cb_error_set(-EINVAL, "tpm2+keyfile needs a key file (tpm2+keyfile:PATH)");
                prm.flags |= CB_TPM2_FLAG_KEYFILE;
                if ((r = cb_keyfile_create(spec->path)) < 0 || (r = cb_keyfile_read(spec->path, &keyfile)) < 0)
                        return r;
        }
        secret = cb_secbuf_new(TPM_SECRET_LEN);
        if (!secret) {
                r = -ENOMEM;
                goto out;
        }
        randombytes_buf(cb_secbuf_data(secret), TPM_SECRET_LEN);
        randombytes_buf(prm.salt, sizeof(prm.salt));
        if ((r = cb_tpm2_open(spec->tpm2_tcti, &t)) < 0 ||
            (r = cb_tpm2_seal(t, prm.pcr_mask, cb_secbuf_data(secret), TPM_SECRET_LEN, &pub, &priv)) < 0 ||
            (r = cb_tpm2_counter_create(t, &prm.nv_index, &prm.counter_base)) < 0)
                goto out;
        if (pub.len > CB_TPM2_BLOB_MAX || priv.len > CB_TPM2_BLOB_MAX || prm.counter_base == 0 ||
            prm.counter_base > UINT64_MAX / 2) {
                r = cb_error_set(-EIO, "TPM returned a sealed object or counter out of the expected range");
                goto out;
        }
        prm.pub = pub.data;
        prm.pub_len = pub.len;
        prm.priv = priv.data;
        prm.priv_len = priv.len;
        if ((r = cb_tpm2_params_encode(params, &prm)) < 0)
                goto out;
        r = derive(&prm, store_id, secret, keyfile, ret_wrapkey);
out:
        cb_tpm2_close(t);
        cb_secbuf_free(secret);
        cb_secbuf_free(keyfile);
        cb_buf_free(&pub);
        cb_buf_free(&priv);
        return r;
}

static int parse_for(const cb_unlock_spec *spec, const unsigned char *params, size_t params_len, cb_tpm2_params *prm) {
        int r = cb_tpm2_params_parse(params, params_len, prm);

        if (r < 0)
                return r;
        if (!!(prm->flags & CB_TPM2_FLAG_KEYFILE) != wants_keyfile(spec))
                return cb_error_set(CB_E_INTEGRITY, "integrity error: header: tpm2 parameters do not match the "
                                    "slot kind");
        return 0;
}

static int tpm2_recover(const cb_unlock_spec *spec, const unsigned char store_id[CB_STORE_ID_LEN],
                        const unsigned char *params, size_t params_len, cb_secbuf **ret_wrapkey) {
        cb_secbuf *secret = NULL, *keyfile = NULL;
        cb_tpm2_params prm;
        cb_tpm2 *t = NULL;
        int r;

        r = parse_for(spec, params, params_len, &prm);
        if (r < 0)
                return r;
        if (wants_keyfile(spec)) {
                /* Both parts, always: no TPM-only fallback. */
                if (!spec->path)
                        return cb_error_set(-EINVAL, "tpm2+keyfile needs a key file (tpm2+keyfile:PATH)");
                r = cb_keyfile_read(spec->path, &keyfile);
                if (r < 0)
                        return r;
        }
        if ((r = cb_tpm2_open(spec->tpm2_tcti, &t)) < 0 ||
            (r = cb_tpm2_unseal(t, prm.pcr_mask, prm.pub, prm.pub_len, prm.priv, prm.priv_len, &secret)) < 0)
                goto out;
        if (cb_secbuf_len(secret) != TPM_SECRET_LEN) {
                r = cb_error_set(CB_E_INTEGRITY, "integrity error: the TPM unsealed %zu bytes, not %d",
                                 cb_secbuf_len(secret), TPM_SECRET_LEN);
                goto out;
        }
        r = derive(&prm, store_id, secret, keyfile, ret_wrapkey);
out:
        cb_tpm2_close(t);
        cb_secbuf_free(secret);
        cb_secbuf_free(keyfile);
        return r;
}

static int tpm2_sync_generation(const cb_unlock_spec *spec, const unsigned char *params, size_t params_len,
                                uint64_t generation, uint64_t *ret_counter_gen) {
        cb_tpm2_params prm;
        cb_tpm2 *t = NULL;
        uint64_t have, want;
        int r;

        r = parse_for(spec, params, params_len, &prm);
        if (r < 0)
                return r;
        if (generation == 0 || generation > UINT64_MAX / 2)
                return cb_error_set(CB_E_INTEGRITY, "integrity error: store generation out of range");
        want = prm.counter_base + generation - 1;
        if ((r = cb_tpm2_open(spec->tpm2_tcti, &t)) < 0 || (r = cb_tpm2_counter_read(t, prm.nv_index, &have)) < 0)
                goto out;
        if (have < prm.counter_base) {
                r = cb_error_set(-ENOKEY, "NV counter 0x%08x on this TPM reads below the value the store was "
                                 "bound to: it is not this store's counter (another TPM?)", prm.nv_index);
                goto out;
        }
        if (have > want) {
                *ret_counter_gen = have - prm.counter_base + 1;
                r = cb_error_set(CB_E_ROLLBACK, "store rolled back: generation %llu < counter %llu (TPM NV counter "
                                 "0x%08x); an older copy of the store was put back — see README, 'TPM2 binding and "
                                 "anti-rollback', for recovery", (unsigned long long)generation,
                                 (unsigned long long)*ret_counter_gen, prm.nv_index);
                goto out;
        }
        if (want - have > CATCH_UP_MAX) {
                r = cb_error_set(-ERANGE, "NV counter 0x%08x is %llu commits behind the store: refusing to "
                                 "advance it that far", prm.nv_index, (unsigned long long)(want - have));
                goto out;
        }
        for (; have < want; have++)
                if ((r = cb_tpm2_counter_increment(t, prm.nv_index)) < 0)
                        goto out;
        *ret_counter_gen = generation;
        r = 0;
out:
        cb_tpm2_close(t);
        return r;
}

const cb_unlock_provider cb_provider_tpm2 = {
        .kind = CB_UNLOCK_TPM2,
        .name = "tpm2",
        .enroll = tpm2_enroll,
        .recover = tpm2_recover,
        .sync_generation = tpm2_sync_generation,
};

const cb_unlock_provider cb_provider_tpm2_keyfile = {
        .kind = CB_UNLOCK_TPM2_KEYFILE,
        .name = "tpm2+keyfile",
        .enroll = tpm2_enroll,
        .recover = tpm2_recover,
        .sync_generation = tpm2_sync_generation,
};
