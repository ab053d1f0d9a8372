/* SPDX-License-Identifier: Apache-2.0 */
/* Line-wrapped text through the matcher (match_unwrap.h). */
#include <errno.h>
#include <string.h>

#include "match_unwrap.h"

bool cb_scan_has_breaks(const void *p, size_t n) {
        return memchr(p, '\n', n) || memchr(p, '\r', n);
}

int cb_scan_unwrapped(const cb_matcher *m, const void *p, size_t n, cb_scan_hit_fn hit, void *ctx) {
        const unsigned char *s = p, *end = s + n;
        cb_scan_stream *st = cb_scan_stream_new(m, hit, NULL, ctx);
        int r = 0;

        if (!st)
                return -ENOMEM;
        cb_scan_stream_size_hint(st, n);
        while (s < end && r >= 0) {
                const unsigned char *b = s;
                while (b < end && *b != '\r' && *b != '\n')
                        b++;
                if (b > s)
                        r = cb_scan_stream_feed(st, s, (size_t)(b - s));
                while (b < end && (*b == '\r' || *b == '\n'))
                        b++;
                s = b;
        }
        if (r >= 0)
                r = cb_scan_stream_finish(st);
        cb_scan_stream_free(st);
        return r < 0 ? r : 0;
}
