/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Store header parser.  Random bytes almost never carry a valid checksum,
 * so each input is parsed twice: as is (the checksum gate), and with its
 * last 32 bytes replaced by the correct checksum, which drives the fuzzer
 * into the structural parser.  A parsed header must rebuild to the same
 * bytes (apart from the keyed MAC, recomputed here with a fixed key).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "store_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const unsigned char *p, size_t n, const cb_header *h) {
        static const unsigned char key[32];
        cb_buf out = CB_BUF_INIT;
        cb_header h2;

        if (cb_header_build(&out, h, p + h->slots_off, h->slots_end - h->slots_off, key) < 0)
                abort();
        if (out.len != n || memcmp(out.data, p, h->mac_off) != 0)
                abort(); /* everything before the MAC is reproduced exactly */
        if (cb_header_parse(out.data, out.len, &h2) < 0 || h2.generation != h->generation ||
            h2.log_len != h->log_len || h2.nslots != h->nslots)
                abort();
        cb_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        cb_header h;
        unsigned char *p;

        if (size > CB_HEADER_MAX + 64)
                return 0;
        if (cb_header_parse(data, size, &h) == 0)
                check_round_trip(data, size, &h);
        if (size < 32)
                return 0;
        p = malloc(size);
        if (!p)
                abort();
        memcpy(p, data, size);
        crypto_generichash(p + size - 32, 32, p, size - 32, NULL, 0);
        if (cb_header_parse(p, size, &h) == 0) {
                if (h.nslots == 0 || h.nslots > CB_SLOTS_MAX || h.slots_end > h.mac_off || h.mac_off + 64 != size)
                        abort();
                for (size_t i = 0; i < h.nslots; i++)
                        if (h.slots[i].params_len > CB_UNLOCK_PARAMS_MAX)
                                abort();
                check_round_trip(p, size, &h);
        }
        free(p);
        return 0;
}
