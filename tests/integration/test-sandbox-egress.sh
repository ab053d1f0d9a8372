#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# credbroker sandbox, egress (issue 17, step 3 in part): uncredentialed HTTPS
# out of a sandbox through CONNECT tunnels on its listener, to the hosts its
# client's "egress.allow" names, the address dialled passing the SSRF rules,
# the ClientHello's SNI naming the CONNECTed host.  Real curl, Python urllib
# and openssl s_client inside bubblewrap under an unprivileged uid; the
# daemon and a real HTTPS upstream in a network namespace this test makes,
# where the upstream has a public-looking address (11.22.33.44 on lo) and
# names come from a private /etc/hosts.  Exits 77 naming what is missing.
set -uo pipefail
CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
HERE=$(cd "$(dirname "$0")" && pwd)
[ -f "$HERE/proxy-upstream.py" ] || HERE=${CB_SRCDIR:?}/tests/integration
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (namespaces, another uid)"; exit 77; }
for t in /usr/bin/python3 setpriv timeout /usr/bin/bwrap curl openssl unshare ip git; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done
U=61914
as() { setpriv --reuid $U --regid $U --clear-groups "$@"; }
if ! out=$(as /usr/bin/bwrap --unshare-all --ro-bind / / /bin/true 2>&1); then
        echo "SKIP: missing prerequisite: unprivileged user namespaces for bwrap ($out)"; exit 77
fi
T=$(mktemp -d /var/tmp/cbsbe-test.XXXXXX)
chmod 0755 "$T"
NSPID=''
cleanup() {
        [ -n "$NSPID" ] && kill "$NSPID" 2>/dev/null
        for f in "$T/up.pid" "$T/private.pid" "$T/git.pid"; do [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
        wait 2>/dev/null; rm -rf "$T"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }

bash "$HERE/proxy-certs.sh" "$T/pki" || { bad "proxy-certs.sh"; exit 1; }
chmod -R a+rX "$T/pki"
CA=$T/pki/ca.pem
P=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PG=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# A repository served by git's smart HTTP (git http-backend) over TLS.
git init -q --bare "$T/srv/repo.git" && git init -q "$T/src" && (cd "$T/src" && printf 'sandboxed clone\n' >README &&
        git -c user.name=t -c user.email=t@t add README && git -c user.name=t -c user.email=t@t commit -qm one &&
        git push -q "$T/srv/repo.git" HEAD:refs/heads/main) && git -C "$T/srv/repo.git" symbolic-ref HEAD refs/heads/main ||
        { bad "git repository set-up"; exit 1; }
chmod -R a+rX "$T/srv"
printf '127.0.0.1 localhost\n11.22.33.44 upstream.test denied.test\n127.0.0.1 private.test\n' >"$T/hosts"
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "sbx": {"uid": $U, "egress": {"allow": ["upstream.test:$P", "private.test:$P", "upstream.test:$PG"], "alert_on_deny": true}} },
  "grants": [], "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
# The daemon's world: its own network and mount namespaces; an upstream on
# 11.22.33.44 (public by the SSRF rules) and one on 127.0.0.1 (private).
cat >"$T/ns.sh" <<EOF
set -e
ip link set lo up
ip addr add 11.22.33.44/32 dev lo
mount --bind "$T/hosts" /etc/hosts
/usr/bin/python3 "$HERE/proxy-upstream.py" --bind 11.22.33.44 --port $P --cert "$T/pki/server.pem" --key "$T/pki/server.key" --log "$T/up.log" >/dev/null 2>"$T/up.err" &
echo \$! >"$T/up.pid"
/usr/bin/python3 "$HERE/proxy-upstream.py" --bind 127.0.0.1 --port $P --cert "$T/pki/server.pem" --key "$T/pki/server.key" --log "$T/private.log" >/dev/null 2>"$T/private.err" &
echo \$! >"$T/private.pid"
/usr/bin/python3 "$HERE/git-https-server.py" --bind 11.22.33.44 --port $PG --cert "$T/pki/server.pem" --key "$T/pki/server.key" --root "$T/srv" --log "$T/git.log" >/dev/null 2>"$T/git.err" &
echo \$! >"$T/git.pid"
exec "$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" --audit-log "$T/audit.log"
EOF
unshare -mn bash "$T/ns.sh" >"$T/daemon.out" 2>&1 &
NSPID=$!
for _ in $(seq 50); do [ -S "$T/run/sandbox.sock" ] && break; sleep 0.1; done
sleep 0.5
[ -S "$T/run/sandbox.sock" ] || { bad "the daemon did not start: $(cat "$T/daemon.out")"; exit 1; }
mkdir -p "$T/work" && chown $U "$T/work"
mkdir -p "$T/home"; sb() { (cd "$T/work" && as env HOME="$T/home" CREDBROKER_SOCKET="$T/run/tools.sock" timeout 90 "$CLI" sandbox "$@"); }

