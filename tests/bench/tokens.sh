#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Token benchmark: connect-per-request token issue (POST /v1/token over
# tools.sock) at 1 client and at 32 concurrent clients, against, in the same
# C harness and the same invocation:
#   raw       a Unix-socket round trip to a trivial single-threaded epoll echo
#             server (connect, ~60-byte request, 100-byte reply, close): the
#             limit for connect-per-request
#   sshagent  ssh-agent answering SSH2_AGENTC_REQUEST_IDENTITIES: a peer daemon
#             that also checks its peer (SO_PEERCRED uid) on every connection
#   mhdfloor  libmicrohttpd started exactly as credbrokerd starts tools.sock
#             (same flags, options, thread count: token-bench mhd-floor-server)
#             answering every POST with a fixed token-shaped 201: no identity,
#             no policy, no token.  What the HTTP library alone costs, i.e.
#             the best the token path can do without leaving libmicrohttpd.
#             Evidence for the issue, not one of its figures.
#   mhdidfloor the same floor server plus exactly the caller identification
#             credbrokerd does (broker/identity/ itself, called as the
#             daemon's server calls it): per-message credentials read by
#             sender.c's recv() in libmicrohttpd's place (SCM_CREDENTIALS,
#             SCM_PIDFD), SO_PEERCRED and the account uid at accept, per
#             request the one-writer check, the writer's pid claim, current
#             credentials (PIDFD_GET_INFO), the executable's stat (its name
#             and pid namespace kept per process under the pidfd's pidfs
#             inode), the hash from the cache, the liveness poll; the pidfd
#             closed with the connection: what the HTTP library plus the
#             identity the issue demands cost, with no policy, token or JSON.
#             If this is below ssh-agent, so is any daemon that does both.
# then the daemon's RSS holding 10,000 live tokens.
#
# Server CPU: around every 32-client run the server process's utime+stime
# (/proc/PID/stat, all threads, clock ticks) is read before and after; the
# difference over the requests the run made (timed + warm-up) is the
# server's CPU per request, in microseconds ("server_us_per_req").  The
# clients run on the same CPUs, so throughput follows from it.
#
#   bash tests/bench/tokens.sh          SECONDS_PER_RUN=2 bash tests/bench/tokens.sh
#
# Self-contained: builds token-bench, credbrokerd and credbroker into
# build-bench/ (release, -Dwerror_ci=true), works in a private temp dir removed
# on exit, starts and stops its own daemons, bounds every step with
# timeout(1).  Needs root (the 32 token clients run under 32 uids, see below)
# and ssh-agent (openssh-client).  Prints figures, never pass/fail (targets
# live in the issue); exits non-zero only when a step failed to run.  Notes go
# to stdout as "# ..." lines, progress to stderr; the last lines are one BENCH
# line per figure:
#
#   token_p50_us, raw_p50_us, sshagent_p50_us      1 client, median latency
#   token_p50_vs_raw                               token p50 / raw p50
#   {token,raw,sshagent}_throughput_32_per_s       32 clients, requests/s
#   token_throughput_vs_sshagent                   token / ssh-agent, 32 clients
#   token_throughput_32_audit_per_s                32 clients, --audit-log on
#   token_audit_vs_noaudit_32                      audit on / off, 32 clients, median
#                                                  of AUDIT_ROUNDS (3) interleaved pairs
#   token_audit_p50_us, token_audit_p50_vs_noaudit 1 client with the audit log
#   daemon_rss_10k_tokens_mb                       VmRSS with 10,000 live tokens
#   mhd_floor_p50_us                               1 client, mhd floor median
#   mhd_floor_throughput_32_per_s                  32 clients, mhd floor
#   mhd_floor_vs_sshagent                          mhd floor / ssh-agent, 32 clients
#   token_vs_mhd_floor                             token / mhd floor, 32 clients
#   mhd_identity_floor_throughput_32_per_s         32 clients, floor + identity
#   mhd_identity_floor_vs_sshagent                 that / ssh-agent, 32 clients
#   token_vs_mhd_identity_floor                    token / that, 32 clients
#   {token,mhd_floor,mhd_identity_floor,sshagent,raw}_server_us_per_req
#                                                  server CPU per request,
#                                                  32 clients (see above)
#
# Caps, and how the runs stay clear of them (a 429 fails the run: refusals are
# cheap and must never be counted as issued tokens):
#   - the broker keeps at most 10,000 live tokens per uid and 100,000 in all
#     (TTL 300 s here: every token issued in a run is still live at its end);
#   - so every token run gets a fresh daemon (tokens are in memory only), the
#     1-client run stops at 9,900 requests, the 32-client runs at 95,000 in
#     all, and each of the 32 client threads connects under its own uid
#     (60000+i; the harness switches per-thread credentials), as 32 separate
#     tools would.  A run that hits its request cap before SECONDS_PER_RUN is
#     reported with its actual duration ("stopped_by max_ops").
set -euo pipefail

