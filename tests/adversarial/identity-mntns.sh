#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 14, case 3: an exe selector is a file identity in the broker's mount
# namespace, not the path string the caller's namespace shows.  Policy
# {uid U1, exe /usr/bin/curl}; U1 runs python under the name /usr/bin/curl
# through a private bind mount (unshare -Urm, an unprivileged user
# namespace): refused.  Also: a symlink in the policy (/usr/bin/python3) is
# resolved at load and `credbrokerd --check-policy` shows what it became.
. "$(dirname "$0")/identity-lib.sh"
U1=61421
CURL=$(command -v curl) || { echo "SKIP: missing prerequisite: curl"; exit 77; }
CURL=$(readlink -f "$CURL")
command -v unshare >/dev/null || { echo "SKIP: missing prerequisite: unshare"; exit 77; }
# An unprivileged user namespace, as U1 (the attack needs no privilege).
run_as $U1 unshare -Urm true 2>/dev/null ||
        { echo "SKIP: missing prerequisite: unprivileged user namespaces (unshare -Urm as uid $U1)"; exit 77; }
POLICY='{ "clients": { "curl": {"uid": '$U1', "exe": "'$CURL'"},
                       "py-link": {"uid": 61422, "exe": "/usr/bin/python3"} },
  "grants": [ {"client": "curl", "secret": "demo", "use": ["redeem"], "max_ttl": 60},
              {"client": "py-link", "secret": "demo", "use": ["redeem"], "max_ttl": 60} ],
  "admins": {"uids": [0]} }'
start_daemon

out=$(run_as $U1 "$CURL" -s --unix-socket "$TS" -d '{"secret":"demo","use":"redeem"}' http://x/v1/token 2>&1 |
        sed 's/cbt_[A-Za-z0-9_-]*/cbt_(redacted)/')
expect "legitimate: curl as uid $U1 gets a token" '"token":"cbt_' "$out"

cp "$IDC" "$T/client.py"
chmod 0644 "$T/client.py"
out=$(run_as $U1 unshare -Urm sh -c "mount --bind '$PY' '$CURL' && exec '$CURL' '$T/client.py' '$TS' request" 2>&1)
case "$out" in
*"request:"*) ;;
*) bad "the bind-mount spoof did not run: $out" ;;
esac
refute "python bind-mounted over $CURL gets no token" "request: 201" "$out"
expect "refused" "request: 403" "$out"

# The same spoof, the other way round: curl's name is kept, and /usr/bin/python3
# (a symlink in the policy, resolved at load) is what the other client wants.
out=$(run_as 61422 $PYBIN "$IDC" "$TS" request 2>&1)
expect "a symlink in the policy (/usr/bin/python3) matches the file it names" "request: 201" "$out"
out=$(run_as 61422 unshare -Urm sh -c "mount --bind '$CURL' '$PY' && exec '$PY' -s --unix-socket '$TS' \
        -d '{\"secret\":\"demo\",\"use\":\"redeem\"}' http://x/v1/token" 2>&1 | sed 's/cbt_[A-Za-z0-9_-]*/cbt_(redacted)/')
refute "curl bind-mounted over $PY gets no token" '"token"' "$out"

chk=$(CREDBROKER_DAEMON="$DAEMON" "$CLI" policy check "$T/policy.json" 2>&1)
expect "the checker shows what the symlink resolved to" "exe /usr/bin/python3 -> $PY" "$chk"
finish
