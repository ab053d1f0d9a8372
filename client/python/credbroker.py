# SPDX-License-Identifier: Apache-2.0
"""credbroker for Python tools: standard library only.

    import credbroker
    c = credbroker.Client()                        # $CREDBROKER_SOCKET or /run/credbroker/tools.sock
    base_url, api_key = c.sdk("openai")            # for openai.OpenAI(base_url=..., api_key=...)
    value = c.fetch("github")                      # bytes; needs a "redeem" grant

The broker identifies the calling process (its uid and the interpreter's
executable), so the policy names the interpreter (its resolved path, e.g.
/usr/bin/python3.11) or just the uid.  Values are returned as bytes and are
never logged; Python cannot wipe them: prefer sdk() (a proxy token: the
value never enters this process) to fetch().
"""
import http.client
import json
import os
import socket
import time

__all__ = ["Client", "Error", "DEFAULT_SOCKET", "DEFAULT_PROXY_URL"]

DEFAULT_SOCKET = "/run/credbroker/tools.sock"
DEFAULT_PROXY_URL = "http://127.0.0.1:8411"
MAX_ANSWER = 256 * 1024  # the broker's answers are small; a cap keeps a confused peer from filling memory


class Error(Exception):
    """A refusal or failure: .status (HTTP status, 0 if none), .code (the
    broker's error code, e.g. "forbidden"), and the broker's message."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


class Client:
    def __init__(self, socket_path=None, timeout=30.0):
        self.socket_path = socket_path or os.environ.get("CREDBROKER_SOCKET") or DEFAULT_SOCKET
        self.timeout = timeout

    def _call(self, method, path, body=None):
        conn = _UnixConnection(self.socket_path, self.timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read(MAX_ANSWER + 1)
            except OSError as e:
                raise Error(0, "unavailable", "cannot reach the broker at %s: %s" % (self.socket_path, e)) from None
            if len(raw) > MAX_ANSWER:
                raise Error(resp.status, "internal", "answer larger than %d bytes" % MAX_ANSWER)
            try:
                obj = json.loads(raw or b"{}")
            except ValueError:
                raise Error(resp.status, "internal", "malformed answer from the broker") from None
            if resp.status >= 400:
                err = obj.get("error")
                if isinstance(err, dict):  # the proxy's vendor-shaped refusals
                    raise Error(resp.status, err.get("code") or err.get("type"), err.get("message", ""))
                raise Error(resp.status, err, obj.get("message", ""))
            return resp.status, obj
        finally:
            conn.close()

    def health(self):
        return self._call("GET", "/v1/health")[1]

    def token(self, secret, use="proxy", ttl=None, bind=None, on_pending=None):
        """A token for secret: a dict with "token", "accessor", "expires_in".
        use: "proxy" (default, as the CLI and POST /v1/token) or "redeem"; bind: None (this
        executable), "process" or "uid" (proxy only: any program of the uid).
        Under an approval grant this waits for the operator's decision;
        on_pending(approval_id, timeout_s) is called once when held."""
        body = {"secret": secret, "use": use}
        if ttl is not None:
            body["ttl"] = int(ttl)
        if bind is not None:
            body["bind"] = bind
        status, obj = self._call("POST", "/v1/token", body)
        if status == 202:
            aid = obj["approval_id"]
            if on_pending:
                on_pending(aid, obj.get("expires_in"))
            deadline = time.monotonic() + obj.get("expires_in", 120) + 30
            while status == 202:
                if time.monotonic() > deadline:
                    raise Error(0, "unavailable", "no decision on approval %s" % aid)
                time.sleep(obj.get("retry_after", 1))
                status, obj = self._call("GET", "/v1/approvals/" + aid)
        return obj

    def redeem(self, token, version=None):
        """The value behind a redeem token, as bytes."""
        body = {"token": token}
        if version is not None:
            body["version"] = int(version)
        obj = self._call("POST", "/v1/redeem", body)[1]
        if "value" in obj:
            return obj["value"].encode()
        import base64
        return base64.b64decode(obj["value_base64"])

    def fetch(self, secret):
        """Token and redeem in one: the value (bytes). Needs a "redeem" grant."""
        tok = self.token(secret, use="redeem", ttl=10)
        try:
            return self.redeem(tok["token"])
        finally:
            self.revoke(tok["token"])

    def revoke(self, token):
        """End a token this caller holds; returns how many were revoked (0 or 1)."""
        try:
            return self._call("POST", "/v1/revoke", {"token": token})[1].get("revoked", 0)
        except Error as e:
            if e.status == 401:  # expired, used up or already revoked
                return 0
            raise

    def sdk(self, secret, kind="openai", proxy_url=None, ttl=86400):
        """(base_url, api_key) for an unmodified SDK: the broker's loopback
        proxy and a uid-bound proxy token living as long as the grant's
        max_ttl allows (ttl is cut to it).  kind "openai" ends the base URL
        in /v1 as the openai SDKs expect; "anthropic" and anything else do
        not.  Revoke the key with revoke(api_key) when done."""
        url = (proxy_url or os.environ.get("CREDBROKER_PROXY_URL") or DEFAULT_PROXY_URL).rstrip("/")
        tok = self.token(secret, use="proxy", ttl=ttl, bind="uid")
        base = "%s/v1/proxy/%s%s" % (url, secret, "/v1" if kind == "openai" else "")
        return base, tok["token"]
