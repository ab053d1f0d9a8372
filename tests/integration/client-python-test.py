#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Run by test-clients.sh as the tool's uid: client/python/credbroker.py
against the real daemon.  Prints "ok ..." / "FAIL ..." lines."""
import os
import sys
import urllib.request

import credbroker

want = open(sys.argv[1], "rb").read()
fails = 0


def check(name, cond, detail=""):
    global fails
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)))
    fails += 0 if cond else 1


c = credbroker.Client()
check("health", c.health().get("status") == "ok")
t = c.token("demo", use="redeem")
check("token(use=redeem)", t["token"].startswith("cbt_") and t["accessor"].startswith("cba_"), t.get("accessor"))
check("redeem", c.redeem(t["token"]) == want)
check("revoke", c.revoke(t["token"]) == 1)
try:
    c.redeem(t["token"])
    check("a revoked token is refused", False)
except credbroker.Error as e:
    check("a revoked token is refused", e.status == 401, e)
check("fetch", c.fetch("demo") == want)
try:
    c.token("nosuch")
    check("no grant: Error(403, forbidden)", False)
except credbroker.Error as e:
    check("no grant: Error(403, forbidden)", e.status == 403 and e.code == "forbidden" and "no grant" in e.message, e)
base, key = c.sdk("demo", proxy_url=os.environ["PROXY_URL"])
check("sdk(): base URL for openai", base == os.environ["PROXY_URL"] + "/v1/proxy/demo/v1", base)
info = c._call("POST", "/v1/introspect", {"token": key})[1]
check("sdk(): a uid-bound proxy token", info["use"] == ["proxy"] and info["expires_in"] > 300, info)
# The proxy's refusal in the vendors' shape, through plain urllib (any SDK's view).
req = urllib.request.Request(base + "/models", headers={"Authorization": "Bearer cbt_wrong"})
try:
    urllib.request.urlopen(req, timeout=10)
    check("proxy refusal", False)
except urllib.error.HTTPError as e:
    import json
    body = json.loads(e.read())
    check("proxy refusal in the vendors' shape", e.code == 401 and body["type"] == "error" and
          body["error"]["code"] == "unauthorized" and body["error"]["message"], body)
check("revoke(sdk key)", c.revoke(key) == 1)
sys.exit(1 if fails else 0)
