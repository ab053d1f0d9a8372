#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# credbroker sandbox with the real `openai` npm package (issue 17's check):
# `credbroker sandbox --proxy openai=openai -- node sandbox-openai.mjs`, the
# SDK unmodified, calls chat.completions.create through the broker's
# listener inside the sandbox; the broker injects the sealed key on its way
# to a real HTTPS upstream (quickstart-upstream.py: it answers whether the
# Authorization it got is the sealed key).  Checked: the upstream saw the
# sealed key; the script's environment holds only a session token; the key
# is nowhere in the node process's memory (read from outside through
# /proc/PID/mem, after a control that finds it in the upstream's memory).
# The package is installed by npm once into a cache under the build
# directory (argument 1); exit 77 naming the reason when node, npm or bwrap
# are missing or the npm registry cannot be reached.  The daemon and the
# upstream run in mount and network namespaces the test makes
# (api.openai.com is 8.8.4.99 on their lo, a test CA in an overlaid /etc).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DAEMON=${CREDBROKERD:?} CLI=${CREDBROKER_CLI:?}
U=61917

if [ "${1:-}" != inner ]; then
        CACHE=${1:?usage: test-sandbox-sdk.sh NPM_CACHE_DIR}
        [ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (namespaces, another uid)"; exit 77; }
        for t in node npm unshare mount ip openssl setpriv flock timeout /usr/bin/python3 /usr/bin/bwrap; do
                command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
        done
        if ! out=$(setpriv --reuid $U --regid $U --clear-groups /usr/bin/bwrap --unshare-all --ro-bind / / /bin/true 2>&1); then
                echo "SKIP: missing prerequisite: unprivileged user namespaces for bwrap ($out)"; exit 77
        fi
        mkdir -p "$CACHE"
        # One install into the cache (a lock: parallel runs share it).
        exec 9>"$CACHE/.lock"
        flock 9
        if [ ! -f "$CACHE/node_modules/openai/package.json" ]; then
                npm_install() { (cd "$CACHE" && timeout 240 npm install --no-audit --no-fund --no-save --loglevel=error \
                        openai >"$CACHE/npm.log" 2>&1); }
                if ! npm_install; then
                        if ! timeout 60 npm ping >"$CACHE/ping.log" 2>&1; then
                                echo "SKIP: missing prerequisite: the npm registry $(npm config get registry 2>/dev/null)" \
                                        "cannot be reached (npm ping: $(grep -m1 -iE 'err|fail' "$CACHE/ping.log" ||
                                        tail -n 1 "$CACHE/ping.log"))"
                                exit 77
                        fi
                        echo "npm install failed while the registry answers; once more: $(tail -n 2 "$CACHE/npm.log")"
                        npm_install || { echo "FAIL npm install (the registry answers npm ping): $(tail -n 5 "$CACHE/npm.log")"; exit 1; }
                fi
        fi
        flock -u 9
        echo "openai $(node -p "require('$CACHE/node_modules/openai/package.json').version") (npm cache $CACHE)"
        # The sandbox's working directory: not under /tmp (the sandbox's is
        # private), readable by the tool's uid, holding the package.
        T=$(mktemp -d /var/tmp/cbsbsdk.XXXXXX)
        chmod 0755 "$T"
        trap 'rm -rf "$T"' EXIT
        mkdir -p "$T/work"
        cp -a "$CACHE/node_modules" "$T/work/" && cp "$HERE/sandbox-openai.mjs" "$T/work/" || { echo "FAIL copy"; exit 1; }
        chown -R $U:$U "$T/work"
        unshare --mount --net --fork --propagation private bash "$0" inner "$T"
        exit $?
fi

