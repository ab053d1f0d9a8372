#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A grant removed by a reload while the caller's request waits for its
# executable's hash (red team rt6, finding F2).  The caller runs a large
# copy of python that it owns (a sparse tail makes it $MB MiB; its pages
# read as zeros, so only about 6 MiB of disk), its client pinned to that
# file by path and SHA-256.  It gets a redeem token, then `touch`es its
# executable: the content is the same (the token still matches) but the
# hash cache misses, so its next request waits while a hash worker reads
# $MB MiB -- a window as long as the caller likes.  During that wait the
# operator removes the grant (SIGHUP, then `credbroker policy reload`) and
# is told it is done.  The redeem must then be refused 403, not served
# under the policy in force when it arrived.
#   legitimate: the same touch-then-redeem with the grant in place is
#               served (the wait alone is no refusal);
#   attack:     2 rounds with SIGHUP and 2 with `policy reload`, each on a
#               fresh daemon (the per-uid budget is 1 GiB of hashing a
#               minute); the redeem must have been answered after the
#               reload answered (else the window was not exercised).
. "$(dirname "$0")/identity-lib.sh"
command -v sha256sum >/dev/null || { echo "SKIP: missing prerequisite: sha256sum"; exit 77; }
command -v truncate >/dev/null || { echo "SKIP: missing prerequisite: truncate"; exit 77; }
UA=61463
MB=${MB:-160}
ROUNDS=${ROUNDS:-2}

# The attacker's executable: its own copy of the interpreter, padded.
mkdir -p "$T/o"
cp "$PY" "$T/o/py" && truncate -s "${MB}M" "$T/o/py" || { bad "could not make the $MB MiB copy of $PY"; finish; }
chown -R $UA "$T/o"
chmod 0755 "$T/o" "$T/o/py"
SHA=$(sha256sum "$T/o/py" | cut -d' ' -f1)
pol() { # pol with|without: the client keeps a grant on demo either way
        local g='{"client": "a", "secret": "demo", "use": ["redeem"]}'
        [ "$1" = with ] && g="$g, {\"client\": \"a\", \"secret\": \"s\", \"use\": [\"redeem\"], \"max_ttl\": 600}"
        printf '{ "clients": { "a": {"uid": %s, "exe": "%s", "exe_sha256": "%s"} },\n  "grants": [ %s ],\n  "admins": {"uids": [0]} }\n' \
                $UA "$T/o/py" "$SHA" "$g" >"$T/policy.json.new"
        chmod 0644 "$T/policy.json.new"
        mv -f "$T/policy.json.new" "$T/policy.json"
}
POLICY=$(pol with; cat "$T/policy.json")
start_daemon --tool-threads 4
VAL="sk-hashwait-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf %s "$VAL" | timeout 30 "$CLI" --admin-socket "$AS" put s >/dev/null || { bad "put s"; finish; }

# restart: a fresh daemon on the same store, under the policy with the grant.
restart() {
        kill "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
        pol with
        "$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
                --tool-threads 4 >>"$T/daemon.out" 2>&1 &
        PID=$!
        for _ in $(seq 100); do
                [ -S "$AS" ] && timeout 5 "$CLI" --admin-socket "$AS" status >/dev/null 2>&1 && return 0
                sleep 0.05
        done
        bad "daemon did not restart: $(tail -n 5 "$T/daemon.out")"
        finish
}

cat >"$T/c.py" <<'PY'
import json, os, socket, sys, time
def send(body, path):
    s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(sys.argv[1])
    b = json.dumps(body).encode()
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (path, len(b)) + b)
    return s
def answer(s):
    d = b""
    while True:
        k = s.recv(65536)
        if not k: break
        d += k
    head, _, rest = d.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(rest or b"{}")
if sys.argv[2] == "token":  # token: print a redeem token for s
    st, o = answer(send({"secret": "s", "use": "redeem", "ttl": 600}, b"/v1/token"))
    print(o["token"] if st == 201 else "%d %s" % (st, o.get("message")))
else:  # redeem TOKEN SENTFILE: "SENT ANSWERED STATUS value=V|message"
    t0 = time.time()
    s = send({"token": sys.argv[3]}, b"/v1/redeem")
    open(sys.argv[4], "w").close()
    st, o = answer(s)
    print("%.6f %.6f %d %s" % (t0, time.time(), st, "value=" + o["value"] if "value" in o else o.get("message")))
PY
chmod 0644 "$T/c.py"
token() { run_as $UA "$T/o/py" "$T/c.py" "$TS" token 2>&1; }
# redeem_bg TOKEN: the redeem in the background (pid RP), its answer in $T/red;
# returns once the request is sent.
redeem_bg() {
        rm -f "$T/o/sent" "$T/red"
        run_as $UA "$T/o/py" "$T/c.py" "$TS" redeem "$1" "$T/o/sent" >"$T/red" 2>&1 &
        RP=$!
        for _ in $(seq 400); do [ -e "$T/o/sent" ] && return 0; sleep 0.01; done
        bad "the redeem was not sent within 4 s: $(cat "$T/red")"
}
now() { date +%s.%N; }

tok=$(token)
case "$tok" in cbt_*) ok "legitimate: a token for s from the $MB MiB copy" ;; *) bad "token: $tok"; finish ;; esac
run_as $UA touch "$T/o/py"
redeem_bg "$tok"
wait $RP
read -r s0 s1 st rest <"$T/red"
echo "     legitimate: the redeem after the touch took $(echo "$s1 - $s0" | bc) s (re-hash of $MB MiB)"
expect "legitimate: after the touch, the redeem is served (same content, same token)" "200 value=$VAL" "$st $rest"

for how in hup admin; do
        for r in $(seq "$ROUNDS"); do
                restart
                tok=$(token)
                case "$tok" in cbt_*) ;; *) bad "$how $r: token: $tok"; continue ;; esac
                run_as $UA touch "$T/o/py"
                redeem_bg "$tok"
                sleep 0.05 # read and dispatched: the request waits for the hash
                pol without
                t0=$(now)
                if [ $how = admin ]; then
                        out=$(timeout 30 "$CLI" --admin-socket "$AS" policy reload 2>&1) || bad "$how $r: policy reload: $out"
                else
                        n=$(grep -c "policy reloaded" "$T/daemon.out")
                        kill -HUP "$PID"
                        for _ in $(seq 1000); do
                                [ "$(grep -c "policy reloaded" "$T/daemon.out")" -gt "$n" ] && break
                                sleep 0.005
                        done
                fi
                t1=$(now)
                wait $RP
                read -r s0 s1 st rest <"$T/red"
                res="$st $(echo "$rest" | sed "s/^value=$VAL\$/value=(the secret)/" | cut -c1-90)"
                echo "     $how $r: redeem sent $(echo "$s0 - $t0" | bc | sed 's/^-//') s before the reload began, answered" \
                        "$(echo "$s1 - $t1" | bc) s after it answered: $res"
                if [ "$(echo "$s1 > $t1" | bc)" = 1 ]; then
                        ok "$how $r: the redeem was still waiting for its hash when the reload answered"
                else
                        bad "$how $r: the redeem answered before the reload did: the window was not exercised"
                fi
                refute "$how $r: the value is not served after the grant's removal answered" "value=" "$res"
                expect "$how $r: the waiting redeem is refused 403" "403" "$st"
                expect "$how $r: a fresh redeem is refused 403" "403" "$(run_as $UA "$T/o/py" "$T/c.py" "$TS" redeem "$tok" "$T/o/sent2" 2>&1 | cut -d' ' -f3-)"
        done
done
finish
