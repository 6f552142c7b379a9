/**
 * Streams pass through chunk by chunk; a client that leaves stops the GPU; a
 * revocation cuts a stream in flight within a second and stops it upstream.
 * The simulator paces tokens at 20/s here, so a stream has a shape in time.
 */
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ndjson, startEnv, type GuardEnv, type Who } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

let env: GuardEnv;

beforeAll(async () => {
  env = await startEnv({ sim: { tokenRate: 20, tokens: 10 } });
});
afterAll(async () => {
  await env?.close();
});
beforeEach(() => env.reset({ peers: env.peerSet() }));

interface Stream {
  res: Promise<IncomingMessage>;
  chunks: { at: number; text: string; simTokens: number; simEnded: boolean }[];
  /** Resolves when the response is over: complete, or cut. */
  done: Promise<{ complete: boolean; at: number }>;
  destroy(): void;
}

/** A streaming POST whose chunks are timestamped as they arrive, with what the simulator had produced by then. */
function openStream(who: Who, path: string, body: unknown, localAddress?: string): Stream {
  const chunks: Stream['chunks'] = [];
  const req = https.request({ host: '127.0.0.1', port: env.port, method: 'POST', path, agent: false, headers: { 'content-type': 'application/json' }, ...env.tlsFor(who), ...(localAddress ? { localAddress } : {}) });
  req.on('error', () => undefined);
  const res = new Promise<IncomingMessage>((resolve, reject) => {
    req.on('response', resolve);
    req.on('error', reject);
  });
  const done = new Promise<{ complete: boolean; at: number }>((resolve) => {
    req.on('close', () => resolve({ complete: false, at: Date.now() }));
    req.on('response', (r) => {
      r.on('error', () => undefined);
      r.on('data', (c: Buffer) => {
        const sim = env.sim.requests.at(-1);
        chunks.push({ at: Date.now(), text: c.toString('utf8'), simTokens: sim?.tokens ?? -1, simEnded: sim?.ended ?? false });
      });
      r.on('close', () => resolve({ complete: r.complete, at: Date.now() }));
    });
  });
  req.end(JSON.stringify(body));
  return { res, chunks, done, destroy: () => req.destroy() };
}

const chat = (n: number) => ({ model: 'llama3.2', messages: [{ role: 'user', content: 'Count to ten.' }], options: { num_predict: n } });

