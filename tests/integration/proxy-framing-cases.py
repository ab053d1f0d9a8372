#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The raw-byte cases of test-proxy-framing.sh (run as the tool's uid).

argv: T (the test dir: tok/NAME token files, up.log the raw upstream's log),
TOOLS_SOCK.  Every request is written byte for byte on tools.sock; the
upstream's log (raw-upstream.py) says what reached it.  Prints "ok ..." or
"FAIL ..." per check; the values never appear (the upstream logs hold them,
and only membership is tested).
"""
import json
import os
import re
import socket
import sys
import time

T, SOCK = sys.argv[1], sys.argv[2]
TOK = {n: open(os.path.join(T, "tok", n)).read().strip() for n in os.listdir(os.path.join(T, "tok"))}
LOG = os.path.join(T, "up.log")
fails = 0


def ok(msg):
    print("ok   " + msg, flush=True)


def bad(msg):
    """A failure, with the injected credentials the upstream log quotes
    masked (the values are the test's secrets) and tokens too."""
    global fails
    fails += 1
    msg = re.sub(r"(?i)(authorization: )(?:[^\\\r\n\"]|\\\\)*", r"\1<masked>", msg)
    for n, t in TOK.items():
        msg = msg.replace(t, "<token of %s>" % n)
    print("FAIL " + msg, flush=True)


def recs():
    try:
        return [json.loads(l) for l in open(LOG, encoding="utf-8")]
    except FileNotFoundError:
        return []


def send(raw, wait=5.0, linger=True):
    """Write raw; read one response.  (status, body, closed, seconds);
    linger: wait up to 1 s to see whether the broker closes the connection."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(wait)
    try:
        s.connect(SOCK)
    except OSError as e:
        return 0, "cannot connect: %s" % e, True, 0.0
    t0 = time.monotonic()
    s.sendall(raw)
    data = b""
    status, body, closed = 0, b"", False
    try:
        while b"\r\n\r\n" not in data:
            d = s.recv(65536)
            if not d:
                closed = True
                break
            data += d
        if b"\r\n\r\n" in data:
            head, rest = data.split(b"\r\n\r\n", 1)
            status = int(head.split(b" ")[1])
            hl = head.lower()
            if b"content-length:" in hl:
                n = int(hl.split(b"content-length:")[1].split(b"\r\n")[0])
                while len(rest) < n:
                    d = s.recv(65536)
                    if not d:
                        closed = True
                        break
                    rest += d
                body = rest[:n]
            elif b"transfer-encoding: chunked" in hl:
                while not rest.endswith(b"0\r\n\r\n"):
                    d = s.recv(65536)
                    if not d:
                        closed = True
                        break
                    rest += d
                body = rest
            if not closed and linger:
                s.settimeout(1.0)
                try:
                    closed = s.recv(1) == b""
                except socket.timeout:
                    closed = False
    except socket.timeout:
        pass
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    s.close()
    return status, body.decode("latin-1"), closed, time.monotonic() - t0


def req(method, target, headers=(), body=b"", secret="up", token=True):
    h = "Host: x\r\n"
    if token:
        h += "Authorization: Bearer %s\r\n" % TOK[secret]
    for x in headers:
        h += x + "\r\n"
    return ("%s %s HTTP/1.1\r\n%s\r\n" % (method, target, h)).encode("latin-1") + body


def refused(name, raw, want=400, closed=True):
    before = len(recs())
    st, body, cl, secs = send(raw)
    after = recs()[before:]
    if st != want:
        bad("%s: status %d, wanted %d: %s" % (name, st, want, body[:200]))
    elif after:
        bad("%s: refused but the upstream received: %s" % (name, json.dumps(after)[:300]))
    elif closed and not cl:
        bad("%s: %d but the connection stayed open" % (name, st))
    elif secs > 3:
        bad("%s: took %.1f s" % (name, secs))
    else:
        ok("%s (%d%s, nothing upstream)" % (name, st, ", closed" if cl else ""))


def passed(name, raw, check, want=200):
    before = len(recs())
    st, body, _, _ = send(raw)
    after = recs()[before:]
    if st != want:
        bad("%s: status %d, wanted %d: %s" % (name, st, want, body[:200]))
        return None
    if not check(after):
        bad("%s: the upstream saw %s" % (name, json.dumps(after)[:400]))
        return None
    ok(name)
    return after


def one(after):
    return len(after) == 1 and after[0].get("complete")


def hdr(r, name):
    out = []
    for line in r["head"].split("\r\n")[1:]:
        if ":" in line and line.split(":", 1)[0].strip().lower() == name:
            out.append(line.split(":", 1)[1].strip())
    return out


def names(r):
    return [line.split(":", 1)[0].lower() for line in r["head"].split("\r\n")[1:] if ":" in line]


print("# request framing (RFC 9112 §6)")
P = "/v1/proxy/up/echo"
CH = b"5\r\nhello\r\n0\r\n\r\n"
refused("Content-Length and Transfer-Encoding", req("POST", P, ["Content-Length: 5", "Transfer-Encoding: chunked"], CH))
refused("Transfer-Encoding then Content-Length", req("POST", P, ["Transfer-Encoding: chunked", "Content-Length: 15"], CH))
refused("two Content-Length", req("POST", P, ["Content-Length: 5", "Content-Length: 5"], b"hello"))
refused("Content-Length 0 then 5", req("POST", P, ["Content-Length: 0", "Content-Length: 5"], b"hello"))
refused("Content-Length list '5, 5'", req("POST", P, ["Content-Length: 5, 5"], b"hello"))
refused("Content-Length '+5'", req("POST", P, ["Content-Length: +5"], b"hello"))
refused("Content-Length '-1'", req("POST", P, ["Content-Length: -1"], b"hello"))
refused("Content-Length '0x5'", req("POST", P, ["Content-Length: 0x5"], b"hello"))
refused("Content-Length overflow", req("POST", P, ["Content-Length: 99999999999999999999999"], b"hello"), want=413)
refused("Transfer-Encoding: Chunked (case)", req("POST", P, ["Transfer-Encoding: Chunked"], CH))
refused("Transfer-Encoding: 'chunked ' (space)", req("POST", P, ["Transfer-Encoding: chunked "], CH))
refused("Transfer-Encoding: chunked, chunked", req("POST", P, ["Transfer-Encoding: chunked, chunked"], CH))
refused("Transfer-Encoding: gzip, chunked", req("POST", P, ["Transfer-Encoding: gzip, chunked"], CH))
refused("Transfer-Encoding: gzip (no hang)", req("POST", P, ["Transfer-Encoding: gzip"], b"hello"))
refused("Transfer-Encoding: identity (no hang)", req("POST", P, ["Transfer-Encoding: identity"], b"hello"))
refused("Transfer-Encoding twice", req("POST", P, ["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], CH))
refused("HTTP/1.0 with Transfer-Encoding: chunked", req("POST", P, ["Transfer-Encoding: chunked"], CH).replace(
        b"HTTP/1.1", b"HTTP/1.0", 1))
refused("obs-fold in Transfer-Encoding", req("POST", P, ["Transfer-Encoding:", " chunked"], CH))
refused("obs-fold in another header", req("POST", P, ["X-A: b", " c", "Content-Length: 5"], b"hello"))
refused("space before the colon (Content-Length :)", req("POST", P, ["Content-Length : 5"], b"hello"))
st, _, _, _ = send(req("GET", "/v1/proxy/up/echo"))
(ok if st == 200 else bad)("the daemon still serves after all that (%d)" % st)

a = passed("chunked body with an extension and a trailer: re-framed by the broker",
           req("POST", P, ["Transfer-Encoding: chunked"], b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"),
           lambda a: one(a) and a[0]["body"] == "hello" and hdr(a[0], "transfer-encoding") == ["chunked"]
           and not hdr(a[0], "content-length") and "x-trailer" not in a[0]["head"].lower())
a = passed("Content-Length body: sent with that length", req("POST", P, ["Content-Length: 5"], b"hello"),
           lambda a: one(a) and a[0]["body"] == "hello" and hdr(a[0], "content-length") == ["5"]
           and not hdr(a[0], "transfer-encoding"))
a = passed("Content-Length with leading zeros (one valid length)", req("POST", P, ["Content-Length: 005"], b"hello"),
           lambda a: one(a) and a[0]["body"] == "hello" and hdr(a[0], "content-length") == ["5"])
a = passed("Transfer_Encoding and Content_Length spelt with '_': never forwarded",
           req("POST", P, ["Transfer-Encoding: chunked", "Transfer_Encoding: gzip", "Content_Length: 99"], CH),
           lambda a: one(a) and a[0]["body"] == "hello" and "_" not in "".join(names(a[0])))
a = passed("a second request in the body stays body", req("POST", P, ["Content-Length: 40"],
           b"GET /admin HTTP/1.1\r\nHost: x\r\nX-Pad: 12345\r\n"),
           lambda a: one(a) and a[0]["body"].startswith("GET /admin"))

print("# responses held to the same rules")
for path, what in (("/resp/cl-te", "Content-Length and Transfer-Encoding"), ("/resp/two-cl", "two Content-Length"),
                   ("/resp/ce-list", "Content-Encoding: identity, gzip"), ("/resp/te-gzip", "Transfer-Encoding: gzip, chunked"),
                   ("/resp/fold", "obs-fold")):
    before = len(recs())
    st, body, _, _ = send(req("GET", "/v1/proxy/up" + path))
    st2, _, _, _ = send(req("GET", "/v1/proxy/up/echo"))
    after = recs()[before:]
    if st != 502:
        bad("upstream answers %s: %d, wanted 502: %s" % (what, st, body[:200]))
    elif st2 != 200 or len(after) != 2 or after[0]["conn"] == after[1]["conn"]:
        bad("upstream answers %s: the next request reused that connection: %s" % (what, json.dumps(after)[:300]))
    else:
        ok("upstream answers %s: 502, and that connection is not reused" % what)

for path in ("/resp/204-extra", "/resp/204-late", "/resp/304-extra", "/resp/200-late"):
    before = len(recs())
    st, _, _, _ = send(req("GET", "/v1/proxy/up" + path))
    time.sleep(0.4)
    st2, b2, _, _ = send(req("GET", "/v1/proxy/other/echo", secret="other"))
    after = recs()[before:]
    if st not in (200, 204, 304) or st2 != 200 or b2 != "ok" or len(after) != 2 or after[0]["conn"] == after[1]["conn"]:
        bad("upstream answers %s: %d, then the next tool's request got %d %r over %s" %
            (path, st, st2, b2[:40], json.dumps(after)[:300]))
    else:
        ok("upstream answers %s: that connection is never reused (the next request got its own answer)" % path)

print("# path and query bytes")
refused("a NUL byte in the target", b"GET /v1/proxy/up/echo\x00/../admin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + TOK["up"].encode() + b"\r\n\r\n")
refused("raw non-ASCII bytes in the path", b"GET /v1/proxy/up/ok/\xc0\xae\xc0\xae/admin HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + TOK["up"].encode() + b"\r\n\r\n", closed=True)
refused("raw '\"' in the query", req("GET", '/v1/proxy/up/echo?a="x"'))
refused("raw '|' in the query", req("GET", "/v1/proxy/up/echo?a=1|2"))
refused("raw space in the query", req("GET", "/v1/proxy/up/echo?a=1 2"))
passed("'+' in the query carried through unchanged", req("GET", "/v1/proxy/up/echo?q=a+b&c=%2B"),
       lambda a: one(a) and a[0]["head"].split(" ")[1] == "/echo?q=a+b&c=%2B")

print("# method overrides (secret 'post': methods sealed to POST)")
PP = "/v1/proxy/post/echo"
for h in ("X-HTTP-Method-Override: DELETE", "X_HTTP_METHOD_OVERRIDE: DELETE", "x_http_method: DELETE",
          "X-Method-Override: DELETE", "X_Original_URL: /admin", "X-Rewrite-URL: /admin", "x_rewrite_url: /admin"):
    passed("header '%s' dropped" % h.split(":")[0], req("POST", PP, [h, "Content-Length: 0"], secret="post"),
           lambda a: one(a) and "DELETE" not in a[0]["head"] and "/admin" not in a[0]["head"])
for q in ("_method=DELETE", ".method=DELETE", "%20_method=DELETE", "+_method=DELETE", "%5Fmethod=DELETE",
          "_METHOD=DELETE", "_method%5B%5D=DELETE", "a=1;_method=DELETE", "x_http_method_override=DELETE"):
    passed("query '%s' dropped" % q, req("POST", PP + "?keep=1&" + q, ["Content-Length: 0"], secret="post"),
           lambda a: one(a) and "DELETE" not in a[0]["head"] and "keep=1" in a[0]["head"])
FORM = ["Content-Type: application/x-www-form-urlencoded"]
for b in (b"a=1&_method=DELETE", b"_method=DELETE", b"a=1&%5Fmethod=DELETE", b"a=1&+.method=DELETE",
          b"a=1;_method=PUT", b"a=1&_method[x]=DELETE"):
    for frame in ("cl", "chunked"):
        hh = FORM + (["Content-Length: %d" % len(b)] if frame == "cl" else ["Transfer-Encoding: chunked"])
        bb = b if frame == "cl" else b"".join(b"%x\r\n%s\r\n" % (1, b[i:i + 1]) for i in range(len(b))) + b"0\r\n\r\n"
        before = len(recs())
        st, body, _, _ = send(req("POST", PP, hh, bb, secret="post"))
        after = [r for r in recs()[before:] if r.get("complete")]
        if st == 400 and "method_override" in body and not after:
            ok("form body %r (%s): 400, no complete request upstream" % (b.decode(), frame))
        else:
            bad("form body %r (%s): %d %s; upstream: %s" % (b.decode(), frame, st, body[:150], json.dumps(after)[:200]))
for ct, b in (("application/x-www-form-urlencoded,text/plain", b"_method=DELETE"),
              ("text/plain, application/x-www-form-urlencoded", b"_method=DELETE"),
              (None, b"a=1&_method=DELETE"),
              ("application/json", b'{"a":1,"_method":"DELETE"}'),
              ("application/vnd.api+json; charset=utf-8", b'{"\\u005fmethod":"DELETE"}')):
    hh = (["Content-Type: " + ct] if ct else []) + ["Content-Length: %d" % len(b)]
    before = len(recs())
    st, rb, _, _ = send(req("POST", PP, hh, b, secret="post"))
    after = [r for r in recs()[before:] if r.get("complete")]
    if st == 400 and "method_override" in rb and not after:
        ok("body %r as %s: 400, no complete request upstream" % (b.decode(), ct))
    else:
        bad("body %r as %s: %d %s" % (b.decode(), ct, st, rb[:150]))
passed("form body without an override passes", req("POST", PP, FORM + ["Content-Length: 13"], b"a=1&method=ok",
       secret="post"), lambda a: one(a) and a[0]["body"] == "a=1&method=ok")
MP = ["Content-Type: multipart/form-data; boundary=XyZ"]
for part in (b'name="_method"', b"name=_method", b"name='_method'", b'name*=utf-8\'\'_method', b'name=" _method"'):
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ\r\nContent-Disposition: form-data; " +
            part + b"\r\n\r\nDELETE\r\n--XyZ--\r\n")
    before = len(recs())
    st, rb, _, _ = send(req("POST", PP, MP + ["Content-Length: %d" % len(body)], body, secret="post"))
    after = [r for r in recs()[before:] if r.get("complete")]
    if st == 400 and "method_override" in rb and not after:
        ok("multipart part %s: 400, no complete request upstream" % part.decode())
    else:
        bad("multipart part %s: %d %s" % (part.decode(), st, rb[:150]))
upload = os.urandom(200000).replace(b"--XyZ", b"--xyz")
body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n" + upload + b"\r\n--XyZ--\r\n")
passed("multipart file upload (200 kB) passes intact", req("POST", PP, MP + ["Content-Length: %d" % len(body)], body,
       secret="post"), lambda a: one(a) and a[0]["body"].encode("latin-1") == body)
refused("multipart with 'boundary' twice (methods sealed)",
        req("POST", PP, ["Content-Type: multipart/form-data; xboundary=AAA; boundary=XyZ", "Content-Length: 1"], b"x",
            secret="post"))

print("# the token first; never upstream; routing headers dropped")
a = send(req("GET", "/v1/proxy/up/echo", token=False))
b = send(req("GET", "/v1/proxy/no-such-secret/echo", token=False))
c = send(req("GET", "/v1/proxy/up/echo", ["Authorization: Bearer cbt_notatoken"], token=False))
(ok if a[:2] == b[:2] == c[:2] and a[0] == 401 else bad)(
    "no valid token: same answer for an existing and a missing name (%d/%d/%d)" % (a[0], b[0], c[0]))
refused("a token in a Cookie", req("GET", P, ["Cookie: s=" + TOK["up"]]), closed=False)
refused("a token in the query", req("GET", P + "?t=" + TOK["up"]), closed=False)
refused("a token percent-encoded in the query", req("GET", P + "?t=%63bt%5F" + TOK["up"][4:]), closed=False)
refused("a token in a path segment", req("GET", P + "/" + TOK["up"]), closed=False)
refused("a token percent-encoded in the path", req("GET", P + "/%63bt_" + TOK["up"][4:]), closed=False)
refused("a token in another header", req("GET", P, ["X-Other: x " + TOK["other"]]), closed=False)
passed("routing headers dropped", req("GET", P, ["Forwarded: for=1.2.3.4", "X-Forwarded-For: 1.2.3.4",
       "X_Forwarded_Host: evil", "X-Forwarded-Prefix: /admin", "X-Original-URI: /admin", "X-Envoy-Original-Path: /admin",
       "X-Real-IP: 1.2.3.4", "X-Keep: yes"]),
       lambda a: one(a) and set(names(a[0])) & {"forwarded", "x-forwarded-for", "x_forwarded_host", "x-forwarded-prefix",
                                                 "x-original-uri", "x-envoy-original-path", "x-real-ip"} == set()
       and hdr(a[0], "x-keep") == ["yes"])
passed("exactly one injected credential", req("GET", P, ["authorization: Bearer x", "Authori_zation: y"]),
       lambda a: one(a) and len(hdr(a[0], "authorization")) == 1)
print("# randomly framed requests (CB_FRAMING_RANDOM, default 200): nothing smuggled")
import random
rnd = random.Random(int(os.environ.get("CB_FRAMING_SEED", "13")))
FR = ["Content-Length: %d", "Content-Length: 0", "Content-Length: %d, %d", "Content-Length: +%d", "Content-Length:  %d",
      "Transfer-Encoding: chunked", "Transfer-Encoding: Chunked", "Transfer-Encoding: chunked, chunked",
      "Transfer-Encoding: gzip, chunked", "Transfer-Encoding:\r\n chunked", "Transfer-Encoding : chunked",
      "Transfer_Encoding: chunked", "Content_Length: %d", "X-Pad: a\r\n b"]
SMUGGLE = b"DELETE /admin HTTP/1.1\r\nHost: x\r\nX-Pad: "
before = len(recs())
bad_status, seen = 0, {}
for i in range(int(os.environ.get("CB_FRAMING_RANDOM", "200"))):
    payload = rnd.choice([b"hello", SMUGGLE, b"0\r\n\r\n" + SMUGGLE, b"a=1&_method=DELETE", b""])
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(payload[j:j + 3]), payload[j:j + 3]) for j in range(0, len(payload), 3))
    chunked += rnd.choice([b"0\r\n\r\n", b"0;x=1\r\nT: 1\r\n\r\n", b"0\n\n"])
    hs = []
    for _ in range(rnd.randint(0, 3)):
        f = rnd.choice(FR)
        hs.append(f % tuple([len(payload)] * f.count("%d")))
    # Never an incomplete request (a client that sends one waits, rightly).
    body = chunked if any("transfer" in h.lower() for h in hs) else payload
    raw = req("POST", P, hs, body, secret=rnd.choice(["up", "post"]).replace("post", "up"))
    st, _, _, _ = send(raw, wait=3.0, linger=False)
    seen[st] = seen.get(st, 0) + 1
    if st not in (200, 400, 413):
        bad_status += 1
after = recs()[before:]
smuggled = [r for r in after if not r.get("complete") and "partial" not in r or
            (r.get("complete") and not r["head"].startswith("POST /echo HTTP/1.1\r\n"))]
multi = [r for r in after if r.get("complete") and len(hdr(r, "authorization")) != 1]
st, _, _, _ = send(req("GET", "/v1/proxy/up/echo"))
if smuggled or multi or bad_status or st != 200:
    bad("random framing: statuses %s, smuggled %s, credentials %s, then %d" %
        (seen, json.dumps(smuggled)[:300], json.dumps(multi)[:200], st))
else:
    ok("random framing: every upstream request was the tool's own POST /echo with one credential (%d reached it; "
       "statuses %s)" % (len(after), seen))

print("# last, as it took the old daemon down: Content-Length: 0 with a chunk")
refused("Content-Length: 0 and a chunk (the crash)", req("POST", P, ["Content-Length: 0", "Transfer-Encoding: chunked"], CH))
st, _, _, _ = send(req("GET", "/v1/proxy/up/echo"))
(ok if st == 200 else bad)("the daemon still serves after it (%d)" % st)
sys.exit(1 if fails else 0)
