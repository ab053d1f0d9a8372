#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Leak marks are sealed store records (issue 15 items 2 and 3): deleting,
# emptying, editing or restoring an older copy of what records a leak never
# makes the leaked value redeemable again; the leaked value is refused by
# put (any secret), rotate and import, and never echoed; a leaked version is
# never redeemable by number, grace or not.  Keyfile store, then the same
# rollback on a tpm2 store (swtpm), where the NV counter covers the marks.
. "$(dirname "$0")/state-lib.sh"
SECRETS="api other fresh"
write_policy "$T/policy.json" "" '"secrets": {"api": {"on_leak": "revoke"}}'
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
V1="sk-leak-one-$(rnd)" V2="sk-leak-two-$(rnd)" V3="sk-leak-three-$(rnd)"
R=$T/run

start_daemon A "$T/state" "$R" || { bad "daemon did not start: $(cat "$T/daemon-A.out")"; finish; }
printf '%s' "$V1" | admin "$R" put api >/dev/null || bad "put api"
expect "legitimate: served before the leak" "200 $V1" "$(fetch "$R" api)"
printf 'tool output: key=%s\n' "$V1" >"$T/leak.txt"
chmod 0644 "$T/leak.txt"
expect "the scanner sees the leak" '"name":"api"' "$(as $U1 /usr/bin/python3 "$T/tool.py" "$R/tools.sock" scan "$T/leak.txt")"
expect "compromised at once" "was seen leaked" "$(fetch "$R" api)"
cp -a "$T/state" "$T/state.after-leak"

# Attack: the marks' old home is deleted, emptied or edited between restarts.
for how in delete empty edited; do
        stop_daemon A
        case $how in
        delete) rm -f "$T/state/leaks.json" ;;
        empty) : >"$T/state/leaks.json" ;;
        edited) printf '{"compromised":{"api":99}}' >"$T/state/leaks.json" ;;
        esac
        chmod 0600 "$T/state/leaks.json" 2>/dev/null
        start_daemon A "$T/state" "$R"
        out=$(fetch "$R" api)
        refute "leaks.json $how: the leaked value is not served" "$V1" "$out"
        [ -n "${PID_A:-}" ] && kill -0 "$PID_A" 2>/dev/null && expect "...still compromised" "was seen leaked" "$out" ||
                ok "...the daemon refuses to start instead ($(tail -1 "$T/daemon-A.out" | cut -c1-100))"
done
rm -f "$T/state/leaks.json"
[ -n "${PID_A:-}" ] && kill -0 "$PID_A" 2>/dev/null || start_daemon A "$T/state" "$R" || bad "restart"

# Attack: the mark's record in the sealed log edited: the store refuses to open.
stop_daemon A
log=$(ls "$T/state"/log-* | head -1)
cp "$log" "$T/log.bak"
sz=$(stat -c %s "$log")
printf '\xff' | dd of="$log" bs=1 seek=$((sz - 40)) conv=notrunc 2>/dev/null
start_daemon A "$T/state" "$R" && { bad "an edited mark record opens"; stop_daemon A; } || ok "an edited mark record: the daemon refuses to start"
cp "$T/log.bak" "$log"
start_daemon A "$T/state" "$R" || bad "restart after restoring the log"

# The leaked value never comes back: put (same or other secret), rotate, import.
out=$(printf '%s' "$V1" | admin "$R" put api 2>&1)
expect "put of the leaked value refused" "marked leaked" "$out"
refute "...without echoing it" "$V1" "$out"
out=$(printf '%s' "$V1" | admin "$R" put other 2>&1)
expect "put of the leaked value under another name refused" "marked leaked" "$out"
out=$(printf '%s' "$V1" | admin "$R" rotate api 2>&1)
expect "rotate to the leaked value refused" "equals version 1" "$out"
refute "...without echoing it" "$V1" "$out"
pk=$(admin "$R" pubkey 2>/dev/null | head -1)
printf "%s" "$V1" | "$CLI" seal --recipient "$pk" --name fresh >"$T/fresh.cbseal" 2>"$T/seal.err" || bad "seal: $(cat "$T/seal.err")"
out=$(admin "$R" import "$T/fresh.cbseal" 2>&1)
expect "import of the leaked value refused" "0 of 1 imported" "$out"
expect "...saying why" "leaked" "$out"
refute "...without echoing it" "$V1" "$out"
expect "...and nothing was stored" "404" "$(fetch "$R" fresh)"

