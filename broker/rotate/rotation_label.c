/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "rotation_label.h"

#define ROTATION_LABEL "rotation="

int64_t cb_rotation_grace(const cb_meta *m, bool *ret_leaked) {
        if (ret_leaked)
                *ret_leaked = false;
        for (size_t i = 0; m && i < m->labels.n; i++) {
                const char *l = m->labels.v[i];
                uint64_t g = 0;
                size_t k;

                if (strncmp(l, ROTATION_LABEL, strlen(ROTATION_LABEL)) != 0)
                        continue;
                l += strlen(ROTATION_LABEL);
                if (strcmp(l, "leaked") == 0) {
                        if (ret_leaked)
                                *ret_leaked = true;
                        return 0;
                }
                if (strncmp(l, "grace:", 6) != 0)
                        return -1;
                /* 1..7 digits, no sign, no spaces: strtoull would take both. */
                for (k = 6; l[k] >= '0' && l[k] <= '9' && k < 6 + 7; k++)
                        g = g * 10 + (uint64_t)(l[k] - '0');
                if (k == 6 || l[k] || g > CB_ROTATION_GRACE_MAX)
                        return -1;
                return (int64_t)g;
        }
        return -1;
}

int cb_rotation_meta(const cb_meta *cur, uint32_t grace, bool leaked, cb_meta **ret) {
        static const cb_meta empty;
        char label[64];
        cb_meta *m = NULL;
        size_t k = 0;
        int r;

        r = cb_meta_copy(cur ? cur : &empty, &m);
        if (r < 0)
                return cb_error_set(r, "out of memory");
        for (size_t i = 0; i < m->labels.n; i++) {
                if (strncmp(m->labels.v[i], ROTATION_LABEL, strlen(ROTATION_LABEL)) == 0)
                        free(m->labels.v[i]);
                else
                        m->labels.v[k++] = m->labels.v[i];
        }
        m->labels.n = k;
        if (leaked)
                snprintf(label, sizeof(label), ROTATION_LABEL "leaked");
        else
                snprintf(label, sizeof(label), ROTATION_LABEL "grace:%" PRIu32, grace);
        r = cb_strv_push(&m->labels, label, CB_META_MAX_LABELS);
        if (r < 0) {
                cb_meta_free(m);
                return cb_error_set(r, "cannot record the rotation: the secret already has %d labels",
                                    CB_META_MAX_LABELS);
        }
        *ret = m;
        return 0;
}
