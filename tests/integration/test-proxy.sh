#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The credential injection proxy end to end: the real daemon, real clients
# under real uids (setpriv), real HTTPS upstreams (proxy-upstream.py) with a
# test PKI (proxy-certs.sh).  Checks that the secret is injected where its
# template says and nowhere else, that client credentials never reach the
# upstream, that every refusal happens before any upstream connection (the
# upstream's request log is unchanged), that TLS is verified, that responses
# stream and are redacted, and what the audit log holds.
# Needs root (to switch uids and to bind-mount /etc/hosts in a private mount
# namespace); exits 77 naming what is missing otherwise.
set -uo pipefail

CLI=${CREDBROKER_CLI:?}
DAEMON=${CREDBROKERD:?}
HERE=$(cd "$(dirname "$0")" && pwd)
[ -f "$HERE/proxy-upstream.py" ] || HERE=${CB_SRCDIR:?}/tests/integration
[ "$(id -u)" = 0 ] || { echo "SKIP: missing prerequisite: root (to run clients under other uids)"; exit 77; }
for t in openssl curl /usr/bin/python3 setpriv unshare mount timeout; do
        command -v $t >/dev/null || { echo "SKIP: missing prerequisite: $t"; exit 77; }
done
curl --help all 2>/dev/null | grep -q -- --request-target ||
        { echo "SKIP: missing prerequisite: curl with --request-target (7.55 or later)"; exit 77; }
timeout 10 unshare -m sh -c 'mount --bind /etc/hosts /etc/hosts' 2>/dev/null ||
        { echo "SKIP: missing prerequisite: private mount namespaces (unshare -m + mount --bind)"; exit 77; }

T=$(mktemp -d /tmp/cbp-test.XXXXXX)
chmod 0755 "$T"
OUT=$T/out # written by clients running as the test uids
mkdir -m 0777 "$OUT" "$T/val"
chmod 0700 "$T/val"
PID='' PID2=''
# Every background process (daemons, upstreams, clients) is a job of this
# shell: cleanup ends exactly those, by pid.
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
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
# expect NAME WANT_SUBSTRING GOT
expect() { case "$3" in *"$2"*) ok "$1" ;; *) bad "$1: wanted '$2', got '$3'" ;; esac; }

