/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The injection proxy's decision on a raw request, as pure functions (no
 * I/O, no lock, no global state), so the whole of it can be unit-tested and
 * fuzzed (tests/fuzz/fuzz-proxy-request.c): the request head's syntax and
 * framing (RFC 9112 §6), which client headers may go upstream, the query as
 * it goes upstream, where a token hides, a streaming scan of form bodies
 * for method overrides, and the framing of upstream responses.
 * docs/hardening-proxy.md states the rules these implement.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "egress.h"   /* CB_DEST_HOST_MAX */
#include "store.h"    /* CB_NAME_MAX */

#define CB_PREQ_TARGET_MAX   8192          /* request-target bytes */
#define CB_PREQ_HEADERS_MAX  100           /* header fields */
#define CB_PREQ_HEAD_BYTES   (16 * 1024)   /* header names and values together */
#define CB_PREQ_BOUNDARY_MAX 70            /* RFC 2046 */

/* One header field as the HTTP layer parsed it. */
typedef struct cb_preq_header {
        const char *name;
        size_t name_len;
        const char *value;
        size_t value_len;
        bool folded;                  /* it was continued on a next line (obs-fold) */
} cb_preq_header;

typedef enum cb_preq_frame {
        CB_FRAME_NONE,                /* no body */
        CB_FRAME_LENGTH,              /* one valid Content-Length > 0 */
        CB_FRAME_CHUNKED,             /* Transfer-Encoding: chunked (length unknown) */
} cb_preq_frame;

typedef enum cb_preq_body {
        CB_BODY_OTHER,
        CB_BODY_FORM,                 /* application/x-www-form-urlencoded */
        CB_BODY_MULTIPART,            /* multipart/form-data with a valid boundary */
        CB_BODY_MULTIPART_BAD,        /* multipart/form-data without a usable boundary */
        CB_BODY_JSON,                 /* JSON (Laravel reads "_method" from a JSON body too) */
} cb_preq_body;

/* The decided head of a request. */
typedef struct cb_preq_head {
        unsigned status;              /* 0: acceptable; else the status to refuse with */
        char why[200];                /* with status: the reason, safe to show (no header value) */
        bool forward;                 /* absolute-form target (HTTP_PROXY style) */
        bool target_https;            /* forward: the target said https:// */
        char secret[CB_NAME_MAX + 1]; /* reverse: /v1/proxy/<secret>/... */
        char authority[CB_DEST_HOST_MAX + 16]; /* forward: host[:port] as sent */
        size_t path_off, path_len;    /* in the target; path_len 0: "/" */
        size_t query_off, query_len;  /* in the target, without '?' */
        bool has_query;
        cb_preq_frame frame;
        uint64_t length;              /* CB_FRAME_LENGTH: the announced length */
        cb_preq_body body;
        char boundary[CB_PREQ_BOUNDARY_MAX + 1];
        bool body_coded;              /* a request Content-Encoding other than identity */
} cb_preq_head;

/* Decide on a request head: method, raw request-target (target_len bytes,
 * as the client sent it, query included) and the header fields in order.
 * Fills *out; returns 0 when the request may go on, -EINVAL when it must
 * be refused with out->status (400, 405 or 431) and out->why. */
int cb_preq_decide(const char *method, const char *target, size_t target_len, const cb_preq_header *h, size_t nh,
                   cb_preq_head *out);

/* What happens to one client header going upstream. */
typedef enum cb_preq_hclass {
        CB_HDR_FORWARD,
        CB_HDR_HOP,                   /* hop-by-hop or framing: the broker's own */
        CB_HDR_CREDENTIAL,            /* where a token or credential travels; the injected header */
        CB_HDR_OVERRIDE,              /* method/path override, Range */
        CB_HDR_ROUTING,               /* Forwarded, X-Forwarded-*, X-Original-*, X-Envoy-*... */
} cb_preq_hclass;

/* Class of header name (name_len bytes), compared case-folded with '-'
 * and '_' alike; inj_name: the template's header (or NULL); connection:
 * the Connection header's value (names more hop-by-hop headers), or NULL. */
