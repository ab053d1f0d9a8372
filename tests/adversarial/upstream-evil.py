#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A hostile upstream: answers with framing and encodings a proxy must not pass.

    upstream-evil.py LOG    (prints its port)

Reads requests on keep-alive connections (head, then a Content-Length body)
and logs {"up": "evil", "conn", "idx", "method", "target", "auth"} per
request ("auth" true when an Authorization header was there).  The answer
depends on the path's last segment (after /ev/); the echoes take the secret
from the request's "Authorization: Bearer <value>":
  ok          200, Content-Length, body "ok <target>"
  clte        Content-Length and Transfer-Encoding: chunked together
  twocl       two different Content-Lengths
  cllist      Content-Length: 5, 7
  gzip-list   Content-Encoding: identity, gzip; the gzipped value
  te-gzip     Transfer-Encoding: gzip, chunked; the gzipped value
  pct-lower   the value percent-encoded with lower-case hex
  pct-quote   urllib.parse.quote(value) (leaves '/' alone)
  pct-plus    urllib.parse.quote_plus(value)
  pct-upper   every byte but unreserved percent-encoded, upper-case hex
  hex / HEX   the value in hex; json-u: every character as \\uXXXX
  b64-1/b64-2 base64 of the value after 1 or 2 leading bytes
  b204, b304  a bodiless status followed by bytes that look like an answer
  b204-late[-MS], extra-late[-MS], head-late[-MS]  a 204 / a complete answer /
              an answer to HEAD, then MS (default 200) ms later an unasked-for
              answer on the idle connection
  te-chunked-cl  TE chunked then CL, with a second answer after the body
  hdr-raw, hdr-pct, trailer  the value in a header (raw, percent) or a trailer
  upper / lower / hex-mixed  the value upper- or lower-cased; hex with mixed-case digits
  html-dec / html-hex / html-nosemi / html-mixed  every character as an HTML
              reference: &#DD; / &#xhh; / &#DD without ';' / dec, hex, &#X..; in turn
  c-hex / c-oct / js-brace  every byte as \\xHH / \\NNN, every character as \\u{X}
  hdr-upper   the value upper-cased in a header
