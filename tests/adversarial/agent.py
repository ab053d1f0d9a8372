#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The attacker's hands: a raw-socket HTTP client running under a test uid.

    setpriv --reuid U ... agent.py UNIX_SOCKET TCP_PORT

Reads one JSON command per line on stdin and answers one JSON line:
  {"op": "xchg", "via": "unix"|"tcp", "send": [base64...], "gap": ms,
   "want": N, "timeout": s, "shut": bool, "wait100": bool, "head": bool}
      connect, send the pieces (gap ms apart; with wait100 it waits for a
      "100 Continue" before the second piece), optionally shut the write side,
      read until N final responses were read, the peer closed, or the
      timeout passed -> {"raw": base64 of everything read, "eof": bool,
      "statuses": [...], "bodies": [base64...]}
  {"op": "mint", "secret": S} -> {"token": "cbt_..."} (a uid-bound proxy token)
The requests are bytes chosen by the harness, written as they are: no HTTP
library stands between them and the broker.
"""
import base64, json, socket, sys, time

SOCK, TCP = sys.argv[1], int(sys.argv[2])


class Reader:
    """Reads HTTP responses off a socket, as many as asked for."""

    def __init__(self, s, deadline):
        self.s, self.deadline, self.buf, self.raw, self.eof = s, deadline, b'', b'', False

    def fill(self):
        left = self.deadline - time.monotonic()
        if left <= 0 or self.eof:
            return False
        self.s.settimeout(left)
        try:
            d = self.s.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            d = b''
        if not d:
            self.eof = True
            return False
        self.buf += d
        self.raw += d
        return True

    def line(self):
        while b'\r\n' not in self.buf:
            if not self.fill():
                return None
        l, _, self.buf = self.buf.partition(b'\r\n')
        return l

    def take(self, n):
        while len(self.buf) < n:
            if not self.fill():
                return None
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    truncated = False
    nobody = False                          # the answers are to HEAD

    def response(self):
        """(status, body) of one response, or None; self.truncated when a
        body ended before its framing said (chunked without the last chunk,
        fewer bytes than Content-Length)."""
        st = self.line()
        if st is None:
            return None
        try:
            code = int(st.split(b' ')[1])
        except (IndexError, ValueError):
            return (-1, st)
        hdr = {}
        while True:
            h = self.line()
            if h is None:
                return (code, None)
            if h == b'':
                break
            k, _, v = h.partition(b':')
            hdr[k.strip().lower()] = v.strip()
        if 100 <= code < 200 or self.nobody or code in (204, 304):
            return (code, b'')
        if b'chunked' in hdr.get(b'transfer-encoding', b'').lower():
            body = b''
            while True:
                sz = self.line()
                if sz is None:
                    self.truncated = True
                    return (code, body)
                try:
                    n = int(sz.split(b';')[0], 16)
                except ValueError:
                    return (code, body)
                if n == 0:
                    while self.line() not in (b'', None):
                        pass
                    return (code, body)
                d = self.take(n)
                if d is None:
                    self.truncated = True
                    return (code, body)
                body += d
                self.line()
        if b'content-length' in hdr:
            body = self.take(int(hdr[b'content-length']))
            if body is None:
                self.truncated = True
                body, self.buf = self.buf, b''
            return (code, body)
        while self.fill():
            pass
        body, self.buf = self.buf, b''
        return (code, body)


def xchg(cmd):
    if cmd.get('via') == 'tcp':
        s = socket.create_connection(('127.0.0.1', TCP), timeout=5)
    else:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(SOCK)
    deadline = time.monotonic() + cmd.get('timeout', 5)
    rd = Reader(s, deadline)
    rd.nobody = bool(cmd.get('head'))
    statuses, bodies = [], []
    want = cmd.get('want', 1)
    try:
        for i, piece in enumerate(cmd['send']):
            if i and cmd.get('wait100'):
                r = rd.response()
                if r:
                    statuses.append(r[0])
                    bodies.append(base64.b64encode(r[1] or b'').decode())
            elif i and cmd.get('gap'):
                time.sleep(cmd['gap'] / 1000)
            s.sendall(base64.b64decode(piece))
        if cmd.get('shut'):
            s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finals = sum(1 for x in statuses if x >= 200 or x < 0)
    while finals < want:
        r = rd.response()
        if r is None:
            break
        statuses.append(r[0])
        bodies.append(base64.b64encode(r[1] or b'').decode())
        if r[0] >= 200 or r[0] < 0:
            finals += 1
        if r[1] is None:
            break
    if cmd.get('linger') and statuses and (statuses[-1] >= 400 or statuses[-1] < 0):  # refused: closed after it?
        rd.deadline = time.monotonic() + cmd['linger']
        while rd.fill():
            pass
    s.close()
    return {'raw': base64.b64encode(rd.raw).decode(), 'eof': rd.eof, 'statuses': statuses, 'bodies': bodies,
            'truncated': rd.truncated}


def mint(cmd):
    b = json.dumps({'secret': cmd['secret'], 'use': 'proxy', 'bind': 'uid', 'ttl': 3600}).encode()
    req = b'POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' % len(b) + b
    r = xchg({'send': [base64.b64encode(req).decode()], 'timeout': 10})
    try:
        return {'token': json.loads(base64.b64decode(r['bodies'][0]))['token']}
    except Exception:
        return {'token': '', 'error': base64.b64decode(r['raw'])[:300].decode('latin-1')}


for line in sys.stdin:
    cmd = json.loads(line)
    try:
        out = {'xchg': xchg, 'mint': mint}[cmd['op']](cmd)
    except Exception as e:
        out = {'error': repr(e), 'raw': '', 'eof': True, 'statuses': [], 'bodies': []}
    sys.stdout.write(json.dumps(out) + '\n')
    sys.stdout.flush()
