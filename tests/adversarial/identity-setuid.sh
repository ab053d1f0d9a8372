#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 14, case 2: a uid change after connect() does not keep the old uid's
# identity on the connection.  The policy grants uid U1 (any executable).
#   - a process that kept CAP_SETUID gets its 201 as U1, becomes U2 and asks
#     again on the same connection: refused (a fresh connection too);
#   - setresuid(U1, U1, 0) (root kept as the saved uid), then U2: refused;
#   - pidfd_getfd: after the change the process re-execs holding the socket,
#     and an unrelated process of U2 takes it with pidfd_getfd: refused.
. "$(dirname "$0")/identity-lib.sh"
U1=61411 U2=61412
POLICY='{ "clients": { "u1": {"uid": '$U1'} },
  "grants": [ {"client": "u1", "secret": "demo", "use": ["redeem"], "max_ttl": 60} ],
  "admins": {"uids": [0]} }'
start_daemon

out=$(run_as $U1 $PYBIN "$IDC" "$TS" request 2>&1)
expect "legitimate: uid $U1 gets a token" "request: 201" "$out"

out=$(timeout 30 $PYBIN "$IDC" "$TS" setuid $U1 $U2 2>&1)
expect "as U1 (CAP_SETUID kept), the first request is served" "as-u1: 201" "$out"
refute "after setresuid to U2, the same connection gets no token" "as-u2-same-conn: 201" "$out"
expect "refused" "as-u2-same-conn: 403" "$out"
expect "a fresh connection as U2 is refused too" "as-u2-fresh-conn: 403" "$out"

out=$(timeout 30 $PYBIN "$IDC" "$TS" savedroot $U1 $U2 2>&1)
refute "saved-uid root, then U2: the same connection gets no token" "as-u2-same-conn: 201" "$out"
expect "refused" "as-u2-same-conn: 403" "$out"
refute "a process half-way through a uid change (saved uid root) is not served as U1" "as-u1-saved-root: 201" "$out"

rm -f "$T/holder.pid"
timeout 30 $PYBIN "$IDC" "$TS" getfd-holder $U1 $U2 "$T/holder.pid" >"$T/holder.out" 2>&1 &
hp=$!
disown $hp   # the thief ends it (SIGKILL): no job notice
out=$(run_as $U2 $PYBIN "$IDC" "$TS" getfd-thief "$T/holder.pid" 2>&1)
for _ in $(seq 50); do kill -0 $hp 2>/dev/null || break; sleep 0.1; done
expect "the holder was served as U1 before the change" "holder-as-u1: 201" "$(cat "$T/holder.out")"
echo "$out" | sed "s/^/     /"
case "$out" in
*"ERR pidfd_getfd"*) bad "pidfd_getfd did not work here: $out" ;;
*) refute "pidfd_getfd by an unrelated U2 process: no token" "thief: 201" "$out"
   expect "refused" "thief: 403" "$out" ;;
esac
finish
