#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The policy is an immutable snapshot swapped in by a reload that holds no
# lock a request needs (docs/architecture.md, issue 18):
#  1. a token request does not wait for a slow reload: while SIGHUPs keep a
#     ~1 MiB policy (4,001 clients with exe and cgroup selectors) reloading
#     back to back, token issue's p95 latency stays under a quarter of one
#     reload's duration (the old daemon reloaded under the lock every
#     request took: its requests waited for the reload);
#  2. token issue during that storm stays correct: every request answered
#     201 under one whole policy or the other (the storm alternates two
#     that differ only in the grant's max_ttl: each token's lifetime is one
#     of the two, never anything else), and every token then introspects.
set -u
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (setpriv)"; exit 77; }
: "${CB_BUILDDIR:?}" "${CB_SRCDIR:?}"
CLI=${CREDBROKER_CLI:-$CB_BUILDDIR/client/credbroker}
DAEMON=${CREDBROKERD:-$CB_BUILDDIR/broker/credbrokerd}
PY=/usr/bin/python3
UA=61560
T=$(mktemp -d /tmp/cb-rstorm.XXXXXX)
chmod 0755 "$T"
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
cleanup() { [ -n "${DPID:-}" ] && kill "$DPID" 2>/dev/null; for p in $(jobs -p); do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
gen() { # MAX_TTL OUT
        $PY - "$UA" "$1" >"$2" <<'PY'
import json, sys
ua, ttl = int(sys.argv[1]), int(sys.argv[2])
clients = {"a": {"uid": ua}}
grants = [{"client": "a", "secret": "s", "use": ["redeem"], "max_ttl": ttl}]
for i in range(4000):
    clients["pad%05d" % i] = {"uid": 70000 + i, "exe": "/usr/bin/env", "cgroup": "/pad.slice/p%05d.scope" % i}
    grants.append({"client": "pad%05d" % i, "secret": "p%05d" % i, "use": ["redeem"], "max_ttl": 60, "rate": "5/m"})
print(json.dumps({"clients": clients, "grants": grants, "admins": {"uids": [0]}}, indent=1))
PY
        chmod 0644 "$2"
}
gen 100 "$T/p100.json" && gen 200 "$T/p200.json" || { echo "FAIL: cannot write the policies"; exit 1; }
cp "$T/p100.json" "$T/policy.json" && chmod 0644 "$T/policy.json"
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { echo "FAIL init"; exit 1; }
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        >"$T/daemon.out" 2>&1 &
DPID=$!
for _ in $(seq 200); do [ -S "$T/run/admin.sock" ] && break; sleep 0.05; done
[ -S "$T/run/admin.sock" ] || { echo "FAIL: daemon did not start: $(tail -3 "$T/daemon.out")"; exit 1; }
TS=$T/run/tools.sock AS=$T/run/admin.sock
printf %s 'storm-value-0123456789abcdef' | "$CLI" --admin-socket "$AS" put s >/dev/null || bad "put"
reloads() { grep -c "SIGHUP: policy reloaded" "$T/daemon.out"; }
# One reload's duration, as the daemon does it (median of 5).
durs=()
for i in 1 2 3 4 5; do
        n=$(reloads); t0=$(date +%s%N); kill -HUP "$DPID"
        while [ "$(reloads)" -le "$n" ]; do sleep 0.002; done
        durs+=($(( ($(date +%s%N) - t0) / 1000000 )))
done
R=$(printf '%s\n' "${durs[@]}" | sort -n | sed -n 3p)
echo "#    one reload of the $(stat -c %s "$T/policy.json")-byte policy: ${R} ms (median of ${durs[*]})"
# The storm: the two policies swapped in by a SIGHUP every few ms (signals
# coalesce: a reload starts as soon as the last one ends) for 4 s.
( end=$(( $(date +%s) + 5 )); i=0
  while [ "$(date +%s)" -lt "$end" ]; do
          i=$((i + 1)); cp "$T/p$(( i % 2 ? 200 : 100 )).json" "$T/policy.json.new"
          chmod 0644 "$T/policy.json.new"; mv -f "$T/policy.json.new" "$T/policy.json"
          for _ in 1 2 3 4; do kill -HUP "$DPID" 2>/dev/null; sleep 0.005; done
  done ) &
STORM=$!
before=$(reloads)
sleep 0.3
out=$(timeout 60 setpriv --reuid $UA --regid $UA --clear-groups $PY "$CB_SRCDIR/tests/integration/reload-storm-client.py" "$TS" 4)
wait "$STORM"
done_n=$(( $(reloads) - before ))
echo "#    $done_n reloads during the storm; client: $out"
[ "$done_n" -ge 10 ] && ok "the storm reloaded the policy $done_n times" || bad "only $done_n reloads during the storm"
field() { $PY -c "import json,sys; print(json.dumps(json.loads(sys.argv[1])$1))" "$out"; }
n=$(field '["n"]') n201=$(field '["statuses"].get("201", 0)')
[ "$n" -gt 50 ] && [ "$n" = "$n201" ] && ok "all $n token requests during the storm answered 201" ||
        bad "token requests during the storm: $(field '["statuses"]')"
ttls=$(field '["ttls"]')
[ "$($PY -c "import json,sys; print(set(json.loads(sys.argv[1])) <= {'100', '200'})" "$ttls")" = True ] &&
        ok "every token's lifetime is one whole policy's max_ttl: $ttls" || bad "lifetimes: $ttls"
[ "$(field '["bad_introspect"]')" = 0 ] && ok "every token issued during the storm introspects" ||
        bad "$(field '["bad_introspect"]') tokens do not introspect"
p95=$(field '["p95_ms"]')
if [ "$R" -lt 20 ]; then
        echo "#    a reload takes only $R ms here: the latency bound is not meaningful, not checked"
elif $PY -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) / 4 else 1)" "$p95" "$R"; then
        ok "token issue did not wait for the reloads: p95 ${p95} ms < a quarter of one reload (${R} ms)"
else
        bad "token issue waited for the reloads: p95 ${p95} ms >= a quarter of one reload (${R} ms)"
fi
grep -q "NOT reloaded" "$T/daemon.out" && bad "a reload was refused: $(grep -m1 'NOT reloaded' "$T/daemon.out")"
kill -0 "$DPID" 2>/dev/null && ok "the daemon is still serving" || bad "the daemon died: $(tail -3 "$T/daemon.out")"
[ $fails = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all passed"
