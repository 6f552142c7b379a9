/**
 * Issue 10, items 1 and 2 (runtime): what a request is charged, and that it is
 * in its record. Estimates for streams cut before Ollama's final counts and
 * for implausible counts are written to the record (`estimatedTokens`); a
 * stream that takes its peer past the day's budget is cut and recorded
 * `token_budget`. The real guard in front of the simulator, or of a small
 * fake Ollama of the test's own where the simulator cannot misbehave as needed.
 */
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { startEnv, type GuardEnv, type Who } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

/** A fake Ollama: /api/chat answers with the lines `script` gives, then ends or hangs. */
async function fakeOllama(script: () => { lines: string[]; end: boolean }): Promise<{ url: string; aborted: () => number; close: () => Promise<void> }> {
  let aborted = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const { lines, end } = script();
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      for (const l of lines) res.write(l + '\n');
      if (end) res.end();
      else res.on('close', () => aborted++);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    aborted: () => aborted,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** A streaming POST: resolves with what arrived once the response is over (complete or cut), or leaves after `leaveAfter` bytes. */
function stream(env: GuardEnv, who: Who, path: string, body: unknown, leaveAfter = Infinity, localAddress?: string): Promise<{ status: number; text: string; complete: boolean }> {
  return new Promise((resolve) => {
    let text = '';
    let status = 0;
    const req = https.request({ host: '127.0.0.1', port: env.port, method: 'POST', path, agent: false, headers: { 'content-type': 'application/json' }, ...env.tlsFor(who), ...(localAddress ? { localAddress } : {}) });
    req.on('error', () => resolve({ status, text, complete: false }));
    req.on('response', (r) => {
      status = r.statusCode ?? 0;
      r.on('error', () => undefined);
      r.on('data', (c: Buffer) => {
        text += c.toString('utf8');
        if (text.length >= leaveAfter) req.destroy();
      });
      r.on('close', () => resolve({ status, text, complete: r.complete }));
    });
    req.end(JSON.stringify(body));
  });
}

const toolLine = (i: number): string =>
  JSON.stringify({ model: 'llama3.2', created_at: '', message: { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: { eval_count: 1, prompt_eval_count: 1, i } } }] }, done: false });
const contentLine = (i: number): string => JSON.stringify({ model: 'llama3.2', created_at: '', message: { role: 'assistant', content: `t${i} ` }, done: false });

