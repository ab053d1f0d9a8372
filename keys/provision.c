/* SPDX-License-Identifier: Apache-2.0 */
/* Sealed provisioning blobs: the payload codec, key ids, the text forms,
 * sealing and opening.  No store access here (provision_store.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "error.h"
#include "provision.h"

void cb_prov_payload_clear(cb_prov_payload *p) {
        if (!p)
                return;
        cb_meta_free(p->meta);
        cb_secbuf_free(p->value);
        cb_wipe(p, sizeof(*p));
}

int cb_prov_payload_encode(const cb_prov_payload *p, cb_secbuf **ret) {
        cb_buf meta = CB_BUF_INIT;
        cb_secbuf *out = NULL;
        size_t nlen = strnlen(p->name, sizeof(p->name)), vlen, total, off = 0;
        unsigned char *d;
        int r;

        if (nlen > CB_NAME_MAX || cb_name_check(p->name) < 0)
                return cb_error_set(-EINVAL, "invalid secret name: use 1 to %d characters from A-Z a-z 0-9 . _ -, "
                                    "starting with a letter or digit", CB_NAME_MAX);
        vlen = p->value ? cb_secbuf_len(p->value) : 0;
        if (vlen == 0 || vlen > CB_VALUE_MAX)
                return cb_error_set(-EINVAL, "the value must be 1 to %d bytes", CB_VALUE_MAX);
        if (p->created == 0)
                return cb_error_set(-EINVAL, "created must be a unix time");
        if (p->meta && (r = cb_meta_encode(p->meta, &meta)) < 0)
                goto out;
        if (meta.len > CB_META_MAX_ENCODED) {
                r = cb_error_set(-EINVAL, "metadata larger than %d bytes encoded", CB_META_MAX_ENCODED);
                goto out;
        }
        total = CB_PROV_PAYLOAD_FIXED + 4 + nlen + 4 + meta.len + 4 + vlen;
        out = cb_secbuf_new(total);
        if (!out) {
                r = -ENOMEM;
                goto out;
        }
        d = cb_secbuf_data(out);
        d[off++] = CB_PROV_FORMAT;
        memcpy(d + off, p->key_id, CB_PROV_KEY_ID_LEN);
        off += CB_PROV_KEY_ID_LEN;
        cb_put_u64_at(d + off, p->created);
        off += 8;
        cb_put_u64_at(d + off, p->not_after);
        off += 8;
        cb_put_u32_at(d + off, (uint32_t)nlen);
        memcpy(d + off + 4, p->name, nlen);
        off += 4 + nlen;
        cb_put_u32_at(d + off, (uint32_t)meta.len);
        if (meta.len)
                memcpy(d + off + 4, meta.data, meta.len);
        off += 4 + meta.len;
        cb_put_u32_at(d + off, (uint32_t)vlen);
        memcpy(d + off + 4, cb_secbuf_data(p->value), vlen);
        *ret = out;
        out = NULL;
        r = 0;
out:
        cb_buf_free(&meta);
        cb_secbuf_free(out);
        return r;
}

static int malformed(const char *what) {
        return cb_error_set(-EBADMSG, "malformed payload: %s", what);
}

int cb_prov_payload_decode(const unsigned char *p, size_t len, cb_prov_payload *ret) {
        cb_prov_payload pl = { 0 };
        cb_reader rd;
        const unsigned char *name, *meta, *value;
        size_t nlen, mlen, vlen;
        uint8_t format;
        int r;

        if (len > CB_PROV_PAYLOAD_MAX)
                return malformed("larger than the cap");
        rd = cb_reader_make(p, len);
        if (cb_reader_u8(&rd, &format) < 0)
                return malformed("empty");
        if (format != CB_PROV_FORMAT)
                return cb_error_set(-EBADMSG, "malformed payload: format %u is not supported (want %d)", format,
                                    CB_PROV_FORMAT);
        if (cb_reader_copy(&rd, pl.key_id, CB_PROV_KEY_ID_LEN) < 0 || cb_reader_u64(&rd, &pl.created) < 0 ||
            cb_reader_u64(&rd, &pl.not_after) < 0)
                return malformed("truncated header");
        if (pl.created == 0)
                return malformed("created is 0");
        if (cb_reader_lv(&rd, CB_NAME_MAX, &name, &nlen) < 0)
                return malformed("bad name length");
        memcpy(pl.name, name, nlen);
        pl.name[nlen] = '\0';
        if (nlen == 0 || strlen(pl.name) != nlen || cb_name_check(pl.name) < 0)
                return malformed("invalid secret name");
        if (cb_reader_lv(&rd, CB_META_MAX_ENCODED, &meta, &mlen) < 0)
                return malformed("bad metadata length");
        if (cb_reader_lv(&rd, CB_VALUE_MAX, &value, &vlen) < 0 || vlen == 0)
                return malformed("bad value length");
        if (cb_reader_end(&rd) < 0)
                return malformed("trailing bytes");
        r = cb_meta_decode(meta, mlen, &pl.meta);
        if (r < 0)
                return r == -ENOMEM ? r : malformed("bad metadata encoding");
        r = cb_meta_validate(pl.meta);
        if (r < 0) {
                r = cb_error_set(-EBADMSG, "malformed payload: metadata: %s", cb_error_last());
                goto fail;
        }
        pl.value = cb_secbuf_dup(value, vlen);
        if (!pl.value) {
                r = -ENOMEM;
                goto fail;
        }
        *ret = pl;
        return 0;
fail:
        cb_prov_payload_clear(&pl);
        return r;
}

void cb_prov_key_id(const unsigned char pk[crypto_box_PUBLICKEYBYTES], unsigned char id[CB_PROV_KEY_ID_LEN]) {
        unsigned char h[32];

        crypto_generichash(h, sizeof(h), pk, crypto_box_PUBLICKEYBYTES, NULL, 0);
        memcpy(id, h, CB_PROV_KEY_ID_LEN);
}

void cb_prov_key_id_hex(const unsigned char id[CB_PROV_KEY_ID_LEN], char out[CB_PROV_KEY_ID_HEX]) {
        sodium_bin2hex(out, CB_PROV_KEY_ID_HEX, id, CB_PROV_KEY_ID_LEN);
}

int cb_prov_key_id_parse(const char *hex, unsigned char id[CB_PROV_KEY_ID_LEN]) {
        size_t n = 0;

        if (!hex || strlen(hex) != 2 * CB_PROV_KEY_ID_LEN ||
            sodium_hex2bin(id, CB_PROV_KEY_ID_LEN, hex, strlen(hex), NULL, &n, NULL) != 0 || n != CB_PROV_KEY_ID_LEN)
                return cb_error_set(-EINVAL, "a key id is 16 hex digits");
        return 0;
}

void cb_prov_pk_format(const unsigned char pk[crypto_box_PUBLICKEYBYTES], char out[CB_PROV_PK_TEXT_LEN]) {
        const size_t pl = sizeof(CB_PROV_PK_PREFIX) - 1;

        memcpy(out, CB_PROV_PK_PREFIX, pl);
        sodium_bin2base64(out + pl, CB_PROV_PK_TEXT_LEN - pl, pk, crypto_box_PUBLICKEYBYTES,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int cb_prov_pk_parse(const char *text, unsigned char pk[crypto_box_PUBLICKEYBYTES]) {
        const size_t pl = sizeof(CB_PROV_PK_PREFIX) - 1;
        size_t n = 0;

        if (!text || strncmp(text, CB_PROV_PK_PREFIX, pl) != 0 || strlen(text) != CB_PROV_PK_TEXT_LEN - 1 ||
            sodium_base642bin(pk, crypto_box_PUBLICKEYBYTES, text + pl, strlen(text + pl), NULL, &n, NULL,
                              sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
            n != crypto_box_PUBLICKEYBYTES)
                return cb_error_set(-EINVAL, "not a provisioning public key: want %s followed by 43 base64url "
                                    "characters (what 'credbroker pubkey' prints)", CB_PROV_PK_PREFIX);
        return 0;
}

int cb_prov_seal(const unsigned char pk[crypto_box_PUBLICKEYBYTES], cb_prov_payload *p, char **ret_text) {
        const size_t pl = sizeof(CB_PROV_BLOB_PREFIX) - 1;
        cb_secbuf *plain = NULL;
        unsigned char *box = NULL;
        size_t box_len, tlen;
        char *text = NULL;
        int r;

        cb_prov_key_id(pk, p->key_id);
        r = cb_prov_payload_encode(p, &plain);
        if (r < 0)
                return r;
        box_len = CB_PROV_KEY_ID_LEN + crypto_box_SEALBYTES + cb_secbuf_len(plain);
        box = malloc(box_len);
        tlen = pl + sodium_base64_ENCODED_LEN(box_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        text = malloc(tlen);
        if (!box || !text) {
                r = -ENOMEM;
                goto out;
        }
        memcpy(box, p->key_id, CB_PROV_KEY_ID_LEN);
        if (crypto_box_seal(box + CB_PROV_KEY_ID_LEN, cb_secbuf_data(plain), cb_secbuf_len(plain), pk) != 0) {
                r = cb_error_set(-EINVAL, "crypto_box_seal failed (not a valid public key)");
                goto out;
        }
        memcpy(text, CB_PROV_BLOB_PREFIX, pl);
        sodium_bin2base64(text + pl, tlen - pl, box, box_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        *ret_text = text;
        text = NULL;
        r = 0;
out:
        free(box);
        free(text);
        cb_secbuf_free(plain);
        return r;
}

static int is_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int cb_prov_blob_parse(const char *text, size_t len, unsigned char key_id[CB_PROV_KEY_ID_LEN], unsigned char **ret_box,
                       size_t *ret_box_len) {
        const size_t pl = sizeof(CB_PROV_BLOB_PREFIX) - 1;
        unsigned char *box;
        size_t n = 0, cap;

        while (len && is_space(*text))
                text++, len--;
        while (len && is_space(text[len - 1]))
                len--;
        if (len < pl || memcmp(text, CB_PROV_BLOB_PREFIX, pl) != 0)
                return cb_error_set(-EBADMSG, "not a sealed provisioning blob (want text starting '%s')",
                                    CB_PROV_BLOB_PREFIX);
        if (len > CB_PROV_TEXT_MAX)
                return cb_error_set(-EBADMSG, "blob longer than %zu characters", (size_t)CB_PROV_TEXT_MAX);
        text += pl;
        len -= pl;
        cap = len / 4 * 3 + 3;
        box = malloc(cap);
        if (!box)
                return -ENOMEM;
        if (sodium_base642bin(box, cap, text, len, NULL, &n, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
                free(box);
                return cb_error_set(-EBADMSG, "blob is not valid unpadded base64url (truncated or damaged?)");
        }
        if (n < CB_PROV_KEY_ID_LEN + crypto_box_SEALBYTES + CB_PROV_PAYLOAD_FIXED || n > CB_PROV_BOX_MAX) {
                free(box);
                return cb_error_set(-EBADMSG, "blob is %zu bytes, %s", n,
                                    n > CB_PROV_BOX_MAX ? "over the cap" : "too short (truncated?)");
        }
        memcpy(key_id, box, CB_PROV_KEY_ID_LEN);
        *ret_box = box;
        *ret_box_len = n;
        return 0;
}

int cb_prov_open(const unsigned char *box, size_t box_len, const unsigned char pk[crypto_box_PUBLICKEYBYTES],
                 const unsigned char *sk, const unsigned char key_id[CB_PROV_KEY_ID_LEN], cb_prov_payload *ret) {
        cb_secbuf *plain = NULL;
        cb_prov_payload pl;
        size_t clen;
        int r;

        if (box_len < CB_PROV_KEY_ID_LEN + crypto_box_SEALBYTES || box_len > CB_PROV_BOX_MAX)
                return cb_error_set(-EBADMSG, "sealed box has a bad size");
        clen = box_len - CB_PROV_KEY_ID_LEN;
        plain = cb_secbuf_new(clen - crypto_box_SEALBYTES);
        if (!plain)
                return -ENOMEM;
        if (crypto_box_seal_open(cb_secbuf_data(plain), box + CB_PROV_KEY_ID_LEN, clen, pk, sk) != 0) {
                r = cb_error_set(-EKEYREJECTED, "the sealed box does not open with key %02x%02x%02x%02x%02x%02x%02x%02x: "
                                 "tampered, truncated, or sealed to another key under this id",
                                 key_id[0], key_id[1], key_id[2], key_id[3], key_id[4], key_id[5], key_id[6],
                                 key_id[7]);
                goto out;
        }
        r = cb_prov_payload_decode(cb_secbuf_data(plain), cb_secbuf_len(plain), &pl);
        if (r < 0)
                goto out;
        if (sodium_memcmp(pl.key_id, key_id, CB_PROV_KEY_ID_LEN) != 0) {
                cb_prov_payload_clear(&pl);
                r = cb_error_set(-EKEYREJECTED, "the key id outside the box disagrees with the one sealed inside "
                                 "(the blob was edited)");
                goto out;
        }
        *ret = pl;
        r = 0;
out:
        cb_secbuf_free(plain);
        return r;
}
