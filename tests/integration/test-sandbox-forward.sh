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
# Red team rt7 (daemon side): the whole head of a --proxy request scanned
# (F2), no value in a record or a DNS query (F3), held bodies charged per
# user with a deadline (F4), the refusal budget on the forwarder and tunnels
# (F7), a leak alert after another refusal (F8), proxy.done attributed
# (F10), routing/override headers dropped (F11), HTTP/1.0 without a length
# (F12): sandbox-rt7-probe.py, a second user (61916) as the victim.
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
U2=61916 # another user (red team rt7 F4/F7: what one user's sandboxes may cost the others)
as() { setpriv --reuid $U --regid $U --clear-groups "$@"; }
as2() { setpriv --reuid $U2 --regid $U2 --clear-groups "$@"; }
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
{ "clients": { "sbx": {"uid": $U, "egress": {"allow": ["upstream.test:$P", "private.test:$P", "*.wild.test:$P"], "alert_on_deny": true}},
               "sbx2": {"uid": $U2, "egress": {"allow": ["upstream.test:$P", "denied2.test:$P"], "alert_on_deny": true}} },
  "grants": [ {"client": "sbx", "secret": "api", "use": ["proxy"], "max_ttl": 3600},
              {"client": "sbx2", "secret": "api", "use": ["proxy"], "max_ttl": 3600} ], "admins": {"uids": [0]} }
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
exec "$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" --audit-log "$T/audit.log" --refusals-recorded 150
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
mkdir -p "$T/work2" && chown $U2 "$T/work2"
cp "$HERE/sandbox-rt7-probe.py" "$T/work/rt7.py" && cp "$HERE/sandbox-rt7-probe.py" "$T/work2/rt7.py" && chmod 0644 "$T/work/rt7.py" "$T/work2/rt7.py"
printf 'not-a-secret-value' >"$T/work2/nothing.txt" && chmod 0644 "$T/work2/nothing.txt"
sb2() { (cd "$T/work2" && as2 env HOME="$T/home" CREDBROKER_SOCKET="$T/run/tools.sock" timeout 120 "$CLI" sandbox "$@"); }
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
expect "leak guard (proxied): another live secret in the query: 403" "target carries the live secret 'ghtok' (raw form)" "$o"
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

