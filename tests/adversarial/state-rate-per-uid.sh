#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A grant's "rate" is a budget per uid: a client selected by a group covers
# several uids, and one of them (a steered agent) spending its budget must
# not get the others refused.  Legitimate limit first: the spender itself is
# refused past N.
set -u
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (setpriv)"; exit 77; }
: "${CB_BUILDDIR:?}"
CLI=${CREDBROKER_CLI:-$CB_BUILDDIR/client/credbroker}
DAEMON=${CREDBROKERD:-$CB_BUILDDIR/broker/credbrokerd}
UA=61570 UB=61571 G=61770
T=$(mktemp -d /tmp/cb-rate.XXXXXX)
chmod 0755 "$T"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
cleanup() { for p in $(jobs -p); do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { echo "FAIL init"; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "agents": {"gid": $G}, "wild": {"uid": 61572} },
  "grants": [ {"client": "agents", "secret": "up", "use": ["proxy"], "rate": "20/h"},
              {"client": "wild", "secret": "*", "use": ["proxy"], "rate": "3/h"} ], "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        >"$T/daemon.out" 2>&1 &
for _ in $(seq 100); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
printf %s 'sk-RATEvalue-0123456789abcdef' | "$CLI" --admin-socket "$T/run/admin.sock" put up --host http://127.0.0.1:1 \
        >/dev/null || bad "put"
asg() { local u=$1; shift; timeout 60 setpriv --reuid "$u" --regid "$G" --clear-groups "$@"; }
urls=$(for _ in $(seq 25); do printf -- '-o /dev/null http://x/v1/token '; done)
out=$(asg $UA curl -s -w '%{http_code}\n' --unix-socket "$T/run/tools.sock" -d '{"secret":"up","use":"proxy"}' $urls |
        sort | uniq -c | tr -s ' \n' '  ')
case "$out" in *"20 201"*"5 429"*) ok "legitimate limit: uid $UA gets 20 tokens, then 429 ($out)" ;;
*) bad "uid $UA: $out" ;; esac
r=$(asg $UB curl -s -w '%{http_code}' -o /dev/null --unix-socket "$T/run/tools.sock" -d '{"secret":"up","use":"proxy"}' http://x/v1/token)
[ "$r" = 201 ] && ok "uid $UB of the same client still gets its first token (201)" ||
        bad "uid $UB refused ($r) because uid $UA spent the client's rate"
# A "*" grant with a rate cannot reset its own limit by asking for made-up
# names (each once took a slot in the 4,096-entry table, evicting the
# oldest -- its own open window): refused past 3, before and after 4,200
# requests for names that do not exist.
asw() { timeout 120 setpriv --reuid 61572 --regid 61572 --clear-groups "$@"; }
out=$(asw curl -s -w '%{http_code}\n' --unix-socket "$T/run/tools.sock" -d '{"secret":"up","use":"proxy"}' $(for _ in 1 2 3 4; do printf -- '-o /dev/null http://x/v1/token '; done) | tr '\n' ' ')
case "$out" in "201 201 201 429 ") ok "legitimate: the * grant gets 3 tokens, then 429" ;; *) bad "* grant: $out" ;; esac
sleep 1.1 # its window is then the table's oldest: what eviction took first
asw /usr/bin/python3 -c "
import socket, sys
for i in range(4200):
    s = socket.socket(socket.AF_UNIX); s.connect('$T/run/tools.sock')
    b = b'{\"secret\":\"made-up-%d\",\"use\":\"proxy\"}' % i
    s.sendall(b'POST /v1/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n' % len(b) + b)
    s.recv(100); s.close()
"
r=$(asw curl -s -w '%{http_code}' -o /dev/null --unix-socket "$T/run/tools.sock" -d '{"secret":"up","use":"proxy"}' http://x/v1/token)
[ "$r" = 429 ] && ok "after 4,200 made-up names the * grant is still at its limit (429)" || bad "the * grant's limit was reset: $r"
[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all passed"