U1=61301 U2=61302
PYBIN=/usr/bin/python3
CURL=$(readlink -f "$(command -v curl)")
PY=$(readlink -f "$PYBIN")
as() { local u=$1; shift; timeout 30 setpriv --reuid "$u" --regid "$u" --clear-groups "$@"; }
# For background clients: not through a function, so $! is timeout(1)
# itself and a kill reaches the client.
AS1=(timeout 30 setpriv --reuid "$U1" --regid "$U1" --clear-groups)
field() { "$PYBIN" -c "
import json,sys
try: print(json.load(sys.stdin).get('$1',''))
except Exception: print('')"; }
lines() { cat "$@" 2>/dev/null | wc -l | tr -d ' '; }
hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# --- values: only ever in files and on stdin, never in any argv
declare -A V
for s in up hdr q basic other multi narrow wrongca mismatch down named pinned badpin plain odd; do
        V[$s]="sk-live-$s-$(hex 16)"
        # + / = : % " \\ and a space: a base64/AWS-style key, whose URL and
        # JSON spellings differ from the raw one
        [ "$s" = odd ] && V[$s]="AKIA+$(hex 6)/wJ=x:%\"\\ q$(hex 4)=="
        printf '%s' "${V[$s]}" >"$T/val/$s"
        printf '%s\n' "${V[$s]}" >>"$T/pat.values"
done
: >"$T/pat.tokens"
chmod 0666 "$T/pat.tokens" # the raw python client adds its own token

# Checks over upstream logs, audit log and responses; values are read from
# $T/val, never passed in argv, and replaced by <value of NAME> when shown.
cat >"$T/check.py" <<'PY'
import base64, hashlib, json, os, sys, urllib.parse
T, cmd = sys.argv[1], sys.argv[2]
v = {n: open(os.path.join(T, 'val', n)).read() for n in os.listdir(os.path.join(T, 'val'))}
toks = [t for t in open(os.path.join(T, 'pat.tokens')).read().split() if t]
def clean(s):
    for n, x in v.items():
        s = s.replace(x, '<value of %s>' % n)
    for t in toks:
        s = s.replace(t, '<a token>')
    return s
def recs(path):
    out = []
    for line in open(path, encoding='utf-8', errors='replace'):
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out
if cmd == 'rec':  # rec LOG EXPR: EXPR holds for the last record (r, h = headers, q = parsed query)
    rs = recs(sys.argv[3])
    if not rs:
        print('no: the upstream received no request'); sys.exit()
    r = rs[-1]; h = r.get('headers', {})
    q = urllib.parse.parse_qs(r.get('query', ''), keep_blank_values=True)
    b64 = lambda s: base64.b64encode(s.encode()).decode()
    try:
        good = eval(sys.argv[4])
    except Exception as e:
        good = False
    print('yes' if good else 'no: last upstream request was ' + clean(json.dumps(r))[:700])
elif cmd == 'count':  # count LOG EXPR
    n = 0
    for r in recs(sys.argv[3]):
        h = r.get('headers', {})
        try:
            n += bool(eval(sys.argv[4]))
        except Exception:
            pass
    print(n)
elif cmd == 'json':  # json FILE: the body parses as JSON
    try:
        json.load(open(sys.argv[3])); print('yes')
    except Exception as e:
        print('no: ' + clean(open(sys.argv[3], errors='replace').read(300)))
elif cmd == 'audit':  # audit FILE PROBE HOST PORT: exactly one record names PROBE; it is complete
    rs = [r for r in recs(sys.argv[3]) if sys.argv[4] in json.dumps(r)]
    if len(rs) != 1:
        print('no: %d records name the request (want 1): %s' % (len(rs), clean(json.dumps(rs))[:700])); sys.exit()
    r = rs[0]
    miss = [k for k, want in (('method', 'PUT'), ('host', sys.argv[5]), ('path', sys.argv[4]), ('status', '200'))
            if want not in str(r.get(k, ''))]
    if str(r.get('host', '')) != sys.argv[5] + ':' + sys.argv[6] and str(r.get('port', '')) != sys.argv[6]:
        miss.append('port')
    print('yes' if not miss else 'no: record lacks %s: %s' % (miss, clean(json.dumps(r))[:700]))
elif cmd == 'clean':  # clean FILE: show a file with values and tokens masked
    print(clean(open(sys.argv[3], errors='replace').read(int(sys.argv[4]) if len(sys.argv) > 4 else 400)))
PY
# expect_rec NAME LOG EXPR
expect_rec() {
        local out
        out=$("$PYBIN" "$T/check.py" "$T" rec "$2" "$3")
        [ "$out" = yes ] && ok "$1" || bad "$1: $out"
}
# no_secret NAME FILE...: no value and no token in the files
# no_token NAME FILE...: no token (upstream logs: the values belong there)
no_secret() {
        local n=$1; shift
        if cat "$@" 2>/dev/null | grep -qF -f "$T/pat.values"; then bad "$n: a secret value is there"
        else no_token "$n" "$@"; fi
}
no_token() {
        local n=$1; shift
        if [ -s "$T/pat.tokens" ] && cat "$@" 2>/dev/null | grep -qF -f "$T/pat.tokens"; then bad "$n: a token is there"
        else ok "$n"; fi
}
shown() { "$PYBIN" "$T/check.py" "$T" clean "$1" 300 | tr '\n' ' '; }

# --- PKI and upstreams
bash "$HERE/proxy-certs.sh" "$T/pki" || { bad "proxy-certs.sh"; exit 1; }
chmod 0755 "$T/pki"
CA=$T/pki/ca.pem
# start_upstream NAME CERT [ARGS...]: sets PORT; log in $T/NAME.log
start_upstream() {
        local name=$1 cert=$2; shift 2
        local tls=(--cert "$T/pki/$cert.pem" --key "$T/pki/$cert.key")
        [ "$cert" = plain ] && tls=(--plain)
        "$PYBIN" "$HERE/proxy-upstream.py" --port 0 "${tls[@]}" --log "$T/$name.log" "$@" \
                >"$T/$name.port" 2>"$T/$name.err" &
        for _ in $(seq 100); do [ -s "$T/$name.port" ] && break; sleep 0.05; done
        PORT=$(head -n 1 "$T/$name.port")
        case "$PORT" in ''|*[!0-9]*) bad "upstream $name did not start: $(cat "$T/$name.err")"; exit 1 ;; esac
}
start_upstream main server --sse-marker "$T/sse.last"; P1=$PORT
start_upstream second server; P2=$PORT
start_upstream wrong wrong; PW=$PORT
start_upstream mism other; PM=$PORT
start_upstream plain plain; PP=$PORT
ULOGS=("$T/main.log" "$T/second.log" "$T/wrong.log" "$T/mism.log" "$T/plain.log")
PD=$("$PYBIN" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ok "upstreams on 127.0.0.1:$P1 (main) $P2 (second) $PW (wrong CA) $PM (name mismatch) $PP (plain); $PD is down"

# --- store, policy, daemon
"$CLI" init --state-dir "$T/state" --unlock "keyfile:$T/key" >/dev/null || { bad init; exit 1; }
grants=
for s in up hdr q basic other multi narrow wrongca mismatch down named pinned badpin plain odd; do
        grants+="{\"client\": \"curl-tool\", \"secret\": \"$s\", \"use\": [\"proxy\"]},"
done
cat >"$T/policy.json" <<JSON
{ "clients": {
    "curl-tool": {"uid": $U1, "exe": "$CURL"},
    "py-tool":   {"uid": $U1, "exe": "$PY"},
    "redeemer":  {"uid": $U2}
  },
  "grants": [ $grants
    {"client": "py-tool", "secret": "up", "use": ["proxy"]},
    {"client": "redeemer", "secret": "up", "use": ["redeem"]}
  ],
  "admins": {"uids": [0]} }
JSON
chmod 0644 "$T/policy.json"
"$DAEMON" --state-dir "$T/state" --run-dir "$T/run" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --audit-log "$T/audit.log" --listen-tcp 127.0.0.1:0 >"$T/daemon.out" 2>&1 &
PID=$!
for _ in $(seq 50); do [ -S "$T/run/admin.sock" ] && break; sleep 0.1; done
TS=$T/run/tools.sock AS=$T/run/admin.sock
[ -S "$TS" ] || { bad "daemon did not start: $(cat "$T/daemon.out")"; exit 1; }

# put NAME ARGS...: the value on stdin
put() {
        local n=$1; shift
        if timeout 20 "$CLI" --admin-socket "$AS" put "$n" "$@" <"$T/val/$n" >"$OUT/put.$n" 2>&1; then
                ok "put $n"
        else
                bad "put $n $*: $(head -c 300 "$OUT/put.$n")"
        fi
}
BEARER=(--inject 'Authorization: Bearer {}')
put up --host "127.0.0.1:$P1" "${BEARER[@]}" --ca-file "$CA"
put odd --host "127.0.0.1:$P1" "${BEARER[@]}" --ca-file "$CA"
put hdr --host "127.0.0.1:$P1" --inject 'x-api-key: {}' --ca-file "$CA"
put q --host "127.0.0.1:$P1" --inject 'query:api_key' --ca-file "$CA"
put basic --host "127.0.0.1:$P1" --inject 'basic:alice' --ca-file "$CA"
put other --host "127.0.0.1:$P2" "${BEARER[@]}" --ca-file "$CA"
put multi --host "127.0.0.1:$P1" --host "127.0.0.1:$P2" "${BEARER[@]}" --ca-file "$CA"
put narrow --host "127.0.0.1:$P1" "${BEARER[@]}" --method GET --path-prefix /echo --ca-file "$CA"
put wrongca --host "127.0.0.1:$PW" "${BEARER[@]}" --ca-file "$CA"
put mismatch --host "127.0.0.1:$PM" "${BEARER[@]}" --ca-file "$CA"
put down --host "127.0.0.1:$PD" "${BEARER[@]}" --ca-file "$CA"
put named --host "upstream.test:$P1" "${BEARER[@]}" --ca-file "$CA"
put pinned --host "127.0.0.1:$P1" "${BEARER[@]}" --ca-file "$CA" --pin "$(cat "$T/pki/server.pin")"
put badpin --host "127.0.0.1:$P1" "${BEARER[@]}" --ca-file "$CA" --pin "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
put plain --host "http://127.0.0.1:$PP" "${BEARER[@]}"

# mint SOCKET UID SECRET USE: print a token (curl, the policy's executable)
mint() {
        local t
        t=$(as "$2" curl -s -m 10 --unix-socket "$1" -X POST -d "{\"secret\":\"$3\",\"use\":\"$4\"}" http://x/v1/token | field token)
        [ -n "$t" ] && printf '%s\n' "$t" >>"$T/pat.tokens"
        printf '%s' "$t"
}
declare -A K
for s in up hdr q basic other multi narrow wrongca mismatch down pinned badpin plain odd; do
        K[$s]=$(mint "$TS" $U1 $s proxy)
done
case "${K[up]}" in cbt_*) ok "proxy token for up" ;; *) bad "no proxy token for up" ;; esac

