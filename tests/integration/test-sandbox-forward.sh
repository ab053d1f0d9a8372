#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# credbroker sandbox, plain HTTP and the outbound leak guard (issue 17):
# absolute-form http:// requests (HTTP_PROXY) out of a sandbox are forwarded
# to the hosts its client's "egress.allow" names, the address dialled
# passing the SSRF rules, framed by the broker under the proxy's rules, and
# refused when their head or body carries a live secret value in any form
# the matcher knows.  Real curl and Python inside bubblewrap under an
# unprivileged uid; the daemon and real plain-HTTP upstreams in a network
# namespace this test makes, where the upstream has a public-looking
# address (11.22.33.44 on lo) and names come from a private /etc/hosts.
# Exits 77 naming what is missing.
set -uo pipefail
CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
HERE=$(cd "$(dirname "$0")" && pwd)
[ -f "$HERE/proxy-upstream.py" ] || HERE=${CB_SRCDIR:?}/tests/integration
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (namespaces, another uid)"; exit 77; }
for t in /usr/bin/python3 setpriv timeout /usr/bin/bwrap curl unshare ip; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done
U=61915
as() { setpriv --reuid $U --regid $U --clear-groups "$@"; }
if ! out=$(as /usr/bin/bwrap --unshare-all --ro-bind / / /bin/true 2>&1); then
        echo "SKIP: missing prerequisite: unprivileged user namespaces for bwrap ($out)"; exit 77
fi
T=$(mktemp -d /var/tmp/cbsbf-test.XXXXXX)
chmod 0755 "$T"
NSPID=''
cleanup() {
        [ -n "$NSPID" ] && kill "$NSPID" 2>/dev/null
        for f in "$T/up.pid" "$T/private.pid"; do [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
        wait 2>/dev/null; rm -rf "$T"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }

P=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '127.0.0.1 localhost\n11.22.33.44 upstream.test denied.test\n127.0.0.1 private.test\n' >"$T/hosts"
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "sbx": {"uid": $U, "egress": {"allow": ["upstream.test:$P", "private.test:$P"], "alert_on_deny": true}} },
  "grants": [ {"client": "sbx", "secret": "api", "use": ["proxy"], "max_ttl": 3600} ], "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
