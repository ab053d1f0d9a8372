# SPDX-License-Identifier: Apache-2.0
# Shared by tests/adversarial/identity-*.sh: a real daemon in a private temp
# dir, real clients under real uids (setpriv), and expect/ok/bad reporting.
# Source it, set POLICY (JSON text) first; then call start_daemon [ARGS].
set -uo pipefail

CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IDC=$HERE/identity-client.py
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (to run clients under other uids)"; exit 77; }
PYBIN=/usr/bin/python3   # the system's (a per-user one may live in a directory other uids cannot read)
for t in $PYBIN setpriv; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done
PY=$(readlink -f "$PYBIN")

T=$(mktemp -d /tmp/cbd-ident.XXXXXX)
chmod 0755 "$T"
PID=
EXTRA_CLEANUP=
cleanup() {
        [ -n "$EXTRA_CLEANUP" ] && eval "$EXTRA_CLEANUP"
        [ -n "$PID" ] && kill "$PID" 2>/dev/null
        wait 2>/dev/null
        rm -rf "$T"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
# expect NAME WANT_SUBSTRING GOT
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }
# refute NAME UNWANTED_SUBSTRING GOT
refute() { case "$3" in *"$2"*) bad "$1: got '$3'" ;; *) ok "$1" ;; esac; }
# run_as UID CMD...: CMD under that uid (and gid), no supplementary groups, 30 s at most.
run_as() { local u=$1; shift; timeout 30 setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }
finish() {
        [ -z "$PID" ] || kill -0 "$PID" 2>/dev/null || bad "daemon died: $(tail -n 5 "$T/daemon.out")"
        echo "$fails failure(s)"
        [ "$fails" = 0 ]
        exit
}

# start_daemon [EXTRA DAEMON ARGS...]: init a store, write $POLICY, start,
# store the secret "demo".
start_daemon() {
        "$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; finish; }
        printf '%s\n' "$POLICY" >"$T/policy.json"
        chmod 0644 "$T/policy.json"
        "$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
                "$@" >"$T/daemon.out" 2>&1 &
        PID=$!
        for _ in $(seq 50); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
        [ -S "$T/run/admin.sock" ] || { bad "daemon did not start: $(tail -n 5 "$T/daemon.out")"; finish; }
        TS=$T/run/tools.sock AS=$T/run/admin.sock
        head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' |
                timeout 30 "$CLI" --admin-socket "$AS" put demo >/dev/null || { bad "put"; finish; }
}
