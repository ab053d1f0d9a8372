#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A small HTTPS (or, with --plain, HTTP) upstream for the proxy integration test.

Standard library only.  Prints the port it listens on (one line) and nothing
else on stdout; errors go to stderr.  Every request received is logged as one
JSON line in --log *before* it is answered:
  {"method", "path", "query", "headers": {lower-case name: value},
   "body_length", "body_sha256", "body" (only for bodies up to 200 bytes)}
A TLS handshake that fails logs nothing.

Endpoints (anything else: 404):
  /echo[/...]  any method; 200 JSON {method, path, query, headers, body_length,
               body_sha256, body (as text, bodies up to 64 KiB)}
  /sse         text/event-stream, chunked: "data: N\\n\\n" for N = 0..4, 0.5 s
               apart, the first at once, each flushed; with --sse-marker FILE,
               FILE is created just before the last event is written
  /redirect    302, Location: https://other.invalid/stolen
  /leak        chunked; the Authorization header received, echoed in the
               X-Echo-Auth response header and in the body, the body written
               in 3 flushed pieces with the value split across two of them
  /forms?f=F   chunked, one byte per flushed chunk: the Bearer value received
               in form F (value_forms.py: the spellings libraries write,
               computed with Python's encoders, independently of the broker)
  /cookie      200 with Set-Cookie: session=abc
  /gzip        200 with a gzip body and Content-Encoding: gzip, whatever was asked
  /trailers    a chunked body followed by 150 trailer fields
  /slow        sleeps 3 s, then 200
"""
import argparse
import hashlib
import http.server
import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse

LOG_LOCK = threading.Lock()
ARGS = None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def version_string(self):
        return "proxy-upstream/1"

    timeout = 30

    def log_message(self, fmt, *args):  # no access log on stderr
        pass

    # --- request body: Content-Length or chunked
    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("EOF in chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(8192)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline(8)  # CRLF after the chunk
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def record(self, body):
        path, _, query = self.path.partition("?")
        hdrs = {}
        for k, v in self.headers.items():
            k = k.lower()
            hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
        rec = {
            "method": self.command,
            "path": path,
            "query": query,
            "headers": hdrs,
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        if len(body) <= 200:
            rec["body"] = body.decode("utf-8", "replace")
        line = json.dumps(rec, sort_keys=True) + "\n"
        with LOG_LOCK:
            with open(ARGS.log, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
        return rec

    def send_fixed(self, code, body, ctype="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def handle_any(self):
        body = self.read_body()
        rec = self.record(body)
        path = rec["path"]
        if path == "/echo" or path.startswith("/echo/"):
            out = dict(rec)
            out.pop("body", None)
            if len(body) <= 65536:
                out["body"] = body.decode("utf-8", "replace")
            self.send_fixed(200, json.dumps(out).encode())
        elif path == "/sse":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for n in range(5):
                if n:
                    time.sleep(0.5)
                if n == 4 and ARGS.sse_marker:
                    with open(ARGS.sse_marker, "w") as f:
                        f.write("last event\n")
                self.chunk(b"data: %d\n\n" % n)
            self.end_chunks()
        elif path == "/redirect":
            self.send_fixed(302, b"", "text/plain", [("Location", "https://other.invalid/stolen")])
        elif path == "/leak":
            auth = (self.headers.get("Authorization") or "").encode("latin-1", "replace")
            half = len(auth) // 2
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("X-Echo-Auth", auth.decode("latin-1"))
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for piece in (b"you sent: " + auth[:half], auth[half:] + b"\nand again: ", auth + b"\n"):
                self.chunk(piece)
                time.sleep(0.1)
            self.end_chunks()
        elif path == "/forms":
            import value_forms
            auth = (self.headers.get("Authorization") or "").encode("latin-1", "replace")
            vb = auth[7:] if auth.startswith(b"Bearer ") else auth
            f = urllib.parse.parse_qs(rec.get("query", "")).get("f", [""])[0]
            body = value_forms.forms(vb).get(f, b"?")
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for i in range(len(body)):
                self.chunk(body[i:i + 1])
            self.end_chunks()
        elif path == "/cookie":
            self.send_fixed(200, b"cookie set\n", "text/plain", [("Set-Cookie", "session=abc; Path=/")])
        elif path == "/gzip":
            # Compressed although the request asked for identity.
            import gzip
            self.send_fixed(200, gzip.compress(b"compressed body\n"), "text/plain", [("Content-Encoding", "gzip")])
        elif path == "/trailers":
            # A chunked body followed by many trailer fields, one looking
            # like a status line.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-T")
            self.end_headers()
            self.chunk(b"body\n")
            self.wfile.write(b"0\r\n" + b"".join(b"X-T%d: v\r\n" % i for i in range(150)) +
                             b"HTTP/1.1 200 fake\r\n\r\n")
            self.wfile.flush()
        elif path.startswith("/bytes/"):
            # N bytes (at most 64 MiB), block i = sha256(b"%d" % i), sent
            # chunked in 64 KiB pieces as fast as the reader takes them.
            n = min(int(path[7:] or 0), 64 << 20)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            buf, i, left = b"", 0, n
            while left:
                while len(buf) < 65536 and len(buf) < left:
                    buf += hashlib.sha256(b"%d" % i).digest()
                    i += 1
                piece, buf = buf[:min(65536, left)], buf[min(65536, left):]
                self.chunk(piece)
                left -= len(piece)
            self.end_chunks()
        elif path == "/slow":
            time.sleep(3)
            self.send_fixed(200, b"slow done\n", "text/plain")
        else:
            self.send_fixed(404, b'{"error":"not found"}')

    def __getattr__(self, name):  # do_GET, do_POST, do_WHATEVER
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    tls = None

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the connection's own thread so a client
        # that aborts it (wrong CA, name mismatch) cannot stall accept().
        request.settimeout(30)
        if self.tls:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                print(f"proxy-upstream: TLS handshake from {client_address[0]} failed: {e}", file=sys.stderr)
                return
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            try:
                request.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        e = sys.exc_info()[1]
        if isinstance(e, (ConnectionError, socket.timeout, ssl.SSLError, BrokenPipeError)):
            print(f"proxy-upstream: connection from {client_address[0]}: {e!r}", file=sys.stderr)
        else:
            super().handle_error(request, client_address)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--log", required=True)
    p.add_argument("--plain", action="store_true", help="HTTP, no TLS")
    p.add_argument("--sse-marker", help="file created just before /sse's last event")
    ARGS = p.parse_args()
    if not ARGS.plain and not (ARGS.cert and ARGS.key):
        p.error("--cert and --key are required unless --plain")
    open(ARGS.log, "a").close()
    srv = Server((ARGS.bind, ARGS.port), Handler)
    if not ARGS.plain:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.cert, ARGS.key)
        srv.tls = ctx
    sys.stdout.write(f"{srv.server_address[1]}\n")
    sys.stdout.flush()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as e:  # one line on stderr, never on stdout
        print(f"proxy-upstream: {e}", file=sys.stderr)
        sys.exit(1)
