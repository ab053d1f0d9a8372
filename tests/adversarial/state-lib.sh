# SPDX-License-Identifier: Apache-2.0
# Shared by tests/adversarial/state-*.sh: a scratch dir, a keyfile store, a
# policy, a daemon under the test's control, tools under real uids.
# Sourced; not a test by itself.
set -uo pipefail

CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (to run tools under other uids)"; exit 77; }
command -v setpriv >/dev/null || { echo "SKIP: missing prerequisite: setpriv"; exit 77; }

T=$(mktemp -d /tmp/cb-state.XXXXXX)
chmod 0755 "$T"
PIDS=
cleanup() {
        [ "$BASHPID" = "$$" ] || return 0
        for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
        wait 2>/dev/null
        [ -n "${CLEANUP_EXTRA:-}" ] && eval "$CLEANUP_EXTRA"
        rm -rf "$T"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }
refute() { case "$3" in *"$2"*) bad "$1: '$2' found in '$3'" ;; *) ok "$1" ;; esac; }
finish() { [ "$fails" = 0 ] && echo "all ok" || echo "$fails failure(s)"; [ "$fails" = 0 ]; exit $?; }
rnd() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
as() { local u=$1; shift; setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }
U1=61701 U2=61702

# policy FILE [EXTRA-GRANTS-JSON]: uid U1 may redeem and scan every secret named in $SECRETS.
write_policy() {
        local g="" s
        for s in $SECRETS; do
                g="$g{\"client\": \"tool\", \"secret\": \"$s\", \"use\": [\"redeem\", \"scan\"], \"max_ttl\": 600},"
        done
        cat >"$1" <<JSON
{ "clients": { "tool": {"uid": $U1}, "scanner": {"uid": $U2} },
  "grants": [ ${g%,} ${2:+, $2} ],
  "admins": {"uids": [0]} ${3:+, $3} }
JSON
        chmod 0644 "$1"
}

# start_daemon NAME STATE RUN [ARGS...]: start and wait for admin.sock; pid in PID_<NAME>.
start_daemon() {
        local n=$1 st=$2 run=$3 p
        shift 3
        "$DAEMON" --state-dir "$st" --run-dir "$run" --policy "$T/policy.json" --unlock "${UNLOCK:-keyfile:$T/key}" ${TCTI:+--tpm2-tcti "$TCTI"} "$@" \
                >>"$T/daemon-$n.out" 2>&1 &
        p=$!
        PIDS="$PIDS $p"
        eval "PID_$n=$p"
        for _ in $(seq 300); do
                [ -S "$run/admin.sock" ] && [ "$(stat -c %Y "$run/admin.sock" 2>/dev/null)" ] && return 0
                kill -0 "$p" 2>/dev/null || return 1
                sleep 0.02
        done
        return 1
}
# stop_daemon NAME: SIGTERM, and SIGKILL after 5 s (a daemon hung in a blocking open cannot take signals).
# exited NAME: true once daemon NAME has exited (waits up to 15 s: sanitizer builds start slowly).
exited() {
        local p
        eval "p=\${PID_$1:-0}"
        for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.05; done
        return 1
}
stop_daemon() {
        local p
        eval "p=\${PID_$1:-}"
        eval "PID_$1="
        [ -n "$p" ] || return 0
        kill "$p" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        kill -0 "$p" 2>/dev/null && { echo "     (daemon $1 ignored SIGTERM for 5 s: killed)"; kill -9 "$p"; }
        wait "$p" 2>/dev/null
}
cat >"$T/tool.py" <<'PY'
import json, socket, sys
def call(path, body, raw=None):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    b = raw if raw is not None else json.dumps(body).encode()
    s.sendall(b'POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' % (path.encode(), len(b)) + b)
    d = b''
    while True:
        k = s.recv(65536)
        if not k: break
        d += k
    s.close()
    head, _, body = d.partition(b'\r\n\r\n')
    return int(head.split()[1]), body.decode(errors='replace')
cmd = sys.argv[2]
if cmd == 'fetch':  # fetch SECRET [VERSION]: token, then redeem (by number if given)
    st, b = call('/v1/token', {"secret": sys.argv[3], "use": "redeem", "ttl": 60})
    if st != 201: print(st, json.loads(b).get('message')); sys.exit(0)
    q = {"token": json.loads(b)["token"]}
    if len(sys.argv) > 4: q["version"] = int(sys.argv[4])
    st, b = call('/v1/redeem', q); o = json.loads(b)
    print(st, o.get('value', o.get('message')))
elif cmd == 'scan':  # scan FILE: the file's bytes as the body
    st, b = call('/v1/scan', None, open(sys.argv[3], 'rb').read()); print(st, b)
PY
# fetch RUN SECRET [VERSION]: a tool (uid U1) redeems; prints "STATUS value-or-message".
fetch() { as $U1 /usr/bin/python3 "$T/tool.py" "$1/tools.sock" fetch "$2" ${3:+"$3"} 2>&1; }
admin() { local run=$1; shift; CREDBROKER_ADMIN_SOCKET=$run/admin.sock "$CLI" "$@"; }
