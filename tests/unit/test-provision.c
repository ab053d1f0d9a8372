/* SPDX-License-Identifier: Apache-2.0 */
/* Sealed provisioning: the payload codec (round trip, exact layout, every
 * truncation, caps, trailing bytes), the text forms, seal/open, and the
 * keys and import rules against a real store. */
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cbtest.h"
#include "error.h"
#include "provision.h"
#include "store.h"

static void payload(cb_prov_payload *p, const char *name, const char *value) {
        memset(p, 0, sizeof(*p));
        snprintf(p->name, sizeof(p->name), "%s", name);
        p->created = 1700000000;
        p->not_after = 1800000000;
        p->meta = calloc(1, sizeof(*p->meta));
        ASSERT_TRUE(p->meta);
        ASSERT_OK(cb_strv_push(&p->meta->hosts, "api.example.com", 64));
        p->meta->inject = strdup("Authorization: Bearer {}");
        p->value = cb_secbuf_dup(value, strlen(value));
        ASSERT_TRUE(p->value);
}

TEST(payload_round_trip_and_layout) {
        cb_prov_payload p, d;
        cb_secbuf *enc = NULL, *enc2 = NULL;
        const unsigned char *e;
        cb_buf meta = CB_BUF_INIT;

        payload(&p, "db-pass", "hunter2");
        memset(p.key_id, 0xab, sizeof(p.key_id));
        ASSERT_OK(cb_prov_payload_encode(&p, &enc));
        e = cb_secbuf_data(enc);
        ASSERT_OK(cb_meta_encode(p.meta, &meta));
        /* The documented layout, byte by byte. */
        ASSERT_EQ(cb_secbuf_len(enc), 25 + 4 + 7 + 4 + meta.len + 4 + 7);
        ASSERT_EQ(e[0], 1);
        for (int i = 1; i < 9; i++)
                ASSERT_EQ(e[i], 0xab);
        ASSERT_EQ(cb_get_u64_at(e + 9), 1700000000);
        ASSERT_EQ(cb_get_u64_at(e + 17), 1800000000);
        ASSERT_EQ(cb_get_u32_at(e + 25), 7);
        ASSERT_MEMEQ(e + 29, "db-pass", 7);
        ASSERT_EQ(cb_get_u32_at(e + 36), meta.len);
        ASSERT_MEMEQ(e + 40, meta.data, meta.len);
        ASSERT_EQ(cb_get_u32_at(e + 40 + meta.len), 7);
        ASSERT_MEMEQ(e + 44 + meta.len, "hunter2", 7);

        ASSERT_OK(cb_prov_payload_decode(e, cb_secbuf_len(enc), &d));
        ASSERT_STREQ(d.name, "db-pass");
        ASSERT_EQ(d.created, 1700000000);
        ASSERT_EQ(d.not_after, 1800000000);
        ASSERT_STREQ(d.meta->inject, "Authorization: Bearer {}");
        ASSERT_EQ(d.meta->hosts.n, 1);
        ASSERT_EQ(cb_secbuf_len(d.value), 7);
        ASSERT_MEMEQ(cb_secbuf_data(d.value), "hunter2", 7);
        /* Canonical: re-encoding gives the same bytes. */
        ASSERT_OK(cb_prov_payload_encode(&d, &enc2));
        ASSERT_EQ(cb_secbuf_len(enc2), cb_secbuf_len(enc));
        ASSERT_MEMEQ(cb_secbuf_data(enc2), e, cb_secbuf_len(enc));
        cb_prov_payload_clear(&d);
        cb_prov_payload_clear(&p);
        cb_secbuf_free(enc);
        cb_secbuf_free(enc2);
        cb_buf_free(&meta);
}

