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
# tunnel_throughput_vs_direct is not printed: CONNECT tunnels do not exist
# yet (docs/sandbox.md, "What is missing").
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
        timeout 900 meson compile -C "$BUILD" credbroker credbrokerd >&2
        CLI="$BUILD/client/credbroker"
        DAEMON="$BUILD/broker/credbrokerd"
fi
T=$(mktemp -d /var/tmp/cbsb-bench.XXXXXX)
PID=''
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$T"' EXIT
cd "$T"
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null
printf '{ "clients": { "me": {"uid": %d} }, "grants": [], "admins": {"uids": [0]} }\n' "$(id -u)" >"$T/policy.json"
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        >"$T/daemon.out" 2>&1 &
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
