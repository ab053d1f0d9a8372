/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "error.h"
#include "store_derive.h"
#include "store_internal.h"

_Static_assert(crypto_kdf_KEYBYTES == CB_KEK_LEN, "the KEK is a crypto_kdf master key");
_Static_assert(crypto_kdf_CONTEXTBYTES == 8, "contexts are 8 characters");

int cb_store_derive_key(const cb_store *s, const char *ctx, uint64_t id, unsigned char out[CB_DERIVED_KEY_LEN]) {
        if (!s || !ctx || strlen(ctx) != crypto_kdf_CONTEXTBYTES)
                return cb_error_set(-EINVAL, "a derived key's context is exactly 8 characters");
        /* BLAKE2b keyed by the KEK, personalised by ctx: one-way, so a
         * derived key reveals nothing of the KEK or of the store's own keys. */
        if (crypto_kdf_derive_from_key(out, CB_DERIVED_KEY_LEN, id, ctx, cb_store_key(s, K_KEK)) != 0)
                return cb_error_set(-EINVAL, "key derivation failed");
        return 0;
}
