#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The whole test suite, as run by `make test` (and so by .ci/run):
#
#   1. normal build in build/ (-Dwerror_ci=true, debugoptimized) + meson test
#   2. ASan+UBSan build in build-asan/ (gcc, -fno-sanitize-recover=all) + meson test
#   3. fuzz smoke: clang + libFuzzer build in build-fuzz/, each harness of
#      tests/fuzz/meson.build's `fuzz_harnesses` run for FUZZ_SECONDS seconds
#      on a temporary copy of its corpus tests/fuzz/corpus/<name>/
#
# Ends with exactly one summary line, alone and last:
#   N passed, N failed, N skipped
# and exits non-zero iff failed > 0. A stage that fails to configure or build
# counts as (at least) one failure; the script always reaches the summary.
#
# Environment:
#   FUZZ_SECONDS   seconds per fuzz harness (default 20)
#   FUZZ_TIMEOUT   libFuzzer per-input timeout in seconds (default 25)
#   CB_STAGES      stages to run, a subset of "normal asan fuzz" (default: all)

set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-25}
CB_STAGES=${CB_STAGES:-normal asan fuzz}
case "$FUZZ_SECONDS" in ''|*[!0-9]*) echo "FUZZ_SECONDS must be a number" >&2; FUZZ_SECONDS=20 ;; esac
case "$FUZZ_TIMEOUT" in ''|*[!0-9]*) echo "FUZZ_TIMEOUT must be a number" >&2; FUZZ_TIMEOUT=25 ;; esac

# meson depends on python3, so it is always there on Debian; prefer the
# system one over any pyenv/venv shim.
PY=""
if [ -x /usr/bin/python3 ]; then PY=/usr/bin/python3
elif command -v python3 >/dev/null 2>&1; then PY=$(command -v python3)
fi

PASSED=0
FAILED=0
SKIPPED=0
STAGE_REPORT=()

TMP_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/cb-test-all.XXXXXX")
trap 'rm -rf "$TMP_ROOT"' EXIT

say() { printf '%s\n' "$*"; }
banner() { printf '\n===== %s =====\n' "$*"; }
add_report() { STAGE_REPORT+=("$*"); }

# configure_build DIR [meson options...]: (re)configure DIR. Honours $CC.
# A stale or broken build dir is wiped and configured afresh.
configure_build() {
  local dir=$1; shift
  if [ -f "$dir/meson-private/coredata.dat" ]; then
    if meson setup --reconfigure "$dir" "$@"; then return 0; fi
    say "reconfigure of $dir failed; wiping it and configuring afresh"
  fi
  rm -rf "$dir"
  meson setup "$dir" "$@"
}

# count_testlog DIR: print "passed failed skipped" from DIR/meson-logs/testlog.json.
count_testlog() {
  local log=$1/meson-logs/testlog.json
  if [ ! -f "$log" ]; then echo "0 1 0"; return; fi
  if [ -n "$PY" ]; then
    "$PY" - "$log" <<'EOF'
import json, sys
p = f = s = 0
with open(sys.argv[1], encoding="utf-8", errors="replace") as fh:
    for line in fh:
        line = line.strip()
        if not line:
            continue
        try:
            result = json.loads(line).get("result")
        except ValueError:
            f += 1          # unreadable record: do not let it pass silently
            continue
        if result in ("OK", "EXPECTEDFAIL"):
            p += 1
        elif result == "SKIP":
            s += 1
        else:               # FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS, anything new
            f += 1
print(p, f, s)
EOF
  else
    local p f s
    p=$(grep -Eo '"result": *"(OK|EXPECTEDFAIL)"' "$log" | wc -l)
    s=$(grep -Eo '"result": *"SKIP"' "$log" | wc -l)
    f=$(grep -Eo '"result": *"[A-Z]+"' "$log" | grep -Ecv '"(OK|EXPECTEDFAIL|SKIP)"')
    echo "$p $f $s"
  fi
}