"""
import base64, binascii, gzip, json, socket, sys, threading, time, urllib.parse

LOG = open(sys.argv[1], 'a')
lock = threading.Lock()
ids = iter(range(1, 1 << 62))


def log(rec):
    with lock:
        LOG.write(json.dumps(rec) + '\n')
        LOG.flush()


def chunked(b):
    return b'%x\r\n%s\r\n0\r\n\r\n' % (len(b), b)


def hex_mixed(v):
    # every other letter digit upper-cased (digit position alone would not
    # do: an ASCII byte's first digit is never a letter)
    out, n = [], 0
    for c in v.hex():
        if c.isalpha():
            c, n = (c.upper() if n % 2 else c), n + 1
        out.append(c)
    return ''.join(out).encode()


def html_mixed(v):
    f = ('&#%d;', '&#x%x;', '&#X%X;')
    return ''.join(f[i % 3] % c for i, c in enumerate(v)).encode()


# The spellings a case change or a one-step escape gives (match.h): each the
# whole body after "v=".  (The named HTML references need a value holding
# & < > " ': these values do not; the unit tests have them.)
FORMS = {
    'upper': lambda v: v.upper(),
    'lower': lambda v: v.lower(),
    'hex-mixed': hex_mixed,
    'html-dec': lambda v: b''.join(b'&#%d;' % c for c in v),
    'html-hex': lambda v: b''.join(b'&#x%x;' % c for c in v),
    'html-nosemi': lambda v: b''.join(b'&#%d' % c for c in v),
    'html-mixed': html_mixed,
    'c-hex': lambda v: b''.join(b'\\x%02x' % c for c in v),
    'c-oct': lambda v: b''.join(b'\\%03o' % c for c in v),
    'js-brace': lambda v: b''.join(b'\\u{%X}' % c for c in v),
}


def answer(kind, target, val):
    plain = lambda body, extra=b'': (b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n' + extra +
                                     b'Content-Length: %d\r\n\r\n' % len(body) + body)
    if kind == 'clte':
        return b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n' + chunked(b'hello world')
    if kind == 'twocl':
        return b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 11\r\n\r\nhello world'
    if kind == 'cllist':
        return b'HTTP/1.1 200 OK\r\nContent-Length: 5, 11\r\n\r\nhello world'
    late = b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED'
    ms = int(kind.rsplit('-', 1)[1]) if kind[-1:].isdigit() else 200
    if kind.startswith('b204-late'):   # the extra bytes come once the broker holds the connection idle
        return (b'HTTP/1.1 204 No Content\r\n\r\n', late, ms)
    if kind.startswith('extra-late'):  # a well-framed answer, then an unasked-for one
        return (b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', late, ms)
    if kind.startswith('head-late'):   # an answer to HEAD (no body by method), then one more
        return (b'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', late, ms)
    if kind == 'b204':
        return b'HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED'
    if kind == 'b304':
        return b'HTTP/1.1 304 Not Modified\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED'
    if kind == 'te-chunked-cl':
        return (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n' +
                chunked(b'hello') + b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED')
    if kind == 'hdr-raw':
        return plain(b'ok', b'X-Echo: ' + val + b'\r\n')
    if kind == 'hdr-pct':
        return plain(b'ok', b'X-Echo: ' + ''.join(c if c.isalnum() else '%%%02x' % ord(c)
                                                 for c in val.decode('latin-1')).encode() + b'\r\n')
    if kind == 'trailer':
        return (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Echo\r\n\r\n2\r\nok\r\n0\r\n'
                b'X-Echo: ' + val + b'\r\n\r\n')
    if kind == 'gzip-list':
        return plain(gzip.compress(b'key=' + val + b'\n'), b'Content-Encoding: identity, gzip\r\n')
    if kind == 'te-gzip':
        return (b'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n' +
                chunked(gzip.compress(b'key=' + val + b'\n')))
    if kind == 'pct-lower':
        return plain(b'v=' + ''.join(c if c.isalnum() or c in '-._~' else '%%%02x' % ord(c)
                                     for c in val.decode('latin-1')).encode())
    if kind == 'pct-quote':
        return plain(b'v=' + urllib.parse.quote(val).encode())
    if kind == 'pct-plus':
        return plain(b'v=' + urllib.parse.quote_plus(val).encode())
    if kind == 'pct-upper':
        return plain(b'v=' + urllib.parse.quote(val, safe='-._~').encode())
    if kind == 'hex':
        return plain(b'v=' + binascii.hexlify(val))
    if kind == 'HEX':
        return plain(b'v=' + binascii.hexlify(val).upper())
    if kind == 'json-u':
        return plain(b'{"v":"' + ''.join('\\u%04x' % ord(c) for c in val.decode('latin-1')).encode() + b'"}',
                     b'X-Kind: json\r\n')
    if kind in FORMS:
        return plain(b'v=' + FORMS[kind](val))
    if kind == 'hdr-upper':
        return plain(b'ok', b'X-Echo: ' + val.upper() + b'\r\n')
    if kind.startswith('b64-'):
        pad = b'x' * int(kind[4:])
        return plain(b'v=' + base64.b64encode(pad + val))
    return plain(b'ok ' + target.encode('latin-1'))


def serve(c):
    cid = next(ids)
    f = c.makefile('rb')
    idx = 0
    try:
        while True:
            line = f.readline(65536)
            if not line:
                break
            parts = line.split()
            if len(parts) < 2:
                break
            hdrs = {}
            while True:
                h = f.readline(65536)
                if h in (b'\r\n', b'\n', b''):
                    break
                k, _, v = h.partition(b':')
                hdrs.setdefault(k.strip().lower(), v.strip())
            n = int(hdrs.get(b'content-length', b'0') or 0)
            if n:
                f.read(n)
            idx += 1
            target = parts[1].decode('latin-1')
            auth = hdrs.get(b'authorization', b'')
            log({'up': 'evil', 'conn': cid, 'idx': idx, 'method': parts[0].decode('latin-1'), 'target': target,
                 'auth': bool(auth)})
            val = auth[7:] if auth.startswith(b'Bearer ') else b''
            a = answer(target.split('?')[0].rsplit('/', 1)[-1], target, val)
            if isinstance(a, tuple):
                c.sendall(a[0])
                time.sleep(a[2] / 1000)
                c.sendall(a[1])
            else:
                c.sendall(a)
    except (OSError, ValueError):
        pass
    c.close()


ls = socket.socket()
ls.bind(('127.0.0.1', 0))
ls.listen(64)
print(ls.getsockname()[1], flush=True)
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
