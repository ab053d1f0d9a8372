// SPDX-License-Identifier: Apache-2.0
// credbroker for Node tools: an ES module with no dependencies, speaking to
// the broker's tools.sock through node's http module.
//
//   import { Client } from './credbroker.mjs';
//   const c = new Client();                          // $CREDBROKER_SOCKET or /run/credbroker/tools.sock
//   const { baseURL, apiKey } = await c.sdk('openai'); // new OpenAI({ baseURL, apiKey })
//
// The broker identifies the calling process: the policy names node's
// resolved executable (e.g. /usr/bin/node) or just the uid.  Prefer sdk()
// (a proxy token: the value never enters this process) to fetch().
import http from 'node:http';

export const DEFAULT_SOCKET = '/run/credbroker/tools.sock';
export const DEFAULT_PROXY_URL = 'http://127.0.0.1:8411';
const MAX_ANSWER = 256 * 1024;

export class CredbrokerError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'CredbrokerError';
    this.status = status;
    this.code = code;
  }
}

export class Client {
  constructor({ socketPath, timeoutMs = 30000 } = {}) {
    this.socketPath = socketPath || process.env.CREDBROKER_SOCKET || DEFAULT_SOCKET;
    this.timeoutMs = timeoutMs;
  }

  call(method, path, body) {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = http.request({
        socketPath: this.socketPath, method, path, timeout: this.timeoutMs,
        headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {},
      }, (res) => {
        const chunks = [];
        let n = 0;
        res.on('data', (c) => {
          n += c.length;
          if (n > MAX_ANSWER) { req.destroy(); reject(new CredbrokerError(res.statusCode, 'internal', 'answer too large')); return; }
          chunks.push(c);
        });
        res.on('end', () => {
          let obj;
          try { obj = JSON.parse(Buffer.concat(chunks).toString() || '{}'); } catch {
            reject(new CredbrokerError(res.statusCode, 'internal', 'malformed answer from the broker')); return;
          }
          if (res.statusCode >= 400) {
            const e = obj.error;
            if (e && typeof e === 'object') reject(new CredbrokerError(res.statusCode, e.code || e.type, e.message || ''));
            else reject(new CredbrokerError(res.statusCode, e, obj.message || ''));
            return;
          }
          resolve({ status: res.statusCode, body: obj });
        });
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err) => reject(new CredbrokerError(0, 'unavailable', `cannot reach the broker at ${this.socketPath}: ${err.message}`)));
      if (data) req.write(data);
      req.end();
    });
  }

  async health() { return (await this.call('GET', '/v1/health')).body; }

  // {token, accessor, expires_in}; use 'proxy' (default) or 'redeem'; bind
  // undefined (this executable), 'process' or 'uid'.  Waits through an
  // approval (onPending(id, timeoutS) is called once when held).
  async token(secret, { use = 'proxy', ttl, bind, onPending } = {}) {
    const body = { secret, use };
    if (ttl !== undefined) body.ttl = ttl;
    if (bind !== undefined) body.bind = bind;
    let r = await this.call('POST', '/v1/token', body);
    if (r.status === 202) {
      const id = r.body.approval_id;
      if (onPending) onPending(id, r.body.expires_in);
      const deadline = Date.now() + ((r.body.expires_in || 120) + 30) * 1000;
      while (r.status === 202) {
        if (Date.now() > deadline) throw new CredbrokerError(0, 'unavailable', `no decision on approval ${id}`);
        await new Promise((ok) => setTimeout(ok, (r.body.retry_after || 1) * 1000));
        r = await this.call('GET', `/v1/approvals/${id}`);
      }
    }
    return r.body;
  }

  // The value behind a redeem token, as a Buffer.
  async redeem(token, version) {
    const body = { token };
    if (version !== undefined) body.version = version;
    const o = (await this.call('POST', '/v1/redeem', body)).body;
    return 'value' in o ? Buffer.from(o.value, 'utf8') : Buffer.from(o.value_base64, 'base64');
  }

  async fetch(secret) {
    const t = await this.token(secret, { use: 'redeem', ttl: 10 });
    try { return await this.redeem(t.token); } finally { await this.revoke(t.token); }
  }

  // End a token this caller holds: 1, or 0 if it was already gone.
  async revoke(token) {
    try { return (await this.call('POST', '/v1/revoke', { token })).body.revoked || 0; } catch (e) {
      if (e.status === 401) return 0;
      throw e;
    }
  }

  // {baseURL, apiKey} for an unmodified SDK: the broker's loopback proxy and
  // a uid-bound proxy token living as long as the grant's max_ttl allows.
  // kind 'openai' ends the base URL in /v1 (the openai SDK's default does).
  async sdk(secret, { kind = 'openai', proxyUrl, ttl = 86400 } = {}) {
    const url = (proxyUrl || process.env.CREDBROKER_PROXY_URL || DEFAULT_PROXY_URL).replace(/\/+$/, '');
    const t = await this.token(secret, { use: 'proxy', ttl, bind: 'uid' });
    return { baseURL: `${url}/v1/proxy/${secret}${kind === 'openai' ? '/v1' : ''}`, apiKey: t.token };
  }
}
