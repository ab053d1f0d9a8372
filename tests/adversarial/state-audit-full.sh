#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Disk-full audit log (issue 15 item 5): with denials and admin writes
# interleaved, every answered decision has its record and nothing is acted
# on without one.  While the log cannot be written, a denial is answered
# 503 (still a refusal, counted in the audit.resume record), an admin put
# is refused 503 and stores nothing, a redeem is refused.  Legitimate path
# first.  The log lives on a small private tmpfs filled up by a filler file.
if [ -z "${CB_STATE_TEST_NS:-}" ]; then
        if unshare -m --propagation private true 2>/dev/null; then
                CB_STATE_TEST_NS=1 exec unshare -m --propagation private bash "$0" "$@"
        fi
        echo "SKIP: missing prerequisite: CAP_SYS_ADMIN for a private mount namespace (unshare -m) and a tmpfs"
        exit 77
fi
. "$(dirname "$0")/state-lib.sh"
SECRETS="api"
write_policy "$T/policy.json"
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
mkdir -p "$T/full"
mount -t tmpfs -o size=256k,mode=0700 tmpfs "$T/full" || { echo "SKIP: missing prerequisite: cannot mount a tmpfs"; exit 77; }
CLEANUP_EXTRA='umount -l "$T/full" 2>/dev/null'
R=$T/run A=$T/full/audit.log
start_daemon A "$T/state" "$R" --audit-log "$A" || { bad "daemon did not start: $(cat "$T/daemon-A.out")"; finish; }
V1="sk-full-one-$(rnd)" V2="sk-full-two-$(rnd)"
deny() { as $U2 /usr/bin/python3 "$T/tool.py" "$R/tools.sock" fetch api 2>&1; } # U2 has no grant

# Legitimate: a put, a redeem and a denial, each with its record.
printf '%s' "$V1" | admin "$R" put api >/dev/null || bad "put api"
expect "legitimate: redeem" "200 $V1" "$(fetch "$R" api)"
expect "legitimate: denial" "403" "$(deny)"
grep -q '"status":403' "$A" && ok "legitimate: the denial is recorded" || bad "legitimate: denial not recorded"

# The disk fills up.
dd if=/dev/zero of="$T/full/filler" bs=4k >/dev/null 2>&1
# The log's last page still takes a few records: denials until one cannot be
# recorded.  Each one answered 403 before that must be in the log.
n403=0 first=""
for i in $(seq 200); do
        o=$(deny)
        case $o in 403*) n403=$((n403 + 1)) ;; *) first=$o; break ;; esac
done
expect "full: the first denial that cannot be recorded is answered 503" "503" "$first"
before=$(wc -l <"$A")
out_deny1=$(deny)
out_put=$(printf '%s' "$V2" | admin "$R" put api 2>&1)
out_deny2=$(deny)
out_fetch=$(fetch "$R" api)
out_rot=$(printf '%s' "$V2" | admin "$R" rotate api 2>&1)
expect "full: a denial is answered 503, not a 403 without a record" "503" "$out_deny1"
expect "full: an admin put is refused" "audit" "$out_put"
expect "full: a second denial 503" "503" "$out_deny2"
expect "full: a redeem is refused" "503" "$out_fetch"
refute "full: ...and never answered with the value" "$V1" "$out_fetch"
expect "full: an admin rotate is refused" "audit" "$out_rot"
[ "$(wc -l <"$A")" = "$before" ] && ok "full: nothing was written to the log meanwhile" || bad "full: the log grew"

# Space again: nothing was acted on without its record; the refusals are counted.
rm -f "$T/full/filler"
expect "after: the put did not take effect" "200 $V1" "$(fetch "$R" api)"
expect "after: no version was added" '"version":1' "$(admin "$R" versions api --json 2>&1 | tr -d ' ')"
refute "after: no version 2" '"version":2' "$(admin "$R" versions api --json 2>&1 | tr -d ' ')"
res=$(grep '"audit.resume"' "$A" | tail -1)
# One outage, one resume: a resume short enough for the last bytes of the
# full disk, before a record that did not fit, must have been taken back.
nres=$(grep -c '"audit.resume"' "$A")
[ "$nres" = 1 ] && ok "after: one audit.resume for the one outage" || bad "after: $nres audit.resume records for one outage"
n=$(echo "$res" | sed -n 's/.*"refused":\([0-9]*\).*/\1/p')
[ -n "$n" ] && [ "$n" -ge 6 ] && ok "after: audit.resume counts the $n refusals" || bad "after: audit.resume: '$res'"
expect "after: the log verifies" "intact" "$(admin "$R" audit verify "$A" 2>&1)"
# Every answered allow/deny in the log: the legitimate ones are there, none from the full phase.
expect "after: denial answered again, and recorded" "403" "$(deny)"
want=$((n403 + 2))
[ "$(grep -c '"status":403' "$A")" = "$want" ] && ok "after: exactly the $want answered denials are recorded" ||
        bad "after: $(grep -c '"status":403' "$A") denial records for $want answered"

# Round 2: the admin write is the first thing that meets the full disk.
dd if=/dev/zero of="$T/full/filler" bs=4k >/dev/null 2>&1
last=$V1 failed=""
for i in $(seq 200); do
        v="sk-fill-$i-$(rnd)"
        if printf '%s' "$v" | admin "$R" put api >/dev/null 2>"$T/put.err"; then last=$v; else failed=$v; break; fi
done
[ -n "$failed" ] && ok "round 2: a put met the full disk and was refused ($(head -c 120 "$T/put.err"))" || bad "round 2: no put failed"
rm -f "$T/full/filler"
out=$(fetch "$R" api)
expect "round 2: the refused put did not take effect" "200 $last" "$out"
refute "round 2: ...its value is not served" "$failed" "$out"
expect "round 2: the log verifies" "intact" "$(admin "$R" audit verify "$A" 2>&1)"
stop_daemon A
finish
