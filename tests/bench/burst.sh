#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Burst benchmark (issue 19): issue 19's reproduction, then the memory.
# 64 token clients under 64 uids (token-bench, connect-per-request POST
# /v1/token) against a grant with max_ttl 2, --audit-log on, until
# BURST_TOKENS (default 200,000: twice the total cap of live tokens) were
# issued; then BURST_IDLE_SECONDS (default 70: the tombstones' minute, the
# daemon's idle trim) of quiet.  Before the fix the run failed after about
# 100,000 tokens with 429 "the broker holds the maximum of 100000 live
# tokens" (expired tokens counted for 60 s) and RSS stayed at the burst's.
#
#   bash tests/bench/burst.sh          BURST_TOKENS=300000 bash tests/bench/burst.sh
#
# Figures, last:
#   burst_tokens          tokens issued (all 201: token-bench fails the run
#                         on any other answer)
#   burst_tokens_per_s    issue rate over the run
#   burst_rss_before_kb   daemon VmRSS before the burst (after one request,
#                         so the libraries' pages it touches are in)
#   burst_rss_after_kb    at the end of the burst
#   burst_rss_idle_kb     after the quiet
#   burst_idle_vs_before_pct   (idle - before) / before, percent
#   burst_audit_intact    1 if `credbroker audit verify` passed
#
# Self-contained like tokens.sh (builds into build-bench/, private temp dir,
# its own daemon).  Needs root (per-thread uids).  Prints figures, never
# pass/fail.
set -euo pipefail

N=${BURST_TOKENS:-200000}
IDLE=${BURST_IDLE_SECONDS:-70}
CLIENTS=64
UID_BASE=63000
case "$N" in '' | *[!0-9]* | 0) echo "burst.sh: BURST_TOKENS must be a positive integer" >&2; exit 2 ;; esac
case "$IDLE" in '' | *[!0-9]*) echo "burst.sh: BURST_IDLE_SECONDS must be a number" >&2; exit 2 ;; esac
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD="$SRC/build-bench"
BENCH="$BUILD/tests/bench/token-bench"
DAEMON="$BUILD/broker/credbrokerd"
CLI="$BUILD/client/credbroker"
log() { echo "burst.sh: $(date -u +%T) $*" >&2; }
[ "$(id -u)" = 0 ] || { log "needs root (token clients run under their own uids)"; exit 1; }

if [ ! -f "$BUILD/build.ninja" ]; then
        timeout 300 meson setup "$BUILD" "$SRC" --buildtype=release -Dwerror_ci=true >&2
fi
timeout 600 ninja -C "$BUILD" tests/bench/token-bench broker/credbrokerd client/credbroker >&2

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cb-burst.XXXXXX")
chmod 0711 "$TMP"
DPID=
cleanup() {
        [ -n "$DPID" ] && kill "$DPID" 2>/dev/null || true
        wait 2>/dev/null || true
        rm -rf -- "$TMP"
}
trap cleanup EXIT

