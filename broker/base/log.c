/* SPDX-License-Identifier: Apache-2.0 */
/* stderr lines with a time stamp and a level (see log.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "text.h"

#define MHD_LOG_PER_SECOND 10

static bool to_journal;

void cb_log_init(void) {
        const char *js = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        /* JOURNAL_STREAM=DEV:INODE of the stream systemd connected; it is
         * inherited, so compare it with what stderr is now. */
        to_journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
                     (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static const char *level_name(enum cb_log_level l) {
        switch (l) {
        case CB_LOG_ERR: return "error";
        case CB_LOG_WARNING: return "warning";
        case CB_LOG_NOTICE: return "notice";
        default: return "info";
        }
}

void cb_log(enum cb_log_level level, const char *fmt, ...) {
        char line[8192]; /* an alert line carries its JSON event */
        size_t n;
        int k;
        va_list ap;

        if (to_journal) {
                k = snprintf(line, sizeof(line), "<%d>", (int)level);
        } else {
                struct timespec ts;
                struct tm tm;
                char when[32];

                clock_gettime(CLOCK_REALTIME, &ts);
                gmtime_r(&ts.tv_sec, &tm);
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
                k = snprintf(line, sizeof(line), "%s.%03ldZ credbrokerd[%d]: %s: ", when, ts.tv_nsec / 1000000L,
                             (int)getpid(), level_name(level));
        }
        n = k > 0 ? (size_t)k : 0;
        va_start(ap, fmt);
        k = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
        va_end(ap);
        size_t head = n;
        n = k < 0 ? n : n + (size_t)k > sizeof(line) - 2 ? sizeof(line) - 2 : n + (size_t)k;
        /* Messages carry names callers chose (exe paths, clients, a
         * hook's stderr): nothing in them acts on a terminal, and one
         * message is one line. */
        (void)cb_text_safe(line + head, n - head);
        line[n++] = '\n';
        /* One write: lines of several threads do not interleave. */
        if (write(STDERR_FILENO, line, n) < 0) {
                /* nowhere left to say it */
        }
}

void cb_log_mhd(void *cls, const char *fmt, va_list ap) {
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        static time_t second;
        static unsigned lines, dropped;
        time_t now = time(NULL);
        unsigned was_dropped = 0;
        char msg[1024];
        size_t n;

        (void)cls;
        /* A flood of connections (each refused at the socket's limit is a
         * message) must not become a flood of lines: MHD_LOG_PER_SECOND a
         * second, then one line saying how many were left out. */
        pthread_mutex_lock(&lock);
        if (now != second) {
                was_dropped = dropped;
                second = now;
                lines = dropped = 0;
        }
        bool say = lines < MHD_LOG_PER_SECOND;
        lines += say;
        dropped += !say;
        pthread_mutex_unlock(&lock);
        if (was_dropped)
                cb_log(CB_LOG_WARNING, "http: %u more message(s) of libmicrohttpd left out in one second", was_dropped);
        if (!say || vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
                return;
        n = strlen(msg);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
                msg[--n] = '\0';
        for (char *p = msg; *p; p++) /* one line, nothing for a terminal to interpret */
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = '?';
        cb_log(CB_LOG_WARNING, "http: %s", msg);
}

/* ---- child programs' stderr, stamped ---- */

static pthread_once_t relay_once = PTHREAD_ONCE_INIT;
static int relay_w = -1;

static void relay_line(char *s) {
        for (char *p = s; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = '?';
        if (*s)
                cb_log(CB_LOG_NOTICE, "hook stderr: %s", s);
}

static void *relay(void *arg) {
        int fd = (int)(intptr_t)arg;
        char buf[1024];
        size_t n = 0;

        for (;;) {
                ssize_t k = read(fd, buf + n, sizeof(buf) - 1 - n);
                char *start = buf, *nl;

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break; /* never: the daemon holds the write end */
                n += (size_t)k;
                while ((nl = memchr(start, '\n', (size_t)(buf + n - start)))) {
                        *nl = '\0';
                        relay_line(start);
                        start = nl + 1;
                }
                n = (size_t)(buf + n - start);
                if (n == sizeof(buf) - 1) { /* a line this long is cut into lines */
                        buf[n] = '\0';
                        relay_line(buf);
                        n = 0;
                }
                memmove(buf, start, n);
        }
        close(fd);
        return NULL;
}

static void relay_start(void) {
        pthread_attr_t at;
        pthread_t t;
        int p[2];

        if (pipe2(p, O_CLOEXEC) < 0)
                return;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, relay, (void *)(intptr_t)p[0]) != 0) {
                close(p[0]);
                close(p[1]);
        } else {
                relay_w = p[1];
        }
        pthread_attr_destroy(&at);
}

int cb_log_child_stderr(void) {
        pthread_once(&relay_once, relay_start);
        return relay_w;
}
