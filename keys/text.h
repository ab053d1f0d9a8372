/* SPDX-License-Identifier: Apache-2.0 */
/* Text another party chose (an executable's file name, a client's name, a
 * hook's stderr) made safe for an operator's terminal. */
#pragma once

#include <stddef.h>

/* Rewrite s[0..n) in place, byte for byte (same length): every byte that
 * a terminal could act on becomes '?' -- C0 controls and DEL, the C1
 * controls in UTF-8 (U+0080..U+009F: 8-bit CSI, NEL...), bidirectional
 * overrides and isolates (U+202A..U+202E, U+2066..U+2069), and any byte
 * that is not part of well-formed UTF-8 (a lone 0x9B is CSI to a terminal
 * in 8-bit mode).  Returns how many bytes were replaced. */
size_t cb_text_safe(char *s, size_t n);
