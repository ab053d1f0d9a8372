#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The tamper-evident audit log and alerts end to end: the real daemon, real
# clients under real uids.  `credbroker audit verify` names the line of an
# edited, a deleted, two swapped records and a cut tail (live, over
# admin.sock, and offline); SIGHUP after mv starts a linked segment in a new
# file; the audit file on a full file system makes requests fail closed (503
# audit_unavailable) with the store intact, and service resumes when space
# is freed; the alert hook gets denial bursts and the audit failure, never a
# value.  Needs root (uids, a private mount namespace for the small tmpfs);
# exits 77 naming what is missing otherwise.
set -uo pipefail

CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (to run clients under other uids)"; exit 77; }
for t in curl /usr/bin/python3 setpriv; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done
# A private mount namespace, so the small tmpfs never outlives the test.
# Without one (no CAP_SYS_ADMIN) only the full-disk part is skipped.
if [ -z "${CB_AUDIT_TEST_NS:-}" ]; then
        if unshare -m --propagation private true 2>/dev/null; then
                CB_AUDIT_TEST_NS=1 exec unshare -m --propagation private bash "$0" "$@"
        fi
        CB_AUDIT_TEST_NS=none
fi

T=$(mktemp -d /tmp/cba-test.XXXXXX)
chmod 0755 "$T"
PID= PID2=
cleanup() {
        [ -n "$PID" ] && kill "$PID" 2>/dev/null
        [ -n "$PID2" ] && kill "$PID2" 2>/dev/null
        wait 2>/dev/null
        umount "$T/full" 2>/dev/null
        rm -rf "$T"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }

VALUE="sk-audit-VALUE-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PYBIN=/usr/bin/python3
U1=61550 U2=61551
as() { local u=$1; shift; setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }
post() { curl -s --unix-socket "$1" -X POST --data-binary "$3" "http://x$2"; }
field() { "$PYBIN" -c "import json,sys; print(json.load(sys.stdin).get('$1',''))"; }
wait_sock() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }

