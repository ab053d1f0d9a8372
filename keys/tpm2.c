/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ESAPI operations for the tpm2 provider (see tpm2.h).  Each exported
 * function starts from no TPM objects and ends with none: the SRK is
 * re-created (deterministic, so it is the same key every time) and flushed,
 * sessions are started with CONTINUESESSION and flushed explicitly.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "error.h"
#include "tpm2.h"
#include "tss2_lazy.h"

#define PCR_RETRIES 3
#define NV_PICK_TRIES 16

struct cb_tpm2 {
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
        char *conf;
};

/* The TPM error number without layer and parameter/handle/session index;
 * a non-TPM-layer code is returned unchanged. */
static TSS2_RC rc_base(TSS2_RC rc) {
        if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER)
                return rc;
        if (rc & TPM2_RC_FMT1)
                return rc & (TPM2_RC_FMT1 | 0x3f);
        return rc & 0xfff;
}

static void quiet_tss_log(void) {
        /* tpm2-tss logs errors to stderr by default; our callers report one
         * clear line instead.  An operator's own TSS2_LOG wins. */
        (void)setenv("TSS2_LOG", "all+NONE", 0);
}

const char *cb_tpm2_tcti(const cb_tpm2 *t) {
        return t->conf;
}

void cb_tpm2_close(cb_tpm2 *t) {
        if (!t)
                return;
        if (t->esys)
                Esys_Finalize(&t->esys);
        if (t->tcti)
                Tss2_TctiLdr_Finalize(&t->tcti);
        free(t->conf);
        free(t);
}

int cb_tpm2_open(const char *tcti, cb_tpm2 **ret) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more;
        cb_tpm2 *t;
        TSS2_RC rc;
        int r;

        (void)pthread_once(&once, quiet_tss_log);
        if (!cb_tss2_loaded())
                return cb_error_set(-ENODEV, "TPM unusable: the tpm2-tss libraries (libtss2-esys.so.0, "
                                             "libtss2-mu.so.0, libtss2-rc.so.0, libtss2-tctildr.so.0) could "
                                             "not be loaded: install them (Debian: libtss2-esys-3.0.2-0, "
                                             "libtss2-tctildr0, libtss2-mu0, libtss2-rc0)");
        if (!tcti || !*tcti)
                tcti = CB_TPM2_DEFAULT_TCTI;
        if (strlen(tcti) > 512)
                return cb_error_set(-EINVAL, "--tpm2-tcti: longer than 512 bytes");
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->conf = strdup(tcti);
        if (!t->conf) {
                free(t);
                return -ENOMEM;
        }
        rc = Tss2_TctiLdr_Initialize(tcti, &t->tcti);
        if (rc != TSS2_RC_SUCCESS) {
                r = cb_error_set(-ENODEV, "TPM absent: no TPM reachable through TCTI '%s' (%s)", tcti,
                                 Tss2_RC_Decode(rc));
                goto fail;
        }
        rc = Esys_Initialize(&t->esys, t->tcti, NULL);
        if (rc != TSS2_RC_SUCCESS) {
                r = cb_error_set(-ENODEV, "TPM absent: TCTI '%s' opened but ESAPI could not start (%s)", tcti,
                                 Tss2_RC_Decode(rc));
                goto fail;
        }
        /* A round trip proves a TPM answers; start it up if nobody has
         * (a fresh simulator).  A started TPM refuses Startup harmlessly. */
        rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                                TPM2_PT_MANUFACTURER, 1, &more, &cap);
        Esys_Free(cap);
        if (rc_base(rc) == TPM2_RC_INITIALIZE) {
                rc = Esys_Startup(t->esys, TPM2_SU_CLEAR);
                if (rc_base(rc) == TPM2_RC_INITIALIZE)
                        rc = TSS2_RC_SUCCESS;
        }
        if (rc != TSS2_RC_SUCCESS) {
                r = cb_error_set(-ENODEV, "TPM absent: nothing answers through TCTI '%s' (%s)", tcti,
                                 Tss2_RC_Decode(rc));
                goto fail;
        }
        *ret = t;
        return 0;
