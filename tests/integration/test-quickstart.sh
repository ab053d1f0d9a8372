#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# README's quick start, run exactly as README prints it (the lines between
# <!-- quickstart:begin --> and <!-- quickstart:end -->, then the Anthropic
# block), so README cannot drift from the product.
#
# It runs in private mount and network namespaces: /etc, /var, /run, /home,
# /usr/local and the source tree are overlays on a tmpfs (the install, the
# new users and files vanish afterwards); api.openai.com and
# api.anthropic.com resolve (a private /etc/hosts) to a public-looking
# address that exists only on this namespace's loopback device, served by
# quickstart-upstream.py over TLS with a test CA added to the system bundle.
# `systemctl enable --now credbrokerd` is quickstart-systemctl.py: the
# installed unit's ExecStart as its User, with only its capability, waiting
# for READY=1.  `make deps install` uses the build under test (BUILD_DIR).
# Needs root, unshare, nsenter, overlayfs, ip, openssl, curl, setpriv, runuser,
# useradd, systemd-sysusers; exits 77 naming what is missing.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${CB_SRCDIR:?}
BUILD=${CB_BUILDDIR:?}

if [ "${1:-}" != inner ]; then
        [ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (installs in private namespaces)"; exit 77; }
        for t in unshare nsenter mount ip openssl curl setpriv runuser useradd systemd-sysusers systemd-tmpfiles \
                /usr/bin/python3 make meson; do
                command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
        done
        timeout 10 unshare -m -n sh -c 'mount -t tmpfs t /mnt && mkdir /mnt/u /mnt/w &&
                mount -t overlay o -o lowerdir=/etc,upperdir=/mnt/u,workdir=/mnt/w /etc' 2>/dev/null ||
                { echo "SKIP: missing prerequisite: private mount+network namespaces with overlayfs"; exit 77; }
        exec unshare --mount --net --fork --propagation private bash "$0" inner
fi

fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }
refuse() { case "$3" in *"$2"*) bad "$1: found '$2'" ;; *) ok "$1" ;; esac; }

T=$(mktemp -d /tmp/cbqs.XXXXXX)
mount -t tmpfs -o mode=0755 qs "$T" || { echo "FAIL cannot mount a tmpfs"; exit 1; }
i=0
for d in /etc /var /run /home /usr/local "$SRC"; do
        i=$((i + 1))
        mkdir -p "$T/ov/u$i" "$T/ov/w$i"
        mount -t overlay "qs$i" -o "lowerdir=$d,upperdir=$T/ov/u$i,workdir=$T/ov/w$i" "$d" ||
                { echo "FAIL cannot overlay $d"; exit 1; }
done
UPID='' DPID=''
cleanup() {
        [ -n "$DPID" ] && kill "$DPID" 2>/dev/null
        [ -n "$UPID" ] && kill "$UPID" 2>/dev/null
        wait 2>/dev/null
}
trap cleanup EXIT

# The network: loopback, plus the upstream's address (nothing routes out of
# this namespace; the address only has to pass the proxy's egress rules).
UP=8.8.4.99
ip link set lo up && ip addr add "$UP/32" dev lo || { echo "FAIL cannot set up the namespace's network"; exit 1; }
echo "$UP api.openai.com api.anthropic.com" >>/etc/hosts

# A test CA, trusted system-wide (in this namespace), and the upstream's certificate.
P=$T/pki
mkdir -p "$P"
{
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/ca.key" -out "$P/ca.pem" \
                -days 2 -subj "/CN=quickstart test CA" -addext "basicConstraints=critical,CA:TRUE" \
                -addext "keyUsage=critical,keyCertSign"
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$P/up.key" -out "$P/up.csr" \
                -subj "/CN=api.openai.com"
        printf 'subjectAltName=DNS:api.openai.com,DNS:api.anthropic.com\nextendedKeyUsage=serverAuth\n' >"$P/ext"
        openssl x509 -req -in "$P/up.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial -days 2 \
                -extfile "$P/ext" -out "$P/up.pem"
} >"$P/log" 2>&1 || { echo "FAIL openssl:"; cat "$P/log"; exit 1; }
cat "$P/ca.pem" >>/etc/ssl/certs/ca-certificates.crt

