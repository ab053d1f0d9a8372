/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tpm2-tss, loaded when first used rather than at start-up.
 *
 * The ESAPI, marshalling, response-code and TCTI-loader libraries bring
 * libtss2-sys and libcrypto with them: linked in, the dynamic loader maps
 * and relocates them before main() of every program that links keys/ --
 * each credbroker command, `credbroker sandbox -- CMD` included (issue 17's
 * start-up benchmark), though only the tpm2 unlock provider uses them.
 * Here are the functions tpm2.c and tpm2_params.c call, under their own
 * names (the declarations are tpm2-tss's headers: a signature that differs
 * does not compile) and hidden (-fvisibility=hidden: never exported); the
 * first call of any of them dlopens the four libraries -- the same files
 * found the same way (ld.so.cache, RUNPATH, LD_LIBRARY_PATH) as DT_NEEDED
 * entries were.  If one cannot be loaded, every call fails with the layer's
 * GENERAL_FAILURE (Tss2_RC_Decode says the libraries are missing; the
 * void ones do nothing: nothing of theirs was ever handed out), and
 * cb_tss2_loaded() is false (tpm2.c says so first).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "tss2_lazy.h"

static const char *const sonames[] = {"libtss2-esys.so.0", "libtss2-mu.so.0", "libtss2-rc.so.0",
                                      "libtss2-tctildr.so.0"};

static struct {
        __typeof__(&Esys_Create) Esys_Create;
        __typeof__(&Esys_CreatePrimary) Esys_CreatePrimary;
        __typeof__(&Esys_Finalize) Esys_Finalize;
        __typeof__(&Esys_FlushContext) Esys_FlushContext;
        __typeof__(&Esys_Free) Esys_Free;
        __typeof__(&Esys_GetCapability) Esys_GetCapability;
        __typeof__(&Esys_Initialize) Esys_Initialize;
        __typeof__(&Esys_Load) Esys_Load;
        __typeof__(&Esys_NV_DefineSpace) Esys_NV_DefineSpace;
        __typeof__(&Esys_NV_Increment) Esys_NV_Increment;
        __typeof__(&Esys_NV_Read) Esys_NV_Read;
        __typeof__(&Esys_NV_ReadPublic) Esys_NV_ReadPublic;
        __typeof__(&Esys_NV_UndefineSpace) Esys_NV_UndefineSpace;
        __typeof__(&Esys_PolicyGetDigest) Esys_PolicyGetDigest;
        __typeof__(&Esys_PolicyPCR) Esys_PolicyPCR;
        __typeof__(&Esys_StartAuthSession) Esys_StartAuthSession;
        __typeof__(&Esys_Startup) Esys_Startup;
        __typeof__(&Esys_TRSess_SetAttributes) Esys_TRSess_SetAttributes;
        __typeof__(&Esys_TR_Close) Esys_TR_Close;
        __typeof__(&Esys_TR_FromTPMPublic) Esys_TR_FromTPMPublic;
        __typeof__(&Esys_Unseal) Esys_Unseal;
        __typeof__(&Tss2_MU_TPM2B_PRIVATE_Marshal) Tss2_MU_TPM2B_PRIVATE_Marshal;
        __typeof__(&Tss2_MU_TPM2B_PRIVATE_Unmarshal) Tss2_MU_TPM2B_PRIVATE_Unmarshal;
        __typeof__(&Tss2_MU_TPM2B_PUBLIC_Marshal) Tss2_MU_TPM2B_PUBLIC_Marshal;
        __typeof__(&Tss2_MU_TPM2B_PUBLIC_Unmarshal) Tss2_MU_TPM2B_PUBLIC_Unmarshal;
        __typeof__(&Tss2_RC_Decode) Tss2_RC_Decode;
        __typeof__(&Tss2_TctiLdr_Finalize) Tss2_TctiLdr_Finalize;
        __typeof__(&Tss2_TctiLdr_Initialize) Tss2_TctiLdr_Initialize;
} fn;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool ok[4];

static void load(void) {
        void *h[4];

        for (size_t i = 0; i < 4; i++)
                h[i] = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL); /* never closed */
                /* The POSIX way to turn dlsym's void * into a function pointer. */
