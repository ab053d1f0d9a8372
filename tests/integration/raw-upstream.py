#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A plain-HTTP upstream that logs the raw bytes it receives, for
test-proxy-framing.sh.  Standard library only.  Prints its port (one line).

Each request is parsed strictly (one Content-Length or chunked) and logged as
one JSON line in --log before it is answered:
  {"conn": N (the connection's number), "seq": its request number on that
   connection, "head": the request head as received (latin-1), "body": the
   decoded body (latin-1), "complete": true}
A connection that ends inside a request logs {"conn", "partial": raw bytes}.
Paths (anything else: 200 "ok"):
  /resp/cl-te      Content-Length and Transfer-Encoding: chunked together
  /resp/two-cl     Content-Length twice
  /resp/ce-list    Content-Encoding: identity, gzip (a gzip body)
  /resp/te-gzip    Transfer-Encoding: gzip, chunked
  /resp/fold       a header continued on the next line
  /resp/204-extra  204, then (same write) a second answer nobody asked for
  /resp/204-late   204, then 0.2 s later a second answer
  /resp/304-extra  304, then (same write) a second answer
  /resp/200-late   200 "ok", then 0.2 s later a second answer
"""
import argparse
import gzip
import itertools
import json
import socket
import threading
import time

LOCK = threading.Lock()
CONNS = itertools.count(1)


def log(path, rec):
    with LOCK, open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")


def read_until(sock, buf, sep):
    while sep not in buf:
        d = sock.recv(65536)
        if not d:
            raise EOFError(buf)
        buf += d
    i = buf.index(sep) + len(sep)
    return buf[:i], buf[i:]


def read_n(sock, buf, n):
    while len(buf) < n:
        d = sock.recv(65536)
        if not d:
            raise EOFError(buf)
        buf += d
    return buf[:n], buf[n:]


SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"


def answer(path):
    if path == "/resp/204-extra":
        return b"HTTP/1.1 204 No Content\r\n\r\n" + SMUGGLED
    if path == "/resp/304-extra":
        return b"HTTP/1.1 304 Not Modified\r\n\r\n" + SMUGGLED
    if path == "/resp/cl-te":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    if path == "/resp/two-cl":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"
    if path == "/resp/ce-list":
        z = gzip.compress(b"a compressed body")
        return b"HTTP/1.1 200 OK\r\nContent-Encoding: identity, gzip\r\nContent-Length: %d\r\n\r\n" % len(z) + z
    if path == "/resp/te-gzip":
        z = gzip.compress(b"a compressed body")
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n%x\r\n" % len(z) + z + b"\r\n0\r\n\r\n"
    if path == "/resp/fold":
        return b"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 2\r\n\r\nok"
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


def serve(sock, logpath):
    conn = next(CONNS)
    buf = b""
    seq = 0
    try:
        while True:
            start = buf
            try:
                head, buf = read_until(sock, buf, b"\r\n\r\n")
            except EOFError as e:
                if e.args[0]:
                    log(logpath, {"conn": conn, "partial": e.args[0].decode("latin-1")})
                return
            lines = head.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 2 else ""
            hdrs = [l.split(":", 1) for l in lines[1:] if ":" in l]
            cl = [v.strip() for k, v in hdrs if k.lower() == "content-length"]
            te = [v.strip().lower() for k, v in hdrs if k.lower() == "transfer-encoding"]
            body = b""
            try:
                if te:
                    while True:
                        line, buf = read_until(sock, buf, b"\r\n")
                        size = int(line.split(b";")[0], 16)
                        if size == 0:
                            _, buf = read_until(sock, buf, b"\r\n")
                            break
                        chunk, buf = read_n(sock, buf, size + 2)
                        body += chunk[:-2]
                elif cl:
                    body, buf = read_n(sock, buf, int(cl[0]))
            except (EOFError, ValueError):
                log(logpath, {"conn": conn, "partial": (head + body).decode("latin-1")})
                return
            seq += 1
            log(logpath, {"conn": conn, "seq": seq, "head": head.decode("latin-1"),
                          "body": body.decode("latin-1"), "complete": True})
            path = target.split("?")[0]
            if path in ("/resp/204-late", "/resp/200-late"):
                sock.sendall(b"HTTP/1.1 204 No Content\r\n\r\n" if path == "/resp/204-late" else
                             b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                time.sleep(0.2)
                sock.sendall(SMUGGLED)
            else:
                sock.sendall(answer(path))
            del start
    except OSError:
        return
    finally:
        sock.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    print(srv.getsockname()[1], flush=True)
    while True:
        c, _ = srv.accept()
        c.settimeout(20)
        threading.Thread(target=serve, args=(c, a.log), daemon=True).start()


if __name__ == "__main__":
    main()
