/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A thin layer over tpm2-tss ESAPI for the tpm2 unlock provider and the
 * `credbroker tpm` report.  Each cb_tpm2 is one connection through one TCTI;
 * it is opened per operation and closed right after (swtpm serves one
 * connection at a time and there may be no resource manager).
 *
 * Every function flushes every transient object and session it created, on
 * every path: with no resource manager a leak would accumulate in the TPM
 * until "out of memory for object contexts".
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "secmem.h"

#define CB_TPM2_DEFAULT_TCTI "device:/dev/tpmrm0"

typedef struct cb_tpm2 cb_tpm2;

/* Connect through tcti (NULL = CB_TPM2_DEFAULT_TCTI).  -ENODEV with "no TPM
 * reachable through TCTI '...'" when it cannot be opened or does not
 * answer. */
int cb_tpm2_open(const char *tcti, cb_tpm2 **ret) __attribute__((warn_unused_result));
void cb_tpm2_close(cb_tpm2 *t);
const char *cb_tpm2_tcti(const cb_tpm2 *t);

/* Seal secret[0..len) (1..128 bytes) as a KEYEDHASH object under the
 * deterministic SRK (ECC P-256 storage template, owner hierarchy), with a
 * policy on the sha256 PCRs in pcr_mask at their current values (0 = no
 * policy).  The sensitive data travels encrypted (salted session, AES-CFB).
 * Appends the marshalled TPM2B_PUBLIC and TPM2B_PRIVATE to the buffers. */
int cb_tpm2_seal(cb_tpm2 *t, uint32_t pcr_mask, const unsigned char *secret, size_t len, cb_buf *ret_pub,
                 cb_buf *ret_priv) __attribute__((warn_unused_result));

/* Load and unseal an object made by cb_tpm2_seal.  The result travels
 * encrypted (salted session); PCR_CHANGED is retried.  Messages say which
 * failure it is: the object belongs to another TPM (load fails under this
 * SRK), or the PCRs changed (policy check fails). */
int cb_tpm2_unseal(cb_tpm2 *t, uint32_t pcr_mask, const unsigned char *pub, size_t pub_len,
                   const unsigned char *priv, size_t priv_len, cb_secbuf **ret) __attribute__((warn_unused_result));

/* Define a new NV counter (TPM2_NT_COUNTER, index auth empty, owner auth
 * empty) at a random free owner index, increment it once and return the
 * index and its value. */
int cb_tpm2_counter_create(cb_tpm2 *t, uint32_t *ret_index, uint64_t *ret_value) __attribute__((warn_unused_result));
/* Read / increment the counter at index.  Both first check that the index
 * is still exactly the counter cb_tpm2_counter_create defines (type
 * TPM2_NT_COUNTER, 8 bytes, sha256 name, no policy, the same attributes
 * apart from the written/locked state bits): anything else is refused with
 * CB_E_INTEGRITY, "NV index 0x... is not this store's anti-rollback counter
 * (undefined and redefined?)".  The command itself is authorized through an
 * HMAC session, which binds it to the Name just checked. */
int cb_tpm2_counter_read(cb_tpm2 *t, uint32_t index, uint64_t *ret_value) __attribute__((warn_unused_result));
int cb_tpm2_counter_increment(cb_tpm2 *t, uint32_t index) __attribute__((warn_unused_result));

typedef struct cb_tpm2_info {
        char manufacturer[5];
        char vendor[17];
        uint32_t firmware[2];
        bool software;           /* swtpm / IBM simulator (manufacturer "IBM", vendor "SW TPM") */
        unsigned nbanks;
        struct {
                uint16_t alg;
                unsigned npcrs;  /* PCRs allocated in this bank */
        } banks[8];
        uint32_t transient;      /* transient objects loaded now */
        uint32_t sessions;       /* sessions loaded now */
        uint32_t nv_indices;     /* NV indices defined */
} cb_tpm2_info;

/* What the TPM behind t offers (GetCapability only; creates nothing). */
int cb_tpm2_get_info(cb_tpm2 *t, cb_tpm2_info *ret) __attribute__((warn_unused_result));

/* "sha256" etc. for a TPM2_ALG_ID; "0x...." style names are not needed. */
const char *cb_tpm2_alg_name(uint16_t alg);
