/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server name a TLS ClientHello asks for (SNI, RFC 6066 section 3), read
 * from the first bytes a client sends into a CONNECT tunnel, so that the
 * tunnel can be refused unless it names the host that was CONNECTed to
 * (issue 17's egress policy; the tunnel itself is not built yet:
 * docs/sandbox.md).
 *
 * Contract: pure, no allocation, no I/O.  Input: the bytes received so far
 * (TLS records, a ClientHello possibly split across several handshake
 * records).  Hard cap: CB_SNI_HELLO_MAX bytes of ClientHello
 * (CB_SNI_INPUT_MAX of input): beyond it the hello is refused, never
 * buffered further.  Every length is checked against what encloses it;
 * trailing bytes inside the ClientHello are refused.
 */
#pragma once

#include <stddef.h>

#define CB_SNI_HELLO_MAX (16 * 1024)                 /* the ClientHello message */
#define CB_SNI_INPUT_MAX (CB_SNI_HELLO_MAX + 5 * 64) /* with the record headers of up to 64 records */
#define CB_SNI_NAME_MAX 253

typedef enum cb_sni_result {
        CB_SNI_MORE = 1,        /* a prefix of a well-formed hello: read more (up to CB_SNI_INPUT_MAX) */
        CB_SNI_FOUND = 0,       /* name holds the host name (lower case, no trailing dot) */
        CB_SNI_NONE = -1,       /* a well-formed ClientHello without a server_name */
        CB_SNI_NOT_TLS = -2,    /* not a TLS handshake record */
        CB_SNI_MALFORMED = -3,  /* a length, type or name out of the rules */
        CB_SNI_TOO_LARGE = -4,  /* over CB_SNI_HELLO_MAX / CB_SNI_INPUT_MAX */
        CB_SNI_ECH = -5,        /* encrypted_client_hello: the real name is hidden */
} cb_sni_result;

/* Parse p[0..n).  On CB_SNI_FOUND, name (CB_SNI_NAME_MAX + 1 bytes) holds
 * the host name; otherwise name is "".  *ret_why (may be NULL) gets a
 * static text saying what was wrong. */
cb_sni_result cb_sni_parse(const unsigned char *p, size_t n, char name[CB_SNI_NAME_MAX + 1], const char **ret_why);
