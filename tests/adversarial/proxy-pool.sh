#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Pooled upstream connections (docs/hardening-proxy.md): a connection
# belongs to one uid for its whole life, and a request that carried a body
# is never followed by another on the same connection.
#  1. uid A's pooled connection to upstream U1 and A's connection to U2 get
#     the same local port (one port in a private network namespace); A makes
#     U2 close its connection; then, with ports to spare, uid B's next
#     request to U1 must go out on a fresh connection, not on A's.  (The owner was keyed by local port: the close cleared
#     the owner of A's U1 connection.)
#  2. A Python http.server app that answers a POST it does not route (and
#     every GET) without reading the body: the tool's body, a request line
#     and an unterminated header, must never be completed by the next
#     request's head and its injected credential (sealed POST/GET under
#     /v1/chat, so DELETE /admin/... is out of the seal).
# Needs root, unshare and python3 (77 otherwise).
set -u
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (setpriv, network namespaces)"; exit 77; }
command -v unshare >/dev/null || { echo "SKIP: needs unshare (util-linux)"; exit 77; }
if [ -z "${CB_POOL_IN_NS:-}" ]; then
        exec unshare -n env CB_POOL_IN_NS=1 bash "$0" "$@"
fi
: "${CB_BUILDDIR:?}"
ip link set lo up
sysctl -qw net.ipv4.ip_local_port_range="40001 40001"
D=$(cd "$(dirname "$0")/pool" && pwd)
CLI=$CB_BUILDDIR/client/credbroker
DAEMON=${CREDBROKERD:-$CB_BUILDDIR/broker/credbrokerd}
PY=/usr/bin/python3
UA=61510 UB=61511
SA='sk-POOLattackerVALUE-0123456789abcdefXYZ'
SB='sk-POOLvictimVALUE-9876543210fedcbaQRS'
T=$(mktemp -d /tmp/cb-pool.XXXXXX)
chmod 0755 "$T"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
cleanup() { for p in $(jobs -p); do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
as() { local u=$1; shift; setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }
R() { as "$1" $PY "$D/req.py" "$TS" "$2" "$3"; }

$PY "$D/hostile.py" "$T/u1.log" 5101 >"$T/u1.port" 2>"$T/u1.err" &
$PY "$D/hostile.py" "$T/u2.log" 5102 >"$T/u2.port" 2>"$T/u2.err" &
$PY "$D/pyapp.py" "$T/app.log" 5103 >"$T/app.port" 2>"$T/app.err" &
for _ in $(seq 100); do [ -s "$T/u1.port" ] && [ -s "$T/u2.port" ] && [ -s "$T/app.port" ] && break; sleep 0.05; done
P1=$(cat "$T/u1.port") P2=$(cat "$T/u2.port") PA=$(cat "$T/app.port")
touch "$T/u1.log" "$T/u2.log" "$T/app.log"

"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { echo "FAIL init"; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "att": {"uid": $UA}, "vic": {"uid": $UB} },
  "grants": [ {"client": "att", "secret": "up", "use": ["proxy"], "max_ttl": 7200},
              {"client": "att", "secret": "app", "use": ["proxy"], "max_ttl": 7200},
              {"client": "vic", "secret": "vic", "use": ["proxy"], "max_ttl": 7200} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --threads 1 >"$T/daemon.out" 2>&1 &
for _ in $(seq 100); do [ -S "$T/run/tools.sock" ] && [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
[ -S "$T/run/tools.sock" ] || { echo "FAIL daemon did not start: $(cat "$T/daemon.out")"; exit 1; }
TS=$T/run/tools.sock AS=$T/run/admin.sock
for s in up:$SA vic:$SB; do
        printf %s "${s#*:}" | "$CLI" --admin-socket "$AS" put "${s%%:*}" --host "http://127.0.0.1:$P1" \
                --host "http://127.0.0.1:$P2" --inject 'Authorization: Bearer {}' >/dev/null || bad "put ${s%%:*}"
done
printf %s "$SA" | "$CLI" --admin-socket "$AS" put app --host "http://127.0.0.1:$PA" --method POST --method GET \
        --path-prefix /v1/chat --inject 'Authorization: Bearer {}' >/dev/null || bad "put app"
token() { # UID SECRET: a uid-bound proxy token
        as "$1" $PY - "$TS" "$2" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
b = json.dumps({"secret": sys.argv[2], "use": "proxy", "ttl": 7200, "bind": "uid"}).encode()
s.sendall(b"POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(b) + b)
d = b""
while True:
    x = s.recv(65536)
    if not x: break
    d += x
print(json.loads(d.split(b"\r\n\r\n", 1)[1])["token"])
PY
}
TA=$(token $UA up) TB=$(token $UB vic) TAPP=$(token $UA app)
[ -n "$TA" ] && [ -n "$TB" ] && [ -n "$TAPP" ] || { echo "FAIL no tokens: $(tail -3 "$T/daemon.out")"; exit 1; }

# --- 1. one local port, two destinations, two uids
conns() { $PY -c 'import json,sys; print(" ".join(str(json.loads(l)["conn"]) for l in open(sys.argv[1])))' "$1"; }
out=$(R $UA 'b"GET /v1/proxy/up/A-first HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {T}\r\n\r\n"' "$TA")
case "$out" in *"200 OK"*) ok "legitimate: uid $UA's request to U1 is served" ;; *) bad "uid $UA to U1: ${out: -300}" ;; esac
R $UA "b\"GET /v1/proxy/up/close HTTP/1.1\\r\\nHost: x\\r\\nX-Credbroker-Host: 127.0.0.1:$P2\\r\\nAuthorization: Bearer {T}\\r\\n\\r\\n\"" "$TA" >/dev/null
[ "$(wc -l <"$T/u2.log")" -ge 1 ] && ok "uid $UA's request to U2 went out (and U2 closed it)" || bad "U2 saw nothing"
# Room for a second connection to U1 now: B's request can go out fresh.
sysctl -qw net.ipv4.ip_local_port_range="40001 40999"
out=$(R $UB 'b"GET /v1/proxy/vic/B-victim HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {T}\r\n\r\n"' "$TB")
case "$out" in *"200 OK"*) ok "legitimate: uid $UB's request to U1 is served" ;; *) bad "uid $UB to U1: ${out:0:120}" ;; esac
set -- $(conns "$T/u1.log")
if [ "$#" = 2 ] && [ "$1" != "$2" ]; then
        ok "uid $UA's and uid $UB's requests to U1 went out on different connections ($1, $2)"
