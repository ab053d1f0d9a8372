/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sealed provisioning blobs: how a deployment system hands the broker a
 * secret without the broker, the store or a shell history seeing it in the
 * clear.  The broker has X25519 keypairs (crypto_box); anyone holding a
 * public key can seal a payload to it with crypto_box_seal (anonymous
 * sender), offline; only the broker can open it.  Sealing gives
 * confidentiality and integrity in transit, NOT sender authenticity: who
 * may import is decided by who can reach the admin socket or write the
 * provisioning directory.
 *
 * Text form:  "cbseal1." + base64url without padding (RFC 4648 §5) of
 *
 *   key_id[8] || crypto_box_seal(payload, recipient public key)
 *
 * key_id = the first 8 bytes of BLAKE2b-256(public key) (unkeyed
 * crypto_generichash with a 32-byte output).  The outer key_id picks the
 * private key; the payload repeats it, so a blob whose outer id was edited
 * is refused even when the box still opens.
 *
 * Payload (all integers big-endian, every length checked against its cap,
 * no trailing bytes):
 *
 *   off  size  field
 *   0    1     format version, 1
 *   1    8     key_id (must equal the outer one)
 *   9    8     created: unix seconds when it was sealed, > 0
 *   17   8     not_after: unix seconds after which it must not be
 *              imported; 0 = no deadline
 *   25   4+n   name: u32 n (1..128) + the secret's name (cb_name_check)
 *   ..   4+m   metadata: u32 m (0..16384) + keys/meta.h encoding (the same
 *              bytes `put` seals with the value; m = 0: none)
 *   ..   4+v   value: u32 v (1..65536) + the value
 *
 * The public key's text form is "cbpk1." + base64url without padding of
 * the 32-byte X25519 public key.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "meta.h"
#include "secmem.h"
#include "store.h"

#define CB_PROV_FORMAT        1
#define CB_PROV_KEY_ID_LEN    8
#define CB_PROV_BLOB_PREFIX   "cbseal1."
#define CB_PROV_PK_PREFIX     "cbpk1."
#define CB_PROV_PAYLOAD_FIXED (1 + CB_PROV_KEY_ID_LEN + 8 + 8)
#define CB_PROV_PAYLOAD_MAX   (CB_PROV_PAYLOAD_FIXED + 4 + CB_NAME_MAX + 4 + CB_META_MAX_ENCODED + 4 + CB_VALUE_MAX)
#define CB_PROV_BOX_MAX       (CB_PROV_KEY_ID_LEN + crypto_box_SEALBYTES + CB_PROV_PAYLOAD_MAX)
/* Longest acceptable text: prefix + unpadded base64 of CB_PROV_BOX_MAX. */
#define CB_PROV_TEXT_MAX      (sizeof(CB_PROV_BLOB_PREFIX) - 1 + (CB_PROV_BOX_MAX * 4 + 2) / 3)
/* "cbpk1." + 43 characters + NUL. */
#define CB_PROV_PK_TEXT_LEN   (sizeof(CB_PROV_PK_PREFIX) - 1 + 43 + 1)
#define CB_PROV_KEY_ID_HEX    (2 * CB_PROV_KEY_ID_LEN + 1)

typedef struct cb_prov_payload {
        unsigned char key_id[CB_PROV_KEY_ID_LEN];
        uint64_t created;
        uint64_t not_after;
        char name[CB_NAME_MAX + 1];
        cb_meta *meta;     /* never NULL after a successful decode */
        cb_secbuf *value;
} cb_prov_payload;

/* Free what a payload owns and zero it; the value is wiped. */
void cb_prov_payload_clear(cb_prov_payload *p);

/* Encode into a new secret buffer of exactly the encoded length (it holds
 * the value).  -EINVAL (message set) for a field outside its caps. */
int cb_prov_payload_encode(const cb_prov_payload *p, cb_secbuf **ret) __attribute__((warn_unused_result));

/* Parse exactly len bytes (at most CB_PROV_PAYLOAD_MAX).  -EBADMSG with a
 * message for anything malformed, out of its caps, or trailing; the
 * metadata must also pass cb_meta_validate.  *ret is written on success
 * only; clear it with cb_prov_payload_clear. */
int cb_prov_payload_decode(const unsigned char *p, size_t len, cb_prov_payload *ret)
        __attribute__((warn_unused_result));

/* key id of a public key, and its lower-case hex (17 bytes with NUL). */
void cb_prov_key_id(const unsigned char pk[crypto_box_PUBLICKEYBYTES], unsigned char id[CB_PROV_KEY_ID_LEN]);
void cb_prov_key_id_hex(const unsigned char id[CB_PROV_KEY_ID_LEN], char out[CB_PROV_KEY_ID_HEX]);
/* 16 hex digits (either case) to an id: 0 or -EINVAL. */
int cb_prov_key_id_parse(const char *hex, unsigned char id[CB_PROV_KEY_ID_LEN]);

/* "cbpk1.…" text of a public key, and back (0 or -EINVAL with a message). */
void cb_prov_pk_format(const unsigned char pk[crypto_box_PUBLICKEYBYTES], char out[CB_PROV_PK_TEXT_LEN]);
int cb_prov_pk_parse(const char *text, unsigned char pk[crypto_box_PUBLICKEYBYTES]);

/* Seal p to pk (p->key_id is overwritten with pk's id).  *ret_text is a
 * malloc'd NUL-terminated "cbseal1.…" string (not secret: free()). */