describe('chunk by chunk', () => {
  test('native NDJSON: each token reaches the client while the model is still generating', async () => {
    const s = openStream('alice', '/api/chat', chat(10));
    const res = await s.res;
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    const end = await s.done;
    expect(end.complete).toBe(true);
    const lines = ndjson(s.chunks.map((c) => c.text).join(''));
    expect(lines).toHaveLength(11);
    expect(lines.at(-1)).toMatchObject({ done: true, eval_count: 10 });
    // Not buffered: many separate arrivals, the first while the simulator had made one or two tokens and was far from done.
    expect(s.chunks.length).toBeGreaterThanOrEqual(8);
    expect(s.chunks[0]!.simEnded).toBe(false);
    expect(s.chunks[0]!.simTokens).toBeLessThanOrEqual(2);
    expect(s.chunks.at(-1)!.at - s.chunks[0]!.at).toBeGreaterThanOrEqual(250); // 9 token intervals of 50 ms
    for (let i = 1; i < s.chunks.length; i++) expect(s.chunks[i]!.simTokens).toBeGreaterThanOrEqual(s.chunks[i - 1]!.simTokens);
  });

  test('OpenAI SSE on /v1: the same', async () => {
    const s = openStream('alice', '/v1/chat/completions', { model: 'llama3.2', stream: true, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
    expect((await s.res).headers['content-type']).toBe('text/event-stream');
    expect((await s.done).complete).toBe(true);
    const events = s.chunks.map((c) => c.text).join('').split('\n\n').filter(Boolean);
    expect(events.at(-1)).toBe('data: [DONE]');
    expect(events).toHaveLength(12);
    expect(s.chunks.length).toBeGreaterThanOrEqual(8);
    expect(s.chunks[0]!.simEnded).toBe(false);
    expect(s.chunks.at(-1)!.at - s.chunks[0]!.at).toBeGreaterThanOrEqual(250);
  });
});

describe('streams cut short', () => {
  test('a client that disconnects mid-stream aborts the upstream request: the model stops generating', async () => {
    const s = openStream('alice', '/api/generate', { model: 'llama3.2', prompt: 'a long story', options: { num_predict: 1000 } });
    await waitFor(() => s.chunks.length >= 2, 2000, 'two chunks');
    s.destroy();
    await waitFor(() => env.sim.requests[0]!.ended, 1000, 'the upstream request ended');
    const sim = env.sim.requests[0]!;
    expect(sim.aborted).toBe(true);
    const tokens = sim.tokens;
    expect(tokens).toBeLessThan(20);
    await new Promise((r) => setTimeout(r, 150)); // three token intervals: nothing more is generated
    expect(sim.tokens).toBe(tokens);
    await waitFor(() => env.records.length === 1, 1000, 'the record');
    expect(env.records[0]).toMatchObject({ peer: 'alice', status: 200, refusal: 'client_aborted', promptTokens: null, evalTokens: null });
    expect(await env.registry.getSingleMetricAsString('wgo_guard_active_streams')).toContain('wgo_guard_active_streams{peer="alice"} 0');
  });

  test('leaving before the final counts does not escape the token budget: the streamed lines are charged', async () => {
    // A guard of its own: the budget counts the whole day, and other tests spent alice's tokens here.
    const shared = env;
    // maxTokensPerRequest lets the stream run past the budget (else it is cut there: charge.test.ts) until the client leaves.
    env = await startEnv({ sim: { tokenRate: 20, tokens: 10 }, peers: [{ name: 'alice', address: '127.0.0.1', policy: { tokensPerDay: 3, maxTokensPerRequest: 1000 } }] });
    try {
      const s = openStream('alice', '/api/generate', { model: 'llama3.2', prompt: 'a long story', options: { num_predict: 1000 } });
      await waitFor(() => s.chunks.length >= 4, 3000, 'four chunks');
      s.destroy();
      await waitFor(() => env.records.length === 1, 2000, 'the record');
      expect(env.records[0]).toMatchObject({ refusal: 'client_aborted', promptTokens: null, evalTokens: null });
      expect(env.records[0]!.estimatedTokens).toBeGreaterThanOrEqual(4);
      const next = await env.request('alice', { path: '/api/generate', body: { model: 'llama3.2', prompt: 'again', stream: false } });
      expect(next.status).toBe(429);
      expect(JSON.parse(next.text)).toEqual({ error: 'daily token budget of 3 used up' });
    } finally {
      await env.close();
      env = shared;
    }
  });

  test("revoking a peer mid-stream closes its stream within 1 s and aborts upstream; another peer's stream runs on", async () => {
    const a = openStream('alice', '/api/chat', chat(1000));
    const b = openStream('bob', '/api/chat', chat(20), '127.0.0.2');
    await waitFor(() => a.chunks.length >= 1 && b.chunks.length >= 1, 2000, 'both streams under way');
    const t0 = Date.now();
    env.guard.setPeers(env.peerSet({ without: ['alice'] }));
    const cut = await a.done;
    expect(cut.complete).toBe(false);
    expect(cut.at - t0).toBeLessThan(1000);
    const upA = env.sim.requests.find((q) => q.body && (q.body as { options: { num_predict: number } }).options.num_predict === 1000)!;
    await waitFor(() => upA.ended, 1000, "alice's upstream request ended");
    expect(upA.aborted).toBe(true);
    expect(upA.tokens).toBeLessThan(1000);

    const fine = await b.done;
    expect(fine.complete).toBe(true);
    expect(ndjson(b.chunks.map((c) => c.text).join('')).at(-1)).toMatchObject({ done: true, eval_count: 20 });
    await waitFor(() => env.records.length === 2, 1000, 'two records');
    expect(env.records.find((r) => r.peer === 'alice')).toMatchObject({ refusal: 'peer_revoked' });
    expect(env.records.find((r) => r.peer === 'bob')).toMatchObject({ status: 200, refusal: null, evalTokens: 20 });
  });

  test('a policy change that still allows the peer does not cut its stream', async () => {
    const a = openStream('alice', '/api/chat', chat(8));
    await waitFor(() => a.chunks.length >= 1, 2000, 'stream under way');
    env.guard.setPeers(env.peerSet({ policies: { alice: { models: ['llama3.2:*'] } }, version: 'v2' }));
    expect((await a.done).complete).toBe(true);
    expect(env.sim.requests[0]!.aborted).toBe(false);
  });
});
