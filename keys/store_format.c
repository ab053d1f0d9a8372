/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "error.h"
#include "store.h"
#include "store_format.h"

#define PREFIX_LEN (8 + 4 + CB_STORE_ID_LEN + 8 + 1)
#define COMMIT_LEN (8 + CB_LOG_ID_LEN + 8 + CB_MAC_LEN)
#define TRAILER_LEN (CB_MAC_LEN + CB_MAC_LEN)

static int plain_name_valid(const unsigned char *name, size_t n);

/* A plain name, or '@' + a plain name: the store's internal namespace
 * (store.h, CB_STORE_INTERNAL), which cb_name_check refuses. */
int cb_name_valid(const unsigned char *name, size_t n) {
        if (n > 1 && n <= CB_NAME_MAX && name[0] == CB_INTERNAL_NAME_PREFIX)
                return plain_name_valid(name + 1, n - 1);
        return plain_name_valid(name, n);
}

static int plain_name_valid(const unsigned char *name, size_t n) {
        if (n == 0 || n > CB_NAME_MAX)
                return 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = name[i];
                int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

                if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
                        return 0;
        }
        return 1;
}

static int bad(const char *what) {
        return cb_error_set(CB_E_INTEGRITY, "%s", what);
}

int cb_header_parse(const unsigned char *p, size_t len, cb_header *ret) {
        unsigned char sum[CB_MAC_LEN];
        cb_reader rd;
        cb_header h;
        const unsigned char *magic;
        uint32_t format;
        uint8_t nslots;

        if (len < PREFIX_LEN + COMMIT_LEN + TRAILER_LEN || len > CB_HEADER_MAX)
                return bad("wrong size (truncated or not a store header)");
        crypto_generichash(sum, sizeof(sum), p, len - CB_MAC_LEN, NULL, 0);
        if (sodium_memcmp(sum, p + len - CB_MAC_LEN, CB_MAC_LEN) != 0)
                return bad("checksum mismatch (the file was modified or damaged)");

        memset(&h, 0, sizeof(h));
        rd = cb_reader_make(p, len - TRAILER_LEN);
        if (cb_reader_bytes(&rd, 8, &magic) < 0 || memcmp(magic, CB_HEADER_MAGIC, 8) != 0)
                return bad("not a credbroker store header");
        if (cb_reader_u32(&rd, &format) < 0)
                return bad("malformed");
        if (format != CB_FORMAT_VERSION)
                return cb_error_set(-EPROTONOSUPPORT, "store format %u is not supported by this version", format);
        if (cb_reader_copy(&rd, h.store_id, CB_STORE_ID_LEN) < 0 || cb_reader_u64(&rd, &h.created) < 0 ||
            cb_reader_u8(&rd, &nslots) < 0 || nslots == 0 || nslots > CB_SLOTS_MAX)
                return bad("malformed prefix");
        h.slots_off = rd.off;
        h.nslots = nslots;
        for (size_t i = 0; i < nslots; i++) {
                cb_hdr_slot *s = &h.slots[i];

                if (cb_reader_u8(&rd, &s->kind) < 0 ||
                    cb_reader_lv(&rd, CB_UNLOCK_PARAMS_MAX, &s->params, &s->params_len) < 0 ||
                    cb_reader_bytes(&rd, CB_NONCE_LEN, &s->nonce) < 0 ||
                    cb_reader_bytes(&rd, CB_WRAPPED_KEY_LEN, &s->wrapped) < 0)
                        return bad("malformed unlock slot");
        }
        h.slots_end = rd.off;
        if (cb_reader_u64(&rd, &h.generation) < 0 || cb_reader_copy(&rd, h.log_id, CB_LOG_ID_LEN) < 0 ||
            cb_reader_u64(&rd, &h.log_len) < 0 || cb_reader_copy(&rd, h.log_head, CB_MAC_LEN) < 0 ||
            cb_reader_end(&rd) < 0)
                return bad("malformed commit section");
        if (h.log_len > CB_LOG_MAX)
                return bad("committed log length out of range");
        h.mac_off = len - TRAILER_LEN;
        *ret = h;
        return 0;
}