# pc UID NAME CURL_ARGS...: one request through tools.sock as UID; sets CODE
# and RC, leaves $OUT/NAME.h (response head), .b (body), .e (curl stderr)
pc() {
        local u=$1 n=$2; shift 2
        CODE=$(as "$u" curl -sS -m 15 --unix-socket "$TS" -D "$OUT/$n.h" -o "$OUT/$n.b" -w '%{http_code}' "$@" 2>"$OUT/$n.e")
        RC=$?
}
auth() { printf 'Authorization: Bearer %s' "${K[$1]}"; }
# refused NAME CODE_GLOB SUBSTRING UID CURL_ARGS...: a JSON error with that
# status naming SUBSTRING (case-insensitive), and no upstream saw anything;
# SUBSTRING '*': any body (the HTTP layer may answer before the broker)
refused() {
        local n=$1 want=$2 sub=$3 before after body; shift 3
        before=$(lines "${ULOGS[@]}")
        pc "$@"
        after=$(lines "${ULOGS[@]}")
        body=$(cat "$OUT/$2.b" 2>/dev/null)
        # shellcheck disable=SC2254
        case "$CODE" in
        $want) ;;
        *) bad "$n: status $CODE (curl exit $RC), wanted $want: $(shown "$OUT/$2.b")"; return ;;
        esac
        if [ "$after" != "$before" ]; then bad "$n: refused ($CODE) but an upstream received $((after - before)) request(s)"
        elif [ "$sub" = '*' ]; then ok "$n ($CODE, no upstream request)"
        elif [[ "$body" != *'"error"'* ]]; then bad "$n: $CODE without a JSON error: $(shown "$OUT/$2.b")"
        elif [[ "${body,,}" != *"${sub,,}"* ]]; then bad "$n: error does not mention '$sub': $(shown "$OUT/$2.b")"
        else ok "$n ($CODE, no upstream request)"; fi
}
status() { # status NAME WANT: the last pc answered WANT
        [ "$CODE" = "$2" ] && [ "$RC" = 0 ] && ok "$1 ($CODE)" ||
                bad "$1: status $CODE (curl exit $RC: $(head -c 200 "$OUT/$3.e" 2>/dev/null)), wanted $2: $(shown "$OUT/$3.b")"
}
PROXY=http://x/v1/proxy

echo "# reverse form, injection templates"
pc $U1 echo1 -H "$(auth up)" -H 'X-Custom: kept' -H 'Accept-Encoding: gzip, br' \
        -H 'Connection: X-Hop' -H 'X-Hop: must-not-pass' "$PROXY/up/echo?a=1&b=two"
status "reverse GET /echo" 200 echo1
expect_rec "upstream got Authorization: Bearer <value>" "$T/main.log" "h.get('authorization') == 'Bearer ' + v['up']"
expect_rec "method, path and query forwarded" "$T/main.log" "r['method'] == 'GET' and r['path'] == '/echo' and r['query'] == 'a=1&b=two'"
expect_rec "other client headers forwarded" "$T/main.log" "h.get('x-custom') == 'kept'"
expect_rec "Accept-Encoding: identity upstream" "$T/main.log" "h.get('accept-encoding') == 'identity'"
expect_rec "Connection-listed (hop-by-hop) header stripped" "$T/main.log" "'x-hop' not in h"
no_token "the client's token never reached the upstream" "$T/main.log"
no_secret "response to the tool carries no value" "$OUT/echo1.h" "$OUT/echo1.b"
expect "echoed value redacted in the body" "[REDACTED]" "$(cat "$OUT/echo1.b")"
expect "redacted body is still complete JSON" yes "$("$PYBIN" "$T/check.py" "$T" json "$OUT/echo1.b")"

pc $U1 echo2 -H "Proxy-Authorization: Bearer ${K[up]}" "$PROXY/up/echo"
status "token in Proxy-Authorization (reverse form)" 200 echo2
expect_rec "Proxy-Authorization not forwarded; value injected" "$T/main.log" "'proxy-authorization' not in h and h.get('authorization') == 'Bearer ' + v['up']"

pc $U1 hdr -H "x-api-key: ${K[hdr]}" "$PROXY/hdr/echo"
status "x-api-key template, token given in x-api-key" 200 hdr
expect_rec "upstream got x-api-key: <value> and no Authorization" "$T/main.log" "h.get('x-api-key') == v['hdr'] and 'authorization' not in h"
no_token "x-api-key: the token (sent in x-api-key) did not reach the upstream" "$T/main.log"
no_secret "x-api-key: no value in the response" "$OUT/hdr.h" "$OUT/hdr.b"

pc $U1 q -H "$(auth q)" "$PROXY/q/echo?x=1"
status "query template" 200 q
expect_rec "upstream query has api_key=<value> and the client's x=1" "$T/main.log" "q.get('api_key') == [v['q']] and q.get('x') == ['1'] and 'authorization' not in h"

pc $U1 basic -H "$(auth basic)" "$PROXY/basic/echo"
status "basic template" 200 basic
expect_rec "upstream Authorization is Basic base64(alice:value)" "$T/main.log" "h.get('authorization') == 'Basic ' + b64('alice:' + v['basic'])"