# meson_stage NAME DIR [meson options...]: configure, build, meson test, count.
meson_stage() {
  local name=$1 dir=$2; shift 2
  local t0 rc p f s
  t0=$(date +%s)
  banner "$name: configure $dir"
  if ! configure_build "$dir" "$@"; then
    FAILED=$((FAILED + 1)); add_report "$name: configure FAILED (counted as 1 failed)"
    return
  fi
  banner "$name: build $dir"
  if ! meson compile -C "$dir"; then
    FAILED=$((FAILED + 1)); add_report "$name: build FAILED (counted as 1 failed)"
    return
  fi
  banner "$name: meson test -C $dir"
  rm -f "$dir/meson-logs/testlog.json"   # never count a stale log
  meson test -C "$dir" --print-errorlogs "${MESON_TEST_EXTRA[@]}"
  rc=$?
  read -r p f s < <(count_testlog "$dir")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    say "$name: meson test exited $rc but its log records no failure; counting 1 failed"
    f=1
  fi
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f)); SKIPPED=$((SKIPPED + s))
  add_report "$name: $p passed, $f failed, $s skipped ($(( $(date +%s) - t0 ))s)"
}

# Harness names from tests/fuzz/meson.build (`fuzz_harnesses = [...]` and any
# `fuzz_harnesses += [...]`), one per line.
fuzz_harness_names() {
  local mb=tests/fuzz/meson.build
  [ -f "$mb" ] || return 0
  if [ -n "$PY" ]; then
    "$PY" - "$mb" <<'EOF'
import re, sys
src = open(sys.argv[1], encoding="utf-8").read()
src = re.sub(r"#[^\n]*", "", src)
for m in re.finditer(r"\bfuzz_harnesses\s*\+?=\s*\[(.*?)\]", src, re.S):
    for name in re.findall(r"'([^']+)'", m.group(1)):
        print(name)
EOF
  else
    tr '\n' ' ' < "$mb" | grep -Eo "fuzz_harnesses *\+?= *\[[^]]*\]" |
      grep -Eo "'[^']+'" | tr -d "'"
  fi
}

# Why libFuzzer is unusable (empty output = usable).
fuzz_missing_prereq() {
  if ! command -v clang >/dev/null 2>&1; then
    echo "clang not found (Debian package: clang)"; return
  fi
  local d=$TMP_ROOT/fuzzcheck
  mkdir -p "$d"
  cat > "$d/h.c" <<'EOF'
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { (void)data; (void)size; return 0; }
EOF
  if ! clang -fsanitize=fuzzer,address,undefined "$d/h.c" -o "$d/h" >"$d/log" 2>&1; then
    echo "clang cannot link -fsanitize=fuzzer,address,undefined (Debian package: libclang-rt-14-dev): $(head -n 3 "$d/log" | tr '\n' ' ')"
    return
  fi
  if ! "$d/h" -runs=10 >"$d/run.log" 2>&1; then
    echo "a trivial libFuzzer harness does not run: $(tail -n 3 "$d/run.log" | tr '\n' ' ')"
  fi
}

