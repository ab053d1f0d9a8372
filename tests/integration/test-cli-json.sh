#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The CLI's machine-readable and error surface against the real daemon:
# --json on init, token, fetch, seal, approve, deny (each answer parses as
# one JSON object with the documented members); revoke of an unknown
# accessor or client fails with exit 5 and says why; put --not-after takes
# durations and RFC 3339; exec --proxy sets the SDK variables and revokes
# its token at exit.  Needs root (a requester under another uid); exits 77
# naming what is missing.
set -uo pipefail
CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (a requester under another uid)"; exit 77; }
for t in /usr/bin/python3 setpriv curl; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done
T=$(mktemp -d /tmp/cbj-test.XXXXXX)
chmod 0755 "$T"
PID='' BG=''
cleanup() { for p in $BG $PID; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }
# jget JSON KEY...: the members' values, one per line (fails unless JSON is one object)
jget() { /usr/bin/python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert isinstance(o, dict)
for k in sys.argv[2:]: print(o[k])' "$@"; }
as() { local u=$1; shift; setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }
U1=61901 U2=61902

out=$("$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" --json)
id=$(jget "$out" store_id) && [ ${#id} = 32 ] && [ "$(jget "$out" created)" = True ] &&
        ok "init --json: $out" || bad "init --json: $out"
cat >"$T/policy.json" <<JSON
{ "clients": { "tool": {"uid": $U2}, "u1": {"uid": $U1} },
  "grants": [ {"client": "tool", "secret": "demo", "use": ["redeem", "proxy"]},
              {"client": "tool", "secret": "bin", "use": ["redeem"]},
              {"client": "tool", "secret": "short", "use": ["proxy"], "max_ttl": "2m"},
              {"client": "u1", "secret": "gated", "use": ["proxy"], "approval": true} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
# A loopback listener for exec --proxy (it checks who serves the proxy URL
# before minting a token).
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PX=http://127.0.0.1:$PORT
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --listen-tcp "127.0.0.1:$PORT" --approval-timeout 10s --alert-hook-timeout 1m --denial-alert 10/1m --audit-log "$T/audit.log" \
        >"$T/daemon.out" 2>&1 &
PID=$!
for _ in $(seq 50); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
export CREDBROKER_SOCKET=$T/run/tools.sock CREDBROKER_ADMIN_SOCKET=$T/run/admin.sock

VALUE='sk-json "quoted" \back ünïcode'
printf '%s' "$VALUE" | "$CLI" put demo --host api.example.com --not-after +1d >/dev/null || bad "put demo"
printf 'a\0b\377' | "$CLI" put bin --not-after 2099-01-01T00:00:00Z >/dev/null || bad "put bin"
printf 'x' | "$CLI" put gated --host api.example.com >/dev/null || bad "put gated"
printf 'y' | "$CLI" put short --host api.example.com >/dev/null || bad "put short"
na=$("$CLI" show demo --json | /usr/bin/python3 -c 'import json,sys; o=json.load(sys.stdin); print(o["versions"][-1]["not_after"])')
now=$(date +%s)
[ "$na" -ge $((now + 86390)) ] && [ "$na" -le $((now + 86410)) ] && ok "put --not-after +1d: $na" || bad "put --not-after +1d: $na"
na=$("$CLI" show bin --json | /usr/bin/python3 -c 'import json,sys; o=json.load(sys.stdin); print(o["versions"][-1]["not_after"])')
[ "$na" = 4070908800 ] && ok "put --not-after RFC 3339" || bad "put --not-after 2099-01-01T00:00:00Z: $na"
o=$("$CLI" put x --not-after tomorrow </dev/null 2>&1); rc=$?
[ $rc = 2 ] && ok "put --not-after junk: usage error" || bad "put --not-after junk: exit $rc: $o"

mkdir -m 0777 "$T/x"
out=$(as $U2 "$CLI" token demo --json 2>/dev/null)
[ "$(jget "$out" use bind)" = $'proxy\nexe' ] && [[ $(jget "$out" token) == cbt_* ]] &&
        [[ $(jget "$out" accessor) == cba_* ]] && [ "$(jget "$out" expires_in)" -gt 0 ] &&
        ok "token --json" || bad "token --json: $out"
acc=$(jget "$out" accessor)
# metrics: live tokens follow a mint and a revocation; requests by route and decision.
live() { "$CLI" metrics | sed -n 's/^credbroker_tokens_live //p'; }
l0=$(live)
o=$(as $U2 "$CLI" token demo --json 2>/dev/null)
l1=$(live)
"$CLI" revoke --accessor "$(jget "$o" accessor)" >/dev/null
l2=$(live)
[ -n "$l0" ] && [ "$l1" = $((l0 + 1)) ] && [ "$l2" = "$l0" ] &&
        ok "metrics: credbroker_tokens_live follows a mint and a revocation ($l0 -> $l1 -> $l2)" ||
        bad "metrics: tokens_live $l0 -> $l1 -> $l2"
"$CLI" revoke --client nosuch >/dev/null 2>&1
m=$("$CLI" metrics)
expect "metrics: an allowed token request" 'credbroker_requests_total{route="token",decision="allow"} ' "$m"
expect "metrics: a refused admin request" 'credbroker_requests_total{route="admin.revoke",decision="deny"} ' "$m"
out=$(as $U2 "$CLI" fetch demo --json)
[ "$(jget "$out" value)" = "$VALUE" ] && [ "$(jget "$out" secret version)" = $'demo\n1' ] &&
        ok "fetch --json: a text value, escaped" || bad "fetch --json: $out"
out=$(as $U2 "$CLI" fetch bin --json)
[ "$(jget "$out" value_base64)" = "YQBi/w==" ] && ok "fetch --json: a binary value as value_base64" ||
        bad "fetch --json binary: $out"

pk=$("$CLI" pubkey --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["public_key"])')
out=$(printf v | "$CLI" seal --recipient "$pk" --name sealed --not-after +1h --json)
[[ $(jget "$out" blob) == cbseal1.* ]] && [ "$(jget "$out" name)" = sealed ] && ok "seal --json" || bad "seal --json: $out"

# approve / deny --json: a request under an approval grant, from another uid.
approval() { # run a held token request as U1 in the background; its ID in $id, its pid in $BG
        as $U1 timeout 30 "$CLI" token gated >"$T/req.out" 2>"$T/req.err" &
        BG=$!
        for _ in $(seq 100); do
                id=$("$CLI" approvals --json | /usr/bin/python3 -c 'import json,sys
a=[x["id"] for x in json.load(sys.stdin)["approvals"] if x["state"]=="pending"]; print(a[0] if a else "")')
                [ -n "$id" ] && return
                sleep 0.1
        done
}
approval
out=$("$CLI" approve "$id" --json)
[ "$(jget "$out" state approval_id)" = $'approved\n'"$id" ] && ok "approve --json" || bad "approve --json: $out"
wait $BG; rc=$?; BG=''
[ $rc = 0 ] && ok "the approved requester got its token" || bad "approved requester: exit $rc: $(cat "$T/req.err")"
approval
out=$("$CLI" deny "$id" --json)
[ "$(jget "$out" state)" = denied ] && ok "deny --json" || bad "deny --json: $out"
wait $BG; rc=$?; BG=''
[ $rc = 7 ] && ok "the denied requester exits 7" || bad "denied requester: exit $rc"

# revoke: unknown things are errors with their reason; a real accessor works.
for a in "--client nosuch" "--accessor cba_deadbeef"; do
        o=$("$CLI" revoke $a 2>&1); rc=$?
        [ $rc = 5 ] && ok "revoke $a: exit 5 ($o)" || bad "revoke $a: exit $rc: $o"
done
# audit grep: the token's records, across a rotation of the log (a new
# segment with another identifier key in another file).
mv "$T/audit.log" "$T/audit.log.1"
kill -HUP "$PID"
for _ in $(seq 50); do [ -s "$T/audit.log" ] && break; sleep 0.1; done
o=$("$CLI" revoke --accessor "$acc" 2>&1) && ok "revoke --accessor (live): $o" || bad "revoke --accessor $acc: $o"
g=$("$CLI" audit grep --accessor "$acc" "$T/audit.log.1" "$T/audit.log")
rc=$?
n1=$(printf '%s\n' "$g" | grep -c '"route":"token"')
n2=$(printf '%s\n' "$g" | grep -c '"route":"admin.revoke"')
[ $rc = 0 ] && [ "$n1" = 1 ] && [ "$n2" = 1 ] && ok "audit grep --accessor: its token record and, in the next file's segment, its revocation" ||
        bad "audit grep: exit $rc, $n1 token and $n2 revoke records: $g"
case "$g" in *"$acc"*) bad "audit grep: the accessor itself is in the log" ;; esac
g=$("$CLI" audit grep --accessor cba_000000000000000000000000 "$T/audit.log.1" "$T/audit.log"); rc=$?
[ $rc = 1 ] && [ -z "$g" ] && ok "audit grep of another accessor: nothing, exit 1" || bad "audit grep other: exit $rc: $g"
o=$("$CLI" revoke --accessor "$acc" 2>&1); rc=$?
[ $rc = 5 ] && ok "revoking it again: exit 5" || bad "revoke twice: exit $rc: $o"

# exec --proxy: the variables an SDK reads; the token dies with exec.
out=$(as $U2 "$CLI" exec --proxy demo --proxy demo=anthropic --proxy demo=env:MY_API --proxy-url "$PX" -- \
        sh -c 'echo "$OPENAI_BASE_URL $ANTHROPIC_BASE_URL $MY_API_BASE_URL"; printf %s "$MY_API_API_KEY" >'"$T/x/tok")
expect "exec --proxy: OPENAI_BASE_URL ends in /v1" "$PX/v1/proxy/demo/v1 " "$out"
expect "exec --proxy: ANTHROPIC_BASE_URL and PREFIX_BASE_URL" \
        "$PX/v1/proxy/demo $PX/v1/proxy/demo" "$out"
o=$(curl -s --unix-socket "$T/run/tools.sock" -d "{\"token\":\"$(cat "$T/x/tok")\"}" http://x/v1/introspect)
expect "its token is revoked once exec exits" '"error":"unauthorized"' "$o"
out=$(as $U2 "$CLI" exec --proxy demo --env V=demo --proxy-url "$PX" -- \
        sh -c 'printf "value:%s\n" "$V"; echo "base:$OPENAI_BASE_URL"')
expect "exec --proxy with --env: the value, masked" "value:[REDACTED:demo]" "$out"
expect "exec --proxy with --env: and the SDK's base URL" "base:$PX/v1/proxy/demo/v1" "$out"
# demo's grant sets no max_ttl: exec's session token lives as long as exec
# (at most a day), nothing to warn about; short's max_ttl "2m" caps it,
# and that is said before CMD runs.
o=$(as $U2 "$CLI" exec --proxy demo --proxy-url "$PX" -- sh -c 'curl -s --unix-socket "$0" -d "{\"token\":\"$OPENAI_API_KEY\"}" http://x/v1/introspect' "$T/run/tools.sock" 2>&1)
e=$(printf '%s' "$o" | sed -n 's/.*"expires_in":\([0-9]*\).*/\1/p')
[ "${e:-0}" -gt 86000 ] && ok "exec --proxy under a grant without max_ttl: the token lasts as long as exec, up to a day ($e s)" ||
        bad "exec --proxy, no max_ttl: $o"
case "$o" in *"expires in"*) bad "exec --proxy warned of a cap the grant does not set: $o" ;; *) ok "...and exec warns of no cap" ;; esac
o=$(as $U2 "$CLI" exec --proxy short --proxy-url "$PX" -- true 2>&1 >/dev/null)
expect "exec --proxy: a grant's short max_ttl (\"2m\") is said on stderr" "its token expires in 120 s (the grant's max_ttl)" "$o"

# --json on every verb that prints a result: each answer below is one JSON
# object on stdout with exit 0 (tpm: 8, no TPM here).  Every verb of --list-commands is either in
# this table, checked above (init, token, fetch, seal, approve, deny, delete),
# or exempt with its reason, so a new verb without --json fails here.
printf 'json-one' | "$CLI" put jdemo >/dev/null || bad "put jdemo"
"$CLI" init --state-dir "$T/s2" --unlock "keyfile:$T/k2" >/dev/null || bad "init a second store"
kid_old=$("$CLI" pubkey --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["key_id"])')
blob=$(printf 'imported-v' | "$CLI" seal --recipient "$pk" --name jimp)
as $U2 "$CLI" token demo >/dev/null 2>&1 # something to revoke
jrows=(
        "check|\"\$CLI\" check --state-dir \"\$T/s2\" --unlock \"keyfile:\$T/k2\" --json"
        "tpm|\"\$CLI\" tpm --json --tpm2-tcti swtpm:host=127.0.0.1,port=1|8"
        "put|printf json-two | \"\$CLI\" put jdemo --json"
        "list|\"\$CLI\" list --json"
        "show|\"\$CLI\" show jdemo --json"
        "rotate|printf json-three | \"\$CLI\" rotate jdemo --json"
        "versions|\"\$CLI\" versions jdemo --json"
        "version|\"\$CLI\" version disable jdemo 2 --json"
        "revoke|\"\$CLI\" revoke --secret demo --json"
        "status|\"\$CLI\" status --json"
        "policy|\"\$CLI\" policy check \"\$T/policy.json\" --json"
        "policy|\"\$CLI\" policy reload --json"
        "approvals|\"\$CLI\" approvals --json"
        "import|\"\$CLI\" import --json \"\$blob\""
        "pubkey|\"\$CLI\" pubkey --json"
        "pubkey|\"\$CLI\" pubkey --rotate --json"
        "pubkey|\"\$CLI\" pubkey --list --json"
        "pubkey|\"\$CLI\" pubkey --retire \"\$kid_old\" --json"
        "audit|\"\$CLI\" audit verify --json \"\$T/audit.log\""
        "scan|printf 'nothing secret here' | \"\$CLI\" scan --admin --json"
)
declare -A jseen=([init]=1 [token]=1 [fetch]=1 [seal]=1 [approve]=1 [deny]=1 [delete]=1
        [exec]="its output is the command's" [sandbox]="its output is the command's" [redact]="a filter: its output is the text"
        [metrics]="Prometheus text is its machine format")
for row in "${jrows[@]}"; do
        v=${row%%|*} cmd=${row#*|} want=0
        case "$cmd" in *'|8') cmd=${cmd%|8} want=8 ;; esac # tpm: JSON that says no TPM is reachable, exit 8
        jseen[$v]=1
        o=$(eval "$cmd" 2>"$T/jerr"); rc=$?
        if [ $rc = $want ] && /usr/bin/python3 -c 'import json,sys; assert isinstance(json.loads(sys.argv[1]), dict)' "$o" 2>/dev/null; then
                ok "--json: $v: one JSON object (${cmd#*\"\$CLI\" })"
        else
                bad "--json: $v (${cmd#*\"\$CLI\" }): exit $rc: $o $(cat "$T/jerr")"
        fi
done
for v in $("$CLI" --list-commands); do
        [ -n "${jseen[$v]:-}" ] || bad "--json: verb '$v' has no --json check and no reason to be exempt"
done
# Durations wherever a length of time is taken (the daemon's flags above: 10s, 1m).
o=$(printf json-four | "$CLI" rotate jdemo --grace 1h --json)
[ "$(jget "$o" grace)" = 3600 ] && ok "rotate --grace 1h" || bad "rotate --grace 1h: $o"
o=$(printf json-five | "$CLI" rotate jdemo --hook-timeout 2m --grace 90m --json)
[ "$(jget "$o" grace)" = 5400 ] && ok "rotate --hook-timeout 2m --grace 90m" || bad "rotate --grace 90m: $o"
o=$(as $U2 "$CLI" token demo --ttl 2m --json)
[ "$(jget "$o" expires_in)" = 120 ] && ok "token --ttl 2m" || bad "token --ttl 2m: $o"
for f in "--approval-timeout 2x" "--alert-hook-timeout 11m" "--denial-alert 10/2d"; do
        o=$("$DAEMON" $f --check-policy "$T/policy.json" 2>&1); rc=$?
        [ $rc = 2 ] && ok "credbrokerd $f: usage error" || bad "credbrokerd $f: exit $rc: $o"
done
o=$("$CLI" rotate jdemo --grace 1y </dev/null 2>&1); rc=$?
[ $rc = 2 ] && ok "rotate --grace 1y: usage error" || bad "rotate --grace 1y: exit $rc: $o"

# delete: --yes required; its tokens die, the value is gone, the name is free.
printf 'doomed-VALUE-%s' "$$" | "$CLI" put doomed >/dev/null || bad "put doomed"
printf 'again' | "$CLI" put doomed >/dev/null || bad "put doomed v2"
sed -i 's/"secret": "bin", "use": \["redeem"\]}/"secret": "bin", "use": ["redeem"]}, {"client": "tool", "secret": "doomed", "use": ["redeem"]}/' "$T/policy.json"
"$CLI" policy reload >/dev/null || bad "policy reload"
dt=$(as $U2 "$CLI" token doomed --use redeem 2>/dev/null)
o=$("$CLI" delete doomed 2>&1); rc=$?
[ $rc = 2 ] && ok "delete without --yes: usage error ($o)" || bad "delete without --yes: exit $rc: $o"
out=$("$CLI" delete doomed --yes --json)
[ "$(jget "$out" deleted revoked)" = $'True\n1' ] && ok "delete --yes --json: $out" || bad "delete: $out"
o=$(as $U2 curl -s --unix-socket "$T/run/tools.sock" -d "{\"token\":\"$dt\"}" http://x/v1/redeem)
expect "a token of the deleted secret is refused" '"error":"unauthorized"' "$o"
o=$(as $U2 "$CLI" fetch doomed 2>&1); rc=$?
[ $rc = 5 ] && ok "fetch of a deleted secret: not found (exit 5)" || bad "fetch deleted: exit $rc: $o"
"$CLI" list | grep -q doomed && bad "deleted secret still listed" || ok "the deleted secret is not listed"
grep -rqa "doomed-VALUE-$$" "$T/state" && bad "the deleted value is still on disk" || ok "the deleted value is gone from disk"
o=$("$CLI" delete doomed --yes 2>&1); rc=$?
[ $rc = 5 ] && ok "deleting it again: not found (exit 5)" || bad "delete twice: exit $rc: $o"
printf 'reborn' | "$CLI" put doomed >/dev/null && [ "$(as $U2 "$CLI" fetch doomed)" = reborn ] &&
        ok "the name takes a new current version" || bad "put after delete"
o=$("$CLI" check --state-dir "$T/state" --unlock "keyfile:$T/key" 2>&1)
case "$o" in ok:*) ok "check after delete: $o" ;; *) bad "check after delete: $o" ;; esac

# A session token dies with exec even when exec cannot revoke it (SIGKILL):
# the broker holds exec's pidfd.  Its child, still running, is refused.
proxy_try() { as $U2 curl -s --unix-socket "$T/run/tools.sock" -H "Authorization: Bearer $(cat "$T/x/tok2")" \
        http://x/v1/proxy/demo/v1/x; }
as $U2 "$CLI" exec --proxy demo --proxy-url "$PX" -- sh -c 'printf %s "$OPENAI_API_KEY" >'"$T/x/tok2"'; sleep 30' >/dev/null 2>&1 &
EPID=$!
for _ in $(seq 50); do [ -s "$T/x/tok2" ] && break; sleep 0.1; done
cpid=$(pgrep -P "$(pgrep -P $EPID)" 2>/dev/null | head -n 1)
o=$(proxy_try)
case "$o" in *exited*|*unauthorized*) bad "session token refused while exec runs: $o" ;; *) ok "session token accepted while exec runs" ;; esac
o=$(as $U2 curl -s --unix-socket "$T/run/tools.sock" -d "{\"token\":\"$(cat "$T/x/tok2")\"}" http://x/v1/introspect)
case "$o" in *'"bound_process":true'*) ok "exec --proxy's token is process-bound (session)" ;; *) bad "introspect: $o" ;; esac
kill -KILL "$(pgrep -P $EPID)" 2>/dev/null
wait $EPID 2>/dev/null
o=$(proxy_try)
expect "after exec is SIGKILLed, its token is refused although its child runs" "exited" "$o"
[ -n "$cpid" ] && kill "$cpid" 2>/dev/null
o=$(as $U2 "$CLI" exec --proxy 'demo=cohere' -- true 2>&1); rc=$?
[ $rc = 2 ] && ok "exec --proxy with an unknown kind: usage error" || bad "exec --proxy demo=cohere: $rc $o"
grep -q -- "$VALUE" "$T/daemon.out" && bad "the value is in the daemon's output" || ok "no value in the daemon's output"
echo "$fails failure(s)"
[ "$fails" = 0 ]
