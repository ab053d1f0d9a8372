/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Heap memory given back after a burst.  The daemon's requests (token,
 * redeem, scan bodies, proxy jobs with their 64 KiB buffers, libcurl's and
 * OpenSSL's blocks, libmicrohttpd's connection pools) are malloc'd and freed
 * from several threads, so glibc spreads them over per-thread arenas; what a
 * burst freed stays in those arenas (below their tops, where glibc's own
 * trimming never reaches) until something calls malloc_trim(3).
 */
#pragma once

/* At start, before the threads: blocks of 128 KiB and more are always
 * their own mapping, unmapped when freed.  glibc otherwise raises that
 * threshold to the largest such block freed (up to 32 MiB), and the token
 * index and free list a burst grew then land in an arena, where a block
 * still in use above them keeps their pages.  Costs an mmap/munmap per such
 * block; no request path allocates one (proxy buffers are 64 KiB).  And
 * glibc's own trimming of an arena's top starts at 4 MiB free there, not
 * 128 KiB: memtrim_tick does the giving back, not every free on a request
 * path (which made the next request fault the same pages in again). */
void memtrim_init(void);

/* Once a second, outside any lock the serving threads share: after a tick
 * in which the process used at least 10 ms of CPU (work), the third and the
 * 35th quiet tick in a row (under 10 ms each) run malloc_trim(0), giving
 * every arena's free pages back (MADV_DONTNEED).  Under load it runs at
 * most once in 5 busy ticks, and only when the RSS stands 5 % (2 MiB at
 * least) above the busy period's reference level (its RSS after 5 s,
 * lowered by each trim that got below it): a plateau a peak left is given
 * back while the load goes on (a 120 s soak at 4,400 requests/s: 24 trims,
 * 4.9-18 MiB back, 1.6-12.7 ms each).  Says so on stderr (one line) when it gave back at
 * least 1 MiB. */
void memtrim_tick(void);
