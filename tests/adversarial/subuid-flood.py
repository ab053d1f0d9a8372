#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""What newuidmap gives a user with a subordinate uid range (/etc/subuid):
a user namespace owned by OWNER in which N uids map to SUB+1..SUB+N of the
broker's namespace.  Run as root: the child drops to OWNER, makes the
namespace; root writes its maps (as newuidmap would).  Then each of N
processes, one per mapped uid, either holds CONNS idle connections to
tools.sock ("conns"; prints how many the broker turned away at once) or
sends REQS requests it is refused ("refusals").

    subuid-flood.py SOCK OWNER SUB N conns CONNS HOLD_SECONDS
    subuid-flood.py SOCK OWNER SUB N refusals REQS
SOCK may be 127.0.0.1:PORT (the --listen-tcp listener) for "conns".
"""
import ctypes, os, socket, sys, time

sock, owner, sub, n, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
CLONE_NEWUSER = 0x10000000
libc = ctypes.CDLL(None, use_errno=True)

def worker(k):
    os.setresgid(k, k, k)
    os.setresuid(k, k, k)
    if mode == "conns":
        conns, held = int(sys.argv[6]), []
        turned = 0
        for _ in range(conns):
            try:
                if sock.startswith("127.0.0.1:"):
                    s = socket.create_connection(("127.0.0.1", int(sock.split(":")[1])))
                else:
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(sock)
                s.sendall(b"G")                  # a request that never ends
            except (ConnectionError, BlockingIOError):
                # refused or reset (the broker answered and closed before
                # the byte went): turned away too
                turned += 1
                continue
            held.append(s)
        time.sleep(0.5)
        for s in held:
            s.setblocking(False)
            try:
                if s.recv(64):                  # answered at once: turned away
                    turned += 1
            except BlockingIOError:
                pass
            except ConnectionError:             # answered and reset: turned away
                turned += 1
        os.write(1, b"turned %d\n" % turned)
        time.sleep(float(sys.argv[7]))
    else:
        body = b'{"secret":"nosuch","use":"redeem"}'
        req = b"POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
        st = {}
        for _ in range(int(sys.argv[6])):
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            s.sendall(req)
            d = s.recv(4096)
            code = d.split(b" ")[1].decode() if d.count(b" ") else "closed"
            st[code] = st.get(code, 0) + 1
            s.close()
        os.write(1, ("statuses %s\n" % sorted(st.items())).encode())
    os._exit(0)

r, w = os.pipe()
r2, w2 = os.pipe()
child = os.fork()
if child == 0:
    os.close(w); os.close(r2)
    os.setresgid(owner, owner, owner)
    os.setgroups([])
    os.setresuid(owner, owner, owner)
    if libc.unshare(CLONE_NEWUSER) != 0:
        os.write(w2, b"E"); os._exit(1)
    os.write(w2, b"U")
    os.read(r, 1)                               # maps written
    pids = []
    for k in range(1, n + 1):
        p = os.fork()
        if p == 0:
            worker(k)
        pids.append(p)
    for p in pids:
        os.waitpid(p, 0)
    os._exit(0)
os.close(r); os.close(w2)
if os.read(r2, 1) != b"U":
    print("SKIP: unshare(CLONE_NEWUSER) refused"); sys.exit(77)
for f, m in (("uid_map", "0 %d %d\n" % (sub, n + 1)), ("gid_map", "0 %d %d\n" % (sub, n + 1))):
    with open("/proc/%d/%s" % (child, f), "w") as fh:
        fh.write(m)
os.write(w, b"x")
os.waitpid(child, 0)
