#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A policy reload that moves a client to another uid (the operator's answer
# to a compromised agent uid) must stop the old uid's uid-bound proxy
# tokens at once, not only its exe-bound ones: a uid-bound (or session)
# token is re-checked against a client that still selects the presenter's
# uid.  Legitimate path first: both tokens work before the reload.
set -u
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (setpriv)"; exit 77; }
: "${CB_BUILDDIR:?}"
CLI=${CREDBROKER_CLI:-$CB_BUILDDIR/client/credbroker}
DAEMON=${CREDBROKERD:-$CB_BUILDDIR/broker/credbrokerd}
PY=/usr/bin/python3
D=$(cd "$(dirname "$0")/pool" && pwd)
UA=61540 UB=61541
T=$(mktemp -d /tmp/cb-reload.XXXXXX)
chmod 0755 "$T"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
cleanup() { for p in $(jobs -p); do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
as() { timeout 30 setpriv --reuid "$1" --regid "$1" --clear-groups "${@:2}"; }
$PY "$D/hostile.py" "$T/u1.log" >"$T/u1.port" 2>"$T/u1.err" &
for _ in $(seq 100); do [ -s "$T/u1.port" ] && break; sleep 0.05; done
P1=$(cat "$T/u1.port"); touch "$T/u1.log"
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { echo "FAIL init"; exit 1; }
pol() {
        cat >"$T/policy.json" <<JSON
{ "clients": { "agent": {"uid": $1} },
  "grants": [ {"client": "agent", "secret": "up", "use": ["proxy"], "max_ttl": 28800} ], "admins": {"uids": [0]} }
JSON
        chmod 0644 "$T/policy.json"
}
pol $UA
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        >"$T/daemon.out" 2>&1 &
for _ in $(seq 100); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
TS=$T/run/tools.sock AS=$T/run/admin.sock
printf %s 'sk-RELOADvalue-0123456789abcdef' | "$CLI" --admin-socket "$AS" put up --host "http://127.0.0.1:$P1" >/dev/null ||
        bad "put"
token() { # BIND
        as $UA $PY - "$TS" "$1" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
b = json.dumps({"secret": "up", "use": "proxy", "ttl": 28800, "bind": sys.argv[2]}).encode()
s.sendall(b"POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(b) + b)
d = b""
while True:
    x = s.recv(65536)
    if not x: break
    d += x
print(json.loads(d.split(b"\r\n\r\n", 1)[1])["token"])
PY
}
TU=$(token uid) TE=$(token exe)
px() { as $UA $PY "$D/req.py" "$TS" "b'GET /v1/proxy/up/$1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {T}\r\nConnection: close\r\n\r\n'" "$2" | cut -c1-40; }
for b in uid:$TU exe:$TE; do
        case "$(px "before-${b%%:*}" "${b#*:}")" in *" 200 "*) ok "legitimate: the ${b%%:*}-bound token works before the reload" ;;
        *) bad "${b%%:*}-bound before the reload" ;; esac
done
pol $UB
"$CLI" --admin-socket "$AS" policy reload >/dev/null 2>&1 || bad "policy reload"
for b in uid:$TU exe:$TE; do
        out=$(px "after-${b%%:*}" "${b#*:}")
        case "$out" in *" 200 "*) bad "the ${b%%:*}-bound token of uid $UA still proxies after 'agent' moved to uid $UB" ;;
        *) ok "the ${b%%:*}-bound token of uid $UA is refused after the reload (${out:2:24})" ;; esac
done
grep -q "/after-" "$T/u1.log" && bad "a request went upstream after the reload" || ok "nothing went upstream after the reload"
[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all passed"
