#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# credbroker rotate NAME --leaked --hook CMD contains at once (issue 15 item
# 4): while a tool polls fetch, the old value is never served again from
# the moment the rotation starts — not while the hook runs, not after it
# fails, not after it hangs past --hook-timeout (killed) — and a failed or
# timed-out hook raises rotation_failed (alert and audit).  A working hook
# first (legitimate path).
. "$(dirname "$0")/state-lib.sh"
SECRETS="api"
write_policy "$T/policy.json"
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
cat >"$T/alert.sh" <<'SH'
#!/bin/sh
cat >>"$0.events"; echo >>"$0.events"
SH
chmod 0755 "$T/alert.sh"
R=$T/run
start_daemon A "$T/state" "$R" --audit-log "$T/audit.log" --alert-hook "$T/alert.sh" ||
        start_daemon A "$T/state" "$R" --audit-log "$T/audit.log" || { bad "daemon did not start: $(cat "$T/daemon-A.out")"; finish; }

# poll OUT SECONDS: fetch api as fast as possible, one result per line.
poll() { local end=$((SECONDS + $2)); while [ $SECONDS -lt $end ]; do fetch "$R" api; done >"$1"; }

# Legitimate: a working hook rotates; the tool then gets the new value.
V0="sk-cli-zero-$(rnd)"
printf '%s' "$V0" | admin "$R" put api >/dev/null || bad "put api"
out=$(admin "$R" rotate api --leaked --hook "echo sk-cli-new-$(rnd)" 2>&1)
expect "legitimate: a working hook rotates" "is current" "$out"
case $(fetch "$R" api) in "200 sk-cli-new-"*) ok "legitimate: the new value is served" ;; *) bad "legitimate: new value not served" ;; esac

for kind in hang fail; do
        V="sk-cli-$kind-$(rnd)"
        printf '%s' "$V" | admin "$R" rotate api --grace 0 >/dev/null || bad "rotate api to the $kind value"
        expect "$kind: served before the leak" "200 $V" "$(fetch "$R" api)"
        poll "$T/poll-$kind" 6 &
        pp=$!
        sleep 0.5
        t0=$SECONDS
        case $kind in
        hang) out=$(admin "$R" rotate api --leaked --hook-timeout 2 --hook 'sleep 30; echo sk-never' 2>&1) ;;
        fail) out=$(admin "$R" rotate api --leaked --hook 'sleep 1; exit 3' 2>&1) ;;
        esac
        took=$((SECONDS - t0))
        wait $pp
        [ "$kind" = hang ] && { [ $took -le 10 ] && ok "hang: the hook is killed at its timeout (${took} s)" || bad "hang: the CLI waited ${took} s"; }
        expect "$kind: the CLI says it stays compromised" "stays marked compromised" "$out"
        # Every fetch from the rotation's start on: never the leaked value.  The poll
        # ran 0.5 s before it, so the first lines may be the value; after the first
        # refusal, never again.
        after=$(awk -v v="200 $V" 'seen && $0 == v {print "served again"; exit} $0 != v {seen=1}' "$T/poll-$kind")
        [ -z "$after" ] && ok "$kind: once refused, the leaked value is never served again ($(wc -l <"$T/poll-$kind") fetches)" ||
                bad "$kind: the leaked value was served after the containment"
        grep -q "was seen leaked" "$T/poll-$kind" && ok "$kind: fetches were refused as compromised while the hook ran" ||
                bad "$kind: no fetch was refused while the hook ran: $(sort "$T/poll-$kind" | uniq -c | head -3)"
        expect "$kind: still compromised after the hook" "was seen leaked" "$(fetch "$R" api)"
        grep -q '"rotation_failed"' "$T/audit.log" && ok "$kind: rotation_failed audited" || bad "$kind: rotation_failed not in the audit log"
        if [ -f "$T/alert.sh.events" ]; then
                grep -q 'rotation_failed' "$T/alert.sh.events" && ok "$kind: rotation_failed alert raised" || bad "$kind: no rotation_failed alert"
        fi
        refute "$kind: the value is in no message" "$V" "$out"
        # The operator's next rotation succeeds; the leaked value can never be put back.
        printf 'sk-cli-after-%s-%s' "$kind" "$(rnd)" | admin "$R" rotate api >/dev/null || bad "$kind: rotation after the failure"
        expect "$kind: the leaked value cannot be put back" "marked leaked" "$(printf '%s' "$V" | admin "$R" put api 2>&1)"
done
refute "no value in the audit log" "sk-cli-" "$(cat "$T/audit.log")"
stop_daemon A
finish
