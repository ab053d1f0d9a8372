#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `credbroker exec --proxy` hands its child a loopback URL; any local uid
# can bind that port while the broker does not hold it.  exec must check
# who serves the URL before it mints a token: a listener of another uid
# (not root, not the caller, not the broker's uid) gets nothing, and the
# child is never started.  Legitimate path first: the broker's own
# --listen-tcp on the same port.  In a private network namespace.
set -u
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (setpriv, network namespaces)"; exit 77; }
command -v unshare >/dev/null || { echo "SKIP: needs unshare (util-linux)"; exit 77; }
[ -n "${CB_SQUAT_IN_NS:-}" ] || exec unshare -n env CB_SQUAT_IN_NS=1 bash "$0" "$@"
: "${CB_BUILDDIR:?}"
ip link set lo up
CLI=${CREDBROKER_CLI:-$CB_BUILDDIR/client/credbroker}
DAEMON=${CREDBROKERD:-$CB_BUILDDIR/broker/credbrokerd}
PY=/usr/bin/python3
UA=61520 UV=61521 PORT=8411
T=$(mktemp -d /tmp/cb-squat.XXXXXX)
chmod 0755 "$T"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
cleanup() { for p in $(jobs -p); do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
as() { local u=$1; shift; timeout 30 setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }

"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { echo "FAIL init"; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "v": {"uid": $UV} },
  "grants": [ {"client": "v", "secret": "vic", "use": ["proxy"], "max_ttl": 600} ], "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
start() { # start [--listen-tcp ...]
        "$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
                "$@" >"$T/daemon.out" 2>&1 &
        DPID=$!
        for _ in $(seq 100); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
        [ -S "$T/run/admin.sock" ] || { echo "FAIL daemon did not start: $(cat "$T/daemon.out")"; exit 1; }
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null; }
start --listen-tcp 127.0.0.1:$PORT
printf %s 'sk-SQUATvalue-0123456789abcdef' | "$CLI" --admin-socket "$T/run/admin.sock" put vic \
        --host http://127.0.0.1:9 >/dev/null || bad "put"
out=$(as $UV env CREDBROKER_SOCKET="$T/run/tools.sock" "$CLI" exec --proxy vic -- sh -c 'echo "child ran: $OPENAI_BASE_URL"' 2>&1)
case "$out" in *"child ran: http://127.0.0.1:$PORT/v1/proxy/vic"*) ok "legitimate: exec --proxy against the broker's own listener runs the child" ;;
*) bad "legitimate exec --proxy: $out" ;; esac
stop

# uid UA squats the port; the broker runs without TCP.
touch "$T/squat.log"; chmod 0666 "$T/squat.log"
as $UA $PY -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
while True:
    c, _ = s.accept(); d = c.recv(65536)
    open(sys.argv[2], "ab").write(d + b"\n----\n")
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
' $PORT "$T/squat.log" &
for _ in $(seq 50); do $PY -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT)).close()" 2>/dev/null && break; sleep 0.1; done
start
out=$(as $UV env CREDBROKER_SOCKET="$T/run/tools.sock" "$CLI" exec --proxy vic -- sh -c 'echo "child ran"' 2>&1); rc=$?
case "$out" in *"child ran"*) bad "the child ran with uid $UA's listener at the proxy URL" ;;
*"served by uid $UA"*) ok "exec --proxy refuses a URL served by uid $UA, naming it (exit $rc)" ;;
*) bad "refused, but not saying by whom: $out" ;; esac
[ "$rc" != 0 ] && ok "non-zero exit ($rc)" || bad "exit 0 although refused"
grep -q "cbt_" "$T/squat.log" && bad "a token reached uid $UA's listener" || ok "no token reached uid $UA's listener"
n=$(curl -s --unix-socket "$T/run/admin.sock" http://x/v1/admin/status | grep -o '"tokens": *[0-9]*' | grep -o '[0-9]*$')
[ "$n" = 0 ] && ok "no token was minted" || bad "tokens minted: '$n'"
[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all passed"
