#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 14, case 5: identity cost as a denial of service.  Another uid runs
# a 511 MiB sparse executable (a copy of python with a hole appended) and
# chmods it every 0.5 s, so its hash is never cached, while making
# requests.  A granted tool must still be served: its latency is measured
# and printed (figures, not a timed assertion); the test asserts only that
# every one of its requests is served, none times out (20 s).
#   A: the attacker's uid is selected by no client: nothing beyond its
#      credentials is read (lazy identity), nothing is hashed;
#   B: the attacker's uid is a policy client (granted something else): its
#      hashes run on the hash workers, one at a time and within its
#      bytes-per-minute budget, never on a serving thread.
. "$(dirname "$0")/identity-lib.sh"
U1=61451 UA=61452 UB=61453
SECS=${SECS:-8}
POLICY='{ "clients": { "tool": {"uid": '$U1', "exe": "'$PY'"}, "b": {"uid": '$UB'} },
  "grants": [ {"client": "tool", "secret": "demo", "use": ["redeem"], "max_ttl": 60},
              {"client": "b", "secret": "other", "use": ["redeem"]} ],
  "admins": {"uids": [0]} }'
start_daemon

cat >"$T/lat.py" <<'PY'
import socket, sys, time
path, secs = sys.argv[1], float(sys.argv[2])
BODY = b'{"secret":"demo","use":"redeem"}'
REQ = b"POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY) + BODY
lat, codes, end = [], {}, time.monotonic() + secs
while time.monotonic() < end:
    t = time.monotonic()
    s = socket.socket(socket.AF_UNIX); s.settimeout(20)
    try:
        s.connect(path); s.sendall(REQ); d = b""
        while True:
            k = s.recv(65536)
            if not k: break
            d += k
        code = d.split(b" ")[1].decode() if d else "EOF"
    except OSError as e:
        code = "timeout" if isinstance(e, socket.timeout) else "ERR"
    s.close()
    lat.append(time.monotonic() - t); codes[code] = codes.get(code, 0) + 1
    time.sleep(0.05)
lat.sort()
print("requests %d codes %s p50_ms %.1f max_ms %.1f" % (len(lat), codes, 1000 * lat[len(lat) // 2], 1000 * lat[-1]))
PY
# The attacker's program: connect, ask for a token, repeat.
cat >"$T/attack.py" <<'PY'
import socket, sys, time
end = time.monotonic() + float(sys.argv[2])
BODY = b'{"secret":"other","use":"redeem"}'
while time.monotonic() < end:
    s = socket.socket(socket.AF_UNIX); s.settimeout(30)
    try:
        s.connect(sys.argv[1])
        s.sendall(b"POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(BODY) + BODY)
        while s.recv(65536): pass
    except OSError: pass
    s.close()
PY
chmod 0644 "$T/lat.py" "$T/attack.py"

out=$(run_as $U1 $PYBIN "$T/lat.py" "$TS" 1 2>&1)
echo "     quiet:   $out"
expect "legitimate: the granted tool is served" "'201'" "$out"

attack() { # attack UID LABEL
        local u=$1 dir=$T/big.$1
        mkdir -p "$dir" && cp "$PY" "$dir/py" && truncate -s 511M "$dir/py" && chown -R "$u" "$dir"
        run_as "$u" sh -c "end=\$((\$(date +%s) + $SECS + 2)); while [ \$(date +%s) -lt \$end ]; do
                chmod 0755 '$dir/py'; chmod 0751 '$dir/py'; sleep 0.5; done" &
        for _ in 1 2; do
                timeout $((SECS + 30)) setpriv --reuid "$u" --regid "$u" --clear-groups "$dir/py" "$T/attack.py" \
                        "$TS" $((SECS + 2)) >/dev/null 2>&1 &
        done
        sleep 1
        out=$(run_as $U1 $PYBIN "$T/lat.py" "$TS" "$SECS" 2>&1)
        echo "     $2: $out"
        expect "$2: every request of the granted tool is served" "'201'" "$out"
        refute "$2: none timed out" "timeout" "$out"
        refute "$2: none refused or dropped" "'403'" "$out"
        wait_attack
}
wait_attack() { for j in $(jobs -p); do [ "$j" = "$PID" ] || wait "$j" 2>/dev/null; done; }
attack $UA "A (attacker uid selected by no client)"
attack $UB "B (attacker uid is a policy client)"
finish