TEST(payload_refusals) {
        cb_prov_payload p, d;
        cb_secbuf *enc = NULL;
        unsigned char *buf;
        size_t n;

        payload(&p, "x", "v");
        ASSERT_OK(cb_prov_payload_encode(&p, &enc));
        n = cb_secbuf_len(enc);
        buf = malloc(n + 1);
        memcpy(buf, cb_secbuf_data(enc), n);
        /* Every truncation, and one trailing byte. */
        for (size_t k = 0; k < n; k++)
                ASSERT_ERR(cb_prov_payload_decode(buf, k, &d), -EBADMSG);
        buf[n] = 0;
        ASSERT_ERR(cb_prov_payload_decode(buf, n + 1, &d), -EBADMSG);
        ASSERT_CONTAINS(cb_error_last(), "trailing");
        /* Wrong format version, created 0, bad name, empty value, bad meta. */
        buf[0] = 2;
        ASSERT_ERR(cb_prov_payload_decode(buf, n, &d), -EBADMSG);
        ASSERT_CONTAINS(cb_error_last(), "format 2");
        buf[0] = 1;
        memset(buf + 9, 0, 8);
        ASSERT_ERR(cb_prov_payload_decode(buf, n, &d), -EBADMSG);
        cb_put_u64_at(buf + 9, 5);
        buf[29] = '@'; /* the store's internal namespace is never provisioned */
        ASSERT_ERR(cb_prov_payload_decode(buf, n, &d), -EBADMSG);
        ASSERT_CONTAINS(cb_error_last(), "name");
        buf[29] = 'x';
        ASSERT_OK(cb_prov_payload_decode(buf, n, &d));
        cb_prov_payload_clear(&d);
        /* A length field pointing past the end, or over its cap. */
        cb_put_u32_at(buf + 25, 129);
        ASSERT_ERR(cb_prov_payload_decode(buf, n, &d), -EBADMSG);
        cb_put_u32_at(buf + 25, 0xffffffffu);
        ASSERT_ERR(cb_prov_payload_decode(buf, n, &d), -EBADMSG);
        /* Over the whole-payload cap. */
        ASSERT_ERR(cb_prov_payload_decode(buf, CB_PROV_PAYLOAD_MAX + 1, &d), -EBADMSG);
        free(buf);
        cb_secbuf_free(enc);
        /* Encoding refuses what decoding would. */
        strcpy(p.name, "@provision");
        ASSERT_ERR(cb_prov_payload_encode(&p, &enc), -EINVAL);
        strcpy(p.name, "x");
        cb_secbuf_free(p.value);
        p.value = cb_secbuf_new(CB_VALUE_MAX + 1);
        ASSERT_ERR(cb_prov_payload_encode(&p, &enc), -EINVAL);
        cb_prov_payload_clear(&p);
}

TEST(max_size_blob_fits_the_caps) {
        unsigned char pk[32], sk[32], kid[8], *box;
        cb_prov_payload p, d;
        size_t box_len;
        char *text;

        crypto_box_keypair(pk, sk);
        payload(&p, "n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789n123456789"
                    "n123456789n123456789n123456789n1234567", "x");
        ASSERT_EQ(strlen(p.name), CB_NAME_MAX);
        cb_secbuf_free(p.value);
        p.value = cb_secbuf_new(CB_VALUE_MAX);
        for (int i = 0; i < 32; i++) {
                char l[300];
                memset(l, 'a' + i % 26, sizeof(l));
                l[0] = 'k';
                l[1] = '=';
                l[CB_META_MAX_LABEL] = 0;
                ASSERT_OK(cb_strv_push(&p.meta->labels, l, 32));
        }
        ASSERT_OK(cb_prov_seal(pk, &p, &text));
        ASSERT_TRUE(strlen(text) <= CB_PROV_TEXT_MAX);
        ASSERT_OK(cb_prov_blob_parse(text, strlen(text), kid, &box, &box_len));
        ASSERT_OK(cb_prov_open(box, box_len, pk, sk, kid, &d));
        ASSERT_EQ(cb_secbuf_len(d.value), CB_VALUE_MAX);
        cb_prov_payload_clear(&d);
        cb_prov_payload_clear(&p);
        free(box);
        free(text);
}

