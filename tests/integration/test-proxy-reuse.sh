#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A pooled upstream connection that the upstream ends as the broker reuses
# it (issue 19: the soak's 502 "Send failure: Broken pipe", nginx closing a
# kept-alive connection).  The real daemon (one transfer loop, so the next
# request takes the connection the last one left), a client under a real
# uid, and reuse-upstream.py, which ends a connection at the worst moment:
#   bye    right after its answer: TLS close_notify + FIN, or plain "408" + FIN
#          (the broker's idle watch shut it; libcurl still saw bytes and
#          reused it: EPIPE)
#   close  on the next request, read whole, FIN without an answer
#   rst    the same with a reset
#   slow-bye  bye, for eight connections opened together: all end at once,
#          and over TLS each still held its close_notify, so libcurl took
#          one after the other and gave up after five resends: the soak's
#          502 "Failed sending data to the peer: Send failure: Broken pipe"
# What must hold: a request that never reached the upstream is sent again
# on a fresh connection, body and all (200); an idempotent one that may
# have reached it too; a POST that reached it is never sent twice (502,
# and the upstream's log shows it once).  See docs/capacity.md "Upstream
# connections".
# Needs root (to run the client under another uid); exits 77 otherwise.
set -uo pipefail

CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
HERE=$(cd "$(dirname "$0")" && pwd)
[ -f "$HERE/reuse-upstream.py" ] || HERE=${CB_SRCDIR:?}/tests/integration
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (to run clients under other uids)"; exit 77; }
for t in /usr/bin/python3 setpriv timeout openssl; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done

T=$(mktemp -d /tmp/cbreuse-test.XXXXXX)
chmod 0755 "$T"
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
U1=61321
PY=$(readlink -f /usr/bin/python3)
as() { timeout 60 setpriv --reuid "$U1" --regid "$U1" --clear-groups "$@"; }

bash "$HERE/proxy-certs.sh" "$T/pki" >/dev/null 2>&1 || { bad "proxy-certs.sh"; exit 1; }
start_up() { # start_up NAME [TLS ARGS...]
        local n=$1; shift
        : >"$T/$n.log"
        chmod 0644 "$T/$n.log"
        /usr/bin/python3 "$HERE/reuse-upstream.py" --log "$T/$n.log" "$@" >"$T/$n.port" 2>"$T/$n.err" &
        for _ in $(seq 100); do [ -s "$T/$n.port" ] && break; sleep 0.05; done
        head -n 1 "$T/$n.port"
}
PPLAIN=$(start_up plain)
PTLS=$(start_up tls --cert "$T/pki/server.pem" --key "$T/pki/server.key")
case "$PPLAIN$PTLS" in '' | *[!0-9]*) bad "upstreams did not start: $(cat "$T"/*.err)"; exit 1 ;; esac

