#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A stalled audit log never holds up the daemon (issue 15: "audit that never
# blocks"): the log lives on a loop-mounted ext4 that the test freezes
# (fsfreeze: every write(2) to it then sleeps in the kernel until it is
# thawed, as on a stalled disk or a hung writeback).  While it is frozen:
# health is answered at once; a token request, a denial and an admin write
# (all needing a record) are answered 503 audit_unavailable within the wait
# deadline (1 s) instead of hanging, and none of them takes effect (no token
# left live, nothing stored); a burst of requests is answered too.  After
# the thaw: served again, the refusals counted in an audit.resume record,
# and the log verifies.  Before the change, the first record's write(2) was
# made under the daemon-wide lock: every request hung.
. "$(dirname "$0")/state-lib.sh"
for c in mkfs.ext4 fsfreeze mount umount losetup curl python3; do
        command -v $c >/dev/null || { echo "SKIP: missing prerequisite: $c"; exit 77; }
done
SECRETS="api"
write_policy "$T/policy.json"
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
M=$T/mnt
mkdir -p "$M"
truncate -s 32M "$T/fs.img"
mkfs.ext4 -q -F "$T/fs.img" >/dev/null 2>&1 || { echo "SKIP: missing prerequisite: mkfs.ext4 on a file"; exit 77; }
mount -o loop "$T/fs.img" "$M" 2>/dev/null || { echo "SKIP: missing prerequisite: loop-mounting an ext4 image (no loop devices here?)"; exit 77; }
# Never leave a frozen file system behind, whatever happens: thaw, then
# unmount (also when killed: a timeout's SIGTERM runs the EXIT trap too).
trap 'exit 1' TERM INT HUP
CLEANUP_EXTRA='fsfreeze -u "$M" 2>/dev/null; for p in $PIDS; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; umount "$M" 2>/dev/null || umount -l "$M" 2>/dev/null'
fsfreeze -f "$M" 2>/dev/null && fsfreeze -u "$M" || { echo "SKIP: missing prerequisite: fsfreeze on a loop-mounted ext4"; exit 77; }
( trap 'kill $s 2>/dev/null; exit 0' TERM; sleep 120 & s=$!; wait $s; fsfreeze -u "$M" 2>/dev/null ) & WATCHDOG=$!
PIDS="$PIDS $WATCHDOG"

A=$M/audit.log R=$T/run
V1="sk-stall-$(rnd)"
start_daemon A "$T/state" "$R" --audit-log "$A" || { bad "daemon did not start: $(cat "$T/daemon-A.out")"; finish; }
printf '%s' "$V1" | admin "$R" put api >/dev/null || bad "put api"
expect "legitimate: served with the log on the loop file system" "200 $V1" "$(fetch "$R" api)"
live_tokens() { timeout 5 "$CLI" --admin-socket "$R/admin.sock" status --json 2>/dev/null | sed -n 's/.*"tokens": *\([0-9]*\).*/\1/p'; }
tokens_before=$(live_tokens)

# One request: prints "HTTP_CODE SECONDS BODY" (curl gives up after 8 s: a hang).
req() { # UID METHOD URL [BODY]
        local u=$1 m=$2 url=$3 body=${4:-} out
        out=$(as "$u" curl -s -w '\n%{http_code} %{time_total}' --max-time 8 --unix-socket "$R/tools.sock" \
                -X "$m" ${body:+-d "$body"} "http://x$url" 2>/dev/null)
        printf '%s %s' "${out##*$'\n'}" "${out%$'\n'*}"
}
# Answered within LIMIT seconds with STATUS (and the body naming the audit log for a 503)?
answered() { # NAME STATUS LIMIT OUTPUT
        local code=${4%% *} rest=${4#* } secs
        secs=${rest%% *}
        if [ "$code" != "$2" ]; then bad "$1: wanted status $2 within $3 s, got '$4'"; return; fi
        if awk -v s="$secs" -v l="$3" 'BEGIN { exit !(s <= l) }'; then ok "$1 ($code in ${secs}s)"
        else bad "$1: answered $code but only after ${secs}s (limit $3 s)"; fi
}

# A client that half-closes after its request (shutdown(SHUT_WR), as nc and
# some HTTP/1.0 clients do) still gets its answer while the connection
# waits, suspended, for the record: a request decided when it is complete
# (a token request), and one refused on its headers with a body behind
# them (a proxy request without a token).  Both are sent the moment the log
# freezes, so they wait (suspended) behind the first stuck record.  Before,
# libmicrohttpd took the end of file it read on resuming for an abort: no
# answer at all.
cat >"$T/half.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
body = sys.argv[3].encode()
s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (sys.argv[2].encode(), len(body)) + body)
s.shutdown(socket.SHUT_WR); s.settimeout(8)
d = b""
try:
    while True:
        c = s.recv(65536)
        if not c: break
        d += c
except socket.timeout:
    print("hang"); sys.exit(0)