pc $U1 plain -H "$(auth plain)" "$PROXY/plain/echo"
status "explicit http:// host: cleartext allowed" 200 plain
expect_rec "plain upstream got the value" "$T/plain.log" "h.get('authorization') == 'Bearer ' + v['plain']"

pc $U1 multi -H "$(auth multi)" -H "X-Credbroker-Host: 127.0.0.1:$P2" "$PROXY/multi/echo"
status "X-Credbroker-Host picks the second sealed host" 200 multi
expect_rec "request went to the second host, X-Credbroker-Host not forwarded" "$T/second.log" "h.get('authorization') == 'Bearer ' + v['multi'] and 'x-credbroker-host' not in h"

pc $U1 pinned -H "$(auth pinned)" "$PROXY/pinned/echo"
status "--pin matching the upstream key" 200 pinned

echo "# bodies"
head -c 1048576 /dev/urandom >"$OUT/big"
chmod 0644 "$OUT/big"
SHA=$(sha256sum "$OUT/big" | cut -d' ' -f1)
pc $U1 big -H "$(auth up)" -H 'Content-Type: application/octet-stream' --data-binary @"$OUT/big" "$PROXY/up/echo"
status "POST 1 MiB" 200 big
expect_rec "1 MiB body arrived intact (length + sha256)" "$T/main.log" "r['method'] == 'POST' and r['body_length'] == 1048576 and r['body_sha256'] == '$SHA'"
# 48 MiB, chunked (no Content-Length): streamed, so the daemon's peak
# memory stays far below the body's size.
head -c $((48 << 20)) /dev/urandom >"$OUT/huge"
chmod 0644 "$OUT/huge"
HSHA=$(sha256sum "$OUT/huge" | cut -d' ' -f1)
pc $U1 huge -H "$(auth up)" -H 'Transfer-Encoding: chunked' --data-binary @"$OUT/huge" "$PROXY/up/echo"
status "POST 48 MiB chunked" 200 huge
expect_rec "48 MiB chunked body arrived intact" "$T/main.log" "r['method'] == 'POST' and r['body_length'] == $((48 << 20)) and r['body_sha256'] == '$HSHA'"
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PID/status")
if grep -qa __asan_init "$DAEMON"; then
        echo "note: peak RSS (${hwm:-?} kB) not judged in a sanitizer build: ASan's quarantine keeps freed memory"
elif [ -n "$hwm" ] && [ "$hwm" -lt $((32 << 10)) ]; then
        ok "request bodies stream: daemon peak RSS ${hwm} kB < 32 MiB after a 48 MiB body"
else
        bad "daemon peak RSS ${hwm:-?} kB after a 48 MiB body: buffered?"
fi
rm -f "$OUT/huge"

echo "# hostile upstream answers"
pc $U1 gzip -H "$(auth up)" "$PROXY/up/gzip"
expect "a compressed answer (Content-Encoding despite identity) is refused: it cannot be checked" "502 compressed" \
        "$CODE $(grep -o compressed "$OUT/gzip.b" | head -n 1)"
# curl cannot read that chunked stream: the answer is a 502 when it broke
# off before the broker started answering, else a 200 whose body ends in
# an error — either way promptly (each within 5 s), never a hang.
t0=$(date +%s)
for i in $(seq 20); do
        CODE=$(as $U1 curl -s -m 5 --unix-socket "$TS" -o "$OUT/trailers.b" -w '%{http_code}' -H "$(auth up)" \
                "$PROXY/up/trailers" 2>/dev/null)
        RC=$?
        case "$CODE $RC" in "502 0" | "200 18" | "200 56") ;; *) break ;; esac
done
expect "20 answers with 150 trailers each (one like a status line): each a prompt 502 or a 200 that breaks off" \
        "i=20 ok" "i=$i $(case "$CODE $RC" in "502 0" | "200 18" | "200 56") echo ok ;; *) echo "code $CODE curl exit $RC" ;; esac)"
echo "# (the 20 took $(($(date +%s) - t0)) s)"
kill -0 "$PID" 2>/dev/null && ok "daemon alive after the trailers" || bad "daemon died on trailers"
n=0
for p in '/echo/..;/admin' '/echo/..%3B/admin' '/echo/%252e%252e/admin' '/echo/%c0%ae%c0%ae/admin'; do
        n=$((n + 1))
        refused "path $p (prefix escape)" '4[0-9][0-9]' '*' $U1 esc$n -H "$(auth narrow)" "$PROXY/narrow$p"
done
refused "path /echoX under prefix /echo (a prefix ends at a /)" '403' 'path' $U1 echox -H "$(auth narrow)" "$PROXY/narrow/echoX"
pc $U1 override -H "$(auth narrow)" -H 'X-HTTP-Method-Override: DELETE' -H 'X-Original-URL: /admin' \
        -H 'Range: bytes=0-3' "$PROXY/narrow/echo?_method=DELETE"
status "a GET with method/path override headers" 200 override
expect_rec "override headers, Range and _method were not forwarded" "$T/main.log" \
        "r['path'] == '/echo' and 'x-http-method-override' not in h and 'x-original-url' not in h and 'range' not in h and '_method' not in r['query']"

pc $U1 leak -H "$(auth up)" "$PROXY/up/leak"
status "/leak (upstream echoes the injected header, chunked, value split across writes)" 200 leak
expect_rec "upstream did receive the value it echoes" "$T/main.log" "r['path'] == '/leak' and h.get('authorization') == 'Bearer ' + v['up']"
no_secret "/leak: value nowhere in the response (headers or body)" "$OUT/leak.h" "$OUT/leak.b"
expect "/leak: [REDACTED] in its place" "[REDACTED]" "$(cat "$OUT/leak.b")"