# "your API key in the file openai.key" (in the source tree's overlay).
cd "$SRC" || exit 1
OKEY="sk-qs-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
AKEY="sk-ant-qs-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
printf '%s\n' "$OKEY" >openai.key
printf '%s\n' "$AKEY" >anthropic.key
chmod 0600 openai.key anthropic.key
/usr/bin/python3 "$HERE/quickstart-upstream.py" "$UP" "$P/up.pem" "$P/up.key" openai.key anthropic.key \
        >"$T/up.out" 2>"$T/up.err" &
UPID=$!
for _ in $(seq 100); do grep -q ready "$T/up.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$T/up.out" || { echo "FAIL upstream did not start: $(cat "$T/up.err")"; exit 1; }

systemctl() {
        [ "$*" = "enable --now credbrokerd" ] || { echo "quickstart test: unexpected 'systemctl $*'" >&2; return 1; }
        local pid
        pid=$(/usr/bin/python3 "$QS_HERE/quickstart-systemctl.py" \
                /usr/local/lib/systemd/system/credbrokerd.service "$QS_T/daemon.log") || return 1
        echo "$pid" >"$QS_T/daemon.pid"
}
export -f systemctl
export QS_HERE=$HERE QS_T=$T BUILD_DIR=$BUILD
export PATH=/usr/local/sbin:/usr/local/bin:$PATH

block() { # the shell lines of README's block NAME
        awk -v b="<!-- $1:begin -->" -v e="<!-- $1:end -->" \
                '$0 == b { on = 1; next } $0 == e { on = 0 } on && !/^```/' "$SRC/README.md"
}
for name in quickstart quickstart-anthropic; do
        lines=$(block $name)
        [ -n "$lines" ] || { bad "README has no $name block"; continue; }
        n=$(printf '%s\n' "$lines" | grep -cvE '^(\{|  |EOF)')
        echo "--- README $name: $n commands"
        [ $name != quickstart ] || [ "$n" -le 10 ] && ok "$name: at most 10 commands ($n)" || bad "$name: $n commands"
        bash -euo pipefail -c "$lines" >"$T/$name.out" 2>"$T/$name.err"
        rc=$?
        DPID=$(cat "$T/daemon.pid" 2>/dev/null)
        [ $rc = 0 ] && ok "$name ran (exit 0)" || bad "$name: exit $rc: $(tail -n 20 "$T/$name.err")"
