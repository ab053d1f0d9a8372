/* SPDX-License-Identifier: Apache-2.0 */
/* tpm2-tss loaded on first use (tss2_lazy.c): the Esys_/Tss2_ functions
 * keys/ calls are defined there, hidden; this says whether all four
 * libraries could be loaded. */
#pragma once

#include <stdbool.h>

bool cb_tss2_loaded(void);
