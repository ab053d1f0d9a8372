/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log's format: keyed MAC chain, identifier hashing, the line
 * parser and the verifier.  Pure code (no daemon state): credbrokerd's
 * writer (audit_writer.c), its verifier, the unit test and the fuzz harness all
 * use it.
 *
 * A file is JSON lines.  Each daemon start, and each reopen (SIGHUP after
 * logrotate), begins a *segment* with a random 16-byte log id; the
 * segment's keys are
 *
 *   mac key = BLAKE2b-256(key = master, "cb-audit-mac" 0x00 || log id)
 *   id key  = BLAKE2b-256(key = master, "cb-audit-id"  0x00 || log id)
 *
 * where master is derived from the store's KEK (cb_store_derive_key,
 * context "cbaudit1").  A record is the compact JSON text C of an object
 * holding "seq" (0 for the segment's first record, then +1 per record),
 * written as C without its closing brace, then ,"mac":"<64 hex>"} and a
 * newline, with
 *
 *   mac_0 = BLAKE2b-256(key = mac key, 32 zero bytes || C_0)
 *   mac_i = BLAKE2b-256(key = mac key, mac_{i-1}     || C_i)
 *
 * The first record (seq 0, "type":"audit.begin") names the log id ("log")
 * and links to where the previous segment ended: "prev_log", "prev_seq",
 * "prev_mac" (absent when there was none), and "offset": the file's size
 * before the header was written (0 in a fresh file), so removing whole
 * segments at the start of a file moves the next header off its offset.  Identifiers (token accessors,
 * token hashes) are written as "hk1:" + hex(BLAKE2b-128(key = id key, id)).
 *
 * The head (log id, seq and mac of the newest record) is checkpointed in
 * the state directory as one fixed-length line with a tag under master, so
 * a verifier can tell a cut tail from an intact one.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define CB_AUDIT_KEY_LEN 32
#define CB_AUDIT_MAC_LEN 32
#define CB_AUDIT_LOG_ID_LEN 16
#define CB_AUDIT_LINE_MAX (64 * 1024)         /* a longer line is not a record */
#define CB_AUDIT_ID_HASH_LEN (4 + 32)          /* "hk1:" + 32 hex */
#define CB_AUDIT_KDF_CONTEXT "cbaudit1"       /* cb_store_derive_key context for master */

typedef struct cb_audit_keys {
        unsigned char mac[CB_AUDIT_KEY_LEN];
        unsigned char id[CB_AUDIT_KEY_LEN];
} cb_audit_keys;

/* A segment's keys from master and its log id (caller wipes ret). */
void cb_audit_segment_keys(const unsigned char master[CB_AUDIT_KEY_LEN],
                           const unsigned char log_id[CB_AUDIT_LOG_ID_LEN], cb_audit_keys *ret);

/* The keyed hash of an identifier: "hk1:<32 hex>" NUL-terminated in out. */
void cb_audit_id_hash(const cb_audit_keys *k, const char *id, char out[CB_AUDIT_ID_HASH_LEN + 1]);

/* A JSON string for text that may not be UTF-8 (paths, URLs, methods,
 * reasons built from them): s itself when valid, else with every byte that
 * is not part of a valid UTF-8 sequence written as the four characters
 * \xNN.  NULL s is "".  NULL only when out of memory. */
json_t *cb_json_string_lossy(const char *s);

/* A malloc'd copy of s with every token accessor in it ("cba_" + 24 hex,
 * any case) replaced by its keyed hash (of the lowercase form), so free
 * text (a refusal's reason) never carries one in the clear.  NULL on ENOMEM. */
char *cb_audit_scrub_ids(const cb_audit_keys *k, const char *s);

/* In the object o (modified in place, nested members too): the
 * identifier members "accessor", "token_hash", "token", "by_accessor" and
 * the array "accessors" replaced by keyed hashes (other shapes removed),
 * and every accessor inside any other string scrubbed as above. */
void cb_audit_hide_ids(const cb_audit_keys *k, json_t *o);

/* Seal the compact JSON object text canon[0..len) (ending in '}', with
 * "seq" and without "mac") chained to prev: writes the record's MAC to
 * ret_mac and a malloc'd, NUL-terminated line (with its newline) to
 * *ret_line, its length without the NUL to *ret_len.  0,
 * -EINVAL (not an object text), -ENOMEM. */
int cb_audit_seal(const cb_audit_keys *k, const unsigned char prev[CB_AUDIT_MAC_LEN], const char *canon, size_t len,
                  unsigned char ret_mac[CB_AUDIT_MAC_LEN], char **ret_line, size_t *ret_len)
        __attribute__((warn_unused_result));