done
expect "the tool's request reached OpenAI with the real key" upstream-saw-the-real-openai-key "$(cat "$T/quickstart.out")"
expect "the Anthropic variant too" upstream-saw-the-real-anthropic-key "$(cat "$T/quickstart-anthropic.out")"
all=$(cat "$T"/*.out "$T"/*.err "$T/daemon.log" /var/log/credbroker/audit.log 2>/dev/null)
refuse "no key in any output, the daemon's log or the audit log (openai)" "$OKEY" "$all"
refuse "no key in any output, the daemon's log or the audit log (anthropic)" "$AKEY" "$all"

# What the quick start set up, checked from outside.
expect "the daemon runs as credbroker" credbroker "$(ps -o user= -p "$DPID" 2>/dev/null)"
expect "with CAP_SYS_PTRACE only" "cap_sys_ptrace" "$(grep -E '^CapEff' /proc/"$DPID"/status | awk '{print $2}' |
        xargs -I{} capsh --decode={} 2>/dev/null)"
o=$(nsenter -t "$DPID" -m sh -c 'touch /usr/x 2>&1; touch /etc/credbroker/x 2>&1; ls /home | wc -l;
        touch /var/lib/credbroker/.w && rm /var/lib/credbroker/.w && echo state-rw' 2>&1)
expect "the daemon's root is read-only (ProtectSystem=strict)" "Read-only file system" "$o"
expect "its state directory is writable" "state-rw" "$o"
# A tool whose executable lives under /home, which the daemon cannot see
# (ProtectHome): it is still identified, through /proc/PID/exe.
install -D -m 0755 -o agent "$(command -v credbroker)" /home/agent/bin/credbroker
o=$(runuser -u agent -- /home/agent/bin/credbroker token openai 2>&1)
expect "a tool under /home is identified and served" "cbt_" "$o"
expect "its lines carry a time stamp and a level" "Z credbrokerd[" "$(head -n 1 "$T/daemon.log")"
expect "credbrokerd --version" "credbrokerd 0.1.0" "$(credbrokerd --version)"
expect "credbroker --version" "credbroker 0.1.0" "$(credbroker --version)"
[ -s /var/log/credbroker/audit.log ] && ok "audit log written" || bad "no audit log"

# exec --proxy: the token outlives the default 300 s (the grant's max_ttl),
# is masked in the command's output, and is dead once exec has exited.
mkdir -m 0777 "$T/x"
out=$(runuser -u agent -- credbroker exec --proxy openai -- sh -c 'printf %s "$OPENAI_API_KEY" >'"$T/x/tok"';
        echo "key:$OPENAI_API_KEY"; curl -sS --unix-socket /run/credbroker/tools.sock -d "{\"token\":\"$OPENAI_API_KEY\"}" http://x/v1/introspect')
tok=$(cat "$T/x/tok")
expect "the token is masked in the command's output" "key:[REDACTED:openai]" "$out"
exp=$(printf '%s' "$out" | sed -n 's/.*"expires_in":\([0-9]*\).*/\1/p')
[ "${exp:-0}" -gt 28000 ] && ok "the token lives as long as max_ttl allows ($exp s)" || bad "expires_in: $out"
resp=$(runuser -u agent -- curl -sS -w ' %{http_code}' http://127.0.0.1:8411/v1/proxy/openai/v1/chat/completions \
        -H "Authorization: Bearer $tok" -d '{}')
expect "after exec exits its token is refused" " 401" "$resp"
expect "in the vendors' error shape" '"type":"error","error":{"type":"unauthorized","code":"unauthorized","message":' "$resp"
# Observability: the counters (Prometheus text), the audit records' sub-second
# time and the request id linking a proxy decision to its completion.
m=$(credbroker metrics)
expect "metrics: proxied requests by secret and upstream status" 'credbroker_proxy_requests_total{secret="openai",status="200"} ' "$m"
expect "metrics: requests by route and decision" 'credbroker_requests_total{route="proxy",decision="deny"} ' "$m"
expect "metrics: the latency histogram" 'credbroker_proxy_duration_seconds_bucket{le="+Inf"} ' "$m"
bad_lines=$(printf '%s\n' "$m" | grep -vE '^# (HELP|TYPE) [a-z_]+ |^[a-z_]+(\{[a-z_]+="[^"\\]*"(,[a-z_]+="[^"\\]*")*\})? [0-9.e+-]+$')
[ -z "$bad_lines" ] && ok "metrics: every line is Prometheus text format" || bad "metrics: lines not in the format: $bad_lines"
o=$(/usr/bin/python3 - /var/log/credbroker/audit.log <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert all(isinstance(r.get("time_ms"), int) for r in recs), "a record without time_ms"
dec = {r["request_id"] for r in recs if r.get("route") == "proxy" and r.get("decision") == "allow" and "request_id" in r}
done = {r["request_id"] for r in recs if r.get("route") == "proxy.done" and "request_id" in r}
assert dec and dec == done, (dec, done)
print("linked", len(dec))
PY
)
expect "audit: time_ms on every record; each proxy decision's request_id on its completion" "linked" "$o"

# Revoking what does not exist fails (exit 5, not found) with its reason.
for a in "--client nosuch" "--accessor cba_deadbeef"; do
        o=$(credbroker revoke $a 2>&1)
        rc=$?
        [ $rc = 5 ] && ok "revoke $a: exit 5: $o" || bad "revoke $a: exit $rc: $o"
done
o=$(credbroker revoke --client agent 2>&1) && ok "revoke --client agent (a policy client): $o" || bad "revoke --client agent: $o"
echo "$fails failure(s)"
[ "$fails" = 0 ]