TEST(text_forms) {
        unsigned char pk[32], pk2[32], id[8], id2[8], h[32];
        char text[CB_PROV_PK_TEXT_LEN], hex[CB_PROV_KEY_ID_HEX];

        for (int i = 0; i < 32; i++)
                pk[i] = (unsigned char)i;
        cb_prov_pk_format(pk, text);
        ASSERT_EQ(strlen(text), 6 + 43);
        ASSERT_STREQ(text, "cbpk1.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
        ASSERT_OK(cb_prov_pk_parse(text, pk2));
        ASSERT_MEMEQ(pk, pk2, 32);
        ASSERT_ERR(cb_prov_pk_parse("cbpk1.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh", pk2), -EINVAL);
        ASSERT_ERR(cb_prov_pk_parse("cbpk2.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", pk2), -EINVAL);
        ASSERT_ERR(cb_prov_pk_parse("cbpk1.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", pk2), -EINVAL);
        /* key id = first 8 bytes of BLAKE2b-256(pk) */
        cb_prov_key_id(pk, id);
        crypto_generichash(h, 32, pk, 32, NULL, 0);
        ASSERT_MEMEQ(id, h, 8);
        cb_prov_key_id_hex(id, hex);
        ASSERT_OK(cb_prov_key_id_parse(hex, id2));
        ASSERT_MEMEQ(id, id2, 8);
        ASSERT_ERR(cb_prov_key_id_parse("0123", id2), -EINVAL);
        ASSERT_ERR(cb_prov_key_id_parse("0123456789abcdeg", id2), -EINVAL);
}

TEST(seal_open_and_tampering) {
        unsigned char pk[32], sk[32], pk2[32], sk2[32], kid[8], *box;
        cb_prov_payload p, d;
        size_t box_len, tl;
        char *text;

        crypto_box_keypair(pk, sk);
        crypto_box_keypair(pk2, sk2);
        payload(&p, "api", "the-value");
        ASSERT_OK(cb_prov_seal(pk, &p, &text));
        ASSERT_TRUE(strncmp(text, "cbseal1.", 8) == 0);
        ASSERT_TRUE(strstr(text, "the-value") == NULL);
        tl = strlen(text);
        ASSERT_OK(cb_prov_blob_parse(text, tl, kid, &box, &box_len));
        ASSERT_OK(cb_prov_open(box, box_len, pk, sk, kid, &d));
        ASSERT_STREQ(d.name, "api");
        cb_prov_payload_clear(&d);
        /* Another keypair cannot open it. */
        ASSERT_ERR(cb_prov_open(box, box_len, pk2, sk2, kid, &d), -EKEYREJECTED);
        /* Every flipped byte of the box is refused (outer id: by the id check). */
        for (size_t i = 0; i < box_len; i++) {
                box[i] ^= 0x01;
                if (cb_prov_open(box, box_len, pk, sk, i < 8 ? box : kid, &d) != -EKEYREJECTED)
                        cbtest_fail(__FILE__, __LINE__, "flipped byte %zu accepted", i);
                box[i] ^= 0x01;
        }
        /* Every truncation of the text is refused by parse or open. */
        for (size_t k = 0; k < tl; k += 7) {
                unsigned char *b2 = NULL, k2[8];
                size_t l2;
                if (cb_prov_blob_parse(text, k, k2, &b2, &l2) == 0) {
                        ASSERT_TRUE(cb_prov_open(b2, l2, pk, sk, k2, &d) < 0);
                        free(b2);
                }
        }
        /* Whitespace around is fine; padding, other alphabets, junk are not. */
        {
                char *t2 = malloc(tl + 4);
                unsigned char *b2;
                size_t l2;
                ASSERT_TRUE(t2 != NULL);
                sprintf(t2, "\n %s\n", text);
                ASSERT_OK(cb_prov_blob_parse(t2, strlen(t2), kid, &b2, &l2));
                free(b2);
                sprintf(t2, "%s=", text);
                ASSERT_ERR(cb_prov_blob_parse(t2, strlen(t2), kid, &b2, &l2), -EBADMSG);
                sprintf(t2, "%s", text);
                t2[20] = '+';
                ASSERT_ERR(cb_prov_blob_parse(t2, strlen(t2), kid, &b2, &l2), -EBADMSG);
                ASSERT_ERR(cb_prov_blob_parse("cbseal2.AAAA", 12, kid, &b2, &l2), -EBADMSG);
                free(t2);
        }
        cb_prov_payload_clear(&p);
        free(box);
        free(text);
}

/* ---- against a store ---- */

static cb_store *fresh_store(const char *sub) {
        static char dir[4096];
        char spec_str[4200];
        cb_unlock_spec *spec;
        cb_store *s;

        snprintf(dir, sizeof(dir), "%s/%s", cbtest_tmpdir(), sub);
        ASSERT_OK(mkdir(dir, 0700));
        snprintf(spec_str, sizeof(spec_str), "keyfile:%s", cbtest_path(dir, "key"));
        ASSERT_OK(cb_unlock_spec_parse(spec_str, &spec));
        ASSERT_OK(cb_store_create(cbtest_path(dir, "state"), spec));
        ASSERT_OK(cb_store_open(cbtest_path(dir, "state"), spec, &s));
        cb_unlock_spec_free(spec);
        return s;
}

static char *seal_for(const cb_prov_key_info *k, const char *name, const char *value, uint64_t created,
                      uint64_t not_after) {
        cb_prov_payload p;
        char *text;

        payload(&p, name, value);
        p.created = created;
        p.not_after = not_after;
        ASSERT_OK(cb_prov_seal(k->pk, &p, &text));
        cb_prov_payload_clear(&p);
        return text;
}

static void expect_current(cb_store *s, const char *name, const char *value) {
        cb_secbuf *v;

        ASSERT_OK(cb_store_get(s, name, 0, false, &v, NULL, NULL));
        ASSERT_EQ(cb_secbuf_len(v), strlen(value));
        ASSERT_MEMEQ(cb_secbuf_data(v), value, strlen(value));
        cb_secbuf_free(v);
}

TEST(internal_namespace_is_hidden) {
        cb_store *s = fresh_store("ns");
        const char **names;
        const cb_version_info *vi;
        cb_secbuf *v;
        size_t n;
        bool created;

        ASSERT_OK(cb_prov_keys_ensure(s, &created));
        ASSERT_TRUE(created);
        ASSERT_OK(cb_prov_keys_ensure(s, &created));
        ASSERT_FALSE(created);
        ASSERT_EQ(cb_store_count(s), 0);
        ASSERT_OK(cb_store_names(s, &names, &n));
        ASSERT_EQ(n, 0);
        free(names);
        ASSERT_ERR(cb_store_versions(s, "@provision", &vi, &n), -ENOENT);
        ASSERT_ERR(cb_store_get(s, "@provision", 0, true, &v, NULL, NULL), -EINVAL);
        ASSERT_ERR(cb_store_put(s, "@provision", "x", 1, NULL, CB_VS_CURRENT, NULL), -EINVAL);
        ASSERT_ERR(cb_store_destroy(s, "@provision", 1), -EINVAL);
        ASSERT_ERR(cb_name_check("@provision"), -EINVAL);
        /* ... and it survives a reopen and a verify. */
        ASSERT_OK(cb_store_verify(s, NULL, NULL));
        ASSERT_OK(cb_store_versions_ex(s, "@provision", CB_STORE_INTERNAL, &vi, &n));
        ASSERT_EQ(n, 1);
        cb_store_close(s);
}

TEST(import_rules) {
        cb_store *s = fresh_store("imp");
        cb_prov_key_info k1, k2, stranger = { 0 };
        cb_prov_result res;
        const cb_version_info *vi;
        unsigned char sk[32];
        char *t;
        size_t n;
        const uint64_t now = 1750000000;

        ASSERT_OK(cb_prov_keys_ensure(s, NULL));
        ASSERT_OK(cb_prov_keys_current(s, &k1));
        /* A good one, with its metadata and sealed created time. */
        t = seal_for(&k1, "api", "v1", now - 100, now + 100);
        ASSERT_OK(cb_prov_import(s, t, strlen(t), "api", now, false, &res));
        ASSERT_EQ(res.version, 1);
        ASSERT_STREQ(res.name, "api");
        expect_current(s, "api", "v1");
        ASSERT_OK(cb_store_versions(s, "api", &vi, &n));
        ASSERT_EQ(vi[0].created, now - 100);
        ASSERT_STREQ(vi[0].meta->hosts.v[0], "api.example.com");
        /* The same blob again: replay. */
        ASSERT_ERR(cb_prov_import(s, t, strlen(t), NULL, now, false, &res), -ESTALE);
        ASSERT_EQ(res.refusal, CB_PROV_REPLAY);
        free(t);
        /* An older one: replay; the same second: replay. */
        t = seal_for(&k1, "api", "old", now - 200, 0);
        ASSERT_ERR(cb_prov_import(s, t, strlen(t), NULL, now, false, &res), -ESTALE);
        free(t);
        t = seal_for(&k1, "api", "same", now - 100, 0);
        ASSERT_ERR(cb_prov_import(s, t, strlen(t), NULL, now, false, &res), -ESTALE);
        free(t);
        /* Expired; from the future; wrong file name. */
        t = seal_for(&k1, "api", "late", now - 50, now - 1);
        ASSERT_ERR(cb_prov_import(s, t, strlen(t), NULL, now, false, &res), -ETIME);
        ASSERT_EQ(res.refusal, CB_PROV_EXPIRED);
        free(t);
        t = seal_for(&k1, "api", "future", now + CB_PROV_FUTURE_SKEW + 1, 0);
        ASSERT_ERR(cb_prov_import(s, t, strlen(t), NULL, now, false, &res), -EINVAL);
        ASSERT_EQ(res.refusal, CB_PROV_FUTURE);
        free(t);
        t = seal_for(&k1, "api", "named", now - 10, 0);
        ASSERT_ERR(cb_prov_import(s, t, strlen(t), "other", now, false, &res), -EINVAL);
        ASSERT_EQ(res.refusal, CB_PROV_NAME_MISMATCH);
        /* Dry run checks without storing. */
        ASSERT_OK(cb_prov_import(s, t, strlen(t), "api", now, true, &res));
        expect_current(s, "api", "v1");
        free(t);
        /* A key this broker does not hold. */
        crypto_box_keypair(stranger.pk, sk);
        t = seal_for(&stranger, "api", "x", now - 10, 0);
        ASSERT_ERR(cb_prov_import(s, t, strlen(t), NULL, now, false, &res), -ENOKEY);
        ASSERT_EQ(res.refusal, CB_PROV_UNKNOWN_KEY);
        free(t);
        /* Rotation: the old key still imports, until retired. */
        ASSERT_OK(cb_prov_keys_rotate(s, &k2));
        ASSERT_ERR(cb_prov_keys_retire(s, k2.key_id), -EBUSY);
        t = seal_for(&k1, "api", "v2", now - 5, 0);
        ASSERT_OK(cb_prov_import(s, t, strlen(t), NULL, now, false, &res));
        expect_current(s, "api", "v2");
        free(t);
        ASSERT_OK(cb_prov_keys_retire(s, k1.key_id));
        ASSERT_ERR(cb_prov_keys_retire(s, k1.key_id), -ENOENT);
        t = seal_for(&k1, "api", "v3", now - 1, 0);
        ASSERT_ERR(cb_prov_import(s, t, strlen(t), NULL, now, false, &res), -ENOKEY);
        free(t);
        t = seal_for(&k2, "api", "v3", now - 1, 0);
        ASSERT_OK(cb_prov_import(s, t, strlen(t), NULL, now, false, &res));
        expect_current(s, "api", "v3");
        free(t);
        /* Nothing half-imported: every refusal above left exactly 3 versions. */
        ASSERT_OK(cb_store_versions(s, "api", &vi, &n));
        ASSERT_EQ(n, 3);
        {
                cb_prov_key_info *keys;
                ASSERT_OK(cb_prov_keys_list(s, &keys, &n));
                ASSERT_EQ(n, 2);
                ASSERT_EQ(keys[0].state, CB_VS_DESTROYED);
                ASSERT_FALSE(keys[0].known);
                ASSERT_EQ(keys[1].state, CB_VS_CURRENT);
                free(keys);
        }
        ASSERT_OK(cb_store_verify(s, NULL, NULL));
        cb_store_close(s);
}
