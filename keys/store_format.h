/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Byte layout of the store files (all integers big-endian; "lv" = u32 length
 * + bytes).  Every byte is covered by a checksum, a MAC or an AEAD tag.
 *
 * header (at most CB_HEADER_MAX bytes):
 *   "CBSTORE1" | u32 format (1) | store id[16] | u64 created | u8 nslots
 *   nslots x ( u8 kind | lv params | nonce[24] | wrapped KEK[48] )
 *   commit: u64 generation | log id[16] | u64 log length | log head[32]
 *   mac[32]       BLAKE2b-256 keyed with the header MAC key (from the KEK)
 *   checksum[32]  BLAKE2b-256 unkeyed, over everything before it
 *
 * log-<hex log id> (append-only; bytes past the committed length come from
 * a write interrupted before its header commit: open keeps the complete,
 * MAC-valid records there (roll forward) and drops a torn remainder):
 *   records: u32 body length | body | mac[32]
 *   mac_i = BLAKE2b-256(key = log MAC key, mac_{i-1} | u32 length | body),
 *   mac_0 = BLAKE2b-256(key = log MAC key, "cblog1" | store id | log id);
 *   the header commits the length and the last mac (the head).
 *
 * record body: u8 type | u64 generation | u64 time | fields by type:
 *   PUT:       lv name | u32 version | u8 state | u64 created | lv metadata |
 *              dek nonce[24] | wrapped DEK[48] | value nonce[24] | lv ciphertext
 *   STATE:     lv name | u32 version | u8 state
 *   TOMBSTONE: lv name | u32 version | u64 created     (a destroyed version)
 *   LEAK:      lv name | u32 version | hash[32]         (version marked leaked;
 *              hash = BLAKE2b-256 of the value keyed with a key derived from
 *              the KEK, so put can refuse the value for ever; kept by
 *              compaction after the version is destroyed)
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "kek.h"

#define CB_HEADER_MAGIC     "CBSTORE1"
#define CB_FORMAT_VERSION   1
#define CB_HEADER_MAX       (64 * 1024)
#define CB_SLOTS_MAX        8
#define CB_NONCE_LEN        24
#define CB_WRAPPED_KEY_LEN  48 /* 32-byte key + 16-byte tag */
#define CB_MAC_LEN          32
#define CB_LOG_ID_LEN       16
#define CB_RECORD_MAX       (128 * 1024)
#define CB_LOG_MAX          ((size_t)1 << 30)

typedef struct cb_hdr_slot {
        uint8_t kind;
        const unsigned char *params; /* points into the parsed bytes */
        size_t params_len;
        const unsigned char *nonce;
        const unsigned char *wrapped;
} cb_hdr_slot;

typedef struct cb_header {
        unsigned char store_id[CB_STORE_ID_LEN];
        uint64_t created;
        size_t nslots;
        cb_hdr_slot slots[CB_SLOTS_MAX];
        size_t slots_off, slots_end; /* the slot bytes, reused verbatim on rewrite */
        uint64_t generation;
        unsigned char log_id[CB_LOG_ID_LEN];
        uint64_t log_len;
        unsigned char log_head[CB_MAC_LEN];
        size_t mac_off;              /* offset of the MAC; bytes before it are MAC'd */
} cb_header;

/* Check the checksum, then parse.  CB_E_INTEGRITY (message says what) on
 * any mismatch, malformed field or trailing byte.  Pointers in *ret point
 * into p. */
int cb_header_parse(const unsigned char *p, size_t len, cb_header *ret);

/* Serialise: prefix and slot bytes (from slots[0..slots_len)), then the
 * commit fields from h, then MAC (with mac_key) and checksum. */
int cb_header_build(cb_buf *out, const cb_header *h, const unsigned char *slot_bytes, size_t slots_len,
                    const unsigned char mac_key[32]) __attribute__((warn_unused_result));

/* Append one slot's bytes. */
int cb_header_put_slot(cb_buf *out, uint8_t kind, const unsigned char *params, size_t params_len,
                       const unsigned char nonce[CB_NONCE_LEN], const unsigned char wrapped[CB_WRAPPED_KEY_LEN])
        __attribute__((warn_unused_result));

enum cb_record_type {
        CB_REC_PUT = 1,
        CB_REC_STATE = 2,
        CB_REC_TOMBSTONE = 3,
        CB_REC_LEAK = 4,
};

typedef struct cb_record {
        uint8_t type;
        uint64_t generation;
        uint64_t time;
        const unsigned char *name; /* not NUL-terminated; checked charset */
        size_t name_len;
        uint32_t version;
        uint8_t state;
        uint64_t created;
        const unsigned char *meta;
        size_t meta_len;
        const unsigned char *dek_nonce, *wrapped_dek, *val_nonce, *ct;
        size_t ct_len;
        const unsigned char *leak_hash; /* CB_REC_LEAK: CB_MAC_LEN bytes */
} cb_record;

/* Parse one record body (already MAC-verified).  -EBADMSG when malformed,
 * a name fails cb_name_check's rules, a state is unknown, or bytes trail. */
int cb_record_parse(const unsigned char *body, size_t len, cb_record *ret);

/* Encode a record body per rec->type (pointers as in cb_record_parse). */
int cb_record_encode(cb_buf *out, const cb_record *rec) __attribute__((warn_unused_result));

/* Chain helpers. */
void cb_log_chain_start(unsigned char out[CB_MAC_LEN], const unsigned char key[32],
                        const unsigned char store_id[CB_STORE_ID_LEN], const unsigned char log_id[CB_LOG_ID_LEN]);
void cb_log_chain_next(unsigned char out[CB_MAC_LEN], const unsigned char key[32], const unsigned char prev[CB_MAC_LEN],
                       const unsigned char *framed, size_t framed_len);

/* 1 if name[0..n) has the allowed charset and length. */
int cb_name_valid(const unsigned char *name, size_t n);
