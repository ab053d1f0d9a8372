/* SPDX-License-Identifier: Apache-2.0 */
/* sd_notify(3) without libsystemd: see sdnotify.h. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"

static struct sockaddr_un notify_addr;
static socklen_t notify_len; /* 0: no socket */
static uint64_t watchdog_usec;

bool cb_sdnotify_init(void) {
        const char *s = getenv("NOTIFY_SOCKET"), *w = getenv("WATCHDOG_USEC"), *wp = getenv("WATCHDOG_PID");
        size_t n;

        if (s && (s[0] == '/' || s[0] == '@') && (n = strlen(s)) >= 2 && n < sizeof(notify_addr.sun_path)) {
                notify_addr.sun_family = AF_UNIX;
                memcpy(notify_addr.sun_path, s, n);
                if (s[0] == '@') /* abstract namespace */
                        notify_addr.sun_path[0] = '\0';
                notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        }
        if (w && (!wp || strtol(wp, NULL, 10) == (long)getpid())) {
                char *end;
                unsigned long long v = strtoull(w, &end, 10);
                if (*w && !*end)
                        watchdog_usec = v;
        }
        unsetenv("NOTIFY_SOCKET");
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
        return notify_len != 0;
}

int cb_sdnotify(const char *state) {
        int fd, r = 0;

        if (!notify_len)
                return 0;
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&notify_addr, notify_len) < 0)
                r = -errno;
        close(fd);
        return r;
}

uint64_t cb_sdnotify_watchdog_usec(void) {
        return notify_len ? watchdog_usec : 0;
}