#define SYM(i, name) (h[i] && (*(void **)&fn.name = dlsym(h[i], #name)) != NULL)
        ok[0] = SYM(0, Esys_Create) && SYM(0, Esys_CreatePrimary) && SYM(0, Esys_Finalize) &&
                SYM(0, Esys_FlushContext) && SYM(0, Esys_Free) && SYM(0, Esys_GetCapability) &&
                SYM(0, Esys_Initialize) && SYM(0, Esys_Load) && SYM(0, Esys_NV_DefineSpace) &&
                SYM(0, Esys_NV_Increment) && SYM(0, Esys_NV_Read) && SYM(0, Esys_NV_ReadPublic) &&
                SYM(0, Esys_NV_UndefineSpace) && SYM(0, Esys_PolicyGetDigest) && SYM(0, Esys_PolicyPCR) &&
                SYM(0, Esys_StartAuthSession) && SYM(0, Esys_Startup) && SYM(0, Esys_TRSess_SetAttributes) &&
                SYM(0, Esys_TR_Close) && SYM(0, Esys_TR_FromTPMPublic) && SYM(0, Esys_Unseal);
        ok[1] = SYM(1, Tss2_MU_TPM2B_PRIVATE_Marshal) && SYM(1, Tss2_MU_TPM2B_PRIVATE_Unmarshal) &&
                SYM(1, Tss2_MU_TPM2B_PUBLIC_Marshal) && SYM(1, Tss2_MU_TPM2B_PUBLIC_Unmarshal);
        ok[2] = SYM(2, Tss2_RC_Decode);
        ok[3] = SYM(3, Tss2_TctiLdr_Finalize) && SYM(3, Tss2_TctiLdr_Initialize);
#undef SYM
}

static bool loaded(int lib) {
        pthread_once(&once, load);
        return ok[lib];
}

bool cb_tss2_loaded(void) {
        return loaded(0) && loaded(1) && loaded(2) && loaded(3);
}

