/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tpm2 / tpm2+keyfile unlock parameters kept in a header slot.  They are
 * read from disk, so the parser is strict, capped, and fuzzed
 * (tests/fuzz/fuzz-tpm2-params.c).  The slot's params are AAD of the wrapped
 * KEK, so a changed byte fails the unwrap; the parser still assumes nothing.
 *
 * Layout (big-endian; "lv" = u32 length + bytes):
 *   u8  version (1)
 *   u8  flags            bit 0: a key file is part of the wrapping key
 *   u32 pcr mask         sha256-bank PCRs 0..23 in the policy; 0 = no policy
 *   u32 nv index         anti-rollback NV counter (0x01000000..0x01ffffff)
 *   u64 counter base     raw counter value that stands for generation 1
 *   salt[16]             KDF salt for the wrapping key
 *   lv  public           TPM2B_PUBLIC of the sealed KEYEDHASH object
 *   lv  private          TPM2B_PRIVATE of the sealed object
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define CB_TPM2_PARAMS_V1     1
#define CB_TPM2_FLAG_KEYFILE  0x01
#define CB_TPM2_SALT_LEN      16
#define CB_TPM2_BLOB_MAX      1024 /* each of public and private; both far smaller in practice */
#define CB_TPM2_PCR_COUNT     24
#define CB_TPM2_NV_FIRST      0x01000000u
#define CB_TPM2_NV_LAST       0x01ffffffu

typedef struct cb_tpm2_params {
        uint8_t flags;
        uint32_t pcr_mask;
        uint32_t nv_index;
        uint64_t counter_base;
        unsigned char salt[CB_TPM2_SALT_LEN];
        const unsigned char *pub;  /* points into the parsed bytes */
        size_t pub_len;
        const unsigned char *priv;
        size_t priv_len;
} cb_tpm2_params;

/* Parse p[0..len) (at most CB_UNLOCK_PARAMS_MAX).  The public and private
 * blobs must unmarshal exactly (no trailing bytes) and the public area must
 * be a sha256 KEYEDHASH object whose policy matches the PCR mask (a 32-byte
 * policy with PCRs, none without).  0, or CB_E_INTEGRITY / -EOPNOTSUPP with
 * a message. */
int cb_tpm2_params_parse(const unsigned char *p, size_t len, cb_tpm2_params *ret);

/* Append the encoding of prm to out. */
int cb_tpm2_params_encode(cb_buf *out, const cb_tpm2_params *prm) __attribute__((warn_unused_result));

/* Parse a PCR list "7" or "0,7,11" (decimal 0..23, comma separated, no
 * repeats) into a bit mask.  -EINVAL with a message. */
int cb_tpm2_pcrs_parse(const char *s, uint32_t *ret_mask);

/* "0,7,11" (or "none") into out. */
void cb_tpm2_pcrs_format(uint32_t mask, char *out, size_t cap);