fail:
        cb_tpm2_close(t);
        return r;
}

static void flush(cb_tpm2 *t, ESYS_TR *h) {
        if (*h != ESYS_TR_NONE) {
                (void)Esys_FlushContext(t->esys, *h);
                *h = ESYS_TR_NONE;
        }
}

/* The SRK: ECC P-256 restricted decryption key, AES-128-CFB, the TCG
 * storage template with an empty unique field.  Deterministic: the same
 * owner seed gives the same key, so it is re-created instead of persisted. */
static int create_srk(cb_tpm2 *t, ESYS_TR *ret) {
        static const TPM2B_SENSITIVE_CREATE sens = { 0 };
        static const TPM2B_DATA outside = { 0 };
        static const TPML_PCR_SELECTION none = { 0 };
        TPM2B_PUBLIC tmpl = {
                .publicArea = {
                        .type = TPM2_ALG_ECC,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                            TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                            TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
                        .parameters.eccDetail = {
                                .symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128,
                                               .mode.aes = TPM2_ALG_CFB },
                                .scheme = { .scheme = TPM2_ALG_NULL },
                                .curveID = TPM2_ECC_NIST_P256,
                                .kdf = { .scheme = TPM2_ALG_NULL },
                        },
                },
        };
        TSS2_RC rc;

        rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
                                &outside, &none, ret, NULL, NULL, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return cb_error_set(-EACCES, "TPM: cannot create the storage root key under the owner hierarchy "
                                    "(owner authorization set, or TPM full?): %s", Tss2_RC_Decode(rc));
        return 0;
}

/* A session salted with the SRK and AES-128-CFB parameter encryption both
 * ways (type TPM2_SE_HMAC or TPM2_SE_POLICY). */
static int start_session(cb_tpm2 *t, ESYS_TR srk, TPM2_SE type, ESYS_TR *ret) {
        static const TPMT_SYM_DEF aes = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB };
        ESYS_TR s = ESYS_TR_NONE;
        TSS2_RC rc;

        rc = Esys_StartAuthSession(t->esys, srk, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, type,
                                   &aes, TPM2_ALG_SHA256, &s);
        if (rc != TSS2_RC_SUCCESS)
                return cb_error_set(-EIO, "TPM: cannot start an encrypted session: %s", Tss2_RC_Decode(rc));
        rc = Esys_TRSess_SetAttributes(t->esys, s,
                                       TPMA_SESSION_CONTINUESESSION | TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT,
                                       0xff);
        if (rc != TSS2_RC_SUCCESS) {
                flush(t, &s);
                return cb_error_set(-EIO, "TPM: cannot set session attributes: %s", Tss2_RC_Decode(rc));
        }
        *ret = s;
        return 0;
}

static void pcr_selection(uint32_t mask, TPML_PCR_SELECTION *sel) {
        memset(sel, 0, sizeof(*sel));
        sel->count = 1;
        sel->pcrSelections[0].hash = TPM2_ALG_SHA256;
        sel->pcrSelections[0].sizeofSelect = 3;
        sel->pcrSelections[0].pcrSelect[0] = (uint8_t)(mask & 0xff);
        sel->pcrSelections[0].pcrSelect[1] = (uint8_t)((mask >> 8) & 0xff);
        sel->pcrSelections[0].pcrSelect[2] = (uint8_t)((mask >> 16) & 0xff);
}

/* The policy digest for "PCRs in mask (sha256) hold their current values",
 * from a trial session. */