# ---- red team rt7 (daemon side), each after its control ---------------------------
HEX=$(printf '%s' "$SECRET" | od -An -tx1 | tr -d ' \n')
# F4: a held --proxy upload has a deadline (60 s in all): one that trickles a
# chunk every 5 s is cut (before: held for as long as it trickled).
sb --proxy api=env:UP -- /usr/bin/python3 rt7.py "$HP" "$P" found.txt trickle >"$T/trickle.out" 2>&1 &
TRICKLEPID=$!
# F2: the --proxy route scans the whole head as the tool sent it.
o=$(sb --proxy api=env:UP -- /usr/bin/python3 rt7.py "$HP" "$P" found.txt p-control p-hdrname p-barename p-method p-hexname p-credhost 2>&1)
echo "$o" | sed 's/^/    /'
expect "control (proxied, raw socket): 200" "p-control 200" "$o"
expect "F2: a live secret as a header name (X-<secret>) on the --proxy route: 403" "p-hdrname 403" "$o"
expect "F2: the bare secret as a header name: 403" "p-barename 403" "$o"
expect "F2: the secret as the method: 403" "p-method 403" "$o"
expect "F2: the secret's hex form in a header name: 403" "p-hexname 403" "$o"
expect "F3: the secret in X-Credbroker-Host (echoed in the refusal's reason before): 403" "p-credhost 403" "$o"
# F3: forwarded and tunnelled heads whose method or host is the value.
o=$(sb -- /usr/bin/python3 rt7.py "$HP" "$P" found.txt c-control f-method f-hostlabel c-hexlabel 2>&1)
echo "$o" | sed 's/^/    /'
expect "control: CONNECT to a name under an allowed wildcard that does not resolve: 502" "c-control 502" "$o"
expect "F3: a forwarded request whose method is the secret: 403" "f-method 403" "$o"
expect "F3: the secret as a host label under an allowed wildcard: 403" "f-hostlabel 403" "$o"
expect "F3: CONNECT hex(secret).wild.test: refused by the leak guard before any lookup (403, not 502)" "c-hexlabel 403" "$o"
# F8: a leak alerts even after an earlier refusal of the same sandbox.
o=$(sb -- /usr/bin/python3 rt7.py "$HP" "$P" found.txt f-denied f-leak 2>&1)
expect "F8: first a host not in egress.allow: 403" "f-denied 403" "$o"
expect "F8: then the raw secret in a body: 403" "f-leak 403" "$o"
# F9: base64 wrapped as MIME (CRLF every 76) on the forwarder and as PEM
# (LF every 64) through --proxy, a break inside the value's base64.
o=$(sb --proxy api=env:UP -- /usr/bin/python3 rt7.py "$HP" "$P" found.txt f-b64wrap-ctl f-b64wrap p-b64wrap-ctl p-b64wrap 2>&1)
echo "$o" | sed 's/^/    /'
expect "control: line-wrapped base64 of another text, forwarded: 200" "f-b64wrap-ctl 200" "$o"
expect "F9: the secret's base64 wrapped at 76 with CRLF (MIME), forwarded: 403" "f-b64wrap 403" "$o"
expect "control: line-wrapped base64 of another text, proxied: 200" "p-b64wrap-ctl 200" "$o"
expect "F9: the secret's base64 wrapped at 64 with LF (PEM), proxied: 403" "p-b64wrap 403" "$o"
python3 - "$T/up.log" <<'PY' && ok "F9: the wrapped secret reached the upstream on neither route (the proxied body cut at 0 bytes)" || bad "F9: a wrapped secret reached the upstream: $(grep b64wrap "$T/up.log")"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if "b64wrap" in l]
assert not [r for r in recs if r["path"] == "/echo/f-b64wrap"], recs
assert all(r["body_length"] == 0 for r in recs if r["path"] == "/echo/p-b64wrap"), recs
assert [r for r in recs if r["path"] == "/echo/p-b64wrap-ctl" and r["body_length"] > 0], recs
PY
# F11 and F12 on the forwarder.
o=$(sb -- /usr/bin/python3 rt7.py "$HP" "$P" found.txt f-xfwd f-http10 f-pipeline 2>&1)
echo "$o" | sed 's/^/    /'
expect "F11: a request with X-Forwarded-*, Forwarded and override headers: forwarded (200)" "f-xfwd 200" "$o"
expect "F12: an HTTP/1.0 POST with a body and no Content-Length: 411 (was sent on with Content-Length: 0)" "f-http10 411" "$o"
expect "F12: a request followed by pipelined bytes: the answer is read, no reset" "f-pipeline 200" "$o"
python3 - "$T/up.log" <<'PY' && ok "F11: the upstream saw none of the routing or override headers, the tool's other headers kept" || bad "F11: routing/override headers reached the upstream: $(grep f-xfwd "$T/up.log")"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if '"/echo/f-xfwd"' in l][0]
h = {k.lower(): v for k, v in r["headers"].items()}
assert h.get("x-kept") == "yes", h
for k in ("x-forwarded-host", "x-forwarded-for", "forwarded", "x-http-method-override", "x-original-url"):
    assert k not in h, (k, h)
PY
grep -q '"/echo/f-http10"' "$T/up.log" && bad "F12: the HTTP/1.0 request without a length reached the upstream" || ok "F12: the HTTP/1.0 request without a length did not reach the upstream"
sleep 0.5
grep -qF -e "$SECRET" -e "$HEX" "$T/up.log" && bad "F2: the secret (raw or hex) reached the upstream" || ok "F2: neither the secret nor its hex form reached the upstream"
grep -qiF -e "$SECRET" -e "$HEX" "$T/audit.log" "$T/daemon.out" && bad "F3: the secret (raw or hex) is in the audit log or an alert: $(grep -ciF -e "$SECRET" -e "$HEX" "$T/audit.log") records" || ok "F3: the secret (raw or hex) is in neither the audit log nor the alerts"
for check in F3 F8 F10; do
        /usr/bin/python3 - "$T/audit.log" "$T/daemon.out" "$check" <<'PY' && ok "$check: records and alerts (F3: leak refusals name the secret and form, never the tool's method or host; F8: a leak alert after an egress_denied one; F10: proxy.done carries the sandbox)" || bad "$check: records and alerts"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
check = sys.argv[3]
sids = {}
for r in recs:
    if r.get("type") == "sandbox_close":
        for c in ("p-hdrname", "c-hexlabel", "f-leak", "p-control"):
            if c in r.get("cmd", ""):
                sids[c] = r["id"]
