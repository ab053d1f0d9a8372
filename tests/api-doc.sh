#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# broker/API.md lists exactly the routes the daemon serves (issue 18: the
# routes, --routes and the audit names come from one table,
# broker/api/api_routes.c), so the document cannot drift:
#   1. its "Route table" block is, byte for byte, what `credbrokerd
#      --routes` prints;
#   2. every route the table lists is described in a row of one of its
#      tables (`METHOD /path` in the row's first two cells), and every such
#      row names a route of the table.  The table's placeholders are
#      spelled as API.md spells them: {name} NAME, {id...} ID,
#      {secret_path...} SECRET/PATH; a route with no path (CONNECT) is the
#      method alone;
#   3. every audit route name a handler sets is one the table lists.
# Usage: tests/api-doc.sh CREDBROKERD [SRCDIR]
set -euo pipefail
D=${1:?usage: api-doc.sh CREDBROKERD [SRCDIR]}
SRC=${2:-${CB_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}}
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed"; exit 77; }
routes=$("$D" --routes)
[ -n "$routes" ] || { echo "FAIL: credbrokerd --routes printed nothing"; exit 1; }
printf '%s\n' "$routes" | python3 "$SRC/tests/api-doc.py" "$SRC/broker/API.md" "$SRC"
