#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Proxy benchmark: 32 concurrent keep-alive connections (wrk) for
# SECONDS_PER_RUN seconds each, against the same loopback upstream (an
# nginx answering a fixed 2-byte body over plain HTTP, so every path pays
# the same upstream cost):
#   direct     wrk -> upstream
#   nginx      wrk -> nginx reverse proxy (1 worker, keepalive upstream)
#              that sets "Authorization: Bearer <key>" -> upstream
#   credbroker wrk -> credbrokerd --listen-tcp, reverse form
#              /v1/proxy/bench/, "Authorization: Bearer <token>" -> the
#              sealed host http://127.0.0.1:PORT, key injected -> upstream
#   floor      wrk -> proxy-floor (tests/bench/proxy-floor.c) -> upstream:
#              libmicrohttpd + libcurl alone, built the way credbrokerd
#              builds its TCP proxy (FLOOR_THREADS = the daemon's default
#              --threads loops, each with its own epoll, an MHD daemon in
#              external-poll mode on the shared listener and a curl multi
#              handle; the same MHD flags/options and curl options; key
#              injected), but no token, policy, SSRF check, redaction or
#              audit.  What the two libraries the design mandates cost by
#              themselves: the best credbroker can do without leaving them,
#              so credbroker_vs_floor shows what the broker's own work costs
#              and floor_throughput_vs_nginx whether 0.8x nginx is reachable
#              with them at all.  Evidence for issue 4, not one of its figures.
# then prints, last, one BENCH line per figure:
#   {direct,nginx,credbroker}_rps, {direct,nginx,credbroker}_p50_us
#   proxy_throughput_vs_nginx     credbroker rps / nginx rps
#   proxy_added_p50_vs_nginx      (credbroker p50 - direct p50) / (nginx p50 - direct p50)
#   {nginx,credbroker}_cpu_us_per_request   the proxy process's CPU time (utime +
#                                 stime) per request in that run, and the
#                                 upstream's: where the difference goes
#   floor_rps, floor_p50_us, floor_cpu_us_per_request   the same for the floor
#   floor_throughput_vs_nginx     floor rps / nginx rps
#   floor_added_p50_vs_nginx      (floor p50 - direct p50) / (nginx p50 - direct p50)
#   credbroker_vs_floor           credbroker rps / floor rps
#
#   bash tests/bench/proxy.sh          SECONDS_PER_RUN=5 bash tests/bench/proxy.sh
#
# PERF_DIR=DIR (an existing directory): after the two rounds, a third run of
# credbroker and of the floor, each under `perf record -g` of that process
# alone (DIR/credbroker.perf, DIR/floor.perf; DIR/*.res: "rps p50 cpu_us
# upstream_cpu_us", DIR/*.wrk: wrk's output), for a per-request breakdown
# (docs/benchmarks.md says how).  Not part of the reported figures.
# PERF_CALLGRAPH (default "dwarf,16384"; "fp" is cheaper, but libcurl's and
# libmicrohttpd's frames then lose their callers) and PERF_FREQ (default 1999).
# With strace installed, also a 3 s run of each under `strace -c -f`
# (DIR/*.strace, DIR/*.strace.wrk): system calls per request.
# tests/bench/perf-groups.py turns a recording into microseconds per request
# by component.
#
# Self-contained: builds credbrokerd, credbroker and proxy-floor into build-bench/
# (release), works in a private temp dir removed on exit, starts and stops
# its own nginx instances and daemon on 127.0.0.1, bounds every step with
# timeout(1).  Needs nginx and wrk (Debian packages nginx, wrk) and root
# (nginx's prefix paths and the broker's uid checks are simplest as root).
# Prints figures, never pass/fail.
set -euo pipefail

SECS=${SECONDS_PER_RUN:-10}
CONNS=32
THREADS=2
# The floor's loops: credbrokerd's default --threads (broker/main.c), which
# the daemon below runs with.  Not wrk's THREADS.  FLOOR_THREADS=1 in the
# environment tries the floor with one loop (the daemon keeps its default).
FLOOR_THREADS=${FLOOR_THREADS:-2}
case "$FLOOR_THREADS" in [1-9] | [1-5][0-9] | 6[0-4]) ;; *) echo "proxy.sh: FLOOR_THREADS: 1-64" >&2; exit 2 ;; esac
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD="$SRC/build-bench"
DAEMON="$BUILD/broker/credbrokerd"
CLI="$BUILD/client/credbroker"
FLOOR="$BUILD/tests/bench/proxy-floor"

