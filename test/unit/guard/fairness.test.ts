/**
 * Upstream slots are shared fairly: one peer's requests that it does not read
 * can hold only its share of the pool (every request counts, not only the
 * generating ones maxStreams bounds), other peers keep being served, and a
 * response the client does not drain within idleTimeoutSec is cut
 * (client_stalled) with its upstream request aborted.
 *
 * The answers alice does not read are endless streams (the simulator at full
 * speed): a loopback connection buffers ~8 MB, more than any one answer of
 * another kind (a verbose /api/show is ~6 MB), so only a stream stalls here.
 */
import type tls from 'node:tls';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { errorOf, parseRaw, startEnv, type GuardEnv } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

const FAST = { requestsPerMinute: 100_000, burst: 1000 };
const POOL = 8;
// long enough that alice's first stream cannot be cut before her eighth answer has begun, on a loaded machine
const IDLE_SEC = 3;
const endless = JSON.stringify({ model: 'llama3.2', prompt: 'go on', options: { num_predict: 50_000_000 } });
const endlessRequest = `POST /api/generate HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\nContent-Length: ${endless.length}\r\n\r\n${endless}`;

let env: GuardEnv;

/** A client that asks for an endless stream, reads the answer's head, and then stops reading. */
interface SlowReader {
  socket: tls.TLSSocket;
  /** The answer's status once its head arrived (0 before). */
  status: () => number;
  head: () => Record<string, string>;
}

async function slowReader(who: string, address: string): Promise<SlowReader> {
  const s = await env.rawTls(who, address);
  s.on('error', () => undefined);
  let got = '';
  let head: { status: number; headers: Record<string, string> } | null = null;
  s.setEncoding('latin1');
  s.on('data', (c: string) => {
    if (head) return;
    got += c;
    if (got.includes('\r\n\r\n')) {
      const p = parseRaw(got);
      head = { status: p.status, headers: p.headers };
      // Reads nothing more: the rest of the answer waits in the buffers.
      if (p.status === 200) s.pause();
    }
  });
  s.write(endlessRequest);
  return { socket: s, status: () => head?.status ?? 0, head: () => head?.headers ?? {} };
}

const sim = () => env.sim.requests.filter((q) => q.path === '/api/generate');

describe('one peer reading slowly', () => {
  beforeAll(async () => {
    env = await startEnv({
      sim: { tokenRate: 0 },
      limits: { maxUpstreamRequests: POOL, idleTimeoutSec: IDLE_SEC, keepAliveSec: 30 },
      peers: [
        // maxStreams out of the way: the pool's share is what bounds alice here
        { name: 'alice', address: '127.0.0.1', policy: { ...FAST, maxStreams: 100 } },
        { name: 'bob', address: '127.0.0.2', policy: FAST },
      ],
    });
  });
  afterAll(async () => {
    await env?.close();
  });
  beforeEach(() => env.reset({ settleMs: 3000 }));

  test('holds only its share of the pool (429 beyond it), another peer is still served, and its stalled answers are cut after idleTimeoutSec', async () => {
    const readers: SlowReader[] = [];
    try {
      await sharesAndCuts(readers);
    } finally {
      for (const r of readers) r.socket.destroy();
    }
  });

  async function sharesAndCuts(readers: SlowReader[]): Promise<void> {
    for (let i = 0; i < POOL; i++) readers.push(await slowReader('alice', '127.0.0.1'));
    await waitFor(() => readers.every((r) => r.status() !== 0), 3000, "every one of alice's answers begun");
    const served = readers.filter((r) => r.status() === 200);
    const refused = readers.filter((r) => r.status() !== 200);
    // the answers alice does not read hold their upstream requests: nothing has ended at Ollama
    expect(sim().every((q) => !q.ended)).toBe(true);

    // bob is served meanwhile — a small request and a big one he reads
    const version = await env.request('bob', { path: '/api/version', localAddress: '127.0.0.2' });
    expect(version.status, version.text).toBe(200);
    const big = await env.request('bob', { path: '/api/show', body: { model: 'llama3.2', verbose: true }, localAddress: '127.0.0.2' });
    expect(big.status).toBe(200);
    expect(big.text.length).toBeGreaterThan(1_000_000);

    // alice got her share (a quarter of the pool), and a 429 with Retry-After for the rest
    expect(served).toHaveLength(POOL / 4);
    expect(refused).toHaveLength(POOL - POOL / 4);
    for (const r of refused) {
      expect(r.status()).toBe(429);
      expect(r.head()['retry-after']).toBe('1');
    }
    expect(env.records.filter((r) => r.peer === 'alice' && r.refusal === 'too_many_in_flight')).toHaveLength(POOL - POOL / 4);
    expect(sim()).toHaveLength(POOL / 4);
    // a non-generating request counts as much: alice, at her share, gets 429 for /api/show too
    const more = await env.request('alice', { path: '/api/show', body: { model: 'llama3.2' } });
    expect(more.status).toBe(429);
    expect(errorOf(more)).toBe(`too many requests in flight for this peer (limit ${POOL / 4})`);

    // the answers alice does not drain are cut idleTimeoutSec after they stalled, upstream too
    await waitFor(() => env.records.filter((r) => r.refusal === 'client_stalled').length === POOL / 4, IDLE_SEC * 1000 + 5000, "alice's stalled answers cut");
    await waitFor(() => sim().filter((q) => q.ended).length === POOL / 4, 1000, 'the upstream requests ended');
    expect(sim().filter((q) => q.aborted)).toHaveLength(POOL / 4);
    // their connections closed; those of the 429s stay open (keep-alive)
    await waitFor(() => env.guard.connections() === POOL - POOL / 4, 2000, 'the cut connections closed');
    expect(env.records.find((r) => r.refusal === 'client_stalled')).toMatchObject({ peer: 'alice', endpoint: 'generate', status: 200 });
    expect(await env.registry.getSingleMetricAsString('wgo_guard_refusals_total')).toContain(`wgo_guard_refusals_total{reason="client_stalled"} ${POOL / 4}`);
  }

  test('a stalled stream is recorded as client_stalled, not as an idle connection', async () => {
    const huge = JSON.stringify({ model: 'llama3.2', prompt: 'go on', options: { num_predict: 50_000_000 } });
    const s = await env.rawTls('alice', '127.0.0.1');
    s.on('error', () => undefined);
    s.pause();
    try {
      s.write(`POST /api/generate HTTP/1.1\r\nHost: guard\r\nContent-Type: application/json\r\nContent-Length: ${huge.length}\r\n\r\n${huge}`);
      await waitFor(() => env.records.some((r) => r.endpoint === 'generate'), IDLE_SEC * 1000 + 3000, 'the stream cut and recorded');
      expect(env.records.find((r) => r.endpoint === 'generate')).toMatchObject({ peer: 'alice', status: 200, refusal: 'client_stalled' });
      await waitFor(() => env.sim.requests[0]!.ended, 1000, 'the upstream request ended');
      expect(env.sim.requests[0]!.aborted).toBe(true);
    } finally {
      s.destroy();
    }
  });

  test('in-flight slots are given back: after the cut, alice is served again', async () => {
    const r = await env.request('alice', { path: '/api/show', body: { model: 'llama3.2' } });
    expect(r.status, errorOrText(r.text)).toBe(200);
  });
});

const errorOrText = (text: string): string => {
  try {
    return errorOf({ text });
  } catch {
    return text.slice(0, 200);
  }
};