/* One parsed line. */
typedef struct cb_audit_line {
        uint64_t seq;
        bool begin; /* seq 0, "type":"audit.begin" */
        unsigned char log_id[CB_AUDIT_LOG_ID_LEN];     /* begin only */
        bool has_prev;                                  /* begin only */
        unsigned char prev_log_id[CB_AUDIT_LOG_ID_LEN];
        uint64_t prev_seq;
        unsigned char prev_mac[CB_AUDIT_MAC_LEN];
        bool has_offset;                                /* begin only; absent in logs before it was added */
        uint64_t offset;                                /* the file's size before this record */
        unsigned char mac[CB_AUDIT_MAC_LEN];
        char *canon; /* malloc'd: the bytes the MAC covers */
        size_t canon_len;
} cb_audit_line;

/* Parse one line (without its newline), at most CB_AUDIT_LINE_MAX bytes.
 * 0, or -EBADMSG with why in err (never the line's bytes). */
int cb_audit_line_parse(const char *p, size_t n, cb_audit_line *ret, char *err, size_t errlen)
        __attribute__((warn_unused_result));
void cb_audit_line_done(cb_audit_line *l);

/* Where the log's newest record is (checkpoint or the daemon's memory). */
typedef struct cb_audit_head {
        bool set;
        unsigned char log_id[CB_AUDIT_LOG_ID_LEN];
        uint64_t seq;
        unsigned char mac[CB_AUDIT_MAC_LEN];
} cb_audit_head;

#define CB_AUDIT_HEAD_TEXT_LEN 200 /* fixed: "cbaudithead1 LOG SEQ MAC TAG\n" */
/* Encode head with its tag under master into out (exactly
 * CB_AUDIT_HEAD_TEXT_LEN bytes, space-padded, newline-terminated). */
void cb_audit_head_encode(const unsigned char master[CB_AUDIT_KEY_LEN], const cb_audit_head *h,
                          char out[CB_AUDIT_HEAD_TEXT_LEN]);
/* Decode and check the tag: 0, -EBADMSG (malformed or forged). */
int cb_audit_head_decode(const unsigned char master[CB_AUDIT_KEY_LEN], const char *p, size_t n, cb_audit_head *ret)
        __attribute__((warn_unused_result));

/* After a crash between a record's write and its checkpoint, the log's last
 * line may be one record past head.  If line (without its newline) is the
 * next record of head's segment, or a segment header linked to head, move
 * head to it and return 1; otherwise 0 (head unchanged). */
int cb_audit_head_catch_up(const unsigned char master[CB_AUDIT_KEY_LEN], cb_audit_head *head, const char *line,
                           size_t n);

/* The verifier: feed each file's lines in order (files oldest first). */
typedef struct cb_audit_verifier {
        const unsigned char *master;
        cb_audit_keys keys; /* the current segment's */
        bool in_segment;
        unsigned char log_id[CB_AUDIT_LOG_ID_LEN];
        uint64_t seq;
        unsigned char mac[CB_AUDIT_MAC_LEN];
        uint64_t records, segments;
        uint64_t line;      /* line number in the current file */
        uint64_t offset;    /* byte offset of the next line in the current file */
        uint64_t no_offset; /* segment headers without "offset" (older format) */
        char start_note[200]; /* the first file starts with a link to an older one */
        bool failed;
        uint64_t bad_line;  /* the first bad line (1-based; may be last line + 1 for a cut tail) */
        char problem[400];
        bool tail_checked;
        char tail_note[700];
} cb_audit_verifier;

void cb_audit_verifier_init(cb_audit_verifier *v, const unsigned char master[CB_AUDIT_KEY_LEN]);
/* A new file starts (line numbers restart at 1). */
void cb_audit_verifier_file(cb_audit_verifier *v);
/* One line of the current file, without its newline; complete is false
 * for a last line that has no newline.  Returns 0 while everything is
 * intact, 1 once a problem was found (v->bad_line, v->problem). */
int cb_audit_verifier_line(cb_audit_verifier *v, const char *p, size_t n, bool complete);
/* After the last file: check the tail against head (may be NULL or unset:
 * the tail is then reported unchecked).  required: the last file holds the
 * head's segment (it is the log being written), so a missing segment is a
 * cut tail; otherwise it is only noted.  Returns 0 or 1 as above. */
int cb_audit_verifier_end(cb_audit_verifier *v, const cb_audit_head *head, bool required);
void cb_audit_verifier_done(cb_audit_verifier *v);

/* Verify files (oldest first) against head: opens each O_NOFOLLOW, reads
 * line by line.  Returns 0 with the outcome in v (v->failed), or -errno
 * with a message (cb_error_last) when a file cannot be read.  The caller
 * calls cb_audit_verifier_done. */
int cb_audit_verify_files(cb_audit_verifier *v, const char *const *paths, size_t n, const cb_audit_head *head,
                          bool required, size_t *ret_bad_file) __attribute__((warn_unused_result));