int cb_header_put_slot(cb_buf *out, uint8_t kind, const unsigned char *params, size_t params_len,
                       const unsigned char nonce[CB_NONCE_LEN], const unsigned char wrapped[CB_WRAPPED_KEY_LEN]) {
        int r;

        if (params_len > CB_UNLOCK_PARAMS_MAX)
                return -E2BIG;
        if ((r = cb_buf_put_u8(out, kind)) < 0 || (r = cb_buf_put_lv(out, params, params_len)) < 0 ||
            (r = cb_buf_put(out, nonce, CB_NONCE_LEN)) < 0 || (r = cb_buf_put(out, wrapped, CB_WRAPPED_KEY_LEN)) < 0)
                return r;
        return 0;
}

int cb_header_build(cb_buf *out, const cb_header *h, const unsigned char *slot_bytes, size_t slots_len,
                    const unsigned char mac_key[32]) {
        unsigned char mac[CB_MAC_LEN];
        size_t start = out->len;
        int r;

        if ((r = cb_buf_put(out, CB_HEADER_MAGIC, 8)) < 0 || (r = cb_buf_put_u32(out, CB_FORMAT_VERSION)) < 0 ||
            (r = cb_buf_put(out, h->store_id, CB_STORE_ID_LEN)) < 0 || (r = cb_buf_put_u64(out, h->created)) < 0 ||
            (r = cb_buf_put_u8(out, (uint8_t)h->nslots)) < 0 || (r = cb_buf_put(out, slot_bytes, slots_len)) < 0 ||
            (r = cb_buf_put_u64(out, h->generation)) < 0 || (r = cb_buf_put(out, h->log_id, CB_LOG_ID_LEN)) < 0 ||
            (r = cb_buf_put_u64(out, h->log_len)) < 0 || (r = cb_buf_put(out, h->log_head, CB_MAC_LEN)) < 0)
                return r;
        crypto_generichash(mac, sizeof(mac), out->data + start, out->len - start, mac_key, 32);
        if ((r = cb_buf_put(out, mac, sizeof(mac))) < 0)
                return r;
        crypto_generichash(mac, sizeof(mac), out->data + start, out->len - start, NULL, 0);
        return cb_buf_put(out, mac, sizeof(mac));
}

static int valid_state(uint8_t s) {
        return s >= CB_VS_PENDING && s <= CB_VS_DESTROYED;
}

int cb_record_parse(const unsigned char *body, size_t len, cb_record *ret) {
        cb_reader rd = cb_reader_make(body, len);
        cb_record rec;

        memset(&rec, 0, sizeof(rec));
        if (cb_reader_u8(&rd, &rec.type) < 0 || cb_reader_u64(&rd, &rec.generation) < 0 ||
            cb_reader_u64(&rd, &rec.time) < 0 || cb_reader_lv(&rd, CB_NAME_MAX, &rec.name, &rec.name_len) < 0 ||
            !cb_name_valid(rec.name, rec.name_len) || cb_reader_u32(&rd, &rec.version) < 0 || rec.version == 0)
                return -EBADMSG;
        switch (rec.type) {
        case CB_REC_PUT:
                if (cb_reader_u8(&rd, &rec.state) < 0 || !valid_state(rec.state) || rec.state == CB_VS_DESTROYED ||
                    cb_reader_u64(&rd, &rec.created) < 0 ||
                    cb_reader_lv(&rd, CB_META_MAX_ENCODED, &rec.meta, &rec.meta_len) < 0 ||
                    cb_reader_bytes(&rd, CB_NONCE_LEN, &rec.dek_nonce) < 0 ||
                    cb_reader_bytes(&rd, CB_WRAPPED_KEY_LEN, &rec.wrapped_dek) < 0 ||
                    cb_reader_bytes(&rd, CB_NONCE_LEN, &rec.val_nonce) < 0 ||
                    cb_reader_lv(&rd, CB_VALUE_MAX + crypto_aead_xchacha20poly1305_ietf_ABYTES, &rec.ct,
                                 &rec.ct_len) < 0 ||
                    rec.ct_len <= crypto_aead_xchacha20poly1305_ietf_ABYTES)
                        return -EBADMSG;
                break;
        case CB_REC_STATE:
                if (cb_reader_u8(&rd, &rec.state) < 0 || !valid_state(rec.state) || rec.state == CB_VS_DESTROYED)
                        return -EBADMSG;
                break;
        case CB_REC_TOMBSTONE:
                if (cb_reader_u64(&rd, &rec.created) < 0)
                        return -EBADMSG;
                rec.state = CB_VS_DESTROYED;
                break;
        case CB_REC_LEAK:
                if (cb_reader_bytes(&rd, CB_MAC_LEN, &rec.leak_hash) < 0)
                        return -EBADMSG;
                break;
        default:
                return -EBADMSG;
        }
        if (cb_reader_end(&rd) < 0)
                return -EBADMSG;
        *ret = rec;
        return 0;
}

