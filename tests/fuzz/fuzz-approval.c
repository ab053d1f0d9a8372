/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The approval table's ID parsing on arbitrary bytes, as admin.sock
 * (approve/deny ID, a prefix) and tools.sock (GET /v1/approvals/ID, a full
 * ID) hand it over.  Each verdict of cb_approvals_lookup is checked against
 * a reference written here (8 to 32 hex digits, either case, a unique
 * prefix of a held ID), and collect/decide must never match anything but an
 * exact full ID — a crash or a wrong answer aborts.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "approval.h"

#define FUZZ_APPROVAL_MAX 256 /* an ID is 32 bytes: longer inputs add nothing */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cb_approvals *tab;
static cb_peer me, admin;
static char ids[2][CB_APPROVAL_ID_LEN + 1];

static void setup(void) {
        const cb_approval *e;

        memset(&me, 0, sizeof(me));
        me.uid = 1000;
        me.pid = getpid();
        me.pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
        me.pidfd_pinned = true;
        admin = me;
        admin.uid = 0;
        tab = cb_approvals_new(0, 0, 120);
        if (me.pidfd < 0 || !tab)
                abort();
        for (int i = 0; i < 2; i++) {
                if (cb_approvals_add(tab, &me, "tool", "s", 1, (uint32_t)(i + 1), 0, 0, &e) != 0)
                        abort();
                memcpy(ids[i], e->id, sizeof(ids[i]));
        }
}

static int hexval(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* The reference: -EINVAL, -ENOENT, -ENOTUNIQ, or the index matched. */
static int ref_lookup(const char *s) {
        size_t n = strlen(s);
        int found = -1;

        if (n < CB_APPROVAL_ID_SHORT || n > CB_APPROVAL_ID_LEN)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (hexval(s[i]) < 0)
                        return -EINVAL;
        for (int k = 0; k < 2; k++) {
                bool match = true;
                for (size_t i = 0; i < n && match; i++)
                        match = hexval(s[i]) == hexval(ids[k][i]);
                if (match) {
                        if (found >= 0)
                                return -ENOTUNIQ;
                        found = k;
                }
        }
        return found >= 0 ? found : -ENOENT;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char s[FUZZ_APPROVAL_MAX + 1];
        const cb_approval *e;
        cb_approval c;
        int r, want;

        if (!tab)
                setup();
        if (size > FUZZ_APPROVAL_MAX)
                size = FUZZ_APPROVAL_MAX;
        memcpy(s, data, size);
        s[size] = 0;
        /* Half the runs splice a real ID in: prefixes and near misses. */
        if (size && (data[0] & 1) && size <= CB_APPROVAL_ID_LEN + 1) {
                memcpy(s, ids[data[0] >> 7], CB_APPROVAL_ID_LEN + 1);
                if (size - 1 < CB_APPROVAL_ID_LEN)
                        s[size - 1 + (size == 1)] = 0;
        }
        r = cb_approvals_lookup(tab, s, &e);
        want = ref_lookup(s);
        if (want >= 0 ? (r != 0 || strcmp(e->id, ids[want]) != 0) : r != want)
                abort();
        bool exact = strcmp(s, ids[0]) == 0 || strcmp(s, ids[1]) == 0;
        /* Checks only: the table stays as it is for the next run. */
        r = cb_approvals_check_decide(tab, s, false, &admin);
        if ((r == 0) != exact)
                abort();
        r = cb_approvals_collect(tab, s, &me, 0, &c); /* pending: collect leaves it held */
        if ((r == 0) != exact || (exact && (c.state != CB_APPROVAL_PENDING || strcmp(c.id, s) != 0)))
                abort();
        return 0;
}