# Every spelling of an echoed value (keys/match.h), each sent one byte per
# chunk: redacted; what is left of a base64 form is only the neighbours'
# characters.
for f in $("$PYBIN" -c "import sys; sys.path.insert(0, '$HERE'); import value_forms; print(*value_forms.NAMES)"); do
        pc $U1 "form-$f" -H "$(auth odd)" "$PROXY/odd/forms?f=$f"
        body=$(cat "$OUT/form-$f.b")
        rest=${body//\[REDACTED\]/}
        if [ "$CODE" = 200 ] && [[ "$body" == *'[REDACTED]'* ]] && [ "${#rest}" -le 12 ]; then
                ok "echoed form $f redacted"
        else
                bad "echoed form $f: $CODE, ${#rest} bytes left unredacted" # not shown: they spell the value
        fi
done

pc $U1 cookie -H "$(auth up)" "$PROXY/up/cookie"
status "/cookie" 200 cookie
grep -qi '^set-cookie:' "$OUT/cookie.h" && bad "Set-Cookie reached the tool" || ok "no Set-Cookie reaches the tool"

pc $U1 redirect -H "$(auth up)" "$PROXY/up/redirect"
status "/redirect returned, not followed" 302 redirect
expect "Location unchanged" "Location: https://other.invalid/stolen" "$(grep -i '^location:' "$OUT/redirect.h" | tr -d '\r' | sed 's/^location:/Location:/I')"
expect "upstream saw exactly one /redirect" 1 "$("$PYBIN" "$T/check.py" "$T" count "$T/main.log" "r['path'] == '/redirect'")"

echo "# streaming"
rm -f "$T/sse.last"
"${AS1[@]}" curl -sS -N -m 15 --unix-socket "$TS" -H "$(auth up)" "$PROXY/up/sse" >"$OUT/sse.b" 2>"$OUT/sse.e" &
SSE=$!
seen=
for _ in $(seq 200); do
        if grep -q '^data: 0' "$OUT/sse.b"; then
                # Order, not timing: the upstream creates sse.last just before
                # writing the last of 5 events (2 s later); a proxy that
                # buffers cannot deliver event 0 before that file exists.
                [ -e "$T/sse.last" ] && seen=late || seen=early
                break
        fi
        kill -0 $SSE 2>/dev/null || break
        sleep 0.05
done
case "$seen" in
early) ok "SSE: first event reached the tool before the upstream sent the last" ;;
late) bad "SSE: first event reached the tool only after the upstream sent the last (buffered)" ;;
*) bad "SSE: no event reached the tool: $(head -c 300 "$OUT/sse.e") $(shown "$OUT/sse.b")" ;;
esac
wait $SSE
expect "SSE: all 5 events delivered" "data: 4" "$(cat "$OUT/sse.b")"

"${AS1[@]}" curl -s -m 15 --unix-socket "$TS" -H "$(auth up)" -o "$OUT/slow.b" -w '%{http_code}' "$PROXY/up/slow" >"$OUT/slow.code" 2>/dev/null &
SLOW=$!
sleep 0.5
expect "health answered while a proxied request waits on a slow upstream" '"ok"' "$(curl -s -m 2 --unix-socket "$TS" http://x/v1/health)"
wait $SLOW
expect "the slow request completes" 200 "$(cat "$OUT/slow.code")"

echo "# a large answer to a slow reader: the download pauses, nothing piles up"
hwm0=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PID/status")
"${AS1[@]}" curl -sS -m 60 --limit-rate 4M --unix-socket "$TS" -H "$(auth up)" -o "$OUT/bytes.b" \
        "$PROXY/up/bytes/16777216" 2>"$OUT/bytes.e"
want=$(/usr/bin/python3 -c 'import hashlib, sys
h, n, i = hashlib.sha256(), 16777216, 0
while n > 0:
    b = hashlib.sha256(b"%d" % i).digest()[:n]; h.update(b); n -= len(b); i += 1
print(h.hexdigest())')
expect "16 MiB answer read at 4 MB/s arrived intact (sha256)" "$want" "$(sha256sum "$OUT/bytes.b" | cut -d' ' -f1) $(cat "$OUT/bytes.e")"
hwm1=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PID/status")
if grep -qa __asan_init "$DAEMON"; then
        echo "note: peak RSS growth ($((hwm1 - hwm0)) KiB) not judged in a sanitizer build: ASan's quarantine keeps freed memory"
elif [ $((hwm1 - hwm0)) -lt 8192 ]; then
        ok "daemon peak memory grew by $((hwm1 - hwm0)) KiB for it (< 8 MiB)"
else
        bad "daemon peak memory grew by $((hwm1 - hwm0)) KiB for a 16 MiB answer to a slow reader"
fi

echo "# many at once: 48 proxied requests in parallel, each answered with its own echo"
par=()
for i in $(seq 48); do
        "${AS1[@]}" curl -s -m 30 --unix-socket "$TS" -H "$(auth up)" -o "$OUT/par$i.b" "$PROXY/up/echo/par$i" &
        par+=($!)
done
wait "${par[@]}"
good=0
for i in $(seq 48); do grep -q "\"/echo/par$i\"" "$OUT/par$i.b" 2>/dev/null && good=$((good + 1)); done
expect "48 parallel proxied requests, each got its own answer" "48/48" "$good/48"
expect "health still answered after the burst" '"ok"' "$(curl -s -m 2 --unix-socket "$TS" http://x/v1/health)"

echo "# refusals (before any upstream connection)"
pc $U1 narrow-ok -H "$(auth narrow)" "$PROXY/narrow/echo/sub"
status "narrow: GET under --path-prefix /echo is allowed" 200 narrow-ok
refused "path outside --path-prefix" '4[0-9][0-9]' path $U1 narrow1 -H "$(auth narrow)" "$PROXY/narrow/admin"
refused "dot segments out of --path-prefix" '4[0-9][0-9]' '' $U1 narrow2 --path-as-is -H "$(auth narrow)" "$PROXY/narrow/echo/../admin"
refused "encoded dot segments out of --path-prefix" '4[0-9][0-9]' '' $U1 narrow3 --path-as-is -H "$(auth narrow)" "$PROXY/narrow/echo/%2e%2e/admin"
refused "method outside --method GET" '4[0-9][0-9]' method $U1 narrow4 -X POST -d x -H "$(auth narrow)" "$PROXY/narrow/echo"
refused "no token" 401 '' $U1 notok "$PROXY/up/echo"
refused "unknown token" 401 '' $U1 badtok -H "Authorization: Bearer cbt_notarealtoken" "$PROXY/up/echo"
RTOK=$(mint "$TS" $U2 up redeem)
[ -n "$RTOK" ] && ok "uid $U2 gets a redeem token" || bad "uid $U2 gets no redeem token"
refused "token without proxy scope (redeem)" '40[13]' proxy $U2 redeemtok -H "Authorization: Bearer $RTOK" "$PROXY/up/echo"
pc $U2 u2mint -X POST -d '{"secret":"up","use":"proxy"}' http://x/v1/token
expect "uid $U2 (no proxy grant) gets no proxy token" 403 "$CODE"
refused "token for another secret" '40[13]' "another secret" $U1 crosstok -H "$(auth other)" "$PROXY/up/echo"
refused "X-Credbroker-Host not sealed for the secret" 403 host $U1 xhost -H "$(auth up)" -H "X-Credbroker-Host: 127.0.0.1:$P2" "$PROXY/up/echo"
refused "X-Credbroker-Host to a foreign name" 403 host $U1 xhost2 -H "$(auth up)" -H "X-Credbroker-Host: other.invalid" "$PROXY/up/echo"
refused "header over 16 KiB" '4[0-9][0-9]' '*' $U1 bighdr -H "$(auth up)" -H "X-Big: $(head -c 17000 /dev/zero | tr '\0' a)" "$PROXY/up/echo"
refused "token for another secret, another uid" '40[13]' '' $U2 nogrant -H "Authorization: Bearer $RTOK" "$PROXY/other/echo"

# Raw bytes curl will not send: python3 as uid $U1 (its own policy client
# and token), one control request, then CR / LF / NUL in a header value and
# CONNECT.  Each prints: case status upstream-log-delta body.
cat >"$T/raw.py" <<'PY'
import json, os, socket, sys
sock, tokfile, log, port = sys.argv[1:5]
def upstream_got():
    try:
        r = json.loads(open(log, 'rb').read().splitlines()[-1])
        return 'upstream got ' + json.dumps({k: w for k, w in r['headers'].items() if k.startswith('x-')})
    except Exception:
        return ''
def loglines():
    try:
        return sum(1 for _ in open(log, 'rb'))
    except OSError:
        return -1
def talk(raw):
    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sock); s.sendall(raw)
    data = b''
    try:
        while b'\r\n\r\n' not in data:
            c = s.recv(65536)
            if not c:
                break
            data += c
        head, _, body = data.partition(b'\r\n\r\n')
        n = 0
        for l in head.split(b'\r\n')[1:]:
            k, _, val = l.partition(b':')
            if k.strip().lower() == b'content-length':
                n = int(val)
        while len(body) < n:
            c = s.recv(65536)
            if not c:
                break
            body += c
    except socket.timeout:
        return ('timeout' if not data else data.split(b' ')[1].decode()), data
    except ConnectionError:
        pass
    finally:
        s.close()
    if not data:
        return 'closed', b''
    parts = data.split(b' ', 2)
    return (parts[1].decode() if len(parts) > 1 else 'garbage'), data.partition(b'\r\n\r\n')[2]
