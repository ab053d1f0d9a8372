#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The scan oracle (issue 15 item 6): a uid with only a scan grant sends
# 10,000 guesses of a secret in one /v1/scan body.  It must learn no offset
# (which guess matched), each hit must raise an alert, and its requests and
# bytes per minute are capped by the policy's scan_budget (429 + alert).
# Legitimate first: an admin scan gives offsets; a tool's clean scan works.
. "$(dirname "$0")/state-lib.sh"
SECRETS="short"
write_policy "$T/policy.json" "{\"client\": \"scanner\", \"secret\": \"*\", \"use\": [\"scan\"]}" \
        '"scan_budget": {"requests_per_minute": 5, "bytes_per_minute": 300000}'
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
cat >"$T/alert.sh" <<'SH'
#!/bin/sh
cat >>"$0.events"; echo >>"$0.events"
SH
chmod 0755 "$T/alert.sh"
R=$T/run
start_daemon A "$T/state" "$R" --audit-log "$T/audit.log" --alert-hook "$T/alert.sh" ||
        { bad "daemon did not start: $(cat "$T/daemon-A.out")"; finish; }
S="kQ7x$(rnd | head -c 12)"
printf '%s' "$S" | admin "$R" put short >/dev/null || bad "put short"
/usr/bin/python3 - "$S" "$T/guesses.txt" <<'PY'
import random, string, sys
real, out = sys.argv[1], sys.argv[2]
g = [''.join(random.choice(string.ascii_letters + string.digits) for _ in range(len(real))) for _ in range(10000)]
g[7777] = real
open(out, 'w').write('\n'.join(g) + '\n')
PY
chmod 0644 "$T/guesses.txt"
echo "clean tool output" >"$T/clean.txt"; chmod 0644 "$T/clean.txt"
scan_as() { as $U2 /usr/bin/python3 "$T/tool.py" "$R/tools.sock" scan "$1"; }

# Budgets count per minute: start well inside one so the window does not roll over mid-test.
[ $(( $(date +%s) % 60 )) -gt 40 ] && sleep $(( 61 - $(date +%s) % 60 ))
# Legitimate: the operator's scan on the admin socket gives the offset; a tool's clean scan is answered.
expect "legitimate: admin scan names the offset" "short	raw	$((7777 * (${#S} + 1)))" "$("$CLI" --admin-socket "$R/admin.sock" scan --admin "$T/guesses.txt")"
expect "legitimate: a tool's clean scan is answered" '200 {"findings":[]' "$(scan_as "$T/clean.txt")"

# Attack: 10,000 guesses in one body from the scan-only uid.
: >"$T/alert.sh.events"
out=$(scan_as "$T/guesses.txt")
expect "10,000 guesses: the hit is reported by name" '"name":"short"' "$out"
refute "...without an offset" '"offset"' "$out"
refute "...never with the value" "$S" "$out"
sleep 1
grep -q '"scan_hit"' "$T/alert.sh.events" && ok "...and the hit raised an alert" || bad "no scan_hit alert: $(head -c 300 "$T/alert.sh.events")"
# The same guesses again: 2 x 170 KB is over the 300 KB a minute of the policy.
out=$(scan_as "$T/guesses.txt")
expect "the bytes budget is hit" "429" "$out"
expect "...saying why" "bytes per minute" "$out"
# Bisecting needs many requests: the budget (5 per minute here) stops it.
codes=""
for i in 1 2 3; do codes="$codes $(scan_as "$T/clean.txt" | cut -d' ' -f1)"; done
expect "the requests budget is hit" "429" "$codes"
expect "...saying why" "scan budget" "$(scan_as "$T/clean.txt")"
sleep 1
grep -q '"scan_budget"' "$T/alert.sh.events" && ok "...and raises an alert" || bad "no scan_budget alert"
# Another uid is not charged for it: the admin socket has no budget.
expect "the admin socket has no budget" "short	raw" "$("$CLI" --admin-socket "$R/admin.sock" scan --admin "$T/guesses.txt")"
stop_daemon A
finish
