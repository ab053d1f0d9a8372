#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 14, case 4: paths the daemon and the CLI trust.
#   - the daemon refuses a run dir (state dir, policy) whose parent another
#     uid owns or anyone can write (it could rename the dir away and put
#     its own sockets there), also when reached through a symlink in such a
#     directory; /tmp-style sticky root-owned parents are accepted;
#   - the CLI checks who serves the socket (SO_PEERCRED) before it sends a
#     value: a socket served by another uid gets nothing, and `put` does not
#     say "stored"; --broker-uid names a broker that runs as that uid.
. "$(dirname "$0")/identity-lib.sh"
U2=61432
POLICY='{ "clients": {}, "grants": [], "admins": {"uids": [0]} }'
start_daemon
ok "legitimate: the daemon serves from $T/run (parents root-owned or sticky /tmp)"
kill "$PID"; wait "$PID" 2>/dev/null; PID=

# try_start NAME RUN_DIR [STATE_DIR [POLICY]]: the daemon must refuse to start.
try_start() {
        local name=$1 run=$2 state=${3:-$T/state} pol=${4:-$T/policy.json} out
        out=$(timeout 10 "$DAEMON" --state-dir "$state" --run-dir "$run" --policy "$pol" \
                --unlock "keyfile:$T/key" 2>&1 & p=$!; sleep 1.5; if kill -0 $p 2>/dev/null; then
                echo "STARTED"; kill $p; fi; wait $p 2>/dev/null)
        refute "$name: the daemon does not start" "STARTED" "$out"
        expect "$name: and says why" "refusing it" "$out"
}
mkdir -p "$T/evil" "$T/open" "$T/okdir"
chown $U2 "$T/evil"
chmod 0755 "$T/evil"
chmod 0777 "$T/open"
try_start "run dir whose parent uid $U2 owns" "$T/evil/run"
try_start "run dir whose parent is world-writable (not sticky)" "$T/open/run"
ln -s "$T/okdir" "$T/evil/link"
try_start "run dir reached through a symlink in uid $U2's directory" "$T/evil/link/run"
cp -a "$T/state" "$T/evil/state"
try_start "state dir whose parent uid $U2 owns" "$T/okdir/run" "$T/evil/state"
cp "$T/policy.json" "$T/okdir/policy.json"
ln -s "$T/okdir/policy.json" "$T/evil/policy.json"
try_start "policy reached through a symlink in uid $U2's directory" "$T/okdir/run2" "$T/state" "$T/evil/policy.json"

# A socket served by another uid: the CLI must not send it the value.
mkdir -p "$T/fake"
chown $U2 "$T/fake"
cat >"$T/fake.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
open(sys.argv[2], "wb").close()
for _ in range(4):
    c, _ = s.accept(); c.settimeout(2); got = b""
    try:
        while True:
            k = c.recv(65536)
            if not k: break
            got += k
            if b"\r\n\r\n" in got and len(got.split(b"\r\n\r\n", 1)[1]) >= 1: break
    except OSError: pass
    open(sys.argv[2], "ab").write(got)
    b = b'{"name":"x","version":1}'
    try: c.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(b) + b)
    except OSError: pass   # the CLI hung up without sending: what it should do
    c.close()
PY
run_as $U2 $PYBIN "$T/fake.py" "$T/fake/admin.sock" "$T/fake/got" &
EXTRA_CLEANUP="kill $! 2>/dev/null"
for _ in $(seq 50); do [ -S "$T/fake/admin.sock" ] && break; sleep 0.1; done
VALUE=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
out=$(printf '%s' "$VALUE" | timeout 20 "$CLI" --admin-socket "$T/fake/admin.sock" put demo 2>&1)
refute "put to a socket served by uid $U2 does not say stored" "stored" "$out"
expect "it says who serves the socket" "served by uid $U2" "$out"
if grep -q "$VALUE" "$T/fake/got" 2>/dev/null; then bad "the value reached uid $U2's socket"; else
        ok "the value did not reach uid $U2's socket"; fi
printf 'key=%s\n' "$VALUE" >"$T/text.txt"
out=$(timeout 20 "$CLI" --socket "$T/fake/admin.sock" scan "$T/text.txt" 2>&1)
expect "scan to a socket served by uid $U2 is refused" "served by uid $U2" "$out"
if grep -q "$VALUE" "$T/fake/got" 2>/dev/null; then bad "scan: the text reached uid $U2's socket"; else
        ok "scan: the text did not reach uid $U2's socket"; fi
out=$(printf '%s' "$VALUE" | timeout 20 "$CLI" --broker-uid $U2 --admin-socket "$T/fake/admin.sock" put demo 2>&1)
expect "--broker-uid $U2 names it the broker: then it is used" "stored" "$out"
finish
