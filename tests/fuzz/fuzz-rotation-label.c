/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rotation label (broker/rotate/rotation_label.h): the input is a list of
 * labels, one per line.  Reading the grace must never crash; recording a
 * rotation must leave exactly one "rotation=" label, keep every other
 * label in order, and read back as the grace it recorded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rotation_label.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        cb_meta m = { 0 }, *out = NULL;
        size_t start = 0, kept = 0, rot = 0;
        bool leaked;
        int64_t g;

        if (size > 64 * 1024)
                return 0;
        for (size_t i = 0; i <= size; i++) {
                if (i < size && data[i] != '\n')
                        continue;
                char *l = strndup((const char *)data + start, i - start);
                if (!l || strlen(l) != i - start || cb_strv_push(&m.labels, l, CB_META_MAX_LABELS) < 0) {
                        free(l);
                        goto out;
                }
                free(l);
                start = i + 1;
        }
        g = cb_rotation_grace(&m, &leaked);
        if (g < -1 || g > (int64_t)CB_ROTATION_GRACE_MAX || (leaked && g != 0))
                abort();
        uint32_t want = (uint32_t)(size ? data[0] * 9973u % (CB_ROTATION_GRACE_MAX + 1) : 0);
        bool want_leaked = size > 1 && (data[1] & 1);
        if (cb_rotation_meta(&m, want, want_leaked, &out) < 0)
                goto out;
        for (size_t i = 0; i < out->labels.n; i++) {
                if (strncmp(out->labels.v[i], "rotation=", 9) == 0) {
                        rot++;
                        continue;
                }
                while (kept < m.labels.n && strncmp(m.labels.v[kept], "rotation=", 9) == 0)
                        kept++;
                if (kept >= m.labels.n || strcmp(out->labels.v[i], m.labels.v[kept]) != 0)
                        abort();
                kept++;
        }
        g = cb_rotation_grace(out, &leaked);
        if (rot != 1 || leaked != want_leaked || g != (want_leaked ? 0 : (int64_t)want))
                abort();
out:
        cb_meta_free(out);
        cb_meta_clear(&m);
        return 0;
}
