#!/usr/bin/python3
# one raw request over tools.sock (or TCP): req.py SOCK|HOST:PORT RAWBYTES(python literal, {T} = token)
# prints the whole answer (repr), reads until EOF or 3 s idle.
import socket, sys, ast
dst, raw, tok = sys.argv[1], ast.literal_eval(sys.argv[2]), sys.argv[3].encode()
raw = raw.replace(b"{T}", tok)
if ":" in dst and not dst.startswith("/"):
    h, p = dst.rsplit(":", 1); s = socket.create_connection((h, int(p)))
else:
    s = socket.socket(socket.AF_UNIX); s.connect(dst)
s.settimeout(3)
s.sendall(raw)
d = b""
try:
    while True:
        x = s.recv(65536)
        if not x: break
        d += x
except socket.timeout:
    pass
print(repr(d))
