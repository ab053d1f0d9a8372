#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Leak scanner benchmark: 1,000 live synthetic secrets put into a real
# daemon, CORPUS_MB (default 100) MB of text with some hits; the time of
#   grep     LC_ALL=C grep -F -c -f PATTERNS CORPUS, PATTERNS holding the
#            same raw and encoded forms the scanner uses (computed here, in
#            Python, from the values this script generated: the broker has no
#            API that outputs values or patterns)
#   scan     credbroker scan --admin CORPUS       (one streamed request)
#   redact   credbroker redact --admin <CORPUS >/dev/null  (1 MiB rounds)
# each RUNS (default 3) times, interleaved; the median counts.
#
#   bash tests/bench/scan.sh          CORPUS_MB=20 RUNS=5 bash tests/bench/scan.sh
#
# SHAPES=mixed (default): a quarter each of sk-/ghp_-style keys, base64-ish
# strings with + / =, and passwords with " \ / : % & ? (so the url and json
# forms differ from the raw one).  SHAPES=alnum: sk-/ghp_ keys only (fewer,
# simpler patterns: grep -F is several times faster on those).
#
# Self-contained: builds credbrokerd and credbroker into build-bench/
# (release), works in a private temp dir removed on exit, starts and stops
# its own daemon, bounds every step with timeout(1).  Prints figures, never
# pass/fail; the last lines are:
#   BENCH grep_mb_per_s / scan_mb_per_s / redact_mb_per_s   throughput
#   BENCH scan_throughput_vs_grep <ratio>                   scan / grep
#   BENCH redact_throughput_vs_grep <ratio>                 redact / grep
# The tokens (cbt_) the scanner also looks for are not in PATTERNS: grep
# cannot check their CRC; the scanner does that work on top.
set -euo pipefail

MB=${CORPUS_MB:-100}
SHAPES=${SHAPES:-mixed}
case "$SHAPES" in mixed | alnum) ;; *) echo "scan.sh: SHAPES must be mixed or alnum" >&2; exit 2 ;; esac
RUNS=${RUNS:-3}
NSECRETS=1000
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD="$SRC/build-bench"
DAEMON="$BUILD/broker/credbrokerd"
CLI="$BUILD/client/credbroker"
PY=/usr/bin/python3

case "$MB" in '' | *[!0-9]* | 0) echo "scan.sh: CORPUS_MB must be a positive integer" >&2; exit 2 ;; esac
case "$RUNS" in '' | *[!0-9]* | 0) echo "scan.sh: RUNS must be a positive integer" >&2; exit 2 ;; esac
log() { echo "scan.sh: $*" >&2; }

if [ ! -f "$BUILD/build.ninja" ]; then
        log "configuring $BUILD"
        timeout 300 meson setup "$BUILD" "$SRC" --buildtype=release -Dwerror_ci=true >&2
fi
log "building credbrokerd, credbroker"
timeout 600 ninja -C "$BUILD" broker/credbrokerd client/credbroker >&2

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cb-scan-bench.XXXXXX")
DPID=
cleanup() {
        [ -n "$DPID" ] && kill "$DPID" 2>/dev/null || true
        wait 2>/dev/null || true
        rm -rf -- "$TMP"
}
trap cleanup EXIT
STATE="$TMP/state" KEY="$TMP/keyfile" RUN="$TMP/run" POLICY="$TMP/policy.json"
export CREDBROKER_SOCKET="$RUN/tools.sock" CREDBROKER_ADMIN_SOCKET="$RUN/admin.sock"

timeout 60 "$CLI" init --state-dir "$STATE" --unlock "keyfile:$KEY" >/dev/null
cat >"$POLICY" <<JSON
{ "clients": {}, "grants": [], "admins": {"uids": [0]},
  "secrets": { "s-0001": {"on_leak": "alert"} } }
JSON
chmod 0644 "$POLICY"
"$DAEMON" --state-dir "$STATE" --run-dir "$RUN" --policy "$POLICY" --unlock "keyfile:$KEY" >"$TMP/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do [ -S "$RUN/admin.sock" ] && break; sleep 0.1; done
[ -S "$RUN/admin.sock" ] || { log "daemon did not start:"; cat "$TMP/daemon.log" >&2; exit 1; }

