/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's counters for GET /metrics (admin.sock), rendered in the
 * Prometheus text exposition format 0.0.4.  Counting takes the module's own
 * mutex only (no other), for a few instructions; label values are
 * route names, secret names ([A-Za-z0-9._-]), alert kinds and numbers, so
 * nothing needs escaping and no value or token can appear.  Label sets are
 * capped (METRICS_SERIES_MAX per family): past that, "_other".
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define METRICS_SERIES_MAX 512

/* A reply the broker made itself: route (NULL: "unknown"), HTTP status. */
void metrics_request(const char *route, unsigned status);

/* A proxied request that ended: its secret, the upstream's status (0: no
 * answer from the upstream, e.g. TLS refused or connect failed) and how
 * long it took in nanoseconds. */
void metrics_proxy_done(const char *secret, unsigned status, uint64_t ns);

/* An alert was raised (alert.c): kind is e.g. "leak", "audit_write_failed". */
void metrics_alert(const char *kind);

/* A rotation ended (rotate.c): kind "planned" or "leaked" when a new
 * version became current, "failed" when it stopped; staging alone is not
 * counted (its promotion is). */
void metrics_rotation(const char *secret, const char *kind);

/* A live value or token was seen in scanned text (leak.c), each sighting
 * counted whether or not an alert was due: kind "value", "canary" or
 * "token" (secret "" for a token: only its accessor is known). */
void metrics_leak(const char *secret, const char *kind);

/* A record could not be written to the audit log (audit.c): one per
 * failed record, the request it belonged to refused. */
void metrics_audit_write_failed(void);

/* Gauges read by the caller (each under its owner's lock), rendered with the counters. */
typedef struct metrics_gauges {
        uint64_t tokens, secrets, approvals_pending, connections_refused, uptime_s, store_generation;
} metrics_gauges;

/* The whole exposition as a malloc'd text (free() it); NULL when out of
 * memory. */
char *metrics_render(const metrics_gauges *g, size_t *ret_len);

/* A request id for audit records that belong together (a proxy decision
 * and its completion): "r" + 8 hex digits fixed at start + a counter. */
void metrics_request_id(char out[32]);
