#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in for api.openai.com and api.anthropic.com for the quick-start
test: HTTPS on ADDR:443 with the test CA's certificate.  It answers a chat
completion (POST /v1/chat/completions) or a message (POST /v1/messages) whose
text says whether the credential that arrived is the expected one, read from
the key files given; anything else is 404.  Usage:
  quickstart-upstream.py ADDR CERT KEY OPENAI_KEYFILE ANTHROPIC_KEYFILE"""
import http.server
import json
import ssl
import sys

addr, cert, key, okey, akey = sys.argv[1:6]
want_openai = open(okey).read().strip()
want_anthropic = open(akey).read().strip()


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        if self.path == "/v1/chat/completions":
            good = self.headers.get("Authorization") == "Bearer " + want_openai
            text = "upstream-saw-the-real-openai-key" if good else "upstream-saw-a-wrong-credential"
            self.reply(200 if good else 401, {"object": "chat.completion", "model": body.get("model"),
                                              "choices": [{"index": 0, "message": {"role": "assistant",
                                                                                   "content": text}}]})
        elif self.path == "/v1/messages":
            good = self.headers.get("x-api-key") == want_anthropic
            text = "upstream-saw-the-real-anthropic-key" if good else "upstream-saw-a-wrong-credential"
            self.reply(200 if good else 401, {"type": "message", "role": "assistant",
                                              "content": [{"type": "text", "text": text}]})
        else:
            self.reply(404, {"error": "not found"})


srv = http.server.ThreadingHTTPServer((addr, 443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
