/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's stderr lines: "2026-12-07T13:49:35.123Z credbrokerd[PID]: LEVEL: text".
 * Under systemd, when stderr is the journal ($JOURNAL_STREAM names it), the
 * line is "<N>text" instead: journald takes the priority N from the prefix
 * and adds its own time stamp.  Never pass a secret value or a token.
 */
#pragma once

#include <stdarg.h>

enum cb_log_level { CB_LOG_ERR = 3, CB_LOG_WARNING = 4, CB_LOG_NOTICE = 5, CB_LOG_INFO = 6 };

/* Decide the line format once (reads $JOURNAL_STREAM and fstat(2)). */
void cb_log_init(void);

/* One line on stderr, written with a single write(2). */
void cb_log(enum cb_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* libmicrohttpd's MHD_OPTION_EXTERNAL_LOGGER: its messages as warning
 * lines ("http: ..."), control characters replaced, so nothing reaches
 * stderr without a time stamp and a level.  cls is unused. */
void cb_log_mhd(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* The write end of a pipe whose lines are logged as notices ("hook stderr:
 * ..."), control characters replaced, by a thread of this module started
 * at the first call: the stderr to give a hook or other child program, so
 * its diagnostics reach the daemon's stderr stamped like every other line.
 * -1 when the pipe or the thread cannot be made (then the child inherits
 * stderr as it is).  Do not close it. */
int cb_log_child_stderr(void);
