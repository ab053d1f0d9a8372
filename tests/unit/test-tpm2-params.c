/* SPDX-License-Identifier: Apache-2.0 */
/* The tpm2 provider's header parameters: round trip, every refusal, and
 * the PCR list syntax.  (The TPM itself: tests/integration/test-tpm.sh.) */
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_mu.h>

#include "cbtest.h"
#include "error.h"
#include "kek.h"
#include "tpm2_params.h"

static unsigned char pub_bytes[sizeof(TPM2B_PUBLIC)], priv_bytes[sizeof(TPM2B_PRIVATE)];
static size_t pub_len, priv_len;

/* A marshalled sealed-object public area (with or without a policy) and a
 * private blob of plausible shape. */
static void make_blobs(int with_policy, TPM2_ALG_ID type) {
        TPM2B_PUBLIC pub = { .publicArea = { .type = type, .nameAlg = TPM2_ALG_SHA256 } };
        TPM2B_PRIVATE priv = { .size = 80 };

        if (type == TPM2_ALG_KEYEDHASH)
                pub.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
        else
                pub.publicArea.parameters.symDetail.sym.algorithm = TPM2_ALG_NULL;
        if (with_policy) {
                pub.publicArea.authPolicy.size = 32;
                memset(pub.publicArea.authPolicy.buffer, 0xab, 32);
        }
        memset(priv.buffer, 0x5a, priv.size);
        pub_len = priv_len = 0;
        ASSERT_EQ(Tss2_MU_TPM2B_PUBLIC_Marshal(&pub, pub_bytes, sizeof(pub_bytes), &pub_len), 0);
        ASSERT_EQ(Tss2_MU_TPM2B_PRIVATE_Marshal(&priv, priv_bytes, sizeof(priv_bytes), &priv_len), 0);
}

static cb_tpm2_params sample(uint32_t mask) {
        cb_tpm2_params p = {
                .flags = CB_TPM2_FLAG_KEYFILE, .pcr_mask = mask, .nv_index = 0x01234567,
                .counter_base = 42, .pub = pub_bytes, .pub_len = pub_len, .priv = priv_bytes, .priv_len = priv_len,
        };
        memset(p.salt, 7, sizeof(p.salt));
        return p;
}

static int parse_buf(const cb_buf *b) {
        cb_tpm2_params out;
        return cb_tpm2_params_parse(b->data, b->len, &out);
}

TEST(round_trip) {
        cb_buf b = CB_BUF_INIT;
        cb_tpm2_params in, out;

        make_blobs(1, TPM2_ALG_KEYEDHASH);
        in = sample(1u << 7);
        ASSERT_OK(cb_tpm2_params_encode(&b, &in));
        ASSERT_OK(cb_tpm2_params_parse(b.data, b.len, &out));
        ASSERT_EQ(out.flags, CB_TPM2_FLAG_KEYFILE);
        ASSERT_EQ(out.pcr_mask, 1u << 7);
        ASSERT_EQ(out.nv_index, 0x01234567);
        ASSERT_EQ(out.counter_base, 42);
        ASSERT_MEMEQ(out.salt, in.salt, CB_TPM2_SALT_LEN);
        ASSERT_EQ(out.pub_len, pub_len);
        ASSERT_MEMEQ(out.pub, pub_bytes, pub_len);
        ASSERT_EQ(out.priv_len, priv_len);
        /* Every proper prefix is refused, and so is a trailing byte. */
        for (size_t n = 0; n < b.len; n++)
                ASSERT_ERR(cb_tpm2_params_parse(b.data, n, &out), CB_E_INTEGRITY);
        ASSERT_OK(cb_buf_put_u8(&b, 0));
        ASSERT_ERR(parse_buf(&b), CB_E_INTEGRITY);
        cb_buf_free(&b);
}

/* Encode sample(mask) after applying edit; expect err. */
static void expect_refused(uint32_t mask, void (*edit)(cb_tpm2_params *), int err, const char *msg) {
        cb_buf b = CB_BUF_INIT;
        cb_tpm2_params p = sample(mask);

        if (edit)
                edit(&p);
        ASSERT_OK(cb_tpm2_params_encode(&b, &p));
        ASSERT_ERR(parse_buf(&b), err);
        ASSERT_CONTAINS(cb_error_last(), msg);
        cb_buf_free(&b);
}

