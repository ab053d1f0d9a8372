#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The adversarial proxy suite's stage: real upstream HTTP parsers behind a
# byte recorder, the real daemon, attackers under real uids.
#
#   run.sh cases          every listed attack, byte for byte (adversary.py)
#   run.sh random [N]     N randomly framed requests (default: 2000, or
#                         10000 against a sanitizer build); seed from
#                         $CB_ADV_SEED (printed, so a run can be replayed)
#
# Upstreams (each on its own free loopback port, each behind tee.py, which
# records the raw byte stream it received in $T/NAME.raw.jsonl):
#   nginx   nginx(8) with its own config; TLS in tee.py; access log as JSON
#   node    Node's http module (upstream-node.js); cleartext (http:// seal)
#   python  http.server (upstream-python.py); TLS in tee.py
#   php     php -S with app.php (a POST-only seal); cleartext
#   evil    upstream-evil.py: hostile answers; cleartext
# Needs root (uids), nginx, node, php; exits 77 naming what is missing.
set -uo pipefail

MODE=${1:-cases}
CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
HERE=$(cd "$(dirname "$0")" && pwd)
[ -f "$HERE/adversary.py" ] || HERE=${CB_SRCDIR:?}/tests/adversarial
PKI_SH=$HERE/../integration/proxy-certs.sh
PY=/usr/bin/python3
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (to run attackers under other uids)"; exit 77; }
for t in nginx node php openssl setpriv timeout "$PY"; do
        p=$t
        [ "$t" = nginx ] && p=$(command -v nginx || echo /usr/sbin/nginx)
        [ -x "$p" ] || command -v "$t" >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

T=$(mktemp -d /tmp/cb-adv.XXXXXX)
chmod 0755 "$T"
mkdir -m 0700 "$T/val"
cleanup() {
        local p left
        for p in $(jobs -p); do kill "$p" 2>/dev/null; done
        for _ in $(seq 50); do
                left=$(jobs -pr)
                [ -z "$left" ] && break
                sleep 0.1
        done
        for p in $(jobs -pr); do kill -KILL "$p" 2>/dev/null; done
        wait 2>/dev/null
        rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
die() { echo "FAIL $*"; exit 1; }
freeport() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# waitport FILE: the first line of FILE once it is there
waitport() {
        local p
        for _ in $(seq 100); do
                p=$(head -n 1 "$1" 2>/dev/null)
                case "$p" in '' | *[!0-9]*) sleep 0.05 ;; *) echo "$p"; return 0 ;; esac
        done
        return 1
}

bash "$PKI_SH" "$T/pki" || die "proxy-certs.sh"
chmod 0755 "$T/pki"

# --- upstreams
"$PY" "$HERE/upstream-python.py" "$T/python.parsed.jsonl" >"$T/python.port" 2>"$T/python.err" &
node "$HERE/upstream-node.js" "$T/node.parsed.jsonl" >"$T/node.port" 2>"$T/node.err" &
"$PY" "$HERE/upstream-evil.py" "$T/evil.parsed.jsonl" >"$T/evil.port" 2>"$T/evil.err" &
NGP=$(freeport)
mkdir -p "$T/nginx"
cat >"$T/nginx/nginx.conf" <<NGX
# This test's own nginx: its own prefix, port, logs; nothing of the system's.
daemon off;
master_process off;
worker_processes 1;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log info;
events { worker_connections 512; }
http {
    client_body_temp_path $T/nginx/body;
    proxy_temp_path $T/nginx/proxy;
    fastcgi_temp_path $T/nginx/fastcgi;
    uwsgi_temp_path $T/nginx/uwsgi;
    scgi_temp_path $T/nginx/scgi;
    keepalive_requests 100000;
    log_format cbjson escape=json '{"up":"nginx","method":"\$request_method","target":"\$request_uri",'
        '"norm":"\$uri","version":"\$server_protocol","status":\$status,"auth":"\$http_authorization",'
        '"cl":"\$http_content_length","te":"\$http_transfer_encoding","request_length":\$request_length,'
        '"conn":\$connection,"conn_req":\$connection_requests,"fwd":"\$http_forwarded",'
        '"xff":"\$http_x_forwarded_for","cookie":"\$http_cookie"}';
    access_log $T/nginx.parsed.jsonl cbjson;
    server {
        listen 127.0.0.1:$NGP;
        location / { return 200 "nginx \$request_method \$request_uri\n"; }
    }
}
NGX
"$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log" >"$T/nginx.out" 2>&1 &
PHPP=$(freeport)
cp "$HERE/app.php" "$T/app.php"
CB_PHP_LOG=$T/php.parsed.jsonl php -S "127.0.0.1:$PHPP" -t "$T" "$T/app.php" >"$T/php.out" 2>&1 &
PYP=$(waitport "$T/python.port") || die "python upstream: $(cat "$T/python.err")"
NDP=$(waitport "$T/node.port") || die "node upstream: $(cat "$T/node.err")"
EVP=$(waitport "$T/evil.port") || die "evil upstream: $(cat "$T/evil.err")"
for p in $NGP $PHPP; do
        for _ in $(seq 100); do "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $p), 0.2)" 2>/dev/null && break; sleep 0.05; done
