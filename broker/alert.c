/* SPDX-License-Identifier: Apache-2.0 */
/* Operator alerts (alert.h): a line on stderr for now. */
#include <stdio.h>
#include <stdlib.h>

#include "alert.h"

void alert_raise(const char *kind, json_t *event) {
        char *text = event ? json_dumps(event, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

        /* One fprintf per alert: stderr is unbuffered, lines do not interleave. */
        fprintf(stderr, "credbrokerd: ALERT %s %s\n", kind, text ? text : "{}");
        free(text);
}
