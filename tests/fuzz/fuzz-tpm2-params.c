/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tpm2 provider parameters (read from the store header on disk): the real
 * parser, including the tss2 unmarshalling of the sealed object's public
 * and private areas.  A parsed input must re-encode to exactly the same
 * bytes and stay within its caps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kek.h"
#include "tpm2_params.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        cb_tpm2_params p;
        cb_buf out = CB_BUF_INIT;

        if (size > CB_UNLOCK_PARAMS_MAX + 64)
                return 0;
        if (cb_tpm2_params_parse(data, size, &p) < 0)
                return 0;
        if (size > CB_UNLOCK_PARAMS_MAX || p.pub_len > CB_TPM2_BLOB_MAX || p.priv_len > CB_TPM2_BLOB_MAX ||
            p.pcr_mask >> CB_TPM2_PCR_COUNT || p.nv_index < CB_TPM2_NV_FIRST || p.nv_index > CB_TPM2_NV_LAST ||
            p.pub < data || p.pub + p.pub_len > data + size || p.priv < data || p.priv + p.priv_len > data + size)
                abort();
        if (cb_tpm2_params_encode(&out, &p) < 0 || out.len != size || memcmp(out.data, data, size) != 0)
                abort();
        cb_buf_free(&out);
        return 0;
}