# ---- secrets, patterns, corpus (Python, deterministic) -------------------------
log "putting $NSECRETS secrets, writing PATTERNS and a $MB MB corpus"
timeout 600 "$PY" - "$TMP" "$NSECRETS" "$MB" "$RUN/admin.sock" "$SHAPES" <<'PY'
import base64, json, random, socket, sys
tmp, nsec, mb, sock, shapes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
rnd = random.Random(6)
alnum = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
def value(i):
    kind = i % (2 if shapes == 'alnum' else 4)
    if kind == 0: return 'sk-' + ''.join(rnd.choice(alnum) for _ in range(29))
    if kind == 1: return 'ghp_' + ''.join(rnd.choice(alnum) for _ in range(36))
    if kind == 2: return ''.join(rnd.choice(alnum + '+/=') for _ in range(24 + rnd.randrange(20)))
    return 'p@ss ' + ''.join(rnd.choice(alnum + '"\\/:%&?') for _ in range(14 + rnd.randrange(10)))
values = [value(i).encode() for i in range(nsec)]

def post(path, body):
    s = socket.socket(socket.AF_UNIX); s.connect(sock)
    s.sendall(b'POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' % (path.encode(), len(body)) + body)
    data = b''
    while True:
        c = s.recv(65536)
        if not c: break
        data += c
    s.close()
    if b' 201 ' not in data.split(b'\r\n', 1)[0]:
        sys.exit('put failed: ' + data.decode(errors='replace')[:200])
for i, v in enumerate(values):
    post('/v1/admin/secrets', json.dumps({'name': 's-%04d' % i, 'value': v.decode()}).encode())

# The spellings grep -F can be given: the scanner's literal forms (keys/match_forms.c) and
# the common URL and JSON escapings, which the scanner finds by decoding (keys/match.h)
# whatever the spelling; computed independently.  (Kept as they were, so figures compare.)
B64 = b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
def b64_inner(v, a, url):
    bits = 8 * (a + len(v)); stream = int.from_bytes(b'\0' * a + v, 'big')
    out = []
    i = (8 * a + 5) // 6
    while 6 * i + 6 <= bits:
        c = B64[(stream >> (bits - 6 * i - 6)) & 63]
        if url: c = {ord('+'): ord('-'), ord('/'): ord('_')}.get(c, c)
        out.append(c); i += 1
    return bytes(out)
def url(v, hexd, keep=b'', tilde=False, plus=False):
    def one(c):
        if plus and c == 32: return b'+'
        if (chr(c).isalnum() and c < 128 or c in b'-._~') and not (tilde and c == 126) or c in keep: return bytes([c])
        return ('%%%s%s' % (hexd[c >> 4], hexd[c & 15])).encode()
    return b''.join(one(c) for c in v)
def js(v, upper=False, slash=False, ascii_=False, html=False):
    out = json.dumps(v.decode(), ensure_ascii=ascii_)[1:-1]
    if slash: out = out.replace('/', '\\/')
    if html: out = out.replace('<', '\\u003c').replace('>', '\\u003e').replace('&', '\\u0026')
    return out.encode()
pats = set()
for v in values:
    pats.add(v)
    for a in range(3):
        pats.add(b64_inner(v, a, False)); pats.add(b64_inner(v, a, True))
    U = '0123456789ABCDEF'
    pats.add(url(v, U)); pats.add(url(v, '0123456789abcdef'))
    pats.add(url(v, U, b'/')); pats.add(url(v, U, b"!*()'"))
    pats.add(url(v, U, tilde=True, plus=True)); pats.add(url(v, U, plus=True)); pats.add(url(v, U, b'*', True, True))
    pats.add(v.hex().encode()); pats.add(v.hex().upper().encode())
    pats.add(js(v)); pats.add(js(v, slash=True)); pats.add(js(v, ascii_=True))
    pats.add(js(v, slash=True, ascii_=True)); pats.add(js(v, html=True))
with open(tmp + '/PATTERNS', 'wb') as f:
    f.write(b'\n'.join(sorted(pats)) + b'\n')
