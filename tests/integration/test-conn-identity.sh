#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The connection's credentials are read once (SO_PEERCRED at accept), the
# identity on every request: on one keep-alive connection to the real
# daemon, under a real uid,
#   - a second request after the connecting process exec'd another binary
#     is judged as that binary (the policy's exe no longer matches);
#   - a request from a process the connection was handed to (same uid, same
#     executable) after the connecting process exited is refused: the
#     credentials still name the dead pid, and its pidfd says it is gone.
# Needs root (to switch uids); exits 77 naming what is missing otherwise.
set -uo pipefail

CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (to run clients under other uids)"; exit 77; }
for t in /usr/bin/python3 setpriv /bin/sh; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done

T=$(mktemp -d /tmp/cbd-connid.XXXXXX)
chmod 0755 "$T"
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
# expect NAME WANT_SUBSTRING GOT
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }

PYBIN=/usr/bin/python3
PY=$(readlink -f "$PYBIN")
U1=61260

"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "py-tool": {"uid": $U1, "exe": "$PY"} },
  "grants": [ {"client": "py-tool", "secret": "demo", "use": ["redeem"], "max_ttl": 60} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        >"$T/daemon.out" 2>&1 &
PID=$!
for _ in $(seq 50); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
[ -S "$T/run/admin.sock" ] || { bad "daemon did not start: $(tail -n 5 "$T/daemon.out")"; exit 1; }
TS=$T/run/tools.sock AS=$T/run/admin.sock
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' | timeout 30 "$CLI" --admin-socket "$AS" put demo >/dev/null ||
        { bad "put"; exit 1; }


# One HTTP/1.1 request on a kept-alive connection; its answer read by
# Content-Length.  Shared by both scenarios below.
cat >"$T/client.py" <<'PY'
import os, select, socket, sys
BODY = b'{"secret":"demo","use":"redeem"}'
def request(s, close=False):
    s.sendall(b"POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n"
              % (len(BODY), b"Connection: close\r\n" if close else b"") + BODY)
    d = b""
    while b"\r\n\r\n" not in d:
        k = s.recv(65536)
        if not k:
            return d.decode(errors="replace")
        d += k
    head, rest = d.split(b"\r\n\r\n", 1)
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(rest) < n:
        k = s.recv(65536)
        if not k:
            break
        rest += k
    return (head.split(b"\r\n")[0] + b" " + rest).decode(errors="replace")
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
print("first:", request(s), flush=True)
if sys.argv[2] == "exec":
    # The same process, now /bin/sh, sends the next request on the connection.
    os.dup2(s.fileno(), 3)
    os.set_inheritable(3, True)       # dup2(3, 3) would keep close-on-exec
    req = "POST /v1/token HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: %d\\r\\nConnection: close\\r\\n\\r\\n%s" % (
        len(BODY), BODY.decode())
    os.execv("/bin/sh", ["sh", "-c", "printf '%s' >&3; echo 'after exec:'; cat <&3; echo" % req])
# handover: a child keeps the connection, the connecting process exits.
r, w = os.pipe()
connector = os.getpid()
if os.fork() == 0:
    os.close(w)
    select.select([r], [], [], 10)    # EOF once the parent is gone
    for _ in range(200):              # and this process re-parented
        if os.getppid() != connector:
            break
        select.select([], [], [], 0.01)
    print("handed over:", request(s, close=True), flush=True)
    f = socket.socket(socket.AF_UNIX)
    f.connect(sys.argv[1])
    print("own connection:", request(f, close=True), flush=True)
    os._exit(0)
os._exit(0)
PY
chmod 0644 "$T/client.py"

out=$(timeout 30 setpriv --reuid $U1 --regid $U1 --clear-groups "$PYBIN" "$T/client.py" "$TS" exec 2>&1)
expect "first request on the connection (python3) gets a token" "first: HTTP/1.1 201" "$out"
expect "after exec, the same connection is judged as /bin/sh" "no grant" "$(echo "$out" | sed -n '/after exec:/,$p')"

out=$(timeout 30 setpriv --reuid $U1 --regid $U1 --clear-groups "$PYBIN" "$T/client.py" "$TS" handover 2>&1)
expect "first request before the hand-over gets a token" "first: HTTP/1.1 201" "$out"
expect "the handed-over connection is refused once its connector exited" "exited" "$(echo "$out" | grep '^handed over:')"
expect "that is a 403" "handed over: HTTP/1.1 403" "$out"
expect "the new holder's own connection gets a token" "own connection: HTTP/1.1 201" "$out"

kill -0 "$PID" 2>/dev/null || bad "daemon died: $(tail -n 5 "$T/daemon.out")"
echo "$fails failure(s)"
[ "$fails" = 0 ]