log() { echo "proxy.sh: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "needs root"; exit 1; }
for t in nginx wrk curl; do command -v $t >/dev/null || { log "needs $t (apt-get install nginx wrk curl)"; exit 1; }; done
case "$SECS" in '' | *[!0-9]* | 0) log "SECONDS_PER_RUN must be a positive integer"; exit 2 ;; esac

if [ ! -f "$BUILD/build.ninja" ]; then
        timeout 300 meson setup "$BUILD" "$SRC" --buildtype=release -Dwerror_ci=true >&2
fi
timeout 600 ninja -C "$BUILD" broker/credbrokerd client/credbroker tests/bench/proxy-floor >&2

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cb-proxy-bench.XXXXXX")
chmod 0711 "$TMP"
PIDS=()
cleanup() {
        local p
        for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf -- "$TMP"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; return 1; }

# nginx NAME CONF_BODY: one instance, one worker, in its own prefix dir.
start_nginx() {
        local d="$TMP/$1"
        mkdir -p "$d/logs" "$d/tmp"
        cat >"$d/nginx.conf" <<EOF
daemon off;
worker_processes 1;
user root;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    $2
}
EOF
        nginx -p "$d" -c "$d/nginx.conf" >"$d/out.log" 2>&1 &
        PIDS+=($!)
}

UP=$(free_port)
start_nginx upstream "server { listen 127.0.0.1:$UP; keepalive_requests 1000000; location / { return 200 'ok'; } }"
wait_port "$UP" || { log "upstream nginx did not start"; cat "$TMP/upstream/out.log" "$TMP/upstream/logs/error.log" >&2; exit 1; }

