#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A stand-in for api.openai.com and api.anthropic.com for the quick-start
test: HTTPS on ADDR:443 with the test CA's certificate.  It answers a chat
completion (POST /v1/chat/completions) or a message (POST /v1/messages) whose
text says whether the credential that arrived is the expected one, read from
the key files given; anything else is 404.  With "stream": true the answer
is a server-sent event stream in the vendor's shape: three text deltas
0.5 s apart, each flushed, so a client can tell streamed from buffered.
Usage:
  quickstart-upstream.py ADDR CERT KEY OPENAI_KEYFILE ANTHROPIC_KEYFILE"""
import http.server
import json
import ssl
import sys
import time

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

    def sse(self, events):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i, (name, obj) in enumerate(events):
            if obj is None:
                raw = "data: [DONE]\n\n"
            else:
                raw = ("event: %s\n" % name if name else "") + "data: " + json.dumps(obj) + "\n\n"
            b = raw.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
            self.wfile.flush()
            if name in ("delta", "content_block_delta"):
                time.sleep(0.5)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def stream_openai(self, text):
        ev = [("delta", {"id": "c1", "object": "chat.completion.chunk", "model": "m",
                         "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
              for w in (text + " part1", " part2", " part3")]
        ev.append(("", {"id": "c1", "object": "chat.completion.chunk", "model": "m",
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        ev.append(("", None))
        self.sse(ev)

    def stream_anthropic(self, text):
        msg = {"id": "m1", "type": "message", "role": "assistant", "model": "m", "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}
        ev = [("message_start", {"type": "message_start", "message": msg}),
              ("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}})]
        ev += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": w}})
               for w in (text + " part1", " part2", " part3")]
        ev += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
               ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                  "usage": {"output_tokens": 3}}),
               ("message_stop", {"type": "message_stop"})]
        self.sse(ev)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        if self.path == "/v1/chat/completions":
            good = self.headers.get("Authorization") == "Bearer " + want_openai
            text = "upstream-saw-the-real-openai-key" if good else "upstream-saw-a-wrong-credential"
            if good and body.get("stream"):
                return self.stream_openai(text)
            self.reply(200 if good else 401, {"id": "c1", "object": "chat.completion", "created": 0,
                                              "model": body.get("model"),
                                              "choices": [{"index": 0, "message": {"role": "assistant",
                                                                                   "content": text}}]})
        elif self.path == "/v1/messages":
            good = self.headers.get("x-api-key") == want_anthropic
            text = "upstream-saw-the-real-anthropic-key" if good else "upstream-saw-a-wrong-credential"
            if good and body.get("stream"):
                return self.stream_anthropic(text)
            self.reply(200 if good else 401, {"id": "m1", "type": "message", "role": "assistant", "model": "m",
                                              "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                                              "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}})
        else:
            self.reply(404, {"error": "not found"})


srv = http.server.ThreadingHTTPServer((addr, 443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("ready", flush=True)
srv.serve_forever()
