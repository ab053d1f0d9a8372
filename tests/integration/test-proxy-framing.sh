#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The proxy's request and response framing, target bytes, method overrides,
# token placement and routing headers (issue 13; docs/hardening-proxy.md),
# byte for byte: the real daemon, a raw-byte client under a real uid
# (proxy-framing-cases.py) and a plain-HTTP upstream that logs exactly what
# it received (raw-upstream.py).  Also: templates naming framing,
# hop-by-hop, Host, proxy or routing headers are refused at put time.
# Needs root (to run the client under another uid); exits 77 otherwise.
set -uo pipefail

CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
HERE=$(cd "$(dirname "$0")" && pwd)
[ -f "$HERE/raw-upstream.py" ] || HERE=${CB_SRCDIR:?}/tests/integration
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (to run clients under other uids)"; exit 77; }
for t in /usr/bin/python3 setpriv timeout; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done

T=$(mktemp -d /tmp/cbpf-test.XXXXXX)
chmod 0755 "$T"
mkdir -m 0777 "$T/tok"
cleanup() {
        local p
        for p in $(jobs -p); do kill "$p" 2>/dev/null; done
        wait 2>/dev/null
        rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
U1=61311 U2=61312
PY=$(readlink -f /usr/bin/python3)
as() { local u=$1; shift; timeout "${CB_FRAMING_TIMEOUT:-240}" setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }
hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

/usr/bin/python3 "$HERE/raw-upstream.py" --log "$T/up.log" >"$T/up.port" 2>"$T/up.err" &
for _ in $(seq 100); do [ -s "$T/up.port" ] && break; sleep 0.05; done
PORT=$(head -n 1 "$T/up.port")
case "$PORT" in ''|*[!0-9]*) bad "upstream did not start: $(cat "$T/up.err")"; exit 1 ;; esac

