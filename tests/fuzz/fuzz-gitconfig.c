/* SPDX-License-Identifier: Apache-2.0 */
/* The sandbox's git configuration reader (client/cli_sandbox_git.c): any
 * input, any output buffer size, never out of bounds, and a value found
 * always fits and is NUL-terminated. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli_sandbox_git.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const size_t lens[] = { 1, 2, 16, SB_GITCONFIG_VALUE_MAX };
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
                char *out = malloc(lens[i]);
                if (!out)
                        return 0;
                int r = sb_git_hookspath((const char *)data, size, out, lens[i]);
                if (r == 1 && strnlen(out, lens[i]) >= lens[i])
                        abort();
                if (r < -1 || r > 1)
                        abort();
                free(out);
        }
        int r = sb_git_config_safe((const char *)data, size);
        if (r < -1 || r > 1)
                abort();
        return 0;
}
