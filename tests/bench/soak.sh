#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Soak benchmark (issue 19): the broker under sustained mixed load, with
# the operations a busy host adds to it, for SOAK_SECONDS (default 600).
# Not part of `make test`: run it by hand, as root.
#
#   bash tests/bench/soak.sh            SOAK_SECONDS=30 bash tests/bench/soak.sh
#
# Load: 64 tool processes (tests/bench/soak-client.c), each under its own
# uid (setpriv), each with one client thread per path, so 64 clients under
# 64 uids per path, connect-per-request over tools.sock, SOAK_THINK_MS
# (default 10) between a client's requests:
#   token   issue (ttl 2 s: the token table churns), and every 50th token
#           presented again 4 s later, past its expiry
#   redeem  redeem a token for a secret (value returned)
#   proxy   the injection proxy, reverse form, to an nginx TLS upstream (the
#           test CA of tests/integration/proxy-certs.sh), plain 200 reply
#   sse     the same to proxy-upstream.py's /sse over TLS: five server-sent
#           events 0.5 s apart, relayed chunked as they come
#   scan    POST /v1/scan of 16 KiB of clean text (the policy's per-uid
#           scan_budget raised to its maximum: the default, 120 a minute,
#           is a sixth of what a soak client asks)
# While it runs: --audit-log on; SIGHUP every 10 s (the policy file changes
# between two versions that differ in an unrelated client, so each reload
# really parses and swaps; the audit log is reopened); every 30 s a
# rotation (`credbroker rotate`, new value on stdin) of soak-redeem and of
# soak-proxy, both in use.  Every 5 s the daemon's VmRSS and open fds are
# sampled (the notes show the series).
#
# Errors: any connection error, short or malformed reply, and any non-2xx
# the clients did not cause.  Client-caused is exactly one thing: the 401
# to a token presented after the expiry the broker gave it (the token
# path's late presentations; how many of those the tombstone explained as
# "expired" is shown as a note).  Tokens in use are reissued 5 s before
# their expiry, no grant has a rate limit, the policy keeps every grant
# across reloads, and a rotation (not --leaked) revokes nothing: tokens
# follow the current version and no client asks for an older one.  So a
# refusal during a rotation or a reload counts as an error.
#
# Figures, last, one BENCH line each:
#   soak_requests, soak_errors       all paths
#   soak_rss_growth_pct              VmRSS at the end of the load against
#                                    after warm-up (SOAK_WARMUP, default
#                                    SOAK_SECONDS/10 within 5-60 s), each
#                                    the median of 11 samples 1 s apart
#                                    (the last 14 s of the load; the 11 s
#                                    after warm-up): between trims the heap
#                                    is a saw, one instant is not its level;
#                                    the notes give the 5 s series, its
#                                    lowest and highest
#   soak_fd_growth                   open fds after SOAK_IDLE_SECONDS of
#                                    quiet minus the fresh daemon's: both
#                                    quiet, so any fd left behind shows
#                                    (the proxy gives its pooled upstream
#                                    connections back after 30 s idle)
#   soak_fd_load_growth              open fds at the end of the load minus
#                                    after warm-up: under load, so it moves
#                                    with the connections in flight (each
#                                    figure the median of five samples)
#   soak_p99_us_{token,redeem,proxy,sse,scan}   per path, 2 % buckets
#   soak_rps                         requests per second, all paths
#   soak_idle_rss_vs_start_pct       VmRSS after SOAK_IDLE_SECONDS (70) of
#                                    quiet against before the load (after
#                                    priming: one uid, every path, 3 s, so
#                                    the libraries' pages and one-time
#                                    caches are in both figures).  70: the
#                                    last tombstones (tokens expire up to
#                                    2 s after the load) hold their pages
#                                    for 60 s, plus the 1-s sweep; at 65
#                                    the sample could still hold them (4 MiB)
#   soak_audit_intact                1 if `credbroker audit verify` passed
#
# Self-contained: builds credbrokerd, credbroker and soak-client into
# build-bench/ (release), works in a private temp dir removed on exit,
# starts and stops its own daemon and upstreams on 127.0.0.1.  Needs root,
# setpriv, nginx, openssl, python3.  Prints figures, never pass/fail; exits
# non-zero only when a step failed to run.  The machine's other load shows
# in the latencies: say so when quoting them.
set -euo pipefail