KEY="sk-bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
NX=$(free_port)
start_nginx proxy "upstream up { server 127.0.0.1:$UP; keepalive 64; }
    server { listen 127.0.0.1:$NX; keepalive_requests 1000000;
      location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\";
                   proxy_set_header Authorization \"Bearer $KEY\"; } }"
wait_port "$NX" || { log "proxy nginx did not start"; cat "$TMP/proxy/logs/error.log" >&2; exit 1; }

# credbroker: store, policy (uid 0 may proxy "bench"), daemon on loopback TCP.
timeout 60 "$CLI" init --state-dir "$TMP/state" --unlock "keyfile:$TMP/key" >/dev/null
cat >"$TMP/policy.json" <<JSON
{ "clients": { "bench": {"uid": 0} },
  "grants": [ {"client": "bench", "secret": "bench", "use": ["proxy"], "max_ttl": 3600} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$TMP/policy.json"
CB=$(free_port)
"$DAEMON" --state-dir "$TMP/state" --run-dir "$TMP/run" --policy "$TMP/policy.json" --unlock "keyfile:$TMP/key" \
        --listen-tcp "127.0.0.1:$CB" >"$TMP/daemon.log" 2>&1 &
DPID=$!
PIDS+=($DPID)
for _ in $(seq 100); do [ -S "$TMP/run/admin.sock" ] && break; sleep 0.05; done
[ -S "$TMP/run/admin.sock" ] || { log "credbrokerd did not start"; cat "$TMP/daemon.log" >&2; exit 1; }
printf '%s' "$KEY" | timeout 30 "$CLI" --admin-socket "$TMP/run/admin.sock" put bench \
        --host "http://127.0.0.1:$UP" --inject 'Authorization: Bearer {}' >/dev/null
TOKEN=$(timeout 30 "$CLI" --socket "$TMP/run/tools.sock" token bench --use proxy --bind uid --ttl 3600 2>/dev/null)
check=$(curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$CB/v1/proxy/bench/")
[ "$check" = ok ] || { log "credbroker proxy check failed: $check"; tail -n 5 "$TMP/daemon.log" >&2; exit 1; }

# The floor: the same upstream, the same injected header (a bench-only
# random key), the daemon's loop count.
FP=$(free_port)
printf 'Authorization: Bearer %s\n' "$KEY" >"$TMP/floor.header" # on stdin, not in argv
"$FLOOR" "$FP" "http://127.0.0.1:$UP/" "$FLOOR_THREADS" <"$TMP/floor.header" >"$TMP/floor.log" 2>&1 &
FPID=$!
PIDS+=($FPID)
wait_port "$FP" || { log "proxy-floor did not start"; cat "$TMP/floor.log" >&2; exit 1; }
check=$(curl -s "http://127.0.0.1:$FP/v1/proxy/bench/")
[ "$check" = ok ] || { log "proxy-floor check failed: $check"; cat "$TMP/floor.log" >&2; exit 1; }

# CPU time (utime + stime, clock ticks) of a process so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
NGINX_WORKER=$(pgrep -P "$(cat "$TMP/proxy/nginx.pid")" | head -n 1)
UP_WORKER=$(pgrep -P "$(cat "$TMP/upstream/nginx.pid")" | head -n 1)
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# run NAME URL [HEADER [PID]]: wrk, then "rps p50_us" into $TMP/NAME.res;
# with PID, that process's CPU per request too (and the upstream's).
run() {
        local name=$1 url=$2 hdr=${3:-} pid=${4:-} out="$TMP/$1.wrk" c0=0 u0
        log "run $name: $CONNS connections, ${SECS}s"
        [ -n "$pid" ] && c0=$(cpu_ticks "$pid")
        u0=$(cpu_ticks "$UP_WORKER")
        if [ -n "$hdr" ]; then
                timeout $((SECS + 60)) wrk -t "$THREADS" -c "$CONNS" -d "${SECS}s" --latency -H "$hdr" "$url" >"$out"
        else
                timeout $((SECS + 60)) wrk -t "$THREADS" -c "$CONNS" -d "${SECS}s" --latency "$url" >"$out"
        fi
        local rps p50 errs
        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
        p50=$(awk '$1 == "50%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); print v } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 } else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000000 } }' "$out")
        errs=$(grep -E "Non-2xx|Socket errors" "$out" || true)
        local n cpu=""
        n=$(awk '/requests in/ { print $1 }' "$out")
        if [ -n "$pid" ] && [ "${n:-0}" -gt 0 ]; then
                cpu=$(awk -v t=$(($(cpu_ticks "$pid") - c0)) -v u=$(($(cpu_ticks "$UP_WORKER") - u0)) -v n="$n" \
                        -v k="$TICK_US" 'BEGIN { printf "%.1f %.1f", t * k / n, u * k / n }')
                echo "# $name: $rps requests/s, p50 $p50 us; CPU per request: proxy ${cpu% *} us, upstream ${cpu#* } us${errs:+; $errs}"
        else
                echo "# $name: $rps requests/s, p50 $p50 us${errs:+; $errs}"
        fi
        echo "$rps $p50 ${cpu:-}" >"$TMP/$name.res"
}

echo "# $(nproc) CPUs; $(uname -r); wrk -t$THREADS -c$CONNS -d${SECS}s; upstream: nginx, 2-byte body, plain HTTP on loopback; floor: $FLOOR_THREADS loops"
# Interleaved twice; the better of the two runs per path is reported.
for round in 1 2; do
        run direct$round "http://127.0.0.1:$UP/"
        run nginx$round "http://127.0.0.1:$NX/" "X-Bench: 1" "$NGINX_WORKER"
        run credbroker$round "http://127.0.0.1:$CB/v1/proxy/bench/" "Authorization: Bearer $TOKEN" "$DPID"
        # the same request bytes as credbroker's (the floor ignores the token)
        run floor$round "http://127.0.0.1:$FP/v1/proxy/bench/" "Authorization: Bearer $TOKEN" "$FPID"
done
if [ -n "${PERF_DIR:-}" ]; then
        [ -d "$PERF_DIR" ] || { log "PERF_DIR: no such directory"; exit 2; }
        command -v perf >/dev/null || { log "PERF_DIR needs perf"; exit 1; }
        perf_run() { # perf_run NAME URL PID
                local name=$1 url=$2 pid=$3 ppid
                perf record -q -g --call-graph "${PERF_CALLGRAPH:-dwarf,16384}" -F "${PERF_FREQ:-1999}" -p "$pid" \
                        -o "$PERF_DIR/$name.perf" >"$PERF_DIR/$name.perf.log" 2>&1 &
                ppid=$!
                sleep 1                           # perf attached before the load starts
                run "${name}_perf" "$url" "Authorization: Bearer $TOKEN" "$pid"
                kill -INT "$ppid" 2>/dev/null || true
                wait "$ppid" 2>/dev/null || true
                cp "$TMP/${name}_perf.res" "$PERF_DIR/$name.res"
                cp "$TMP/${name}_perf.wrk" "$PERF_DIR/$name.wrk"
        }
        perf_run credbroker "http://127.0.0.1:$CB/v1/proxy/bench/" "$DPID"
        perf_run floor "http://127.0.0.1:$FP/v1/proxy/bench/" "$FPID"
        # System calls per request: strace -c over a 3 s run (DIR/NAME.strace,
        # DIR/NAME.strace.wrk); strace slows the process, so only the counts
        # (per request) mean anything, not the times.
        if command -v strace >/dev/null; then
                for p in "credbroker $CB $DPID" "floor $FP $FPID"; do
                        set -- $p
                        strace -c -f -p "$3" -o "$PERF_DIR/$1.strace" 2>/dev/null &
                        sp=$!
                        sleep 1
                        timeout 60 wrk -t "$THREADS" -c "$CONNS" -d 3s -H "Authorization: Bearer $TOKEN" \
                                "http://127.0.0.1:$2/v1/proxy/bench/" >"$PERF_DIR/$1.strace.wrk" || true
                        kill -INT "$sp" 2>/dev/null || true
                        wait "$sp" 2>/dev/null || true
                done
        fi
fi
best() { # best NAME: the round with more requests/s
        sort -k1,1 -g -r "$TMP/${1}1.res" "$TMP/${1}2.res" | head -n 1
}
read -r d_rps d_p50 < <(best direct)
read -r n_rps n_p50 n_cpu n_ucpu < <(best nginx)
read -r c_rps c_p50 c_cpu c_ucpu < <(best credbroker)
read -r f_rps f_p50 f_cpu f_ucpu < <(best floor)
kill -0 "$DPID" 2>/dev/null || { log "credbrokerd died"; exit 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "nan" }'; }
added_p50() { # added_p50 P50 BASELINE_P50: (P50 - direct) / (BASELINE_P50 - direct)
        awk -v c="$1" -v n="$2" -v d="$d_p50" 'BEGIN { if (n - d > 0) printf "%.2f\n", (c - d) / (n - d); else print "nan" }'
}
kill -0 "$FPID" 2>/dev/null || { log "proxy-floor died"; exit 1; }
echo "BENCH direct_rps $d_rps"
echo "BENCH nginx_rps $n_rps"
echo "BENCH credbroker_rps $c_rps"
echo "BENCH direct_p50_us $d_p50"
echo "BENCH nginx_p50_us $n_p50"
echo "BENCH credbroker_p50_us $c_p50"
echo "BENCH nginx_cpu_us_per_request ${n_cpu:-nan}"
echo "BENCH credbroker_cpu_us_per_request ${c_cpu:-nan}"
echo "BENCH upstream_cpu_us_per_request_nginx_run ${n_ucpu:-nan}"
echo "BENCH upstream_cpu_us_per_request_credbroker_run ${c_ucpu:-nan}"
echo "BENCH proxy_throughput_vs_nginx $(ratio "$c_rps" "$n_rps")"
echo "BENCH proxy_added_p50_vs_nginx $(added_p50 "$c_p50" "$n_p50")"
echo "BENCH floor_rps $f_rps"
echo "BENCH floor_p50_us $f_p50"
echo "BENCH floor_cpu_us_per_request ${f_cpu:-nan}"
echo "BENCH upstream_cpu_us_per_request_floor_run ${f_ucpu:-nan}"
echo "BENCH floor_throughput_vs_nginx $(ratio "$f_rps" "$n_rps")"
echo "BENCH floor_added_p50_vs_nginx $(added_p50 "$f_p50" "$n_p50")"
echo "BENCH credbroker_vs_floor $(ratio "$c_rps" "$f_rps")"
