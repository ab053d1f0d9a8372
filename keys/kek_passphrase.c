/* SPDX-License-Identifier: Apache-2.0 */
/*
 * passphrase provider: wrapping key = Argon2id(passphrase, salt, ops, mem).
 * Parameters stored: u8 alg (1 = argon2id v1.3), u64 opslimit, u64 memlimit,
 * 16-byte salt.  Unlock refuses parameters outside sane bounds so a crafted
 * header cannot make unlock take a day or a terabyte.
 */
#include <errno.h>

#include <sodium.h>

#include "error.h"
#include "kek.h"

#define ALG_ARGON2ID13 1
#define SALT_LEN 16
#define OPS_MAX 64
#define MEM_MIN (8ULL << 20)
#define MEM_MAX (4ULL << 30)

static int derive(const cb_unlock_spec *spec, int confirm, uint64_t ops, uint64_t mem, const unsigned char *salt,
                  cb_secbuf **ret_wrapkey) {
        cb_secbuf *pass = NULL, *key = NULL;
        int r;

        r = cb_passphrase_read(spec, confirm, &pass);
        if (r < 0)
                return r;
        key = cb_secbuf_new(CB_KEK_LEN);
        if (!key) {
                r = -ENOMEM;
                goto out;
        }
        if (crypto_pwhash(cb_secbuf_data(key), CB_KEK_LEN, (const char *)cb_secbuf_data(pass), cb_secbuf_len(pass),
                          salt, ops, (size_t)mem, crypto_pwhash_ALG_ARGON2ID13) != 0) {
                r = cb_error_set(-ENOMEM, "Argon2id needs %llu MiB of memory and could not get it",
                                 (unsigned long long)(mem >> 20));
                goto out;
        }
        *ret_wrapkey = key;
        key = NULL;
        r = 0;
out:
        cb_secbuf_free(pass);
        cb_secbuf_free(key);
        return r;
}

static int passphrase_enroll(const cb_unlock_spec *spec, const unsigned char store_id[CB_STORE_ID_LEN],
                             cb_buf *params, cb_secbuf **ret_wrapkey) {
        unsigned char salt[SALT_LEN];
        uint64_t ops = spec->argon2_ops ? spec->argon2_ops : crypto_pwhash_OPSLIMIT_MODERATE;
        uint64_t mem = spec->argon2_mem ? spec->argon2_mem : crypto_pwhash_MEMLIMIT_MODERATE;
        int r;

        (void)store_id;
        if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > OPS_MAX || mem < MEM_MIN || mem > MEM_MAX)
                return cb_error_set(-EINVAL, "Argon2id cost out of range: ops 1..%d, memory 8 MiB..4 GiB", OPS_MAX);
        randombytes_buf(salt, sizeof(salt));
        r = derive(spec, 1, ops, mem, salt, ret_wrapkey);
        if (r < 0)
                return r;
        if ((r = cb_buf_put_u8(params, ALG_ARGON2ID13)) < 0 || (r = cb_buf_put_u64(params, ops)) < 0 ||
            (r = cb_buf_put_u64(params, mem)) < 0 || (r = cb_buf_put(params, salt, sizeof(salt))) < 0) {
                cb_secbuf_free(*ret_wrapkey);
                *ret_wrapkey = NULL;
                return r;
        }
        return 0;
}

static int passphrase_recover(const cb_unlock_spec *spec, const unsigned char store_id[CB_STORE_ID_LEN],
                              const unsigned char *params, size_t params_len, cb_secbuf **ret_wrapkey) {
        cb_reader rd = cb_reader_make(params, params_len);
        const unsigned char *salt;
        uint64_t ops, mem;
        uint8_t alg;

        (void)store_id;
        if (cb_reader_u8(&rd, &alg) < 0 || cb_reader_u64(&rd, &ops) < 0 || cb_reader_u64(&rd, &mem) < 0 ||
            cb_reader_bytes(&rd, SALT_LEN, &salt) < 0 || cb_reader_end(&rd) < 0)
                return cb_error_set(CB_E_INTEGRITY, "integrity error: header: malformed passphrase parameters");
        if (alg != ALG_ARGON2ID13)
                return cb_error_set(-EOPNOTSUPP, "header: unknown passphrase algorithm %u", alg);
        if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > OPS_MAX || mem < MEM_MIN || mem > MEM_MAX)
                return cb_error_set(CB_E_INTEGRITY, "integrity error: header: Argon2id cost out of range");
        return derive(spec, 0, ops, mem, salt, ret_wrapkey);
}

const cb_unlock_provider cb_provider_passphrase = {
        .kind = CB_UNLOCK_PASSPHRASE,
        .name = "passphrase",
        .enroll = passphrase_enroll,
        .recover = passphrase_recover,
};
