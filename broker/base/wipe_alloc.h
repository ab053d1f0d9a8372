/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wipe-on-free allocators for the libraries the secret passes through.
 */
#pragma once

/* Makes OpenSSL and libcurl wipe every block they free (and every block a
 * realloc moves away from), and initialises libcurl (curl_global_init_mem
 * instead of curl_global_init).  Call once, before anything uses OpenSSL
 * or libcurl.  0, or a negative errno with the reason in cb_error_last():
 * the caller refuses to start. */
int cb_wipe_alloc_install(void) __attribute__((warn_unused_result));
