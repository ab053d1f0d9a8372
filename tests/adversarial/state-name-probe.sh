#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Names cannot be probed (API.md): a uid with no grant for a name gets the
# same answer whether the name is a canary, a stored secret seen leaked, or
# nothing at all -- and the canary still raises its alert.  A caller with a
# grant is told that its secret is compromised (legitimate path).
set -u
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (setpriv)"; exit 77; }
: "${CB_BUILDDIR:?}"
CLI=${CREDBROKER_CLI:-$CB_BUILDDIR/client/credbroker}
DAEMON=${CREDBROKERD:-$CB_BUILDDIR/broker/credbrokerd}
UA=61550 UB=61551
T=$(mktemp -d /tmp/cb-probe.XXXXXX)
chmod 0755 "$T"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
cleanup() { for p in $(jobs -p); do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
as() { timeout 30 setpriv --reuid "$1" --regid "$1" --clear-groups "${@:2}"; }
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { echo "FAIL init"; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "agent": {"uid": $UA}, "owner": {"uid": $UB} },
  "grants": [ {"client": "agent", "secret": "up", "use": ["proxy"]},
              {"client": "owner", "secret": "other", "use": ["proxy", "redeem"]} ],
  "secrets": { "canary-aws": {"canary": true, "on_leak": "alert"} },
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --audit-log "$T/audit.log" >"$T/daemon.out" 2>&1 &
for _ in $(seq 100); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
AS=$T/run/admin.sock TS=$T/run/tools.sock
for n in up canary-aws other; do
        printf 'sk-%s-0123456789abcdef' "$n" | "$CLI" --admin-socket "$AS" put "$n" --host "http://127.0.0.1:1" >/dev/null ||
                bad "put $n"
done
curl -s --unix-socket "$AS" -d '{"secret":"other","compromised":true}' http://x/v1/admin/revoke >/dev/null
ask() { as "$1" curl -s -w ' %{http_code}' --unix-socket "$TS" -d "{\"secret\":\"$2\",\"use\":\"$3\"}" http://x/v1/token; }
out=$(ask $UB other redeem)
case "$out" in *compromised*" 403") ok "legitimate: the grant holder is told 'other' is compromised" ;;
*) bad "grant holder: $out" ;; esac
for u in $UA 61552; do
        for use in proxy redeem; do
                answers=$(for n in canary-aws other nosuch; do ask $u $n $use | sed "s/$n/NAME/g"; echo; done | sort -u)
                k=$(printf '%s\n' "$answers" | grep -c .)
                [ "$k" = 1 ] && ok "uid $u ($use): one answer for a canary, a compromised secret and no secret" ||
                        bad "uid $u ($use): the answers tell the names apart: $answers"
        done
done
grep -q '"decision": *"canary"' "$T/audit.log" && ok "the canary request is in the audit log" || bad "no canary record"
grep -q "ALERT canary" "$T/daemon.out" && ok "the canary alert was raised" || bad "no canary alert: $(grep -c ALERT "$T/daemon.out")"
[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all passed"
