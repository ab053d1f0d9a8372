#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Raw plain-HTTP requests to a sandbox's proxy (127.0.0.1:8411), run inside
the sandbox by test-sandbox-forward.sh.  Usage: probe.py HOSTPORT SECRET_FILE
CASE...  For each case, one line "CASE STATUS" (STATUS: the status code the
proxy answered, or "closed" when it answered nothing).  The secret's value
is read from a file, never from argv."""
import base64
import socket
import sys
import time
import urllib.parse

HP = sys.argv[1]
SECRET = open(sys.argv[2], "rb").read().strip()


def exchange(pieces, pause=0.0):
    s = socket.create_connection(("127.0.0.1", 8411), timeout=20)
    for i, p in enumerate(pieces):
        s.sendall(p)
        if pause and i + 1 < len(pieces):
            time.sleep(pause)
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    if not data.startswith(b"HTTP/1."):
        return "closed", data
    # skip interim 1xx answers
    while data[9:10] == b"1" and b"\r\n\r\n" in data:
        data = data.split(b"\r\n\r\n", 1)[1]
    return data[9:12].decode(), data


def req(method, path, headers=(), body=b"", host=None):
    h = host or HP
    head = "%s http://%s%s HTTP/1.1\r\nHost: %s\r\n" % (method, h, path, h)
    for k, v in headers:
        head += "%s: %s\r\n" % (k, v)
    return head.encode() + b"\r\n" + body


def post(path, body, ctype="application/octet-stream"):
    return [req("POST", path, [("Content-Type", ctype), ("Content-Length", str(len(body)))], body)]


def chunked(path, parts):
    b = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    return req("POST", path, [("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")], b)


B64 = base64.b64encode(b"user=" + SECRET).decode()
PCT = "".join("%%%02X" % c for c in SECRET)
HALF = len(SECRET) // 2

CASES = {
    # controls
    "get": lambda: [req("GET", "/echo/probe-get")],
    "post-clean": lambda: post("/echo/probe-clean", b"hello=world&n=1"),
    "chunked-clean": lambda: [chunked("/echo/probe-chunked", [b"abc", b"defgh", b"ij"])],
    # the outbound leak guard
    "leak-raw": lambda: post("/echo/leak-raw", b"token=" + SECRET + b"&x=1", "application/x-www-form-urlencoded"),
    "leak-base64": lambda: post("/echo/leak-base64", b'{"blob": "' + B64.encode() + b'"}', "application/json"),
    "leak-pct": lambda: post("/echo/leak-pct", b"v=" + PCT.encode(), "application/x-www-form-urlencoded"),
    "leak-hex": lambda: post("/echo/leak-hex", b"digest=" + SECRET.hex().upper().encode(), "text/plain"),
    "leak-json": lambda: post("/echo/leak-json", b'{"k": "' + "".join("\\u%04x" % c for c in SECRET).encode() + b'"}',
                              "application/json"),
    "leak-header": lambda: [req("GET", "/echo/leak-header", [("X-Data", B64)])],
    "leak-query": lambda: [req("GET", "/echo/leak-query?q=" + PCT)],
    # split across chunks, each chunk sent apart
    "leak-split": lambda: [
        req("POST", "/echo/leak-split", [("Transfer-Encoding", "chunked")]),
        b"%x\r\nk=%s\r\n" % (HALF + 2, SECRET[:HALF]),
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(SECRET) - HALF, SECRET[HALF:]),
    ],
    # smuggling shapes
    "cl-te": lambda: [req("POST", "/echo/smuggle-clte", [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
                          b"0\r\n\r\nG")],
    "cl-cl": lambda: [req("POST", "/echo/smuggle-clcl", [("Content-Length", "3"), ("Content-Length", "4")], b"abcd")],
    "te-gzip": lambda: [req("POST", "/echo/smuggle-te", [("Transfer-Encoding", "gzip, chunked")], b"0\r\n\r\n")],
    "bad-chunk": lambda: [req("POST", "/echo/smuggle-chunk", [("Transfer-Encoding", "chunked")], b"3 \r\nabc\r\n0\r\n\r\n")],
    "obs-fold": lambda: [req("GET", "/echo/smuggle-fold", [("X-A", "1\r\n b")])],
    "bare-lf": lambda: [b"GET http://" + HP.encode() + b"/echo/smuggle-lf HTTP/1.1\nHost: x\n\n"],
    "cl-sign": lambda: [req("POST", "/echo/smuggle-clsign", [("Content-Length", "+3")], b"abc")],
    # where
    "denied": lambda: [req("GET", "/echo/denied", host="denied.test:" + HP.split(":")[1])],
    "literal": lambda: [req("GET", "/echo/literal", host="11.22.33.44:" + HP.split(":")[1])],
    "private": lambda: [req("GET", "/echo/private", host="private.test:" + HP.split(":")[1])],
    "otherport": lambda: [req("GET", "/echo/otherport", host=HP.split(":")[0] + ":1")],
    "https-abs": lambda: [b"GET https://" + HP.encode() + b"/echo/https HTTP/1.1\r\nHost: x\r\n\r\n"],
}

for name in sys.argv[3:]:
    pieces = CASES[name]()
    status, data = exchange(pieces, pause=0.3 if name == "leak-split" else 0.0)
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    if SECRET in data:
        print(name, "SECRET-ECHOED")
    print(name, status, body[:300].decode("utf-8", "replace").replace("\n", " "))
    sys.stdout.flush()