SECS=${SECONDS_PER_RUN:-5}
CLIENTS=32
UID_BASE=60000
# credbrokerd's default --tool-threads (broker/main.c), passed explicitly to
# the daemon and to the mhd floor server so the two always run the same pool.
DAEMON_THREADS=${DAEMON_THREADS:-1} # DAEMON_THREADS=2 bash tests/bench/tokens.sh: both with 2
RSS_TOKENS=10000
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD="$SRC/build-bench"
BENCH="$BUILD/tests/bench/token-bench"
DAEMON="$BUILD/broker/credbrokerd"
CLI="$BUILD/client/credbroker"

case "$SECS" in '' | *[!0-9.]* | 0 | .*) echo "tokens.sh: SECONDS_PER_RUN must be a positive number" >&2; exit 2 ;; esac

log() { echo "tokens.sh: $*" >&2; }

[ "$(id -u)" = 0 ] || { log "needs root (token clients run under their own uids)"; exit 1; }
command -v ssh-agent >/dev/null || { log "needs ssh-agent (openssh-client)"; exit 1; }

# ---- build ---------------------------------------------------------------
if [ ! -f "$BUILD/build.ninja" ]; then
        log "configuring $BUILD"
        timeout 300 meson setup "$BUILD" "$SRC" --buildtype=release -Dwerror_ci=true >&2
fi
log "building token-bench, credbrokerd, credbroker"
timeout 600 ninja -C "$BUILD" tests/bench/token-bench broker/credbrokerd client/credbroker >&2
BENCH_EXE=$(readlink -f "$BENCH")

# ---- workspace -------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cb-token-bench.XXXXXX")
# 0711: the per-uid client threads must reach run/tools.sock (0666) through it;
# the state dir and key stay 0700/0600 inside.
chmod 0711 "$TMP"
DPID= APID= EPID= FPID=
cleanup() {
        local p
        for p in "$DPID" "$APID" "$EPID" "$FPID"; do
                [ -n "$p" ] && kill "$p" 2>/dev/null || true
        done
        wait 2>/dev/null || true
        rm -rf -- "$TMP"
}
trap cleanup EXIT

STATE="$TMP/state" KEY="$TMP/keyfile" RUN="$TMP/run" POLICY="$TMP/policy.json"
TS="$RUN/tools.sock" AS="$RUN/admin.sock"
AGENT_SOCK="$TMP/agent.sock" ECHO_SOCK="$TMP/echo.sock" FLOOR_SOCK="$TMP/floor.sock"

# "key value" lines from a token-bench output file.
get() {
        local v
        v=$(awk -v k="$1" '$1 == k { print $2; exit }' "$2")
        if [ -z "$v" ]; then
                echo "tokens.sh: no '$1' in $(basename "$2")" >&2
                return 1
        fi
        echo "$v"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "nan" }'; }

