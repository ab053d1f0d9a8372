/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key-encryption key (KEK) and the unlock providers that wrap it.
 *
 * The KEK is 32 random bytes that never touch disk in plaintext.  Each
 * provider turns an unlock SPEC plus the parameters it stored at enrolment
 * into a 32-byte *wrapping key*; keys/store.c wraps the KEK under that with
 * XChaCha20-Poly1305 (AAD = store id, provider kind, parameters).  So a new
 * provider (tpm2, tpm2+keyfile) is one more table entry: callers only ever
 * pass a SPEC string.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "secmem.h"

#define CB_KEK_LEN       32
#define CB_STORE_ID_LEN  16
#define CB_UNLOCK_PARAMS_MAX 8192

enum cb_unlock_kind {
        CB_UNLOCK_PASSPHRASE   = 1,
        CB_UNLOCK_KEYFILE      = 2,
        CB_UNLOCK_TPM2         = 3,
        CB_UNLOCK_TPM2_KEYFILE = 4,
};

typedef struct cb_unlock_spec {
        enum cb_unlock_kind kind;
        char *path;          /* passphrase file or key file; NULL = prompt */
        int fd;              /* passphrase fd (passphrase:fd:N), else -1 */
        char *tpm2_tcti;     /* tpm2 TCTI, NULL = default */
        char *tpm2_pcrs;     /* "7,11" at enrolment, NULL = none */
        /* Argon2id cost at enrolment (0 = the library's MODERATE defaults).
         * Stored in the header; unlock uses what is stored. */
        uint64_t argon2_ops;
        uint64_t argon2_mem;
        /* Operator recovery (credbroker tpm accept-rollback): when the
         * provider's counter says the store was rolled back, open succeeds
         * without writing anything instead of refusing; the caller
         * verifies the store, then cb_store_accept_rollback (store.h)
         * raises its generation to the counter's. */
        bool accept_rollback;
} cb_unlock_spec;

/* Parse "passphrase", "passphrase:FILE", "passphrase:fd:N", "keyfile:PATH",
 * "tpm2", "tpm2+keyfile:PATH".  0 or -EINVAL (message set). */
int cb_unlock_spec_parse(const char *s, cb_unlock_spec **ret);
void cb_unlock_spec_free(cb_unlock_spec *s);
/* A deep copy (the fd is shared, not duplicated).  NULL on ENOMEM. */
cb_unlock_spec *cb_unlock_spec_dup(const cb_unlock_spec *s);
const char *cb_unlock_kind_name(enum cb_unlock_kind k);

typedef struct cb_unlock_provider {
        enum cb_unlock_kind kind;
        const char *name;
        /* Enrolment (store creation): choose and append the parameters to
         * keep in the header to *params, and derive the wrapping key. */
        int (*enroll)(const cb_unlock_spec *spec, const unsigned char store_id[CB_STORE_ID_LEN],
                      cb_buf *params, cb_secbuf **ret_wrapkey);
        /* Unlock: derive the same wrapping key from the stored parameters.
         * A provider that cannot run (no TPM, unreadable key file) fails
         * with a message saying so — never a fallback. */
        int (*recover)(const cb_unlock_spec *spec, const unsigned char store_id[CB_STORE_ID_LEN],
                       const unsigned char *params, size_t params_len, cb_secbuf **ret_wrapkey);
        /* Optional anti-rollback (NULL: the provider has no monotonic
         * counter).  Compare the store's committed generation with the
         * provider's counter: CB_E_ROLLBACK ("store rolled back: generation
         * N < counter M") when the store is older, with M in
         * *ret_counter_gen; advance the counter when it is behind (a crash
         * between a header commit and the increment).  keys/store*.c calls
         * it after a successful unlock and after every header commit. */
        int (*sync_generation)(const cb_unlock_spec *spec, const unsigned char *params, size_t params_len,
                               uint64_t generation, uint64_t *ret_counter_gen);
} cb_unlock_provider;

/* The provider for a kind, or NULL when this build has none for it. */
const cb_unlock_provider *cb_unlock_provider_get(enum cb_unlock_kind kind);

/* Provider implementations (kek_passphrase.c, kek_keyfile.c). */
extern const cb_unlock_provider cb_provider_passphrase;
extern const cb_unlock_provider cb_provider_keyfile;
/* kek_tpm2.c */
extern const cb_unlock_provider cb_provider_tpm2;
extern const cb_unlock_provider cb_provider_tpm2_keyfile;

/* Read a passphrase per spec (file, fd, or /dev/tty prompt with echo off;
 * confirm=1 asks twice).  Trailing newline removed.  -EINVAL if empty. */
int cb_passphrase_read(const cb_unlock_spec *spec, int confirm, cb_secbuf **ret);

/* Read a key file after checking it is a regular file owned by the caller
 * and not accessible by group/other.  32..4096 bytes. */
int cb_keyfile_read(const char *path, cb_secbuf **ret);

/* Create a key file (32 random bytes, 0400, O_EXCL, synced with its
 * directory) unless one exists already. */
int cb_keyfile_create(const char *path);
