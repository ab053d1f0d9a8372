#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 14, case 1: a connection handed over (SCM_RIGHTS) while its
# connector stays alive does not lend the connector's identity.  Each
# request is judged as the process that wrote its bytes; a connection whose
# bytes came from two processes is refused.
#   - to another uid, after the connector's own 201 on it, and before it sent anything;
#   - to another executable of the same uid (/bin/sh), after a 201;
#   - the giver's process-bound token redeemed over the passed connection.
. "$(dirname "$0")/identity-lib.sh"
U1=61401 U2=61402
POLICY='{ "clients": { "py": {"uid": '$U1', "exe": "'$PY'"} },
  "grants": [ {"client": "py", "secret": "demo", "use": ["redeem"], "max_ttl": 60},
              {"client": "py", "secret": "up", "use": ["proxy"], "max_ttl": 60},
              {"client": "py", "secret": "*", "use": ["scan"]} ],
  "admins": {"uids": [0]} }'
start_daemon

out=$(run_as $U1 $PYBIN "$IDC" "$TS" request 2>&1)
expect "legitimate: the granted tool gets a token" "request: 201" "$out"

out=$(timeout 30 $PYBIN "$IDC" "$TS" fdpass $U2 sent $U1 2>&1)
expect "connector gets its 201 first" "connector: 201" "$out"
expect "connector stayed alive" "connector-alive: yes" "$out"
refute "uid $U2 on the passed connection gets no token" "receiver: 201" "$out"
expect "and is told why" "more than one process" "$(echo "$out" | grep '^receiver:')"

out=$(timeout 30 $PYBIN "$IDC" "$TS" fdpass $U2 fresh $U1 2>&1)
refute "uid $U2 on a passed, unused connection gets no token" "receiver: 201" "$out"
expect "it is judged as itself (uid $U2)" "uid $U2" "$(echo "$out" | grep '^receiver:')"

out=$(timeout 30 $PYBIN "$IDC" "$TS" fdpass $U1 exec $U1 2>&1)
expect "same uid: connector gets its 201 first" "connector: 201" "$out"
refute "same uid, another executable (/bin/sh) on the passed connection: no token" "receiver: HTTP/1.1 201" "$out"
expect "same uid, another executable: refused" "receiver: HTTP/1.1 403" "$out"

# The giver's process-bound token, redeemed by the receiver over the
# passed connection.
tok_out=$(timeout 30 $PYBIN - "$TS" $U1 $U2 <<'PY'
import json, os, socket, sys
path, u1, u2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def req(s, body, url="/v1/token"):
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (url.encode(), len(body)) + body)
    d = b""
    while b"\r\n\r\n" not in d:
        k = s.recv(65536)
        if not k: return "EOF"
        d += k
    h, r = d.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in h.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(r) < n: r += s.recv(65536)
    return h.split(b" ")[1].decode() + " " + r.decode()
a, b = socket.socketpair()
if os.fork() == 0:
    a.close(); os.setgroups([]); os.setresgid(u2, u2, u2); os.setresuid(u2, u2, u2)
    msg, fds, _, _ = socket.recv_fds(b, 4096, 1)
    c = socket.socket(fileno=fds[0])
    r = req(c, json.dumps({"token": msg.decode()}).encode(), "/v1/redeem")
    print("redeem-by-receiver:", r if not r.startswith("200") else "200 (value withheld)", flush=True)
    os._exit(0)
b.close(); os.setgroups([]); os.setresgid(u1, u1, u1); os.setresuid(u1, u1, u1)
c = socket.socket(socket.AF_UNIX); c.connect(path)
r = req(c, b'{"secret":"demo","use":"redeem","bind":"process"}')
print("giver:", r.split(" ")[0], flush=True)   # the status only: no token in the output
tok = json.loads(r.split(" ", 1)[1])["token"] if r.startswith("201") else "none"
socket.send_fds(a, [tok.encode()], [c.fileno()])
os.wait()
PY
)
expect "giver gets a process-bound token" "giver: 201" "$tok_out"
refute "the receiver cannot redeem it over the passed connection" "redeem-by-receiver: 200" "$tok_out"
expect "refused" "redeem-by-receiver: 403" "$tok_out"

