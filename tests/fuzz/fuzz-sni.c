/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ClientHello SNI parser (broker/egress/sni.c) on arbitrary bytes: it
 * must never read out of bounds, and a name it returns must be a lower-case
 * DNS host name within the cap.  Each prefix is parsed too (the tunnel feeds
 * it what arrived so far).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const uint8_t *data, size_t size) {
        char name[CB_SNI_NAME_MAX + 1];
        const char *why = NULL;
        cb_sni_result r = cb_sni_parse(data, size, name, &why);

        if (r == CB_SNI_FOUND) {
                size_t n = strlen(name);
                if (n == 0 || n > CB_SNI_NAME_MAX)
                        abort();
                for (size_t i = 0; i < n; i++)
                        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '-' ||
                              name[i] == '.'))
                                abort();
        } else if (name[0] != '\0' || !why) {
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > CB_SNI_INPUT_MAX + 16)
                return 0;
        check(data, size);
        for (size_t k = 1; k < size && k < 64; k++)
                check(data, k);
        return 0;
}