"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "py-tool": {"uid": $U1, "exe": "$PY"} },
  "grants": [ {"client": "py-tool", "secret": "plain", "use": ["proxy"], "max_ttl": 600},
              {"client": "py-tool", "secret": "tls", "use": ["proxy"], "max_ttl": 600} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --threads 1 >"$T/daemon.out" 2>&1 &
DPID=$!
for _ in $(seq 50); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
[ -S "$T/run/tools.sock" ] || { bad "daemon did not start: $(cat "$T/daemon.out")"; exit 1; }
AS=$T/run/admin.sock
hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
hex 16 | timeout 20 "$CLI" --admin-socket "$AS" put plain --host "http://127.0.0.1:$PPLAIN" \
        --method GET --method POST --method PUT >/dev/null || bad "put plain"
hex 16 | timeout 20 "$CLI" --admin-socket "$AS" put tls --host "127.0.0.1:$PTLS" --ca-file "$T/pki/ca.pem" \
        --method GET --method POST --method PUT >/dev/null || bad "put tls"

# req.py SOCKET SECRET METHOD PATH BODYBYTES: one request through the proxy
# (its own connection to tools.sock), prints the status and the body's start.
cat >"$T/req.py" <<'PY'
import json, os, socket, sys
sock, secret, method, path, n = sys.argv[1:6]
tokf = os.path.join(os.path.dirname(sys.argv[0]), "tok." + secret)
if not os.path.exists(tokf):
    s = socket.socket(socket.AF_UNIX); s.connect(sock)
    b = json.dumps({"secret": secret, "use": "proxy", "ttl": 600}).encode()
    s.sendall(b"POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(b) + b)
    d = b""
    while (x := s.recv(65536)):
        d += x
    open(tokf, "w").write(json.loads(d.split(b"\r\n\r\n", 1)[1])["token"])
tok = open(tokf).read().strip()
body = bytes(i % 251 for i in range(int(n)))
s = socket.socket(socket.AF_UNIX); s.connect(sock)
s.sendall(("%s /v1/proxy/%s%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n"
           % (method, secret, path, tok)).encode() +
          (b"Content-Length: %d\r\n" % len(body) if method != "GET" else b"") + b"\r\n" + body)
d = b""
while (x := s.recv(65536)):
    d += x
head, _, rest = d.partition(b"\r\n\r\n")
print(head.split(b" ")[1].decode(), rest[:200].decode("latin-1").replace("\n", " "))
PY
mkdir -m 0777 "$T/c"
cp "$T/req.py" "$T/c/req.py"
chmod 0644 "$T/c/req.py"
req() { as /usr/bin/python3 "$T/c/req.py" "$T/run/tools.sock" "$@"; }
# seen NAME METHOD PATH: how many times the upstream received it, and with
# which body lengths
seen() { /usr/bin/python3 -c '
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
m = [x for x in r if x["method"] == sys.argv[2] and x["path"] == sys.argv[3]]
print(len(m), " ".join("%d%s" % (x["body_len"], "" if x["answered"] else "u") for x in m))' "$T/$1.log" "$2" "$3"; }

# case NAME SECRET SETUP METHOD PATH BODYBYTES WANT: SETUP (a GET) leaves a
# kept connection and says what the upstream does next; then the request.
case_() {
        local name=$1 secret=$2 setup=$3 method=$4 path=$5 n=$6 want=$7 got first
        first=$(req "$secret" GET "/then/$setup" 0)
        [ "${first%% *}" = 200 ] || { bad "$name: setup GET /then/$setup answered $first"; return; }
        sleep "${CB_REUSE_GAP:-0.3}"              # the upstream's close reaches the broker first
        got=$(req "$secret" "$method" "$path" "$n")
        if [ "${got%% *}" = "$want" ]; then
                ok "$name: $method $path after /then/$setup: $(echo "$got" | head -c 160)"
        else
                bad "$name: $method $path after /then/$setup: want $want, got $(echo "$got" | head -c 300)"
        fi
}
lg() { if [ "$1" = tls ]; then echo tls; else echo plain; fi; }

echo "# the upstream ended the idle connection just before it was reused: nothing reached it"
for s in plain tls; do
        case_ "$s bye GET" "$s" bye GET "/bye-get-$s" 0 200
        case_ "$s bye POST" "$s" bye POST "/bye-post-$s" 3000 200
        r=$(seen "$(lg $s)" POST "/bye-post-$s")
        [ "$r" = "1 3000" ] && ok "$s: the POST reached the upstream once, whole ($r)" ||
                bad "$s: the POST after bye: upstream saw (count, body lengths, u = unanswered) $r, want 1 3000"
done

echo "# eight pooled connections, all ended at once as the next request comes (libcurl gives up after 5 resends)"
for s in plain tls; do
        r=$(as /usr/bin/python3 - "$T/c/req.py" "$T/run/tools.sock" "$s" <<'PY'
import subprocess, sys, threading
req, sock, s = sys.argv[1:4]
out = []
def one():
    out.append(subprocess.run([sys.executable, req, sock, s, "GET", "/then/slow-bye", "0"],
                              capture_output=True, text=True).stdout.split(" ")[0])
ts = [threading.Thread(target=one) for _ in range(8)]
for t in ts: t.start()
for t in ts: t.join()
print(" ".join(sorted(out)))
PY
)
        [ "$r" = "200 200 200 200 200 200 200 200" ] || bad "$s: eight requests together: $r"
        sleep "${CB_REUSE_GAP:-0.3}"
        got=$(req "$s" GET "/after-mass-close-$s" 0)
        [ "${got%% *}" = 200 ] && ok "$s: a GET after 8 pooled connections ended at once: $got" ||
                bad "$s: a GET after 8 pooled connections ended at once: $(echo "$got" | head -c 300)"
        got=$(req "$s" POST "/after-mass-close-post-$s" 2000)
        [ "${got%% *}" = 200 ] && ok "$s: a POST after that: $got" || bad "$s: a POST after that: $(echo "$got" | head -c 300)"
done

echo "# the upstream got the request and ended the connection without a byte of answer"
for s in plain tls; do
        for how in close rst; do
                # "1 0" / "1 5000": libcurl sent it on a fresh connection,
                # not the kept one the setup armed, so the case did not
                # happen (nothing wrong: answered once); tried again, up to
                # 3 times.  Anything else is judged.
                for try in 1 2 3; do
                        case_ "$s $how GET" "$s" "$how" GET "/$how-get-$s-$try" 0 200
                        r=$(seen "$(lg $s)" GET "/$how-get-$s-$try")
                        [ "$r" = "1 0" ] && [ $try -lt 3 ] && { echo "     (GET went on a fresh connection; again)"; continue; }
                        break
                done
                [ "$r" = "2 0u 0" ] && ok "$s $how: the GET was sent again on a fresh connection ($r)" ||
                        bad "$s $how: GET: upstream saw $r, want 2 0u 0"
                for try in 1 2 3; do
                        case_ "$s $how PUT" "$s" "$how" PUT "/$how-put-$s-$try" 5000 200
                        r=$(seen "$(lg $s)" PUT "/$how-put-$s-$try")
                        [ "$r" = "1 5000" ] && [ $try -lt 3 ] && { echo "     (PUT went on a fresh connection; again)"; continue; }
                        break
                done
                [ "$r" = "2 5000u 5000" ] && ok "$s $how: the PUT (idempotent) again, body rewound whole ($r)" ||
                        bad "$s $how: PUT: upstream saw $r, want 2 5000u 5000"
                for n in 0 3000; do
                        case_ "$s $how POST $n" "$s" "$how" POST "/$how-post$n-$s" "$n" 502
                        r=$(seen "$(lg $s)" POST "/$how-post$n-$s")
                        [ "$r" = "1 ${n}u" ] && ok "$s $how: a POST of $n bytes that reached the upstream is not sent twice ($r)" ||
                                bad "$s $how: POST of $n bytes: upstream saw $r, want 1 ${n}u (never replayed)"
                done
        done
done
kill -0 "$DPID" 2>/dev/null && ok "the daemon is alive at the end" || bad "the daemon died: $(tail -5 "$T/daemon.out")"
[ "$fails" = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all passed"
