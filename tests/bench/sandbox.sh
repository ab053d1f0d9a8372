#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Sandbox benchmark (issue 17):
#
#   sandbox_start_ms           median wall time of `credbroker sandbox -- /bin/true`
#                              (launcher, seccomp filter, bwrap, --info-fd/--block-fd,
#                              the broker's listener made in the sandbox's network
#                              namespace and handed to credbrokerd, which identifies
#                              the launcher and registers it; exec's output pump)
#   bwrap_start_ms             the baseline, same runs interleaved:
#                              `bwrap --unshare-all --ro-bind / / /bin/true`
#   sandbox_start_vs_bwrap     the ratio (issue 17's target: <= 1.5)
#
#   tunnel_mbytes_s, direct_mbytes_s  (MB/s) bulk HTTPS download (SIZE_MB, default 256 MiB) with
#                              curl: inside a sandbox through HTTPS_PROXY (a CONNECT
#                              tunnel the broker relays) / the same download made
#                              directly from the broker's network namespace; medians
#                              of 3, interleaved
#   tunnel_throughput_vs_direct  the ratio (issue 17's target: >= 0.8)
#
# The tunnel part needs root, unshare, nsenter and ip (the broker and an
# openssl s_server upstream run in a network namespace it makes, the
# upstream on 11.22.33.44 on lo with a name from a private /etc/hosts);
# without them it prints the start-up figures only.
#
#   bash tests/bench/sandbox.sh        RUNS=51 bash tests/bench/sandbox.sh
#
# Self-contained: builds the CLI and the daemon into build-bench/ (release)
# unless CREDBROKER_CLI and CREDBROKERD name them, starts its own daemon
# (keyfile store, a policy selecting the caller's uid) in a private temp
# dir, bounds each run with timeout(1).  Prints figures, never pass/fail.
set -euo pipefail

RUNS=${RUNS:-31}
case "$RUNS" in '' | *[!0-9]* | 0) echo "sandbox.sh: RUNS must be a positive integer" >&2; exit 2 ;; esac
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD="$SRC/build-bench"
log() { echo "sandbox.sh: $*" >&2; }
command -v bwrap >/dev/null || { echo "sandbox.sh: bwrap is not installed (Debian package bubblewrap)" >&2; exit 1; }
CLI=${CREDBROKER_CLI:-}
DAEMON=${CREDBROKERD:-}
if [ -z "$CLI" ] || [ -z "$DAEMON" ]; then
        if [ ! -f "$BUILD/build.ninja" ]; then
                log "configuring $BUILD"
                timeout 300 meson setup "$BUILD" "$SRC" --buildtype=release -Dwerror_ci=true >&2
        fi
        timeout 900 meson compile -C "$BUILD" client/credbroker:executable broker/credbrokerd >&2
        CLI="$BUILD/client/credbroker"
        DAEMON="$BUILD/broker/credbrokerd"
fi
T=$(mktemp -d /var/tmp/cbsb-bench.XXXXXX)
PID=''
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; [ -s "$T/ssrv.pid" ] && kill "$(cat "$T/ssrv.pid")" 2>/dev/null; rm -rf "$T"' EXIT
cd "$T"
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null
SIZE_MB=${SIZE_MB:-256}
TUNNEL=0
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v nsenter >/dev/null && command -v ip >/dev/null &&
        command -v openssl >/dev/null; then
        TUNNEL=1
fi
P=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '{ "clients": { "me": {"uid": %d, "egress": {"allow": ["upstream.test:%d"]}} }, "grants": [], "admins": {"uids": [0]} }\n' \
        "$(id -u)" "$P" >"$T/policy.json"
chmod 0644 "$T/policy.json"
if [ $TUNNEL = 1 ]; then
        mkdir "$T/www"
        head -c $((SIZE_MB * 1024 * 1024)) /dev/zero >"$T/www/bulk"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=upstream.test \
                -addext subjectAltName=DNS:upstream.test -keyout "$T/up.key" -out "$T/up.pem" >/dev/null 2>&1
        printf '127.0.0.1 localhost\n11.22.33.44 upstream.test\n' >"$T/hosts"
        cat >"$T/ns.sh" <<NSEOF