done
"$PY" "$HERE/tee.py" --dir "$T" --cert "$T/pki/server.pem" --key "$T/pki/server.key" \
        "nginx:$NGP:tls" "node:$NDP" "python:$PYP:tls" "php:$PHPP" "evil:$EVP" >"$T/tee.ports" 2>"$T/tee.err" &
for _ in $(seq 100); do grep -q '^ready' "$T/tee.ports" 2>/dev/null && break; sleep 0.05; done
grep -q '^ready' "$T/tee.ports" || die "tee.py: $(cat "$T/tee.err")"
tport() { awk -v n="$1" '$1 == n { print $2 }' "$T/tee.ports"; }
echo "# upstreams: nginx $NGP, node $NDP, python $PYP, php $PHPP, evil $EVP; recorders: $(grep -v ready "$T/tee.ports" | tr '\n' ' ')"
export PYTHONDONTWRITEBYTECODE=1

# --- store, policy, daemon
A=61701 V=61702
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || die "init"
SECRETS="ng ng2 nd nd2 py py2 php evil evil2"
grants=
for s in $SECRETS; do
        c=attacker
        case $s in *2) c=victim ;; esac
        grants+="{\"client\": \"$c\", \"secret\": \"$s\", \"use\": [\"proxy\"], \"max_ttl\": 3600},"
done
cat >"$T/policy.json" <<JSON
{ "clients": { "attacker": {"uid": $A}, "victim": {"uid": $V} },
  "grants": [ ${grants%,} ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
THREADS=()
[ "$MODE" = cases ] && THREADS=(--threads 1) # one transfer loop: one upstream pool, so the victim follows the attacker on it
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --audit-log "$T/audit.log" --listen-tcp 127.0.0.1:0 --refusals-recorded 0 "${THREADS[@]}" >"$T/daemon.out" 2>&1 &
DPID=$!
for _ in $(seq 100); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
[ -S "$T/run/tools.sock" ] || die "daemon did not start: $(head -c 600 "$T/daemon.out")"
TCPP=$(sed -n 's/.* and tcp 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$T/daemon.out" | head -n 1)
[ -n "$TCPP" ] || die "no TCP listener port in the daemon's output: $(head -c 600 "$T/daemon.out")"

# Values with '+', '/' and '=' (their escaped forms differ from the raw).
for s in $SECRETS; do
        printf 'sk+%s/%s=' "$s" "$(head -c 18 /dev/urandom | base64 | tr -d '\n=')" >"$T/val/$s"
done
CA=$T/pki/ca.pem
B=(--inject 'Authorization: Bearer {}')
put() { # put NAME ARGS...: the value on stdin
        local n=$1; shift
        timeout 20 "$CLI" --admin-socket "$T/run/admin.sock" put "$n" "$@" <"$T/val/$n" >"$T/put.$n" 2>&1 ||
                die "put $n $*: $(head -c 300 "$T/put.$n")"
}
SEAL=(--method GET --method POST --path-prefix /ok)
for s in ng ng2; do put $s --host "127.0.0.1:$(tport nginx)" --ca-file "$CA" "${B[@]}" "${SEAL[@]}"; done
for s in nd nd2; do put $s --host "http://127.0.0.1:$(tport node)" "${B[@]}" "${SEAL[@]}"; done
for s in py py2; do put $s --host "127.0.0.1:$(tport python)" --ca-file "$CA" "${B[@]}" "${SEAL[@]}"; done
put php --host "http://127.0.0.1:$(tport php)" "${B[@]}" --method POST --path-prefix /app
for s in evil evil2; do put $s --host "http://127.0.0.1:$(tport evil)" "${B[@]}"; done

cp "$HERE/agent.py" "$T/agent.py"
chmod 0644 "$T/agent.py"
cat >"$T/conf.json" <<JSON
{ "dir": "$T", "agent": "$T/agent.py", "tools_sock": "$T/run/tools.sock", "tcp_port": $TCPP,
  "uids": {"attacker": $A, "victim": $V}, "daemon_pid": $DPID, "tee_ctl": $(tport ctl),
  "ports": {"nginx": $(tport nginx), "node": $(tport node), "python": $(tport python), "php": $(tport php),
            "evil": $(tport evil)},
  "secrets": {"nginx": ["ng", "ng2"], "node": ["nd", "nd2"], "python": ["py", "py2"], "php": ["php", null],
              "evil": ["evil", "evil2"]},
  "asan": $(grep -qa __asan_init "$DAEMON" && echo true || echo false) }
JSON
"$PY" "$HERE/adversary.py" "$MODE" "$T/conf.json" "${2:-}"
rc=$?
kill -0 "$DPID" 2>/dev/null || { echo "FAIL the daemon died: $(tail -c 2000 "$T/daemon.out")"; rc=1; }
if grep -qE 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$T/daemon.out"; then
        echo "FAIL sanitizer report in the daemon's output:"
        grep -A 30 -E 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$T/daemon.out" | head -n 60
        rc=1
fi
kill -TERM "$DPID" 2>/dev/null
wait "$DPID" 2>/dev/null
exit $rc