timeout 60 "$CLI" init --state-dir "$TMP/state" --unlock "keyfile:$TMP/key" >/dev/null
cat >"$TMP/policy.json" <<JSON
{ "clients": { "bench": {"exe": "$(readlink -f "$BENCH")"} },
  "grants": [ {"client": "bench", "secret": "bench", "use": ["redeem"], "max_ttl": 2} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$TMP/policy.json"
AS="$TMP/run/admin.sock" TS="$TMP/run/tools.sock"
"$DAEMON" --state-dir "$TMP/state" --run-dir "$TMP/run" --policy "$TMP/policy.json" --unlock "keyfile:$TMP/key" \
        --audit-log "$TMP/audit.log" >"$TMP/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do [ -S "$AS" ] && [ -S "$TS" ] && break; sleep 0.05; done
[ -S "$AS" ] || { log "credbrokerd did not start:"; cat "$TMP/daemon.log" >&2; exit 1; }
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | timeout 30 "$CLI" --admin-socket "$AS" put bench >/dev/null

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status"; }
# VmRSS by kind (heap and arenas, other anonymous maps, stacks, files), from smaps.
by_kind() {
        awk '
/^[0-9a-f]+-[0-9a-f]+ / { n = $6; kind = (n == "[heap]") ? "heap" : (n ~ /^\[stack/) ? "stack" : (n == "") ? "anon" : (n ~ /^\[/) ? "other" : "file" }
/^Rss:/ { r[kind] += $2 }
END { printf "heap %d, anon %d, stacks %d, files %d, other %d kB", r["heap"], r["anon"], r["stack"], r["file"], r["other"] }' "/proc/$DPID/smaps"
}
median5() { local i; for i in 1 2 3 4 5; do "$1"; sleep 0.2; done | sort -n | sed -n 3p; }
# One request first, then quiet: the pre-burst figure has the code paths' pages in.
timeout 60 "$BENCH" run token "$TS" 1 1 1 >/dev/null 2>&1 || true
sleep 5
R0=$(median5 rss_kb) K0=$(by_kind)
log "issuing $N tokens (ttl 2 s) from $CLIENTS uids; VmRSS before: $R0 kB"
t0=$(date +%s.%N)
if ! timeout 900 "$BENCH" run token "$TS" "$CLIENTS" 600 "$N" "$UID_BASE" >"$TMP/run.out" 2>"$TMP/run.err"; then
        log "the burst failed:"; cat "$TMP/run.err" >&2
        fail=1
else
        fail=0
fi
t1=$(date +%s.%N)
R1=$(rss_kb)
issued=$(awk '$1 == "ops" { o = $2 } $1 == "warmup_ops" { w = $2 } END { print o + w }' "$TMP/run.out")
log "burst over: ${issued:-?} tokens; VmRSS $R1 kB; ${IDLE}s of quiet"
sleep "$IDLE"
R2=$(median5 rss_kb) K2=$(by_kind)
[ -z "${BURST_SMAPS:-}" ] || cp "/proc/$DPID/smaps" "$BURST_SMAPS"
kill -TERM "$DPID"
timeout 30 tail --pid="$DPID" -f /dev/null || true
DPID=
intact=0
v0=$(date +%s.%N)
timeout 1800 "$CLI" audit verify --state-dir "$TMP/state" --unlock "keyfile:$TMP/key" "$TMP/audit.log" \
        >"$TMP/verify.out" 2>&1 && intact=1
v1=$(date +%s.%N)

echo "# $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) (shared machine)"
[ "$fail" = 0 ] || echo "# the burst FAILED: $(head -c 300 "$TMP/run.err" | tr '\n' ' ')"
echo "# VmRSS by kind before: $K0"
echo "# VmRSS by kind idle:   $K2"
echo "# token-bench: $(tr '\n' ' ' <"$TMP/run.out")"
grep -E 'gave .* KiB of heap back' "$TMP/daemon.log" | sed 's/^/# daemon: /' || true
echo "# audit: $(wc -l <"$TMP/audit.log") records, $(($(stat -c %s "$TMP/audit.log") / 1048576)) MiB; verify" \
        "($(awk -v a="$v0" -v b="$v1" 'BEGIN { printf "%.1f", b - a }') s): $(head -c 200 "$TMP/verify.out" | tr '\n' ' ')"
echo "BENCH burst_tokens ${issued:-0}"
echo "BENCH burst_tokens_per_s $(awk -v n="${issued:-0}" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f\n", n / (b - a) }')"
echo "BENCH burst_rss_before_kb $R0"
echo "BENCH burst_rss_after_kb $R1"
echo "BENCH burst_rss_idle_kb $R2"
echo "BENCH burst_idle_vs_before_pct $(awk -v a="$R2" -v b="$R0" 'BEGIN { printf "%.1f\n", (a - b) * 100 / b }')"
echo "BENCH burst_audit_intact $intact"
