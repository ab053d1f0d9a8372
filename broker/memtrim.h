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

/* Once a second, outside any lock the serving threads share: after a tick
 * in which the process used at least 10 ms of CPU (work), the third quiet
 * tick in a row (under 10 ms each) runs malloc_trim(0) once, giving every
 * arena's free pages back (MADV_DONTNEED).  Under steady load it never runs,
 * so pages in use are not given back and faulted in again.  Says so on
 * stderr (`say`-style, one line) when it gave back at least 1 MiB. */
void memtrim_tick(void);