fuzz_stage() {
  local name=fuzz dir=build-fuzz t0 why h n
  local -a harnesses
  t0=$(date +%s)
  banner "$name: fuzz smoke (${FUZZ_SECONDS}s per harness)"
  mapfile -t harnesses < <(fuzz_harness_names)
  n=${#harnesses[@]}

  why=$(fuzz_missing_prereq)
  if [ -n "$why" ]; then
    [ "$n" -gt 0 ] || n=1
    say "fuzz smoke SKIPPED: $why"
    SKIPPED=$((SKIPPED + n))
    add_report "$name: $n skipped: $why"
    return
  fi

  banner "$name: configure $dir (clang, libFuzzer, ASan+UBSan)"
  # -fsanitize=fuzzer-no-link gives libFuzzer coverage feedback from the code
  # under test (keys/ etc.), not just from the harness file itself.
  if ! CC=clang configure_build "$dir" --buildtype=debugoptimized \
        -Dwerror_ci=false -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
        "-Dc_args=-fno-sanitize-recover=all -fno-omit-frame-pointer -fsanitize=fuzzer-no-link"; then
    FAILED=$((FAILED + 1)); add_report "$name: configure FAILED (counted as 1 failed)"
    return
  fi
  banner "$name: build $dir"
  if ! meson compile -C "$dir"; then
    FAILED=$((FAILED + 1)); add_report "$name: build FAILED (counted as 1 failed)"
    return
  fi

  if [ "${#harnesses[@]}" -eq 0 ]; then
    # Could not parse the list: fall back to the built executables.
    local f
    for f in "$dir"/tests/fuzz/*; do
      if [ ! -f "$f" ] || [ ! -x "$f" ]; then continue; fi
      case "$f" in *-replay|*.so|*.a|*.p) continue ;; esac
      harnesses+=("$(basename "$f")")
    done
  fi
  if [ "${#harnesses[@]}" -eq 0 ]; then
    say "fuzz smoke: no harness found in tests/fuzz/meson.build or $dir/tests/fuzz/"
    FAILED=$((FAILED + 1)); add_report "$name: no harness found (counted as 1 failed)"
    return
  fi

  local p=0 f=0 exe work rc artifacts
  for h in "${harnesses[@]}"; do
    exe=$ROOT/$dir/tests/fuzz/$h
    say ""
    say "--- fuzz $h: ${FUZZ_SECONDS}s"
    if [ ! -x "$exe" ]; then
      say "FAIL fuzz $h: harness executable $exe was not built"
      f=$((f + 1)); continue
    fi
    work=$TMP_ROOT/fuzz-$h
    mkdir -p "$work/corpus" "$work/artifacts"
    if [ -d "tests/fuzz/corpus/$h" ]; then
      cp -R "tests/fuzz/corpus/$h/." "$work/corpus/"
    else
      say "(no corpus at tests/fuzz/corpus/$h/; starting empty)"
    fi
    ( cd "$work" &&
      ASAN_OPTIONS=detect_leaks=1:symbolize=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      timeout --kill-after=10 $((FUZZ_SECONDS + 120)) \
        "$exe" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 \
        -timeout="$FUZZ_TIMEOUT" -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "$work/corpus"; exit $? ) >"$work/log" 2>&1
    rc=$?
    if [ "$rc" -eq 0 ] && ! grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$work/log"; then
      say "PASS fuzz $h ($(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$work/log" | grep -Eo '[0-9]+$' || echo '?') execs)"
      p=$((p + 1))
    else
      f=$((f + 1))
      say "FAIL fuzz $h (exit $rc); last lines of its log:"
      tail -n 80 "$work/log"
      if [ -n "$(ls -A "$work/artifacts")" ]; then
        artifacts=$ROOT/$dir/fuzz-artifacts/$h
        mkdir -p "$artifacts"
        cp -R "$work/artifacts/." "$artifacts/"
        say "crash/leak inputs saved in $artifacts/ (reproduce: $exe <file>)"
      fi
    fi
  done
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
  add_report "$name: $p passed, $f failed, 0 skipped ($(( $(date +%s) - t0 ))s)"
}

T_START=$(date +%s)
MESON_TEST_EXTRA=()
for stage in $CB_STAGES; do
  case "$stage" in
    normal)
      MESON_TEST_EXTRA=()
      meson_stage normal build --buildtype=debugoptimized -Dwerror_ci=true
      ;;
    asan)
      # -Werror stays with the normal build: gcc emits known false-positive
      # warnings under -fsanitize=address, which must not hide test results.
      MESON_TEST_EXTRA=(--timeout-multiplier 2)
      meson_stage asan build-asan --buildtype=debugoptimized -Dwerror_ci=false \
        -Db_sanitize=address,undefined -Db_lundef=false -Dfuzz=false \
        "-Dc_args=-fno-sanitize-recover=all -fno-omit-frame-pointer"
      ;;
    fuzz)
      fuzz_stage
      ;;
    *)
      say "unknown stage '$stage' in CB_STAGES"; FAILED=$((FAILED + 1))
      add_report "$stage: unknown stage (counted as 1 failed)"
      ;;
  esac
done

banner "summary ($(( $(date +%s) - T_START ))s)"
for line in "${STAGE_REPORT[@]}"; do say "  $line"; done
say "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[ "$FAILED" -eq 0 ]