print((d.split(b"\r\n")[0] or b"closed-unanswered").decode())
PY
chmod 0644 "$T/half.py"
fsfreeze -f "$M" || { bad "fsfreeze"; finish; }
ok "audit log's file system frozen"
( as $U1 /usr/bin/python3 "$T/half.py" "$R/tools.sock" /v1/token '{"secret":"api","use":"redeem"}' >"$T/half1.out" ) &
half1=$!
( as $U1 /usr/bin/python3 "$T/half.py" "$R/tools.sock" /v1/proxy/api/x 'abc' >"$T/half2.out" ) &
half2=$!
sleep 0.05
# The first request that needs a record: its write(2) sleeps in the kernel.
# While it waits for it (up to its 1 s deadline), the daemon's one serving
# thread (--tool-threads 1, the default) goes on serving others.
( req $U1 POST /v1/token '{"secret":"api","use":"redeem"}' >"$T/first.out" ) &
first=$!
sleep 0.3
out=$(req $U1 GET /v1/health)
kill -0 $first 2>/dev/null && pending=yes || pending=no
# 200, or 503 once the writer counts as stalled (500 ms): answered either way.
case "$out" in 503*) answered "health while the first record is stuck in write(2): answered at once" 503 0.5 "$out" ;;
*) answered "health while the first record is stuck in write(2): answered at once" 200 0.5 "$out" ;; esac
[ $pending = yes ] && ok "...while the token request was still waiting for its record" ||
        bad "...but only after the token request was answered (the serving thread was blocked)"
wait $first
wait $half1 $half2
expect "a half-closed token request while frozen: answered" "HTTP/1.1 503" "$(cat "$T/half1.out")"
expect "a half-closed proxy request refused on its headers while frozen: answered" "HTTP/1.1 503" "$(cat "$T/half2.out")"
out=$(cat "$T/first.out")
answered "token request while the log is frozen: 503, not a hang" 503 2.5 "$out"
expect "...saying it is the audit log" "audit_unavailable" "$out"
answered "health while the log is frozen: answered at once" 503 1.0 "$(req $U1 GET /v1/health)"
answered "a denial (uid without a grant) while frozen: 503 (still a refusal), not a hang" 503 2.5 \
        "$(req $U2 POST /v1/token '{"secret":"api","use":"redeem"}')"
answered "a redeem-with-a-bogus-token while frozen: 503, not a hang" 503 2.5 \
        "$(req $U1 POST /v1/redeem '{"token":"cbt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}')"
# A burst from several uids at once: every one answered promptly.
burst=
for i in $(seq 12); do
        ( req $U1 POST /v1/token '{"secret":"api","use":"redeem"}' >"$T/burst.$i" ) &
        burst="$burst $!"
done
wait $burst 2>/dev/null
n503=0 nother=0
for i in $(seq 12); do
        out=$(cat "$T/burst.$i")
        case "$out" in "503 "*) n503=$((n503 + 1)) ;; *) nother=$((nother + 1)); echo "     burst $i: $out" ;; esac
        secs=$(echo "$out" | awk '{ print $2 }')
        awk -v s="$secs" 'BEGIN { exit !(s <= 3) }' || bad "burst request $i took ${secs}s"
done
[ "$n503" = 12 ] && ok "a burst of 12 token requests while frozen: all 503 promptly" || bad "burst: $n503 of 12 got 503 ($nother otherwise)"
# An admin write: its intent cannot be made durable: refused, nothing stored.
t0=$(date +%s.%N)
out=$(printf 'other-value-%s' "$(rnd)" | timeout 8 "$CLI" --admin-socket "$R/admin.sock" put newsecret 2>&1); rc=$?
t1=$(date +%s.%N)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
[ "$rc" != 124 ] && awk -v s="$secs" 'BEGIN { exit !(s <= 5) }' && ok "admin put while frozen: refused in ${secs}s" ||
        bad "admin put while frozen: rc $rc after ${secs}s: $out"
expect "...saying why" "audit" "$out"

fsfreeze -u "$M" && ok "thawed"
sleep 0.3
after_freeze=
for _ in $(seq 20); do after_freeze=$(live_tokens); [ -n "$after_freeze" ] && break; sleep 0.2; done
[ "$after_freeze" = "$tokens_before" ] && ok "no token minted during the freeze is left live ($after_freeze)" ||
        bad "live tokens: $tokens_before before the freeze, '$after_freeze' after it"
ok_after=
for _ in $(seq 20); do
        out=$(fetch "$R" api)
        [ "$out" = "200 $V1" ] && { ok_after=1; break; }
        sleep 0.2
done
[ -n "$ok_after" ] && ok "served again after the thaw" || bad "not served after the thaw: $out"
expect "the refused put stored nothing" "no secret" "$(admin "$R" show newsecret 2>&1)"
grep -q '"type":"audit.resume"' "$A" && ok "an audit.resume record says the log was unavailable" || bad "no audit.resume record"
refused=$(grep '"type":"audit.resume"' "$A" | tail -1 | sed -n 's/.*"refused":\([0-9]*\).*/\1/p')
[ "${refused:-0}" -ge 15 ] && ok "...counting the refused requests ($refused)" || bad "audit.resume counts ${refused:-none} refusals (>= 15 expected)"
out=$(admin "$R" audit verify "$A" 2>&1)
expect "the log verifies after the stall" "intact" "$out"
refute "...and is not reported broken" "NOT INTACT" "$out"
stop_daemon A
kill "$WATCHDOG" 2>/dev/null
# A sanitizer build reports at exit.
grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|WARNING: ThreadSanitizer|runtime error:' "$T/daemon-A.out" &&
        { bad "a sanitizer report in the daemon's output:"; grep -A20 -E 'Sanitizer|runtime error' "$T/daemon-A.out" | head -40; } ||
        ok "no sanitizer report from the daemon"
finish
