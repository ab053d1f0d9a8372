#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Where the server's CPU goes per token request (issue 18): credbrokerd
# serving POST /v1/token over tools.sock, connect-per-request, CLIENTS (32)
# clients under their own uids for SECS (3) seconds, as tokens.sh's token32
# run, with `perf record` (cpu-clock, DWARF call stacks) on the daemon.  The
# samples are sorted into the steps of a request (token-steps.py: the
# identity's system calls, the token route's parts, libmicrohttpd and the
# kernel's socket work) and scaled to microseconds by the daemon's own CPU
# time per request (utime + stime over the run, as tokens.sh measures it;
# perf's sampling adds a little to it).
#
#   bash tests/bench/token-steps.sh [BUILD_DIR]        (default build-bench/)
#   KIND=floor|idfloor bash tests/bench/token-steps.sh (token-bench's floors)
#
# BUILD_DIR must hold broker/credbrokerd, client/credbroker and
# tests/bench/token-bench (tokens.sh builds them into build-bench/; a
# release build of another commit compares before and after).  Needs root,
# perf and python3.  Prints the table; exits non-zero only when a step failed.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/build-bench}" && pwd)
SECS=${SECS:-3} CLIENTS=${CLIENTS:-32} KIND=${KIND:-token} UID_BASE=60000
BENCH=$BUILD/tests/bench/token-bench DAEMON=$BUILD/broker/credbrokerd CLI=$BUILD/client/credbroker
log() { echo "token-steps.sh: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "needs root"; exit 1; }
command -v perf >/dev/null || { log "needs perf"; exit 1; }
for f in "$BENCH" "$DAEMON" "$CLI"; do [ -x "$f" ] || { log "no $f (build it first: tokens.sh does)"; exit 1; }; done
BENCH_EXE=$(readlink -f "$BENCH")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cb-token-steps.XXXXXX")
chmod 0711 "$TMP"
DPID= PPID_PERF=
cleanup() {
        [ -z "$PPID_PERF" ] || kill -INT "$PPID_PERF" 2>/dev/null || true
        [ -z "$DPID" ] || kill "$DPID" 2>/dev/null || true
        wait 2>/dev/null || true
        rm -rf -- "$TMP"
}
trap cleanup EXIT
STATE=$TMP/state KEY=$TMP/keyfile RUN=$TMP/run POLICY=$TMP/policy.json
TS=$RUN/tools.sock AS=$RUN/admin.sock
timeout 60 "$CLI" init --state-dir "$STATE" --unlock "keyfile:$KEY" >/dev/null
cat >"$POLICY" <<JSON
{ "clients": { "bench": {"exe": "$BENCH_EXE"} },
  "grants": [ {"client": "bench", "secret": "bench", "use": ["redeem"], "max_ttl": 300} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$POLICY"
start_daemon() {
        "$DAEMON" --state-dir "$STATE" --run-dir "$RUN" --policy "$POLICY" --unlock "keyfile:$KEY" \
                --tool-threads 1 >>"$TMP/daemon.log" 2>&1 &
        DPID=$!
        for _ in $(seq 100); do [ -S "$TS" ] && [ -S "$AS" ] && return 0; sleep 0.05; done
        log "credbrokerd did not start:"; tail -n 20 "$TMP/daemon.log" >&2; exit 1
}
start_daemon
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | timeout 30 "$CLI" --admin-socket "$AS" put bench >/dev/null
kill -TERM "$DPID"; wait "$DPID" || true; DPID=
case $KIND in
token) start_daemon; SOCK=$TS ;;
floor | idfloor)
        SOCK=$TMP/floor.sock
        "$BENCH" mhd-floor-server "$SOCK" 1 $([ "$KIND" = idfloor ] && echo identity) >>"$TMP/floor.log" 2>&1 &
        DPID=$!
        for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done ;;
*) log "KIND: token, floor or idfloor"; exit 2 ;;
esac
timeout 60 "$BENCH" run token "$SOCK" 1 0.2 50 "$UID_BASE" >/dev/null # the executable's hash cached
cpu() { sed 's/^.*) //' "/proc/$DPID/stat" | awk '{ print $12 + $13 }'; }
perf record -q -F 4999 -e cpu-clock --call-graph dwarf,8192 -p "$DPID" -o "$TMP/perf.data" 2>"$TMP/perf.err" &
PPID_PERF=$!
sleep 0.5
c0=$(cpu)
timeout $((SECS + 120)) "$BENCH" run token "$SOCK" "$CLIENTS" "$SECS" 95000 "$UID_BASE" >"$TMP/run.out"
c1=$(cpu)
kill -INT "$PPID_PERF"; wait "$PPID_PERF" || true; PPID_PERF=
n=$(awk '$1 == "ops" { o = $2 } $1 == "warmup_ops" { w = $2 } END { print o + w }' "$TMP/run.out")
us=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
echo "# $KIND, $CLIENTS clients, ${SECS}s: $n requests, $(awk '$1 == "ops_per_s" { print $2 }' "$TMP/run.out")/s;" \
        "server CPU $us us per request; load average $(cut -d' ' -f1-3 /proc/loadavg); $(uname -r)"
perf script -i "$TMP/perf.data" -F ip,sym,dso 2>/dev/null | python3 "$SRC/tests/bench/token-steps.py" "$us"
