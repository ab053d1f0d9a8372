/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metadata decoder and validator.  Decoding is canonical (re-encoding gives
 * the input back); validation must never crash on decoded input, and a
 * validated copy must still encode within the cap.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        cb_buf out = CB_BUF_INIT;
        cb_meta *m, *c;

        if (cb_meta_decode(data, size, &m) < 0)
                return 0;
        if (cb_meta_encode(m, &out) < 0 || out.len != size || (size && memcmp(out.data, data, size) != 0))
                abort();
        cb_buf_free(&out);
        if (cb_meta_copy(m, &c) < 0)
                abort();
        if (cb_meta_validate(c) == 0) {
                if (cb_meta_encode(c, &out) < 0 || out.len > CB_META_MAX_ENCODED)
                        abort();
                cb_buf_free(&out);
        }
        cb_meta_free(c);
        cb_meta_free(m);
        return 0;
}
