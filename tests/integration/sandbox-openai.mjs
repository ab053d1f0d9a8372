// SPDX-License-Identifier: Apache-2.0
// Run by test-sandbox-sdk.sh inside `credbroker sandbox --proxy openai=openai`,
// as the tool's uid, from a directory holding the real `openai` npm package:
// constructed with no arguments, the SDK reads the base URL and key the
// sandbox set (the broker's listener inside the sandbox, a session token).
// A chat completion; then the process's environment is written to env.json
// and it waits (for "done", at most 30 s) so that the test can read its
// memory from outside.  Prints "content=...", "base=...".
import OpenAI from 'openai';
import fs from 'node:fs';

const c = new OpenAI({ maxRetries: 0 });
try {
  const r = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
  console.log('content=' + r.choices[0].message.content);
} catch (e) {
  console.log(`error=${e.constructor.name} ${e.status} ${e.message}`);
}
console.log('base=' + process.env.OPENAI_BASE_URL);
fs.writeFileSync('env.json', JSON.stringify(process.env));
fs.writeFileSync('ready', '1');
const until = Date.now() + 30000;
while (!fs.existsSync('done') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
