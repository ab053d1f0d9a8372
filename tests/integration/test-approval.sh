#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The approval gate end to end (issue 6 item 5): the real daemon, requesters
# under real uids (setpriv) — the credbroker CLI (libcredbroker waiting
# transparently) and a raw python client speaking the polling protocol —
# and an operator on admin.sock.  Approve, deny and timeout paths; who may
# approve, who may collect; the audit names the approver and the requester;
# the pending caps.  Needs root (to switch uids); exits 77 naming what is
# missing otherwise.
set -uo pipefail

CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (to run clients under other uids)"; exit 77; }
for t in curl /usr/bin/python3 setpriv timeout; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done

T=$(mktemp -d /tmp/cba-test.XXXXXX)
chmod 0755 "$T"
PID=
BG=()
cleanup() {
        for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
        [ -n "$PID" ] && kill "$PID" 2>/dev/null
        wait 2>/dev/null
        rm -rf "$T"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
# expect NAME WANT_SUBSTRING GOT
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }
expect_not() { case "$3" in *"$2"*) bad "$1: did not want '$2', got '$3'" ;; *) ok "$1" ;; esac; }

VALUE="sk-approval-VALUE-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PYBIN=/usr/bin/python3
CLIX=$(readlink -f "$CLI")
U1=61650 U2=61651 U3=61652 U4=61653
TIMEOUT=4

"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
# U1: the CLI and python, both under approval; U2: another uid with the
# same kind of grant; U3: an admin that is also a requester; U4: the cap.
cat >"$T/policy.json" <<JSON
{ "clients": {
    "tool":  {"uid": $U1},
    "other": {"uid": $U2},
    "selfadmin": {"uid": $U3},
    "greedy": {"uid": $U4}
  },
  "grants": [
    {"client": "tool", "secret": "demo", "use": ["redeem", "proxy"], "approval": true, "max_ttl": 120},
    {"client": "other", "secret": "demo", "use": ["redeem"], "approval": true},
    {"client": "selfadmin", "secret": "demo", "use": ["redeem"], "approval": true},
    {"client": "greedy", "secret": "demo", "use": ["redeem"], "approval": true},
    {"client": "tool", "secret": "leaky", "use": ["redeem"], "approval": true}
  ],
  "admins": {"uids": [0, $U3]} }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --audit-log "$T/audit.log" --approval-timeout $TIMEOUT >"$T/daemon.out" 2>&1 &
PID=$!
for _ in $(seq 50); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
TS=$T/run/tools.sock AS=$T/run/admin.sock
export CREDBROKER_SOCKET=$TS CREDBROKER_ADMIN_SOCKET=$AS