int cb_record_encode(cb_buf *out, const cb_record *rec) {
        int r;

        if ((r = cb_buf_put_u8(out, rec->type)) < 0 || (r = cb_buf_put_u64(out, rec->generation)) < 0 ||
            (r = cb_buf_put_u64(out, rec->time)) < 0 || (r = cb_buf_put_lv(out, rec->name, rec->name_len)) < 0 ||
            (r = cb_buf_put_u32(out, rec->version)) < 0)
                return r;
        switch (rec->type) {
        case CB_REC_PUT:
                if ((r = cb_buf_put_u8(out, rec->state)) < 0 || (r = cb_buf_put_u64(out, rec->created)) < 0 ||
                    (r = cb_buf_put_lv(out, rec->meta, rec->meta_len)) < 0 ||
                    (r = cb_buf_put(out, rec->dek_nonce, CB_NONCE_LEN)) < 0 ||
                    (r = cb_buf_put(out, rec->wrapped_dek, CB_WRAPPED_KEY_LEN)) < 0 ||
                    (r = cb_buf_put(out, rec->val_nonce, CB_NONCE_LEN)) < 0 ||
                    (r = cb_buf_put_lv(out, rec->ct, rec->ct_len)) < 0)
                        return r;
                return 0;
        case CB_REC_STATE:
                return cb_buf_put_u8(out, rec->state);
        case CB_REC_TOMBSTONE:
                return cb_buf_put_u64(out, rec->created);
        case CB_REC_LEAK:
                return cb_buf_put(out, rec->leak_hash, CB_MAC_LEN);
        }
        return -EINVAL;
}

void cb_log_chain_start(unsigned char out[CB_MAC_LEN], const unsigned char key[32],
                        const unsigned char store_id[CB_STORE_ID_LEN], const unsigned char log_id[CB_LOG_ID_LEN]) {
        crypto_generichash_state st;

        crypto_generichash_init(&st, key, 32, CB_MAC_LEN);
        crypto_generichash_update(&st, (const unsigned char *)"cblog1", 6);
        crypto_generichash_update(&st, store_id, CB_STORE_ID_LEN);
        crypto_generichash_update(&st, log_id, CB_LOG_ID_LEN);
        crypto_generichash_final(&st, out, CB_MAC_LEN);
}

void cb_log_chain_next(unsigned char out[CB_MAC_LEN], const unsigned char key[32], const unsigned char prev[CB_MAC_LEN],
                       const unsigned char *framed, size_t framed_len) {
        crypto_generichash_state st;
        unsigned char p[CB_MAC_LEN];

        memcpy(p, prev, CB_MAC_LEN); /* out may alias prev */
        crypto_generichash_init(&st, key, 32, CB_MAC_LEN);
        crypto_generichash_update(&st, p, CB_MAC_LEN);
        crypto_generichash_update(&st, framed, framed_len);
        crypto_generichash_final(&st, out, CB_MAC_LEN);
}
