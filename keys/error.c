/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static _Thread_local char last_msg[512];

int cb_error_set(int r, const char *fmt, ...) {
        char tmp[sizeof(last_msg)];
        va_list ap;

        /* Format into a temporary: callers often pass cb_error_last() in
         * to wrap the previous message with context. */
        va_start(ap, fmt);
        vsnprintf(tmp, sizeof(tmp), fmt, ap);
        va_end(ap);
        memcpy(last_msg, tmp, sizeof(last_msg));
        return r;
}

const char *cb_error_last(void) {
        return last_msg;
}

void cb_error_clear(void) {
        last_msg[0] = '\0';
}
