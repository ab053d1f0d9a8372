#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# exec --proxy's token and the default lifetime, in real time: a daemon with
# --default-ttl 2 (documented in credbrokerd(8), so this need not wait 300 s).
#   - an ordinary token (no --ttl, a grant without max_ttl) gets 2 s and is
#     refused as expired after 2.5 s: the shortened default is in force;
#   - a child of `exec --proxy` under that grant calls a real TLS upstream
#     after 5 s (2.5 default lifetimes): it gets through, its token still
#     has about a day to live;
#   - under a grant with "max_ttl": "3s" the child is cut off (401 expired)
#     once that passes, and exec warned about it first;
#   - once exec has exited, its token is refused.
# Needs root (the tool's uid), openssl, curl, python3.
set -uo pipefail
CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (to run the tool under its own uid)"; exit 77; }
for t in curl openssl /usr/bin/python3 setpriv; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done
T=$(mktemp -d /tmp/cbexl-test.XXXXXX)
chmod 0755 "$T"
PID='' UPID='' BG=()
cleanup() { for p in "${BG[@]}" $UPID $PID; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }
as() { local u=$1; shift; setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }
U=61950

bash "$HERE/proxy-certs.sh" "$T/certs" >/dev/null || { bad "test certificates"; exit 1; }
/usr/bin/python3 "$HERE/proxy-upstream.py" --port 0 --cert "$T/certs/server.pem" --key "$T/certs/server.key" \
        --log "$T/upstream.log" >"$T/upstream.port" 2>"$T/upstream.err" &
UPID=$!
for _ in $(seq 50); do [ -s "$T/upstream.port" ] && break; sleep 0.1; done
UP=$(head -n 1 "$T/upstream.port")
[ -n "$UP" ] || { bad "upstream did not start: $(cat "$T/upstream.err")"; exit 1; }

"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "agent": {"uid": $U} },
  "grants": [ {"client": "agent", "secret": "up", "use": ["proxy"]},
              {"client": "agent", "secret": "capped", "use": ["proxy"], "max_ttl": "3s"} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PX=http://127.0.0.1:$PORT
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --listen-tcp "127.0.0.1:$PORT" --default-ttl 2 >"$T/daemon.out" 2>&1 &
PID=$!
for _ in $(seq 100); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
export CREDBROKER_SOCKET=$T/run/tools.sock CREDBROKER_ADMIN_SOCKET=$T/run/admin.sock
[ -S "$CREDBROKER_ADMIN_SOCKET" ] || { bad "daemon did not start: $(cat "$T/daemon.out")"; exit 1; }
for s in up capped; do
        printf 'sk-%s-VALUE-%s' "$s" "$$" | "$CLI" put "$s" --host "127.0.0.1:$UP" --inject 'Authorization: Bearer {}' \
                --ca-file "$T/certs/ca.pem" >/dev/null || bad "put $s"
done
mkdir -m 0777 "$T/x"

# The children: each calls the upstream through the broker with the token
# exec gave it, now and after a pause, and says what it got.
call='curl -sS -o /dev/null -w "%{http_code}" "$UP_BASE_URL/echo" -H "Authorization: Bearer $UP_API_KEY"'
as $U "$CLI" exec --proxy up=env:UP --proxy-url "$PX" -- sh -c '
        printf %s "$UP_API_KEY" >"$0/tok"
        echo "first: $('"$call"')"
        sleep 5
        echo "after 5 s: $('"$call"')"
        curl -s --unix-socket "$1" -d "{\"token\":\"$UP_API_KEY\"}" http://x/v1/introspect; echo' \
        "$T/x" "$CREDBROKER_SOCKET" >"$T/long.out" 2>"$T/long.err" &
LONG=$!; BG+=("$LONG")
as $U "$CLI" exec --proxy capped=env:UP --proxy-url "$PX" -- sh -c '
        echo "first: $('"$call"')"
        sleep 4
        echo "after 4 s: $('"$call"')"' >"$T/capped.out" 2>"$T/capped.err" &
CAPPED=$!; BG+=("$CAPPED")

# Meanwhile, an ordinary token: the default lifetime is 2 s here.
o=$(as $U "$CLI" token up --bind uid --json 2>&1)
read -r tok exp < <(/usr/bin/python3 -c 'import json,sys; o=json.loads(sys.argv[1]); print(o["token"], o["expires_in"])' "$o" 2>/dev/null)
expect "an ordinary token gets --default-ttl (2 s)" "2" "${exp:-none}"
expect "...and works at first" 200 "$(as $U curl -sS -o /dev/null -w '%{http_code}' "$PX/v1/proxy/up/echo" -H "Authorization: Bearer $tok")"
sleep 2.5
expect "...and is expired after 2.5 s" "expired" "$(as $U curl -sS "$PX/v1/proxy/up/echo" -H "Authorization: Bearer $tok")"

wait "$LONG"; rc=$?
expect "exec --proxy: the child's first call gets through" "first: 200" "$(cat "$T/long.out")"
expect "exec --proxy: after 5 s, 2.5 default lifetimes, it still gets through" "after 5 s: 200" "$(cat "$T/long.out")"
e=$(sed -n 's/.*"expires_in":\([0-9]*\).*/\1/p' "$T/long.out")
[ "${e:-0}" -gt 86000 ] && ok "its token lives as long as exec, up to a day ($e s left)" ||
        bad "its token's lifetime: $(cat "$T/long.out" "$T/long.err")"
[ "$rc" = 0 ] && ok "exec exited with its command's status" || bad "exec: exit $rc: $(cat "$T/long.err")"
[ "$(grep -c 'Bearer sk-up-VALUE' "$T/upstream.log")" = 3 ] && ok "the upstream got the real key on each call that got through (3)" ||
        bad "upstream log: $(grep -c 'sk-up-VALUE' "$T/upstream.log") requests with the key"
expect "once exec has exited its token is refused" " 401" \
        "$(as $U curl -sS -w ' %{http_code}' "$PX/v1/proxy/up/echo" -H "Authorization: Bearer $(cat "$T/x/tok")")"

wait "$CAPPED"
expect "a grant's max_ttl (\"3s\") caps exec's token: exec says so first" "its token expires in 3 s (the grant's max_ttl)" \
        "$(cat "$T/capped.err")"
expect "...the child's first call gets through" "first: 200" "$(cat "$T/capped.out")"
expect "...and once max_ttl has passed it is refused" "after 4 s: 401" "$(cat "$T/capped.out")"
grep -q 'sk-up-VALUE\|sk-capped-VALUE' "$T/long.out" "$T/capped.out" "$T/daemon.out" && bad "a value in the output" ||
        ok "no value in the children's output or the daemon's"
echo "$fails failure(s)"
[ "$fails" = 0 ]
