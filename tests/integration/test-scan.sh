#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The leak scanner end to end: the real daemon, tools under real uids
# (61500-61549), /v1/scan with and without a grant, the scan and redact
# CLIs (redact over many rounds, exact at round boundaries), on_leak revoke
# (tokens refused afterwards, the secret compromised until a new version),
# alert and rotate, canaries (sighting, token request, policy refusal),
# token sightings named by accessor, body caps, and no value in any output.
# Needs root (to switch uids); exits 77 naming what is missing otherwise.
set -uo pipefail

CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (to run clients under other uids)"; exit 77; }
for t in curl /usr/bin/python3 setpriv; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done

T=$(mktemp -d /tmp/cb-scan-test.XXXXXX)
chmod 0755 "$T"
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }
expect_not() { case "$3" in *"$2"*) bad "$1: did not want '$2' in '$3'" ;; *) ok "$1" ;; esac; }
PYBIN=/usr/bin/python3
US=61500 UT=61501 UN=61502   # scanner, token holder, no grant
as() { local u=$1; shift; timeout 60 setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }
hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
field() { "$PYBIN" -c "import json,sys; print(json.load(sys.stdin).get('$1',''))"; }

DEMO="demo-$(hex 12)" DEMO2="demo-v2-$(hex 12)" ALERTY="alerty-$(hex 10)" ROT="rot-$(hex 10)"
CANARY="AKIA$(hex 8 | tr a-f A-F)" TINY="short1"

"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": {
    "scanner": {"uid": $US},
    "holder":  {"uid": $UT},
    "nogrant": {"uid": $UN}
  },
  "grants": [
    {"client": "scanner", "secret": "*", "use": ["scan"]},
    {"client": "holder", "secret": "demo", "use": ["redeem"]},
    {"client": "holder", "secret": "alerty", "use": ["redeem"]},
    {"client": "holder", "secret": "*", "use": ["proxy"]}
  ],
  "admins": {"uids": [0]},
  "secrets": {
    "alerty": {"on_leak": "alert"},
    "rot": {"on_leak": "rotate"},
    "canary-aws": {"canary": true}
  } }
JSON
chmod 0644 "$T/policy.json"

# A grant naming a canary is refused at load, with its location.
sed 's/"secret": "alerty", "use": \["redeem"\]/"secret": "canary-aws", "use": ["redeem"]/' "$T/policy.json" >"$T/bad.json"
chmod 0644 "$T/bad.json"
expect "policy: a grant naming a canary is refused" "grants[2].secret: \"canary-aws\" is a canary" \
        "$("$DAEMON" --check-policy "$T/bad.json" 2>&1)"
printf '{"secrets": {"x": {"on_leak": "explode"}}}' >"$T/bad2.json"; chmod 0644 "$T/bad2.json"
expect "policy: bad on_leak located" "secrets.x.on_leak" "$("$DAEMON" --check-policy "$T/bad2.json" 2>&1)"

start_daemon() {
        rm -f "$T/run/admin.sock"
        "$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
                --audit-log "$T/audit.log" >>"$T/daemon.out" 2>&1 &
        PID=$!
        for _ in $(seq 50); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
}
start_daemon
TS=$T/run/tools.sock AS=$T/run/admin.sock
export CREDBROKER_SOCKET=$TS CREDBROKER_ADMIN_SOCKET=$AS
for n in demo alerty rot canary-aws tiny; do
        case $n in demo) v=$DEMO ;; alerty) v=$ALERTY ;; rot) v=$ROT ;; canary-aws) v=$CANARY ;; tiny) v=$TINY ;; esac
        printf '%s' "$v" | "$CLI" put "$n" >/dev/null || bad "put $n"
done

# --- who may scan
expect "no scan grant: refused" "no grant lets uid $UN" \
        "$(as $UN curl -s --unix-socket "$TS" -X POST --data-binary 'hello' http://x/v1/scan)"
expect "scan grant: clean text" '"findings":[]' \
        "$(as $US curl -s --unix-socket "$TS" -X POST --data-binary 'hello world' http://x/v1/scan)"
expect "admin on admin.sock may scan" '"findings":[]' \
        "$(curl -s --unix-socket "$AS" -X POST --data-binary 'hello world' http://x/v1/scan)"
