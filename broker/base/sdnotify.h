/* SPDX-License-Identifier: Apache-2.0 */
/*
 * systemd's readiness and watchdog protocol (sd_notify(3)), spoken directly:
 * one datagram of "KEY=VALUE\n..." to the AF_UNIX socket named by
 * $NOTIFY_SOCKET.  The protocol is stable and documented by systemd as the
 * interface to reimplement; doing so keeps libsystemd out of the daemon.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Read $NOTIFY_SOCKET and $WATCHDOG_USEC/$WATCHDOG_PID once and unset them
 * (children, e.g. hooks, must not notify in our name).  Returns true when a
 * notify socket is set, i.e. we run under Type=notify. */
bool cb_sdnotify_init(void);

/* Send state (e.g. "READY=1\nSTATUS=serving"); a no-op without a socket.
 * Returns 0, or a negative errno when the datagram could not be sent. */
int cb_sdnotify(const char *state);

/* The watchdog interval systemd asked for, in microseconds; 0 = none. */
uint64_t cb_sdnotify_watchdog_usec(void);
