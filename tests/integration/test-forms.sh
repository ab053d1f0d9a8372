#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The shared matcher (keys/match.h) end to end, outside the proxy (whose
# upstream echo of every form is in test-proxy.sh): a value holding
# + / = : % " \ a space and non-ASCII bytes, spelled every way
# value_forms.py knows (Python's own encoders), one byte per write:
#   - `credbroker exec` under a tool uid: a command printing every form
#     has each line masked ([REDACTED:odd]);
#   - `credbroker redact` and `credbroker scan` (admin), and POST /v1/scan
#     from a uid with a scan grant: every line sighted, every line redacted.
# What may remain of a line: the characters a base64 form shares with the
# bytes around the value (at most 12 bytes here).  Needs root (uids
# 61550-61551); exits 77 naming what is missing otherwise.
set -uo pipefail

CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ -f "$HERE/value_forms.py" ] || HERE=${CB_SRCDIR:?}/tests/integration
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (to run clients under other uids)"; exit 77; }
for t in curl /usr/bin/python3 setpriv; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done

T=$(mktemp -d /tmp/cb-forms-test.XXXXXX)
chmod 0755 "$T"
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
PYBIN=/usr/bin/python3
UT=61550 US=61551 # tool (redeem), scanner
as() { local u=$1; shift; timeout 60 setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }

# The value lives in a file (0644: the tool's command reads it only to know
# what to print; the test never puts it in argv or output).
"$PYBIN" - "$T/value" <<'PY'
import os, sys
v = b"AKIA+" + os.urandom(6).hex().encode() + b'/wJ=x:%"\\ q\xc3\xa9\xf0\x9f\x94\x91' + os.urandom(4).hex().encode() + b"=="
open(sys.argv[1], "wb").write(v)
PY
chmod 0644 "$T/value"
cp "$HERE/value_forms.py" "$T/"
chmod 0644 "$T/value_forms.py"
NAMES=$("$PYBIN" -c "import sys; sys.path.insert(0, '$T'); import value_forms; print(*value_forms.NAMES)")

"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "tool": {"uid": $UT}, "scanner": {"uid": $US} },
  "grants": [ {"client": "tool", "secret": "odd", "use": ["redeem"]},
              {"client": "tool", "secret": "tiny", "use": ["redeem"]},
              {"client": "scanner", "secret": "*", "use": ["scan"]} ],
  "admins": {"uids": [0]},
  "secrets": { "odd": {"on_leak": "alert"} } }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --audit-log "$T/audit.log" >>"$T/daemon.out" 2>&1 &
PID=$!
for _ in $(seq 50); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
TS=$T/run/tools.sock AS=$T/run/admin.sock
export CREDBROKER_SOCKET=$TS CREDBROKER_ADMIN_SOCKET=$AS
"$CLI" put odd <"$T/value" >/dev/null || bad "put odd"
printf 'x9Z' | "$CLI" put tiny >/dev/null || bad "put tiny"

# check_lines WHAT FILE MARKER: line i of FILE is form NAMES[i], masked.
check_lines() {
        local what=$1 file=$2 marker=$3 i=0 line rest
        for name in $NAMES; do
                i=$((i + 1))
                line=$(sed -n "${i}p" "$file")
                rest=${line//"$marker"/}
                if [[ "$line" == *"$marker"* ]] && [ "${#rest}" -le 12 ]; then
                        ok "$what: form $name masked"
                else
                        bad "$what: form $name not masked (line $i: ${#rest} bytes left)"
                fi
        done
}

# --- exec: the command prints every form, a byte per write
as $UT "$CLI" exec --env K=odd -- "$PYBIN" "$T/value_forms.py" "$T/value" >"$T/exec.out" 2>"$T/exec.err"
rc=$?
[ "$rc" = 0 ] && ok "exec ran (rc 0)" || bad "exec: rc $rc: $(head -c 300 "$T/exec.err")"
check_lines "exec" "$T/exec.out" "[REDACTED:odd]"

# --- a value too short to be masked: exec refuses, the command never runs
as $UT "$CLI" exec --env K=tiny -- /bin/sh -c 'echo ran >&2' >"$T/tiny.out" 2>"$T/tiny.err"
rc=$?
if [ "$rc" != 0 ] && grep -q "shorter than 4 bytes" "$T/tiny.err" && ! grep -q '^ran' "$T/tiny.err"; then
        ok "exec refuses a 3-byte value (rc $rc), the command did not run"
else
        bad "exec with a 3-byte value: rc $rc: $(head -c 200 "$T/tiny.err")"
fi

# --- a file of every form, for the scanner
"$PYBIN" "$T/value_forms.py" "$T/value" >"$T/forms.txt"
chmod 0644 "$T/forms.txt"

as $US "$CLI" redact <"$T/forms.txt" >"$T/redact.out" 2>"$T/redact.err" || true
check_lines "redact" "$T/redact.out" "[REDACTED:odd]"

# scan (CLI, admin) and /v1/scan (a scan grant): a sighting within each line
as $US "$CLI" scan "$T/forms.txt" >"$T/scan.out" 2>&1
as $US curl -s --unix-socket "$TS" -X POST --data-binary @"$T/forms.txt" http://x/v1/scan >"$T/v1scan.out"
"$PYBIN" - "$T/forms.txt" "$T/v1scan.out" $NAMES <<'PY' >"$T/v1scan.check"
import json, sys
lines = open(sys.argv[1], "rb").read().split(b"\n")
found = [f["offset"] for f in json.load(open(sys.argv[2]))["findings"] if f.get("name") == "odd"]
at = 0
for name, line in zip(sys.argv[3:], lines):
    hit = any(at <= o < at + max(len(line), 1) for o in found)
    print(("ok   /v1/scan: form %s sighted" if hit else "FAIL /v1/scan: form %s not sighted") % name)
    at += len(line) + 1
PY
cat "$T/v1scan.check"
fails=$((fails + $(grep -c '^FAIL' "$T/v1scan.check")))
n=$(grep -c "^odd" "$T/scan.out")
[ "$n" -ge "$(echo $NAMES | wc -w)" ] && ok "scan CLI: $n sightings of odd" || bad "scan CLI: only $n sightings: $(head -c 300 "$T/scan.out")"

# --- no value anywhere the test can see
if cat "$T/exec.out" "$T/exec.err" "$T/redact.out" "$T/scan.out" "$T/v1scan.out" "$T/daemon.out" "$T/audit.log" |
        grep -qaF -f "$T/value"; then
        bad "the raw value appears in an output"
else
        ok "the raw value appears in no output, log or audit record"
fi

echo "$fails failure(s)"
[ "$fails" = 0 ]