b = json.dumps({'secret': 'up', 'use': 'proxy'}).encode()
st, body = talk(b'POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' % len(b) + b)
try:
    tok = json.loads(body)['token'].encode()
    with open(tokfile, 'a') as f:
        f.write(tok.decode() + '\n')
except Exception:
    tok = b''
    print('mint', st, 0, body[:200].decode('utf-8', 'replace').replace('\n', ' '))
cases = [('control', b'X-Test: fine\r\n'), ('lf', b'X-Test: a\nX-Injected: 1\r\n'),
         ('cr', b'X-Test: a\rX-Injected: 1\r\n'), ('nul', b'X-Test: a\x00b\r\n')]
for name, hdr in cases:
    before = loglines()
    st, body = talk(b'GET /v1/proxy/up/echo?case=' + name.encode() + b' HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ' +
                    tok + b'\r\n' + hdr + b'Connection: close\r\n\r\n')
    delta = loglines() - before
    print(name, st, delta, upstream_got() if delta and name != 'control' else body[:200].decode('utf-8', 'replace').replace('\n', ' '))
before = loglines()
st, body = talk(b'CONNECT 127.0.0.1:%s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nProxy-Authorization: Bearer %s\r\n\r\n' %
                (port.encode(), port.encode(), tok))
print('connect', st, loglines() - before, body[:200].decode('utf-8', 'replace').replace('\n', ' '))
PY
chmod 0644 "$T/raw.py"
as $U1 "$PYBIN" "$T/raw.py" "$TS" "$T/pat.tokens" "$T/main.log" "$P1" >"$OUT/raw.out" 2>&1
while read -r c st delta rest; do
        case "$c" in
        mint) bad "python client could not mint a token: $st $rest" ;;
        control) [ "$st" = 200 ] && [ "$delta" = 1 ] && ok "raw client: well-formed request proxied (control)" ||
                        bad "raw client control: status $st, upstream requests $delta: $rest" ;;
        cr)
                if { [ "$st" = 400 ] || [ "$st" = closed ]; } && [ "$delta" = 0 ]; then
                        ok "$c inside a header value refused ($st, no upstream request)"
                else
                        bad "$c inside a header value: status $st, upstream requests $delta (wanted 400 or closed, 0): $rest"
                fi ;;
        lf | nul)
                # libmicrohttpd 0.9.75 normalises these before the broker sees
                # them: a bare LF ends the header line (RFC 9112 2.2 lets a
                # recipient treat it so), a NUL ends the value (the rest is
                # dropped).  What must hold: refused, or no value reaching the
                # upstream holds LF/NUL or what followed it ("x-test" is "a").
                if { [ "$st" = 400 ] || [ "$st" = closed ]; } && [ "$delta" = 0 ]; then
                        ok "$c inside a header value refused ($st, no upstream request)"
                elif [ "$st" = 200 ] && [ "$delta" = 1 ] && [[ "$rest" == *'"x-test": "a"'* ]] && [[ "$rest" != *'\u0000'* ]]; then
                        ok "$c inside a header value never reaches the upstream inside a value (split/cut by the HTTP parser)"
                else
                        bad "$c inside a header value: status $st, upstream requests $delta: $rest"
                fi ;;
        connect) if [ "$st" = 405 ] && [ "$delta" = 0 ] && [[ "$rest" == *CONNECT* ]]; then ok "CONNECT refused (405)"
                else bad "CONNECT: status $st, upstream requests $delta (wanted 405 naming CONNECT, 0): $rest"; fi ;;
        *) bad "raw client: $c $st $delta $rest" ;;
        esac
