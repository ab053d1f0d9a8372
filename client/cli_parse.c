/* SPDX-License-Identifier: Apache-2.0 */
/* Numbers and times on the command line, one syntax for every verb (see cli.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define DURATION_MAX (100ULL * 365 * 86400)

int cli_parse_u64(const char *s, unsigned long long max, unsigned long long *ret) {
        unsigned long long v;
        char *e;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &e, 10);
        if (errno || *e || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* N followed by s, m, h or d: seconds, or -EINVAL. */
static int duration(const char *s, unsigned long long *ret) {
        char buf[24];
        size_t n = strlen(s);
        unsigned long long v, mul;

        if (n < 2 || n >= sizeof(buf))
                return -EINVAL;
        switch (s[n - 1]) {
        case 's': mul = 1; break;
        case 'm': mul = 60; break;
        case 'h': mul = 3600; break;
        case 'd': mul = 86400; break;
        default: return -EINVAL;
        }
        memcpy(buf, s, n - 1);
        buf[n - 1] = 0;
        if (cli_parse_u64(buf, DURATION_MAX, &v) < 0 || v * mul > DURATION_MAX)
                return -EINVAL;
        *ret = v * mul;
        return 0;
}

/* n decimal digits at s, nothing else (sscanf's %d would skip blanks and
 * take a sign). */
static bool digits(const char *s, int n, int *ret) {
        int v = 0;

        for (int i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (s[i] - '0');
        }
        *ret = v;
        return true;
}

/* YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM), 't'/' ' and 'z' accepted
 * as RFC 3339 allows; fractions are dropped (times are whole seconds). */
static int rfc3339(const char *s, uint64_t *ret) {
        struct tm tm = { 0 };
        int y, mo, d, h, mi, sec, oh = 0, om = 0;
        long off = 0;
        time_t t;

        if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
            !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s + 11, 2, &h) ||
            s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
                return -EINVAL;
        s += 19;
        if (*s == '.') {
                s++;
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                while (*s >= '0' && *s <= '9')
                        s++;
        }
        if ((*s == 'Z' || *s == 'z') && !s[1]) {
                off = 0;
        } else if ((*s == '+' || *s == '-') && digits(s + 1, 2, &oh) && s[3] == ':' && digits(s + 4, 2, &om) &&
                   !s[6] && oh < 24 && om < 60) {
                off = (*s == '-' ? -1 : 1) * (oh * 3600L + om * 60L);
        } else {
                return -EINVAL;
        }
        if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
                return -EINVAL;
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = sec;
        t = timegm(&tm);
        if (t == (time_t)-1 || tm.tm_mday != d || (int64_t)t - off <= 0)
                return -EINVAL; /* timegm normalised e.g. Feb 30 into March */
        *ret = (uint64_t)((int64_t)t - off);
        return 0;
}

int cli_parse_duration(const char *s, unsigned long long max, unsigned long long *ret) {
        unsigned long long v;

        if (!s || !*s)
                return -EINVAL;
        if (cli_parse_u64(s, max, &v) < 0 && (duration(s, &v) < 0 || v > max))
                return -EINVAL;
        *ret = v;
        return 0;
}

int cli_parse_time(const char *s, uint64_t *ret) {
        unsigned long long v;

        if (!s || !*s)
                return -EINVAL;
        if (s[0] == '+')
                return duration(s + 1, &v) < 0 ? -EINVAL : (*ret = (uint64_t)time(NULL) + v, 0);
        if (duration(s, &v) == 0)
                return *ret = (uint64_t)time(NULL) + v, 0;
        if (strchr(s, '-'))
                return rfc3339(s, ret);
        if (cli_parse_u64(s, (unsigned long long)INT64_MAX, &v) < 0 || v == 0)
                return -EINVAL;
        *ret = v;
        return 0;
}