"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "py-tool": {"uid": $U1, "exe": "$PY"}, "py-tool2": {"uid": $U2, "exe": "$PY"} },
  "grants": [ {"client": "py-tool", "secret": "up", "use": ["proxy"], "max_ttl": 7200},
              {"client": "py-tool", "secret": "post", "use": ["proxy"], "max_ttl": 7200},
              {"client": "py-tool", "secret": "other", "use": ["proxy"], "max_ttl": 7200},
              {"client": "py-tool2", "secret": "other", "use": ["proxy"], "max_ttl": 7200} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --audit-log "$T/audit.log" --threads 1 >"$T/daemon.out" 2>&1 &
DPID=$!
for _ in $(seq 50); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
[ -S "$T/run/tools.sock" ] || { bad "daemon did not start: $(cat "$T/daemon.out")"; exit 1; }
AS=$T/run/admin.sock

put() { # put NAME ARGS...: a random value on stdin
        local n=$1; shift
        hex 16 | timeout 20 "$CLI" --admin-socket "$AS" put "$n" "$@" >"$T/put.$n" 2>&1
}
put up --host "http://127.0.0.1:$PORT" && ok "put up" || bad "put up: $(cat "$T/put.up")"
put other --host "http://127.0.0.1:$PORT" && ok "put other" || bad "put other"
put post --host "http://127.0.0.1:$PORT" --method POST && ok "put post (POST only)" || bad "put post"

echo "# templates naming framing, hop-by-hop, Host, proxy or routing headers: refused at put"
for tmpl in 'Host: {}' 'Transfer-Encoding: {}' 'transfer_encoding: {}' 'Content-Length: {}' 'Connection: x {}' \
        'Proxy-Authorization: Bearer {}' 'Keep-Alive: {}' 'TE: {}' 'Upgrade: {}' 'Forwarded: for={}' \
        'X-Forwarded-For: {}' 'X-Original-URL: {}' 'X-HTTP-Method-Override: {}' 'X-Credbroker-Host: {}'; do
        if put tmpl --host "http://127.0.0.1:$PORT" --inject "$tmpl"; then
                bad "put --inject '$tmpl' was accepted"
        elif grep -qi "header" "$T/put.tmpl"; then
                ok "put --inject '$tmpl' refused: $(head -c 160 "$T/put.tmpl")"
        else
                bad "put --inject '$tmpl' refused without naming the header: $(head -c 200 "$T/put.tmpl")"
        fi
done
put tmpl --host "http://127.0.0.1:$PORT" --inject 'X-Api-Key: {}' && ok "put --inject 'X-Api-Key: {}' accepted" ||
        bad "put --inject 'X-Api-Key: {}': $(cat "$T/put.tmpl")"

for s in up post other other@$U2; do
        u=$U1
        case $s in *@*) u=${s#*@} s=${s%@*} ;; esac
        as "$u" /usr/bin/python3 - "$T/run/tools.sock" "$s" "$T/tok/$s${u#$U1}" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
b = json.dumps({"secret": sys.argv[2], "use": "proxy", "ttl": 7200}).encode()
s.sendall(b"POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(b) + b)
d = b""
while True:
    x = s.recv(65536)
    if not x: break
    d += x
open(sys.argv[3], "w").write(json.loads(d.split(b"\r\n\r\n", 1)[1])["token"])
PY
        [ -s "$T/tok/$s${u#$U1}" ] && ok "token for $s (uid $u)" || bad "no token for $s (uid $u)"
done
mv "$T/tok/other$U2" "$T/other.u2"       # not the cases' (they run as $U1)

as $U1 /usr/bin/python3 "$HERE/proxy-framing-cases.py" "$T" "$T/run/tools.sock"
[ $? = 0 ] || fails=$((fails + 1))
echo "# upstream connections are not shared between uids"
cat >"$T/one.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
tok = open(sys.argv[3]).read().strip()
s.sendall(("GET /v1/proxy/%s/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n"
           % (sys.argv[2], tok)).encode())
d = b""
while True:
    x = s.recv(65536)
    if not x: break
    d += x
print(d.split(b" ")[1].decode())
PY
chmod 0644 "$T/one.py" "$T/other.u2"
conns() { /usr/bin/python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["conn"]) for l in open(sys.argv[1]).readlines()[-int(sys.argv[2]):]))' "$T/up.log" "$1"; }
a=$(as $U1 /usr/bin/python3 "$T/one.py" "$T/run/tools.sock" other "$T/tok/other")
b=$(as $U2 /usr/bin/python3 "$T/one.py" "$T/run/tools.sock" other "$T/other.u2")
c=$(as $U1 /usr/bin/python3 "$T/one.py" "$T/run/tools.sock" other "$T/tok/other")
d=$(as $U2 /usr/bin/python3 "$T/one.py" "$T/run/tools.sock" other "$T/other.u2")
read -r c1 c2 c3 c4 <<<"$(conns 4)"
if [ "$a$b$c$d" = 200200200200 ] && [ "$c2" != "$c1" ] && [ "$c3" != "$c2" ] && [ "$c4" != "$c3" ] && [ "$c4" != "$c1" ]; then
        ok "uid $U1, $U2, $U1, $U2 on one host: never on another uid's connection (conns $c1 $c2 $c3 $c4)"
else
        bad "uid $U1, $U2, $U1, $U2 on one host: statuses $a $b $c $d, upstream connections $c1 $c2 $c3 $c4"
fi
kill -0 "$DPID" 2>/dev/null && ok "the daemon is alive at the end" || bad "the daemon died: $(tail -5 "$T/daemon.out")"
if grep -qF -f <(cat "$T"/tok/*) "$T/up.log" "$T/audit.log" "$T/daemon.out" 2>/dev/null; then
        bad "a token reached the upstream, the audit log or the daemon's output"
else
        ok "no token in the upstream's log, the audit log or the daemon's output"
fi
[ "$fails" = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all passed"
