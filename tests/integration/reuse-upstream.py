#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""An upstream that ends kept-alive connections at the worst moment, for
test-proxy-reuse.sh: the race between an upstream closing an idle
connection and the broker reusing it (issue 19's soak: 502 "Broken pipe").
Standard library only.  Prints its port (one line).

HTTP/1.1, plain or TLS (--cert/--key).  Every request is read whole (one
Content-Length or chunked) and logged as one JSON line in --log:
  {"conn": N, "seq": its number on that connection, "method", "path",
   "body_len", "body_sha256", "answered": true|false}
What happens after a request is said by its path (anything else: 200 "ok",
Content-Length, connection kept):
  /then/bye     answered; then at once, as nothing is asked, the connection
                ends: over TLS a close_notify then FIN (nginx's keepalive
                timeout), in plain HTTP "408 Request Timeout" then FIN (what
                several servers send on their idle timeout)
  /then/slow-bye  the same as bye, answered after 0.5 s (requests sent together
                then leave as many connections in the broker's pool, all ended
                at once: nginx closing what a peak opened, 75 s later)
  /then/close   answered; the NEXT request that comes on a reused connection
                (whichever of the broker's pooled ones it took) is read
                whole, logged "answered": false, and its connection closed
                (FIN) without a byte of answer: the upstream got the request
  /then/rst     the same, but the connection is reset (RST)
No response ever says "Connection: close": the connection looks reusable.
"""
import argparse
import hashlib
import itertools
import json
import socket
import ssl
import struct
import threading
import time

LOCK = threading.Lock()
CONNS = itertools.count(1)
ARMED = []          # "close" or "rst": what the next request on a reused connection meets


def take_armed():
    with LOCK:
        return ARMED.pop() if ARMED else None


def log(path, rec):
    with LOCK, open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")


def read_until(sock, buf, sep):
    while sep not in buf:
        d = sock.recv(65536)
        if not d:
            raise EOFError
        buf += d
    i = buf.index(sep) + len(sep)
    return buf[:i], buf[i:]


def read_n(sock, buf, n):
    while len(buf) < n:
        d = sock.recv(65536)
        if not d:
            raise EOFError
        buf += d
    return buf[:n], buf[n:]


def read_request(sock, buf):
    head, buf = read_until(sock, buf, b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target = lines[0].split(" ")[:2]
    hdrs = [l.split(":", 1) for l in lines[1:] if ":" in l]
    cl = [v.strip() for k, v in hdrs if k.lower() == "content-length"]
    te = [v.strip().lower() for k, v in hdrs if k.lower() == "transfer-encoding"]
    body = b""
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
    return method, target.split("?")[0], body, buf


def rst(sock):
    raw = sock
    if isinstance(sock, ssl.SSLSocket):
        raw = socket.socket(fileno=sock.detach())
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()


def bye(sock):
    if isinstance(sock, ssl.SSLSocket):
        sock.settimeout(0.5)
        try:
            sock.unwrap()                # close_notify, then (briefly) wait for the peer's
        except (OSError, ValueError):
            pass
    else:
        sock.sendall(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
    sock.close()


def serve(sock, logpath, ctx):
    if ctx:
        try:
            sock = ctx.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError):
            sock.close()
            return
    conn = next(CONNS)
    buf = b""
    seq = 0
    try:
        while True:
            try:
                method, path, body, buf = read_request(sock, buf)
            except (EOFError, ValueError):
                return
            seq += 1
            after = take_armed() if seq > 1 else None
            rec = {"conn": conn, "seq": seq, "method": method, "path": path, "body_len": len(body),
                   "body_sha256": hashlib.sha256(body).hexdigest(), "answered": after is None}
            log(logpath, rec)
            if after == "close":
                sock.close()
                return
            if after == "rst":
                rst(sock)
                return
            if path == "/then/slow-bye":
                time.sleep(0.5)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
            if path in ("/then/bye", "/then/slow-bye"):
                bye(sock)
                return
            if path in ("/then/close", "/then/rst"):
                with LOCK:
                    ARMED[:] = [path[len("/then/"):]]
    except OSError:
        return
    finally:
        try:
            sock.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    a = ap.parse_args()
    ctx = None
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    print(srv.getsockname()[1], flush=True)
    while True:
        c, _ = srv.accept()
        c.settimeout(20)
        threading.Thread(target=serve, args=(c, a.log, ctx), daemon=True).start()


if __name__ == "__main__":
    main()
