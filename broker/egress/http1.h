/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 message heads and chunked bodies as a sandbox's plain-HTTP
 * forwarding reads them (issue 17: absolute-form requests to allowed hosts
 * are forwarded and inspected; sandbox/forward.c).  The forwarder frames
 * what it sends itself, so these only have to split what arrived, strictly:
 * whatever a lenient parser elsewhere might read differently is refused.
 * What a request's head may hold (framing, header names, the target) is
 * then decided by the proxy's own rules (proxy_request.h, cb_preq_decide).
 *
 * Contract: pure, no allocation, no I/O, bounded.  A head is at most
 * CB_H1_HEAD_MAX bytes and CB_PREQ_HEADERS_MAX fields; lines end in CRLF
 * (a bare CR or LF is refused), no obs-fold, no whitespace before a
 * field's colon.  The fields point into the caller's buffer.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy_request.h" /* cb_preq_header, CB_PREQ_HEADERS_MAX */

#define CB_H1_HEAD_MAX (32 * 1024)   /* a request or response head, start line included */
#define CB_H1_CHUNK_EXT_MAX 1024     /* chunk extensions per chunk line */
#define CB_H1_TRAILER_MAX 8192       /* trailer section of a chunked body */

typedef struct cb_h1_head {
        unsigned status;             /* on refusal: 400 or 431; for a response: its status code */
        const char *why;             /* on refusal: static text, safe to show */
        char method[32];             /* request */
        const char *target;          /* request: the request-target as sent */
        size_t target_len;
        unsigned minor;              /* HTTP/1.minor (0 or 1) */
        size_t line_len;             /* the start line, CRLF included */
        cb_preq_header h[CB_PREQ_HEADERS_MAX];
        size_t nh;
} cb_h1_head;

/* Split a request head: buf[0..n) is exactly the head, its final CRLFCRLF
 * included.  0, or -EINVAL with out->status and out->why. */
int cb_h1_request(const char *buf, size_t n, cb_h1_head *out);

/* Split a response head the same way, and check its framing: status
 * 100-999, at most one Content-Length (digits only), Transfer-Encoding
 * never with Content-Length.  0, or -EINVAL with out->why. */
int cb_h1_response(const char *buf, size_t n, cb_h1_head *out);

/* Where the head ends in buf[0..n): the length up to and including the
 * first CRLFCRLF, or 0 when it is not there yet. */
size_t cb_h1_head_end(const char *buf, size_t n);

/* A chunked body (RFC 9112 §7.1), decoded as it arrives: zero-initialise,
 * then feed.  Chunk sizes are hex digits only (at most 15), extensions are
 * skipped (at most CB_H1_CHUNK_EXT_MAX bytes of visible text a line),
 * trailers are read and dropped (at most CB_H1_TRAILER_MAX bytes). */
typedef struct cb_h1_chunked {
        int state;
        uint64_t left;               /* data bytes left in this chunk */
        unsigned digits;
        size_t ext, trailer;
        bool done;                   /* the last chunk and the trailer section are in */
        const char *why;             /* on refusal: static text */
} cb_h1_chunked;

/* Decode in[0..n) into out (room for n bytes; out may be in itself: the
 * data never moves forward, so decoding in place is fine): *out_len data bytes,
 * *consumed input bytes (less than n only once done: what follows the
 * body).  0, or -EINVAL with c->why (and nothing more may be fed). */
int cb_h1_chunked_feed(cb_h1_chunked *c, const unsigned char *in, size_t n, unsigned char *out, size_t *out_len,
                       size_t *consumed);