cat >"$T/ns.sh" <<EOF
set -e
ip link set lo up
ip addr add 11.22.33.44/32 dev lo
mount --bind "$T/hosts" /etc/hosts
/usr/bin/python3 "$HERE/proxy-upstream.py" --plain --bind 11.22.33.44 --port $P --log "$T/up.log" >/dev/null 2>"$T/up.err" &
echo \$! >"$T/up.pid"
/usr/bin/python3 "$HERE/proxy-upstream.py" --plain --bind 127.0.0.1 --port $P --log "$T/private.log" >/dev/null 2>"$T/private.err" &
echo \$! >"$T/private.pid"
exec "$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" --audit-log "$T/audit.log"
EOF
unshare -mn bash "$T/ns.sh" >"$T/daemon.out" 2>&1 &
NSPID=$!
for _ in $(seq 50); do [ -S "$T/run/sandbox.sock" ] && [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
sleep 0.5
[ -S "$T/run/sandbox.sock" ] || { bad "the daemon did not start: $(cat "$T/daemon.out")"; exit 1; }
touch "$T/up.log" "$T/private.log"
# A live secret, known to the test only (the tool "found" it: a file it can read).
SECRET="cbsbf-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$SECRET" | CREDBROKER_ADMIN_SOCKET="$T/run/admin.sock" "$CLI" put ghtok >/dev/null || { bad "put ghtok"; exit 1; }
APIV="cbsbf-api-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s' "$APIV" | CREDBROKER_ADMIN_SOCKET="$T/run/admin.sock" "$CLI" put api --host "http://upstream.test:$P" \
        --inject 'Authorization: Bearer {}' >/dev/null || { bad "put api"; exit 1; }
mkdir -p "$T/work" && chown $U "$T/work"
printf '%s' "$SECRET" >"$T/work/found.txt" && chown $U "$T/work/found.txt"
cp "$HERE/sandbox-forward-probe.py" "$T/work/probe.py" && chmod 0644 "$T/work/probe.py"
mkdir -p "$T/home"; sb() { (cd "$T/work" && as env HOME="$T/home" CREDBROKER_SOCKET="$T/run/tools.sock" timeout 120 "$CLI" sandbox "$@"); }
HP="upstream.test:$P"

# ---- allowed: real programs through HTTP_PROXY ------------------------------------
o=$(sb -- curl -sS --max-time 15 "http://$HP/echo/curl-get?x=1" 2>&1); rc=$?
[ $rc = 0 ] && expect "curl GET through HTTP_PROXY to an allowed host: forwarded" '"path": "/echo/curl-get"' "$o" || bad "curl GET: exit $rc: $o"
head -c 3000 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/work/big.txt"; chown $U "$T/work/big.txt"
o=$(sb -- curl -sS --max-time 15 -H 'Content-Type: text/plain' --data-binary @big.txt "http://$HP/echo/curl-post" 2>&1); rc=$?
[ $rc = 0 ] && expect "curl POST of 6,000 bytes (Expect: 100-continue) to an allowed host: forwarded" '"body_length": 6000' "$o" || bad "curl POST: exit $rc: $o"
o=$(sb -- /usr/bin/python3 -c "import urllib.request
r = urllib.request.urlopen('http://$HP/echo/urllib', timeout=15)
print(r.status, r.read().decode()[:300])" 2>&1); rc=$?
[ $rc = 0 ] && expect "Python urllib through HTTP_PROXY to an allowed host" '200 {' "$o" || bad "urllib: exit $rc: $o"
o=$(sb -- /usr/bin/python3 probe.py "$HP" found.txt get post-clean chunked-clean 2>&1)
expect "raw GET: 200" "get 200" "$o"
expect "raw POST with a clean body: 200, the body arrived" 'post-clean 200' "$o"
expect "raw chunked POST with a clean body: 200, re-framed (10 bytes)" '"body_length": 10' "$o"
grep -q '"/echo/probe-chunked"' "$T/up.log" && ok "the upstream received the controls" || bad "upstream log: $(cat "$T/up.log")"
python3 - "$T/up.log" <<'PY' && ok "upstream saw the broker's framing: Content-Length, Connection: close, no Transfer-Encoding, no Proxy-*" || bad "framing as seen upstream"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if '"/echo/probe-chunked"' in l][0]
h = r["headers"]
assert h.get("content-length") == "10", h
assert "transfer-encoding" not in h, h
assert h.get("connection") == "close", h
assert not any(k.startswith("proxy-") for k in h), h
PY

# ---- one sandbox's slow host and stalled body hold up no other -------------------
printf 'import socket, time\ns = socket.create_connection(("127.0.0.1", 8411))\ns.sendall(b"POST http://%s/echo/stalled HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 100\\r\\n\\r\\nabc")\ntime.sleep(6)\n' "$HP" >"$T/work/stall.py"
chmod 0644 "$T/work/stall.py"
sb -- sh -c "curl -s -o /dev/null --max-time 20 http://$HP/slow & /usr/bin/python3 stall.py; wait" >/dev/null 2>&1 &
SLOWPID=$!
sleep 1.5
t0=$(date +%s%N)
o=$(sb -- curl -sS --max-time 15 "http://$HP/echo/meanwhile" 2>&1)
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
case "$o" in *'"path": "/echo/meanwhile"'*) [ $ms -lt 2500 ] && ok "another sandbox's request is served in $ms ms while a slow host (3 s) and a stalled body are in flight" || bad "another sandbox waited $ms ms" ;; *) bad "meanwhile: $o" ;; esac
wait $SLOWPID
grep -q '"/slow"' "$T/up.log" && ok "the slow request completed upstream" || bad "the slow request did not reach the upstream"