"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "tool": {"uid": $U1} },
  "grants": [ {"client": "tool", "secret": "demo", "use": ["redeem", "proxy"]} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
cat >"$T/hook.sh" <<SH
#!/bin/sh
cat >>"$T/alerts.jsonl"
printf 'alert hook ran\033[2J\n' >&2
SH
chmod 0755 "$T/hook.sh"
mkdir -p "$T/logs"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --audit-log "$T/logs/audit.log" --alert-hook "$T/hook.sh" --denial-alert 5/60 >"$T/daemon.out" 2>&1 &
PID=$!
wait_sock "$T/run/admin.sock" || { bad "daemon did not start: $(cat "$T/daemon.out")"; exit 1; }
TS=$T/run/tools.sock AS=$T/run/admin.sock
export CREDBROKER_ADMIN_SOCKET=$AS
LOG=$T/logs/audit.log

printf '%s' "$VALUE" | "$CLI" put demo >/dev/null || bad "put"
resp=$(as $U1 curl -s --unix-socket "$TS" -X POST -d '{"secret":"demo","use":"redeem"}' http://x/v1/token)
tok=$(echo "$resp" | field token) acc=$(echo "$resp" | field accessor)
case "$tok" in cbt_*) ok "granted tool gets a token" ;; *) bad "granted tool gets a token: $resp" ;; esac
expect "granted tool redeems" "$VALUE" "$(as $U1 curl -s --unix-socket "$TS" -X POST -d "{\"token\":\"$tok\"}" http://x/v1/redeem)"
post "$AS" /v1/admin/revoke "{\"accessor\":\"$acc\"}" >/dev/null

# --- denial burst: 6 refusals of uid U2 within the window (rule 5/60)
for _ in 1 2 3 4 5 6; do as $U2 curl -s --unix-socket "$TS" -X POST -d '{"secret":"demo","use":"redeem"}' http://x/v1/token >/dev/null; done
for _ in $(seq 50); do grep -q denial_burst "$T/alerts.jsonl" 2>/dev/null && break; sleep 0.1; done
"$PYBIN" - "$T/alerts.jsonl" "$U2" <<'PY' && ok "alert hook got one denial_burst event for uid $U2 (JSON on stdin)" || bad "no denial_burst event in the hook's input: $(cat "$T/alerts.jsonl" 2>/dev/null)"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
b = [e for e in evs if e.get('kind') == 'denial_burst']
# 'exe' is there but may be empty: a uid no policy client selects is refused
# on its credentials alone, its executable never read (lazy identity).
sys.exit(0 if len(b) == 1 and b[0]['uid'] == int(sys.argv[2]) and b[0]['denials'] == 5 and 'exe' in b[0] else 1)
PY
grep -q "ALERT denial_burst" "$T/daemon.out" && ok "the alert is a line on stderr too" || bad "no ALERT line on stderr"

# --- a clean log verifies
out=$("$CLI" audit verify "$LOG"); rc=$?
[ $rc = 0 ] && expect "clean log verifies (exit 0, a count)" "intact: " "$out" || bad "clean log: exit $rc: $out"
expect "the live log's tail is checked against the daemon's head" "tail matches the head" "$out"
N=$(wc -l <"$LOG")
[ "$N" -ge 10 ] && ok "log has $N records" || bad "only $N records"

# verify_copy NAME WANT_LINE FILE...: not intact, naming WANT_LINE
verify_bad() {
        local name=$1 want=$2; shift 2
        local out rc
        out=$("$CLI" audit verify "$@" 2>&1); rc=$?
        if [ $rc = 4 ] && [[ "$out" == *"line $want:"* ]]; then ok "$name: exit 4, names line $want"
        else bad "$name: wanted exit 4 naming line $want, got exit $rc: $out"; fi
}
cp "$LOG" "$T/edit.log"; sed -i '5s/"status":[0-9]*/"status":599/' "$T/edit.log"
verify_bad "edited line" 5 "$T/edit.log"
# (admin writes add an "intent" record before their own: find the first denial)
DL=$(grep -n '"decision":"deny"' "$LOG" | head -1 | cut -d: -f1)
cp "$LOG" "$T/edit2.log"; sed -i "${DL:-7}s/\"decision\":\"deny\"/\"decision\":\"allow\"/" "$T/edit2.log"
cmp -s "$LOG" "$T/edit2.log" && bad "edit2 did not change line ${DL:-7}" || verify_bad "edited decision" "${DL:-7}" "$T/edit2.log"
sed '6d' "$LOG" >"$T/del.log"
verify_bad "deleted line" 6 "$T/del.log"
sed -n '1,3p' "$LOG" >"$T/swap.log"; sed -n '5p' "$LOG" >>"$T/swap.log"; sed -n '4p' "$LOG" >>"$T/swap.log"; sed -n '6,$p' "$LOG" >>"$T/swap.log"
verify_bad "two swapped lines" 4 "$T/swap.log"
sed '1d' "$LOG" >"$T/nohead.log"
verify_bad "segment header removed" 1 "$T/nohead.log"

# --- a cut tail, in the live file: named by the daemon's head
cp "$LOG" "$T/orig.log"
head -n $((N - 3)) "$T/orig.log" >"$T/cut.log"
cat "$T/cut.log" >"$LOG"   # in place: the daemon keeps appending to this inode
verify_bad "truncated tail (live, daemon's head)" $((N - 2)) "$LOG"
# put it back: the original records and the one the verify request added
{ cat "$T/orig.log"; tail -n 1 "$LOG"; } >"$T/restore.log"
cat "$T/restore.log" >"$LOG"
out=$("$CLI" audit verify "$LOG"); rc=$?
[ $rc = 0 ] && ok "restored log verifies again" || bad "restored log: exit $rc: $out"
# a copy cut mid-line
head -c $(($(stat -c %s "$LOG") - 20)) "$LOG" >"$T/midcut.log"
verify_bad "cut inside the last line" "$(wc -l <"$LOG")" "$T/midcut.log"

# --- identifiers hashed; no value, no token, no accessor in plain text
grep -qF "$VALUE" "$LOG" && bad "value in the audit log" || ok "no value in the audit log"
grep -qF "$tok" "$LOG" && bad "token in the audit log" || ok "no token in the audit log"
grep -qF "$acc" "$LOG" && bad "accessor in plain text in the audit log" || ok "accessor not in plain text"
grep -q '"accessor":"hk1:[0-9a-f]\{32\}"' "$LOG" && ok "accessors are keyed hashes (hk1:)" || bad "no hashed accessor field"
grep -q '"decision":"deny"' "$LOG" && grep -q '"reason":"no grant' "$LOG" && ok "decision and reason fields kept" ||
        bad "decision/reason fields missing"

# --- SIGHUP after mv: a new file, a linked segment
mv "$LOG" "$LOG.1"
kill -HUP "$PID"
for _ in $(seq 50); do [ -s "$LOG" ] && break; sleep 0.1; done
[ -s "$LOG" ] && ok "SIGHUP reopened the log at its path" || bad "no new log after SIGHUP: $(tail -3 "$T/daemon.out")"
as $U1 curl -s --unix-socket "$TS" -X POST -d '{"secret":"demo","use":"redeem"}' http://x/v1/token >/dev/null
head -1 "$LOG" | grep -q '"type":"audit.begin".*"reason":"reopen".*"prev_log"' && ok "new file starts a segment linked to the old one" ||
        bad "first line of the new file: $(head -1 "$LOG")"
out=$("$CLI" audit verify "$LOG.1" "$LOG"); rc=$?
[ $rc = 0 ] && expect "rotated + current files verify together" "2 segment(s)" "$out" || bad "rotated + current: exit $rc: $out"
out=$("$CLI" audit verify "$LOG"); rc=$?
[ $rc = 0 ] && expect "current file alone verifies, tail checked" "tail matches" "$out" || bad "current alone: exit $rc: $out"
expect "current file alone: the verdict names the link to the file not given" "the older file was not given" "$out"
out=$("$CLI" audit verify "$LOG.1"); rc=$?
[ $rc = 0 ] && ok "rotated file alone verifies ($out)" || bad "rotated alone: exit $rc: $out"
head -n -2 "$LOG.1" >"$T/rot-cut.log"
verify_bad "rotated file cut, caught by the next file's link" 1 "$T/rot-cut.log" "$LOG"

# --- SIGKILL between a record and its checkpoint (simulated: the old
# checkpoint put back): the restarted daemon links to the record
cp "$T/state/audit-head" "$T/head.old"
as $U1 curl -s --unix-socket "$TS" -X POST -d '{"secret":"demo","use":"redeem"}' http://x/v1/token >/dev/null
kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
cp "$T/head.old" "$T/state/audit-head"
rm -f "$T/run/admin.sock" "$T/run/tools.sock"   # left behind by SIGKILL
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --audit-log "$LOG" >"$T/daemon.restart" 2>&1 &
PID=$!
wait_sock "$T/run/admin.sock" || bad "restart: $(cat "$T/daemon.restart")"
grep -q "not checkpointed" "$T/daemon.restart" && ok "restart after SIGKILL catches up one un-checkpointed record" ||
        bad "no catch-up message: $(cat "$T/daemon.restart")"
out=$("$CLI" audit verify "$LOG.1" "$LOG"); rc=$?
[ $rc = 0 ] && expect "log verifies across a SIGKILL and restart" "3 segment(s)" "$out" || bad "after SIGKILL: exit $rc: $out"

# --- offline, the daemon stopped: against the checkpointed head
kill "$PID"; wait "$PID" 2>/dev/null; PID=
out=$("$CLI" audit verify --state-dir "$T/state" --unlock "keyfile:$T/key" "$LOG.1" "$LOG"); rc=$?
[ $rc = 0 ] && expect "offline verify (daemon stopped)" "intact: " "$out" || bad "offline: exit $rc: $out"
L=$(wc -l <"$LOG")
head -n $((L - 1)) "$LOG" >"$T/off-cut.log"
out=$("$CLI" audit verify --state-dir "$T/state" --unlock "keyfile:$T/key" "$LOG.1" "$T/off-cut.log" 2>&1); rc=$?
[ $rc = 4 ] && expect "offline: cut tail named by the checkpoint" "line $L:" "$out" || bad "offline cut: exit $rc: $out"
out=$("$CLI" audit verify --json --state-dir "$T/state" --unlock "keyfile:$T/key" "$LOG.1" "$LOG"); rc=$?
[ $rc = 0 ] && expect "offline verify --json: the online answer's object" '{"intact":true,"records":' "$out" ||
        bad "offline --json: exit $rc: $out"
out=$("$CLI" audit verify --json --state-dir "$T/state" --unlock "keyfile:$T/key" "$LOG.1" "$T/off-cut.log"); rc=$?
[ $rc = 4 ] && expect "offline verify --json: the cut named" "\"line\":$L," "$out" || bad "offline --json cut: exit $rc: $out"
sed '3s/"status":[0-9]*/"status":299/' "$LOG" >"$T/off-edit.log"
out=$("$CLI" audit verify --state-dir "$T/state" --unlock "keyfile:$T/key" "$LOG.1" "$T/off-edit.log" 2>&1); rc=$?
[ $rc = 4 ] && expect "offline: edited line named" "line 3:" "$out" || bad "offline edit: exit $rc: $out"
# Whole leading segments removed (each start appends a segment to the same
# file; the restart above made a second one in $LOG): the next header's
# "offset" no longer matches where it stands.
grep -q '"type":"audit.begin".*"offset":0,' "$LOG.1" && ok "segment headers carry their file offset" ||
        bad "no \"offset\" in the header: $(head -1 "$LOG.1")"
B2=$(grep -n '"type":"audit.begin"' "$LOG" | sed -n 2p | cut -d: -f1)
if [ -n "$B2" ]; then
        tail -n +"$B2" "$LOG" >"$T/lead-cut.log"
        out=$("$CLI" audit verify --state-dir "$T/state" --unlock "keyfile:$T/key" "$T/lead-cut.log" 2>&1); rc=$?
        [ $rc = 4 ] && expect "leading segments removed: caught at line 1" "line 1: records before this line were removed" "$out" ||
                bad "leading segments removed: exit $rc: $out"
        out=$("$CLI" audit verify --state-dir "$T/state" --unlock "keyfile:$T/key" "$LOG.1" "$T/lead-cut.log" 2>&1); rc=$?
        [ $rc = 4 ] && ok "leading segments removed, with the older file given: exit 4" || bad "lead cut + older: exit $rc: $out"
else
        bad "no second segment in $LOG after the restart"
fi
# The log is useless without the store's key: another store's key fails at line 1.
"$CLI" init --state-dir "$T/state2" --unlock "keyfile:$T/key2" >/dev/null
out=$("$CLI" audit verify --state-dir "$T/state2" --unlock "keyfile:$T/key2" "$LOG.1" 2>&1); rc=$?
[ $rc = 4 ] && expect "another store's key cannot vouch for the log" "line 1:" "$out" || bad "other key: exit $rc: $out"

# --- the audit file on a full file system: fail closed, no data lost, resume
mkdir -p "$T/full"
if [ "$CB_AUDIT_TEST_NS" = none ]; then
        echo "skip full-disk part: missing prerequisite: CAP_SYS_ADMIN for a private mount namespace (unshare -m)"
elif ! mount -t tmpfs -o size=64k,mode=0700 tmpfs "$T/full"; then
        bad "cannot mount a tmpfs for the full-disk test"
else
        "$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
                --audit-log "$T/full/audit.log" --alert-hook "$T/hook.sh" --denial-alert off >"$T/daemon2.out" 2>&1 &
        PID2=$!
        wait_sock "$T/run/admin.sock" || bad "daemon 2 did not start: $(cat "$T/daemon2.out")"
        sleep 0.2
        dd if=/dev/zero of="$T/full/filler" bs=1k count=1024 >/dev/null 2>&1
        got=
        for i in $(seq 40); do
                r=$(as $U1 curl -s --unix-socket "$TS" -X POST -d '{"secret":"demo","use":"redeem"}' http://x/v1/token)
                case "$r" in *audit_unavailable*) got=$r; break ;; esac
        done
        if [ -n "$got" ]; then ok "a request whose record cannot be written is refused (503 audit_unavailable)"
        else bad "no request refused on a full disk: $r"; fi
        r=$(as $U1 curl -s -w ' %{http_code}' --unix-socket "$TS" -X POST -d '{"secret":"demo","use":"redeem"}' http://x/v1/token)
        expect "the next request is refused before it is served" 'audit_unavailable' "$r"
        expect "with status 503" ' 503' "$r"
        expect "the message says why" 'No space left on device' "$r"
        r=$(printf 'other-value' | "$CLI" put demo2 2>&1)
        expect "an admin write is refused too" 'audit' "$r"
        expect "health says so" 'audit_unavailable' "$(curl -s --unix-socket "$TS" http://x/v1/health)"
        n=$("$CLI" metrics | sed -n 's/^credbroker_audit_write_failures_total //p')
        [ "${n:-0}" -ge 2 ] && ok "metrics readable while the log cannot be written: $n failed records" ||
                bad "metrics during the failure: credbroker_audit_write_failures_total ${n:-absent}"
        for _ in $(seq 50); do grep -q audit_write_failed "$T/alerts.jsonl" && break; sleep 0.1; done
        grep -q '"kind":"audit_write_failed"' "$T/alerts.jsonl" && ok "audit_write_failed alert reached the hook" ||
                bad "no audit_write_failed alert"
        # free the space: service resumes, the store is intact
        rm -f "$T/full/filler"
        r=$(as $U1 curl -s --unix-socket "$TS" -X POST -d '{"secret":"demo","use":"redeem"}' http://x/v1/token)
        tok2=$(echo "$r" | field token)
        case "$tok2" in cbt_*) ok "service resumes once the log can be written" ;; *) bad "no resume: $r" ;; esac
        n=$("$CLI" metrics | sed -n 's/^credbroker_audit_write_failures_total //p')
        [ "${n:-0}" -ge 2 ] && ok "metrics: every record that could not be written counted ($n)" ||
                bad "metrics: credbroker_audit_write_failures_total ${n:-absent}"
        expect "stored value intact after the full disk" "$VALUE" \
                "$(as $U1 curl -s --unix-socket "$TS" -X POST -d "{\"token\":\"$tok2\"}" http://x/v1/redeem)"
        expect "the refused put stored nothing" '"error"' "$(curl -s --unix-socket "$AS" http://x/v1/admin/secrets/demo2)"
        grep -q '"type":"audit.resume".*"refused":[1-9]' "$T/full/audit.log" && ok "an audit.resume record counts the refused requests" ||
                bad "no audit.resume record"
        out=$("$CLI" audit verify "$T/full/audit.log"); rc=$?
        [ $rc = 0 ] && ok "log written through a full disk still verifies (no partial record): $out" || bad "full-disk log: exit $rc: $out"
        kill "$PID2"; wait "$PID2" 2>/dev/null; PID2=
        "$CLI" check --state-dir "$T/state" --unlock "keyfile:$T/key" >"$T/check.out" 2>&1 &&
                ok "store intact (credbroker check)" || bad "store check: $(cat "$T/check.out")"
fi

# --- a hook that hangs never holds up requests; it is killed after its timeout
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --audit-log "$T/logs/audit3.log" --alert-hook "sleep 30" --alert-hook-timeout 1 --denial-alert 1/60 \
        >"$T/daemon3.out" 2>&1 &
PID=$!
wait_sock "$T/run/admin.sock" || bad "daemon 3 did not start: $(cat "$T/daemon3.out")"
slow=
for u in 61552 61553 61554 61555; do
        t=$(as $u curl -s -o /dev/null -w '%{time_total}' --unix-socket "$TS" -X POST -d '{"secret":"demo","use":"redeem"}' http://x/v1/token)
        "$PYBIN" -c "import sys; sys.exit(0 if float('$t') < 0.5 else 1)" || slow="$slow $u:${t}s"
done
[ -z "$slow" ] && ok "requests answered at once while the alert hook hangs" || bad "slow requests while the hook hangs:$slow"
for _ in $(seq 60); do grep -q "killed" "$T/daemon3.out" && break; sleep 0.1; done
grep -q "alert hook: still running after 1 s: killed" "$T/daemon3.out" && ok "a hanging hook is killed after its timeout" ||
        bad "hanging hook not killed: $(tail -3 "$T/daemon3.out")"
t0=$(date +%s%N); kill "$PID"; wait "$PID" 2>/dev/null; PID=; t1=$(date +%s%N)
[ $(((t1 - t0) / 1000000)) -lt 3000 ] && ok "daemon stops promptly with hooks queued ($(((t1 - t0) / 1000000)) ms)" ||
        bad "daemon took $(((t1 - t0) / 1000000)) ms to stop"

# --- red-team regressions, on a daemon of their own: accessors never in
# the clear (refusal reasons, leak alerts), ...
cat >"$T/policy4.json" <<JSON
{ "clients": { "tool": {"uid": $U1} },
  "grants": [ {"client": "tool", "secret": "*", "use": ["redeem", "scan"], "max_ttl": 600} ],
  "admins": {"uids": [0]},
  "secrets": { "canary-x": {"canary": true} } }
JSON
chmod 0644 "$T/policy4.json"
cat >"$T/hook4.sh" <<SH
#!/bin/sh
exec >>"$T/alerts4.txt"
cat; echo
env | sed 's/^/ENV /'
ls -l /proc/\$\$/fd >"$T/hook4.fds"   # the shell's own fds (no pipe of a command substitution)
sed -n 's/.* \([0-9][0-9]*\) -> \(.*\)\$/FD \1 \2/p' "$T/hook4.fds" | awk '\$2 > 2'
exit 0
SH
chmod 0755 "$T/hook4.sh"
LOG4=$T/logs/audit4.log
CB_TEST_DAEMON_ONLY=should-not-reach-the-hook "$DAEMON" --state-dir "$T/state" --run-dir "$T/run" \
        --policy "$T/policy4.json" --unlock "keyfile:$T/key" --audit-log "$LOG4" --alert-hook "$T/hook4.sh" \
        --denial-alert 3/60 >"$T/daemon4.out" 2>&1 7>"$T/daemon4.fd7" &   # fd 7: one it inherits, not CLOEXEC
PID=$!
wait_sock "$T/run/admin.sock" || bad "daemon 4 did not start: $(cat "$T/daemon4.out")"
tok4=$(as $U1 curl -s --unix-socket "$TS" -X POST -d '{"secret":"demo","use":"redeem"}' http://x/v1/token | field token)
acc4=$(as $U1 curl -s --unix-socket "$TS" -X POST -d "{\"token\":\"$tok4\"}" http://x/v1/introspect | field accessor)
case "$acc4" in cba_*) ok "token for the accessor checks" ;; *) bad "no accessor from introspect: $acc4" ;; esac
as $U2 curl -s --unix-socket "$TS" -X POST -d "{\"token\":\"$tok4\"}" http://x/v1/redeem >/dev/null   # replayed by another uid
as $U2 curl -s --unix-socket "$TS" -X POST -d "{\"token\":\"$tok4\"}" http://x/v1/introspect >/dev/null
as $U1 curl -s --unix-socket "$TS" -X POST --data-binary "leaked: $tok4" http://x/v1/scan >/dev/null  # leak alert: revoked
as $U1 curl -s --unix-socket "$TS" -X POST -d "{\"token\":\"$tok4\"}" http://x/v1/redeem >/dev/null
for _ in $(seq 50); do grep -q '"kind":"leak"' "$T/alerts4.txt" 2>/dev/null && break; sleep 0.1; done
grep '"kind":"leak"' "$T/alerts4.txt" | grep -q '"accessor":"hk1:[0-9a-f]\{32\}"' && ok "token-sighting alert carries the hashed accessor" ||
        bad "leak alert: $(grep leak "$T/alerts4.txt" 2>/dev/null)"
grep -q '"route":"redeem".*"reason":"token belongs to uid'.*'"accessor":"hk1:' "$LOG4" &&
        ok "replayed token: refusal audited with the hashed accessor" || bad "no hashed refusal: $(grep redeem "$LOG4")"
if grep -q 'cba_' "$LOG4" "$T/alerts4.txt" "$T/daemon4.out"; then
        bad "an accessor in the clear: $(grep -h 'cba_' "$LOG4" "$T/alerts4.txt" "$T/daemon4.out" | cut -c1-200)"
else ok "no accessor (cba_) in the audit log, the alert hook's input or stderr after a replayed token"; fi

# ... a client whose executable path (or URL) is not UTF-8 is still audited
# and alerted on (written lossily, \xNN) ...
XD=$(printf '%s/bin\377' "$T"); mkdir -m 0755 "$XD" && cp "$(readlink -f "$PYBIN")" "$XD/py" && chmod 0755 "$XD/py"
n0=$(wc -l <"$LOG4")
as $U1 "$XD/py" - "$TS" <<'PY'
import socket, sys
def req(raw):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(raw)
    while s.recv(65536): pass
body = b'{"secret":"canary-x","use":"redeem"}'
req(b'POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' % len(body) + body)
for _ in range(3):
    body = b'{"token":"cbt_bogus"}'
    req(b'POST /v1/redeem HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' % len(body) + body)
req(b'GET /v1/admin/x\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
PY
for _ in $(seq 50); do grep -q '"kind":"denial_burst"' "$T/alerts4.txt" 2>/dev/null && break; sleep 0.1; done
grep '"kind":"canary"' "$T/alerts4.txt" | grep -qF '"exe":"'"$T"'/bin\\xff/py"' &&
        ok "canary alert from a non-UTF-8 exe path (exe written as \\xff)" || bad "no canary alert: $(cat "$T/alerts4.txt")"
grep '"kind":"denial_burst"' "$T/alerts4.txt" | grep -qF 'bin\\xff/py' &&
        ok "denial_burst alert from a non-UTF-8 exe path" || bad "no denial_burst alert: $(grep kind "$T/alerts4.txt")"
added=$(tail -n +$((n0 + 1)) "$LOG4")
[ "$(echo "$added" | grep -cF 'bin\\xff/py')" -ge 5 ] && ok "every request from the non-UTF-8 exe is audited (canary, token, 3 redeems)" ||
        bad "records from the non-UTF-8 exe: $(echo "$added" | cut -c1-160)"
echo "$added" | grep -qF '"route":"/v1/admin/x\\xff","status":403' && ok "a non-UTF-8 URL is audited" ||
        bad "no record for the non-UTF-8 URL: $(echo "$added" | tail -2 | cut -c1-200)"

# ... the alert hook gets neither the daemon's environment nor its file
# descriptors (only stdin, stdout, stderr; the script's own fd aside) ...
grep -q '^ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin$' "$T/alerts4.txt" && ! grep -q 'CB_TEST_DAEMON_ONLY\|CREDBROKER_ADMIN' "$T/alerts4.txt" &&
        ok "alert hook: a fixed PATH, not the daemon's environment" || bad "hook env: $(grep '^ENV' "$T/alerts4.txt" | sort -u | head)"
# (the shell's own: its script, and fd 1 saved around a redirection)
fds=$(grep '^FD ' "$T/alerts4.txt" | grep -v -e "hook4.sh\$" -e "alerts4.txt\$" | sort -u)
[ -z "$fds" ] && ok "alert hook: no inherited file descriptors past 2" || bad "hook inherited: $fds"

# ... and a malformed body's parse error never quotes its text (jansson's
# " near '...'" would carry a short value into the reply and the record).
for b in '{"name":"a","value":"sk-live-9f8e7d6c\u0001"}' '{"name":"a","value":"sk-live-9f8e7d6c' '{"name":"a","value":sk-live-9f8e7d6c}'; do
        b=${b//\\u0001/$'\001'}
        r=$(curl -s --unix-socket "$AS" -X POST --data-binary "$b" http://x/v1/admin/secrets)
        case "$r" in *sk-live*) bad "the reply quotes the body: $r" ;; *"body is not JSON"*"line 1, column"*) ;; *) bad "reply: $r" ;; esac
done
grep -q 'sk-live' "$LOG4" && bad "a body's text in the audit log: $(grep -o '.\{60\}sk-live.\{20\}' "$LOG4")" ||
        ok "malformed bodies: error names position and category only, never the text"

kill "$PID"; wait "$PID" 2>/dev/null; PID=
out=$("$CLI" audit verify --state-dir "$T/state" --unlock "keyfile:$T/key" "$LOG4"); rc=$?
[ $rc = 0 ] && ok "the red-team log verifies" || bad "log 4: exit $rc: $out"

# --- alerts never carry a value or a token
if grep -qF -e "$VALUE" -e "$tok" "$T/alerts.jsonl" "$T/daemon.out" "$T/daemon2.out" "$T/daemon3.out" 2>/dev/null; then
        bad "a value or token in alerts or stderr"
else ok "no value or token in alerts or stderr"; fi
for f in "$LOG" "$LOG.1" "$T/full/audit.log"; do
        [ -f "$f" ] && grep -qF -e "$VALUE" -e "$tok" -e "${tok2:-none}" "$f" && bad "value or token in $f"
done
ok "no value or token in any audit file"

expect "the alert hook's stderr reaches the daemon's, stamped, control bytes replaced" \
        "notice: hook stderr: alert hook ran?[2J" "$(cat "$T/daemon.out")"
# Every line the daemon wrote to stderr: RFC 3339 time, pid, level (log.h).
. "$(dirname "$0")/log-lines.sh"
bl=$(log_lines_bad "$T"/daemon*.out "$T/daemon.restart")
[ -z "$bl" ] && ok "every daemon stderr line carries an RFC 3339 time and a level" ||
        bad "daemon stderr lines without time or level: $(head -n 5 <<<"$bl")"
# A sanitizer build reports at exit (every daemon above stopped by SIGTERM, but one SIGKILL).
if grep -lE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T"/daemon*.out "$T/daemon.restart" 2>/dev/null; then
        bad "a sanitizer report in a daemon's output"
else ok "no sanitizer report from the daemons"; fi

echo "# $fails failure(s)"
[ $fails = 0 ]
