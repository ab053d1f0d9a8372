// SPDX-License-Identifier: Apache-2.0
// Run by test-clients.sh as the tool's uid: client/node/credbroker.mjs
// against the real daemon.  Prints "ok ..." / "FAIL ..." lines.
import { readFileSync } from 'node:fs';
import { Client, CredbrokerError } from '../../client/node/credbroker.mjs';

const want = readFileSync(process.argv[2]);
let fails = 0;
const check = (name, cond, detail = '') => {
  console.log((cond ? 'ok   ' : 'FAIL ') + name + (cond ? '' : ': ' + JSON.stringify(detail)));
  if (!cond) fails++;
};
const c = new Client();
check('health', (await c.health()).status === 'ok');
const t = await c.token('demo', { use: 'redeem' });
check('token(redeem)', t.token.startsWith('cbt_') && t.accessor.startsWith('cba_'), t.accessor);
check('redeem', (await c.redeem(t.token)).equals(want));
check('revoke', (await c.revoke(t.token)) === 1);
try { await c.redeem(t.token); check('a revoked token is refused', false); } catch (e) {
  check('a revoked token is refused', e instanceof CredbrokerError && e.status === 401, e.message);
}
check('fetch', (await c.fetch('demo')).equals(want));
try { await c.token('nosuch'); check('no grant: 403 forbidden', false); } catch (e) {
  check('no grant: 403 forbidden', e.status === 403 && e.code === 'forbidden' && /no grant/.test(e.message), e.message);
}
const { baseURL, apiKey } = await c.sdk('demo', { kind: 'anthropic', proxyUrl: process.env.PROXY_URL });
check('sdk(anthropic): base URL', baseURL === `${process.env.PROXY_URL}/v1/proxy/demo`, baseURL);
const info = (await c.call('POST', '/v1/introspect', { token: apiKey })).body;
check('sdk(): a uid-bound proxy token', info.use[0] === 'proxy' && info.expires_in > 300, info);
check('revoke(sdk key)', (await c.revoke(apiKey)) === 1);
process.exit(fails ? 1 : 0);
