/* SPDX-License-Identifier: Apache-2.0 */
/* libcurl loaded on first use (curl_lazy.c): the curl_* functions we call
 * are defined there, hidden; this says whether libcurl could be loaded. */
#pragma once

#include <stdbool.h>

bool cb_curl_loaded(void);
