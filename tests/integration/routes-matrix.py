#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Every socket x method x target the route table decides (test-routes.sh).

Sends each request as raw bytes on a fresh connection (tools.sock,
admin.sock, the loopback TCP listener), as root (an admin; on tools.sock a
uid no client selects), and prints one line per request: the status, the
error code and message (refusals; the shape: "sdk" for the vendors' SDK
shape, "plain" otherwise), and the audit records the request left
(type/route/status/decision).  Nothing varies between runs: no request
changes what a later one sees (names that exist nowhere, no body).

Usage: routes-matrix.py RUNDIR TCPPORT AUDITLOG
"""
import json
import os
import socket
import sys
import time

run_dir, port, audit_log = sys.argv[1], int(sys.argv[2]), sys.argv[3]

TARGETS = [
    "/", "/v1/nothing", "/v1/health", "/V1/health", "/v1/token", "/v1/tokens", "/v1/redeem", "/v1/introspect",
    "/v1/revoke", "/v1/scan", "/v1/redact", "/v1/approvals/abc", "/v1/approvals/",
    "/v1/admin/secrets", "/v1/admin/secrets/nosuch", "/v1/admin/secrets/", "/v1/admin/secrets/a/b",
    "/v1/admin/rotate", "/v1/admin/versions/nosuch", "/v1/admin/versions/", "/v1/admin/versions/nosuch/1",
    "/v1/admin/versions/" + "x" * 300 + "/1", "/v1/admin/versions/nosuch/1/x", "/v1/admin/revoke", "/metrics",
    "/v1/admin/metrics", "/v1/admin/status", "/v1/admin/approvals", "/v1/admin/approvals/",
    "/v1/admin/approvals/abc", "/v1/admin/approvals/abc/approve", "/v1/admin/approvals/abc/deny",
    "/v1/admin/approvals/abc/approve/x", "/v1/admin/approvalsX", "/v1/admin/pubkey", "/v1/admin/pubkeys",
    "/v1/admin/pubkeyX", "/v1/admin/pubkey/retire", "/v1/admin/import", "/v1/admin/audit/idhash",
    "/v1/admin/audit/verify", "/v1/admin/audit/", "/v1/admin/audit/x", "/v1/admin/nothing", "/v1/admin/",
    "/v1/proxy/nosuch/x", "/v1/proxy/", "http://example.com/x", "HTTPS://EXAMPLE.COM/x", "httpx://e/x",
]
METHODS = ["GET", "POST", "DELETE", "PUT"]
# Writes that change state are left out: POST /v1/admin/policy/reload and
# /v1/admin/pubkey/rotate (their method checks are covered by GET).
SKIP = {("POST", "/v1/admin/policy/reload"), ("POST", "/v1/admin/pubkey/rotate")}
EXTRA = [("GET", "/v1/admin/policy/reload"), ("GET", "/v1/admin/pubkey/rotate"), ("DELETE", "/v1/admin/pubkey/rotate"),
         ("CONNECT", "/v1/token"), ("CONNECT", "example.com:443"), ("HEAD", "/v1/health"), ("PATCH", "/v1/proxy/nosuch/x")]


def connect(sock):
    if sock == "tcp":
        s = socket.create_connection(("127.0.0.1", port))
    else:
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.path.join(run_dir, sock + ".sock"))
    s.settimeout(10)
    return s


def request(sock, method, target):
    s = connect(sock)
    s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % (method, target)).encode())
    data = b""
    while True:
        try:
            c = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not c:
            break
        data += c
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else "none"
    return status, body


def describe(status, body):
    if status.startswith("2") or not body:
        return status
    try:
        o = json.loads(body)
    except ValueError:
        return status + " (not JSON)"
    if isinstance(o.get("error"), dict):
        return "%s sdk %s: %s" % (status, o["error"].get("code"), o["error"].get("message"))
    return "%s plain %s: %s" % (status, o.get("error"), o.get("message"))


def audit_size():
    try:
        return os.path.getsize(audit_log)
    except OSError:
        return 0


def records(since, wait):
    deadline = time.monotonic() + (1.0 if wait else 0)
    while True:
        with open(audit_log, "rb") as f:
            f.seek(since)
            lines = f.read().splitlines()
        out = []
        for line in lines:
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if o.get("route") == "refusals.quiet":
                continue
            if o.get("type") == "intent":
                out.append("intent")
            elif "route" in o:
                out.append("%s/%s/%s" % (o.get("route"), o.get("status"), o.get("decision")))
        if out or time.monotonic() >= deadline:
            return out
        time.sleep(0.01)


cases = [(m, t) for t in TARGETS for m in METHODS if (m, t) not in SKIP] + EXTRA
for sock in ("tools", "admin", "tcp"):
    for method, target in cases:
        before = audit_size()
        status, body = request(sock, method, target)
        # A liveness probe's record is not waited for by the daemon: here it is.
        probe = method == "GET" and target == "/v1/health"
        recs = records(before, probe)
        shown = target if len(target) < 60 else target[:40] + "...(%d bytes)" % len(target)
        print("%s %s %s -> %s | %s" % (sock, method, shown, describe(status, body), " ".join(recs) or "-"))
