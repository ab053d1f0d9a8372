/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The injection proxy's pure parts, kept apart from the HTTP plumbing so
 * they can be unit-tested and fuzzed: sealed destinations, the SSRF address
 * rules, request paths and headers, the injection template.  (Responses are
 * redacted with keys/match.h, the matcher exec and the scanner share.)
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CB_DEST_HOST_MAX 253

/* One sealed host entry: "name[:port]" (HTTPS) or "http://name[:port]";
 * name may be an IPv4 literal or a bracketed IPv6 literal ("[::1]:8443"). */
typedef struct cb_dest {
        bool https;
        bool literal;                 /* host is an IP literal */
        char host[CB_DEST_HOST_MAX + 1]; /* lower case; IPv6 without brackets */
        unsigned port;                /* 443 / 80 when absent */
} cb_dest;

/* Parse a sealed entry; -EINVAL with a message. */
int cb_dest_parse(const char *entry, cb_dest *out);

/* Parse a request target's authority ("host[:port]", IPv6 bracketed) for a
 * given scheme into out; -EINVAL. */
int cb_dest_parse_authority(const char *authority, bool https, cb_dest *out);

/* Same scheme, host and port. */
bool cb_dest_equal(const cb_dest *a, const cb_dest *b);

/* Why a resolved address must not be dialled unless sealed literally:
 * "loopback", "private", "link-local", "cloud metadata", "unspecified",
 * "multicast", "shared (CGNAT)", "reserved", ...; NULL when it is public. */
const char *cb_addr_refusal(const struct sockaddr *sa);

/* Does the IP literal `literal` (as in cb_dest.host) denote address sa? */
bool cb_addr_is(const struct sockaddr *sa, const char *literal);

/* A request path fit to be checked against a prefix and sent upstream:
 * starts with '/', no dot segments, no encoded '.', '/', '\' or NUL, no
 * backslash, no control bytes, no '#'.  -EINVAL with a message. */
int cb_path_check(const char *path, size_t len);

/* Is path under the sealed prefix: the prefix itself, or it followed by
 * '/' (or the prefix ends in '/')? */
bool cb_path_under(const char *path, const char *prefix);

/* Does a header (name, value) carry CR, LF or NUL, or a name outside the
 * HTTP token characters? */
bool cb_header_bad(const char *name, const char *value);

/* Hop-by-hop and framing headers that are never forwarded. */
bool cb_header_hop(const char *name);

/* An injection template. */
typedef enum cb_inject_kind { CB_INJECT_HEADER, CB_INJECT_BASIC, CB_INJECT_QUERY } cb_inject_kind;
typedef struct cb_inject {
        cb_inject_kind kind;
        char name[128];               /* header name, basic user or query parameter */
        char prefix[256], suffix[256];/* header value around {} */
} cb_inject;

/* Parse "Header: text {} text", "basic:USER" or "query:PARAM"; NULL or ""
 * means "Authorization: Bearer {}".  -EINVAL with a message. */
int cb_inject_parse(const char *tmpl, cb_inject *out);

/* The token a client sent in the template's header value, if the value has
 * the template's prefix and suffix around it: a pointer into value and its
 * length, else NULL. */
const char *cb_inject_token(const cb_inject *in, const char *value, size_t *ret_len);
