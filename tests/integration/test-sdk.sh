#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The real `openai` and `@anthropic-ai/sdk` npm packages, unmodified, through
# `credbroker exec --proxy` (sdk-test.mjs): a call, a streamed call whose
# events must arrive as sent, and a refused call whose exception carries the
# broker's message.  The packages are installed by npm into a temp dir (exit
# 77 naming the reason only when the registry cannot be reached); then, in
# private mount and network namespaces, api.openai.com and api.anthropic.com
# resolve to quickstart-upstream.py over TLS with a test CA in the system
# bundle, and the daemon is the build's, listening on loopback TCP.
# Needs root, node, npm, unshare, overlayfs, ip, openssl, setpriv.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DAEMON=${CREDBROKERD:?} CLI=${CREDBROKER_CLI:?}

if [ "${1:-}" != inner ]; then
        [ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root"; exit 77; }
        for t in node npm unshare mount ip openssl setpriv /usr/bin/python3; do
                command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
        done
        T=$(mktemp -d /tmp/cbsdk.XXXXXX)
        chmod 0755 "$T"
        trap 'rm -rf "$T"' EXIT
        mkdir -p "$T/npm"
        npm_install() { (cd "$T/npm" && timeout 240 npm install --no-audit --no-fund --loglevel=error openai \
                @anthropic-ai/sdk >"$T/npm.log" 2>&1); }
        # Whether the registry is reachable is asked of the registry itself
        # (npm ping), not guessed from the failed install's words: an
        # install that fails while the registry answers (a missing package,
        # an integrity error, a full disk, a second transient failure) fails.
        if ! npm_install; then
                if ! timeout 60 npm ping >"$T/ping.log" 2>&1; then
                        echo "SKIP: missing prerequisite: the npm registry $(npm config get registry 2>/dev/null) cannot be" \
                                "reached (npm ping: $(grep -m1 -iE 'err|fail' "$T/ping.log" || tail -n 1 "$T/ping.log"))"
                        exit 77
                fi
                echo "npm install failed while the registry answers; once more: $(tail -n 2 "$T/npm.log")"
                npm_install || { echo "FAIL npm install (the registry answers npm ping): $(tail -n 5 "$T/npm.log")"; exit 1; }
        fi
        echo "npm installed: openai $(node -p "require('$T/npm/node_modules/openai/package.json').version")," \
                "@anthropic-ai/sdk $(node -p "require('$T/npm/node_modules/@anthropic-ai/sdk/package.json').version")"
        cp "$HERE/sdk-test.mjs" "$T/npm/"
        chmod -R a+rX "$T/npm"
        unshare --mount --net --fork --propagation private bash "$0" inner "$T"
        exit $?
fi

T=$2
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
mount -t tmpfs -o mode=0755 sdk "$T/ov" 2>/dev/null || { mkdir -p "$T/ov" && mount -t tmpfs -o mode=0755 sdk "$T/ov"; } ||
        { echo "FAIL tmpfs"; exit 1; }
mkdir -p "$T/ov/u" "$T/ov/w"
mount -t overlay sdketc -o "lowerdir=/etc,upperdir=$T/ov/u,workdir=$T/ov/w" /etc || { echo "FAIL overlay /etc"; exit 1; }
UP=8.8.4.99 # exists only on this namespace's loopback; nothing routes out
ip link set lo up && ip addr add "$UP/32" dev lo || { echo "FAIL network namespace"; exit 1; }
echo "$UP api.openai.com api.anthropic.com" >>/etc/hosts
P=$T/pki
mkdir -p "$P"
{
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/ca.key" -out "$P/ca.pem" \
                -days 2 -subj "/CN=sdk test CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/up.key" -out "$P/up.csr" -subj "/CN=up"
        printf 'subjectAltName=DNS:api.openai.com,DNS:api.anthropic.com\nextendedKeyUsage=serverAuth\n' >"$P/ext"
        openssl x509 -req -in "$P/up.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 2 -extfile "$P/ext" \
                -out "$P/up.pem"
} >"$P/log" 2>&1 || { echo "FAIL openssl: $(cat "$P/log")"; exit 1; }
cat "$P/ca.pem" >>/etc/ssl/certs/ca-certificates.crt
OKEY="sk-sdk-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
AKEY="sk-ant-sdk-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
printf '%s' "$OKEY" >"$T/okey"
printf '%s' "$AKEY" >"$T/akey"
/usr/bin/python3 "$HERE/quickstart-upstream.py" "$UP" "$P/up.pem" "$P/up.key" "$T/okey" "$T/akey" >"$T/up.out" 2>&1 &
UPID=$!
U=61961
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { echo "FAIL init"; exit 1; }
cat >"$T/policy.json" <<JSON
{ "clients": { "agent": {"uid": $U} },
  "grants": [ {"client": "agent", "secret": "openai", "use": ["proxy"], "max_ttl": 3600},
              {"client": "agent", "secret": "anthropic", "use": ["proxy"], "max_ttl": 3600} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --listen-tcp 127.0.0.1:8411 >"$T/daemon.out" 2>&1 &
DPID=$!
trap 'kill $DPID $UPID 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 100); do grep -q serving "$T/daemon.out" && grep -q ready "$T/up.out" && break; sleep 0.1; done
export CREDBROKER_SOCKET=$T/run/tools.sock CREDBROKER_ADMIN_SOCKET=$T/run/admin.sock
"$CLI" put openai --host api.openai.com --path-prefix /v1/chat/ --inject 'Authorization: Bearer {}' <"$T/okey" >/dev/null &&
"$CLI" put anthropic --host api.anthropic.com --path-prefix /v1/messages --inject 'x-api-key: {}' <"$T/akey" >/dev/null ||
        { echo "FAIL put: $(cat "$T/daemon.out")"; exit 1; }
for v in openai anthropic; do
        out=$(cd "$T/npm" && setpriv --reuid $U --regid $U --clear-groups env HOME="$T/npm" \
                CREDBROKER_SOCKET="$CREDBROKER_SOCKET" timeout 60 "$CLI" exec --proxy "$v=$v" -- node sdk-test.mjs "$v" 2>&1)
        rc=$?
        printf '%s\n' "$out"
        [ $rc = 0 ] && ok "$v SDK through exec --proxy" || bad "$v SDK: exit $rc"
done
all=$(cat "$T/daemon.out")$out
case "$all" in *"$OKEY"* | *"$AKEY"*) bad "a key appears in the daemon's or the SDK's output" ;; *) ok "no key in any output" ;; esac
echo "$fails failure(s)"
[ "$fails" = 0 ]
