/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Idle heap trimming (see memtrim.h).
 *
 * Cost: malloc_trim walks every arena's free chunks under that arena's lock
 * and madvises the whole free pages; a thread that allocates from the arena
 * meanwhile waits.  It runs when the daemon has been quiet for three
 * seconds, and again after 35 (for the proxy's pooled connections, given
 * back after 30), twice per busy period, and under load at most every 5 s
 * when the heap grew 5 % past its level (busy_tick): measured after the issue-19 burst (64
 * clients, 100,000 tokens) it took a few milliseconds (the log line says
 * how many).  The pages it gives back fault in again on the next burst:
 * one fault per 4 KiB page touched, the price of an idle RSS near the
 * pre-burst figure.  The wipe-on-free hooks (keys/wipe_heap.c) wiped every
 * such block when it was freed, so nothing given back holds a value.
 */
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "memtrim.h"

#define BUSY_US 10000      /* CPU per one-second tick that counts as work */
#define QUIET_TICKS 3
/* Again later, for what was freed after a longer quiet: the proxy's pooled
 * connections (proxy_loop.c POOL_IDLE_NS, 30 s). */
#define QUIET_TICKS_LATE 35

static uint64_t cpu_us(void) {
        struct rusage ru;

        if (getrusage(RUSAGE_SELF, &ru) < 0)
                return 0;
        return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
               (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static long rss_kb(void) {
        long pages = 0, rss = 0;
        FILE *f = fopen("/proc/self/statm", "re");

        if (f) {
                if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
                        rss = 0;
                fclose(f);
        }
        return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* whether the last tick was busy, and whether any was since the late quiet trim */
static bool worked_before, worked;

void memtrim_init(void) {
        (void)mallopt(M_MMAP_THRESHOLD, 128 * 1024); /* a fixed threshold: no dynamic raising */
        /* glibc trims an arena's top itself once 128 KiB (the default,
         * fixed by the line above) lie free there: a per-request block at
         * the top of a loop thread's heap (libcurl's, wiped on free) was
         * given back with madvise on every free and faulted in again on the
         * next request (perf, issue 18: ~0.75 us per proxied request).
         * memtrim_tick gives free pages back instead, at quiet and under
         * load, whatever this threshold. */
        (void)mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
}

/* malloc_trim(0), said on stderr when it gave back at least 1 MiB;
 * returns the RSS after it (KiB). */
static long trim(const char *when) {
        long before = rss_kb();
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        malloc_trim(0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long after = rss_kb();
        if (before - after >= 1024)
                cb_log(CB_LOG_INFO, "%s: gave %ld KiB of heap back (RSS %ld -> %ld KiB, malloc_trim %.1f ms)",
                       when, before - after, before, after,
                        (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
        return after;
}

/* Under load: once every BUSY_TRIM_TICKS busy ticks at most, and only when
 * the RSS stands BUSY_GROWTH_PCT (at least BUSY_GROWTH_MIN_KB) above its
 * reference: its level after the first BUSY_TRIM_TICKS of the busy period,
 * lowered by every trim that got below it (never raised, so a plateau left
 * by a past peak keeps being trimmed).  A peak of requests in flight (the
 * soak: 466 descriptors at once on a shared machine) grows the arenas;
 * the freed memory would otherwise stay until the load stops.  Every 5 s:
 * with 30 s, the soak's RSS swung 46-77 MB between trims (the pages the
 * churn touches again); with 5 s, 45-59 MB, for trims of 2-13 ms. */
#define BUSY_TRIM_TICKS 5
#define BUSY_GROWTH_PCT 5
#define BUSY_GROWTH_MIN_KB 2048

static void busy_tick(void) {
        static unsigned since;
        static long ref;

        if (!worked_before) {                     /* a busy period begins */
                since = 0;
                ref = 0;
        }
        if (++since < BUSY_TRIM_TICKS)
                return;
        since = 0;
        long now = rss_kb(), grow = ref * BUSY_GROWTH_PCT / 100;
        if (grow < BUSY_GROWTH_MIN_KB)
                grow = BUSY_GROWTH_MIN_KB;
        if (!ref) {
                ref = now;
                return;
        }
        if (now - ref < grow)
                return;
        long after = trim("under load, the heap grew past its level");
        if (after < ref)
                ref = after;
}

void memtrim_tick(void) {
        static uint64_t last;
        static unsigned quiet;
        uint64_t now = cpu_us(), used = now - last;

        last = now;
        if (used >= BUSY_US) {
                busy_tick();
                worked = worked_before = true;
                quiet = 0;
                last = cpu_us();                  /* a trim's own CPU is not work */
                return;
        }
        worked_before = false;
        if (!worked)
                return;
        ++quiet;
        if (quiet != QUIET_TICKS && quiet != QUIET_TICKS_LATE)
                return;
        if (quiet == QUIET_TICKS_LATE)
                worked = false;
        (void)trim("quiet after a busy period");
        last = cpu_us(); /* the trim's own CPU is not work */
}
