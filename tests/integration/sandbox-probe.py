# SPDX-License-Identifier: Apache-2.0
# One attempt, run inside `credbroker sandbox` (and outside, as the control):
#   sandbox-probe.py CASE [ARGS...]
# prints "OK <detail>" and exits 0 when the attempt worked, or
# "REFUSED <errno name> <detail>" and exits 1 when it was refused.
# Used by tests/integration/test-sandbox.sh.
import ctypes, errno, os, socket, sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

NR = {  # x86_64
    "ptrace": 101, "keyctl": 250, "bpf": 321, "userfaultfd": 323, "mount": 165,
    "clock_settime": 227, "io_uring_setup": 425, "perf_event_open": 298,
    "init_module": 175, "unshare": 272,
}


def ok(detail=""):
    print("OK", detail)
    sys.exit(0)


def refused(e, detail=""):
    name = errno.errorcode.get(e, str(e)) if isinstance(e, int) else e
    print("REFUSED", name, detail)
    sys.exit(1)


def sysc(name, *args):
    r = libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_long(a) for a in args])
    if r < 0:
        refused(ctypes.get_errno(), name)
    ok(f"{name} -> {r}")


def main():
    case, args = sys.argv[1], sys.argv[2:]
    try:
        if case == "read":
            with open(args[0], "rb") as f:
                data = f.read()
            if not data:
                refused("EMPTY", args[0])
            ok(f"{len(data)} bytes")
        elif case == "write":
            with open(args[0], "a") as f:
                f.write(args[1] if len(args) > 1 else "sandbox was here\n")
            ok(args[0])
        elif case == "tcp":
            s = socket.create_connection((args[0], int(args[1])), timeout=3)
            s.sendall(b"ping\n")
            ok(s.recv(64).decode(errors="replace").strip())
        elif case == "udp":  # a DNS-like query to a host resolver: an answer or nothing
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            s.sendto(b"query", (args[0], int(args[1])))
            ok(s.recvfrom(64)[0].decode())
        elif case == "resolve":
            ok(str(socket.getaddrinfo(args[0], 443)[0][4]))
        elif case == "raw":
            socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
            ok("raw socket")
        elif case == "packet":
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
            ok("packet socket")
        elif case == "stream":
            socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
            ok("stream socket")
        elif case == "unix":  # path, or @name for the abstract namespace
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(3)
            s.connect("\0" + args[0][1:] if args[0].startswith("@") else args[0])
            ok(s.recv(64).decode(errors="replace").strip())
        elif case == "socketpair":
            a, b = socket.socketpair()
            a.sendall(b"x")
            ok(b.recv(1).decode())
        elif case == "ptrace":  # PTRACE_ATTACH to a pid, or to a child of ours
            if args:
                pid = int(args[0])
            else:
                pid = os.fork()
                if pid == 0:
                    import time
                    time.sleep(10)
                    os._exit(0)
            r = libc.ptrace(ctypes.c_long(16), ctypes.c_long(pid), None, None)
            e = ctypes.get_errno()
            if not args:
                os.kill(pid, 9)
            if r < 0:
                refused(e, f"PTRACE_ATTACH {pid}")
            ok(f"attached {pid}")
        elif case == "tiocsti":  # on a pty of our own; "high": with bits above 32 set
            import fcntl, termios, pty
            m, s = pty.openpty()
            req = termios.TIOCSTI | ((1 << 32) if args and args[0] == "high" else 0)
            r = libc.ioctl(ctypes.c_int(s), ctypes.c_ulong(req), ctypes.c_char_p(b"x"))
            if r < 0:
                refused(ctypes.get_errno(), "TIOCSTI")
            ok("TIOCSTI")
        elif case == "tty":
            os.open("/dev/tty", os.O_RDWR)
            ok("/dev/tty opened")
        elif case == "status":
            st = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
            ok(" ".join(f"{k}={st[k].strip()}" for k in ("NoNewPrivs", "Seccomp", "CapEff")))
        elif case == "listdir":
            ok(",".join(sorted(os.listdir(args[0]))))
        elif case == "keyctl":  # KEYCTL_GET_KEYRING_ID of the session keyring
            sysc("keyctl", 0, -3, 1)
        elif case == "bpf":
            sysc("bpf", 0, 0, 0)
        elif case == "userfaultfd":
            sysc("userfaultfd", 0)
        elif case == "perf":
            sysc("perf_event_open", 0, 0, -1, -1, 0)
        elif case == "mount":
            sysc("mount", 0, 0, 0, 0, 0)
        elif case == "clock":
            sysc("clock_settime", 0, 0)
        elif case == "io_uring":
            sysc("io_uring_setup", 1, 0)
        elif case == "userns":  # CLONE_NEWUSER
            sysc("unshare", 0x10000000)
        else:
            print("unknown case", case)
            sys.exit(2)
    except socket.timeout:  # before OSError: it is one (TimeoutError) since Python 3.10
        refused("TIMEOUT", "no answer")
    except OSError as e:
        refused(e.errno if e.errno is not None else "OSERROR", str(e))


main()