SECS=${SOAK_SECONDS:-600}
THINK=${SOAK_THINK_MS:-10}
IDLE=${SOAK_IDLE_SECONDS:-70}
NCLIENTS=64
UID_BASE=62000
case "$SECS" in '' | *[!0-9]* | 0) echo "soak.sh: SOAK_SECONDS must be a positive integer" >&2; exit 2 ;; esac
case "$THINK" in '' | *[!0-9]*) echo "soak.sh: SOAK_THINK_MS must be a number" >&2; exit 2 ;; esac
case "$IDLE" in '' | *[!0-9]*) echo "soak.sh: SOAK_IDLE_SECONDS must be a number" >&2; exit 2 ;; esac
WARM=${SOAK_WARMUP:-$((SECS / 10 < 5 ? 5 : SECS / 10 > 60 ? 60 : SECS / 10))}
case "$WARM" in '' | *[!0-9]*) echo "soak.sh: SOAK_WARMUP must be a number" >&2; exit 2 ;; esac
[ "$WARM" -lt "$SECS" ] || { echo "soak.sh: SOAK_WARMUP must be below SOAK_SECONDS" >&2; exit 2; }

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${SOAK_BUILD:-$SRC/build-bench} # SOAK_BUILD: another build dir (e.g. an ASan one)
DAEMON="$BUILD/broker/credbrokerd"
CLI="$BUILD/client/credbroker"
PYBIN=/usr/bin/python3

log() { echo "soak.sh: $(date -u +%T) $*" >&2; }
[ "$(id -u)" = 0 ] || { log "needs root (64 client uids)"; exit 1; }
for t in setpriv nginx openssl "$PYBIN" timeout; do
        command -v "$t" >/dev/null || { log "needs $t"; exit 1; }
done

if [ ! -f "$BUILD/build.ninja" ]; then
        timeout 300 meson setup "$BUILD" "$SRC" --buildtype=release -Dwerror_ci=true >&2
fi
timeout 600 ninja -C "$BUILD" broker/credbrokerd client/credbroker tests/bench/soak-client >&2

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cb-soak.XXXXXX")
chmod 0711 "$TMP"
PIDS=()
cleanup() {
        local p
        for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        rm -rf -- "$TMP"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# The client runs as 64 uids: a copy they can execute, named by the policy.
mkdir -m 0755 "$TMP/bin"
install -m 0755 "$BUILD/tests/bench/soak-client" "$TMP/bin/soak-client"
SOAK_EXE="$TMP/bin/soak-client"

# ---- upstreams: nginx (TLS, plain reply) and proxy-upstream.py (TLS, SSE) ----
bash "$SRC/tests/integration/proxy-certs.sh" "$TMP/pki"
CA="$TMP/pki/ca.pem"
free_port() { "$PYBIN" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port)
mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp"
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
user root;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    server { listen 127.0.0.1:$UP ssl; keepalive_requests 1000000;
             ssl_certificate $TMP/pki/server.pem; ssl_certificate_key $TMP/pki/server.key;
             location / { default_type text/plain; return 200 'soak-ok'; } }
}
EOF
nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx/out.log" 2>&1 &
PIDS+=($!)
"$PYBIN" "$SRC/tests/integration/proxy-upstream.py" --port 0 --cert "$TMP/pki/server.pem" \
        --key "$TMP/pki/server.key" --log /dev/null >"$TMP/sse.port" 2>"$TMP/sse.err" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$TMP/sse.port" ] && break; sleep 0.05; done
SSE=$(head -n 1 "$TMP/sse.port")
case "$SSE" in '' | *[!0-9]*) log "proxy-upstream.py did not start: $(cat "$TMP/sse.err")"; exit 1 ;; esac
for _ in $(seq 100); do
        "$PYBIN" -c "import socket; socket.create_connection(('127.0.0.1', $UP), 1)" 2>/dev/null && break
        sleep 0.05
done

# ---- store, policy, daemon ------------------------------------------------
timeout 60 "$CLI" init --state-dir "$TMP/state" --unlock "keyfile:$TMP/key" >/dev/null
# policy VARIANT: the same grants; variant b adds an unrelated client, so a
# reload between the two really changes the policy.
policy() {
        local extra=
        [ "$1" = b ] && extra='"other": {"uid": 65000},'
        cat >"$TMP/policy.json.new" <<JSON
{ "clients": { $extra "soak": {"exe": "$SOAK_EXE"} },
  "grants": [
    {"client": "soak", "secret": "soak-redeem", "use": ["redeem"], "max_ttl": 30},
    {"client": "soak", "secret": "soak-proxy", "use": ["proxy"], "max_ttl": 3600},
    {"client": "soak", "secret": "soak-sse", "use": ["proxy"], "max_ttl": 3600},
    {"client": "soak", "secret": "*", "use": ["scan"]} ],
  "scan_budget": {"requests_per_minute": 1000000, "bytes_per_minute": 1099511627776},
  "admins": {"uids": [0]} }
JSON
        chmod 0644 "$TMP/policy.json.new"
        mv -f "$TMP/policy.json.new" "$TMP/policy.json"
}
policy a
AS="$TMP/run/admin.sock" TS="$TMP/run/tools.sock"
"$DAEMON" --state-dir "$TMP/state" --run-dir "$TMP/run" --policy "$TMP/policy.json" --unlock "keyfile:$TMP/key" \
        --audit-log "$TMP/audit.log" >"$TMP/daemon.log" 2>&1 &
