/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The command line's time syntax (client/cli_parse.c): UNIXTIME, +N[smhd]
 * and N[smhd] durations, RFC 3339.  Any input of at most 256 bytes: no
 * crash, no read past the NUL; an accepted time is positive; an accepted
 * RFC 3339 time without fraction or offset (…Z) prints back as itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char s[257];
        uint64_t t = 0;
        unsigned long long u;

        if (size > 256)
                return 0;
        memcpy(s, data, size);
        s[size] = 0;
        if (cli_parse_time(s, &t) == 0) {
                if (t == 0)
                        abort();
                if (strlen(s) == 20 && s[19] == 'Z' && s[10] == 'T') {
                        char back[32];
                        time_t tt = (time_t)t;
                        struct tm tm;
                        gmtime_r(&tt, &tm);
                        strftime(back, sizeof(back), "%Y-%m-%dT%H:%M:%SZ", &tm);
                        /* a leap second (:60) normalises into the next minute */
                        if (strcmp(back, s) != 0 && strncmp(s + 17, "60", 2) != 0)
                                abort();
                }
        }
        if (cli_parse_duration(s, UINT32_MAX, &u) == 0 && u > UINT32_MAX)
                abort();
        if (cli_parse_u64(s, UINT32_MAX, &u) == 0 && u > UINT32_MAX)
                abort();
        return 0;
}
