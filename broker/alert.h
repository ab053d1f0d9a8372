/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Operator alerts.  alert_raise() is the one entry point: kind names the
 * alert ("leak", "canary", ...), event is a JSON object describing it
 * (names, accessors, uids; never a value).  The caller keeps its reference.
 *
 * Today it writes one line on stderr ("credbrokerd: ALERT <kind> <json>").
 * The alerts work (issue 6 item 4: operator hook with the event on stdin,
 * denial-burst detection) replaces the body in alert.c; callers stay as
 * they are.  Thread safe; may be called with cbd.lock held.  The audit
 * record of the event is the caller's (it knows the decision name).
 */
#pragma once

#include <jansson.h>

void alert_raise(const char *kind, json_t *event);
