/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Provisioning payload decoder and blob text parser.  Decoding is canonical
 * (re-encoding a decoded payload gives the input back); the text parser
 * never reads past its input and never yields a box over the cap.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "provision.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        unsigned char kid[CB_PROV_KEY_ID_LEN], *box = NULL;
        cb_prov_payload p;
        cb_secbuf *enc = NULL;
        size_t box_len = 0;

        if (cb_prov_payload_decode(data, size, &p) == 0) {
                if (cb_prov_payload_encode(&p, &enc) < 0 || cb_secbuf_len(enc) != size ||
                    memcmp(cb_secbuf_data(enc), data, size) != 0)
                        abort();
                cb_secbuf_free(enc);
                cb_prov_payload_clear(&p);
        }
        if (cb_prov_blob_parse((const char *)data, size, kid, &box, &box_len) == 0) {
                if (box_len > CB_PROV_BOX_MAX || box_len < CB_PROV_KEY_ID_LEN + crypto_box_SEALBYTES ||
                    memcmp(kid, box, CB_PROV_KEY_ID_LEN) != 0)
                        abort();
                free(box);
        }
        return 0;
}
