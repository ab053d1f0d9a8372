#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The shape of broker/ (issue 18, docs/architecture.md): derived from the
# sources (#include lines) and the objects of the build (nm: which file's
# undefined symbols another file defines) by tests/arch-graph.py.  Fails on
#   - a cycle between broker/ subfolders,
#   - a subsystem calling up into api/, http/ or main.c (top level),
#   - a file including another folder's *_internal.h,
#   - a source file at broker/'s top other than main.c, daemon.h and main's
#     own split files (main_*.c, main_internal.h),
#   - a file referencing the daemon-wide global `cbd` that is not listed
#     below.
# The two lists below are what is left of today's shape.  They may only
# shrink: an entry that no longer holds fails too, so whoever removes an
# arrow or a use of `cbd` also removes its line here.
#
# Usage: tests/arch-check.sh [SRCDIR [BUILDDIR]] [--list]
#   (meson test arch-check passes both; --list prints every level and arrow)
set -euo pipefail
SRC=${1:-${CB_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}}
BUILD=${2:-$SRC/build}
shift $(( $# < 2 ? $# : 2 ))

# Who may call into the top layers: api/ only from main.c; http/ from api/
# and main.c; main.c from nobody.
TOP='"api":["main"], "http":["api","main"], "main":[]'

# Folder arrows allowed although they break the rules above (A>B: a file
# in A uses B).  All of them are calls up into main (daemon.h, which
# declares the `request` and the global `cbd`), into http/ (reply_*, used
# by route handlers that still live in their subsystem: scan, the proxy).
# (http/ no longer calls into api/: api/ hands it the route table at
# start, route.h.)  Without them the folder graph has no cycle.
ALLOW_ARROWS=(
        api\>main
        audit\>main
        http\>main
        leak\>http leak\>main
        proxy\>http proxy\>main
)

# Files that still reference `cbd` (the daemon-wide state and its lock).
# api/api_provision.c was split from provision/provision.c (listed then);
# main_loop.c from main.c (the signal loop and sweeps, issue 18: the same
# uses of cbd, moved).
# audit/ has left it (its records have their own lock; the caller hands
# audit_intent the lock it holds), and so have leak/ and proxy/ (main.c
# hands them what they work on: leak_attach, proxy_attach), and http/
# (server_attach).  What is left is main.c and the composing layer.
ALLOW_CBD=(
        main.c main_loop.c
        api/api_admin.c api/api_approval.c api/api_provision.c api/api_rotate.c api/api_tool.c
)

# First, that the check can fail: each made-up violation must be refused
# (kind, node or NODE>NODE, the message expected).
SELFTEST='["arrow", "identity/peer>policy/policy", "cycle between broker/ folders"],
  ["arrow", "tokens/tokens>api/api_tool", "tokens/ calls up into api/"],
  ["arrow", "policy/policy>http/server", "policy/ calls up into http/"],
  ["arrow", "tokens/tombstones>main", "tokens/ calls up into main/"],
  ["internal", "api/api_admin>rotate/rotate", "which is internal to rotate/"],
  ["cbd", "tokens/ratelimit", "tokens/ratelimit.c references the daemon-wide global"]'

json_list() { local s="" x; for x in "$@"; do s+="${s:+,}\"$x\""; done; printf '[%s]' "$s"; }
cfg="{\"top_layers\":{$TOP}, \"allow_arrows\":$(json_list "${ALLOW_ARROWS[@]}"), \"allow_cbd\":$(json_list "${ALLOW_CBD[@]}"), \"selftest\":[$SELFTEST]}"
command -v nm >/dev/null || { echo "SKIP: nm (binutils) is not installed"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; exit 77; }
python3 "$SRC/tests/arch-graph.py" "$SRC" "$BUILD"
if python3 "$SRC/tests/arch-graph.py" "$SRC" "$BUILD" --check "$cfg" "$@"; then
        echo "arch-check: OK (${#ALLOW_ARROWS[@]} allowlisted folder arrows, ${#ALLOW_CBD[@]} files using cbd)"
else
        echo "arch-check: FAILED (docs/architecture.md says how broker/ is cut)"
        exit 1
fi
