#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Unlock benchmark: the time to open (unlock) a store with each provider,
# in-process (cb_store_open + close; the store is empty, so this is the
# provider plus a few file reads):
#
#   unlock_passphrase_ms     Argon2id at its default cost (libsodium
#                            MODERATE: 3 passes, 256 MiB)
#   unlock_keyfile_ms        key file read + BLAKE2b (the baseline: no KDF,
#                            no TPM)
#   unlock_tpm2_ms           tpm2 on swtpm: CreatePrimary (ECC P-256 SRK),
#                            salted session, Load, Unseal, flushes, and the
#                            NV counter read of the anti-rollback check
#   unlock_tpm2_keyfile_ms   tpm2+keyfile on swtpm
#   unlock_tpm2_pcr_ms       tpm2 with a PCR 7 policy (policy session)
#   tpm2_connect_ms          the floor under the tpm2 figures: connect to
#                            swtpm + one command + disconnect
#
#   bash tests/bench/unlock.sh            RUNS=9 bash tests/bench/unlock.sh
#
# Self-contained: builds tests/bench/unlock-bench into build-bench/ (release),
# starts its own swtpm on free loopback ports, works in a private temp dir,
# bounds every step with timeout(1), and cleans up on exit.  Medians of RUNS
# runs (default 7; passphrase gets min(RUNS, 5) as each run takes ~1 s).
# Prints figures, never pass/fail.  A real TPM is slower than swtpm (tens to
# hundreds of ms per command): these figures are the software floor.
set -euo pipefail

RUNS=${RUNS:-7}
case "$RUNS" in '' | *[!0-9]* | 0) echo "unlock.sh: RUNS must be a positive integer" >&2; exit 2 ;; esac
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD="$SRC/build-bench"
BIN="$BUILD/tests/bench/unlock-bench"
log() { echo "unlock.sh: $*" >&2; }
command -v swtpm >/dev/null || { echo "unlock.sh: swtpm is not installed (Debian package swtpm)" >&2; exit 1; }

if [ ! -f "$BUILD/build.ninja" ]; then
        log "configuring $BUILD"
        timeout 300 meson setup "$BUILD" "$SRC" --buildtype=release -Dwerror_ci=true >&2
fi
log "building unlock-bench"
timeout 600 ninja -C "$BUILD" tests/bench/unlock-bench >&2

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cb-unlock-bench.XXXXXX")
chmod 0700 "$TMP"
SWPID=
cleanup() { [ -n "$SWPID" ] && kill "$SWPID" 2>/dev/null; wait 2>/dev/null; rm -rf -- "$TMP"; }
trap cleanup EXIT

PORT=$(/usr/bin/python3 - <<'PY'
import socket
for _ in range(200):
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]
    t = socket.socket()
    try:
        t.bind(('127.0.0.1', p + 1))
    except OSError:
        s.close(); continue
    s.close(); t.close(); print(p); break
PY
)
mkdir "$TMP/tpm"
swtpm socket --tpm2 --server type=tcp,port=$PORT,bindaddr=127.0.0.1 \
        --ctrl type=tcp,port=$((PORT + 1)),bindaddr=127.0.0.1 \
        --flags not-need-init,startup-clear --tpmstate dir="$TMP/tpm" >"$TMP/swtpm.log" 2>&1 &
SWPID=$!
TCTI=swtpm:host=127.0.0.1,port=$PORT
for _ in $(seq 50); do timeout 10 "$BIN" ping "$TCTI" 1 >/dev/null 2>&1 && break; sleep 0.1; done

median() { sed -n 's/^ms //p' | sort -n | awk '{a[NR]=$1} END {if (NR == 0) exit 1; m = (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2; printf "%.1f\n", m}'; }

head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/pass"
chmod 0400 "$TMP/pass"
log "creating stores"
timeout 120 "$BIN" init "$TMP/s-pass" "passphrase:$TMP/pass"
timeout 60 "$BIN" init "$TMP/s-key" "keyfile:$TMP/key"
timeout 60 "$BIN" init "$TMP/s-tpm" tpm2 "$TCTI"
timeout 60 "$BIN" init "$TMP/s-tpmk" "tpm2+keyfile:$TMP/key2" "$TCTI"
timeout 60 "$BIN" init "$TMP/s-pcr" tpm2 "$TCTI" 7
PRUNS=$(( RUNS < 5 ? RUNS : 5 ))
log "timing passphrase ($PRUNS runs, Argon2id MODERATE)"
pass=$(timeout 600 "$BIN" open "$TMP/s-pass" "passphrase:$TMP/pass" - "$PRUNS" | median)
log "timing keyfile, tpm2, tpm2+keyfile, tpm2 with PCRs ($RUNS runs each, interleaved)"
: >"$TMP/key.ms"; : >"$TMP/tpm.ms"; : >"$TMP/tpmk.ms"; : >"$TMP/pcr.ms"; : >"$TMP/ping.ms"
for _ in $(seq "$RUNS"); do
        timeout 60 "$BIN" open "$TMP/s-key" "keyfile:$TMP/key" - 1 >>"$TMP/key.ms"
        timeout 60 "$BIN" open "$TMP/s-tpm" tpm2 "$TCTI" 1 >>"$TMP/tpm.ms"
        timeout 60 "$BIN" open "$TMP/s-tpmk" "tpm2+keyfile:$TMP/key2" "$TCTI" 1 >>"$TMP/tpmk.ms"
        timeout 60 "$BIN" open "$TMP/s-pcr" tpm2 "$TCTI" 1 >>"$TMP/pcr.ms"
        timeout 60 "$BIN" ping "$TCTI" 1 >>"$TMP/ping.ms"
done
key=$(median <"$TMP/key.ms") tpm=$(median <"$TMP/tpm.ms") tpmk=$(median <"$TMP/tpmk.ms") pcr=$(median <"$TMP/pcr.ms") ping=$(median <"$TMP/ping.ms")
echo "# medians; tpm2 figures are on swtpm over loopback TCP (no resource manager)"
echo "BENCH unlock_passphrase_ms $pass"
echo "BENCH unlock_keyfile_ms $key"
echo "BENCH unlock_tpm2_ms $tpm"
echo "BENCH unlock_tpm2_keyfile_ms $tpmk"
echo "BENCH unlock_tpm2_pcr_ms $pcr"
echo "BENCH tpm2_connect_ms $ping"