done <"$OUT/raw.out"
grep -q '^connect ' "$OUT/raw.out" || bad "raw client did not finish: $(head -c 300 "$OUT/raw.out")"

echo "# upstream TLS and reachability"
for c in "wrongca:wrong CA:$T/wrong.log" "mismatch:certificate for other.test only:$T/mism.log" \
        "badpin:--pin not matching the upstream key:$T/main.log"; do
        IFS=: read -r s what log <<<"$c"
        before=$(lines "$log")
        pc $U1 "$s" -H "$(auth "$s")" "$PROXY/$s/echo"
        body=$(cat "$OUT/$s.b" 2>/dev/null)
        if [ "$CODE" != 502 ]; then bad "$what: status $CODE, wanted 502: $(shown "$OUT/$s.b")"
        elif [ "$(lines "$log")" != "$before" ]; then bad "$what: 502 but the upstream received the request"
        elif [[ "${body,,}" != *certificate* && "$body" != *TLS* && "${body,,}" != *pin* ]]; then
                bad "$what: 502 without 'certificate'/'TLS' in the message: $(shown "$OUT/$s.b")"
        else ok "$what: 502, no HTTP request reached the upstream"; fi
done
pc $U1 down -H "$(auth down)" "$PROXY/down/echo"
expect "upstream down: 502" 502 "$CODE"
expect "daemon still serves /v1/health" '"ok"' "$(curl -s -m 5 --unix-socket "$TS" http://x/v1/health)"

echo "# forward form (absolute-form target)"
pc $U1 fwd --request-target "http://127.0.0.1:$P1/echo?f=1" -H "Proxy-Authorization: Bearer ${K[up]}" \
        -H "Host: 127.0.0.1:$P1" "http://127.0.0.1:$P1/echo?f=1"
status "forward GET with Proxy-Authorization (sent upstream over HTTPS)" 200 fwd
expect_rec "forward: upstream got the value, not Proxy-Authorization" "$T/main.log" "r['path'] == '/echo' and r['query'] == 'f=1' and h.get('authorization') == 'Bearer ' + v['up'] and 'proxy-authorization' not in h"
no_secret "forward: no value in the output" "$OUT/fwd.h" "$OUT/fwd.b"
refused "forward: Host disagreeing with the target" 400 host $U1 fwdhost --request-target "http://127.0.0.1:$P1/echo" \
        -H "Proxy-Authorization: Bearer ${K[up]}" -H "Host: evil.example" "http://127.0.0.1:$P1/echo"
refused "forward: target host not sealed for the token's secret" 403 host $U1 fwdother --request-target "http://127.0.0.1:$P2/echo" \
        -H "Proxy-Authorization: Bearer ${K[up]}" -H "Host: 127.0.0.1:$P2" "http://127.0.0.1:$P2/echo"
pc $U1 fwdplain --request-target "http://127.0.0.1:$PP/echo" -H "Proxy-Authorization: Bearer ${K[plain]}" \
        -H "Host: 127.0.0.1:$PP" "http://127.0.0.1:$PP/echo"
status "forward to an explicit http:// host" 200 fwdplain

echo "# a sealed name resolving to loopback (second daemon, private /etc/hosts)"
printf '127.0.0.1 localhost\n127.0.0.1 upstream.test\n' >"$T/hosts"
cp -a "$T/state" "$T/state2"
unshare -m sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' sh "$T/hosts" \
        "$DAEMON" --state-dir "$T/state2" --run-dir "$T/run2" --policy "$T/policy.json" --unlock "keyfile:$T/key" \
        --audit-log "$T/audit2.log" >"$T/daemon2.out" 2>&1 &
PID2=$!
for _ in $(seq 50); do [ -S "$T/run2/tools.sock" ] && break; sleep 0.1; done
if [ -S "$T/run2/tools.sock" ]; then
        NTOK=$(mint "$T/run2/tools.sock" $U1 named proxy)
        before=$(lines "${ULOGS[@]}")
        CODE=$(as $U1 curl -s -m 15 --unix-socket "$T/run2/tools.sock" -H "Authorization: Bearer $NTOK" \
                -o "$OUT/named.b" -w '%{http_code}' "$PROXY/named/echo")
        body=$(cat "$OUT/named.b" 2>/dev/null)
        if [ "$CODE" != 403 ]; then bad "name resolving to 127.0.0.1: status $CODE, wanted 403: $(shown "$OUT/named.b")"
        elif [ "$(lines "${ULOGS[@]}")" != "$before" ]; then bad "name resolving to 127.0.0.1: 403 but the upstream received it"
        elif [[ "${body,,}" != *loopback* && "${body,,}" != *private* ]]; then bad "name resolving to 127.0.0.1: 403 without 'loopback'/'private': $(shown "$OUT/named.b")"
        else ok "name resolving to 127.0.0.1 refused (403, no upstream request)"; fi
        kill "$PID2"; wait "$PID2" 2>/dev/null; PID2=
else
        bad "second daemon did not start: $(head -c 300 "$T/daemon2.out")"
fi