T=$2
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
mkdir -p "$T/ov" && mount -t tmpfs -o mode=0755 sbsdk "$T/ov" || { echo "FAIL tmpfs"; exit 1; }
mkdir -p "$T/ov/u" "$T/ov/w"
mount -t overlay sbsdketc -o "lowerdir=/etc,upperdir=$T/ov/u,workdir=$T/ov/w" /etc || { echo "FAIL overlay /etc"; exit 1; }
UP=8.8.4.99 # exists only on this namespace's loopback; nothing routes out
ip link set lo up && ip addr add "$UP/32" dev lo || { echo "FAIL network namespace"; exit 1; }
echo "$UP api.openai.com" >>/etc/hosts
P=$T/pki
mkdir -p "$P"
{
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/ca.key" -out "$P/ca.pem" \
                -days 2 -subj "/CN=sandbox sdk test CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/up.key" -out "$P/up.csr" -subj "/CN=up"
        printf 'subjectAltName=DNS:api.openai.com\nextendedKeyUsage=serverAuth\n' >"$P/ext"
        openssl x509 -req -in "$P/up.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 2 -extfile "$P/ext" \
                -out "$P/up.pem"
} >"$P/log" 2>&1 || { echo "FAIL openssl: $(cat "$P/log")"; exit 1; }
cat "$P/ca.pem" >>/etc/ssl/certs/ca-certificates.crt
OKEY="sk-sbsdk-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
printf '%s' "$OKEY" >"$T/okey"
printf 'unused-anthropic-key' >"$T/akey"
/usr/bin/python3 "$HERE/quickstart-upstream.py" "$UP" "$P/up.pem" "$P/up.key" "$T/okey" "$T/akey" >"$T/up.out" 2>&1 &
UPID=$!
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { echo "FAIL init"; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "agent": {"uid": $U} },
  "grants": [ {"client": "agent", "secret": "openai", "use": ["proxy"], "max_ttl": 3600} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --audit-log "$T/audit.log" >"$T/daemon.out" 2>&1 &
DPID=$!
trap 'kill $DPID $UPID 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 100); do [ -S "$T/run/sandbox.sock" ] && grep -q ready "$T/up.out" && break; sleep 0.1; done
[ -S "$T/run/sandbox.sock" ] || { echo "FAIL the daemon did not start: $(cat "$T/daemon.out")"; exit 1; }
export CREDBROKER_SOCKET=$T/run/tools.sock CREDBROKER_ADMIN_SOCKET=$T/run/admin.sock
"$CLI" put openai --host api.openai.com --path-prefix /v1/chat/ --inject 'Authorization: Bearer {}' <"$T/okey" >/dev/null ||
        { echo "FAIL put: $(cat "$T/daemon.out")"; exit 1; }
chmod 0711 "$T/run"

# memscan PID: how many times the key's bytes are in PID's readable memory
memscan() {
        /usr/bin/python3 - "$1" "$T/okey" <<'PY'
import re, sys
pid, key = sys.argv[1], open(sys.argv[2], "rb").read()
n = 0
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
    for line in maps:
        a, perms = line.split()[:2]
        if perms[0] != "r":
            continue
        lo, hi = (int(x, 16) for x in a.split("-"))
        try:
            mem.seek(lo)
            n += mem.read(hi - lo).count(key)
        except (OSError, ValueError, OverflowError):
            pass
print(n)
PY
}

W=$T/work
mkdir -p "$T/home"; (cd "$W" && setpriv --reuid $U --regid $U --clear-groups env HOME="$T/home" CREDBROKER_SOCKET="$CREDBROKER_SOCKET" \
        timeout 90 "$CLI" sandbox --proxy openai=openai -- node sandbox-openai.mjs >"$T/node.out" 2>&1) &
SB=$!
for _ in $(seq 600); do [ -e "$W/ready" ] && break; sleep 0.1; done
NPID=$(pgrep -u $U -f '^node sandbox-openai.mjs' | head -1)
if [ -e "$W/ready" ] && [ -n "$NPID" ]; then
        c=$(memscan "$UPID")
        [ "${c:-0}" -gt 0 ] && ok "control: the key's bytes are found in the upstream's memory ($c)" ||
                bad "control: the memory scan does not find the key in the upstream ($c)"
        c=$(memscan "$NPID")
        [ "$c" = 0 ] && ok "the key is nowhere in the sandboxed node process's memory" ||
                bad "the key is in the sandboxed node's memory ($c times)"
else
        bad "the script did not get to its wait (pid '${NPID}'): $(cat "$T/node.out")"
fi
touch "$W/done"
wait $SB; rc=$?
o=$(cat "$T/node.out")
printf '%s\n' "$o"
[ $rc = 0 ] || bad "credbroker sandbox: exit $rc"
case "$o" in *"content=upstream-saw-the-real-openai-key"*) ok "the openai SDK's call reached the upstream with the sealed key injected" ;;
*) bad "the openai SDK inside the sandbox: $o" ;; esac
case "$o" in *"base=http://127.0.0.1:8411/"*) ok "OPENAI_BASE_URL is the broker's listener inside the sandbox" ;;
*) bad "OPENAI_BASE_URL: $o" ;; esac
if [ -s "$W/env.json" ]; then
        k=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("OPENAI_API_KEY", ""))' "$W/env.json")
        grep -qF "$OKEY" "$W/env.json" && bad "the key is in the script's environment" ||
                { [ -n "$k" ] && [ "$k" != "$OKEY" ] && ok "the script's environment holds a placeholder (OPENAI_API_KEY ${k:0:6}..., ${#k} chars), not the key" ||
                        bad "OPENAI_API_KEY inside: '${k:0:6}'"; }
else
        bad "no env.json written"
fi
grep -q '"socket": *"sandbox"' "$T/audit.log" && grep -q '"route": *"proxy' "$T/audit.log" &&
        ok "the proxied call is recorded as the sandbox's" || bad "no sandbox proxy record: $(tail -n 3 "$T/audit.log")"
case "$(cat "$T/daemon.out" "$T/audit.log")$o" in *"$OKEY"*) bad "the key appears in the daemon's output, the audit log or the script's" ;;
*) ok "the key is in no output or record" ;; esac
echo "sandbox-sdk: $fails failure(s)"
[ "$fails" = 0 ]