TSS2_RC Esys_Create(ESYS_CONTEXT *esysContext, ESYS_TR parentHandle, ESYS_TR shandle1, ESYS_TR shandle2,
                    ESYS_TR shandle3, const TPM2B_SENSITIVE_CREATE *inSensitive, const TPM2B_PUBLIC *inPublic,
                    const TPM2B_DATA *outsideInfo, const TPML_PCR_SELECTION *creationPCR, TPM2B_PRIVATE **outPrivate,
                    TPM2B_PUBLIC **outPublic, TPM2B_CREATION_DATA **creationData, TPM2B_DIGEST **creationHash,
                    TPMT_TK_CREATION **creationTicket) {
        return loaded(0) ? fn.Esys_Create(esysContext, parentHandle, shandle1, shandle2, shandle3, inSensitive,
                                          inPublic, outsideInfo, creationPCR, outPrivate, outPublic, creationData,
                                          creationHash, creationTicket)
                         : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_CreatePrimary(ESYS_CONTEXT *esysContext, ESYS_TR primaryHandle, ESYS_TR shandle1, ESYS_TR shandle2,
                           ESYS_TR shandle3, const TPM2B_SENSITIVE_CREATE *inSensitive, const TPM2B_PUBLIC *inPublic,
                           const TPM2B_DATA *outsideInfo, const TPML_PCR_SELECTION *creationPCR, ESYS_TR *objectHandle,
                           TPM2B_PUBLIC **outPublic, TPM2B_CREATION_DATA **creationData, TPM2B_DIGEST **creationHash,
                           TPMT_TK_CREATION **creationTicket) {
        return loaded(0) ? fn.Esys_CreatePrimary(esysContext, primaryHandle, shandle1, shandle2, shandle3, inSensitive,
                                                 inPublic, outsideInfo, creationPCR, objectHandle, outPublic,
                                                 creationData, creationHash, creationTicket)
                         : TSS2_ESYS_RC_GENERAL_FAILURE;
}

void Esys_Finalize(ESYS_CONTEXT **context) {
        if (loaded(0))
                fn.Esys_Finalize(context);
}

TSS2_RC Esys_FlushContext(ESYS_CONTEXT *esysContext, ESYS_TR flushHandle) {
        return loaded(0) ? fn.Esys_FlushContext(esysContext, flushHandle) : TSS2_ESYS_RC_GENERAL_FAILURE;
}

void Esys_Free(void *ptr) {
        if (loaded(0))
                fn.Esys_Free(ptr);
}

TSS2_RC Esys_GetCapability(ESYS_CONTEXT *esysContext, ESYS_TR shandle1, ESYS_TR shandle2, ESYS_TR shandle3,
                           TPM2_CAP capability, UINT32 property, UINT32 propertyCount, TPMI_YES_NO *moreData,
                           TPMS_CAPABILITY_DATA **capabilityData) {
        return loaded(0) ? fn.Esys_GetCapability(esysContext, shandle1, shandle2, shandle3, capability, property,
                                                 propertyCount, moreData, capabilityData)
                         : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_Initialize(ESYS_CONTEXT **esys_context, TSS2_TCTI_CONTEXT *tcti, TSS2_ABI_VERSION *abiVersion) {
        return loaded(0) ? fn.Esys_Initialize(esys_context, tcti, abiVersion) : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_Load(ESYS_CONTEXT *esysContext, ESYS_TR parentHandle, ESYS_TR shandle1, ESYS_TR shandle2, ESYS_TR shandle3,
                  const TPM2B_PRIVATE *inPrivate, const TPM2B_PUBLIC *inPublic, ESYS_TR *objectHandle) {
        return loaded(0) ? fn.Esys_Load(esysContext, parentHandle, shandle1, shandle2, shandle3, inPrivate, inPublic,
                                        objectHandle)
                         : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_NV_DefineSpace(ESYS_CONTEXT *esysContext, ESYS_TR authHandle, ESYS_TR shandle1, ESYS_TR shandle2,
                            ESYS_TR shandle3, const TPM2B_AUTH *auth, const TPM2B_NV_PUBLIC *publicInfo,
                            ESYS_TR *nvHandle) {
        return loaded(0) ? fn.Esys_NV_DefineSpace(esysContext, authHandle, shandle1, shandle2, shandle3, auth,
                                                  publicInfo, nvHandle)
                         : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_NV_Increment(ESYS_CONTEXT *esysContext, ESYS_TR authHandle, ESYS_TR nvIndex, ESYS_TR shandle1,
                          ESYS_TR shandle2, ESYS_TR shandle3) {
        return loaded(0) ? fn.Esys_NV_Increment(esysContext, authHandle, nvIndex, shandle1, shandle2, shandle3)
                         : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_NV_Read(ESYS_CONTEXT *esysContext, ESYS_TR authHandle, ESYS_TR nvIndex, ESYS_TR shandle1, ESYS_TR shandle2,
                     ESYS_TR shandle3, UINT16 size, UINT16 offset, TPM2B_MAX_NV_BUFFER **data) {
        return loaded(0) ? fn.Esys_NV_Read(esysContext, authHandle, nvIndex, shandle1, shandle2, shandle3, size, offset,
                                           data)
                         : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_NV_ReadPublic(ESYS_CONTEXT *esysContext, ESYS_TR nvIndex, ESYS_TR shandle1, ESYS_TR shandle2,
                           ESYS_TR shandle3, TPM2B_NV_PUBLIC **nvPublic, TPM2B_NAME **nvName) {
        return loaded(0) ? fn.Esys_NV_ReadPublic(esysContext, nvIndex, shandle1, shandle2, shandle3, nvPublic, nvName)
                         : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_NV_UndefineSpace(ESYS_CONTEXT *esysContext, ESYS_TR authHandle, ESYS_TR nvIndex, ESYS_TR shandle1,
                              ESYS_TR shandle2, ESYS_TR shandle3) {
        return loaded(0) ? fn.Esys_NV_UndefineSpace(esysContext, authHandle, nvIndex, shandle1, shandle2, shandle3)
                         : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_PolicyGetDigest(ESYS_CONTEXT *esysContext, ESYS_TR policySession, ESYS_TR shandle1, ESYS_TR shandle2,
                             ESYS_TR shandle3, TPM2B_DIGEST **policyDigest) {
        return loaded(0)
                       ? fn.Esys_PolicyGetDigest(esysContext, policySession, shandle1, shandle2, shandle3, policyDigest)
                       : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_PolicyPCR(ESYS_CONTEXT *esysContext, ESYS_TR policySession, ESYS_TR shandle1, ESYS_TR shandle2,
                       ESYS_TR shandle3, const TPM2B_DIGEST *pcrDigest, const TPML_PCR_SELECTION *pcrs) {
        return loaded(0) ? fn.Esys_PolicyPCR(esysContext, policySession, shandle1, shandle2, shandle3, pcrDigest, pcrs)
                         : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_StartAuthSession(ESYS_CONTEXT *esysContext, ESYS_TR tpmKey, ESYS_TR bind, ESYS_TR shandle1,
                              ESYS_TR shandle2, ESYS_TR shandle3, const TPM2B_NONCE *nonceCaller, TPM2_SE sessionType,
                              const TPMT_SYM_DEF *symmetric, TPMI_ALG_HASH authHash, ESYS_TR *sessionHandle) {
        return loaded(0) ? fn.Esys_StartAuthSession(esysContext, tpmKey, bind, shandle1, shandle2, shandle3,
                                                    nonceCaller, sessionType, symmetric, authHash, sessionHandle)
                         : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_Startup(ESYS_CONTEXT *esysContext, TPM2_SU startupType) {
        return loaded(0) ? fn.Esys_Startup(esysContext, startupType) : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_TRSess_SetAttributes(ESYS_CONTEXT *esysContext, ESYS_TR session, TPMA_SESSION flags, TPMA_SESSION mask) {
        return loaded(0) ? fn.Esys_TRSess_SetAttributes(esysContext, session, flags, mask)
                         : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_TR_Close(ESYS_CONTEXT *esys_context, ESYS_TR *rsrc_handle) {
        return loaded(0) ? fn.Esys_TR_Close(esys_context, rsrc_handle) : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_TR_FromTPMPublic(ESYS_CONTEXT *esysContext, TPM2_HANDLE tpm_handle, ESYS_TR optionalSession1,
                              ESYS_TR optionalSession2, ESYS_TR optionalSession3, ESYS_TR *object) {
        return loaded(0) ? fn.Esys_TR_FromTPMPublic(esysContext, tpm_handle, optionalSession1, optionalSession2,
                                                    optionalSession3, object)
                         : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Esys_Unseal(ESYS_CONTEXT *esysContext, ESYS_TR itemHandle, ESYS_TR shandle1, ESYS_TR shandle2, ESYS_TR shandle3,
                    TPM2B_SENSITIVE_DATA **outData) {
        return loaded(0) ? fn.Esys_Unseal(esysContext, itemHandle, shandle1, shandle2, shandle3, outData)
                         : TSS2_ESYS_RC_GENERAL_FAILURE;
}

TSS2_RC Tss2_MU_TPM2B_PRIVATE_Marshal(TPM2B_PRIVATE const *src, uint8_t buffer[], size_t buffer_size, size_t *offset) {
        return loaded(1) ? fn.Tss2_MU_TPM2B_PRIVATE_Marshal(src, buffer, buffer_size, offset)
                         : TSS2_MU_RC_GENERAL_FAILURE;
}

TSS2_RC Tss2_MU_TPM2B_PRIVATE_Unmarshal(uint8_t const buffer[], size_t buffer_size, size_t *offset,
                                        TPM2B_PRIVATE *dest) {
        return loaded(1) ? fn.Tss2_MU_TPM2B_PRIVATE_Unmarshal(buffer, buffer_size, offset, dest)
                         : TSS2_MU_RC_GENERAL_FAILURE;
}

TSS2_RC Tss2_MU_TPM2B_PUBLIC_Marshal(TPM2B_PUBLIC const *src, uint8_t buffer[], size_t buffer_size, size_t *offset) {
        return loaded(1) ? fn.Tss2_MU_TPM2B_PUBLIC_Marshal(src, buffer, buffer_size, offset)
                         : TSS2_MU_RC_GENERAL_FAILURE;
}

TSS2_RC Tss2_MU_TPM2B_PUBLIC_Unmarshal(uint8_t const buffer[], size_t buffer_size, size_t *offset, TPM2B_PUBLIC *dest) {
        return loaded(1) ? fn.Tss2_MU_TPM2B_PUBLIC_Unmarshal(buffer, buffer_size, offset, dest)
                         : TSS2_MU_RC_GENERAL_FAILURE;
}

const char *Tss2_RC_Decode(TSS2_RC rc) {
        return loaded(2) ? fn.Tss2_RC_Decode(rc) : "the tpm2-tss libraries could not be loaded";
}

void Tss2_TctiLdr_Finalize(TSS2_TCTI_CONTEXT **context) {
        if (loaded(3))
                fn.Tss2_TctiLdr_Finalize(context);
}

TSS2_RC Tss2_TctiLdr_Initialize(const char *nameConf, TSS2_TCTI_CONTEXT **context) {
        return loaded(3) ? fn.Tss2_TctiLdr_Initialize(nameConf, context) : TSS2_TCTI_RC_GENERAL_FAILURE;
}