# ---- allowed: real programs through HTTPS_PROXY --------------------------------
o=$(sb -- curl -sS --max-time 15 --cacert "$CA" "https://upstream.test:$P/echo/curl" 2>&1); rc=$?
[ $rc = 0 ] && expect "curl through HTTPS_PROXY (CONNECT) to an allowed host" '"path": "/echo/curl"' "$o" || bad "curl allowed: exit $rc: $o"
o=$(sb -- /usr/bin/python3 -c "import ssl, urllib.request
ctx = ssl.create_default_context(cafile='$CA')
r = urllib.request.urlopen('https://upstream.test:$P/echo/urllib', context=ctx, timeout=15)
print(r.status, r.read().decode()[:200])" 2>&1); rc=$?
[ $rc = 0 ] && expect "Python urllib through HTTPS_PROXY to an allowed host" "200" "$o" || bad "urllib allowed: exit $rc: $o"
grep -q '/echo/curl' "$T/up.log" && grep -q '/echo/urllib' "$T/up.log" && ok "the upstream received both" || bad "upstream log: $(cat "$T/up.log")"
o=$(sb -- sh -c "echo | openssl s_client -proxy 127.0.0.1:8411 -connect upstream.test:$P -servername upstream.test -CAfile $CA 2>&1 | grep -m1 'Verify return code'")
expect "control: openssl s_client with the right SNI" "Verify return code: 0" "$o"

# git clone over HTTPS (smart HTTP, git http-backend) through a CONNECT tunnel.
# HOME=/tmp (the sandbox's own, writable): git may write its files there.
o=$(sb -- env HOME=/tmp GIT_SSL_CAINFO="$CA" GIT_TERMINAL_PROMPT=0 git clone -q "https://upstream.test:$PG/repo.git" cloned 2>&1); rc=$?
c=$(cat "$T/work/cloned/README" 2>&1)
[ $rc = 0 ] && expect "git clone over HTTPS (CONNECT) from an allowed host" "sandboxed clone" "$c" || bad "git clone: exit $rc: $o $(cat "$T/git.err" 2>/dev/null)"
grep -q "POST /repo.git/git-upload-pack 200" "$T/git.log" && ok "the git server served the clone over smart HTTP (git-upload-pack)" || bad "git server log: $(cat "$T/git.log" 2>/dev/null)"

# --allow-host narrows the client's egress.allow, never widens it.
o=$(sb --allow-host "upstream.test:$P" -- curl -sS -o /dev/null --max-time 15 --cacert "$CA" -w '%{http_code}' "https://upstream.test:$P/echo/narrow" 2>&1)
expect "--allow-host naming an allowed host: it works" "200" "$o"
o=$(sb --allow-host example.org -- curl -s -o /dev/null --max-time 15 --cacert "$CA" -w '%{http_connect}' "https://upstream.test:$P/" 2>&1)
expect "--allow-host naming another host: the client's allowed host is refused (403)" "403" "$o"
o=$(sb --allow-host denied.test -- curl -s -o /dev/null --max-time 15 --cacert "$CA" -w '%{http_connect}' "https://denied.test:$P/" 2>&1)
expect "--allow-host cannot widen the policy (403)" "403" "$o"

# ---- escapes, all from one sandbox: each refused and recorded, one alert ----------
before=$(wc -l <"$T/up.log")
cat >"$T/escapes.sh" <<EOF
c() { curl -s -o /dev/null --max-time 15 --cacert "$CA" -w '%{http_connect}' "\$1"; echo " rc=\$?"; }
echo "denied \$(c https://denied.test:$P/)"
echo "literal \$(c https://11.22.33.44:$P/)"
echo "private \$(c https://private.test:$P/)"
echo "otherport \$(c https://upstream.test:1/)"
echo "sni \$(echo | openssl s_client -proxy 127.0.0.1:8411 -connect upstream.test:$P -servername other.test -CAfile $CA 2>&1 | grep -c 'BEGIN CERTIFICATE')"
EOF
chmod 0755 "$T/escapes.sh"
o=$(sb -- sh "$T/escapes.sh" 2>&1)
expect "CONNECT to a host not in egress.allow: 403" "denied 403" "$o"
expect "CONNECT to an IP literal: 403" "literal 403" "$o"
expect "an allowed name resolving to a private address: 403, never dialled" "private 403" "$o"
expect "an allowed host on another port: 403" "otherport 403" "$o"
expect "CONNECT to an allowed host with another SNI: closed before the handshake" "sni 0" "$o"
[ ! -s "$T/private.log" ] && ok "the private upstream received nothing" || bad "private upstream reached: $(cat "$T/private.log")"
[ "$(wc -l <"$T/up.log")" = "$before" ] && ok "the public upstream received nothing from the escapes" || bad "escapes reached the upstream"
sleep 0.5
/usr/bin/python3 - "$T/audit.log" "$T/daemon.out" <<'PY' && ok "each refusal audited (egress deny records with reasons); one egress_denied alert for the sandbox" || bad "records/alert"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
close = [r for r in recs if r.get("type") == "sandbox_close" and r.get("cmd", "").startswith("sh ") and "escapes" in r.get("cmd", "")]
assert len(close) == 1, close
sid = close[0]["id"]
deny = [r for r in recs if r.get("type") == "egress" and r.get("sandbox") == sid and r.get("decision") == "deny"]
reasons = " | ".join(r["reason"] for r in deny)
for want in ("egress.allow", "IP literal", "loopback", "names other.test"):
    assert want in reasons, (want, reasons)
assert close[0]["refused"] >= 5, close[0]
alerts = [l for l in open(sys.argv[2]) if "egress_denied" in l and sid in l]
assert len(alerts) == 1, alerts
PY

echo "sandbox-egress: $fails failure(s)"
[ $fails = 0 ]