# A streamed body (scan: decided on the headers) finished by another
# process: the request is aborted, not answered on the first one's grant.
scan_out=$(timeout 30 $PYBIN - "$TS" $U1 $U2 <<'PY'
import os, socket, sys
path, u1, u2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
BODY = b"hello world " * 200
a, b = socket.socketpair()
if os.fork() == 0:
    a.close(); os.setgroups([]); os.setresgid(u2, u2, u2); os.setresuid(u2, u2, u2)
    msg, fds, _, _ = socket.recv_fds(b, 16, 1)
    c = socket.socket(fileno=fds[0]); c.setblocking(True)
    try:
        c.sendall(BODY[len(BODY) // 2:])
        c.settimeout(10); d = b""
        while True:
            k = c.recv(65536)
            if not k: break
            d += k
        print("second-half-writer:", (d.split(b"\r\n")[0] or b"EOF").decode(), flush=True)
    except OSError as e:
        print("second-half-writer: closed (%s)" % e.__class__.__name__, flush=True)
    os._exit(0)
b.close(); os.setgroups([]); os.setresgid(u1, u1, u1); os.setresuid(u1, u1, u1)
c = socket.socket(socket.AF_UNIX); c.connect(path)
# One request alone first: it is served.
c.sendall(b"POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
d = b""
while b"\r\n\r\n" not in d: d += c.recv(65536)
print("own-scan:", d.split(b"\r\n")[0].decode(), flush=True)
c2 = socket.socket(socket.AF_UNIX); c2.connect(path)
c2.sendall(b"POST /v1/scan HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY[:len(BODY) // 2])
import time; time.sleep(0.3)
socket.send_fds(a, [b"x"], [c2.fileno()])
os.wait()
PY
)
echo "$scan_out" | sed "s/^/     /"
expect "legitimate: the granted tool's own scan is served" "own-scan: HTTP/1.1 200" "$scan_out"
refute "a scan body finished by uid $U2 is not answered 200" "second-half-writer: HTTP/1.1 200" "$scan_out"

# The same for a proxied request: the granted tool writes the head with its
# process-bound proxy token, uid U2 writes the body.  The body must never
# reach the upstream with the injected credential.
UPSTREAM=${CB_SRCDIR:-$HERE/../..}/tests/integration/proxy-upstream.py
if [ -f "$UPSTREAM" ]; then
        $PYBIN "$UPSTREAM" --plain --port 0 --log "$T/up.log" >"$T/up.port" 2>"$T/up.err" &
        EXTRA_CLEANUP="kill $! 2>/dev/null"
        for _ in $(seq 50); do [ -s "$T/up.port" ] && break; sleep 0.1; done
        UPP=$(head -n 1 "$T/up.port")
        printf 'sk-%s' "$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')" |
                timeout 30 "$CLI" --admin-socket "$AS" put up --host "http://127.0.0.1:$UPP" \
                --inject 'Authorization: Bearer {}' >/dev/null || bad "put up"
        proxy_out=$(timeout 30 $PYBIN - "$TS" $U1 $U2 <<'PY'
import json, os, socket, sys, time
path, u1, u2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def drop(u): os.setgroups([]); os.setresgid(u, u, u); os.setresuid(u, u, u)
def answer(c):
    c.settimeout(10); d = b""
    try:
        while True:
            k = c.recv(65536)
            if not k: break
            d += k
            if b"\r\n\r\n" in d and d.startswith(b"HTTP/1.1 2") and b"Content-Length" in d: break
    except OSError: pass
    return (d.split(b"\r\n")[0] or b"EOF").decode()
a, b = socket.socketpair(); body = b'{"evil":"written by uid %d"}' % u2
if os.fork() == 0:
    a.close(); drop(u2)
    _, fds, _, _ = socket.recv_fds(b, 100, 1); c = socket.socket(fileno=fds[0]); c.setblocking(True)
    time.sleep(0.3); c.sendall(body)
    print("body-writer:", answer(c), flush=True); os._exit(0)
b.close(); drop(u1)
c = socket.socket(socket.AF_UNIX); c.connect(path)
tb = b'{"secret":"up","use":"proxy","bind":"process"}'
c.sendall(b"POST /v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(tb) + tb)
d = b""
while b"}" not in d: d += c.recv(65536)
tok = json.loads(d.split(b"\r\n\r\n", 1)[1])["token"]
c2 = socket.socket(socket.AF_UNIX); c2.connect(path)
c2.sendall(b"POST /v1/proxy/up/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           b"Content-Length: 5\r\n\r\nhello" % tok.encode())
print("own-proxy:", answer(c2), flush=True)
c3 = socket.socket(socket.AF_UNIX); c3.connect(path)
c3.sendall(b"POST /v1/proxy/up/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           b"Content-Length: %d\r\n\r\n" % (tok.encode(), len(body)))
time.sleep(0.5); socket.send_fds(a, [b"x"], [c3.fileno()]); os.wait()
PY
)
        echo "$proxy_out" | sed "s/^/     /"
        expect "legitimate: the granted tool's own proxied request is served" "own-proxy: HTTP/1.1 200" "$proxy_out"
        refute "a proxied body written by uid $U2 is not answered 200" "body-writer: HTTP/1.1 200" "$proxy_out"
        if grep -q "written by uid" "$T/up.log" 2>/dev/null; then
                bad "the upstream received uid $U2's body with the injected credential"
        else
                ok "the upstream never received uid $U2's body"
        fi
else
        echo "     (tests/integration/proxy-upstream.py not found: the proxy variant is not run)"
fi
# Descriptors sent TO the daemon (red-team F5): closing one on a serving
# thread runs its file's flush (a FUSE file of the caller's own mount can
# hold that forever).  The kernel refuses them at sendmsg() (SO_PASSRIGHTS,
# Linux >= 6.16) or, on older kernels, the request is refused and nothing is
# installed in the daemon.
rights_out=$(run_as $U2 $PYBIN - "$TS" <<'PY' 2>&1
import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
r, w = os.pipe()
req = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
try:
    socket.send_fds(s, [req], [r, w]); print("sent-with-fds")
    d = s.recv(4096); print("answer:", (d.split(b"\r\n")[0] or b"EOF").decode())
except PermissionError:
    print("refused-at-send")
PY
)
echo "$rights_out" | sed "s/^/     /"
refute "a request carrying descriptors is not served" "answer: HTTP/1.1 200" "$rights_out"
if uname -r | awk -F. '{exit !($1 > 6 || ($1 == 6 && $2 >= 16))}'; then
        expect "Linux >= 6.16: the kernel refuses descriptors for the daemon at sendmsg()" "refused-at-send" "$rights_out"
fi
for i in 1 2 3; do run_as $U2 $PYBIN - "$TS" >/dev/null 2>&1 <<'PY'
import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
try: socket.send_fds(s, [b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"], [0, 1, 2]); s.settimeout(5); s.recv(100)
except OSError: pass
PY
done
out=$(run_as $U1 $PYBIN "$IDC" "$TS" request 2>&1)
expect "the granted tool is still served afterwards" "request: 201" "$out"

finish
