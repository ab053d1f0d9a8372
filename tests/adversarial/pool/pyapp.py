#!/usr/bin/python3
# an ordinary Python http.server app (HTTP/1.1 keep-alive) that answers 404 for unknown
# paths without reading the request body, as most small handlers do.  Logs every request it runs.
import http.server, json, sys
LOG = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def rec(self):
        with open(LOG, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path,
                                "auth": self.headers.get("Authorization", ""), "headers": str(self.headers)}) + "\n")
    def reply(self, code, b):
        self.send_response(code); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_POST(self):
        self.rec()
        if self.path == "/v1/chat":
            self.rfile.read(int(self.headers.get("Content-Length", 0))); self.reply(200, b'{"ok":true}')
        else:
            self.reply(404, b'{"error":"no such route"}')       # body left unread
    def do_GET(self):
        self.rec(); self.reply(200, b'{"models":[]}')             # a GET handler never reads a body
    def do_DELETE(self):
        self.rec(); self.rfile.read(int(self.headers.get("Content-Length", 0))); self.reply(200, b'{"deleted":true}')
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2]) if len(sys.argv) > 2 else 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