static int pcr_policy_digest(cb_tpm2 *t, uint32_t mask, TPM2B_DIGEST *ret) {
        static const TPMT_SYM_DEF null_sym = { .algorithm = TPM2_ALG_NULL };
        static const TPM2B_DIGEST current = { 0 };
        TPML_PCR_SELECTION sel;
        TPM2B_DIGEST *d = NULL;
        ESYS_TR trial = ESYS_TR_NONE;
        TSS2_RC rc;
        int r;

        pcr_selection(mask, &sel);
        rc = Esys_StartAuthSession(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
                                   TPM2_SE_TRIAL, &null_sym, TPM2_ALG_SHA256, &trial);
        if (rc != TSS2_RC_SUCCESS)
                return cb_error_set(-EIO, "TPM: cannot start a trial session: %s", Tss2_RC_Decode(rc));
        rc = Esys_PolicyPCR(t->esys, trial, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &current, &sel);
        if (rc == TSS2_RC_SUCCESS)
                rc = Esys_PolicyGetDigest(t->esys, trial, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &d);
        if (rc != TSS2_RC_SUCCESS) {
                r = cb_error_set(-EIO, "TPM: cannot compute the PCR policy (sha256 bank allocated?): %s",
                                 Tss2_RC_Decode(rc));
                goto out;
        }
        *ret = *d;
        r = 0;
out:
        Esys_Free(d);
        flush(t, &trial);
        return r;
}

int cb_tpm2_seal(cb_tpm2 *t, uint32_t pcr_mask, const unsigned char *secret, size_t len, cb_buf *ret_pub,
                 cb_buf *ret_priv) {
        static const TPM2B_DATA outside = { 0 };
        static const TPML_PCR_SELECTION none = { 0 };
        TPM2B_SENSITIVE_CREATE sens;
        TPM2B_PUBLIC tmpl = {
                .publicArea = {
                        .type = TPM2_ALG_KEYEDHASH,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_NODA,
                        .parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
                },
        };
        TPM2B_PRIVATE *priv = NULL;
        TPM2B_PUBLIC *pub = NULL;
        ESYS_TR srk = ESYS_TR_NONE, sess = ESYS_TR_NONE;
        uint8_t tmp[sizeof(TPM2B_PUBLIC) > sizeof(TPM2B_PRIVATE) ? sizeof(TPM2B_PUBLIC) : sizeof(TPM2B_PRIVATE)];
        size_t off;
        TSS2_RC rc;
        int r;

        memset(&sens, 0, sizeof(sens));
        if (len == 0 || len > sizeof(sens.sensitive.data.buffer))
                return -EINVAL;
        if (pcr_mask) {
                r = pcr_policy_digest(t, pcr_mask, &tmpl.publicArea.authPolicy);
                if (r < 0)
                        return r;
        } else {
                tmpl.publicArea.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
        }
        sens.sensitive.data.size = (UINT16)len;
        memcpy(sens.sensitive.data.buffer, secret, len);
        r = create_srk(t, &srk);
        if (r < 0)
                goto out;
        r = start_session(t, srk, TPM2_SE_HMAC, &sess);
        if (r < 0)
                goto out;
        rc = Esys_Create(t->esys, srk, sess, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside, &none, &priv, &pub,
                         NULL, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS) {
                r = cb_error_set(-EIO, "TPM: cannot create the sealed object: %s", Tss2_RC_Decode(rc));
                goto out;
        }
        off = 0;
        if (Tss2_MU_TPM2B_PUBLIC_Marshal(pub, tmp, sizeof(tmp), &off) != TSS2_RC_SUCCESS ||
            (r = cb_buf_put(ret_pub, tmp, off)) < 0) {
                r = r < 0 ? r : -EIO;
                goto out;
        }
        off = 0;
        if (Tss2_MU_TPM2B_PRIVATE_Marshal(priv, tmp, sizeof(tmp), &off) != TSS2_RC_SUCCESS ||
            (r = cb_buf_put(ret_priv, tmp, off)) < 0) {
                r = r < 0 ? r : -EIO;
                goto out;
        }
        r = 0;
out:
        sodium_memzero(&sens, sizeof(sens));
        Esys_Free(priv);
        Esys_Free(pub);
        flush(t, &sess);
        flush(t, &srk);
        return r;
}