# ---- store, policy, secret ---------------------------------------------------
timeout 60 "$CLI" init --state-dir "$STATE" --unlock "keyfile:$KEY" >/dev/null
# One client selected by executable only (it matches uid 0 and the 32 client
# uids); the smallest policy that grants the harness the secret.
cat >"$POLICY" <<JSON
{ "clients": { "bench": {"exe": "$BENCH_EXE"} },
  "grants": [ {"client": "bench", "secret": "bench", "use": ["redeem"], "max_ttl": 300} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$POLICY"

start_daemon() { # [--audit-log FILE]
        timeout 30 "$DAEMON" --check-policy "$POLICY" >/dev/null
        "$DAEMON" --state-dir "$STATE" --run-dir "$RUN" --policy "$POLICY" --unlock "keyfile:$KEY" \
                --tool-threads "$DAEMON_THREADS" "$@" \
                >>"$TMP/daemon.log" 2>&1 &
        DPID=$!
        for _ in $(seq 100); do
                [ -S "$TS" ] && [ -S "$AS" ] && return 0
                kill -0 "$DPID" 2>/dev/null || break
                sleep 0.05
        done
        log "credbrokerd did not start:"; tail -n 20 "$TMP/daemon.log" >&2
        exit 1
}
stop_daemon() {
        kill -TERM "$DPID"
        local rc=0
        timeout 30 tail --pid="$DPID" -f /dev/null || { log "credbrokerd did not exit on SIGTERM"; exit 1; }
        wait "$DPID" || rc=$?
        DPID=
        [ "$rc" = 0 ] || { log "credbrokerd exited with status $rc"; tail -n 20 "$TMP/daemon.log" >&2; exit 1; }
}

log "putting the secret"
start_daemon
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' |
        timeout 30 "$CLI" --admin-socket "$AS" put bench >/dev/null
stop_daemon

# ---- peers -------------------------------------------------------------------
timeout --signal=TERM 3600 ssh-agent -D -a "$AGENT_SOCK" >"$TMP/agent.log" 2>&1 &
APID=$!
timeout --signal=TERM 3600 "$BENCH" raw-echo-server "$ECHO_SOCK" >"$TMP/echo.log" 2>&1 &
EPID=$!
for _ in $(seq 100); do [ -S "$AGENT_SOCK" ] && [ -S "$ECHO_SOCK" ] && break; sleep 0.05; done
[ -S "$AGENT_SOCK" ] || { log "ssh-agent did not start"; cat "$TMP/agent.log" >&2; exit 1; }
[ -S "$ECHO_SOCK" ] || { log "echo server did not start"; cat "$TMP/echo.log" >&2; exit 1; }

# The floor server, like the daemon, fresh for each run, so that no run
# inherits the state (heap, caches) of the one before (token-bench
# mhd-floor-server also turns malloc trimming off: see there).
start_floor() { # [identity]
        rm -f "$FLOOR_SOCK"
        "$BENCH" mhd-floor-server "$FLOOR_SOCK" "$DAEMON_THREADS" "$@" >>"$TMP/floor.log" 2>&1 &
        FPID=$!
        for _ in $(seq 100); do
                [ -S "$FLOOR_SOCK" ] && return 0
                kill -0 "$FPID" 2>/dev/null || break
                sleep 0.05
        done
        log "mhd floor server did not start:"; tail -n 20 "$TMP/floor.log" >&2
        exit 1
}
stop_floor() {
        kill -TERM "$FPID"
        timeout 30 tail --pid="$FPID" -f /dev/null || { log "mhd floor server did not exit on SIGTERM"; exit 1; }
        wait "$FPID" || { log "mhd floor server failed:"; tail -n 20 "$TMP/floor.log" >&2; exit 1; }
        FPID=
}

# The server process behind a "timeout CMD" pid (its only child).
child_of() {
        local c
        c=$(cat "/proc/$1/task/$1/children" 2>/dev/null) || true
        c=${c%% *}
        [ -n "$c" ] || { log "no child process under pid $1"; exit 1; }
        echo "$c"
}
APID_SERVER=$(child_of "$APID")
EPID_SERVER=$(child_of "$EPID")
CLK_TCK=$(getconf CLK_TCK)
# utime + stime of a process, all its threads, in clock ticks (fields 14 and
# 15 of /proc/PID/stat, counted after the parenthesised command name).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# run NAME KIND SOCK CLIENTS [MAX_OPS [UID_BASE]]
run() {
        local name=$1 kind=$2 sock=$3 n=$4
        shift 4
        log "run $name: $kind, $n client(s), ${SECS}s"
        if ! timeout $((${SECS%.*} + 120)) "$BENCH" run "$kind" "$sock" "$n" "$SECS" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"; then
                log "run $name failed:"; cat "$TMP/$name.err" >&2
                [ -z "$DPID" ] || { log "daemon log tail:"; tail -n 5 "$TMP/daemon.log" >&2; }
                exit 1
        fi
        echo "# $name: $(get ops "$TMP/$name.out") requests in $(get seconds "$TMP/$name.out")s" \
                "(stopped by $(get stopped_by "$TMP/$name.out")), $(get ops_per_s "$TMP/$name.out")/s;" \
                "p50 $(get p50_us "$TMP/$name.out") p90 $(get p90_us "$TMP/$name.out")" \
                "p99 $(get p99_us "$TMP/$name.out") max $(get max_us "$TMP/$name.out") us"
}

# run_cpu PID NAME KIND SOCK CLIENTS [...]: run(), and the server's CPU per
# request (timed and warm-up requests) into $TMP/NAME.cpu.
run_cpu() {
        local pid=$1 name=$2 c0 c1
        shift
        c0=$(cpu_ticks "$pid")
        run "$@"
        c1=$(cpu_ticks "$pid")
        awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v n=$(($(get ops "$TMP/$name.out") + $(get warmup_ops "$TMP/$name.out"))) \
                'BEGIN { printf "%.1f\n", t * 1e6 / hz / n }' >"$TMP/$name.cpu"
        echo "# $name: server CPU $(cat "$TMP/$name.cpu") us per request ($((c1 - c0)) ticks at ${CLK_TCK} Hz)"
}

daemon_mem() { # prints "VmRSS_kB VmHWM_kB"
        awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { print r, h }' "/proc/$DPID/status"
}

echo "# $(nproc) CPUs; $(uname -r); ${SECS}s per run; connect-per-request everywhere; harness: $BENCH_EXE"
echo "# credbrokerd without --audit-log unless stated (audit adds a JSON line + write(2) per request; measured separately below)"

# ---- 1 client, interleaved ------------------------------------------------------
run raw1 raw "$ECHO_SOCK" 1
start_daemon
run token1 token "$TS" 1 9900 "$UID_BASE"
stop_daemon
start_floor
run mhdfloor1 token "$FLOOR_SOCK" 1 0 "$UID_BASE"
stop_floor
run sshagent1 sshagent "$AGENT_SOCK" 1

# ---- 32 clients, interleaved ----------------------------------------------------
run_cpu "$EPID_SERVER" raw32 raw "$ECHO_SOCK" "$CLIENTS"
start_daemon
run_cpu "$DPID" token32 token "$TS" "$CLIENTS" 95000 "$UID_BASE"
mem=$(daemon_mem)
echo "# credbrokerd after token32: VmRSS ${mem% *} kB, VmHWM ${mem#* } kB"
stop_daemon
# The floor's clients switch to the same 32 uids as the token clients.
start_floor
run_cpu "$FPID" mhdfloor32 token "$FLOOR_SOCK" "$CLIENTS" 0 "$UID_BASE"
stop_floor
start_floor identity
run_cpu "$FPID" mhdidfloor32 token "$FLOOR_SOCK" "$CLIENTS" 0 "$UID_BASE"
stop_floor
run_cpu "$APID_SERVER" sshagent32 sshagent "$AGENT_SOCK" "$CLIENTS"

# ---- 32 clients with the audit log ------------------------------------------------
start_daemon --audit-log "$TMP/audit.log"
run token32audit token "$TS" "$CLIENTS" 95000 "$UID_BASE"
stop_daemon
# Audit on vs off, interleaved (AUDIT_ROUNDS pairs, fresh daemons, fresh log
# each): the cost of recording every decision before it takes effect, as a
# ratio the machine's load affects alike; and the 1-client latency with it.
AUDIT_ROUNDS=${AUDIT_ROUNDS:-3}
for i in $(seq "$AUDIT_ROUNDS"); do
        start_daemon
        run "pair${i}off" token "$TS" "$CLIENTS" 95000 "$UID_BASE"
        stop_daemon
        rm -f "$TMP/audit-pair.log"
        start_daemon --audit-log "$TMP/audit-pair.log"
        run "pair${i}on" token "$TS" "$CLIENTS" 95000 "$UID_BASE"
        stop_daemon
done
rm -f "$TMP/audit-pair.log"
start_daemon --audit-log "$TMP/audit-pair.log"
run token1audit token "$TS" 1 9900 "$UID_BASE"
stop_daemon
echo "# audit pass: $(wc -l <"$TMP/audit.log") audit records, $(($(stat -c %s "$TMP/audit.log") / 1024)) KiB, on $(stat -f -c %T "$TMP")"

# ---- RSS with 10,000 live tokens ------------------------------------------------------
# Fresh daemon, one client as uid 0: exactly 10,000 issued (20 of them the
# untimed warm-up), the per-uid cap; ttl 300 s so all are live when measured.
start_daemon
mem0=$(daemon_mem)
log "issuing $RSS_TOKENS tokens"
timeout 300 "$BENCH" run token "$TS" 1 300 $((RSS_TOKENS)) >"$TMP/rss.out" 2>"$TMP/rss.err" ||
        { log "issuing $RSS_TOKENS tokens failed:"; cat "$TMP/rss.err" >&2; exit 1; }
live=$(timeout 30 "$CLI" --admin-socket "$AS" status --json | sed -n 's/.*"tokens": *\([0-9]*\).*/\1/p')
mem=$(daemon_mem)
rss_mb=$(awk -v k="${mem% *}" 'BEGIN { printf "%.1f\n", k / 1024 }')
echo "# RSS phase: $(( $(get ops "$TMP/rss.out") + $(get warmup_ops "$TMP/rss.out") )) tokens issued, status reports ${live:-?} live;" \
        "daemon VmRSS ${mem0% *} kB at start, ${mem% *} kB (VmHWM ${mem#* } kB) with the tokens"
[ "$live" = "$RSS_TOKENS" ] || echo "# note: expected $RSS_TOKENS live tokens, status says '${live:-?}'"
stop_daemon

# ---- report -------------------------------------------------------------------------
t_p50=$(get p50_us "$TMP/token1.out")
r_p50=$(get p50_us "$TMP/raw1.out")
s_p50=$(get p50_us "$TMP/sshagent1.out")
t_32=$(get ops_per_s "$TMP/token32.out")
r_32=$(get ops_per_s "$TMP/raw32.out")
s_32=$(get ops_per_s "$TMP/sshagent32.out")
a_32=$(get ops_per_s "$TMP/token32audit.out")
f_p50=$(get p50_us "$TMP/mhdfloor1.out")
f_32=$(get ops_per_s "$TMP/mhdfloor32.out")
i_32=$(get ops_per_s "$TMP/mhdidfloor32.out")
echo "BENCH token_p50_us $t_p50"
echo "BENCH raw_p50_us $r_p50"
echo "BENCH sshagent_p50_us $s_p50"
echo "BENCH token_p50_vs_raw $(ratio "$t_p50" "$r_p50")"
echo "BENCH token_throughput_32_per_s $t_32"
echo "BENCH raw_throughput_32_per_s $r_32"
echo "BENCH sshagent_throughput_32_per_s $s_32"
echo "BENCH token_throughput_vs_sshagent $(ratio "$t_32" "$s_32")"
echo "BENCH token_throughput_32_audit_per_s $a_32"
echo "BENCH token_audit_vs_noaudit_32 $(for i in $(seq "$AUDIT_ROUNDS"); do ratio "$(get ops_per_s "$TMP/pair${i}on.out")" "$(get ops_per_s "$TMP/pair${i}off.out")"; done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')"
echo "BENCH token_audit_p50_us $(get p50_us "$TMP/token1audit.out")"
echo "BENCH token_audit_p50_vs_noaudit $(ratio "$(get p50_us "$TMP/token1audit.out")" "$t_p50")"
echo "BENCH daemon_rss_10k_tokens_mb $rss_mb"
echo "BENCH mhd_floor_p50_us $f_p50"
echo "BENCH mhd_floor_throughput_32_per_s $f_32"
echo "BENCH mhd_floor_vs_sshagent $(ratio "$f_32" "$s_32")"
echo "BENCH token_vs_mhd_floor $(ratio "$t_32" "$f_32")"
echo "BENCH mhd_identity_floor_throughput_32_per_s $i_32"
echo "BENCH mhd_identity_floor_vs_sshagent $(ratio "$i_32" "$s_32")"
echo "BENCH token_vs_mhd_identity_floor $(ratio "$t_32" "$i_32")"
echo "BENCH token_server_us_per_req $(cat "$TMP/token32.cpu")"
echo "BENCH mhd_floor_server_us_per_req $(cat "$TMP/mhdfloor32.cpu")"
echo "BENCH mhd_identity_floor_server_us_per_req $(cat "$TMP/mhdidfloor32.cpu")"
echo "BENCH sshagent_server_us_per_req $(cat "$TMP/sshagent32.cpu")"
echo "BENCH raw_server_us_per_req $(cat "$TMP/raw32.cpu")"
