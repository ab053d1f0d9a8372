/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Provisioning payload decoder and blob text parser.  A decoded payload
 * re-encodes to a fixed point (host names come back lower-cased); the text parser
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
                cb_prov_payload p2;
                cb_secbuf *enc2 = NULL;

                /* Decoding validates the metadata, which normalises host
                 * names to lower case; from then on it is a fixed point. */
                if (cb_prov_payload_encode(&p, &enc) < 0 || cb_secbuf_len(enc) > size ||
                    cb_prov_payload_decode(cb_secbuf_data(enc), cb_secbuf_len(enc), &p2) < 0 ||
                    cb_prov_payload_encode(&p2, &enc2) < 0 || cb_secbuf_len(enc2) != cb_secbuf_len(enc) ||
                    memcmp(cb_secbuf_data(enc2), cb_secbuf_data(enc), cb_secbuf_len(enc)) != 0)
                        abort();
                cb_secbuf_free(enc);
                cb_secbuf_free(enc2);
                cb_prov_payload_clear(&p2);
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
