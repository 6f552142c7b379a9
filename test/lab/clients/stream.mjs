#!/usr/bin/env node
// A long /api/generate stream (num_predict --tokens) that reports when it
// started, and how and when it ended: the last chunk's time, the number of
// chunks, and whether the connection was closed, errored or went idle.
//   node stream.mjs --url URL --ca CA --cert CRT --key KEY [--tokens N] [--idle-ms MS]
// Prints {event:'first', at} at the first chunk, then {event:'end', reason, chunks, lastChunkAt, at}.
import { request } from 'undici';
import { args, print, tlsAgent } from './common.mjs';

const a = args({ tokens: { type: 'string', default: '2000' }, 'idle-ms': { type: 'string', default: '3000' } });
const agent = tlsAgent(a, { bodyTimeout: 0, headersTimeout: 10_000 });
let chunks = 0;
let lastChunkAt = null;
let ended = false;
const end = (reason, extra = {}) => {
  if (ended) return;
  ended = true;
  print({ event: 'end', reason, chunks, lastChunkAt, at: Date.now(), ...extra });
};
const ac = new AbortController();
let idle;
const armIdle = () => {
  clearTimeout(idle);
  idle = setTimeout(() => {
    end('idle');
    ac.abort();
  }, Number(a['idle-ms']));
};
try {
  armIdle();
  const r = await request(`${a.url}/api/generate`, {
    dispatcher: agent, method: 'POST', signal: ac.signal, headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: a.model, prompt: 'Tell me a long story.', options: { num_predict: Number(a.tokens) } }),
  });
  if (r.statusCode !== 200) end('status', { status: r.statusCode, body: await r.body.text() });
  else {
    for await (const c of r.body) {
      if (chunks === 0) print({ event: 'first', at: Date.now() });
      chunks += String(c).split('\n').filter(Boolean).length;
      lastChunkAt = Date.now();
      armIdle();
    }
    end('complete');
  }
} catch (e) {
  end(ended ? 'idle' : 'error', { error: e?.code ?? e?.message ?? String(e) });
} finally {
  clearTimeout(idle);
  await agent.destroy().catch(() => undefined);
}