# ---- refusals, all from one sandbox: each refused, recorded, one alert ------------
before=$(wc -l <"$T/up.log")
CASES="denied literal private otherport https-abs leak-raw leak-base64 leak-pct leak-hex leak-json leak-header leak-query leak-split cl-te cl-cl te-gzip bad-chunk obs-fold bare-lf cl-sign"
o=$(sb -- sh -c "/usr/bin/python3 probe.py $HP found.txt $CASES; curl -s -o /dev/null -w 'curl-leak %{http_code}\n' --data-urlencode \"k=\$(cat found.txt)\" http://$HP/echo/curl-leak" 2>&1)
echo "$o" | sed 's/^/    /'
expect "a host not in egress.allow: 403" "denied 403" "$o"
expect "an IP literal: 403" "literal 403" "$o"
expect "an allowed name resolving to a private address: 403, never dialled" "private 403" "$o"
expect "an allowed host on another port: 403" "otherport 403" "$o"
expect "https:// in absolute form (not CONNECT): 400" "https-abs 400" "$o"
expect "leak guard: the raw secret in a form body: 403" "leak-raw 403" "$o"
expect "leak guard: the secret base64-encoded (inside base64 of a longer text) in a JSON body: 403" "leak-base64 403" "$o"
expect "leak guard: the secret fully percent-escaped: 403" "leak-pct 403" "$o"
expect "leak guard: the secret in upper-case hex: 403" "leak-hex 403" "$o"
expect "leak guard: the secret as JSON \\u escapes: 403" "leak-json 403" "$o"
expect "leak guard: the secret base64 in a header: 403" "leak-header 403" "$o"
expect "leak guard: the secret percent-escaped in the query: 403" "leak-query 403" "$o"
expect "leak guard: the secret split across two chunks sent apart: 403" "leak-split 403" "$o"
expect "leak guard: curl --data-urlencode of the secret: 403" "curl-leak 403" "$o"
expect "the refusal names the secret and the form" "carries the live secret 'ghtok' (base64 form)" "$o"
expect "smuggling: Content-Length with Transfer-Encoding: 400" "cl-te 400" "$o"
expect "smuggling: two Content-Lengths: 400" "cl-cl 400" "$o"
expect "smuggling: Transfer-Encoding other than chunked: 400" "te-gzip 400" "$o"
expect "smuggling: a chunk size with trailing space: 400" "bad-chunk 400" "$o"
expect "smuggling: obs-fold: 400" "obs-fold 400" "$o"
expect "smuggling: bare LF line ends: 400" "bare-lf 400" "$o"
expect "smuggling: a signed Content-Length: 400" "cl-sign 400" "$o"
case "$o" in *SECRET-ECHOED*) bad "a refusal echoed the secret" ;; *) ok "no answer echoes the secret" ;; esac
[ ! -s "$T/private.log" ] && ok "the private upstream received nothing" || bad "private upstream reached: $(cat "$T/private.log")"
[ "$(wc -l <"$T/up.log")" = "$before" ] && ok "the upstream received none of the refused requests" || bad "refused requests reached the upstream: $(tail -n +$((before + 1)) "$T/up.log")"
sleep 0.5
grep -qF "$SECRET" "$T/audit.log" "$T/daemon.out" && bad "the secret value is in the audit log or the daemon's output" || ok "the secret value is in neither the audit log nor the daemon's output"
/usr/bin/python3 - "$T/audit.log" "$T/daemon.out" <<'PY' && ok "each refusal audited (egress deny records, route forward, the leak named); one egress_denied alert for the sandbox" || bad "records/alert"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
close = [r for r in recs if r.get("type") == "sandbox_close" and "probe.py" in r.get("cmd", "") and "leak-raw" in r.get("cmd", "")]
assert len(close) == 1, close
sid = close[0]["id"]
deny = [r for r in recs if r.get("type") == "egress" and r.get("sandbox") == sid and r.get("decision") == "deny"]
assert all(r.get("route") == "forward" for r in deny), deny
reasons = " | ".join(r["reason"] for r in deny)
for want in ("egress.allow", "IP literal", "loopback", "Content-Length and Transfer-Encoding", "live secret 'ghtok'"):
    assert want in reasons, (want, reasons)
leaks = [r["leak"] for r in deny if "leak" in r]
assert len(leaks) == 9, leaks
assert all(l["secret"] == "ghtok" for l in leaks), leaks
forms = {l["form"] for l in leaks}
assert {"base64", "raw", "url", "hex", "json"} <= forms, forms
assert close[0]["refused"] >= 21, close[0]
alerts = [l for l in open(sys.argv[2]) if "egress_denied" in l and sid in l]
assert len(alerts) == 1, alerts
PY

