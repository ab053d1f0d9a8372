/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Log record body parser (what follows a verified MAC) and, for PUT
 * records, the metadata decoder.  A record that parses must re-encode to
 * exactly the input: the format is canonical.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meta.h"
#include "store.h"
#include "store_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        cb_buf out = CB_BUF_INIT;
        cb_record rec;

        if (size > CB_RECORD_MAX)
                return 0;
        if (cb_record_parse(data, size, &rec) < 0)
                return 0;
        if (!cb_name_valid(rec.name, rec.name_len) || rec.version == 0)
                abort();
        if (cb_record_encode(&out, &rec) < 0 || out.len != size || memcmp(out.data, data, size) != 0)
                abort();
        cb_buf_free(&out);
        if (rec.type == CB_REC_PUT) {
                cb_meta *m;

                if (cb_meta_decode(rec.meta, rec.meta_len, &m) == 0) {
                        if (cb_meta_encode(m, &out) < 0 || out.len != rec.meta_len ||
                            (out.len && memcmp(out.data, rec.meta, out.len) != 0))
                                abort();
                        cb_buf_free(&out);
                        cb_meta_free(m);
                }
        }
        return 0;
}
