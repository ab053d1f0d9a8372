/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit verifier's line parser and chain check on arbitrary bytes, as
 * `credbroker audit verify` meets a file an attacker wrote: the input is
 * split into lines and fed to the real verifier (cb_audit_verifier_line),
 * and every line is also parsed alone.  Checks beyond "no crash": a line
 * the parser accepts has a canonical form that is the line minus its MAC
 * suffix plus '}', and re-sealing that form under a segment key gives a
 * line the parser accepts again with the same seq.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit_format.h"

#define FUZZ_AUDIT_MAX (256 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned char master[CB_AUDIT_KEY_LEN] = { 1, 2, 3 };

static void one_line(const char *p, size_t n) {
        cb_audit_line l, l2;
        char err[160];

        if (cb_audit_line_parse(p, n, &l, err, sizeof(err)) < 0)
                return;
        if (l.canon_len < 2 || l.canon[0] != '{' || l.canon[l.canon_len - 1] != '}' ||
            memcmp(l.canon, p, l.canon_len - 1) != 0)
                abort();
        cb_audit_keys k;
        unsigned char mac[CB_AUDIT_MAC_LEN], prev[CB_AUDIT_MAC_LEN] = { 0 };
        char *line;
        size_t len;
        cb_audit_segment_keys(master, l.begin ? l.log_id : prev, &k);
        if (cb_audit_seal(&k, prev, l.canon, l.canon_len, mac, &line, &len) == 0) {
                if (len < 1 || line[len - 1] != '\n' || cb_audit_line_parse(line, len - 1, &l2, err, sizeof(err)) < 0 ||
                    l2.seq != l.seq || memcmp(l2.mac, mac, sizeof(mac)) != 0)
                        abort();
                cb_audit_line_done(&l2);
                free(line);
        }
        cb_audit_line_done(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        cb_audit_verifier v;
        cb_audit_head head = { .set = true, .seq = 3 };
        const char *p = (const char *)data, *end = p + size;

        if (size > FUZZ_AUDIT_MAX)
                return 0;
        if (sodium_init() < 0)
                abort();
        /* The head checkpoint parser too (it reads the state directory). */
        cb_audit_head h;
        if (cb_audit_head_decode(master, (const char *)data, size, &h) == 0 && size != CB_AUDIT_HEAD_TEXT_LEN)
                abort();
        cb_audit_verifier_init(&v, master);
        cb_audit_verifier_file(&v);
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
                one_line(p, n);
                (void)cb_audit_verifier_line(&v, p, n, nl != NULL);
                p += n + (nl != NULL);
        }
        (void)cb_audit_verifier_end(&v, &head, size & 1);
        if (v.failed && (v.bad_line == 0 || !v.problem[0]))
                abort();
        cb_audit_verifier_done(&v);
        return 0;
}
