#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A git smart-HTTP server over TLS for the sandbox tests: each request runs
the real `git http-backend` (CGI) on --root.  Standard library only.
Usage: git-https-server.py --bind ADDR --port N --cert PEM --key KEY --root DIR
--log FILE.  Each request is logged as one line "METHOD PATH STATUS"."""
import argparse
import http.server
import os
import ssl
import subprocess
import sys
import threading
import urllib.parse

ARGS = None
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30

    def log_message(self, fmt, *args):
        pass

    def body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(n)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def run(self):
        u = urllib.parse.urlsplit(self.path)
        data = self.body() if self.command == "POST" else b""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": ARGS.root,
               "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": self.command, "PATH_INFO": u.path,
               "QUERY_STRING": u.query, "CONTENT_TYPE": self.headers.get("Content-Type") or "",
               "CONTENT_LENGTH": str(len(data)), "REMOTE_ADDR": self.client_address[0],
               "GIT_PROTOCOL": self.headers.get("Git-Protocol") or "",
               "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding") or ""}
        p = subprocess.run(["git", "http-backend"], input=data, env=env, capture_output=True, timeout=60)
        head, _, out = p.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, out = p.stdout.partition(b"\n\n")
        status = 200
        hdrs = []
        for line in head.decode("latin-1").splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            elif k:
                hdrs.append((k, v.strip()))
        self.send_response(status)
        for k, v in hdrs:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
        with LOCK, open(ARGS.log, "a") as f:
            f.write("%s %s %d\n" % (self.command, u.path, status))

    do_GET = run
    do_POST = run


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--log", required=True)
    ARGS = p.parse_args()
    srv = http.server.ThreadingHTTPServer((ARGS.bind, ARGS.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(ARGS.port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
