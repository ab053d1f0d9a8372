#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# SIGKILL through the real daemon and CLI (issue 15 item 8): each iteration
# starts credbrokerd, runs one write through the CLI (put, rotate, rotate
# --leaked, version destroy, import of a sealed blob, a scanner sighting that
# marks the value leaked), kills the daemon
# with SIGKILL at a random moment, restarts it and checks that no
# acknowledged write was lost: the current value is the acknowledged one
# (a scanner sighting: the secret stays compromised)
# (or, for a write that was not acknowledged, the one before or the one
# attempted: never anything else); an acknowledged leak stays leaked (its
# value refused by put); an acknowledged destroy stays destroyed; the store
# always opens.  CB_STATE_CRASH_ITERATIONS (default 100 in `meson test`;
# the full run is 1,000: tests/adversarial/state-crash-full.sh).
. "$(dirname "$0")/state-lib.sh"
N=${CB_STATE_CRASH_ITERATIONS:-100}
SECRETS="c0 c1 c2 c3"
write_policy "$T/policy.json"
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
R=$T/run
declare -A cur leaked_vals
start_daemon A "$T/state" "$R" || { bad "daemon did not start: $(cat "$T/daemon-A.out")"; finish; }
for s in $SECRETS; do
        v="sk-crash-$s-0-$(rnd)"
        printf '%s' "$v" | admin "$R" put $s >/dev/null || bad "put $s"
        cur[$s]=$v
done
PK=$(admin "$R" pubkey 2>/dev/null | head -1)
stop_daemon A
lost=0 acked=0 unacked=0 opened=0
for i in $(seq "$N"); do
        rm -f "$R/admin.sock" "$R/tools.sock"
        start_daemon A "$T/state" "$R" || { bad "iteration $i: the daemon does not start: $(tail -2 "$T/daemon-A.out")"; break; }
        opened=$((opened + 1))
        s=c$((RANDOM % 4)) v="sk-crash-$i-$(rnd)"
        case $((RANDOM % 6)) in
        5) op=leak   # the scanner sights the current value: marked leaked
           printf 'output: %s\n' "${cur[$s]}" >"$T/leak.txt"; chmod 0644 "$T/leak.txt"; cmd=() ;;
        0) op=put; cmd=(put "$s") ;;
        1) op=rotate; cmd=(rotate "$s" --grace 0) ;;
        2) op=leaked; cmd=(rotate "$s" --leaked) ;;
        3) op=destroy
           ver=$(admin "$R" versions "$s" --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys
o=json.load(sys.stdin); l=[x["version"] for x in o["versions"] if x["state"] in ("previous","disabled")]
print(l[0] if l else "")')
           [ -z "$ver" ] && { op=put; cmd=(put "$s"); } || cmd=(version destroy "$s" "$ver") ;;
        4) op=import
           printf '%s' "$v" | "$CLI" seal --recipient "$PK" --name "$s" >"$T/$s.cbseal" 2>/dev/null
           cmd=(import "$T/$s.cbseal") ;;
        esac
        if [ $op = leak ]; then
                ( o=$(as $U1 /usr/bin/python3 "$T/tool.py" "$R/tools.sock" scan "$T/leak.txt" 2>/dev/null)
                  case $o in "200 "*'"name":"'$s'"'*) echo 0 ;; *) echo 1 ;; esac >"$T/rc" ) &
        elif [ $op = import ]; then
                ( admin "$R" "${cmd[@]}" >/dev/null 2>&1; echo $? >"$T/rc" ) &
        else
                ( printf '%s' "$v" | admin "$R" "${cmd[@]}" >/dev/null 2>&1; echo $? >"$T/rc" ) &
        fi
        cp=$!
        sleep "$(printf "0.%03d" $((RANDOM % 400)))"
        kill -9 "$PID_A" 2>/dev/null; wait "$PID_A" 2>/dev/null; PID_A=
        wait $cp
        rc=$(cat "$T/rc")
        rm -f "$R/admin.sock" "$R/tools.sock" # left by the SIGKILL: start_daemon waits for the new ones
        start_daemon A "$T/state" "$R" || { bad "iteration $i: the store does not open after the kill: $(tail -2 "$T/daemon-A.out")"; break; }
        got=$(fetch "$R" "$s"); got=${got#200 }
        if [ "$rc" = 0 ]; then
                acked=$((acked + 1))
                case $op in
                put|rotate|leaked|import)
                        [ "$got" = "$v" ] || { lost=$((lost + 1)); bad "iteration $i: acknowledged $op of $s lost (current: ${got:0:40})"; }
                        [ $op = leaked ] && leaked_vals[${cur[$s]}]=$s
                        cur[$s]=$v ;;
                leak)
                        case $got in "403 "*leaked*) ;; *) lost=$((lost + 1)); bad "iteration $i: acknowledged leak of $s lost (${got:0:40})" ;; esac
                        leaked_vals[${cur[$s]}]=$s ;;
                destroy)
                        st=$(admin "$R" versions "$s" --json 2>/dev/null | tr -d ' ')
                        case $st in *"\"version\":$ver,\"state\":\"destroyed\""*) ;; *) lost=$((lost + 1)); bad "iteration $i: acknowledged destroy of $s v$ver lost" ;; esac ;;
                esac
        else
                unacked=$((unacked + 1))
                if [ "$got" = "$v" ]; then cur[$s]=$v
                elif [ "$got" != "${cur[$s]}" ] && [ $op != destroy ]; then
                        case $got in "403 "*"leaked"*) ;; *) bad "iteration $i: unacknowledged $op left $s at neither value (${got:0:60})" ;; esac
                fi
        fi
        stop_daemon A
done
# Every acknowledged leak stays leaked across all those kills.
start_daemon A "$T/state" "$R" || bad "final start"
nleak=0
for lv in "${!leaked_vals[@]}"; do
        nleak=$((nleak + 1))
        out=$(printf '%s' "$lv" | admin "$R" put "${leaked_vals[$lv]}" 2>&1)
        case $out in *"marked leaked"*) ;; *) bad "a value leaked before a kill can be put again (${leaked_vals[$lv]})" ;; esac
done
expect "the store verifies after $N kills" "ok: store" "$(stop_daemon A; "$CLI" check --state-dir "$T/state" --unlock "keyfile:$T/key" 2>&1)"
echo "     $N kills: $acked acknowledged writes, $unacked not acknowledged, $lost lost; $nleak leaked values still refused; store opened $opened times"
[ $lost = 0 ] && ok "0 acknowledged writes lost in $N SIGKILLs" || bad "$lost acknowledged writes lost"
finish
