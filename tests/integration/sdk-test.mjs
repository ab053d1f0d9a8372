// SPDX-License-Identifier: Apache-2.0
// Run by test-sdk.sh under `credbroker exec --proxy`, as the tool's uid,
// from a directory where npm installed the real `openai` and
// `@anthropic-ai/sdk` packages: constructed with no arguments, each SDK
// reads the base URL and key exec set.  A chat/message call, a streamed one
// (the deltas must arrive as sent, 0.5 s apart, not all at the end), and a
// refused one (a path the secret is not sealed for) whose exception must
// carry the broker's message.  Prints "ok ..." / "FAIL ..." lines.
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const vendor = process.argv[2];
let fails = 0;
const check = (name, cond, detail = '') => {
  console.log(`${cond ? 'ok  ' : 'FAIL'} ${vendor}: ${name}${cond ? '' : ': ' + detail}`);
  if (!cond) fails++;
};

async function streamed(iter, textOf) {
  const at = [];
  let text = '';
  for await (const ev of iter) {
    const t = textOf(ev);
    if (t) { at.push(Date.now()); text += t; }
  }
  return { text, spread: at.length ? at[at.length - 1] - at[0] : 0, n: at.length };
}

if (vendor === 'openai') {
  const c = new OpenAI({ maxRetries: 0 });
  const r = await c.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
  check('chat call', r.choices[0].message.content === 'upstream-saw-the-real-openai-key', r.choices[0].message.content);
  const s = await streamed(
    await c.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true }),
    (ev) => ev.choices?.[0]?.delta?.content);
  check('streamed call', s.text.startsWith('upstream-saw-the-real-openai-key') && s.n === 3, s.text);
  check('stream events arrive unbuffered', s.spread >= 700, `deltas within ${s.spread} ms`);
  try {
    await c.embeddings.create({ model: 'text-embedding-3-small', input: 'x' });
    check('refused call raises', false, 'no exception');
  } catch (e) {
    check('refused call raises PermissionDeniedError', e instanceof OpenAI.PermissionDeniedError && e.status === 403,
      `${e.constructor.name} ${e.status}`);
    check("its message is the broker's", /is not under an allowed prefix/.test(e.message),
      e.message);
  }
} else {
  const c = new Anthropic({ maxRetries: 0 });
  const r = await c.messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
  check('message call', r.content[0].text === 'upstream-saw-the-real-anthropic-key', JSON.stringify(r.content));
  const s = await streamed(
    await c.messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }], stream: true }),
    (ev) => (ev.type === 'content_block_delta' ? ev.delta.text : ''));
  check('streamed call', s.text.startsWith('upstream-saw-the-real-anthropic-key') && s.n === 3, s.text);
  check('stream events arrive unbuffered', s.spread >= 700, `deltas within ${s.spread} ms`);
  try {
    await c.models.list();
    check('refused call raises', false, 'no exception');
  } catch (e) {
    check('refused call raises PermissionDeniedError', e instanceof Anthropic.PermissionDeniedError && e.status === 403,
      `${e.constructor.name} ${e.status}`);
    check("its message is the broker's", /is not under an allowed prefix/.test(e.message), e.message);
  }
}
process.exit(fails ? 1 : 0);