cb_preq_hclass cb_preq_header_class(const char *name, size_t name_len, const char *inj_name, const char *connection);

/* Does s (n bytes) carry a credbroker token (cbt_ with a valid checksum),
 * as is or once percent-decoded? */
bool cb_preq_holds_token(const char *s, size_t n);

/* A parameter name being normalised, byte by byte, the way PHP reads it:
 * percent-decoded, '+' as space, leading spaces dropped, ' ' '.' '-' as
 * '_', case-folded, cut at '[' (an array: the same variable) or a NUL.
 * Zero-initialise; feed; flush; ask. */
#define CB_PNAME_MAX 40
typedef struct cb_pname {
        char s[CB_PNAME_MAX + 2];
        size_t n;
        int pct;
        char raw[2];
        bool started, frozen;
} cb_pname;
void cb_pname_byte(cb_pname *p, unsigned char c);
void cb_pname_flush(cb_pname *p);
/* Is the (flushed) name a method override ("_method" and kin)? */
bool cb_pname_override(const cb_pname *p);

/* Is a form/query parameter name (raw, as sent: percent-escaped, '+' for
 * space) a method override ("_method" and kin) once normalised the way PHP
 * and others read it, or, with also non-NULL, that parameter? */
bool cb_preq_param_is(const char *raw, size_t n, const char *also);

/* The query as it goes upstream: the raw query (n bytes) byte for byte,
 * minus every parameter cb_preq_param_is(name, drop) names (drop_overrides:
 * the method overrides too).  A new malloc'd string in *ret; -ENOMEM. */
int cb_preq_query_filter(const char *q, size_t n, const char *drop, bool drop_overrides, char **ret);

/* A streaming scan of a request body for a method-override field: an
 * x-www-form-urlencoded parameter or a multipart/form-data part named like
 * "_method", or a JSON object key that reads so.  Bounded state; bytes are
 * never kept beyond a part's headers. */
#define CB_OVSCAN_PART_HEAD_MAX 8192
typedef struct cb_ovscan {
        cb_preq_body kind;
        bool hit;                     /* found (sticky) */
        const char *why;              /* with hit: what was found (static text) */
        /* form; JSON keys */
        cb_pname name;
        bool in_value;
        int jstate;                   /* JSON: outside a string, in one, after "\", in \uXXXX, after one */
        unsigned jhex, jn;
        /* multipart */
        char delim[CB_PREQ_BOUNDARY_MAX + 4]; /* "\n--" boundary */
        size_t dlen, dmatch;
        int mstate;
        char *head;                   /* a part's header block (malloc'd, at most CB_OVSCAN_PART_HEAD_MAX) */
        size_t hlen;
} cb_ovscan;

/* Set up for a body of the given kind and boundary; -ENOMEM. */
int cb_ovscan_init(cb_ovscan *s, cb_preq_body kind, const char *boundary);
/* Scan n more bytes; true once an override field was seen (or a part's
 * headers exceed the cap: refused, never guessed). */
bool cb_ovscan_feed(cb_ovscan *s, const unsigned char *p, size_t n);
/* The body ended: true if its last field was an override. */
bool cb_ovscan_end(cb_ovscan *s);
void cb_ovscan_clear(cb_ovscan *s);

/* Framing of an upstream response head, line by line: at most one
 * Content-Length (digits only), Transfer-Encoding exactly "chunked" and
 * never with Content-Length, no obs-fold, and Content-Encoding only
 * "identity" (a compressed body cannot be checked for the secret). */
typedef struct cb_rframe {
        unsigned ncl, nte;
        bool coded;                   /* a Content-Encoding other than identity */
        const char *why;              /* set when refused */
} cb_rframe;

void cb_rframe_reset(cb_rframe *f);
/* One header line ("Name: value", CRLF or not); -EPROTO with f->why. */
int cb_rframe_line(cb_rframe *f, const char *line, size_t len);
/* The head is complete; -EPROTO with f->why. */
int cb_rframe_end(cb_rframe *f);
