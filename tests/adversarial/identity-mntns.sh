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
start_daemon --audit-log "$T/audit.log"

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
# Wherever the path is shown (audit, approvals, logs) it is marked as the
# caller's own name for the file: the operator must not read "curl".
rec=$(grep '"uid": *'$U1'[,}]' "$T/audit.log" | grep '"status": *403' | tail -n 1)
expect "the audit record marks the path as a name in the caller's mount namespace" \
        "$CURL (a name in the caller's mount namespace)" "$rec"
rec=$(grep '"uid": *'$U1'[,}]' "$T/audit.log" | grep '"status": *201' | head -n 1)
refute "a caller in the broker's mount namespace gets no such mark" "mount namespace" "$rec"

# The same spoof, the other way round: curl's name is kept, and /usr/bin/python3
# (a symlink in the policy, resolved at load) is what the other client wants.
out=$(run_as 61422 $PYBIN "$IDC" "$TS" request 2>&1)
expect "a symlink in the policy (/usr/bin/python3) matches the file it names" "request: 201" "$out"
out=$(run_as 61422 unshare -Urm sh -c "mount --bind '$CURL' '$PY' && exec '$PY' -s --unix-socket '$TS' \
        -d '{\"secret\":\"demo\",\"use\":\"redeem\"}' http://x/v1/token" 2>&1 | sed 's/cbt_[A-Za-z0-9_-]*/cbt_(redacted)/')
refute "curl bind-mounted over $PY gets no token" '"token"' "$out"

# Forged writer pid: in its own pid namespace (unshare -Urp) any process may
# put another's pid in SCM_CREDENTIALS.  Python names its curl child (idle)
# as the writer of its request: refused (the writer is neither the process
# that connected nor in the broker's pid namespace).
cat >"$T/forge.py" <<'PY'
import os, socket, struct, subprocess, sys, time
path, exe, mode = sys.argv[1], sys.argv[2], sys.argv[3]
r, w = os.pipe()
child = subprocess.Popen([exe, "-s", "-o", "/dev/null", "-T", "-", "file:///dev/null"], stdin=r)
time.sleep(0.3)
s = socket.socket(socket.AF_UNIX); s.connect(path)
body = b'{"secret":"demo","use":"redeem"}'
req = b"POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
if mode == "forge-connector":
    # The child connects, hands the socket over, then becomes curl: the
    # claimed writer is then the connecting process itself.
    os.close(w); child.wait()
    a, b = socket.socketpair()
    cpid = os.fork()
    if cpid == 0:
        c = socket.socket(socket.AF_UNIX); c.connect(path)
        socket.send_fds(a, [b"x"], [c.fileno()])
        r2, w2 = os.pipe(); os.dup2(r2, 0); os.set_inheritable(w2, True)  # curl idles on stdin
        os.execv(exe, [exe, "-s", "-o", "/dev/null", "-T", "-", "file:///dev/null"])
    _, fds, _, _ = socket.recv_fds(b, 16, 1)
    s.close(); s = socket.socket(fileno=fds[0]); time.sleep(0.5)
    class C: pid = cpid
    child = C()
pid = child.pid if mode.startswith("forge") else os.getpid()
s.sendmsg([req], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, struct.pack("iII", pid, os.getuid(), os.getgid()))])
d = s.recv(65536).decode(errors="replace")
import re
print(mode + ":", d.split("\r\n")[0], re.sub(r"cbt_[A-Za-z0-9_-]+", "cbt_(redacted)", d.split("\r\n\r\n", 1)[-1])[:300])
if mode != "forge-connector":
    os.close(w); child.wait()
else:
    os.kill(child.pid, 9)
PY
chmod 0644 "$T/forge.py"
if run_as $U1 unshare -Urp --fork true 2>/dev/null; then
        out=$(run_as $U1 unshare -Urp --fork $PYBIN "$T/forge.py" "$TS" "$CURL" own 2>&1)
        expect "legitimate-looking baseline: python naming itself is judged as python (no grant)" "own: HTTP/1.1 403" "$out"
        out=$(run_as $U1 unshare -Urp --fork $PYBIN "$T/forge.py" "$TS" "$CURL" forge 2>&1)
        refute "python naming its curl child as the writer gets no token" "forge: HTTP/1.1 201" "$out"
        expect "refused, saying why" "cannot be trusted" "$out"
        out=$(run_as $U1 unshare -Urp --fork $PYBIN "$T/forge.py" "$TS" "$CURL" forge-connector 2>&1)
        refute "naming the connecting process (which then became curl) gets no token" "forge-connector: HTTP/1.1 201" "$out"
        expect "refused, saying why" "cannot be trusted" "$out"
else
        echo "     (no unprivileged pid namespaces here: the forged-pid check is not run)"
fi

chk=$(CREDBROKER_DAEMON="$DAEMON" "$CLI" policy check "$T/policy.json" 2>&1)
expect "the checker shows what the symlink resolved to" "exe /usr/bin/python3 -> $PY" "$chk"

# An exe selector on a file a non-root user can replace admits whatever that
# user puts there (same inode, new content): the checker and the daemon's
# log say so, unless exe_sha256 is pinned.  Controls: a root-owned system
# binary, and the same file with its hash pinned, draw no warning.
mkdir -p "$T/u1bin" && cp "$CURL" "$T/u1bin/tool" && chown $U1 "$T/u1bin/tool"
SUM=$(sha256sum "$CURL" | cut -c1-64)
cat >"$T/p2.json" <<EOF
{ "clients": { "sys": {"uid": $U1, "exe": "$CURL"},
               "mine": {"uid": $U1, "exe": "$T/u1bin/tool"},
               "pinned": {"uid": $U1, "exe": "$T/u1bin/tool", "exe_sha256": "$SUM"} },
  "grants": [ {"client": "mine", "secret": "demo", "use": ["redeem"], "max_ttl": 60} ],
  "admins": {"uids": [0]} }
EOF
chmod 0600 "$T/p2.json"
chk=$(CREDBROKER_DAEMON="$DAEMON" "$CLI" policy check "$T/p2.json" 2>&1)
expect "policy check warns about an exe its uid can replace" \
        "warning: client mine: exe $T/u1bin/tool can be replaced by a user other than root (it is owned by uid $U1)" "$chk"
refute "no warning for the root-owned system binary" "client sys: exe $CURL can be replaced" "$chk"
refute "no warning when exe_sha256 is pinned" "client pinned: exe" "$(printf '%s\n' "$chk" | grep warning)"
chown 0 "$T/u1bin/tool" && chmod 0777 "$T/u1bin"
chk=$(CREDBROKER_DAEMON="$DAEMON" "$CLI" policy check "$T/p2.json" 2>&1)
expect "... or one in a directory others can write" "warning: client mine: exe $T/u1bin/tool can be replaced" "$chk"
finish