else
        bad "U1's connections for uid $UA then uid $UB: '$*' (the same connection, or not two requests)"
fi

# --- 2. an upstream that leaves a body unread
B='DELETE /admin/users HTTP/1.1\r\nHost: x\r\nX-Pad: '
out=$(R $UA 'b"DELETE /v1/proxy/app/admin/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {T}\r\nConnection: close\r\n\r\n"' "$TAPP")
case "$out" in *" 403 "*) ok "legitimate refusal: DELETE /admin/users is outside the seal (403)" ;; *) bad "direct DELETE: ${out:0:120}" ;; esac
for pre in "POST /v1/proxy/app/v1/chat/nope" "GET /v1/proxy/app/v1/chat/models"; do
        R $UA "b\"$pre HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer {T}\\r\\nContent-Length: 46\\r\\nConnection: close\\r\\n\\r\\n$B\"" "$TAPP" >/dev/null
        out=$(R $UA 'b"POST /v1/proxy/app/v1/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {T}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"' "$TAPP")
        case "$out" in *'"ok":true'*) ok "legitimate: POST /v1/chat after '${pre%% *} ${pre##*/}' with a body is served" ;;
        *) bad "POST /v1/chat after ${pre%% *}: ${out:0:160}" ;; esac
done
n=$($PY -c '
import json, sys
n = 0
for l in open(sys.argv[1]):
    r = json.loads(l)
    if not r["path"].startswith("/v1/chat") and r["auth"] == "Bearer " + sys.argv[2]:
        n += 1
print(n)' "$T/app.log" "$SA")
[ "$n" = 0 ] && ok "no request outside /v1/chat ever reached the app with the credential" ||
        bad "$n smuggled request(s) outside the seal reached the app WITH the injected credential"
# --- 3. an upstream answering 101 (never asked for) to ordinary requests:
# each gets 502 at once, and no in-flight slot stays taken (128 per uid).
cat >"$T/many.py" <<'PY'
import socket, sys, threading
ts, tok, n = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
res = {}
lock = threading.Lock()
def one():
    s = socket.socket(socket.AF_UNIX); s.connect(ts); s.settimeout(10)
    s.sendall(b"GET /v1/proxy/up/r/status/101 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok + b"\r\nConnection: close\r\n\r\n")
    d = b""
    try:
        while True:
            x = s.recv(65536)
            if not x: break
            d += x
    except socket.timeout: d = b"TIMEOUT"
    with lock: res[d[:12].decode(errors="replace") or "(empty)"] = res.get(d[:12].decode(errors="replace") or "(empty)", 0) + 1
th = [threading.Thread(target=one) for _ in range(n)]
[t.start() for t in th]; [t.join() for t in th]
print(res)
PY
chmod 0644 "$T/many.py"
out=$(as $UA $PY "$T/many.py" "$TS" "$TA" 140)
[ "$out" = "{'HTTP/1.1 502': 140}" ] && ok "140 requests answered 101 by the upstream: 502 each" || bad "101 answers: $out"
out=$(R $UA 'b"GET /v1/proxy/up/after-101 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {T}\r\nConnection: close\r\n\r\n"' "$TA")
case "$out" in *"200 OK"*) ok "uid $UA's next ordinary request is served (no slot left taken)" ;; *) bad "after the 101s: ${out:0:160}" ;; esac
grep -qF "$SA" "$T/daemon.out" && bad "the value is in the daemon's output"
[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all passed"
