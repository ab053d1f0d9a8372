/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fetch --json: a value as JSON, written straight from its sodium_malloc
 * buffer (escaped piecewise; base64 in sodium_malloc memory), so no heap
 * copy of it is left behind the way a jansson string would be.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "credbroker.h"

/* Valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF)
 * without NUL: what POST /v1/redeem answers as "value". */
static bool utf8_text(const unsigned char *p, size_t n) {
        size_t i = 0;

        while (i < n) {
                unsigned c = p[i], k;
                uint32_t cp;

                if (c == 0)
                        return false;
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        k = 1;
                else if (c >= 0xe0 && c <= 0xef)
                        k = 2;
                else if (c >= 0xf0 && c <= 0xf4)
                        k = 3;
                else
                        return false;
                if (n - i <= k)
                        return false;
                cp = c & (0x3fu >> k);
                for (unsigned j = 1; j <= k; j++) {
                        if ((p[i + j] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (p[i + j] & 0x3f);
                }
                if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                    (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
                        return false;
                i += k + 1;
        }
        return true;
}

/* One JSON string of the value's bytes to stdout, escaped as JSON wants,
 * written piecewise from the secret buffer (no heap copy of the value). */
static int write_json_string(const unsigned char *p, size_t n) {
        int r = cli_write_all(STDOUT_FILENO, "\"", 1);

        for (size_t i = 0; r >= 0 && i < n;) {
                size_t j = i;
                char esc[8];

                while (j < n && p[j] >= 0x20 && p[j] != '"' && p[j] != '\\')
                        j++;
                if (j > i)
                        r = cli_write_all(STDOUT_FILENO, p + i, j - i);
                if (r < 0 || j == n)
                        break;
                snprintf(esc, sizeof(esc), p[j] == '"' || p[j] == '\\' ? "\\%c" : "\\u%04x", p[j]);
                r = cli_write_all(STDOUT_FILENO, esc, strlen(esc));
                i = j + 1;
        }
        return r < 0 ? r : cli_write_all(STDOUT_FILENO, "\"", 1);
}

int cli_write_value_json(const cb_secret *s) {
        const unsigned char *v = cb_secret_value(s);
        size_t n = cb_secret_len(s);
        char head[256];
        int r;

        if (utf8_text(v, n)) {
                snprintf(head, sizeof(head), "{\"secret\":\"%s\",\"version\":%u,\"value\":", cb_secret_name(s),
                         (unsigned)cb_secret_version(s));
                r = cli_write_all(STDOUT_FILENO, head, strlen(head));
                if (r >= 0)
                        r = write_json_string(v, n);
        } else {
                size_t bl = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
                char *b = sodium_malloc(bl);

                if (!b)
                        return -ENOMEM;
                sodium_bin2base64(b, bl, v, n, sodium_base64_VARIANT_ORIGINAL);
                snprintf(head, sizeof(head), "{\"secret\":\"%s\",\"version\":%u,\"value_base64\":\"",
                         cb_secret_name(s), (unsigned)cb_secret_version(s));
                r = cli_write_all(STDOUT_FILENO, head, strlen(head));
                if (r >= 0)
                        r = cli_write_all(STDOUT_FILENO, b, strlen(b));
                if (r >= 0)
                        r = cli_write_all(STDOUT_FILENO, "\"", 1);
                sodium_free(b);
        }
        return r < 0 ? r : cli_write_all(STDOUT_FILENO, "}", 1);
}
