/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Secret metadata, sealed with the value: the AEAD that protects a version's
 * value takes the encoded metadata as associated data, and the log record is
 * MAC'd, so editing a host list or template on disk breaks the record.
 *
 * Encoding: a sequence of fields (u8 tag, u32 length, bytes) in strictly
 * increasing tag order, each tag at most once; unknown tags are refused (a
 * newer writer may have added a restriction we would otherwise drop).
 * An absent field (NULL string, empty list, zero time) is not encoded, so
 * adding a tag leaves every older encoding byte for byte as it was.
 *
 *   tag  field          bytes
 *   1    inject         the template text
 *   2    hosts          a list: (u32 length, text) per entry, at least one
 *   3    methods        a list, as hosts
 *   4    path_prefixes  a list, as hosts
 *   5    not_after      u64, non-zero
 *   6    labels         a list, as hosts
 *   7    ca_file        the path text, non-empty
 *   8    pin            the pin text, non-empty
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define CB_META_MAX_ENCODED   (16 * 1024)
#define CB_META_MAX_HOSTS     64
#define CB_META_MAX_METHODS   16
#define CB_META_MAX_PREFIXES  64
#define CB_META_MAX_LABELS    32
#define CB_META_MAX_TEMPLATE  512
#define CB_META_MAX_HOST      (8 + 253 + 6) /* "http://" + name + ":port" */
#define CB_META_MAX_METHOD    16
#define CB_META_MAX_PREFIX    1024
#define CB_META_MAX_LABEL     256
#define CB_META_MAX_CA_FILE   1024
#define CB_META_MAX_PINS      16
#define CB_META_PIN_ENTRY     (8 + 44)      /* "sha256//" + base64 of 32 bytes */
#define CB_META_MAX_PIN       (CB_META_MAX_PINS * (CB_META_PIN_ENTRY + 1) - 1) /* ';' between entries */

typedef struct cb_strv {
        char **v;
        size_t n;
} cb_strv;

typedef struct cb_meta {
        char *inject;         /* "Header: text {} text", "basic:USER", "query:PARAM", or NULL */
        cb_strv hosts;        /* "name[:port]" (HTTPS) or "http://name[:port]" */
        cb_strv methods;      /* upper-case HTTP methods; empty = any */
        cb_strv path_prefixes;/* each starts with '/'; empty = any */
        uint64_t not_after;   /* unix seconds; 0 = no expiry */
        cb_strv labels;       /* "key=value" */
        char *ca_file;        /* absolute path of a PEM CA bundle trusted for this secret's hosts
                               * instead of the system store; NULL = system store */
        char *pin;            /* "sha256//BASE64[;sha256//BASE64]..." (CURLOPT_PINNEDPUBLICKEY):
                               * the upstream's public key must match one; NULL = no pin */
} cb_meta;

/* Zero-initialised meta is valid and empty. */
void cb_meta_clear(cb_meta *m); /* frees contents, leaves m empty */
void cb_meta_free(cb_meta *m);  /* cb_meta_clear + free(m); NULL ok */

/* Deep copy; -ENOMEM. */
int cb_meta_copy(const cb_meta *src, cb_meta **ret);

/* Append a copy of s to v (capped by max entries); -E2BIG, -ENOMEM. */
int cb_strv_push(cb_strv *v, const char *s, size_t max);
void cb_strv_clear(cb_strv *v);

/* Check every field's syntax and caps.  Returns 0 or -EINVAL with a message
 * naming the field (cb_error_last()).  Hosts are normalised to lower case. */
int cb_meta_validate(cb_meta *m);

/* Deterministic encoding (the bytes that are authenticated). */
int cb_meta_encode(const cb_meta *m, cb_buf *out) __attribute__((warn_unused_result));

/* Parse exactly len bytes; -EBADMSG on any malformed, unknown, repeated or
 * out-of-order field or on trailing bytes; -ENOMEM. */
int cb_meta_decode(const unsigned char *p, size_t len, cb_meta **ret);
