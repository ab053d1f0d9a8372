#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A socket's connection cap (CB_CONN_MAX, 4,096 on tools.sock): 32 uids
# hold 128 idle connections each (each uid's own most), 4,096 in all.  The
# next connection, of a 33rd uid, is answered at once — 503 server_busy —
# and counted: `status`, credbroker_connections_refused_total (exactly the
# refusals the clients saw), a line on stderr.  A uid at its own cap is
# still told that (429).  admin.sock keeps serving; once the idle
# connections close the 33rd uid is served.  (Before, the 4,097th
# connection waited unseen in the listen queue and was never counted.)
# Needs root (connections under other uids) and 10,000 file descriptors.
set -uo pipefail

CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (to connect under other uids)"; exit 77; }
for t in curl /usr/bin/python3 setpriv; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done
hard=$(ulimit -Hn)
[ "$hard" = unlimited ] || [ "$hard" -ge 10000 ] ||
        { echo "SKIP: missing prerequisite: a hard RLIMIT_NOFILE of 10000 (it is $hard)"; exit 77; }

T=$(mktemp -d /tmp/cbcap-test.XXXXXX)
chmod 0755 "$T"
PID='' HOLDER=''
cleanup() { for p in $HOLDER $PID; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }
as() { local u=$1; shift; setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }

U0=62000 NUIDS=32 PER_UID=128 MAX=4096
OTHER=$((U0 + NUIDS))
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
# No client: a uid that no client selects is identified from its
# credentials alone, so 4,096 connections cost the daemon no /proc reads.
printf '{"admins":{"uids":[0]}}' >"$T/policy.json"
chmod 0644 "$T/policy.json"
ulimit -n "$hard"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        >"$T/daemon.out" 2>&1 &
PID=$!
for _ in $(seq 100); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
TS=$T/run/tools.sock AS=$T/run/admin.sock
[ -S "$AS" ] || { bad "daemon did not start: $(cat "$T/daemon.out")"; exit 1; }

# The holder: one root process that connects under each uid in turn
# (SO_PEERCRED records the effective uid at connect()), then waits.
/usr/bin/python3 - "$TS" "$U0" "$NUIDS" "$PER_UID" "$T/held" <<'PY' &
import os, resource, socket, sys, time
path, u0, nuids, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks = []
for u in range(u0, u0 + nuids):
    os.seteuid(u)
    for _ in range(per):
        s = socket.socket(socket.AF_UNIX); s.connect(path); socks.append(s)
    os.seteuid(0)
open(sys.argv[5], "w").write("%d\n" % len(socks))
time.sleep(120)
PY
HOLDER=$!
for _ in $(seq 300); do [ -s "$T/held" ] && break; sleep 0.1; done
expect "32 uids hold 128 connections each" "$MAX" "$(cat "$T/held" 2>/dev/null)"

refused=0
probe() { # probe UID: GET /v1/health on tools.sock as UID; "CODE BODY"
        as "$1" curl -sS -m 10 -w ' %{http_code}' --unix-socket "$TS" http://x/v1/health 2>&1
}
count() { case "$1" in *server_busy*|*too_many_connections*) refused=$((refused + 1)) ;; esac; }
# The daemon takes the connections as it gets to them: until it holds all
# 4,096, a probe may still be served.
got=''
for _ in $(seq 100); do
        got=$(probe $OTHER); count "$got"
        case "$got" in *server_busy*) break ;; esac
        sleep 0.2
done
expect "the socket full: another uid's connection is answered 503 at once" '"error":"server_busy"' "$got"
expect "...with status 503" " 503" "$got"
expect "...saying why" "the socket serves 4096 connections, the most it may" "$got"
got=$(probe $U0); count "$got"
expect "a uid at its own cap is told that (429), not 503" "too_many_connections" "$got"
st=$("$CLI" --admin-socket "$AS" status --json)
expect "admin.sock (its own cap) still serves" '"connections_refused":' "$st"
sleep 1.2 # the main loop reports refusals once a second
expect "the socket's refusals reported on stderr" "over a socket's limit of $MAX connections" "$(cat "$T/daemon.out")"
expect "refusals counted in status: every one the clients saw ($refused)" "\"connections_refused\":$refused," \
        "$("$CLI" --admin-socket "$AS" status --json)"
expect "refusals counted in metrics: every one the clients saw ($refused)" "credbroker_connections_refused_total $refused
" "$("$CLI" --admin-socket "$AS" metrics)"

kill "$HOLDER"; wait "$HOLDER" 2>/dev/null; HOLDER=''
# Served again once the daemon has closed the idle connections.
for _ in $(seq 100); do
        got=$(probe $OTHER)
        case "$got" in *server_busy*|*too_many_connections*) sleep 0.1 ;; *) break ;; esac
done
expect "served again once the idle connections are closed" '"status":"ok"' "$got"
echo "$fails failure(s)"
[ "$fails" = 0 ]