int cb_prov_seal(const unsigned char pk[crypto_box_PUBLICKEYBYTES], cb_prov_payload *p, char **ret_text)
        __attribute__((warn_unused_result));

/* Split a blob's text (len bytes, surrounding whitespace allowed) into its
 * outer key id and sealed box (malloc'd, *ret_box_len bytes).  -EBADMSG
 * with a message: not a cbseal1 blob, bad base64, too short or too long. */
int cb_prov_blob_parse(const char *text, size_t len, unsigned char key_id[CB_PROV_KEY_ID_LEN], unsigned char **ret_box,
                       size_t *ret_box_len) __attribute__((warn_unused_result));

/* Open a box with the keypair (sk: 32 bytes in secure memory) and decode
 * the payload; its key id must equal key_id.  -EKEYREJECTED with a message
 * when the box does not open (tampered or truncated) or the ids disagree,
 * -EBADMSG when the payload inside is malformed. */
int cb_prov_open(const unsigned char *box, size_t box_len, const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                 const unsigned char *sk, const unsigned char key_id[CB_PROV_KEY_ID_LEN], cb_prov_payload *ret)
        __attribute__((warn_unused_result));

/* ---- the broker's keys, in the store (provision_store.c) ----
 *
 * The keypairs are the versions of one internal secret, "@provision" (see
 * CB_STORE_INTERNAL in store.h: no client-facing name check accepts it).
 * Each version's value is the 32-byte X25519 private key; its sealed
 * metadata carries the labels key_id=HEX and public_key=cbpk1.…  The
 * current version is the key `pubkey` prints; previous versions still
 * open blobs; retiring a key destroys its version (the private key is
 * compacted out of the log). */
#define CB_PROV_KEYS_NAME "@provision"

typedef struct cb_prov_key_info {
        uint32_t version;
        enum cb_version_state state; /* current, previous (accepted), destroyed (retired) */
        uint64_t created;
        bool known;                  /* false for a retired key: id and public key are gone */
        unsigned char key_id[CB_PROV_KEY_ID_LEN];
        unsigned char pk[crypto_box_PUBLICKEYBYTES];
} cb_prov_key_info;

/* Create the first keypair if the store has none; *ret_created (may be
 * NULL) says whether it did. */
int cb_prov_keys_ensure(cb_store *s, bool *ret_created) __attribute__((warn_unused_result));

/* Every key, oldest first; *ret is malloc'd (free()); *ret_n may be 0. */
int cb_prov_keys_list(cb_store *s, cb_prov_key_info **ret, size_t *ret_n) __attribute__((warn_unused_result));

/* The current key: -ENOENT when there is none yet. */
int cb_prov_keys_current(cb_store *s, cb_prov_key_info *ret) __attribute__((warn_unused_result));

/* Add a new keypair; it becomes current, the old one stays accepted. */
int cb_prov_keys_rotate(cb_store *s, cb_prov_key_info *ret_new) __attribute__((warn_unused_result));

/* Retire an accepted key: blobs sealed to it no longer import.  -ENOENT
 * for an unknown id, -EBUSY for the current key (rotate first). */
int cb_prov_keys_retire(cb_store *s, const unsigned char key_id[CB_PROV_KEY_ID_LEN])
        __attribute__((warn_unused_result));

/* Why an import was refused (stable; the daemon sends them as codes). */
enum cb_prov_refusal {
        CB_PROV_OK = 0,
        CB_PROV_MALFORMED,     /* not a cbseal1 blob, truncated, bad payload */
        CB_PROV_UNKNOWN_KEY,   /* sealed to a key this broker does not hold (another broker, retired) */
        CB_PROV_TAMPERED,      /* the box does not open, or its inner key id disagrees */
        CB_PROV_EXPIRED,       /* not_after is past */
        CB_PROV_FUTURE,        /* created too far in the future */
        CB_PROV_NAME_MISMATCH, /* the file name says another secret */
        CB_PROV_REPLAY,        /* not newer than a version already stored */
        CB_PROV_STORE,         /* storing failed (disk, caps) */
};
const char *cb_prov_refusal_code(enum cb_prov_refusal r);

typedef struct cb_prov_result {
        enum cb_prov_refusal refusal;
        char name[CB_NAME_MAX + 1];      /* once known */
        char key_id[CB_PROV_KEY_ID_HEX]; /* once known */
        uint64_t created;
        uint32_t version;                /* stored version (not on dry runs) */
} cb_prov_result;

/* How far in the future a blob's `created` may be (clock skew). */
#define CB_PROV_FUTURE_SKEW 300 /* seconds: a blob dated further ahead is refused (5 min of clock skew) */

/* Import one blob: parse, open with the key its id names (current or
 * previous), check not_after against now, expect_name (NULL: none; a file
 * name stripped of ".cbseal"), created against now + CB_PROV_FUTURE_SKEW
 * and against every version of the name already stored (it must be newer
 * than all of them: an older blob is a replay), then store it as the new
 * current version with created = the blob's created.  One store commit:
 * a refused blob stores nothing.  dry_run checks without storing.
 * Returns 0, or a negative errno with res->refusal and a message saying
 * why (never the value). */
int cb_prov_import(cb_store *s, const char *text, size_t len, const char *expect_name, uint64_t now, bool dry_run,
                   cb_prov_result *res) __attribute__((warn_unused_result));
