# SPDX-License-Identifier: Apache-2.0
"""The adversarial suite's harness: attackers under real uids (agent.py),
the upstreams' logs (what each parsed, the raw bytes each received), and
the one check every case ends with.

Output never holds a secret value or a token: both are replaced by
<value of NAME> / <token of NAME> before anything is printed.
"""
import base64, binascii, json, os, re, socket, subprocess, sys, threading, urllib.parse

PY = '/usr/bin/python3'
UPSTREAMS = ('nginx', 'node', 'python', 'php', 'evil')
# Routing headers that must never reach an upstream (names compared after
# case-folding and '_' -> '-').
ROUTING = ('forwarded', 'x-forwarded-', 'x-original-', 'x-rewrite-url', 'x-envoy-', 'x-real-ip')


class Agent:
    """One attacker process under a uid; requests go to it as JSON lines."""

    def __init__(self, conf, uid):
        self.p = subprocess.Popen(['setpriv', '--reuid', str(uid), '--regid', str(uid), '--clear-groups', PY,
                                   conf['agent'], conf['tools_sock'], str(conf['tcp_port'])],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lock = threading.Lock()

    def call(self, cmd):
        with self.lock:
            self.p.stdin.write((json.dumps(cmd) + '\n').encode())
            self.p.stdin.flush()
            return json.loads(self.p.stdout.readline() or b'{"error": "agent died"}')

    def xchg(self, pieces, **kw):
        if isinstance(pieces, bytes):
            pieces = [pieces]
        r = self.call(dict(op='xchg', send=[base64.b64encode(p).decode() for p in pieces], **kw))
        r['raw'] = base64.b64decode(r.get('raw', ''))
        r['bodies'] = [base64.b64decode(b) for b in r.get('bodies', [])]
        return r

    def close(self):
        self.p.stdin.close()
        self.p.wait(5)


class Logs:
    """Offsets into every upstream's logs; what came after a mark."""

    def __init__(self, d):
        self.d = d

    def path(self, up, kind):
        return os.path.join(self.d, '%s.%s.jsonl' % (up, kind))

    def mark(self):
        m = {}
        for up in UPSTREAMS:
            for kind in ('parsed', 'raw'):
                try:
                    m[up, kind] = os.path.getsize(self.path(up, kind))
                except OSError:
                    m[up, kind] = 0
        return m

    def since(self, m):
        """{up: (parsed records, {conn: raw bytes up}, {conn: raw bytes down})}"""
        out = {}
        for up in UPSTREAMS:
            recs, up_b, down_b = [], {}, {}
            for kind in ('parsed', 'raw'):
                try:
                    with open(self.path(up, kind), 'rb') as f:
                        f.seek(m[up, kind])
                        data = f.read()
                except OSError:
                    data = b''
                for line in data.splitlines():
                    try:
                        r = json.loads(line)
                    except ValueError:
                        continue
                    if kind == 'parsed':
                        if isinstance(r.get('raw'), str):  # node: what its parser choked on (masked when shown)
                            r['raw'] = base64.b64decode(r['raw']).decode('latin-1')
                        recs.append(r)
                    elif r.get('d') in ('up', 'down'):
                        tgt = up_b if r['d'] == 'up' else down_b
                        tgt[r['c']] = tgt.get(r['c'], b'') + base64.b64decode(r['b'])
            out[up] = (recs, up_b, down_b)
        return out


def value_forms(v):
    """Encoded forms of a value (bytes) that upstream-evil.py echoes: the
    cases look for them in what reached the tool, and output masks them."""
    s = v.decode('latin-1')
    return {
        'pct-lower': ''.join(c if c.isalnum() or c in '-._~' else '%%%02x' % ord(c) for c in s).encode(),
        'pct-quote': urllib.parse.quote(s).encode(),
        'pct-plus': urllib.parse.quote_plus(s).encode(),
        'pct-upper': urllib.parse.quote(s, safe='-._~').encode(),
        'hex': binascii.hexlify(v), 'HEX': binascii.hexlify(v).upper(),
        'json-u': ''.join('\\u%04x' % ord(c) for c in s).encode(),
        'b64-0': base64.b64encode(v)[:-4], 'b64-1': base64.b64encode(b'x' + v)[4:-4],
        'b64-2': base64.b64encode(b'xx' + v)[4:-4], 'b64url': base64.urlsafe_b64encode(v)[:-4],
        # a case change, one step of HTML or backslash escaping (computed here,
        # independently of upstream-evil.py)
        'upper': v.upper(), 'lower': v.lower(), 'hdr-upper': v.upper(),
        'hex-mixed': re.sub(rb'([a-f])([0-9]*)([a-f])', lambda m: m.group(1) + m.group(2) + m.group(3).upper(),
                            binascii.hexlify(v)),
        'html-dec': ''.join('&#%d;' % ord(c) for c in s).encode(),
        'html-hex': ''.join('&#x%x;' % ord(c) for c in s).encode(),
        'html-nosemi': ''.join('&#%d' % ord(c) for c in s).encode(),
        'html-mixed': ''.join(('&#%d;', '&#x%x;', '&#X%X;')[i % 3] % ord(c) for i, c in enumerate(s)).encode(),
        'c-hex': ''.join('\\x%02x' % ord(c) for c in s).encode(),
        'c-oct': ''.join('\\%03o' % ord(c) for c in s).encode(),
        'js-brace': ''.join('\\u{%X}' % ord(c) for c in s).encode(),
    }


HEAD_RE = re.compile(rb'(?m)^[A-Z]+ [^ \r\n]+ HTTP/1\.[01]\r\n(?:[^\r\n]*\r\n)*?\r\n')


def head_problems(raw):
    """What is wrong with the request heads the broker wrote (the raw stream an
    upstream received), judged on the bytes, not by any one parser: framing
    (both lengths, two lengths, a coding but chunked), obs-fold, names a
    gateway would map onto framing headers, whitespace before a colon."""
    out = []
    for m in HEAD_RE.finditer(raw):
        lines = m.group(0).split(b'\r\n')[1:-2]
        names = []
        for l in lines:
            if l[:1] in (b' ', b'\t'):
                out.append('obs-fold line %r' % l[:60])
                continue
            name, colon, val = l.partition(b':')
            if not colon or name != name.strip() or not name:
                out.append('bad header line %r' % l[:60])
                continue
            n = name.lower().replace(b'_', b'-')
            if b'_' in name and n in (b'transfer-encoding', b'content-length', b'host'):
                out.append('header %r (a gateway reads it as %s)' % (name, n.decode()))
                continue
            names.append((n, val.strip()))
        cl = [v for n, v in names if n == b'content-length']
        te = [v for n, v in names if n == b'transfer-encoding']
        if cl and te:
            out.append('Content-Length and Transfer-Encoding together')
        if len(cl) > 1 or len(te) > 1:
            out.append('%d Content-Length, %d Transfer-Encoding headers' % (len(cl), len(te)))
        if te and te[0].lower() != b'chunked':
            out.append('Transfer-Encoding %r' % te[0])
        if cl and not cl[0].isdigit():
            out.append('Content-Length %r' % cl[0])
    return out


HEAD_AT_RE = re.compile(rb'[A-Z]+ [^ \r\n]+ HTTP/1\.[01]\r\n(?:[^\r\n]*\r\n)*?\r\n')


def heads(raw):
    """The request heads (request line and header fields) in a raw stream,
    found as an upstream finds them: one head, then its body skipped by the
    framing the head states (Content-Length, or chunked), then the next.  A
    body's bytes are never taken for a head (a body may hold text shaped like
    a request, with a token in it: the tool's own data).  Bytes that do not
    start a head where one is due end the walk; what is left, if anything,
    is judged by head_problems and the upstreams' own parsers."""
    out, pos = [], 0
    while pos < len(raw):
        m = HEAD_AT_RE.match(raw, pos)
        if not m:
            break
        out.append(m.group(0))
        pos = m.end()
        fields = [l.split(b':', 1) for l in m.group(0).split(b'\r\n')[1:-2] if b':' in l]
        fields = {k.strip().lower(): v.strip() for k, v in fields}
        if fields.get(b'transfer-encoding', b'').lower() == b'chunked':
            while pos < len(raw):
                eol = raw.find(b'\r\n', pos)
                if eol < 0:
                    return b''.join(out)
                try:
                    size = int(raw[pos:eol].split(b';', 1)[0], 16)
                except ValueError:
                    return b''.join(out)
                pos = eol + 2
                if size == 0:
                    end = raw.find(b'\r\n\r\n', pos - 2)  # trailers, then the blank line
                    pos = len(raw) if end < 0 else end + 4
                    break
                pos += size + 2
        elif fields.get(b'content-length', b'').isdigit():
            pos += int(fields[b'content-length'])
    return b''.join(out)


def hdr_list(rec):
    """A parsed record's headers as [(lower-case name, value)]."""
    if 'headers' in rec:
        return [(k.lower(), v) for k, v in rec['headers']]
    if rec.get('up') == 'php':
        return [(k[5:].lower().replace('_', '-'), v) for k, v in rec.get('http', {}).items()]
    if rec.get('up') == 'nginx':
        return [(k, rec[f]) for k, f in (('authorization', 'auth'), ('forwarded', 'fwd'),
                                         ('x-forwarded-for', 'xff'), ('cookie', 'cookie')) if rec.get(f)]
    return []


def parse_error(rec):
    """Did this upstream's parser refuse what it got?"""
    if rec.get('error') is not None:
        return True
    return rec.get('up') == 'nginx' and rec.get('status') == 400


class Harness:
    def __init__(self, conf):
        self.conf = conf
        self.d = conf['dir']
        self.logs = Logs(self.d)
        self.vals = {}
        for n in os.listdir(os.path.join(self.d, 'val')):
            self.vals[n] = open(os.path.join(self.d, 'val', n), 'rb').read()
        self.agents = {who: Agent(conf, uid) for who, uid in conf['uids'].items()}
        self.tok = {}
        self.fails = 0
        self.results = []
        self.findings = open(os.path.join(self.d, 'findings.txt'), 'w')

    def wanted(self, name):
        """$CB_ADV_ONLY / $CB_ADV_SKIP: regular expressions over case names."""
        only, skip = os.environ.get('CB_ADV_ONLY'), os.environ.get('CB_ADV_SKIP')
        return (not only or re.search(only, name)) and not (skip and re.search(skip, name))

    def finish(self):
        """Print the details of every failure; the exit status."""
        if self.fails:
            print('# details (values and tokens masked):')
            sys.stdout.write(open(os.path.join(self.d, 'findings.txt')).read())
        return 1 if self.fails else 0

    def mint(self, who, secret):
        r = self.agents[who].call({'op': 'mint', 'secret': secret})
        if not r.get('token'):
            raise SystemExit('FAIL %s could not mint a token for %s: %s' % (who, secret, r.get('error')))
        self.tok[secret] = r['token'].encode()
        return self.tok[secret]

    def mask(self, b):
        if isinstance(b, str):
            b = b.encode('latin-1', 'replace')
        for n, v in self.vals.items():
            b = b.replace(v, b'<value of ' + n.encode() + b'>')
            for fname, f in value_forms(v).items():   # what a hostile upstream echoes
                b = b.replace(f, b'<value of ' + n.encode() + b' as ' + fname.encode() + b'>')
        for n, t in self.tok.items():
            b = b.replace(t, b'<token of ' + n.encode() + b'>').replace(t[4:], b'<token body of ' + n.encode() + b'>')
        return b

    def show(self, b, n=600):
        s = repr(self.mask(b))
        return s if len(s) <= n else s[:n] + '...(%d bytes)' % len(b)

    def drop_pool(self):
        """Close every upstream connection (the recorder's), so a case never
        inherits the last one's pooled connections."""
        with socket.create_connection(('127.0.0.1', self.conf['tee_ctl']), timeout=10) as s:
            s.recv(64)                       # "dropped": every relay connection is shut

    def daemon_alive(self):
        try:
            os.kill(self.conf['daemon_pid'], 0)
            return True
        except OSError:
            return False

    def cred(self, secret):
        return b'Bearer ' + self.vals[secret]

    def check_record(self, rec, secret):
        """Problems with one upstream request made with secret's credential."""
        errs = []
        hs = hdr_list(rec)
        auths = [v for k, v in hs if k == 'authorization']
        if len(auths) != 1 or auths[0].encode('latin-1', 'replace') != self.cred(secret):
            errs.append('credential: %d Authorization header(s), wanted exactly one with %s' % (len(auths), secret))
        for k, v in hs:
            n = k.replace('_', '-')
            if any(n.startswith(p) for p in ROUTING):
                errs.append('routing header %s reached it' % k)
            if b'cbt_' in v.encode('latin-1', 'replace'):
                errs.append('a token in header %s' % k)
        if 'cbt_' in rec.get('target', ''):
            errs.append('a token in the target')
        return errs

    def report(self, name, ok, why, sent=None, got=None, seen=None):
        self.results.append((name, ok))
        if ok:
            print('ok   ' + name, flush=True)
            return
        self.fails += 1
        print('FAIL %s: %s' % (name, why), flush=True)
        f = self.findings
        f.write('### %s\n- why: %s\n' % (name, why))
        if sent is not None:
            f.write('- sent: %s\n' % self.show(b''.join(sent) if isinstance(sent, list) else sent, 3000))
        if got is not None:
            f.write('- tool got: statuses %s eof %s raw %s\n' % (got.get('statuses'), got.get('eof'),
                                                                 self.show(got.get('raw', b''), 800)))
        for up, (recs, up_b, _down) in (seen or {}).items():
            if not recs and not up_b:
                continue
            f.write('- %s parsed: %s\n' % (up, self.show(json.dumps(recs).encode(), 2500)))
            for c, b in up_b.items():
                f.write('- %s raw bytes received on connection %s: %s\n' % (up, c, self.show(b, 2500)))
        f.write('\n')
        f.flush()
        if not self.daemon_alive():
            print('FAIL the daemon died during "%s": the cases after it were not run' % name, flush=True)
            sys.exit(self.finish())
