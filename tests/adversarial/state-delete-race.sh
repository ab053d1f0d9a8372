#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A delete racing token issue (red team rt6, finding P1).  /v1/token runs
# without the daemon-wide lock, and it accepted a deleted name (whose
# destroyed versions stay listed); the delete revoked the secret's tokens
# before it deleted, so an issue in between, or any issue after it,
# minted a token that stayed live -- and redeemed the value the name was
# put again with.  Each round: 8 issuer threads of the tool (raw HTTP on
# tools.sock, one connection per request) ask for redeem tokens for s
# while the operator deletes s.  Once the delete has answered, every token
# minted in the round is introspected by its holder: none may be live.
# Then s is put again with a new value and every token minted in the round
# tries to redeem it: none may.
. "$(dirname "$0")/state-lib.sh"
ROUNDS=${ROUNDS:-5}
SECRETS="s"
write_policy "$T/policy.json"
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; finish; }
R=$T/run
# --refusals-recorded 0: introspecting thousands of revoked tokens is thousands of
# refusals, past the default 600 a minute after which a uid's refusals are 429.
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
if mode == "issue":  # issue SOCK THREADS STOPFILE STARTEDFILE: one JSON line per answer: [sent, answered, status,
    # token-or-message]; STARTEDFILE made at the first token; each thread stops at its first refusal
    out, lock = [], threading.Lock()
    def loop():
        while not os.path.exists(sys.argv[4]):
            t0 = time.time()
            try: st, o = call(sock, "/v1/token", {"secret": "s", "use": "redeem", "ttl": 600})
            except OSError as e: st, o = -1, {"message": str(e)}
            with lock: out.append((t0, time.time(), st, o.get("token") if st == 201 else o.get("message", "")))
            if st == 201 and not os.path.exists(sys.argv[5]): open(sys.argv[5], "w").close()
            if st != 201: break  # refused: seen leaked (each refusal counts against the uid's budget)
    ths = [threading.Thread(target=loop) for _ in range(int(sys.argv[3]))]
    for t in ths: t.start()
    for t in ths: t.join()
    for r in out: print(json.dumps(r))
elif mode == "redeem":  # redeem SOCK ANSWERS: every minted token tries to redeem; prints how many were served
    n = 0
    for l in open(sys.argv[3]):
        t0, t1, st, tok = json.loads(l)
        if st == 201 and call(sock, "/v1/redeem", {"token": tok})[0] == 200: n += 1
    print(n)
elif mode == "live":  # live SOCK ANSWERS SCAN_ANSWERED_AT: introspect every minted token
    n = live = before = 0
    for l in open(sys.argv[3]):
        t0, t1, st, tok = json.loads(l)
        if st != 201: continue
        n += 1; before += t0 < float(sys.argv[4])
        if call(sock, "/v1/introspect", {"token": tok})[0] == 200:
            live += 1
            if live <= 3: print("   live: sent %+.3f s, answered %+.3f s rel. to the scan's answer" % (t0 - float(sys.argv[4]), t1 - float(sys.argv[4])), file=sys.stderr)
    print(n, before, live)
PY
chmod 0644 "$T/race.py"
mkdir -m 0755 "$T/w" && chown $U1 "$T/w"

V="sk-race-$(rnd)"
printf '%s' "$V" | admin "$R" put s >/dev/null || bad "put s"
expect "legitimate: the tool is served before any leak" "200 $V" "$(fetch "$R" s)"
for r in $(seq "$ROUNDS"); do
        rm -f "$T/stop" "$T/w/started"
        as $U1 /usr/bin/python3 "$T/race.py" issue "$R/tools.sock" 8 "$T/stop" "$T/w/started" >"$T/iss.$r" 2>"$T/iss.$r.err" &
        ip=$!
        for _ in $(seq 500); do [ -e "$T/w/started" ] && break; sleep 0.02; done
        sleep 0.2
        t0=$(date +%s.%N)
        dl=$(admin "$R" delete s --yes 2>&1)
        t1=$(date +%s.%N)
        sleep 0.3
        touch "$T/stop"
        wait $ip
        read -r n before live < <(as $U1 /usr/bin/python3 "$T/race.py" live "$R/tools.sock" "$T/iss.$r" "$t1" 2>"$T/live.$r.err")
        gone=$(grep -c 'no secret named' "$T/iss.$r")
        echo "     round $r: delete took $(echo "$t1 - $t0" | bc) s; tokens minted $n ($before requested before the delete answered), refused as unknown $gone, live after the delete: $live"
        cat "$T/live.$r.err"
        python3 -c 'import json,sys,collections; c=collections.Counter("%s %s" % (x[2], x[3][:70] if x[2] != 201 else "") for x in map(json.loads, open(sys.argv[1]))); print("     answers:", dict(c.most_common(4)))' "$T/iss.$r"
        expect "round $r: the delete answered" "deleted" "$dl"
        [ "${before:-0}" -gt 0 ] && [ "$gone" -gt 0 ] && ok "round $r: the issuers ran across the delete" ||
                bad "round $r: the issuers did not run across the delete (minted before: ${before:-?}, refused after: $gone; $(head -c 300 "$T/iss.$r.err"))"
        [ "${live:-x}" = 0 ] && ok "round $r: no token for s is live once the delete answered" ||
                bad "round $r: ${live:-?} token(s) for the deleted s still live after the delete answered"
        V="sk-race-$(rnd)"
        printf '%s' "$V" | admin "$R" put s >/dev/null 2>&1 || bad "round $r: put s again"
        served=$(as $U1 /usr/bin/python3 "$T/race.py" redeem "$R/tools.sock" "$T/iss.$r" 2>&1)
        [ "$served" = 0 ] && ok "round $r: no token minted for the deleted s redeems the value put again" ||
                bad "round $r: $served token(s) minted for the deleted s redeemed the value put again"
done
expect "after the rounds: the tool is served the value put last" "200 $V" "$(fetch "$R" s)"
stop_daemon A
finish
