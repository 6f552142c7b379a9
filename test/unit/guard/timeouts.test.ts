/**
 * Idle and total time limits on requests that were accepted: a client that
 * stops reading, or a request that goes on too long, is cut and its upstream
 * request aborted — on the first request of a connection and on later ones.
 */
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ndjson, parseRaw, startEnv, type GuardEnv } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

let env: GuardEnv;
const IDLE_SEC = 0.5;

const huge = JSON.stringify({ model: 'llama3.2', prompt: 'go on forever', options: { num_predict: 50_000_000 } });
const generate = `POST /api/generate HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\nContent-Length: ${huge.length}\r\n\r\n${huge}`;

describe('a client that stops reading a stream', () => {
  beforeAll(async () => {
    // tokenRate 0: as fast as the event loop allows, so a client that stops reading fills every buffer at once
    env = await startEnv({ sim: { tokenRate: 0 }, limits: { idleTimeoutSec: IDLE_SEC, keepAliveSec: 30 } });
  });
  afterAll(async () => {
    await env?.close();
  });
  beforeEach(() => env.reset());

  test.each([
    ['the first request on its connection', false],
    ['a later request on a keep-alive connection', true],
  ])('is cut after idleTimeoutSec (%s), and the upstream request is aborted', async (_, keepAliveFirst) => {
    const s = await env.rawTls('alice');
    s.on('error', () => undefined);
    try {
      await stallAndExpectCut(s, keepAliveFirst);
    } finally {
      s.destroy();
    }
  });
});

/** Sends a never-ending generate and stops reading; the guard must cut it once nothing has moved for idleTimeoutSec. */
async function stallAndExpectCut(s: Awaited<ReturnType<GuardEnv['rawTls']>>, keepAliveFirst: boolean): Promise<void> {
  if (keepAliveFirst) {
    let got = '';
    s.setEncoding('utf8');
    const onData = (c: string): void => void (got += c);
    s.on('data', onData);
    s.write('GET /api/version HTTP/1.1\r\nHost: guard\r\n\r\n');
    await waitFor(() => got.includes('"version"'), 2000, 'the first answer');
    expect(parseRaw(got).status).toBe(200);
    s.off('data', onData);
  }
  s.pause();
  s.write(generate);
  const upstream = (): (typeof env.sim.requests)[number] | undefined => env.sim.requests.find((q) => q.path === '/api/generate');
  await waitFor(() => upstream() !== undefined && upstream()!.tokens > 1000, 2000, 'the stream under way');
  // Every buffer on the way fills up, then nothing moves: from then on the connection is idle.
  let seen = -1;
  let stalledAt = 0;
  await waitFor(() => {
    const t = upstream()!.tokens;
    if (t !== seen || upstream()!.ended) [seen, stalledAt] = [t, Date.now()];
    return Date.now() - stalledAt >= 100 || upstream()!.ended;
  }, 8000, 'the stream stalled');
  await waitFor(() => upstream()!.ended, IDLE_SEC * 1000 + 1000, 'the upstream request ended');
  expect(upstream()!.aborted).toBe(true);
  await waitFor(() => env.guard.connections() === 0, 1000, 'the connection closed');
  await waitFor(() => env.records.some((r) => r.endpoint === 'generate'), 1000, 'the record');
  // idle because the client does not read: recorded as such (fairness.test.ts)
  expect(env.records.find((r) => r.endpoint === 'generate')).toMatchObject({ peer: 'alice', status: 200, refusal: 'client_stalled' });
}

describe('a stream longer than maxRequestSec', () => {
  let slow: GuardEnv;
  beforeAll(async () => {
    slow = await startEnv({ sim: { tokenRate: 50 }, limits: { maxRequestSec: 1 } });
  });
  afterAll(async () => {
    await slow?.close();
  });

  test('is cut at the limit while the client is reading, and the upstream request is aborted', async () => {
    const t0 = Date.now();
    const r = await slow.request('alice', { path: '/api/generate', body: { model: 'llama3.2', prompt: 'long', options: { num_predict: 1000 } } }).catch((e: Error) => e);
    const took = Date.now() - t0;
    // the answer is cut short: an error, or a body that stops before the final statistics
    if (!(r instanceof Error)) expect(ndjson(r.text.slice(0, r.text.lastIndexOf('\n') + 1)).some((l) => l.done)).toBe(false);
    expect(took).toBeGreaterThanOrEqual(900);
    expect(took).toBeLessThan(2500);
    await waitFor(() => slow.sim.requests[0]!.ended, 1000, 'the upstream request ended');
    expect(slow.sim.requests[0]!.aborted).toBe(true);
    await waitFor(() => slow.records.length === 1, 1000, 'the record');
    expect(slow.records[0]).toMatchObject({ peer: 'alice', refusal: 'max_duration' });
  });
});

describe('Ollama not answering', () => {
  test('a request the guard cannot forward is answered 503 in JSON and recorded', async () => {
    const down = await startEnv();
    try {
      down.sim.server.closeAllConnections();
      await new Promise((r) => down.sim.server.close(r));
      const r = await down.request('alice', { path: '/api/chat', body: { model: 'llama3.2', messages: [{ role: 'user', content: 'x' }] } });
      expect(r.status).toBe(503);
      expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(JSON.parse(r.text)).toEqual({ error: expect.stringMatching(/^ollama is not reachable: /) });
      await waitFor(() => down.records.length === 1, 1000, 'the record');
      expect(down.records[0]).toMatchObject({ peer: 'alice', status: 503, refusal: 'upstream_unavailable', model: 'llama3.2:latest' });
      // and the stream slot it held is free again
      expect(await down.registry.getSingleMetricAsString('wgo_guard_active_streams')).toContain('wgo_guard_active_streams{peer="alice"} 0');
    } finally {
      await down.close();
    }
  });

  test('an answer whose framing is ambiguous (Transfer-Encoding and Content-Length) is not passed on: 503 in JSON, recorded', async () => {
    // A fake Ollama whose answer two parsers could split differently: nothing of it may reach the client.
    const fake = createServer((socket) => socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}')));
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const bad = await startEnv({ upstream: `http://127.0.0.1:${(fake.address() as AddressInfo).port}` });
    try {
      const r = await bad.request('alice', { path: '/api/version' });
      expect(r.status).toBe(503);
      expect(JSON.parse(r.text)).toEqual({ error: 'ollama answered with a malformed response: both Transfer-Encoding and Content-Length' });
      await waitFor(() => bad.records.length === 1, 1000, 'the record');
      expect(bad.records[0]).toMatchObject({ peer: 'alice', status: 503, refusal: 'upstream_unavailable' });
    } finally {
      await bad.close();
      await new Promise((r) => fake.close(r));
    }
  });
});
