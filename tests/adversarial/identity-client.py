# SPDX-License-Identifier: Apache-2.0
# Raw HTTP/1.1 clients of tools.sock for tests/adversarial/identity-*.sh: each
# scenario prints lines "LABEL: STATUS BODY" that the scripts match.
#   identity-client.py SOCK request                one request on a fresh connection
#   identity-client.py SOCK fdpass UID_B MODE      connector (this uid) hands its connection to
#                                                  a process of UID_B (MODE: "sent" = after a
#                                                  201 of its own, "fresh" = before sending,
#                                                  "exec" = B is /bin/sh) and stays alive
#   identity-client.py SOCK setuid U1 U2           root: keep CAP_SETUID, become U1, request,
#                                                  become U2, request on the same connection
#   identity-client.py SOCK savedroot U1 U2        root: setresuid(U1, U1, 0), request, then U2
#   identity-client.py SOCK getfd-holder U1 U2 F   become U1, connect, request, become U2,
#                                                  exec a holder keeping the socket as fd 3;
#                                                  its pid goes to file F
#   identity-client.py SOCK getfd-thief PIDFILE    pidfd_getfd(pid, 3), then request on it
import ctypes, os, re, socket, sys, time

BODY = b'{"secret":"demo","use":"redeem"}'
libc = ctypes.CDLL(None, use_errno=True)


def req_bytes(body=BODY, close=False):
    return (b"POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n"
            % (len(body), b"Connection: close\r\n" if close else b"") + body)


def read_answer(s):
    d = b""
    s.settimeout(20)
    try:
        while b"\r\n\r\n" not in d:
            k = s.recv(65536)
            if not k:
                return "EOF " + d.decode(errors="replace")
            d += k
    except OSError as e:
        return "ERR %s" % e
    head, rest = d.split(b"\r\n\r\n", 1)
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    n = n[0] if n else 0
    while len(rest) < n:
        k = s.recv(65536)
        if not k:
            break
        rest += k
    status = head.split(b"\r\n")[0].split(b" ")[1].decode()
    return status + " " + rest.decode(errors="replace")


def request(s, body=BODY, close=False):
    try:
        s.sendall(req_bytes(body, close))
    except OSError as e:
        return "ERR %s" % e
    return read_answer(s)


def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s


def say(label, text):
    # Tokens and values never in test output, even when a test fails.
    text = re.sub(r"cbt_[A-Za-z0-9_-]+", "cbt_(redacted)", text)
    text = re.sub(r'"value(_base64)?":"[^"]*"', '"value":"(redacted)"', text)
    print("%s: %s" % (label, text), flush=True)


def drop(uid):
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


class CapHdr(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def raise_effective_caps():
    h = CapHdr(0x20080522, 0)
    d = (CapData * 2)()
    if libc.capget(ctypes.byref(h), d) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    for i in range(2):
        d[i].effective = d[i].permitted
    if libc.capset(ctypes.byref(h), d) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def main():
    path, mode = sys.argv[1], sys.argv[2]
    if mode == "request":
        say("request", request(connect(path), close=True))
    elif mode == "fdpass":
        uid_b, how = int(sys.argv[3]), sys.argv[4]
        a, b = socket.socketpair()
        pid = os.fork()
        if pid == 0:                      # B: the receiver, another process (and maybe uid)
            a.close()
            if os.getuid() == 0:
                drop(uid_b)
            msg, fds, _, _ = socket.recv_fds(b, 16, 1)
            conn = socket.socket(fileno=fds[0])
            if how == "exec":
                conn.setblocking(True)    # the connector's timeout made the shared description non-blocking
                os.dup2(conn.fileno(), 3)
                os.set_inheritable(3, True)
                r = req_bytes(close=True).decode()
                # The request is printf's format: its \r\n escapes become CR LF.
                os.execv("/bin/sh", ["sh", "-c", "printf '%s' >&3; echo 'receiver:' $(head -c 300 <&3 | "
                                     "head -n 1)" % r.replace("\r\n", "\\r\\n")])
            say("receiver", request(conn, close=True))
            os._exit(0)
        b.close()
        # A: the connector, with its own identity (uid and executable).
        if os.getuid() == 0:
            drop(int(sys.argv[5]))
        conn = connect(path)
        if how in ("sent", "exec"):
            say("connector", request(conn))
        socket.send_fds(a, [b"x"], [conn.fileno()])
        os.waitpid(pid, 0)                # alive all along
        say("connector-alive", "yes")
    elif mode == "setuid":
        u1, u2 = int(sys.argv[3]), int(sys.argv[4])
        PR_SET_KEEPCAPS = 8
        libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)
        os.setgroups([])
        os.setresgid(u1, u1, u1)
        os.setresuid(u1, u1, u1)          # every uid U1; CAP_SETUID kept in the permitted set
        conn = connect(path)
        say("as-u1", request(conn))
        raise_effective_caps()
        os.setresgid(u2, u2, u2)
        os.setresuid(u2, u2, u2)
        say("as-u2-same-conn", request(conn))
        say("as-u2-fresh-conn", request(connect(path), close=True))
    elif mode == "savedroot":
        u1, u2 = int(sys.argv[3]), int(sys.argv[4])
        os.setgroups([])
        os.setresgid(u1, u1, 0)
        os.setresuid(u1, u1, 0)
        conn = connect(path)
        say("as-u1-saved-root", request(conn))
        os.setresuid(0, 0, 0)
        os.setresgid(u2, u2, u2)
        os.setresuid(u2, u2, u2)
        say("as-u2-same-conn", request(conn))
    elif mode == "getfd-holder":
        u1, u2, pidfile = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        libc.prctl(8, 1, 0, 0, 0)
        os.setgroups([])
        os.setresgid(u1, u1, u1)
        os.setresuid(u1, u1, u1)
        conn = connect(path)
        say("holder-as-u1", request(conn))
        raise_effective_caps()
        os.setresgid(u2, u2, u2)
        os.setresuid(u2, u2, u2)
        os.dup2(conn.fileno(), 3)
        os.set_inheritable(3, True)
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)
        # Re-exec as a plain U2 process that holds the connection (fd 3) and
        # lets any process of its uid take descriptors from it (Yama).
        os.execv(sys.executable, [sys.executable, "-c",
                 "import ctypes, time; ctypes.CDLL(None).prctl(0x59616d61, -1, 0, 0, 0); time.sleep(20)"])
    elif mode == "getfd-thief":
        pidfile = sys.argv[3]
        for _ in range(200):
            if os.path.exists(pidfile):
                break
            time.sleep(0.05)
        pid = int(open(pidfile).read())
        time.sleep(0.3)                   # the holder has exec'd
        pidfd = os.pidfd_open(pid)
        fd = libc.syscall(438, pidfd, 3, 0)   # pidfd_getfd
        if fd < 0:
            say("thief", "ERR pidfd_getfd: %s" % os.strerror(ctypes.get_errno()))
            return
        conn = socket.socket(fileno=fd)
        say("thief", request(conn, close=True))
        os.kill(pid, 9)
    else:
        sys.exit("unknown mode " + mode)


main()
