#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The language clients against the real daemon, run as a tool's uid:
# client/python/credbroker.py (client-python-test.py) and
# client/node/credbroker.mjs (client-node-test.mjs): health, token, redeem,
# revoke, fetch, refusals as exceptions with the broker's code and message,
# sdk() giving a base URL and a uid-bound proxy token, and the proxy's
# vendor-shaped refusal.  Needs root (another uid); python3 and node, each
# skipped (77 when both are absent) naming what is missing.
set -uo pipefail
DAEMON=${CREDBROKERD:?} CLI=${CREDBROKER_CLI:?} SRC=${CB_SRCDIR:?}
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (clients under another uid)"; exit 77; }
command -v setpriv >/dev/null || { echo "SKIP: missing prerequisite: setpriv"; exit 77; }
have_py=0 have_node=0
[ -x /usr/bin/python3 ] && have_py=1
command -v node >/dev/null && have_node=1
[ $have_py = 1 ] || [ $have_node = 1 ] || { echo "SKIP: missing prerequisite: python3 and node"; exit 77; }
T=$(mktemp -d /tmp/cbc-test.XXXXXX)
chmod 0755 "$T"
PID=''
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
U=61951
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "tool": {"uid": $U} },
  "grants": [ {"client": "tool", "secret": "demo", "use": ["redeem", "proxy"], "max_ttl": 3600} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --listen-tcp 127.0.0.1:0 >"$T/daemon.out" 2>&1 &
PID=$!
for _ in $(seq 50); do grep -q serving "$T/daemon.out" && break; sleep 0.1; done
port=$(sed -n 's/.* and tcp 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$T/daemon.out")
[ -n "$port" ] || { bad "daemon did not start: $(cat "$T/daemon.out")"; exit 1; }
VALUE="sk-clients-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$VALUE" >"$T/value"
chmod 0644 "$T/value"
printf '%s' "$VALUE" | CREDBROKER_ADMIN_SOCKET=$T/run/admin.sock "$CLI" put demo --host api.example.com >/dev/null ||
        bad "put"
run() { setpriv --reuid $U --regid $U --clear-groups env CREDBROKER_SOCKET="$T/run/tools.sock" \
        PROXY_URL="http://127.0.0.1:$port" "$@"; }
if [ $have_py = 1 ]; then
        out=$(run PYTHONPATH="$SRC/client/python" /usr/bin/python3 "$SRC/tests/integration/client-python-test.py" \
                "$T/value" 2>&1)
        rc=$?
        printf '%s\n' "$out" | sed 's/^/python: /'
        [ $rc = 0 ] && ok "python client" || bad "python client (exit $rc)"
        case "$out" in *"$VALUE"*) bad "python: the value was printed" ;; esac
else
        echo "python client: skipped, missing prerequisite: /usr/bin/python3"
fi
if [ $have_node = 1 ]; then
        out=$(run node "$SRC/tests/integration/client-node-test.mjs" "$T/value" 2>&1)
        rc=$?
        printf '%s\n' "$out" | sed 's/^/node: /'
        [ $rc = 0 ] && ok "node client" || bad "node client (exit $rc)"
        case "$out" in *"$VALUE"*) bad "node: the value was printed" ;; esac
else
        echo "node client: skipped, missing prerequisite: node"
fi
echo "$fails failure(s)"
[ "$fails" = 0 ]