echo "# loopback TCP listener (--listen-tcp): callers known by uid (sock_diag), uid-bound tokens only"
TCPP=$(sed -n 's/.* and tcp 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$T/daemon.out" | head -n 1)
UTOK=$(as $U1 curl -s -m 10 --unix-socket "$TS" -X POST -d '{"secret":"up","use":"proxy","bind":"uid"}' \
        http://x/v1/token | field token)
[ -n "$UTOK" ] && printf '%s\n' "$UTOK" >>"$T/pat.tokens"
tc() { # tc UID NAME CURL_ARGS...: like pc, over TCP
        local u=$1 n=$2; shift 2
        CODE=$(as "$u" curl -sS -m 15 -D "$OUT/$n.h" -o "$OUT/$n.b" -w '%{http_code}' "$@" 2>"$OUT/$n.e")
        RC=$?
}
if [ -n "$TCPP" ] && [ -n "$UTOK" ]; then
        tc $U1 tcprev -H "Authorization: Bearer $UTOK" "http://127.0.0.1:$TCPP/v1/proxy/up/echo"
        status "uid-bound token, reverse form over TCP" 200 tcprev
        expect "over TCP the upstream got the credential, the tool only [REDACTED]" '"authorization": "Bearer [REDACTED]"' \
                "$(cat "$OUT/tcprev.b")"
        tc $U1 tcpfwd -x "http://127.0.0.1:$TCPP" -H "Proxy-Authorization: Bearer $UTOK" "http://127.0.0.1:$P1/echo"
        status "HTTP_PROXY-style client over TCP (curl -x), sent on over HTTPS" 200 tcpfwd
        before=$(lines "${ULOGS[@]}")
        tc $U1 tcpexe -H "$(auth up)" "http://127.0.0.1:$TCPP/v1/proxy/up/echo"
        expect "an executable-bound token over TCP: 401 naming --bind uid" "401 bind" "$CODE $(grep -o bind "$OUT/tcpexe.b" | head -n 1)"
        tc $U2 tcpuid2 -H "Authorization: Bearer $UTOK" "http://127.0.0.1:$TCPP/v1/proxy/up/echo"
        expect "another uid presenting a uid-bound token over TCP: 401" 401 "$CODE"
        tc $U1 tcptoken -X POST -d '{"secret":"up"}' "http://127.0.0.1:$TCPP/v1/token"
        expect "over TCP only the proxy and health: /v1/token is 404" 404 "$CODE"
        [ "$(lines "${ULOGS[@]}")" = "$before" ] && ok "refused TCP requests reached no upstream" ||
                bad "a refused TCP request reached an upstream"
        grep -F '"socket":"tcp"' "$T/audit.log" | grep -qF "\"uid\":$U1" && ok "TCP requests audited with the peer's uid" ||
                bad "no audit record with socket tcp and uid $U1"
else
        bad "no TCP listener port in the daemon's output or no uid-bound token: $(head -c 300 "$T/daemon.out")"
fi
if timeout 10 "$DAEMON" --state-dir "$T/state" --run-dir "$T/run3" --policy "$T/policy.json" \
        --unlock "keyfile:$T/key" --listen-tcp 0.0.0.0:0 >"$OUT/anyaddr.out" 2>&1; then
        bad "--listen-tcp 0.0.0.0 was accepted"
else
        expect "--listen-tcp on a non-loopback address refused at start" loopback "$(cat "$OUT/anyaddr.out")"
fi

echo "# audit"
PROBE="audit-probe-$(hex 6)"
pc $U1 audit -X PUT -d '{"x":1}' -H "$(auth up)" "$PROXY/up/echo/$PROBE"
status "audited request" 200 audit
expect "one audit record for the proxied request (method, host, path, status)" yes \
        "$("$PYBIN" "$T/check.py" "$T" audit "$T/audit.log" "$PROBE" 127.0.0.1 "$P1")"
grep -F 'narrow' "$T/audit.log" 2>/dev/null | grep -F '/admin' | grep -qE '"status": ?4[0-9][0-9]' &&
        ok "the refused /admin request is audited" || bad "no audit record for the refused /admin request"
no_secret "no value or token in the audit log ($(lines "$T/audit.log") records)" "$T/audit.log"
no_secret "no value or token in daemon output" "$T/daemon.out" "$T/daemon2.out"
no_token "no token reached any upstream" "${ULOGS[@]}"
cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' '\n' | grep -qF -f "$T/pat.values" && bad "a value in some argv" || ok "no value in any process's argv"

# The values passed through libcurl and OpenSSL (request heads, TLS
# records, echoed answers) above; none may linger in the daemon's memory
# once those requests are over (broker/base/wipe_alloc.c).  Read through
# /proc/PID/mem as root; "where" shows the region, never the value.
cat >"$T/memscan.py" <<'PY'
import os, re, sys
pid, T = int(sys.argv[1]), sys.argv[2]
vals = [open(os.path.join(T, 'val', n), 'rb').read() for n in sorted(os.listdir(os.path.join(T, 'val')))]
pat = re.compile(b'|'.join(re.escape(v) for v in vals))
hits = []
with open('/proc/%d/maps' % pid) as maps, open('/proc/%d/mem' % pid, 'rb', 0) as mem:
    for line in maps:
        f = line.split()
        lo, hi = (int(x, 16) for x in f[0].split('-'))
        if not f[1].startswith('r') or (len(f) > 5 and f[5] in ('[vvar]', '[vsyscall]')):
            continue
        try:
            mem.seek(lo)
            data = mem.read(hi - lo)
        except OSError:
            continue
        hits += ['%s %s +0x%x' % (f[5] if len(f) > 5 else 'anon', f[1], m.start()) for m in pat.finditer(data)]
print(len(hits), '; '.join(hits[:8]))
PY
if grep -qa __asan_init "$DAEMON"; then
        echo "note: the daemon's memory is not scanned for values in a sanitizer build: ASan's terabytes of shadow mappings cannot be read through /proc/PID/mem"
else
        # The proxy keeps a value's redaction matcher (its encoded forms,
        # in sodium_malloc memory) while the value is being proxied: wiped
        # by the once-a-second sweep 2 s after its last use
        # (broker/proxy/red_cache.h, RED_CACHE_IDLE).
        sleep 4
        memhits=$("$PYBIN" "$T/memscan.py" "$PID" "$T" 2>&1)
        expect "no value lingers in the daemon's memory after the proxied requests" "0 " "$memhits"
fi
kill -0 "$PID" 2>/dev/null && ok "daemon alive" || bad "daemon died: $(tail -n 3 "$T/daemon.out")"
# SIGTERM with proxied requests in flight (one parked waiting for the
# upstream's answer, one streaming): a clean exit all the same.
as $U1 curl -s -m 20 --unix-socket "$TS" -H "$(auth up)" "$PROXY/up/slow" >/dev/null 2>&1 &
inflight1=$!
as $U1 curl -sN -m 20 --unix-socket "$TS" -H "$(auth up)" "$PROXY/up/sse" >/dev/null 2>&1 &
inflight2=$!
sleep 0.7
kill -TERM "$PID"; wait "$PID"; rc=$?; PID=
wait "$inflight1" "$inflight2" 2>/dev/null
[ "$rc" = 0 ] && ok "clean exit on SIGTERM" || bad "exit status $rc on SIGTERM"
echo "$fails failed"
[ "$fails" = 0 ]