describe('estimates are charged and recorded', () => {
  let env: GuardEnv | undefined;
  let fake: Awaited<ReturnType<typeof fakeOllama>> | undefined;
  afterEach(async () => {
    await env?.close();
    await fake?.close();
    env = undefined;
    fake = undefined;
  });

  test('a stream the client leaves before the final counts: the estimate is in the record (estimatedTokens), counts stay null', async () => {
    env = await startEnv({ sim: { tokenRate: 50, tokens: 1000 }, peers: [{ name: 'alice', address: '127.0.0.1', policy: { tokensPerDay: 100_000 } }] });
    const prompt = 'a'.repeat(40); // the digest covers [["prompt", ...]] — about 55 bytes
    const r = await stream(env, 'alice', '/api/generate', { model: 'llama3.2', prompt }, 600);
    expect(r.complete).toBe(false);
    await waitFor(() => env!.records.length === 1, 2000, 'the record');
    const rec = env.records[0]!;
    expect(rec.bytesOut).toBeGreaterThan(0);
    expect(rec).toMatchObject({ refusal: 'client_aborted', promptTokens: null, evalTokens: null });
    // A token per four bytes of prompt plus a token per streamed line.
    const streamed = r.text.split('\n').length - 1;
    expect(rec.estimatedTokens).toBeGreaterThanOrEqual(Math.ceil(rec.promptLength! / 4) + streamed);
    expect(rec.estimatedTokens).toBeLessThanOrEqual(Math.ceil(rec.promptLength! / 4) + streamed + 3);
    expect(env.guard.budget.used('alice')).toBe(rec.estimatedTokens);
  });

  test('a served stream with its final counts: the counts are charged, no estimate', async () => {
    env = await startEnv({ sim: { tokenRate: 1000, tokens: 12 } });
    const r = await stream(env, 'alice', '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.complete).toBe(true);
    await waitFor(() => env!.records.length === 1, 2000, 'the record');
    expect(env.records[0]).toMatchObject({ evalTokens: 12, estimatedTokens: null });
  });

  test('a tool call whose arguments hold "eval_count":1, in a stream cut before the final object, is charged by estimate', async () => {
    fake = await fakeOllama(() => ({ lines: Array.from({ length: 30 }, (_, i) => toolLine(i)), end: false }));
    env = await startEnv({ upstream: fake.url, peers: [{ name: 'alice', address: '127.0.0.1', policy: { tokensPerDay: 1000 } }] });
    const r = await stream(env, 'alice', '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'call f' }] }, toolLine(0).length * 30);
    expect(r.complete).toBe(false);
    await waitFor(() => env!.records.length === 1, 2000, 'the record');
    const rec = env.records[0]!;
    expect(rec).toMatchObject({ promptTokens: null, evalTokens: null, refusal: 'client_aborted' });
    expect(rec.estimatedTokens).toBeGreaterThanOrEqual(30);
    expect(env.guard.budget.used('alice')).toBe(rec.estimatedTokens);
  });

  test('implausible final counts (30 content lines, eval_count 1) are not believed: the estimate is charged, the counts kept as reported', async () => {
    const final = JSON.stringify({ model: 'llama3.2', created_at: '', message: { role: 'assistant', content: '' }, done: true, prompt_eval_count: 1, eval_count: 1 });
    fake = await fakeOllama(() => ({ lines: [...Array.from({ length: 30 }, (_, i) => contentLine(i)), final], end: true }));
    env = await startEnv({ upstream: fake.url, peers: [{ name: 'alice', address: '127.0.0.1', policy: { tokensPerDay: 1000 } }] });
    const r = await stream(env, 'alice', '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.complete).toBe(true);
    await waitFor(() => env!.records.length === 1, 2000, 'the record');
    const rec = env.records[0]!;
    expect(rec).toMatchObject({ promptTokens: 1, evalTokens: 1, refusal: null });
    expect(rec.estimatedTokens).toBeGreaterThanOrEqual(31);
    expect(env.guard.budget.used('alice')).toBe(rec.estimatedTokens);
  });
});

describe('a stream that crosses the day\'s budget is cut', () => {
  let env: GuardEnv;
  beforeAll(async () => {
    env = await startEnv({
      sim: { tokenRate: 200, tokens: 2000 },
      peers: [
        { name: 'alice', address: '127.0.0.1', policy: { tokensPerDay: 100, maxTokensPerRequest: 60, maxStreams: 3 } },
        { name: 'bob', address: '127.0.0.2', policy: { tokensPerDay: 100 } },
      ],
    });
  });
  afterAll(async () => {
    await env?.close();
  });

  const body = { model: 'llama3.2', prompt: 'go', options: { num_predict: 2000 } };

  test('with maxTokensPerRequest: streams in flight together are cut once use passes tokensPerDay + maxTokensPerRequest; Ollama stops; recorded token_budget with the estimate', async () => {
    env.records.length = 0;
    env.sim.clear();
    // Each request is clamped to 60 tokens (num_predict), so one stream cannot go past 100 + 60 on its
    // own; three at once (180 together) can, and the one that crosses 160 is cut.
    const rs = await Promise.all([1, 2, 3].map(() => stream(env, 'alice', '/api/generate', body)));
    expect(rs.map((r) => r.status)).toEqual([200, 200, 200]);
    await waitFor(() => env.records.length === 3, 2000, 'the records');
    const cut = env.records.filter((r) => r.refusal === 'token_budget');
    expect(cut.length).toBeGreaterThanOrEqual(1);
    for (const rec of cut) expect(rec).toMatchObject({ peer: 'alice', status: 200, promptTokens: null, evalTokens: null });
    const charged = env.records.reduce((n, r) => n + (r.estimatedTokens ?? (r.promptTokens ?? 0) + (r.evalTokens ?? 0)), 0);
    // Cut at the first chunk past 160 (one line more, at most a few with coalesced chunks).
    expect(charged).toBeGreaterThan(160);
    expect(charged).toBeLessThanOrEqual(166);
    expect(rs.filter((r) => !r.complete).length).toBe(cut.length);
    await waitFor(() => env.sim.requests.every((q) => q.ended), 1000, 'the upstream requests to end');
    expect(env.sim.requests.reduce((n, q) => n + q.tokens, 0)).toBeLessThan(180);
    // And the next request is refused at the door.
    const next = await stream(env, 'alice', '/api/generate', body);
    expect(next.status).toBe(429);
  });

  test('without maxTokensPerRequest: cut as soon as the budget is crossed', async () => {
    env.records.length = 0;
    const r = await stream(env, 'bob', '/api/generate', body, Infinity, '127.0.0.2');
    expect(r.complete).toBe(false);
    await waitFor(() => env.records.length === 1, 2000, 'the record');
    const rec = env.records[0]!;
    expect(rec).toMatchObject({ peer: 'bob', refusal: 'token_budget' });
    expect(rec.estimatedTokens).toBeGreaterThan(100);
    expect(rec.estimatedTokens).toBeLessThanOrEqual(105);
  });
});