if check == "F3":
    # the leak refusals name the secret and the form, no method or host of the tool's
    door = [r for r in recs if r.get("sandbox") == sids["p-hdrname"] and r.get("route") == "sandbox.leak"]
    assert len(door) >= 4 and all(r["leak"]["secret"] == "ghtok" and r["method"] == "-" for r in door), door
    where = {r["leak"]["where"] for r in door}
    assert "method" in where and any(w.startswith("header name") for w in where), where
    conn = [r for r in recs if r.get("type") == "egress" and r.get("sandbox") == sids["c-hexlabel"] and "leak" in r]
    assert len(conn) == 3 and all(r["host"] == "-" for r in conn), conn
    assert {r["leak"]["form"] for r in conn} >= {"hex"}, conn
if check == "F8":
    # that sandbox raised egress_denied first, then its leak alert
    out = open(sys.argv[2]).read().splitlines()
    a = [l for l in out if sids["f-leak"] in l and "ALERT" in l]
    assert len(a) == 2 and "ALERT egress_denied" in a[0] and "ALERT leak" in a[1], a
    close = [r for r in recs if r.get("type") == "sandbox_close" and r["id"] == sids["f-leak"]][0]
    assert close["leaks"] == 1 and close["refused"] == 2, close
if check == "F10":
    # proxy.done of a sandbox's request: socket sandbox, its id
    done = [r for r in recs if r.get("route") == "proxy.done" and r.get("path") == "/echo/p-control"]
    assert done and all(r["socket"] == "sandbox" and r.get("sandbox") == sids["p-control"] for r in done), done
PY
done

# F4: one user's held bodies (two sandboxes, 80 connections) do not take the
# others' share: bodies are charged as held, a user at most a quarter.
for mode in hold-fwd-chunked hold-fwd-cl hold-proxy-chunked; do
        (sb --proxy api=env:UP -- env HOLD_S=10 /usr/bin/python3 rt7.py "$HP" "$P" found.txt $mode 40 >"$T/$mode.1" 2>&1 &
         sb --proxy api=env:UP -- env HOLD_S=10 /usr/bin/python3 rt7.py "$HP" "$P" found.txt $mode 40 >"$T/$mode.2" 2>&1 &
         wait) &
        HOLDPID=$!
        sleep 4.5
        o=$(sb2 --proxy api=env:UP -- /usr/bin/python3 rt7.py "$HP" "$P" nothing.txt v-post v-ppost v-post v-ppost 2>&1)
        echo "    $mode: $(cat "$T/$mode.1" "$T/$mode.2" | tr '\n' ' ') victim: $(echo $o | tr '\n' ' ')"
        n=$(echo "$o" | grep -c ' 200$')
        [ "$n" = 4 ] && ok "F4 ($mode): another user's sandbox POSTs go through (4/4) while one user holds 80 bodies" || bad "F4 ($mode): the other user's POSTs: $o"
        wait $HOLDPID
done
h=$(cat "$T/hold-fwd-cl.1" "$T/hold-fwd-cl.2" | awk '/^held/ {s += $2} END {print s + 0}')
[ "$h" -le 17 ] && ok "F4: one user holds at most a quarter of the forwarder's budget ($h bodies of 1 MiB held)" || bad "F4: one user held $h bodies of 1 MiB"

# F7: forwarder and tunnel refusals share the uid's budget of recorded
# refusals (--refusals-recorded 150 here): past it, 429 and not recorded.
o=$(sb2 -- /usr/bin/python3 rt7.py "$HP" "$P" nothing.txt flood 300 2>&1)
echo "    $o"
case "$o" in *"403="*"429="*) ok "F7: a flood of refused CONNECTs: 403 up to the budget, then 429" ;; *) bad "F7: $o" ;; esac
sleep 0.5
/usr/bin/python3 - "$T/audit.log" <<'PY' && ok "F7: the flood wrote at most the budget's records and one refusals.quiet" || bad "F7: records"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
sid = [r for r in recs if r.get("type") == "sandbox_close" and "flood" in r.get("cmd", "")][0]["id"]
deny = [r for r in recs if r.get("type") == "egress" and r.get("sandbox") == sid]
assert 100 <= len(deny) <= 150, len(deny)
assert [r for r in recs if r.get("route") == "refusals.quiet" and r.get("uid") == 61916], "no refusals.quiet"
PY
wait $TRICKLEPID
o=$(cat "$T/trickle.out")
case "$o" in "trickle cut after "6[0-9]" s") ok "F4: a held --proxy upload trickling a chunk every 5 s is cut at 60 s ($o)" ;; *) bad "F4: the trickling upload: $o" ;; esac
grep -q '"path":"/echo/trickle".*within 60 s' "$T/audit.log" && ok "F4: the cut upload is recorded (proxy.done, why)" || bad "F4: no record of the cut upload"

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
