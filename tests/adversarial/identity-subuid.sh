#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A user with a subordinate uid range (/etc/subuid and newuidmap, which
# Debian's useradd sets up and rootless containers use) runs processes
# under 65,536 uids of the broker's namespace.  Charged one uid at a time,
# they multiply every per-uid bound: 34 of them holding 128 idle connections
# each filled tools.sock's 4,096 and every other uid got 503 server_busy;
# 20 of them had 600 refusals a minute each recorded.  The broker charges a
# caller in another user namespace to the namespace's owner
# (cb_peer_account_uid).  Legitimate first: a granted tool is served, and a
# user with no subordinate uids still has its own 128 connections.
. "$(dirname "$0")/identity-lib.sh"
G=61871 U=61872 SUB=720000
for t in unshare; do command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }; done
FLOOD=$HERE/subuid-flood.py
POLICY='{ "clients": { "tool": {"uid": '$G'} },
  "grants": [ {"client": "tool", "secret": "demo", "use": ["redeem"], "max_ttl": 60} ],
  "admins": {"uids": [0]} }'
start_daemon --audit-log "$T/audit.log" --listen-tcp 127.0.0.1:0
TCPP=$(sed -n 's/.* and tcp 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$T/daemon.out" | head -n 1)
tok() { run_as $G curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 --unix-socket "$TS" \
        -d '{"secret":"demo","use":"redeem"}' http://x/v1/token; }
expect "legitimate: the granted tool is served" "201" "$(tok)"

# 34 subordinate uids x 128 idle connections (4,352: more than the socket's 4,096).
"$PYBIN" "$FLOOD" "$TS" $U $SUB 34 conns 128 6 >"$T/flood.out" 2>&1 &
FP=$!
for _ in $(seq 100); do [ "$(grep -c '^turned' "$T/flood.out")" -ge 34 ] && break; sleep 0.1; done
grep -q "^SKIP" "$T/flood.out" && { cat "$T/flood.out"; kill $FP 2>/dev/null; exit 77; }
out=$(tok)
expect "while 34 subordinate uids of one user hold 128 connections each, the granted tool is served" "201" "$out"
turned=$(awk '/^turned/ { s += $2 } END { print s + 0 }' "$T/flood.out")
[ "$turned" -ge $((34 * 128 - 128)) ] && ok "the user's connections past 128 (all its uids together) were turned away ($turned)" ||
        bad "only $turned of the user's $((34 * 128)) connections were turned away: $(head -3 "$T/flood.out")"
sleep 1.2
expect "...counted against the owner, as the daemon reports" "per uid (last: uid $U)" "$(grep 'connection(s) over the limit' "$T/daemon.out" | tail -n 1)"
wait $FP 2>/dev/null

# Refusals: 5 subordinate uids x 300 refused requests: recorded one by one up
# to the owner's 600 a minute, not 600 per subordinate uid.
before=$(grep -c '"deny"' "$T/audit.log")
"$PYBIN" "$FLOOD" "$TS" $U $SUB 5 refusals 300 >"$T/ref.out" 2>&1
sleep 0.5
after=$(grep -c '"deny"' "$T/audit.log")
n=$((after - before))
[ "$n" -le 610 ] && ok "5 subordinate uids' 1,500 refusals: $n recorded (the owner's budget of 600 a minute)" ||
        bad "5 subordinate uids' 1,500 refusals: $n recorded (each uid had its own budget)"
expect "the rest answered 429" "'429'" "$(cat "$T/ref.out")"
expect "the granted tool is still served" "201" "$(tok)"
# The TCP listener has no pid to find the owner by: the user's subordinate
# uids (which no client selects) share one bucket of 128 there.
"$PYBIN" "$FLOOD" "127.0.0.1:$TCPP" $U $SUB 4 conns 128 3 >"$T/tflood.out" 2>&1 &
FP=$!
for _ in $(seq 100); do [ "$(grep -c '^turned' "$T/tflood.out")" -ge 4 ] && break; sleep 0.1; done
turned=$(awk '/^turned/ { s += $2 } END { print s + 0 }' "$T/tflood.out")
[ "$turned" -ge $((4 * 128 - 128)) ] && ok "over TCP, 4 subordinate uids' connections past 128 in all were turned away ($turned)" ||
        bad "over TCP only $turned of 4 subordinate uids' 512 connections were turned away"
expect "...and the granted tool is served meanwhile" "201" "$(tok)"
wait $FP 2>/dev/null
finish
