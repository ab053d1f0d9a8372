#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A leak response racing redeems (issue 18).  /v1/redeem runs under no
# daemon-wide lock: it checks its token, reads the value under the store's
# read side, and counts the use at its decision point, which fails if the
# token was revoked since (api_tool.c).  A leak response marks the secret,
# then revokes its tokens, then cuts.  So once the leak response has
# answered, no redeem may serve the leaked value: a redeem sent after the
# scan answered is refused, and one that was decided before it answered
# got the value only if it was decided before the revocation.
# Each round: 8 redeemer threads of the tool (raw HTTP on tools.sock, one
# connection per request, a token each, minted before) redeem s in a loop
# while an admin /v1/scan sights s's current value (on_leak revoke).  Then:
# no redeem sent after the scan's answer got a value; the round covered
# the scan (values served before it, refusals after it); every token is
# dead; the scan's leak record is in the audit log.  A planned rotation
# clears the secret for the next round.
. "$(dirname "$0")/state-lib.sh"
ROUNDS=${ROUNDS:-5}
SECRETS="s"
write_policy "$T/policy.json" "" '"secrets": {"s": {"on_leak": "revoke"}}'
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; finish; }
R=$T/run
start_daemon A "$T/state" "$R" --tool-threads 8 --refusals-recorded 0 --audit-log "$T/audit.log" ||
        { bad "daemon did not start: $(cat "$T/daemon-A.out")"; finish; }

cat >"$T/race.py" <<'PY'
import json, os, socket, sys, threading, time
def call(sock, path, body):
    s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sock)
    b = json.dumps(body).encode()
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (path.encode(), len(b)) + b)
    d = b""
    while True:
        k = s.recv(65536)
        if not k: break
        d += k
    s.close()
    head, _, rest = d.partition(b"\r\n\r\n")
    try: o = json.loads(rest or b"{}")
    except ValueError: o = {}
    return int(head.split()[1]), o
mode, sock = sys.argv[1], sys.argv[2]
if mode == "redeem":  # redeem SOCK THREADS STOPFILE STARTEDFILE: one JSON line per answer:
    # [sent, answered, status, value-or-message]; each thread stops at its first refusal
    toks = []
    for _ in range(int(sys.argv[3])):
        st, o = call(sock, "/v1/token", {"secret": "s", "use": "redeem", "ttl": 600})
        if st != 201: sys.exit("token: %d %s" % (st, o))
        toks.append(o["token"])
    out, lock = [], threading.Lock()
    def loop(tok):
        while not os.path.exists(sys.argv[4]):
            t0 = time.time()
            try: st, o = call(sock, "/v1/redeem", {"token": tok})
            except OSError as e: st, o = -1, {"message": str(e)}
            with lock: out.append((t0, time.time(), st, o.get("value") if st == 200 else o.get("message", "")))
            if st == 200 and not os.path.exists(sys.argv[5]): open(sys.argv[5], "w").close()
            if st != 200: break
    ths = [threading.Thread(target=loop, args=(t,)) for t in toks]
    for t in ths: t.start()
    for t in ths: t.join()
    for r in out: print(json.dumps(r))
    for t in toks:  # every token of s must be dead now
        if call(sock, "/v1/introspect", {"token": t})[0] == 200: print(json.dumps([0, 0, "live", ""]))
PY
chmod 0644 "$T/race.py"
mkdir -m 0755 "$T/w" && chown $U1 "$T/w"

V="sk-rrace-$(rnd)"
printf '%s' "$V" | admin "$R" put s >/dev/null || bad "put s"
for r in $(seq "$ROUNDS"); do
        rm -f "$T/stop" "$T/w/started"
        as $U1 /usr/bin/python3 "$T/race.py" redeem "$R/tools.sock" 8 "$T/stop" "$T/w/started" >"$T/red.$r" 2>"$T/red.$r.err" &
        ip=$!
        for _ in $(seq 500); do [ -e "$T/w/started" ] && break; sleep 0.02; done
        sleep 0.2
        t0=$(date +%s.%N)
        sc=$(printf 'tool output: %s\n' "$V" | admin "$R" scan --admin - 2>&1)
        t1=$(date +%s.%N)
        sleep 0.3
        touch "$T/stop"
        wait $ip
        read -r served after refused live < <(python3 -c '
import json, sys
t1 = float(sys.argv[2]); served = after = refused = live = 0
for l in open(sys.argv[1]):
    t0, ta, st, v = json.loads(l)
    if st == "live": live += 1; continue
    if st == 200:
        served += 1
        if t0 > t1:
            after += 1
            if after <= 3: print("   served after the leak response answered: sent %+.4f s, answered %+.4f s" % (t0 - t1, ta - t1), file=sys.stderr)
    elif st == 401: refused += 1
print(served, after, refused, live)' "$T/red.$r" "$t1" 2>"$T/chk.$r.err")
        echo "     round $r: scan took $(echo "$t1 - $t0" | bc) s; values served $served, of them sent after the scan answered: $after; refused $refused; live tokens after: $live"
        cat "$T/chk.$r.err"
        expect "round $r: the scan sighted s" "s	raw" "$sc"
        [ "${served:-0}" -gt 0 ] && [ "${refused:-0}" -gt 0 ] && ok "round $r: the redeemers ran across the scan" ||
                bad "round $r: the redeemers did not run across the scan (served ${served:-?}, refused ${refused:-?}; $(head -c 300 "$T/red.$r.err"))"
        [ "${after:-x}" = 0 ] && ok "round $r: no redeem sent after the leak response answered got the value" ||
                bad "round $r: ${after:-?} redeem(s) sent after the leak response answered got the value"
        [ "${live:-x}" = 0 ] && ok "round $r: every token of s is dead" || bad "round $r: ${live:-?} token(s) of s live"
        V="sk-rrace-$(rnd)"
        printf '%s' "$V" | admin "$R" rotate s >/dev/null 2>&1 || bad "round $r: rotate s"
done
expect "after the rounds: the tool is served the rotated value" "200 $V" "$(fetch "$R" s)"
n=$(grep -c '"decision":"leak"' "$T/audit.log")
[ "$n" -ge "$ROUNDS" ] && ok "the audit log holds a leak record for each scan ($n)" ||
        bad "the audit log holds $n leak record(s) for $ROUNDS scans"
stop_daemon A
finish