as() { local u=$1; shift; timeout 60 setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }
# Only as `as_bg ... &` (the subshell execs): $! is then the requester itself.
as_bg() { local u=$1; shift; exec setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }
jget() { "$PYBIN" -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

printf '{"name":"demo","value":"%s"}' "$VALUE" >"$T/put.json"
expect "admin put" '"version":1' "$(curl -s --unix-socket "$AS" -X POST --data-binary @"$T/put.json" http://x/v1/admin/secrets)"
rm -f "$T/put.json"

# A raw client of the protocol: POST /v1/token, then (same process) poll
# GET /v1/approvals/ID; writes each answer as a line to OUT; with "redeem"
# redeems the token it collects.  Usage: raw.py SOCKET OUT BODY [redeem]
cat >"$T/raw.py" <<'PY'
import json, socket, sys, time
sock, out, body = sys.argv[1], sys.argv[2], sys.argv[3]
def call(method, path, b=None):
    s = socket.socket(socket.AF_UNIX); s.connect(sock)
    b = b.encode() if b else b''
    s.sendall(b'%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' % (method.encode(), path.encode(), len(b)) + b)
    data = b''
    while True:
        c = s.recv(65536)
        if not c: break
        data += c
    head, _, rest = data.decode().partition('\r\n\r\n')
    return int(head.split()[1]), rest
def log(*a):
    with open(out, 'a') as f: f.write(' '.join(str(x) for x in a) + '\n')
st, r = call('POST', '/v1/token', body)
log(st, r)
if st != 202: sys.exit(0)
aid = json.loads(r)['approval_id']
polls = 0
while st == 202 and polls < 200:
    time.sleep(0.25); polls += 1
    st, r = call('GET', '/v1/approvals/' + aid)
    if polls == 1 or st != 202: log(st, r)
if st == 201 and len(sys.argv) > 4:
    tok = json.loads(r)['token']
    st2, r2 = call('POST', '/v1/redeem', json.dumps({'token': tok}))
    log('redeem', st2, r2)
    st3, r3 = call('GET', '/v1/approvals/' + aid)
    log('again', st3, r3)
PY
chmod 0644 "$T/raw.py"
# wait_for FILE PATTERN: up to 10 s for PATTERN to appear in FILE.
wait_for() { for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# The approval ID the CLI announced on stderr (file $1).
cli_id() { sed -n 's/.*waiting for operator approval \([0-9a-f]*\) .*/\1/p' "$1" | head -n 1; }
raw_id() { head -n 1 "$1" | sed -n 's/.*"approval_id":"\([0-9a-f]*\)".*/\1/p'; }
newfile() { : >"$1"; chmod 0666 "$1"; }

# --- approve path, CLI: `credbroker fetch` waits, then prints the value
newfile "$T/f1.out"; newfile "$T/f1.err"
as_bg $U1 "$CLI" fetch demo >"$T/f1.out" 2>"$T/f1.err" &
f1=$!; BG+=($f1)
wait_for "$T/f1.err" "waiting for operator approval" || bad "CLI announces that it waits for approval"
ID1=$(cli_id "$T/f1.err")
expect "CLI says what it waits for, with the ID" "waiting for operator approval $ID1 (up to $TIMEOUT s)" "$(cat "$T/f1.err")"
expect_not "CLI does not hand the tool (or its model) the approve command" "credbroker approve" "$(cat "$T/f1.err")"
expect "daemon tells the operator on stderr" "approval needed: $ID1: uid $U1" "$(cat "$T/daemon.out")"
expect "metrics: the held request is a pending approval" "credbroker_approvals_pending 1
" "$("$CLI" metrics)"
list=$("$CLI" approvals)
expect "approvals lists the request" "$ID1  pending" "$list"
expect "approvals shows the requester's uid and pid" "uid $U1 gid $U1 pid $f1" "$(echo "$list" | tr -s ' ')"
expect "approvals shows the requester's executable" "exe $CLIX" "$list"
expect "approvals shows its SHA-256" "sha256 $(sha256sum "$CLIX" | cut -d' ' -f1)" "$list"
expect "approvals shows secret, use and client" "secret demo (redeem, ttl 10s, bound to exe) for client tool" "$list"
js=$("$CLI" approvals --json)
expect "approvals --json" "\"id\":\"$ID1\"" "$js"
expect "approvals --json: requester exe" "\"exe\":\"$CLIX\"" "$js"
sleep 1.2
expect "still pending while undecided (the fetch waits)" "pending" "$(kill -0 $f1 2>/dev/null && echo pending)"
expect "approve ID (short form)" "approved $ID1: 'demo' for uid $U1 pid $f1" "$("$CLI" approve "${ID1:0:8}" 2>&1)"
wait $f1; rc=$?
expect "approved fetch exits 0" "rc=0" "rc=$rc"
[ "$(cat "$T/f1.out")" = "$VALUE" ] && ok "approved fetch prints the value" || bad "approved fetch prints the value: got '$(head -c 80 "$T/f1.out")'"
expect "approving twice is refused" "no approval request" "$("$CLI" approve "$ID1" 2>&1)"

# --- approve path, raw protocol: 202 pending, polls, 201 token, redeem, once only
newfile "$T/r1.out"
as_bg $U1 "$PYBIN" "$T/raw.py" "$TS" "$T/r1.out" '{"secret":"demo","use":"redeem","ttl":30}' redeem &
r1=$!; BG+=($r1)
wait_for "$T/r1.out" '"status":"pending"' || bad "raw client: 202 pending"
RID=$(raw_id "$T/r1.out")
expect "POST /v1/token answers 202 with an ID and retry_after" '"retry_after":1' "$(head -n 1 "$T/r1.out")"
expect "POST /v1/token: 202" "202 " "$(head -n 1 "$T/r1.out")"
[ ${#RID} = 32 ] && ok "approval ID is 32 hex digits" || bad "approval ID is 32 hex digits: '$RID'"
for _ in $(seq 100); do [ "$(wc -l <"$T/r1.out")" -ge 2 ] && break; sleep 0.1; done
expect "the requester polls: still 202 pending" "202 " "$(sed -n 2p "$T/r1.out")"
# Others cannot collect it: another uid, and the same uid from another process.
expect "another uid cannot poll the request" '"not_found"' "$(as $U2 curl -s --unix-socket "$TS" "http://x/v1/approvals/$RID")"
expect "same uid, another process cannot poll it" '"not_found"' "$(as $U1 curl -s --unix-socket "$TS" "http://x/v1/approvals/$RID")"
expect "root on tools.sock cannot poll it either" '"not_found"' "$(curl -s --unix-socket "$TS" "http://x/v1/approvals/$RID")"
expect "approve on admin.sock (raw route)" '"state":"approved"' "$(curl -s --unix-socket "$AS" -X POST "http://x/v1/admin/approvals/$RID/approve")"
wait $r1
expect "the requester collects a token (201)" '201 {"token":"cbt_' "$(grep '^201' "$T/r1.out")"
expect "the collected token expires as asked (ttl 30)" '"expires_in":30' "$(grep '^201' "$T/r1.out")"
expect "the token redeems in the requesting process" "redeem 200 " "$(grep '^redeem' "$T/r1.out")"
expect "the token redeems to the value" "\"value\":\"$VALUE\"" "$(grep '^redeem' "$T/r1.out")"
expect "a result is handed out once" "again 404 " "$(grep '^again' "$T/r1.out")"
expect "the ID is gone after collection" '"not_found"' "$(curl -s --unix-socket "$AS" -X POST "http://x/v1/admin/approvals/$RID/deny")"

# --- deny path: the CLI reports a clear refusal (exit 7)
newfile "$T/d.out"; newfile "$T/d.err"
as_bg $U1 "$CLI" token demo >"$T/d.out" 2>"$T/d.err" &
d=$!; BG+=($d)
wait_for "$T/d.err" "waiting for operator approval" || bad "CLI waits (deny path)"
ID2=$(cli_id "$T/d.err")
expect "deny ID" "denied $ID2: 'demo' for uid $U1" "$("$CLI" deny "$ID2")"
wait $d; rc=$?
expect "denied token request exits 7 (denied)" "rc=7" "rc=$rc"
expect "denied token request says so" "was denied by uid 0" "$(cat "$T/d.err")"
[ -s "$T/d.out" ] && bad "denied token request prints nothing on stdout" || ok "denied token request prints nothing on stdout"

# --- timeout path: nobody decides within --approval-timeout
newfile "$T/t.out"; newfile "$T/t.err"
start=$(date +%s)
as $U1 "$CLI" token demo --use proxy >"$T/t.out" 2>"$T/t.err"; rc=$?
took=$(( $(date +%s) - start ))
expect "timed-out request exits 7" "rc=7" "rc=$rc"
expect "timed-out request says so" "was not approved within $TIMEOUT s: denied" "$(cat "$T/t.err")"
[ "$took" -ge $TIMEOUT ] && [ "$took" -le $((TIMEOUT + 6)) ] && ok "timed out after about $TIMEOUT s ($took s)" || bad "timed out after about $TIMEOUT s: took $took s"
expect "the timeout is told on the daemon's stderr" "timed out after $TIMEOUT s: denied" "$(cat "$T/daemon.out")"
ID3=$(cli_id "$T/t.err")
expect "a timed-out request cannot be approved afterwards" "no approval request" "$("$CLI" approve "$ID3" 2>&1)"

# --- who may approve: not a non-admin, not the requester's own uid
newfile "$T/s.out"
as_bg $U3 "$PYBIN" "$T/raw.py" "$TS" "$T/s.out" '{"secret":"demo","use":"redeem"}' &
s=$!; BG+=($s)
wait_for "$T/s.out" '"status":"pending"' || bad "raw client pending (self-approval case)"
SID=$(raw_id "$T/s.out")
expect "non-admin cannot reach admin.sock (socket mode)" "rc=7" "$(as $U2 "$CLI" approve "$SID" >/dev/null 2>&1; echo "rc=$?")"
chmod 0666 "$AS"
expect "non-admin cannot approve (policy)" "not an admin" "$(as $U2 "$CLI" approve "$SID" 2>&1)"
expect "non-admin cannot list approvals (policy)" "not an admin" "$(as $U2 "$CLI" approvals 2>&1)"
expect "an admin cannot approve its own uid's request" "cannot approve its own request" "$(as $U3 "$CLI" approve "$SID" 2>&1)"
expect "approve over tools.sock is not served" "admin.sock only" "$(as $U3 curl -s --unix-socket "$TS" -X POST "http://x/v1/admin/approvals/$SID/approve")"
chmod 0600 "$AS"
expect "still pending after the refused approvals" "$SID  pending" "$("$CLI" approvals)"
"$CLI" deny "$SID" >/dev/null
wait $s
expect "its requester sees the denial" '403 {"error":"approval_denied"' "$(tail -n 1 "$T/s.out")"

# --- a requester that exits abandons its request
newfile "$T/x.err"
as_bg $U1 "$CLI" token demo >/dev/null 2>"$T/x.err" &
x=$!
wait_for "$T/x.err" "waiting for operator approval" || bad "CLI waits (abandon case)"
XID=$(cli_id "$T/x.err")
kill $x; wait $x 2>/dev/null
expect "a request whose requester exited is dropped: approve refused" "no approval request" "$("$CLI" approve "$XID" 2>&1)"

# --- the library: a pending callback that declines to wait gets CB_ERR_PENDING
# (A sanitizer build of the library needs its runtime loaded first.)
PRE=
if [ -n "${CB_LIBCREDBROKER:-}" ] && grep -qa __asan_init "$CB_LIBCREDBROKER"; then
        PRE=$(ldd "$CB_LIBCREDBROKER" | awk '/libasan/ { print $3 }')
        [ -n "$PRE" ] && PRE="$PRE $(ldd "$CB_LIBCREDBROKER" | awk '/libubsan/ { print $3 }')"
fi
if [ -n "${CB_LIBCREDBROKER:-}" ]; then
        res=$(as $U1 env ${PRE:+LD_PRELOAD="$PRE"} ASAN_OPTIONS=detect_leaks=0 "$PYBIN" - "$CB_LIBCREDBROKER" "$TS" <<'PY'
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.cb_client_error.restype = ctypes.c_char_p
c = ctypes.c_void_p()
assert lib.cb_client_new(sys.argv[2].encode(), ctypes.byref(c)) == 0
FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p, ctypes.c_uint, ctypes.c_void_p)
seen = []
def on_pending(aid, timeout, ud):
    seen.append('%s/%d' % (aid.decode(), timeout)); return 1
f = FN(on_pending)
lib.cb_client_on_pending(c, f, None)
tok = ctypes.c_char_p()
r = lib.cb_client_token(c, b"demo", b"redeem", 0, ctypes.byref(tok), None, None)
print('r=%d seen=%s msg=%s' % (r, seen, lib.cb_client_error(c).decode()))
PY
)
        expect "library: the pending callback sees the ID and the timeout" "/$TIMEOUT']" "$res"
        expect "library: declining to wait returns CB_ERR_PENDING (-EINPROGRESS)" "r=-115" "$res"
        expect "library: and says why" "held for approval as" "$res"
else
        bad "CB_LIBCREDBROKER not set (meson test sets it)"
fi

# --- caps: at most 8 held per uid; a retried identical request is not a new one
newfile "$T/cap.out"
as $U4 "$PYBIN" - "$TS" "$T/cap.out" <<'PY'
import json, socket, sys
def call(body):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); b = json.dumps(body).encode()
    s.sendall(b'POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' % len(b) + b)
    d = b''
    while True:
        c = s.recv(65536)
        if not c: break
        d += c
    h, _, r = d.decode().partition('\r\n\r\n')
    return int(h.split()[1]), r
a = call({'secret': 'demo', 'use': 'redeem', 'ttl': 10}); b = call({'secret': 'demo', 'use': 'redeem', 'ttl': 10})
same = json.loads(a[1])['approval_id'] == json.loads(b[1])['approval_id']
codes = [call({'secret': 'demo', 'use': 'redeem', 'ttl': 11 + i})[0] for i in range(7)]
last = call({'secret': 'demo', 'use': 'redeem', 'ttl': 99})
open(sys.argv[2], 'w').write('same=%s codes=%s last=%d %s\n' % (same, codes, last[0], last[1]))
PY
res=$(cat "$T/cap.out")
expect "a retried identical request gets the same ID" "same=True" "$res"
expect "8 requests of one uid are held" "codes=[202, 202, 202, 202, 202, 202, 202]" "$res"
expect "the 9th is refused (429)" "last=429" "$res"
expect "the refusal names the cap" "already has 8 approval requests held" "$res"
# (The requester exited: the sweep drops its requests within a second.)
sleep 1.5
expect "an exited requester's requests are dropped" "no token requests held" "$("$CLI" approvals)"

# --- a secret seen leaked while its request waits: approved, but not issued
LVALUE="sk-leaky-VALUE-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '{"name":"leaky","value":"%s"}' "$LVALUE" >"$T/put.json"
expect "admin put leaky" '"version":1' "$(curl -s --unix-socket "$AS" -X POST --data-binary @"$T/put.json" http://x/v1/admin/secrets)"
rm -f "$T/put.json"
newfile "$T/lk.out"
as_bg $U1 "$PYBIN" "$T/raw.py" "$TS" "$T/lk.out" '{"secret":"leaky","use":"redeem"}' &
lk=$!; BG+=($lk)
wait_for "$T/lk.out" '"status":"pending"' || bad "leaky: 202 pending"
LID=$(raw_id "$T/lk.out")
printf 'log line: token=%s\n' "$LVALUE" | curl -s --unix-socket "$AS" -X POST --data-binary @- http://x/v1/scan >/dev/null
expect "approvals marks a held request for a compromised secret" "COMPROMISED" "$("$CLI" approvals)"
expect "approvals --json: compromised" '"compromised":true' "$("$CLI" approvals --json)"
chmod 0666 "$AS"
expect "an admin that is also a policy client cannot approve (another uid's request)" "can be policy client 'selfadmin'" "$(as $U3 "$CLI" approve "$LID" 2>&1)"
chmod 0600 "$AS"
expect "approve the compromised request" '"state":"approved"' "$(curl -s --unix-socket "$AS" -X POST "http://x/v1/admin/approvals/$LID/approve")"
wait $lk
expect "collecting an approved token for a compromised secret is refused" '403 {"error":"compromised"' "$(tail -n 1 "$T/lk.out")"

# --- bad input
expect "malformed ID" "bad_request" "$(curl -s --unix-socket "$AS" -X POST "http://x/v1/admin/approvals/zz/approve")"
expect "unknown ID" "not_found" "$(curl -s --unix-socket "$AS" -X POST "http://x/v1/admin/approvals/0123456789abcdef/approve")"
expect "GET on approve" "method_not_allowed" "$(curl -s --unix-socket "$AS" "http://x/v1/admin/approvals/0123456789abcdef/approve")"
expect "a body on approve is refused" "bad_request" "$(curl -s --unix-socket "$AS" -X POST -d '{"x":1}' "http://x/v1/admin/approvals/0123456789abcdef/approve")"
expect "POST on the poll route" "method_not_allowed" "$(curl -s --unix-socket "$TS" -X POST -d '{}' "http://x/v1/approvals/$RID")"
expect "CLI: approve with a bad ID" "rc=2" "$("$CLI" approve xyz >/dev/null 2>&1; echo "rc=$?")"
expect "daemon: bad --approval-timeout" "--approval-timeout" "$("$DAEMON" --approval-timeout 0 2>&1)"

# --- the audit: the hold, who approved, the collection, the timeout
sleep 1.2
A=$T/audit.log
py_audit() { "$PYBIN" - "$A" "$@" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
what = sys.argv[2]; aid = sys.argv[3]
for r in recs:
    if r.get('approval_id') == aid and r.get('route') == what:
        print(json.dumps(r, sort_keys=True)); break
PY
}
rec=$(py_audit admin.approve "$ID1")
expect "audit: the approval names the approver (uid 0, its exe)" "\"exe\": \"$CLIX\"" "$rec"
expect "audit: the approver's uid" '"uid": 0' "$rec"
expect "audit: the approval names the requester" "\"requester\": {\"client\": \"tool\", \"exe\": \"$CLIX\"" "$rec"
expect "audit: the requester's pid" "\"pid\": $f1, \"uid\": $U1" "$rec"
expect "audit: the hold is recorded as pending" '"decision": "pending"' "$(py_audit token "$ID1")"
rec=$(py_audit approval.collect "$RID")
expect "audit: the collection records the token's accessor" '"accessor": "hk1:' "$rec"
expect "audit: the collection says who approved" '"decided_by": {"exe": "/usr/bin/curl' "$rec"
expect "audit: the denial" '"route": "admin.deny"' "$(py_audit admin.deny "$ID2")"
expect "audit: the requester told of the denial" "was denied by uid 0" "$(py_audit approval.collect "$ID2")"
expect "audit: the timeout" '"reason": "no decision within 4 s"' "$(py_audit approval.timeout "$ID3")"
expect "audit: the refused self-approval" '"status": 403' "$(py_audit admin.approve "$SID")"
expect "audit: the abandoned request" '"route": "approval.abandoned"' "$(py_audit approval.abandoned "$XID")"
printf '%s\n' "$VALUE" >"$T/pattern"
grep -qF -f "$T/pattern" "$A" && bad "value in the audit log" || ok "value not in the audit log ($(wc -l <"$A") records)"
grep -qF -f "$T/pattern" "$T/daemon.out" && bad "value in daemon output" || ok "value not in daemon output"
kill -0 "$PID" 2>/dev/null && ok "daemon still running" || bad "daemon died"
kill -TERM "$PID"; wait "$PID"; rc=$?; PID=
expect "daemon stops cleanly on SIGTERM" "rc=0" "rc=$rc"
expect_not "no sanitizer report from the daemon" "Sanitizer" "$(grep -a -E "Sanitizer|runtime error" "$T/daemon.out")"

# Every line the daemon wrote to stderr: RFC 3339 time, pid, level (log.h).
. "$(dirname "$0")/log-lines.sh"
bl=$(log_lines_bad "$T/daemon.out")
[ -z "$bl" ] && ok "every daemon stderr line carries an RFC 3339 time and a level" ||
        bad "daemon stderr lines without time or level: $(head -n 5 <<<"$bl")"
echo "$fails failure(s)"
[ "$fails" = 0 ]