int cb_tpm2_unseal(cb_tpm2 *t, uint32_t pcr_mask, const unsigned char *pub_bytes, size_t pub_len,
                   const unsigned char *priv_bytes, size_t priv_len, cb_secbuf **ret) {
        static const TPM2B_DIGEST current = { 0 };
        TPM2B_PUBLIC pub;
        TPM2B_PRIVATE priv;
        TPM2B_SENSITIVE_DATA *out = NULL;
        TPML_PCR_SELECTION sel;
        ESYS_TR srk = ESYS_TR_NONE, obj = ESYS_TR_NONE, sess = ESYS_TR_NONE;
        size_t off;
        TSS2_RC rc;
        int r;

        memset(&pub, 0, sizeof(pub));
        memset(&priv, 0, sizeof(priv));
        off = 0;
        if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub_bytes, pub_len, &off, &pub) != TSS2_RC_SUCCESS || off != pub_len)
                return cb_error_set(CB_E_INTEGRITY, "integrity error: header: malformed sealed object");
        off = 0;
        if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(priv_bytes, priv_len, &off, &priv) != TSS2_RC_SUCCESS || off != priv_len)
                return cb_error_set(CB_E_INTEGRITY, "integrity error: header: malformed sealed object");
        r = create_srk(t, &srk);
        if (r < 0)
                goto out;
        r = start_session(t, srk, TPM2_SE_HMAC, &sess);
        if (r < 0)
                goto out;
        rc = Esys_Load(t->esys, srk, sess, ESYS_TR_NONE, ESYS_TR_NONE, &priv, &pub, &obj);
        if (rc_base(rc) == TPM2_RC_INTEGRITY) {
                /* The private blob's outer HMAC is keyed from the parent's
                 * seed: another TPM's (or a cleared owner's) SRK fails it. */
                r = cb_error_set(-ENOKEY, "the sealed object belongs to another TPM (or this TPM's owner "
                                 "hierarchy was cleared): it does not load under this TPM's storage root key "
                                 "(%s)", Tss2_RC_Decode(rc));
                goto out;
        }
        if (rc != TSS2_RC_SUCCESS) {
                r = cb_error_set(-EIO, "TPM: cannot load the sealed object: %s%s", Tss2_RC_Decode(rc),
                                 rc_base(rc) == TPM2_RC_OBJECT_MEMORY ? " (objects leaked by another program? "
                                 "without a resource manager, 'tpm2_flushcontext -t' frees them)" : "");
                goto out;
        }
        if (pcr_mask)
                pcr_selection(pcr_mask, &sel);
        for (int attempt = 0;; attempt++) {
                if (pcr_mask) {
                        flush(t, &sess);
                        r = start_session(t, srk, TPM2_SE_POLICY, &sess);
                        if (r < 0)
                                goto out;
                        rc = Esys_PolicyPCR(t->esys, sess, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &current, &sel);
                        if (rc != TSS2_RC_SUCCESS) {
                                r = cb_error_set(-EIO, "TPM: PCR policy (sha256 bank) failed: %s",
                                                 Tss2_RC_Decode(rc));
                                goto out;
                        }
                }
                rc = Esys_Unseal(t->esys, obj, sess, ESYS_TR_NONE, ESYS_TR_NONE, &out);
                if (rc_base(rc) == TPM2_RC_PCR_CHANGED && attempt + 1 < PCR_RETRIES)
                        continue; /* a PCR moved between the policy and the unseal: redo both */
                break;
        }
        if (rc != TSS2_RC_SUCCESS) {
                char pcrs[96] = "";

                if (pcr_mask && (rc_base(rc) == TPM2_RC_POLICY_FAIL || rc_base(rc) == TPM2_RC_PCR_CHANGED)) {
                        for (unsigned i = 0; i < 24; i++)
                                if (pcr_mask & (1u << i))
                                        snprintf(pcrs + strlen(pcrs), sizeof(pcrs) - strlen(pcrs), "%s%u",
                                                 pcrs[0] ? "," : "", i);
                        r = cb_error_set(-EACCES, "PCRs changed: the TPM refuses to unseal because sha256 PCR(s) "
                                         "%s no longer hold the values the store was sealed to", pcrs);
                } else {
                        r = cb_error_set(-EIO, "TPM: unseal failed: %s", Tss2_RC_Decode(rc));
                }
                goto out;
        }
        *ret = cb_secbuf_dup(out->buffer, out->size);
        r = *ret ? 0 : -ENOMEM;
