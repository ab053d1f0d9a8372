// SPDX-License-Identifier: Apache-2.0
// Upstream on Node's http module (llhttp, its default strict settings).
//   node upstream-node.js LOG    (prints its port)
// Appends to LOG one JSON line per request it parsed (method, target,
// version, raw header list, body length) and one per request its parser
// refused ({"error": code, "raw": base64 of what it choked on}; a
// connection closed inside a request: {"aborted": true}).
// Answers 200 with a JSON echo of method and target.
'use strict';
const fs = require('fs');
const http = require('http');
const crypto = require('crypto');
const log = fs.openSync(process.argv[2], 'a');
const put = (r) => fs.writeSync(log, JSON.stringify(r) + '\n');
const srv = http.createServer((req, res) => {
  const h = crypto.createHash('sha256');
  let n = 0;
  req.on('data', (c) => { n += c.length; h.update(c); });
  req.on('end', () => {
    const headers = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
    put({ up: 'node', method: req.method, target: req.url, version: req.httpVersion, headers,
          body_len: n, body_sha256: h.digest('hex') });
    const out = JSON.stringify({ up: 'node', method: req.method, target: req.url }) + '\n';
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(out) });
    res.end(out);
  });
});
srv.on('clientError', (err, sock) => {
  // A connection closed inside a request is the sender giving up, not a
  // request it made: "aborted", told apart from a parser refusal.
  if (err.code === 'HPE_INVALID_EOF_STATE' || err.code === 'ECONNRESET')
    put({ up: 'node', aborted: true, error_code: err.code });
  else put({ up: 'node', error: err.code || String(err), raw: err.rawPacket ? err.rawPacket.toString('base64') : '' });
  if (sock.writable) sock.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
});
srv.listen(0, '127.0.0.1', () => { process.stdout.write(srv.address().port + '\n'); });
