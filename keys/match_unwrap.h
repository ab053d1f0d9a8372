/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Line-wrapped text through the matcher (red team rt7 F9): base64 as MIME
 * (CRLF every 76 characters) or PEM and base64(1) (LF every 64 or 76)
 * write it breaks a value's base64 form across lines, where a scan of the
 * text as it is cannot see it.  This scans the text with every CR and LF
 * left out -- a second pass for a caller that holds a whole body (the
 * sandbox's outbound leak guard); the matcher's own streams are unchanged.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "match.h"

/* Does p[0..n) hold a CR or an LF (else the pass would see nothing new)? */
bool cb_scan_has_breaks(const void *p, size_t n);

/* Scan p[0..n) without its CR and LF bytes (no copy: the pieces between
 * them are fed in turn to one stream over m), hit called as by
 * cb_scan_stream_new (offsets are into the text without its breaks).  0,
 * a callback's negative return, or -ENOMEM. */
int cb_scan_unwrapped(const cb_matcher *m, const void *p, size_t n, cb_scan_hit_fn hit, void *ctx);
