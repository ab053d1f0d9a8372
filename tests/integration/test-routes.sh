#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The route table's decisions, pinned (issue 18): every socket x method x
# target of routes-matrix.py -- the status, the error code, message and
# shape, and the audit records each request leaves -- must be what
# routes.expected says.  routes.expected was recorded from the daemon as it
# routed before the table (strcmp chains, commit acd04c1), so routing by the
# table changed no answer, no refusal order and no audit route name; a
# deliberate change to a route updates it (--write).
# Needs root (admin.sock's admin is uid 0) and python3; exits 77 otherwise.
set -uo pipefail

CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
HERE=$(cd "$(dirname "$0")" && pwd)
WRITE=${1:-}
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (admin.sock's admin is uid 0)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: missing prerequisite: python3"; exit 77; }

T=$(mktemp -d /tmp/cbd-routes.XXXXXX)
chmod 0755 "$T"
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { echo "FAIL init"; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "tool": {"uid": 61011} },
  "grants": [ {"client": "tool", "secret": "demo", "use": ["redeem", "proxy", "scan"]} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --audit-log "$T/audit.log" --listen-tcp 127.0.0.1:0 --refusals-recorded 0 >"$T/daemon.out" 2>&1 &
PID=$!
for _ in $(seq 100); do [ -S "$T/run/admin.sock" ] && grep -q serving "$T/daemon.out" && break; sleep 0.1; done
PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$T/daemon.out" | head -n 1)
[ -n "$PORT" ] || { echo "FAIL: no TCP port in the daemon's output: $(cat "$T/daemon.out")"; exit 1; }

python3 "$HERE/routes-matrix.py" "$T/run" "$PORT" "$T/audit.log" >"$T/got" || { echo "FAIL: the matrix did not run"; exit 1; }
kill -0 "$PID" 2>/dev/null || { echo "FAIL: the daemon died: $(tail -n 5 "$T/daemon.out")"; exit 1; }
if [ "$WRITE" = --write ]; then
        cp "$T/got" "$HERE/routes.expected"
        echo "wrote $HERE/routes.expected ($(wc -l <"$T/got") requests)"
        exit 0
fi
if diff -u "$HERE/routes.expected" "$T/got"; then
        echo "ok   $(wc -l <"$T/got") requests on three sockets answered and recorded as routes.expected says"
else
        echo "FAIL the routes' answers or records differ from routes.expected (above: - expected, + got)"
        exit 1
fi