print('# %d secrets, %d patterns' % (nsec, len(pats)))

# Corpus: log-, prose- and code-like lines, some base64 blobs, ~200 hits.
words = [''.join(rnd.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(rnd.randint(2, 10))) for _ in range(3000)]
lines = []
for i in range(4000):
    k = i % 4
    if k == 0: l = ' '.join(rnd.choice(words) for _ in range(rnd.randint(5, 15))).capitalize() + '.'
    elif k == 1: l = '2026-11-27T07:%02d:%02dZ INFO request id=%08x user=%s path=/api/v1/%s status=200' % (i % 60, i % 60, rnd.getrandbits(32), rnd.choice(words), rnd.choice(words))
    elif k == 2: l = '    %s = %s(%s, "%s")  # %s' % (rnd.choice(words), rnd.choice(words), rnd.choice(words), rnd.choice(words), rnd.choice(words))
    else: l = base64.b64encode(rnd.randbytes(rnd.randint(20, 60))).decode()
    lines.append(l.encode() + b'\n')
block = b''.join(lines)
total = mb * 1024 * 1024
hits = 200
with open(tmp + '/CORPUS', 'wb') as f:
    written, n = 0, 0
    while written < total:
        chunk = block
        if n < hits:
            v = values[rnd.randrange(nsec)]
            form = n % 3
            ins = v if form == 0 else base64.b64encode(b'user:' + v) if form == 1 else json.dumps(v.decode()).encode()
            chunk = block[:len(block) // 2] + b' token=' + ins + b'\n' + block[len(block) // 2:]
            n += 1
        chunk = chunk[:total - written]
        f.write(chunk); written += len(chunk)
PY

now() { date +%s.%N; }
el() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f\n", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
CORPUS="$TMP/CORPUS"
size=$(stat -c %s "$CORPUS")
: >"$TMP/t.grep"; : >"$TMP/t.scan"; : >"$TMP/t.redact"
cat "$CORPUS" >/dev/null # page cache
for i in $(seq "$RUNS"); do
        log "run $i/$RUNS"
        t0=$(now); c=$(LC_ALL=C timeout 300 grep -F -c -f "$TMP/PATTERNS" "$CORPUS" || true); t1=$(now)
        el "$t0" "$t1" >>"$TMP/t.grep"
        t0=$(now); s=$( (timeout 300 "$CLI" scan --admin "$CORPUS" || true) | wc -l); t1=$(now)
        el "$t0" "$t1" >>"$TMP/t.scan"
        t0=$(now); rc=0; timeout 300 "$CLI" redact --admin <"$CORPUS" >"$TMP/redacted" 2>/dev/null || rc=$?; t1=$(now)
        el "$t0" "$t1" >>"$TMP/t.redact"
        [ "$rc" = 1 ] || { log "redact exited $rc (wanted 1: hits redacted)"; exit 1; }
done
echo "# shapes: $SHAPES; corpus: $size bytes"
echo "# grep matching lines: $c; scan findings: $s; redacted markers: $(grep -o '\[REDACTED:' "$TMP/redacted" | wc -l)"
echo "# times (s) grep: $(tr '\n' ' ' <"$TMP/t.grep")scan: $(tr '\n' ' ' <"$TMP/t.scan")redact: $(tr '\n' ' ' <"$TMP/t.redact")"
g=$(median <"$TMP/t.grep") sc=$(median <"$TMP/t.scan") rd=$(median <"$TMP/t.redact")
mbps() { awk -v s="$size" -v t="$1" 'BEGIN { printf "%.1f\n", s / 1048576 / t }'; }
echo "BENCH grep_mb_per_s $(mbps "$g")"
echo "BENCH scan_mb_per_s $(mbps "$sc")"
echo "BENCH redact_mb_per_s $(mbps "$rd")"
echo "BENCH scan_throughput_vs_grep $(awk -v a="$g" -v b="$sc" 'BEGIN { printf "%.2f\n", a / b }')"
echo "BENCH redact_throughput_vs_grep $(awk -v a="$g" -v b="$rd" 'BEGIN { printf "%.2f\n", a / b }')"
