#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Upstream on Python's http.server (HTTP/1.1, keep-alive).

    upstream-python.py LOG    (prints its port)

Reads a body the way a typical app on http.server does (chunked when
Transfer-Encoding names it, else Content-Length) and appends to LOG one JSON
line per request it parsed: method, target, version, every header in order,
body length and sha256.  A request http.server refuses is logged as
{"error": ...}; one whose body the sender broke off as {"aborted": true}.
Answers 200 with a JSON echo of method and target.
"""
import hashlib, http.server, json, sys, threading

LOG = open(sys.argv[1], 'a')
lock = threading.Lock()


def log(rec):
    with lock:
        LOG.write(json.dumps(rec) + '\n')
        LOG.flush()


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def send_error(self, code, message=None, explain=None):
        log({'up': 'python', 'error': code, 'line': (self.raw_requestline or b'').decode('latin-1')})
        self.close_connection = True
        super().send_error(code, message, explain)

    def body(self):
        te = self.headers.get('Transfer-Encoding', '')
        if 'chunked' in te.lower():
            out = b''
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise EOFError('connection closed inside the body')
                size = int(line.split(b';')[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b'\r\n', b'\n', b''):
                        pass
                    return out
                data = self.rfile.read(size)
                if len(data) < size:
                    raise EOFError('connection closed inside the body')
                out += data
                self.rfile.readline(65537)
        n = self.headers.get('Content-Length')
        data = self.rfile.read(int(n)) if n else b''
        if n and len(data) < int(n):
            raise EOFError('connection closed inside the body')
        return data

    def handle_any(self):
        try:
            b = self.body()
        except EOFError:
            # The sender gave up inside the body: not a request it made.
            log({'up': 'python', 'aborted': True, 'method': self.command, 'target': self.path})
            self.close_connection = True
            return
        except (ValueError, OSError) as e:
            log({'up': 'python', 'error': 'body: %s' % e, 'method': self.command, 'target': self.path})
            self.close_connection = True
            return
        log({'up': 'python', 'method': self.command, 'target': self.path, 'version': self.request_version,
             'headers': [[k, v] for k, v in self.headers.items()], 'body_len': len(b),
             'body_sha256': hashlib.sha256(b).hexdigest()})
        out = json.dumps({'up': 'python', 'method': self.command, 'target': self.path}).encode() + b'\n'
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = handle_any

    def do_HEAD(self):
        self.handle_any()


s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