DPID=$!
PIDS+=($DPID)
for _ in $(seq 100); do [ -S "$AS" ] && [ -S "$TS" ] && break; sleep 0.05; done
[ -S "$AS" ] || { log "credbrokerd did not start:"; cat "$TMP/daemon.log" >&2; exit 1; }
value() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
value | timeout 30 "$CLI" --admin-socket "$AS" put soak-redeem >/dev/null
value | timeout 30 "$CLI" --admin-socket "$AS" put soak-proxy --host "127.0.0.1:$UP" \
        --inject 'Authorization: Bearer {}' --ca-file "$CA" >/dev/null
value | timeout 30 "$CLI" --admin-socket "$AS" put soak-sse --host "127.0.0.1:$SSE" \
        --inject 'Authorization: Bearer {}' --ca-file "$CA" >/dev/null

# VmRSS (kB) and open fds of the daemon; medians of five samples.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status"; }
fds() { find "/proc/$DPID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
# Where the RSS is: anonymous memory by kind (heap and arenas, other
# anonymous maps, stacks) and file-backed (libraries), from smaps.
by_kind() {
        awk '
/^[0-9a-f]+-[0-9a-f]+ / { n = $6; kind = (n == "[heap]") ? "heap" : (n ~ /^\[stack/) ? "stack" : (n == "") ? "anon" : (n ~ /^\[/) ? "other" : "file" }
/^Rss:/ { r[kind] += $2 }
END { printf "heap %d, anon %d, stacks %d, files %d, other %d kB", r["heap"], r["anon"], r["stack"], r["file"], r["other"] }' "/proc/$DPID/smaps"
}
median5() { local i; for i in 1 2 3 4 5; do "$1"; sleep 0.2; done | sort -n | sed -n 3p; }
# Under load the heap is a saw: requests' freed memory stays until the
# daemon's next trim (memtrim.c: at most every 5 s while busy), so one
# instant says more about where in the saw it fell than about the level.
# The load figures are the median of 11 samples 1 s apart (two trim periods).
median_load() { local i; for i in $(seq 11); do "$1"; sleep 1; done | sort -n | sed -n 6p; }
RSSF=$(median5 rss_kb) FDF=$(median5 fds)
FRESH_MAP=$(by_kind)
# Priming: one uid, every path, 3 s, then 5 s of quiet (the daemon's first
# idle trim): the libraries' code and the caches every request path fills
# once (OpenSSL's algorithms, the CA store, the matcher) are in.  This is
# the level idle memory is compared with after the load.
mkdir -m 0755 "$TMP/out"
timeout 60 setpriv --reuid "$UID_BASE" --regid "$UID_BASE" --clear-groups \
        "$SOAK_EXE" "$TS" 3 "$THINK" token redeem proxy sse scan >"$TMP/prime.res" 2>"$TMP/prime.err" ||
        { log "priming failed:"; cat "$TMP/prime.err" >&2; exit 1; }
sleep 5
RSS0=$(median5 rss_kb) FD0=$(median5 fds)
START_MAP=$(by_kind)
log "daemon $DPID up: VmRSS $RSSF kB fresh, $RSS0 kB primed, $FD0 fds; nginx :$UP, sse :$SSE; $NCLIENTS clients x 5 paths for ${SECS}s"

# ---- load ---------------------------------------------------------------------
CPIDS=()
for i in $(seq 0 $((NCLIENTS - 1))); do
        u=$((UID_BASE + i))
        timeout $((SECS + 120)) setpriv --reuid "$u" --regid "$u" --clear-groups \
                "$SOAK_EXE" "$TS" "$SECS" "$THINK" token redeem proxy sse scan \
                >"$TMP/out/$i.res" 2>"$TMP/out/$i.err" &
        CPIDS+=($!)
done
PIDS+=("${CPIDS[@]}")
T0=$(date +%s)

# operators: SIGHUP every 10 s, rotations every 30 s, samples every 5 s
: >"$TMP/ops.log"
(
        n=0
        while [ $(($(date +%s) - T0)) -lt "$SECS" ]; do
                sleep 5
                n=$((n + 1))
                echo "sample $(($(date +%s) - T0)) $(rss_kb) $(fds)" >>"$TMP/ops.log"
                if [ $((n % 2)) = 0 ]; then
                        [ $((n % 4)) = 0 ] && policy a || policy b
                        kill -HUP "$DPID" && echo "sighup $(($(date +%s) - T0))" >>"$TMP/ops.log"
                fi
                if [ $((n % 6)) = 0 ]; then
                        for s in soak-redeem soak-proxy; do
                                if value | timeout 60 "$CLI" --admin-socket "$AS" rotate "$s" >/dev/null 2>>"$TMP/ops.err"; then
                                        echo "rotate $(($(date +%s) - T0)) $s" >>"$TMP/ops.log"
                                else
                                        echo "rotate-failed $(($(date +%s) - T0)) $s" >>"$TMP/ops.log"
                                fi
                        done
                fi
        done
) &
OPS=$!
PIDS+=($OPS)

sleep "$WARM"
RSSW=$(median_load rss_kb) FDW=$(median5 fds)
log "after warm-up (${WARM}s): VmRSS $RSSW kB, $FDW fds"
left=$((SECS - $(date +%s) + T0 - 14))
[ "$left" -gt 0 ] && sleep "$left"
RSSE=$(median_load rss_kb) FDE=$(median5 fds)
log "end of load: VmRSS $RSSE kB, $FDE fds; waiting for the clients"
crc=0
for p in "${CPIDS[@]}"; do wait "$p" || crc=$((crc + 1)); done
wait "$OPS" 2>/dev/null || true
T1=$(date +%s)
kill -0 "$DPID" 2>/dev/null || { log "credbrokerd died:"; tail -n 20 "$TMP/daemon.log" >&2; exit 1; }
log "clients done ($crc exited non-zero); ${IDLE}s of quiet"
sleep "$IDLE"
RSSI=$(median5 rss_kb) FDI=$(median5 fds)
[ -z "${SOAK_SMAPS:-}" ] || cp "/proc/$DPID/smaps" "$SOAK_SMAPS" # SOAK_SMAPS=FILE: keep the idle map
IDLE_FDS=$(for f in /proc/"$DPID"/fd/*; do readlink "$f"; done 2>/dev/null | sed 's/:.*//' | sort | uniq -c | tr -s ' \n' ' ')
IDLE_MAP=$(by_kind)
# After the quiet (pooled upstream connections given back): the proxy and
# the rest still answer, one uid for 3 s.
timeout 60 setpriv --reuid "$UID_BASE" --regid "$UID_BASE" --clear-groups \
        "$SOAK_EXE" "$TS" 3 "$THINK" token redeem proxy sse scan >"$TMP/out/after-idle.res" 2>"$TMP/out/after-idle.err" ||
        crc=$((crc + 1))
kill -TERM "$DPID"
timeout 30 tail --pid="$DPID" -f /dev/null || log "credbrokerd did not exit on SIGTERM"
# Offline, against the head the daemon checkpointed: a log of a gigabyte
# takes minutes, longer than the CLI waits for admin.sock (30 s).
log "idle: VmRSS $RSSI kB, $FDI fds; daemon stopped; verifying the audit log offline" \
        "($(($(stat -c %s "$TMP/audit.log") / 1048576)) MiB)"
V0=$(date +%s)
if timeout 3600 "$CLI" audit verify --state-dir "$TMP/state" --unlock "keyfile:$TMP/key" "$TMP/audit.log" \
        >"$TMP/verify.out" 2>&1; then
        intact=1
else
        intact=0
fi
V1=$(date +%s)

# ---- report -------------------------------------------------------------------
cat "$TMP"/out/*.res >"$TMP/all.res"
errs_shown=$(awk 'NR <= 20' "$TMP"/out/*.err) # awk reads all: no SIGPIPE under pipefail
[ -z "$errs_shown" ] || { echo "# client errors (first 20):"; echo "$errs_shown" | sed 's/^/#   /'; }
[ -s "$TMP/ops.err" ] && { echo "# operator errors:"; head -n 10 "$TMP/ops.err" | sed 's/^/#   /'; }
echo "# $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine: latencies include other work)"
echo "# ${SECS}s load, ${WARM}s warm-up, think ${THINK} ms, $NCLIENTS uids x 5 paths; $((T1 - T0))s wall"
echo "# ops: $(grep -c '^sighup' "$TMP/ops.log") SIGHUPs, $(grep -c '^rotate ' "$TMP/ops.log") rotations," \
        "$(grep -c '^rotate-failed' "$TMP/ops.log") failed rotations"
echo "# VmRSS kB: start $RSS0, after warm-up $RSSW, end $RSSE, idle ${IDLE}s later $RSSI; fds: $FD0 $FDW $FDE $FDI"
echo "# VmRSS fresh daemon $RSSF kB ($FDF fds): $FRESH_MAP"
echo "# VmRSS by kind primed (the start): $START_MAP"
echo "# idle VmRSS by kind: $IDLE_MAP; idle fds: $IDLE_FDS"
echo "# VmRSS under load after warm-up, 5 s samples: lowest $(awk -v w="$WARM" '/^sample/ && $2 > w { print $3 }' "$TMP/ops.log" | sort -n | head -1) kB, highest $(awk -v w="$WARM" '/^sample/ && $2 > w { print $3 }' "$TMP/ops.log" | sort -n | tail -1) kB"
echo "# samples (s rss_kB fds): $(awk '/^sample/ { printf "%s:%s:%s ", $2, $3, $4 }' "$TMP/ops.log")"
grep -E 'gave .* KiB of heap back|refused [0-9]+ connection' "$TMP/daemon.log" | tail -n 3 | sed 's/^/# daemon: /' || true
# The trims under load (memtrim.c busy_tick): how many gave 1 MiB or more back, and how long each took.
echo "# trims under load: $(grep -c 'under load' "$TMP/daemon.log" || true);" \
        "KiB given back and ms: $(sed -n 's/.*under load.*gave \([0-9]*\) KiB.*malloc_trim \([0-9.]*\) ms.*/\1:\2/p' "$TMP/daemon.log" | tr '\n' ' ')"
# A sanitizer build (SOAK_BUILD) reports into the daemon's log.
san=$(grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$TMP/daemon.log" | head -n 5 || true)
[ -z "$san" ] || { echo "# SANITIZER REPORTS in the daemon log:"; echo "$san" | sed 's/^/#   /'; }
echo "# audit: $(wc -l <"$TMP/audit.log") records; verify ($((V1 - V0)) s): $(head -c 300 "$TMP/verify.out" | tr '\n' ' ')"
awk -v secs="$SECS" -v crc="$crc" '
$1 == "R" { req[$2] += $3; err[$2] += $4; cc[$2] += $5; ex[$2] += $6; R += $3; E += $4; CC += $5; EX += $6 }
$1 == "H" { h[$2, $3] += $4; n[$2] += $4; if ($3 > top) top = $3 }
END {
        split("token redeem proxy sse scan", P, " ")
        for (i = 1; i <= 5; i++) {
                p = P[i]; want = 0.99 * n[p]; c = 0; v = "nan"
                for (b = 0; b <= top; b++) { c += h[p, b]; if (n[p] && c >= want) { v = sprintf("%.0f", 1.02 ^ (b + 1)); break } }
                p99[p] = v
                printf "# %s: %d requests, %d errors, %d client-caused (%d explained as expired), p99 %s us\n", p, req[p], err[p], cc[p], ex[p], v
        }
        printf "BENCH soak_requests %d\n", R
        printf "BENCH soak_errors %d\n", E + crc
        for (i = 1; i <= 5; i++) printf "BENCH soak_p99_us_%s %s\n", P[i], p99[P[i]]
        printf "BENCH soak_rps %.0f\n", R / secs
        printf "BENCH soak_client_caused %d\n", CC
}' "$TMP/all.res" >"$TMP/report"
grep '^#' "$TMP/report"
grep '^BENCH' "$TMP/report" | head -n 2
echo "BENCH soak_rss_growth_pct $(awk -v a="$RSSE" -v b="$RSSW" 'BEGIN { printf "%.1f\n", (a - b) * 100 / b }')"
echo "BENCH soak_fd_growth $((FDI - FDF))"
echo "BENCH soak_fd_load_growth $((FDE - FDW))"
grep '^BENCH' "$TMP/report" | tail -n +3
echo "BENCH soak_idle_rss_vs_start_pct $(awk -v a="$RSSI" -v b="$RSS0" 'BEGIN { printf "%.1f\n", (a - b) * 100 / b }')"
echo "BENCH soak_audit_intact $intact"