# ---- the leak guard on the injection proxy (--proxy): what the tool sends --------
o=$(sb --proxy api=env:UP -- sh -c 'curl -sS --max-time 10 -H "Authorization: Bearer $UP_API_KEY" "$UP_BASE_URL/echo/proxied"' 2>&1)
expect "control: --proxy request through the injection proxy: forwarded with the credential" '"path": "/echo/proxied"' "$o"
grep '"/echo/proxied"' "$T/up.log" | grep -qF "Bearer $APIV" && ok "the upstream received the injected value" || bad "injected value not seen upstream"
B64=$(printf 'user=%s' "$SECRET" | base64 -w0)
o=$(sb --proxy api=env:UP -- sh -c "curl -s --max-time 10 -w ' %{http_code}' -H \"Authorization: Bearer \$UP_API_KEY\" -H 'X-Data: $B64' \"\$UP_BASE_URL/echo/proxied-leak\"; echo; curl -s --max-time 10 -w ' %{http_code}' -H \"Authorization: Bearer \$UP_API_KEY\" \"\$UP_BASE_URL/echo/proxied-leak?q=\$(cat found.txt)\"" 2>&1)
expect "leak guard (proxied): another live secret base64 in a header: 403" "header 'X-Data' carries the live secret 'ghtok' (base64 form)" "$o"
expect "leak guard (proxied): another live secret in the query: 403" "query carries the live secret 'ghtok' (raw form)" "$o"
o=$(sb --proxy api=env:UP -- sh -c 'A="Authorization: Bearer $UP_API_KEY"; curl -sS --max-time 10 -H "$A" -d "hello=1" "$UP_BASE_URL/echo/proxied-post"; echo; curl -sS --max-time 10 -H "$A" -H "Transfer-Encoding: chunked" -H "Content-Type: text/plain" --data-binary @big.txt "$UP_BASE_URL/echo/proxied-chunked"' 2>&1)
expect "control: a proxied POST with a clean body (held, scanned, then sent)" '"body_length": 7' "$o"
expect "control: a proxied chunked POST of 6,000 bytes" '"body_length": 6000' "$o"
o=$(sb --proxy api=env:UP -- sh -c "curl -s --max-time 10 -w ' %{http_code}' -H \"Authorization: Bearer \$UP_API_KEY\" -H 'Content-Type: application/json' -d '{\"blob\": \"$B64\"}' \"\$UP_BASE_URL/echo/proxied-leak-body\"; echo; curl -s --max-time 10 -w ' %{http_code}' -H \"Authorization: Bearer \$UP_API_KEY\" -H 'Transfer-Encoding: chunked' --data-binary @found.txt \"\$UP_BASE_URL/echo/proxied-leak-chunked\"" 2>&1)
expect "leak guard (proxied): another live secret base64 in a JSON body: 403" "body carries the live secret 'ghtok' (base64 form)" "$o"
expect "leak guard (proxied): the raw secret in a chunked body: 403" "body carries the live secret 'ghtok' (raw form)" "$o"
# A refused head never leaves; a refused body is cut before its first byte
# (the head may have gone: the upstream then sees the body end at 0 bytes).
python3 - "$T/up.log" <<'PY' && ok "none of the proxied leaks reached the upstream (heads refused before; bodies cut at 0 bytes)" || bad "a proxied leak reached the upstream: $(grep 'proxied-leak' "$T/up.log")"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if "proxied-leak" in l]
assert not [r for r in recs if r["path"] == "/echo/proxied-leak"], recs
assert all(r["body_length"] == 0 for r in recs), recs
PY
sleep 0.3
python3 - "$T/audit.log" <<'PY' && ok "proxied leak refusals audited (the header's at the decision, the body's in the completion record)" || bad "proxied leak records"
import json, sys
recs = [l for l in open(sys.argv[1]) if '"sandbox"' in l]
for want in ("header 'X-Data' carries the live secret 'ghtok' (base64 form)", "body carries the live secret 'ghtok' (base64 form)",
             "body carries the live secret 'ghtok' (raw form)"):
    assert any(want in l for l in recs), want
PY
grep -qF -e "$SECRET" -e "$B64" "$T/up.log" && bad "the secret reached the upstream" || ok "the secret is nowhere in what the upstream received"

# ---- a sandbox whose first refusal comes from the proxy's server --------------------
# (noted under the request lock: asking the policy for alert_on_deny there
# deadlocked the daemon, every later request and hand-over with it)
o=$(sb -- curl -s -o /dev/null --max-time 5 -w '%{http_code}' http://127.0.0.1:8411/v1/proxy/nosuch/x 2>&1)
expect "a first refusal by the injection proxy (no token): answered 401" "401" "$o"
o=$(sb -- curl -sS --max-time 5 "http://$HP/echo/after" 2>&1)
expect "the daemon still serves sandboxes after it" '"path": "/echo/after"' "$o"
sleep 0.3
n=$(grep -c 'egress_denied.*nosuch\|egress_denied.*v1/proxy' "$T/daemon.out")
[ "$n" = 1 ] && ok "it raised the sandbox's egress_denied alert" || bad "alert for the proxy refusal: $n"

echo "sandbox-forward: $fails failure(s)"
[ $fails = 0 ]
