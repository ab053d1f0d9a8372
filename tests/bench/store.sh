#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Store benchmark: build a keyfile store of N secrets (default 10,000), then
# time open+unlock and one lookup in fresh processes, report peak RSS and put
# throughput, and compare open with the I/O floor (reading the same files
# into memory and doing nothing else).
#
#   bash tests/bench/store.sh            N=2000 RUNS=7 bash tests/bench/store.sh
#
# Self-contained: builds tests/bench/store-bench into build-bench/ (release,
# -Dwerror_ci=true), works in a private temp dir removed on exit, bounds every
# step with timeout(1).  Prints figures, never pass/fail (targets live in the
# issue); exits non-zero only when a step failed to run.  Notes go to stdout
# as "# ..." lines, progress to stderr; the last lines are one BENCH line per
# figure:
#
#   store_open_10k_ms      median wall time of cb_store_open (keyfile unlock:
#                          no Argon2id), warm page cache
#   store_lookup_us        median time of the first cb_store_get after open
#   store_rss_10k_mb       peak RSS of an open process (VmHWM after open +
#                          lookup; the largest over the runs)
#   store_put_per_s        cb_store_put rate while filling; every put is a
#                          durable, fsync'd commit
#   store_open_vs_rawread  median open time / median time to read() the
#                          store's files into memory
set -euo pipefail

N=${N:-10000}
RUNS=${RUNS:-7}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD="$SRC/build-bench"
BIN="$BUILD/tests/bench/store-bench"

case "$N" in '' | *[!0-9]*) echo "store.sh: N must be a positive integer" >&2; exit 2 ;; esac
case "$RUNS" in '' | *[!0-9]* | 0) echo "store.sh: RUNS must be a positive integer" >&2; exit 2 ;; esac
[ "$N" -ge 1 ] || { echo "store.sh: N must be at least 1" >&2; exit 2; }

log() { echo "store.sh: $*" >&2; }

# ---- build ---------------------------------------------------------------
# Set up only when there is no configured build (a missing dir, or one left
# by a configure that failed); an existing build-bench/ is reused as is.
if [ ! -f "$BUILD/build.ninja" ]; then
        log "configuring $BUILD"
        timeout 300 meson setup "$BUILD" "$SRC" --buildtype=release -Dwerror_ci=true >&2
fi
log "building store-bench"
timeout 600 ninja -C "$BUILD" tests/bench/store-bench >&2

# ---- workspace -------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cb-store-bench.XXXXXX")
trap 'rm -rf -- "$TMP"' EXIT
chmod 0700 "$TMP"
STORE="$TMP/store"
KEYFILE="$TMP/keyfile"

# "key value" lines from a store-bench output file.
get() {
        local v
        v=$(awk -v k="$1" '$1 == k { print $2; exit }' "$2")
        if [ -z "$v" ]; then
                echo "store.sh: no '$1' in the output of $(basename "$2" .out)" >&2
                return 1
        fi
        echo "$v"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
maximum() { sort -g | tail -n 1; }

# ---- fill --------------------------------------------------------------------
# Each put is three fsyncs (log, header temp file, directory): budget 10 puts/s.
log "filling a store with $N secrets (one fsync'd commit per put)"
fill_start=$(date +%s%N)
timeout $((60 + N / 10)) "$BIN" fill "$STORE" "$KEYFILE" "$N" >"$TMP/fill.out"
fill_s=$(awk -v a="$fill_start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f\n", (b - a) / 1e9 }')
put_per_s=$(get put_per_s "$TMP/fill.out")
[ "$(get secrets "$TMP/fill.out")" = "$N" ] || { log "fill did not store $N secrets"; exit 1; }

# ---- open vs. raw read, interleaved, fresh process each ------------------------
NAME=$(printf 'bench-%06d' $(((N + 1) / 2)))
log "timing open + lookup of $NAME and the raw read, $RUNS runs each (after one warm-up)"
: >"$TMP/open_ms"; : >"$TMP/lookup_us"; : >"$TMP/hwm_mb"; : >"$TMP/maxrss_mb"; : >"$TMP/raw_ms"; : >"$TMP/warm_us"; : >"$TMP/rss_mb"
for i in $(seq 0 "$RUNS"); do
        timeout 60 "$BIN" readraw "$STORE" >"$TMP/raw.out"
        timeout 60 "$BIN" open "$STORE" "$KEYFILE" "$NAME" >"$TMP/open.out"
        [ "$(get secrets "$TMP/open.out")" = "$N" ] || { log "open saw a different number of secrets"; exit 1; }
        if [ "$i" -eq 0 ]; then continue; fi # warm-up: page cache, dynamic loader
        get readraw_ms "$TMP/raw.out" >>"$TMP/raw_ms"
        get open_ms "$TMP/open.out" >>"$TMP/open_ms"
        get lookup_us "$TMP/open.out" >>"$TMP/lookup_us"
        get vmhwm_mb "$TMP/open.out" >>"$TMP/hwm_mb"
        get maxrss_mb "$TMP/open.out" >>"$TMP/maxrss_mb"
        get lookup_warm_avg_us "$TMP/open.out" >>"$TMP/warm_us"
        get vmrss_after_open_mb "$TMP/open.out" >>"$TMP/rss_mb"
done

open_ms=$(median <"$TMP/open_ms")
lookup_us=$(median <"$TMP/lookup_us")
raw_ms=$(median <"$TMP/raw_ms")
rss_mb=$(maximum <"$TMP/hwm_mb")
ratio=$(awk -v a="$open_ms" -v b="$raw_ms" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "nan" }')

# ---- report --------------------------------------------------------------------
store_bytes=$(du -sb "$STORE" | cut -f1)
echo "# N=$N secrets, avg value $(get value_bytes_avg "$TMP/fill.out") bytes, store $((store_bytes / 1024)) KiB on $(stat -f -c %T "$TMP")"
[ "$N" -eq 10000 ] || echo "# note: N is $N, not 10000; the *_10k_* figures below are for N=$N"
echo "# fill: ${fill_s}s wall, $(get put_total_s "$TMP/fill.out")s in cb_store_put; put/s first tenth $(get put_per_s_first_tenth "$TMP/fill.out"), last tenth $(get put_per_s_last_tenth "$TMP/fill.out")"
echo "# open_ms runs:   $(tr '\n' ' ' <"$TMP/open_ms")"
echo "# readraw_ms runs: $(tr '\n' ' ' <"$TMP/raw_ms")- $(get readraw_files "$TMP/raw.out") files, $(get readraw_bytes "$TMP/raw.out") bytes"
echo "# lookup_us runs: $(tr '\n' ' ' <"$TMP/lookup_us"); warm lookup avg (1000 gets) median $(median <"$TMP/warm_us") us"
echo "# peak RSS: VmHWM max $rss_mb MB; ru_maxrss max $(maximum <"$TMP/maxrss_mb") MB (ru_maxrss may include the forked shell before exec); VmRSS once open $(median <"$TMP/rss_mb") MB"
echo "BENCH store_open_10k_ms $open_ms"
echo "BENCH store_lookup_us $lookup_us"
echo "BENCH store_rss_10k_mb $rss_mb"
echo "BENCH store_put_per_s $put_per_s"
echo "BENCH store_open_vs_rawread $ratio"
