#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# No caller can grow the audit log without bound: tools.sock is 0666 and
# every refusal is a record.  Two uids -- one no client selects, one with a
# grant asking for a name it holds none for -- send thousands of refused
# requests on keep-alive connections; the log takes at most
# --refusals-recorded records per uid per minute plus one saying so, and
# the rest are answered 429 too_many_refusals.  The grant holder's allowed
# requests are unaffected, and the log verifies intact.
set -u
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (setpriv)"; exit 77; }
: "${CB_BUILDDIR:?}"
CLI=${CREDBROKER_CLI:-$CB_BUILDDIR/client/credbroker}
DAEMON=${CREDBROKERD:-$CB_BUILDDIR/broker/credbrokerd}
PY=/usr/bin/python3
UA=61580 UB=61581 N=50
T=$(mktemp -d /tmp/cb-flood.XXXXXX)
chmod 0755 "$T"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
cleanup() { for p in $(jobs -p); do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
as() { timeout 120 setpriv --reuid "$1" --regid "$1" --clear-groups "${@:2}"; }
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { echo "FAIL init"; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "tool": {"uid": $UB} },
  "grants": [ {"client": "tool", "secret": "up", "use": ["redeem"]} ], "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --audit-log "$T/audit.log" --refusals-recorded $N >"$T/daemon.out" 2>&1 &
for _ in $(seq 100); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
TS=$T/run/tools.sock
printf %s 'sk-FLOODvalue-0123456789abcdef' | "$CLI" --admin-socket "$T/run/admin.sock" put up >/dev/null || bad "put"
cat >"$T/flood.py" <<'PY'
import socket, sys
path, secret, n = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
body = b'{"secret":"' + secret + b'"}'
req = b"POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
codes = {}
s = socket.socket(socket.AF_UNIX); s.connect(path); f = s.makefile("rb")
for _ in range(n):
    s.sendall(req)
    line = f.readline(); code = line.split()[1].decode()
    codes[code] = codes.get(code, 0) + 1
    length = 0
    while True:
        h = f.readline()
        if h in (b"\r\n", b""): break
        if h.lower().startswith(b"content-length:"): length = int(h.split(b":")[1])
        if h.lower().startswith(b"connection: close"):
            s.close(); s = socket.socket(socket.AF_UNIX); s.connect(path)
    f.read(length)
    if s.fileno() != -1 and f.raw._sock is not s: f = s.makefile("rb")
print(" ".join("%s:%d" % kv for kv in sorted(codes.items())))
PY
chmod 0644 "$T/flood.py"
before=$(wc -l <"$T/audit.log")
a=$(as $UA $PY "$T/flood.py" "$TS" up 2000)
b=$(as $UB $PY "$T/flood.py" "$TS" nosuch 2000)
echo "     uid $UA (no client): $a; uid $UB (a grant, asking for another name): $b"
case "$a" in *"429:"*) ok "uid $UA's refusals past the budget are 429" ;; *) bad "uid $UA: $a" ;; esac
case "$b" in *"429:"*) ok "uid $UB's refusals past the budget are 429" ;; *) bad "uid $UB: $b" ;; esac
grew=$(( $(wc -l <"$T/audit.log") - before ))
[ "$grew" -le $((2 * (N + 1) + 10)) ] && ok "the audit log took $grew records for 4000 refusals" ||
        bad "the audit log took $grew records for 4000 refusals (bound $((2 * (N + 1))))"
[ "$(grep -c '"route":"refusals.quiet"' "$T/audit.log")" = 2 ] && ok "one record per uid says the rest were not recorded" ||
        bad "refusals.quiet records: $(grep -c refusals.quiet "$T/audit.log")"
out=$(as $UB curl -s --unix-socket "$TS" -d '{"secret":"up","use":"redeem"}' http://x/v1/token)
case "$out" in *'"token"'*) ok "uid $UB's allowed request is still served" ;; *) bad "uid $UB's allowed request: $out" ;; esac
v=$("$CLI" --admin-socket "$T/run/admin.sock" audit verify "$T/audit.log" 2>&1)
case "$v" in *INTACT*|*intact*) ok "the log verifies intact" ;; *) bad "audit verify: $v" ;; esac
[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all passed"