ip link set lo up && ip addr add 11.22.33.44/32 dev lo && mount --bind "$T/hosts" /etc/hosts || exit 1
(cd "$T/www" && exec openssl s_server -quiet -accept 11.22.33.44:$P -cert "$T/up.pem" -key "$T/up.key" -WWW) >/dev/null 2>&1 &
echo \$! >"$T/ssrv.pid"
exec "$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key"
NSEOF
        unshare -mn bash "$T/ns.sh" >"$T/daemon.out" 2>&1 &
else
        "$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
                >"$T/daemon.out" 2>&1 &
fi
PID=$!
for _ in $(seq 100); do [ -S "$T/run/sandbox.sock" ] && break; sleep 0.05; done
[ -S "$T/run/sandbox.sock" ] || { log "the daemon did not start: $(cat "$T/daemon.out")"; exit 1; }
export CREDBROKER_SOCKET=$T/run/tools.sock
mkdir "$T/work"
cd "$T/work"

# ms NAME CMD...: one run's wall time in ms (to stdout, 3 decimals)
ms() {
        local a b
        a=$(date +%s%N)
        timeout 30 "$@" >/dev/null 2>&1 || { log "run failed: $*"; exit 1; }
        b=$(date +%s%N)
        awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f\n", (b - a) / 1e6}'
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
# Warm-up (page cache, the dynamic loader).
ms "$CLI" sandbox -- /bin/true >/dev/null
ms bwrap --unshare-all --ro-bind / / /bin/true >/dev/null
: >"$T/sb"; : >"$T/bw"
for _ in $(seq "$RUNS"); do
        ms "$CLI" sandbox -- /bin/true >>"$T/sb"
        ms bwrap --unshare-all --ro-bind / / /bin/true >>"$T/bw"
done
sb=$(median <"$T/sb")
bw=$(median <"$T/bw")
echo "BENCH sandbox_start_ms $sb"
echo "BENCH bwrap_start_ms $bw"
echo "BENCH sandbox_start_vs_bwrap $(awk -v s="$sb" -v b="$bw" 'BEGIN {printf "%.2f\n", s / b}')"

[ $TUNNEL = 1 ] || { log "not root or no unshare/nsenter/ip/openssl: tunnel figures skipped"; exit 0; }
# unshare exec'd bash, which exec'd the daemon: $PID is in the namespaces.
URL="https://upstream.test:$P/bulk"
direct() { nsenter -t "$PID" -n -m curl -s -o /dev/null --max-time 120 --cacert "$T/up.pem" -w '%{speed_download}' "$URL"; }
tunnel() { timeout 150 "$CLI" sandbox -- curl -s -o /dev/null --max-time 120 --cacert "$T/up.pem" -w '%{speed_download}' "$URL"; }
: >"$T/d"; : >"$T/t"
for _ in 1 2 3; do
        direct >>"$T/d" && echo >>"$T/d"
        tunnel >>"$T/t" && echo >>"$T/t"
done
d=$(grep . "$T/d" | median)
t=$(grep . "$T/t" | median)
[ -n "$d" ] && [ -n "$t" ] || { log "a download failed (direct: $(cat "$T/d"), tunnel: $(cat "$T/t"))"; exit 1; }
echo "BENCH direct_mbytes_s $(awk -v x="$d" 'BEGIN {printf "%.1f\n", x / 1e6}')"
echo "BENCH tunnel_mbytes_s $(awk -v x="$t" 'BEGIN {printf "%.1f\n", x / 1e6}')"
echo "BENCH tunnel_throughput_vs_direct $(awk -v t="$t" -v d="$d" 'BEGIN {printf "%.2f\n", t / d}')"