expect "redact needs a grant too" "no grant lets uid $UN" \
        "$(as $UN curl -s --unix-socket "$TS" -X POST --data-binary 'hello' http://x/v1/redact)"
expect "scan is POST only" "method_not_allowed" "$(as $US curl -s --unix-socket "$TS" http://x/v1/scan)"
printf 'nothing to see here\n' >"$T/clean.txt"; chmod 0644 "$T/clean.txt"
out=$(as $US "$CLI" scan "$T/clean.txt"); rc=$?
expect "scan CLI: clean input exits 0" "rc=0" "rc=$rc $out"

# --- status: scannable or not
st=$("$CLI" status --json)
expect "status: short secret not scannable" '"not_scannable":["tiny"]' "$st"

# --- token sighting: named by accessor, then revoked
resp=$(as $UT curl -s --unix-socket "$TS" -X POST -d '{"secret":"demo","use":"redeem"}' http://x/v1/token)
tok=$(echo "$resp" | field token) acc=$(echo "$resp" | field accessor)
case "$tok" in cbt_*) ok "holder gets a token" ;; *) bad "holder gets a token: $resp" ;; esac
printf 'log line: Authorization: Bearer %s\n' "$tok" >"$T/tok.txt"; chmod 0644 "$T/tok.txt"
out=$(as $US "$CLI" scan "$T/tok.txt"); rc=$?
expect "token sighting exits 1" "rc=1" "rc=$rc"
expect "token sighting named by accessor (no offset on tools.sock)" "$acc	token	-" "$out"
expect_not "token never printed" "$tok" "$out"
expect "a sighted token is revoked" "unknown or revoked" \
        "$(as $UT curl -s --unix-socket "$TS" -X POST -d "{\"token\":\"$tok\"}" http://x/v1/redeem)"

# --- on_leak revoke (the default): tokens revoked, secret compromised
tok=$(as $UT curl -s --unix-socket "$TS" -X POST -d '{"secret":"demo","use":"redeem"}' http://x/v1/token | field token)
b64=$(printf 'user:%s' "$DEMO" | base64 -w0)
printf 'curl -H "Authorization: Basic %s" https://api\n' "$b64" >"$T/leak.txt"; chmod 0644 "$T/leak.txt"
out=$(as $US "$CLI" scan - <"$T/leak.txt"); rc=$?
expect "scan CLI (stdin): base64 of user:secret found" "demo	base64	" "$out"
expect "scan CLI: exit 1 on a sighting" "rc=1" "rc=$rc"
expect_not "scan CLI never prints a value" "$DEMO" "$out"
expect "after a leak the old token is refused" "unknown or revoked" \
        "$(as $UT curl -s --unix-socket "$TS" -X POST -d "{\"token\":\"$tok\"}" http://x/v1/redeem)"
expect "no new token for a compromised secret" "compromised" \
        "$(as $UT curl -s --unix-socket "$TS" -X POST -d '{"secret":"demo","use":"redeem"}' http://x/v1/token)"
expect "status lists it compromised" '"compromised":["demo"]' "$("$CLI" status --json)"
expect "list marks it compromised" '"compromised":true' "$(curl -s --unix-socket "$AS" http://x/v1/admin/secrets)"
expect "status CLI names it" "compromised (leaked, not yet rotated): demo" "$("$CLI" status)"
expect "list CLI marks it" "[COMPROMISED" "$("$CLI" list | grep '^demo')"
expect "leak alert on stderr" "ALERT leak" "$(grep '"secret":"demo"' "$T/daemon.out")"
expect "leak audit record" '"decision":"leak"' "$(grep '"secret":"demo"' "$T/audit.log" | grep '"action":"revoke"')"
m=$("$CLI" metrics)
expect "metrics: the value's sighting counted" 'credbroker_leaks_total{secret="demo",kind="value"} ' "$m"
expect "metrics: the token's sighting counted" 'credbroker_leaks_total{secret="",kind="token"} ' "$m"
expect "metrics: and its alert" 'credbroker_alerts_total{kind="leak"} ' "$m"
kill "$PID"; wait "$PID" 2>/dev/null; start_daemon
expect "compromised survives a restart" "compromised" \
        "$(as $UT curl -s --unix-socket "$TS" -X POST -d '{"secret":"demo","use":"redeem"}' http://x/v1/token)"
printf '%s' "$DEMO2" | "$CLI" put demo >/dev/null
tok=$(as $UT curl -s --unix-socket "$TS" -X POST -d '{"secret":"demo","use":"redeem"}' http://x/v1/token | field token)
case "$tok" in cbt_*) ok "a new version lifts the compromised mark" ;; *) bad "a new version lifts the compromised mark: $tok" ;; esac
expect "old version (previous, still live) is still scanned" "demo	raw" \
        "$(printf 'x %s y' "$DEMO" | as $US "$CLI" scan)"

# --- on_leak alert: tokens stay, an alert is raised
atok=$(as $UT curl -s --unix-socket "$TS" -X POST -d '{"secret":"alerty","use":"redeem"}' http://x/v1/token | field token)
printf '{"password": "%s"}' "$ALERTY" | as $US "$CLI" scan >/dev/null
expect "on_leak alert: the token still works" "\"value\":\"$ALERTY\"" \
        "$(as $UT curl -s --unix-socket "$TS" -X POST -d "{\"token\":\"$atok\"}" http://x/v1/redeem)"
expect "on_leak alert: alert raised" '"action":"alert"' "$(grep '"secret":"alerty"' "$T/daemon.out")"

# --- on_leak rotate: the rotation hook is asked (falls back to revoke when absent)
printf 'x=%s' "$(printf '%s' "$ROT" | "$PYBIN" -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.stdin.read(), safe=""))')" \
        | as $US "$CLI" scan >/dev/null
line=$(grep '"secret":"rot"' "$T/daemon.out")
case "$line" in *'"action":"rotate"'* | *'"rotate_failed"'*) ok "on_leak rotate: the rotation hook asked" ;;
        *) bad "on_leak rotate: the rotation hook asked: $line" ;; esac

# --- canaries: any sighting or use alerts; never granted, and refused like
# a name the caller holds no grant for (a canary cannot be told apart)
printf 'aws_access_key_id=%s\n' "$CANARY" | as $US "$CLI" scan >/dev/null
expect "canary sighting: canary alert" "ALERT canary" "$(grep '"secret":"canary-aws"' "$T/daemon.out")"
expect "canary sighting: audit decision canary" '"decision":"canary"' "$(grep canary-aws "$T/audit.log")"
expect "canary token request refused as any ungranted name" "no grant lets uid $UT" \
        "$(as $UT curl -s --unix-socket "$TS" -X POST -d '{"secret":"canary-aws","use":"proxy"}' http://x/v1/token)"
expect "canary token request: alert" '"what":"token_request"' "$(grep '"secret":"canary-aws"' "$T/daemon.out")"
for _ in 1 2 3 4 5; do as $UT curl -s --unix-socket "$TS" -X POST -d '{"secret":"canary-aws"}' http://x/v1/token >/dev/null; done
expect "canary token requests: one alert per uid and route per cooldown" "n=1" \
        "n=$(grep 'ALERT canary' "$T/daemon.out" | grep -c '"what":"token_request","secret":"canary-aws","route":"token"')"
expect "canary token requests: each one audited" "n=6" "n=$(grep -c '"what":"token_request".*"decision":"canary"\|"decision":"canary".*"what":"token_request"' "$T/audit.log")"
ptok=$(as $UT curl -s --unix-socket "$TS" -X POST -d '{"secret":"alerty","use":"proxy"}' http://x/v1/token | field token)
expect "canary named in a proxy request refused as any other secret's" "the token is for another secret" \
        "$(as $UT curl -s --unix-socket "$TS" -H "Authorization: Bearer $ptok" http://x/v1/proxy/canary-aws/v1/x)"
expect "canary named in a proxy request: alert" '"route":"proxy"' "$(grep '"secret":"canary-aws"' "$T/daemon.out")"

# --- redact: the CLI, as a tool with a scan grant; exact over many rounds
"$PYBIN" - "$T" "$DEMO2" "$ALERTY" <<'PY'
import base64, json, os, random, sys
t, demo, alerty = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
r = random.Random(1)
words = [b'alpha', b'beta', b'gamma', b'token', b'key', b'\n']
out = bytearray()
# about 5 MB; the value sits across the 1 MiB round boundaries too
for mark in (1048576, 2 * 1048576 - 7, 3 * 1048576 + 3, 4 * 1048576 - 20):
    while len(out) < mark - len(demo) // 2:
        out += r.choice(words) + b' '
    out += demo + b' '
while len(out) < 5 * 1048576:
    out += r.choice(words) + b' '
out += b'json ' + json.dumps(alerty.decode()).encode() + b' b64 ' + base64.b64encode(b'u:' + alerty) + b'\n'
open(t + '/big.txt', 'wb').write(out)
want = bytes(out).replace(demo, b'[REDACTED:demo]').replace(alerty, b'[REDACTED:alerty]')
open(t + '/big.want.prefix', 'wb').write(want[:want.rindex(b' b64 ')])
PY
chmod 0644 "$T/big.txt"
as $US "$CLI" redact <"$T/big.txt" >"$T/big.out" 2>"$T/big.err"; rc=$?
expect "redact CLI: exit 1 when something was redacted" "rc=1" "rc=$rc"
expect "redact CLI: names on stderr" "redacted: demo,alerty" "$(cat "$T/big.err")"
n=$(grep -c "$DEMO2" "$T/big.out"); expect "redact: no value left" "count=0" "count=$n"
n=$(grep -o '\[REDACTED:demo\]' "$T/big.out" | wc -l); expect "redact: every occurrence marked (4)" "marks=4" "marks=$n"
if cmp -s <(head -c "$(stat -c %s "$T/big.want.prefix")" "$T/big.out") "$T/big.want.prefix"; then
        ok "redact: output exact across 1 MiB rounds"
else
        bad "redact: output differs from the expected text"
fi
expect "redact: base64 form inside user:secret redacted" "[REDACTED:alerty]" "$(tail -c 200 "$T/big.out")"
out=$(printf 'plain text\n' | as $US "$CLI" redact); rc=$?
expect "redact CLI: clean text unchanged, exit 0" "rc=0 plain text" "rc=$rc $out"
expect "redact CLI: refused without a grant (exit 7)" "rc=7" \
        "$(printf 'x' | as $UN "$CLI" redact >/dev/null 2>&1; echo "rc=$?")"

# --- scan offsets count from the first byte of a large streamed input
"$PYBIN" -c "
import sys; pad = b'x' * (20 * 1048576 + 13); sys.stdout.buffer.write(pad + sys.argv[1].encode() + b'\n')" "$DEMO2" >"$T/huge.txt"
chmod 0644 "$T/huge.txt"
expect "scan --admin: 20 MiB chunked from stdin, offset exact" "demo	raw	$((20 * 1048576 + 13))" \
        "$("$CLI" scan --admin <"$T/huge.txt")"

# --- caps
head -c $((3 * 1048576)) /dev/zero >"$T/3m"
expect "one redact round is capped" "payload_too_large" \
        "$(curl -s --unix-socket "$AS" -X POST --data-binary @"$T/3m" http://x/v1/redact)"
expect "bad redact header" "bad_request" \
        "$(curl -s --unix-socket "$AS" -X POST -H 'X-Credbroker-Skip: -1' --data-binary 'x' http://x/v1/redact)"

# --- examples/tool-output-guard.sh, as a harness would run it
GUARD=${CB_SRCDIR:?}/examples/tool-output-guard.sh
out=$(as $US env CREDBROKER="$CLI" bash "$GUARD" -- printf 'all fine\n' 2>/dev/null); rc=$?
expect "guard: clean output passes, exit 0" "rc=0 all fine" "rc=$rc $out"
out=$(as $US env CREDBROKER="$CLI" bash "$GUARD" -- printf 'oops %s\n' "$DEMO2" 2>"$T/guard.err"); rc=$?
expect "guard: a hit is withheld, exit 3" "rc=3 [tool output withheld by credbroker" "rc=$rc $out"
expect_not "guard: no value passes" "$DEMO2" "$out"
expect "guard: operator notice on stderr" "LEAK in tool output: demo" "$(cat "$T/guard.err")"
out=$(printf 'oops %s\n' "$DEMO2" | as $US env CREDBROKER="$CLI" bash "$GUARD" --redacted 2>/dev/null); rc=$?
expect "guard --redacted: the redacted text passes" "rc=3 oops [REDACTED:demo]" "rc=$rc $out"
out=$(printf 'x\n' | as $UN env CREDBROKER="$CLI" bash "$GUARD" 2>/dev/null); rc=$?
expect "guard: fails closed when the scan is refused" "rc=2 [tool output withheld: the credential leak check" "rc=$rc $out"

# --- bounds: redact output amplification, oversized bodies, concurrent jobs
AMPV="amp-$(hex 3)" LONGN="amp$(printf 'n%.0s' $(seq 120))" BIGV="big413-$(hex 10)"
printf '%s' "$AMPV" | "$CLI" put "$LONGN" >/dev/null || bad "put $LONGN"
printf '%s' "$BIGV" | "$CLI" put big413 >/dev/null || bad "put big413"
"$PYBIN" -c "import sys; sys.stdout.write(('$AMPV ' * 200000)[:2000000])" >"$T/amp.txt"; chmod 0644 "$T/amp.txt"
out=$(as $US curl -s -w ' %{http_code} %{size_download}' --unix-socket "$TS" -X POST --data-binary @"$T/amp.txt" \
        -H 'X-Credbroker-Final: 1' http://x/v1/redact | tail -c 400)
expect "redact: output past 2x input is refused 413" "more than twice the input" "$out"
expect "redact: amplification answered 413, not megabytes" " 413 " "$out"
"$PYBIN" -c "import sys; sys.stdout.write('$BIGV ' + 'x' * 3000000)" >"$T/big.txt"; chmod 0644 "$T/big.txt"
expect "redact: an oversized round is 413" "payload_too_large" \
        "$(as $US curl -s --unix-socket "$TS" -X POST --data-binary @"$T/big.txt" http://x/v1/redact)"
expect "the leak in a 413 body is still answered (compromised)" "compromised" \
        "$(curl -s --unix-socket "$AS" http://x/v1/admin/secrets | tr '}' '\n' | grep '"big413"')"
out=$(as $US "$PYBIN" - "$TS" <<'PY'
import socket, sys, time
def opener(n):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    s.sendall(b'POST /v1/redact HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nabc' % n)
    return s
held = [opener(1000) for _ in range(4)]
time.sleep(0.5)
s = opener(3); s.shutdown(socket.SHUT_WR); s.settimeout(10)
data = b''
while True:
    c = s.recv(65536)
    if not c: break
    data += c
print(data.split(b'\r\n')[0].decode(), data.split(b'\r\n\r\n', 1)[-1].decode())
for h in held: h.close()
PY
)
expect "a 5th concurrent scan/redact of one uid: 429" "429" "$out"
expect "  ... saying why" "scan/redact requests in progress" "$out"
sleep 0.5
expect "the slots come back when those requests end" '"findings":[]' \
        "$(as $US curl -s --unix-socket "$TS" -X POST --data-binary 'hello world' http://x/v1/scan)"

# --- no value anywhere it should not be
for v in "$DEMO" "$DEMO2" "$ALERTY" "$ROT" "$CANARY" "$BIGV"; do
        if grep -qF "$v" "$T/audit.log" "$T/daemon.out"; then bad "a value in the audit log or daemon output"; fi
done
ok "no value in the audit log or daemon output"
kill -0 "$PID" 2>/dev/null && ok "daemon still up" || bad "daemon died"
kill "$PID"; wait "$PID" 2>/dev/null
echo '{"compromised": []}' >"$T/state/leaks.json"
expect "a corrupt leaks.json stops the daemon (fail closed)" "refusing to start" \
        "$(timeout 10 "$DAEMON" --state-dir "$T/state" --run-dir "$T/run2" --policy "$T/policy.json" \
                --unlock "keyfile:$T/key" 2>&1)"
PID=""


# Every line the daemon wrote to stderr: RFC 3339 time, pid, level (log.h).
. "$(dirname "$0")/log-lines.sh"
bl=$(log_lines_bad "$T/daemon.out")
[ -z "$bl" ] && ok "every daemon stderr line carries an RFC 3339 time and a level" ||
        bad "daemon stderr lines without time or level: $(head -n 5 <<<"$bl")"
echo "$fails failure(s)"
[ "$fails" = 0 ]
