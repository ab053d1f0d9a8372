/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "rotation=" label a rotation seals into the new version's metadata
 * (see rotate.h): "rotation=grace:N" (N seconds, 0..CB_ROTATION_GRACE_MAX)
 * or "rotation=leaked" (grace 0).  Pure functions, fuzzed by
 * tests/fuzz/fuzz-rotation-label.c.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "meta.h"

#define CB_ROTATION_GRACE_MAX (30u * 86400u)

/* The grace the first "rotation=" label of m records: seconds (0 for
 * "leaked", *ret_leaked set when ret_leaked is not NULL), or -1 for none
 * or a malformed one (treated as none: never auto-disable on a label we
 * cannot read). */
int64_t cb_rotation_grace(const cb_meta *m, bool *ret_leaked);

/* A copy of cur (NULL = empty) with every "rotation=" label replaced by one
 * recording grace/leaked.  *ret is freed with cb_meta_free.  -E2BIG when
 * the labels are full, -ENOMEM; message set. */
int cb_rotation_meta(const cb_meta *cur, uint32_t grace, bool leaked, cb_meta **ret);
