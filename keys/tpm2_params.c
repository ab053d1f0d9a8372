/* SPDX-License-Identifier: Apache-2.0 */
/* The tpm2 provider's header parameters: see tpm2_params.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <tss2/tss2_mu.h>

#include "error.h"
#include "kek.h"
#include "tpm2_params.h"

static int bad(const char *what) {
        return cb_error_set(CB_E_INTEGRITY, "integrity error: header: malformed tpm2 parameters (%s)", what);
}

int cb_tpm2_params_parse(const unsigned char *p, size_t len, cb_tpm2_params *ret) {
        cb_reader rd = cb_reader_make(p, len);
        cb_tpm2_params prm;
        TPM2B_PUBLIC pub;
        TPM2B_PRIVATE priv;
        const unsigned char *salt;
        size_t off;
        uint8_t v;

        memset(&prm, 0, sizeof(prm));
        if (len > CB_UNLOCK_PARAMS_MAX)
                return bad("too long");
        if (cb_reader_u8(&rd, &v) < 0)
                return bad("empty");
        if (v != CB_TPM2_PARAMS_V1)
                return cb_error_set(-EOPNOTSUPP, "header: unknown tpm2 parameter version %u", v);
        if (cb_reader_u8(&rd, &prm.flags) < 0 || cb_reader_u32(&rd, &prm.pcr_mask) < 0 ||
            cb_reader_u32(&rd, &prm.nv_index) < 0 || cb_reader_u64(&rd, &prm.counter_base) < 0 ||
            cb_reader_bytes(&rd, CB_TPM2_SALT_LEN, &salt) < 0 ||
            cb_reader_lv(&rd, CB_TPM2_BLOB_MAX, &prm.pub, &prm.pub_len) < 0 ||
            cb_reader_lv(&rd, CB_TPM2_BLOB_MAX, &prm.priv, &prm.priv_len) < 0 || cb_reader_end(&rd) < 0)
                return bad("truncated or trailing bytes");
        if (prm.flags & ~CB_TPM2_FLAG_KEYFILE)
                return bad("unknown flags");
        if (prm.pcr_mask >> CB_TPM2_PCR_COUNT)
                return bad("PCR beyond 23");
        if (prm.nv_index < CB_TPM2_NV_FIRST || prm.nv_index > CB_TPM2_NV_LAST)
                return bad("NV index outside the owner range");
        if (prm.counter_base == 0 || prm.counter_base > UINT64_MAX / 2)
                return bad("counter base out of range");
        memcpy(prm.salt, salt, CB_TPM2_SALT_LEN);

        memset(&pub, 0, sizeof(pub));
        off = 0;
        if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(prm.pub, prm.pub_len, &off, &pub) != 0 || off != prm.pub_len)
                return bad("sealed object public area");
        if (pub.publicArea.type != TPM2_ALG_KEYEDHASH || pub.publicArea.nameAlg != TPM2_ALG_SHA256)
                return bad("sealed object is not a sha256 KEYEDHASH object");
        if ((prm.pcr_mask != 0) != (pub.publicArea.authPolicy.size == 32) ||
            (prm.pcr_mask == 0 && pub.publicArea.authPolicy.size != 0))
                return bad("sealed object policy does not match the PCR list");
        memset(&priv, 0, sizeof(priv));
        off = 0;
        if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(prm.priv, prm.priv_len, &off, &priv) != 0 || off != prm.priv_len ||
            priv.size == 0)
                return bad("sealed object private area");
        *ret = prm;
        return 0;
}

int cb_tpm2_params_encode(cb_buf *out, const cb_tpm2_params *prm) {
        int r;

        if ((r = cb_buf_put_u8(out, CB_TPM2_PARAMS_V1)) < 0 || (r = cb_buf_put_u8(out, prm->flags)) < 0 ||
            (r = cb_buf_put_u32(out, prm->pcr_mask)) < 0 || (r = cb_buf_put_u32(out, prm->nv_index)) < 0 ||
            (r = cb_buf_put_u64(out, prm->counter_base)) < 0 ||
            (r = cb_buf_put(out, prm->salt, CB_TPM2_SALT_LEN)) < 0 ||
            (r = cb_buf_put_lv(out, prm->pub, prm->pub_len)) < 0 ||
            (r = cb_buf_put_lv(out, prm->priv, prm->priv_len)) < 0)
                return r;
        return 0;
}

int cb_tpm2_pcrs_parse(const char *s, uint32_t *ret_mask) {
        uint32_t mask = 0;
        const char *p = s;

        if (!s || !*s)
                return cb_error_set(-EINVAL, "--tpm2-pcrs: empty PCR list (give e.g. 7 or 0,7)");
        for (;;) {
                unsigned v = 0;
                size_t digits = 0;

                while (*p >= '0' && *p <= '9' && digits < 3) {
                        v = v * 10 + (unsigned)(*p++ - '0');
                        digits++;
                }
                if (digits == 0 || v >= CB_TPM2_PCR_COUNT || (*p != ',' && *p != '\0'))
                        return cb_error_set(-EINVAL, "--tpm2-pcrs '%.64s': want PCR numbers 0..23 separated by "
                                            "commas", s);
                if (mask & (1u << v))
                        return cb_error_set(-EINVAL, "--tpm2-pcrs '%.64s': PCR %u given twice", s, v);
                mask |= 1u << v;
                if (*p == '\0')
                        break;
                p++;
        }
        *ret_mask = mask;
        return 0;
}

void cb_tpm2_pcrs_format(uint32_t mask, char *out, size_t cap) {
        size_t n = 0;

        if (cap == 0)
                return;
        out[0] = '\0';
        if (!mask) {
                snprintf(out, cap, "none");
                return;
        }
        for (unsigned i = 0; i < 32 && n < cap; i++)
                if (mask & (1u << i)) {
                        int k = snprintf(out + n, cap - n, "%s%u", n ? "," : "", i);
                        if (k < 0)
                                break;
                        n += (size_t)k;
                }
}
