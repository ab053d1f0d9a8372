# SPDX-License-Identifier: Apache-2.0
# test-tool-unlocked.sh's client, over the daemon's Unix sockets (HTTP/1.1,
# one connection per request):
#   setup ADMIN_SOCK N          a 'bulk' secret with N disabled 64 KiB
#                               versions (a large log: every compaction
#                               rewrites it) and a small current one
#   compact ADMIN_SOCK          ms of one put + delete of 'tmp' (the delete
#                               compacts the log), printed
#   storm ADMIN_SOCK SECONDS    put + delete 'tmp' back to back; prints how many
#   leak TOOLS_SOCK             a scan that sights the value of 'gone' (its
#                               leak response marks it leaked)
#   tool TOOLS_SOCK SECONDS     redeem, a proxy decision, a scan and a scan
#                               that sights 'gone' again, in turn; prints a
#                               JSON summary (statuses, p50/p95/max)
import base64, json, os, random, socket, sys, time


def call(sock, method, path, body=None, headers=(), raw=None):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(sock)
    b = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    h = "".join("%s: %s\r\n" % kv for kv in headers)
    s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n"
               % (method, path, h, len(b))).encode() + b)
    d = b""
    while True:
        x = s.recv(65536)
        if not x:
            break
        d += x
    s.close()
    head, _, rest = d.partition(b"\r\n\r\n")
    try:
        o = json.loads(rest or b"{}")
    except ValueError:
        o = {}
    return int(head.split()[1]), o


def must(st, o, want, what):
    if st != want:
        sys.exit("%s: %d %s" % (what, st, o))


mode, sock = sys.argv[1], sys.argv[2]
if mode == "setup":
    n = int(sys.argv[3])
    for i in range(n):
        v = base64.b64encode(os.urandom(48 * 1024)).decode()  # 64 KiB of text
        st, o = call(sock, "POST", "/v1/admin/secrets", {"name": "bulk", "value": v})
        must(st, o, 201, "put bulk")
    st, o = call(sock, "POST", "/v1/admin/secrets", {"name": "bulk", "value": "bulk-small-current-value"})
    must(st, o, 201, "put bulk (small)")
    for i in range(1, n + 1):
        st, o = call(sock, "POST", "/v1/admin/versions/bulk/%d" % i, {"action": "disable"})
        must(st, o, 200, "disable bulk %d" % i)
    print("ok")
elif mode == "compact":
    t0 = time.monotonic()
    st, o = call(sock, "POST", "/v1/admin/secrets", {"name": "tmp", "value": "tmp-value-%d" % time.time_ns()})
    must(st, o, 201, "put tmp")
    st, o = call(sock, "DELETE", "/v1/admin/secrets/tmp")
    must(st, o, 200, "delete tmp")
    print("%.1f" % (1000 * (time.monotonic() - t0)))
elif mode == "storm":
    end, n = time.monotonic() + float(sys.argv[3]), 0
    while time.monotonic() < end:
        st, o = call(sock, "POST", "/v1/admin/secrets", {"name": "tmp", "value": "tmp-value-%d" % time.time_ns()})
        must(st, o, 201, "put tmp")
        st, o = call(sock, "DELETE", "/v1/admin/secrets/tmp")
        must(st, o, 200, "delete tmp")
        n += 1
    print(n)
elif mode == "leak":
    st, o = call(sock, "POST", "/v1/scan", raw=b"oops: gone-value-0123456789abcdef in a log line")
    must(st, o, 200, "scan sighting gone")
    print(o["total"])
elif mode == "tool":
    seconds = float(sys.argv[3])
    st, o = call(sock, "POST", "/v1/token", {"secret": "s", "use": "redeem", "ttl": 600})
    must(st, o, 201, "redeem token")
    rtok = o["token"]
    st, o = call(sock, "POST", "/v1/token", {"secret": "s", "use": "proxy", "ttl": 600})
    must(st, o, 201, "proxy token")
    ptok = o["token"]
    lat = {"redeem": [], "proxy": [], "scan": [], "sighting": []}
    statuses = {k: {} for k in lat}
    end = time.monotonic() + seconds
    kinds = list(lat)
    while time.monotonic() < end:
        random.shuffle(kinds)  # each kind as likely as another to meet an admin request mid-way
        for kind in kinds:
            t0 = time.monotonic()
            if kind == "redeem":
                st, o = call(sock, "POST", "/v1/redeem", {"token": rtok})
                if st == 200 and o.get("value") != "unlocked-redeem-value-0123456789":
                    st = -1
            elif kind == "proxy":  # decided in full (token, store, grant), refused on the host
                st, o = call(sock, "GET", "/v1/proxy/s/x", headers=(("Authorization", "Bearer " + ptok),
                                                                    ("X-Credbroker-Host", "elsewhere.example")))
            elif kind == "scan":
                st, o = call(sock, "POST", "/v1/scan", raw=b"nothing secret in this text, only words " * 4)
            else:  # a leak response for a value marked leaked already
                st, o = call(sock, "POST", "/v1/scan", raw=b"again: gone-value-0123456789abcdef, words")
                if st == 200 and o.get("total") != 1:
                    st = -1
            lat[kind].append(1000 * (time.monotonic() - t0))
            statuses[kind][st] = statuses[kind].get(st, 0) + 1
        time.sleep(0.01)
    out = {"statuses": statuses}
    for kind, v in lat.items():
        v.sort()
        out[kind] = {"n": len(v), "p50_ms": round(v[len(v) // 2], 2), "p95_ms": round(v[int(len(v) * 0.95)], 2),
                     "max_ms": round(v[-1], 2)}
    print(json.dumps(out))