static void e_flags(cb_tpm2_params *p) { p->flags = 0x82; }
static void e_pcr(cb_tpm2_params *p) { p->pcr_mask = 1u << 24; }
static void e_nv_low(cb_tpm2_params *p) { p->nv_index = 0x00ffffff; }
static void e_nv_high(cb_tpm2_params *p) { p->nv_index = 0x02000000; }
static void e_base0(cb_tpm2_params *p) { p->counter_base = 0; }
static void e_base_big(cb_tpm2_params *p) { p->counter_base = UINT64_MAX; }
static void e_pub_trailing(cb_tpm2_params *p) { p->pub_len = pub_len + 1; }
static void e_priv_short(cb_tpm2_params *p) { p->priv_len = priv_len - 1; }
static void e_no_pcrs(cb_tpm2_params *p) { p->pcr_mask = 0; }

TEST(refusals) {
        make_blobs(1, TPM2_ALG_KEYEDHASH);
        expect_refused(1u << 7, e_flags, CB_E_INTEGRITY, "unknown flags");
        expect_refused(1u << 7, e_pcr, CB_E_INTEGRITY, "PCR beyond 23");
        expect_refused(1u << 7, e_nv_low, CB_E_INTEGRITY, "NV index");
        expect_refused(1u << 7, e_nv_high, CB_E_INTEGRITY, "NV index");
        expect_refused(1u << 7, e_base0, CB_E_INTEGRITY, "counter base");
        expect_refused(1u << 7, e_base_big, CB_E_INTEGRITY, "counter base");
        expect_refused(1u << 7, e_pub_trailing, CB_E_INTEGRITY, "public area");
        expect_refused(1u << 7, e_priv_short, CB_E_INTEGRITY, "private area");
        /* A policy in the object but no PCR list (or the reverse) is refused:
         * the PCR list is always explicit and must agree with the object. */
        expect_refused(1u << 7, e_no_pcrs, CB_E_INTEGRITY, "policy does not match");
        make_blobs(0, TPM2_ALG_KEYEDHASH);
        expect_refused(1u << 7, NULL, CB_E_INTEGRITY, "policy does not match");
        make_blobs(0, TPM2_ALG_SYMCIPHER);
        expect_refused(0, NULL, CB_E_INTEGRITY, "KEYEDHASH");
}

TEST(version_and_caps) {
        unsigned char v2[1] = { 2 };
        cb_tpm2_params out;
        unsigned char *big;

        ASSERT_ERR(cb_tpm2_params_parse(v2, 1, &out), -EOPNOTSUPP);
        ASSERT_ERR(cb_tpm2_params_parse(v2, 0, &out), CB_E_INTEGRITY);
        big = calloc(1, CB_UNLOCK_PARAMS_MAX + 1);
        ASSERT_TRUE(big != NULL);
        big[0] = 1;
        ASSERT_ERR(cb_tpm2_params_parse(big, CB_UNLOCK_PARAMS_MAX + 1, &out), CB_E_INTEGRITY);
        free(big);
}

TEST(pcr_lists) {
        char out[96];
        uint32_t m;

        ASSERT_OK(cb_tpm2_pcrs_parse("7", &m));
        ASSERT_EQ(m, 1u << 7);
        ASSERT_OK(cb_tpm2_pcrs_parse("0,7,23", &m));
        ASSERT_EQ(m, (1u << 0) | (1u << 7) | (1u << 23));
        cb_tpm2_pcrs_format(m, out, sizeof(out));
        ASSERT_STREQ(out, "0,7,23");
        cb_tpm2_pcrs_format(0, out, sizeof(out));
        ASSERT_STREQ(out, "none");
        const char *bad[] = { "", ",", "7,", ",7", "24", "7,7", "-1", "7 ", "0x7", "a", "1000", "7,,8",
                              "0007", NULL };
        for (size_t i = 0; bad[i]; i++)
                ASSERT_ERR(cb_tpm2_pcrs_parse(bad[i], &m), -EINVAL);
}