out:
        if (out) {
                sodium_memzero(out, sizeof(*out));
                Esys_Free(out);
        }
        sodium_memzero(&priv, sizeof(priv));
        flush(t, &sess);
        flush(t, &obj);
        flush(t, &srk);
        return r;
}

/* ---- NV counter ------------------------------------------------------- */

/* The attributes cb_tpm2_counter_create defines the counter with, and the
 * state bits the TPM itself sets on an index (written, locked) that are
 * ignored when comparing with them. */
#define NV_COUNTER_ATTRS                                                                                         \
        ((TPMA_NV)(((TPMA_NV)TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD |     \
                   TPMA_NV_NO_DA))
#define NV_STATE_BITS ((TPMA_NV)(TPMA_NV_WRITTEN | TPMA_NV_WRITELOCKED | TPMA_NV_READLOCKED))

/* What is wrong with the index's public area as our counter, or NULL when
 * it is exactly what cb_tpm2_counter_create defines. */
static const char *nv_public_mismatch(const TPMS_NV_PUBLIC *p, uint32_t index) {
        if (p->nvIndex != index)
                return "the TPM reports another index";
        if (((p->attributes & TPMA_NV_TPM2_NT_MASK) >> TPMA_NV_TPM2_NT_SHIFT) != TPM2_NT_COUNTER)
                return "it is not a counter (TPM2_NT_COUNTER)";
        if (p->dataSize != 8)
                return "its size is not 8 bytes";
        if (p->nameAlg != TPM2_ALG_SHA256)
                return "its name algorithm is not sha256";
        if (p->authPolicy.size != 0)
                return "it has an authorization policy";
        if ((p->attributes & ~NV_STATE_BITS) != NV_COUNTER_ATTRS)
                return "its attributes differ from the ones the store defined";
        return NULL;
}

/* An ESAPI handle for the counter at index, after checking that the index
 * is still the counter cb_tpm2_counter_create defined.  The owner
 * authorization is empty, so anyone who can open the TPM can undefine the
 * index and define an ordinary one at the same handle, write any value into
 * it and so roll the store back: such an index is refused (CB_E_INTEGRITY).
 * A counter undefined and defined again with the same attributes is
 * harmless: the TPM starts a new counter at the highest value any counter
 * has had. */
static int nv_handle(cb_tpm2 *t, uint32_t index, ESYS_TR *ret) {
        TPM2B_NV_PUBLIC *pub = NULL;
        const char *why;
        ESYS_TR nv = ESYS_TR_NONE;
        TSS2_RC rc = Esys_TR_FromTPMPublic(t->esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
        int r;

        if (rc != TSS2_RC_SUCCESS)
                return cb_error_set(-ENOENT, "the anti-rollback NV counter 0x%08x does not exist on this TPM "
                                    "(another TPM, or the owner hierarchy was cleared): %s", index,
                                    Tss2_RC_Decode(rc));
        rc = Esys_NV_ReadPublic(t->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
        if (rc != TSS2_RC_SUCCESS) {
                r = cb_error_set(-EIO, "TPM: cannot read the public area of NV index 0x%08x: %s", index,
                                 Tss2_RC_Decode(rc));
                goto out;
        }
        why = nv_public_mismatch(&pub->nvPublic, index);
        if (why) {
                r = cb_error_set(CB_E_INTEGRITY, "integrity error: NV index 0x%08x is not this store's "
                                 "anti-rollback counter (undefined and redefined?): %s (attributes 0x%08x)", index,
                                 why, (unsigned)pub->nvPublic.attributes);
                goto out;
        }
        *ret = nv;
        nv = ESYS_TR_NONE;
        r = 0;
out:
        Esys_Free(pub);
        if (nv != ESYS_TR_NONE)
                (void)Esys_TR_Close(t->esys, &nv);
        return r;
}

/* An unsalted HMAC session for authorizing the counter with its (empty)
 * auth value.  Unlike a password session, its HMAC covers the index's Name
 * as nv_handle checked it: if the index is undefined and redefined
 * differently between that check and the command, the TPM refuses the
 * command (AUTH_FAIL; the index has NO_DA, so no lockout). */
static int nv_session(cb_tpm2 *t, ESYS_TR *ret) {
        static const TPMT_SYM_DEF null_sym = { .algorithm = TPM2_ALG_NULL };
        ESYS_TR s = ESYS_TR_NONE;
        TSS2_RC rc;

        rc = Esys_StartAuthSession(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
                                   TPM2_SE_HMAC, &null_sym, TPM2_ALG_SHA256, &s);
        if (rc != TSS2_RC_SUCCESS)
                return cb_error_set(-EIO, "TPM: cannot start an HMAC session: %s", Tss2_RC_Decode(rc));
        rc = Esys_TRSess_SetAttributes(t->esys, s, TPMA_SESSION_CONTINUESESSION, 0xff);
        if (rc != TSS2_RC_SUCCESS) {
                flush(t, &s);
                return cb_error_set(-EIO, "TPM: cannot set session attributes: %s", Tss2_RC_Decode(rc));
        }
        *ret = s;
        return 0;
}

/* The message for a counter command that failed with rc. */
static int nv_fail(TSS2_RC rc, const char *what, uint32_t index) {
        if (rc_base(rc) == TPM2_RC_AUTH_FAIL)
                return cb_error_set(CB_E_INTEGRITY, "integrity error: NV index 0x%08x changed while in use: it "
                                    "is not this store's anti-rollback counter any more (undefined and "
                                    "redefined?)", index);
        return cb_error_set(-EIO, "TPM: cannot %s NV counter 0x%08x: %s", what, index, Tss2_RC_Decode(rc));
}

/* sess: ESYS_TR_PASSWORD, or a session from nv_session. */
static int nv_read(cb_tpm2 *t, ESYS_TR nv, ESYS_TR sess, uint32_t index, uint64_t *ret) {
        TPM2B_MAX_NV_BUFFER *d = NULL;
        TSS2_RC rc;
        uint64_t v = 0;

        rc = Esys_NV_Read(t->esys, nv, nv, sess, ESYS_TR_NONE, ESYS_TR_NONE, 8, 0, &d);
        if (rc != TSS2_RC_SUCCESS)
                return nv_fail(rc, "read", index);
        if (d->size != 8) {
                Esys_Free(d);
                return cb_error_set(-EIO, "TPM: cannot read NV counter 0x%08x: short read", index);
        }
        for (int i = 0; i < 8; i++)
                v = (v << 8) | d->buffer[i];
        Esys_Free(d);
        *ret = v;
        return 0;
}

static int nv_increment(cb_tpm2 *t, ESYS_TR nv, ESYS_TR sess, uint32_t index) {
        TSS2_RC rc = Esys_NV_Increment(t->esys, nv, nv, sess, ESYS_TR_NONE, ESYS_TR_NONE);

        if (rc != TSS2_RC_SUCCESS)
                return nv_fail(rc, "increment", index);
        return 0;
}

int cb_tpm2_counter_create(cb_tpm2 *t, uint32_t *ret_index, uint64_t *ret_value) {
        static const TPM2B_AUTH empty = { 0 };
        TPM2B_NV_PUBLIC pubinfo = {
                .nvPublic = {
                        .nameAlg = TPM2_ALG_SHA256,
                        .attributes = NV_COUNTER_ATTRS,
                        .dataSize = 8,
                },
        };
        ESYS_TR nv = ESYS_TR_NONE;
        TSS2_RC rc = TSS2_RC_SUCCESS;
        int r;

        for (int i = 0; i < NV_PICK_TRIES; i++) {
                /* 0x01000000..0x013fffff: the owner's range in the TCG handle registry. */
                pubinfo.nvPublic.nvIndex = 0x01000000u | (randombytes_uniform(0x3ffff0u) + 0x10u);
                rc = Esys_NV_DefineSpace(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                         &empty, &pubinfo, &nv);
                if (rc_base(rc) != TPM2_RC_NV_DEFINED)
                        break;
        }
        if (rc != TSS2_RC_SUCCESS)
                return cb_error_set(-EACCES, "TPM: cannot define the anti-rollback NV counter (owner authorization "
                                    "set, or NV space full?): %s", Tss2_RC_Decode(rc));
        r = nv_increment(t, nv, ESYS_TR_PASSWORD, pubinfo.nvPublic.nvIndex);
        if (r == 0)
                r = nv_read(t, nv, ESYS_TR_PASSWORD, pubinfo.nvPublic.nvIndex, ret_value);
        if (r == 0)
                *ret_index = pubinfo.nvPublic.nvIndex;
        else if (Esys_NV_UndefineSpace(t->esys, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                       ESYS_TR_NONE) == TSS2_RC_SUCCESS)
                nv = ESYS_TR_NONE; /* undefining released the ESAPI object too */
        if (nv != ESYS_TR_NONE)
                (void)Esys_TR_Close(t->esys, &nv);
        return r;
}

int cb_tpm2_counter_read(cb_tpm2 *t, uint32_t index, uint64_t *ret_value) {
        ESYS_TR nv = ESYS_TR_NONE, sess = ESYS_TR_NONE;
        int r = nv_handle(t, index, &nv);

        if (r < 0)
                return r;
        r = nv_session(t, &sess);
        if (r == 0)
                r = nv_read(t, nv, sess, index, ret_value);
        flush(t, &sess);
        (void)Esys_TR_Close(t->esys, &nv);
        return r;
}

int cb_tpm2_counter_increment(cb_tpm2 *t, uint32_t index) {
        ESYS_TR nv = ESYS_TR_NONE, sess = ESYS_TR_NONE;
        int r = nv_handle(t, index, &nv);

        if (r < 0)
                return r;
        r = nv_session(t, &sess);
        if (r == 0)
                r = nv_increment(t, nv, sess, index);
        flush(t, &sess);
        (void)Esys_TR_Close(t->esys, &nv);
        return r;
}

/* ---- capabilities ------------------------------------------------------ */

const char *cb_tpm2_alg_name(uint16_t alg) {
        switch (alg) {
        case TPM2_ALG_SHA1:
                return "sha1";
        case TPM2_ALG_SHA256:
                return "sha256";
        case TPM2_ALG_SHA384:
                return "sha384";
        case TPM2_ALG_SHA512:
                return "sha512";
        case TPM2_ALG_SM3_256:
                return "sm3_256";
        case TPM2_ALG_SHA3_256:
                return "sha3_256";
        }
        return "unknown";
}

static void u32_chars(uint32_t v, char *out) {
        for (int i = 0; i < 4; i++) {
                char c = (char)((v >> (24 - 8 * i)) & 0xff);
                out[i] = c >= 0x20 && c < 0x7f ? c : ' ';
        }
}

static int count_handles(cb_tpm2 *t, uint32_t first, uint32_t *ret) {
        TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more = TPM2_NO;
        uint32_t n = 0;
        TSS2_RC rc;

        do {
                rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, first,
                                        TPM2_MAX_CAP_HANDLES, &more, &cap);
                if (rc != TSS2_RC_SUCCESS)
                        return cb_error_set(-EIO, "TPM: GetCapability(handles) failed: %s", Tss2_RC_Decode(rc));
                uint32_t k = cap->data.handles.count;
                n += k;
                if (k)
                        first = cap->data.handles.handle[k - 1] + 1;
                Esys_Free(cap);
                cap = NULL;
                if (!k)
                        break;
        } while (more == TPM2_YES);
        *ret = n;
        return 0;
}

int cb_tpm2_get_info(cb_tpm2 *t, cb_tpm2_info *ret) {
        TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more;
        cb_tpm2_info info;
        TSS2_RC rc;
        int r;

        memset(&info, 0, sizeof(info));
        rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                                TPM2_PT_MANUFACTURER, 16, &more, &cap);
        if (rc != TSS2_RC_SUCCESS)
                return cb_error_set(-EIO, "TPM: GetCapability(properties) failed: %s", Tss2_RC_Decode(rc));
        for (uint32_t i = 0; i < cap->data.tpmProperties.count; i++) {
                const TPMS_TAGGED_PROPERTY *p = &cap->data.tpmProperties.tpmProperty[i];

                if (p->property == TPM2_PT_MANUFACTURER)
                        u32_chars(p->value, info.manufacturer);
                else if (p->property >= TPM2_PT_VENDOR_STRING_1 && p->property <= TPM2_PT_VENDOR_STRING_1 + 3)
                        u32_chars(p->value, info.vendor + 4 * (p->property - TPM2_PT_VENDOR_STRING_1));
                else if (p->property == TPM2_PT_FIRMWARE_VERSION_1)
                        info.firmware[0] = p->value;
                else if (p->property == TPM2_PT_FIRMWARE_VERSION_1 + 1)
                        info.firmware[1] = p->value;
        }
        Esys_Free(cap);
        cap = NULL;
        /* Trim trailing blanks of the vendor string. */
        for (size_t n = strlen(info.vendor); n > 0 && info.vendor[n - 1] == ' '; n--)
                info.vendor[n - 1] = '\0';
        for (size_t n = strlen(info.manufacturer); n > 0 && info.manufacturer[n - 1] == ' '; n--)
                info.manufacturer[n - 1] = '\0';
        /* swtpm (libtpms) and the IBM simulator report manufacturer "IBM"
         * and vendor "SW   TPM". */
        info.software = strcmp(info.manufacturer, "IBM") == 0 && strncmp(info.vendor, "SW", 2) == 0;

        rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_PCRS, 0, 1, &more, &cap);
        if (rc != TSS2_RC_SUCCESS)
                return cb_error_set(-EIO, "TPM: GetCapability(pcrs) failed: %s", Tss2_RC_Decode(rc));
        for (uint32_t i = 0; i < cap->data.assignedPCR.count && info.nbanks < 8; i++) {
                const TPMS_PCR_SELECTION *s = &cap->data.assignedPCR.pcrSelections[i];
                unsigned n = 0;

                for (unsigned b = 0; b < s->sizeofSelect && b < TPM2_PCR_SELECT_MAX; b++)
                        n += (unsigned)__builtin_popcount(s->pcrSelect[b]);
                if (n == 0)
                        continue; /* an algorithm the TPM knows but has no bank of */
                info.banks[info.nbanks].alg = s->hash;
                info.banks[info.nbanks].npcrs = n;
                info.nbanks++;
        }
        Esys_Free(cap);
        /* Literal handle ranges: the tss2 macros shift a signed int into
         * the sign bit (TPM2_TRANSIENT_FIRST), undefined behaviour. */
        if ((r = count_handles(t, 0x80000000u, &info.transient)) < 0 ||
            (r = count_handles(t, 0x02000000u, &info.sessions)) < 0 ||
            (r = count_handles(t, 0x01000000u, &info.nv_indices)) < 0)
                return r;
        *ret = info;
        return 0;
}