# A plain rotation after a scanner-detected leak: version 1 is not served by number, even in the grace.
printf '%s' "$V2" | admin "$R" rotate api --grace 300 >/dev/null || bad "rotate api"
expect "legitimate: the new value is served" "200 $V2" "$(fetch "$R" api)"
out=$(fetch "$R" api 1)
refute "the leaked version is not served by number in the grace" "$V1" "$out"
expect "...saying why" "leaked" "$out"
# rotate --leaked from the CLI: the old value is marked too, and refused afterwards.
printf '%s' "$V3" | admin "$R" rotate api --leaked >/dev/null || bad "rotate --leaked"
expect "after rotate --leaked: put of the old value refused" "marked leaked" "$(printf '%s' "$V2" | admin "$R" put api 2>&1)"
out=$(fetch "$R" api 2)
refute "...and the old version is not served by number" "$V2" "$out"

# Restoring the store copied right after the leak, minus later marks: while the daemon runs it is noticed.
cp -a "$T/state/." "$T/state.now"
cp -a "$T/state.after-leak/header" "$T/state/header.new" && mv "$T/state/header.new" "$T/state/header"
cp -a "$T/state.after-leak"/log-* "$T/state/" 2>/dev/null
out=$(fetch "$R" api)
refute "a store copy put back under the daemon is not served" "200 " "$out"
stop_daemon A

# tpm2 (swtpm): restoring a copy from before the leak (marks and all) is refused at start.
if command -v swtpm >/dev/null && command -v tpm2_getcap >/dev/null; then
        port=$(/usr/bin/python3 -c 'import socket
for _ in range(200):
    s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; t=socket.socket()
    try: t.bind(("127.0.0.1",p+1))
    except OSError: s.close(); continue
    s.close(); t.close(); print(p); break')
        mkdir -p "$T/tpm"
        swtpm socket --tpm2 --server type=tcp,port=$port,bindaddr=127.0.0.1 --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
                --flags not-need-init,startup-clear --tpmstate dir="$T/tpm" >>"$T/swtpm.log" 2>&1 &
        PIDS="$PIDS $!"
        TCTI=swtpm:host=127.0.0.1,port=$port
        for _ in $(seq 50); do TPM2TOOLS_TCTI=$TCTI tpm2_getcap properties-fixed >/dev/null 2>&1 && break; sleep 0.1; done
        "$CLI" init --state-dir "$T/tstate" --unlock tpm2 --tpm2-tcti "$TCTI" >/dev/null 2>&1 || bad "init tpm2"
        UNLOCK=tpm2
        start_daemon P "$T/tstate" "$T/trun" || bad "tpm2 daemon did not start: $(tail -2 "$T/daemon-P.out")"
        printf '%s' "$V1" | admin "$T/trun" put api >/dev/null || bad "put api (tpm2)"
        expect "tpm2 legitimate: served" "200 $V1" "$(fetch "$T/trun" api)"
        stop_daemon P
        cp -a "$T/tstate" "$T/tstate.before"
        start_daemon P "$T/tstate" "$T/trun" || bad "tpm2 restart"
        as $U1 /usr/bin/python3 "$T/tool.py" "$T/trun/tools.sock" scan "$T/leak.txt" >/dev/null
        expect "tpm2: compromised" "was seen leaked" "$(fetch "$T/trun" api)"
        stop_daemon P
        rm -rf "$T/tstate" && cp -a "$T/tstate.before" "$T/tstate"
        rm -f "$T/tstate/leaks.json"
        start_daemon P "$T/tstate" "$T/trun"
        out=$(fetch "$T/trun" api)
        refute "tpm2: the pre-leak copy put back does not serve the leaked value" "$V1" "$out"
        expect "...the daemon refuses the rolled-back store" "older" "$(cat "$T/daemon-P.out")"
        stop_daemon P
        unset UNLOCK TCTI
else
        echo "SKIP part: swtpm or tpm2-tools absent (the tpm2 rollback of marks)"
fi
finish
