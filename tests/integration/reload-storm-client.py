# SPDX-License-Identifier: Apache-2.0
# test-reload-storm.sh's client: issue tokens one connection each for
# SECONDS (at most 3,000), then introspect every one; print one JSON
# summary line.
import json, socket, sys, time

sock, seconds = sys.argv[1], float(sys.argv[2])


def call(path, body):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(sock)
    b = json.dumps(body).encode()
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (path.encode(), len(b)) + b)
    d = b""
    while True:
        x = s.recv(65536)
        if not x:
            break
        d += x
    s.close()
    head, _, rest = d.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(rest or b"{}")


lat, statuses, ttls, toks = [], {}, {}, []
end = time.monotonic() + seconds
while time.monotonic() < end and len(toks) < 3000:  # under the per-uid cap (10,000)
    t0 = time.monotonic()
    st, o = call("/v1/token", {"secret": "s", "use": "redeem"})
    lat.append(time.monotonic() - t0)
    statuses[st] = statuses.get(st, 0) + 1
    if st == 201:
        ttls[o["expires_in"]] = ttls.get(o["expires_in"], 0) + 1
        toks.append(o["token"])
    time.sleep(0.001)  # spread over the storm
bad_introspect = 0
for t in toks:
    st, o = call("/v1/introspect", {"token": t})
    if st != 200 or o.get("secret") != "s":
        bad_introspect += 1
lat.sort()
print(json.dumps({"n": len(lat), "statuses": statuses, "ttls": ttls, "bad_introspect": bad_introspect,
                  "p50_ms": 1000 * lat[len(lat) // 2], "p95_ms": 1000 * lat[int(len(lat) * 0.95)],
                  "max_ms": 1000 * lat[-1]}))
