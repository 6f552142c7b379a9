/**
 * The guard as the pool's router (docs/gpu-pool.md) in front of three real simulators with
 * different models, driven by the `ollama` and `openai` npm clients through mTLS: requests land
 * on a host that has their model (the simulators' own logs say where), the lists are the merged
 * lists filtered by the peer's policy, a host that is down before answering is retried on another
 * with the model, a host that dies mid-stream ends that stream with an error (never replayed),
 * and a client that leaves the queue costs nothing upstream.
 */
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { createSimulator, type Simulator } from '../../../scripts/lab/ollama-sim.mjs';
import { poolMetrics } from '../../../src/guard/metrics.js';
import { startEnv, type GuardEnv } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

const MODELS = [['llama3.2', 'nomic-embed-text'], ['llama3.2', 'qwen2.5:7b'], ['mistral']];
let env: GuardEnv;
let sims: Simulator[];
const agents: Agent[] = [];

beforeAll(async () => {
  sims = [];
  for (const models of MODELS) {
    const s = createSimulator({ tokenRate: 200, tokens: 6, models });
    await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r));
    sims.push(s);
  }
  env = await startEnv({
    peers: [{ name: 'alice', address: '127.0.0.1', policy: { models: ['llama3.2', 'qwen2.5:*', 'mistral'] } }],
    pool: {
      members: sims.map((s, i) => ({ name: `gpu${i + 1}`, origin: `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`, parallel: 1 })),
      probeIntervalMs: 60_000,
      health: { cooldownMs: 60_000, maxCooldownMs: 60_000, serverErrorStreak: 3 },
    },
  });
  await env.guard.pool!.start();
});
afterAll(async () => {
  await Promise.all(agents.map((a) => a.close()));
  await env?.close();
  for (const s of sims ?? []) {
    s.server.closeAllConnections();
    await new Promise((r) => s.server.close(r));
  }
});
beforeEach(() => {
  for (const s of sims) s.clear();
  env.records.length = 0;
});

function certFetch(): typeof fetch {
  const alice = env.certs.get('alice')!;
  const agent = new Agent({ connect: { ca: env.ca.certPem, cert: alice.certPem, key: alice.keyPem } });
  agents.push(agent);
  return ((input: Parameters<typeof undiciFetch>[0], init?: Parameters<typeof undiciFetch>[1]) => undiciFetch(input, { ...init, dispatcher: agent })) as unknown as typeof fetch;
}
const ollama = (): Ollama => new Ollama({ host: `https://127.0.0.1:${env.port}`, fetch: certFetch() });
/** Which simulators heard a request for `path`. */
const heardBy = (path: string): string[] => sims.flatMap((s, i) => (s.requests.some((q: { path: string }) => q.path === path) ? [`gpu${i + 1}`] : []));

describe('the guard routing to a pool of GPU hosts', () => {
  test('each model lands on a host that has it; the other hosts hear nothing', async () => {
    const o = ollama();
    const q = await o.generate({ model: 'qwen2.5:7b', prompt: 'hi' });
    expect(q.done).toBe(true);
    expect(heardBy('/api/generate')).toEqual(['gpu2']);
    for (const s of sims) s.clear();
    const parts: string[] = [];
    for await (const p of await o.chat({ model: 'mistral', messages: [{ role: 'user', content: 'hi' }], stream: true })) parts.push(p.message.content);
    expect(parts.length).toBeGreaterThan(1);
    expect(heardBy('/api/chat')).toEqual(['gpu3']);
    await waitFor(() => env.records.length === 2, 1000, 'two records');
    expect(env.records.map((r) => [r.model, r.status])).toEqual([['qwen2.5:7b', 200], ['mistral:latest', 200]]);
  });

  test('/api/tags and /v1/models: every host’s models, merged and filtered by the policy, without asking any host', async () => {
    const tags = await ollama().list();
    expect(tags.models.map((m) => m.name).sort()).toEqual(['llama3.2:latest', 'mistral:latest', 'qwen2.5:7b']);
    const openai = new OpenAI({ baseURL: `https://127.0.0.1:${env.port}/v1`, apiKey: 'unused', fetch: certFetch() });
    const ids: string[] = [];
    for await (const m of openai.models.list()) ids.push(m.id);
    expect(ids.sort()).toEqual(['llama3.2:latest', 'mistral:latest', 'qwen2.5:7b']);
    expect(heardBy('/api/tags').length + heardBy('/v1/models').length).toBe(0);
  });

  test('/api/ps: what the hosts had loaded at their last probe, not what they have installed', async () => {
    await ollama().generate({ model: 'qwen2.5:7b', prompt: 'load it' });
    await env.guard.pool!.probe();
    const names = (await ollama().ps()).models.map((m) => m.name);
    expect(names).toContain('qwen2.5:7b');
    // llama3.2 is installed on two hosts but was never run: not loaded
    expect(names).not.toContain('llama3.2:latest');
  });

  test('installing or removing models through the router: 501, nothing sent to any host', async () => {
    env.guard.setPeers(env.peerSet({ policies: { alice: { models: ['llama3.2', 'qwen2.5:*', 'mistral'], writeModels: null, endpoints: ['generate', 'chat', 'tags', 'ps', 'version', 'v1.models', 'pull', 'delete', 'create', 'copy'] } } }));
    try {
      for (const [path, body] of [['/api/pull', { model: 'mistral' }], ['/api/delete', { model: 'mistral' }], ['/api/create', { model: 'mine', from: 'llama3.2' }]] as const) {
        const r = await env.request('alice', { path, method: path === '/api/delete' ? 'DELETE' : 'POST', body });
        expect([path, r.status]).toEqual([path, 501]);
        expect(JSON.parse(r.text).error).toMatch(/not available through the pool router/);
      }
      expect(sims.every((s) => s.requests.every((q: { path: string }) => q.path === '/api/tags' || q.path === '/api/ps'))).toBe(true);
    } finally {
      env.guard.setPeers(env.peerSet({ policies: { alice: { models: ['llama3.2', 'qwen2.5:*', 'mistral'] } } }));
    }
  });

  test('a model the peer may use but no host has: 404 as Ollama says it, nothing sent anywhere', async () => {
    const r = await env.request('alice', { path: '/api/generate', body: { model: 'qwen2.5:14b', prompt: 'x', stream: false } });
    expect(r.status).toBe(404);
    expect(JSON.parse(r.text)).toEqual({ error: 'model "qwen2.5:14b" not found on any GPU host' });
    expect(sims.every((s) => s.requests.length === 0)).toBe(true);
  });

  test('a client that leaves while its request waits for a slot: no host ever hears of it', async () => {
    // gpu3 (mistral) takes one at a time: hold it with a long stream, queue another, then leave.
    const holder = await env.rawTls('alice');
    const body = JSON.stringify({ model: 'mistral', prompt: 'long', options: { num_predict: 100000 } });
    holder.write(`POST /api/generate HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await waitFor(() => sims[2]!.requests.length === 1, 2000, 'the first stream under way');
    const waiter = await env.rawTls('alice');
    const b2 = JSON.stringify({ model: 'mistral', prompt: 'queued' });
    waiter.write(`POST /api/generate HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\nContent-Length: ${b2.length}\r\n\r\n${b2}`);
    await waitFor(() => env.guard.pool!.queued() === 1, 2000, 'the second request queued');
    waiter.destroy();
    await waitFor(() => env.guard.pool!.queued() === 0, 2000, 'taken out of the queue');
    holder.destroy();
    await waitFor(() => env.records.length === 2, 2000, 'both recorded');
    expect(sims[2]!.requests).toHaveLength(1);
    const left = env.records.find((r) => r.status === 499)!;
    expect(left).toMatchObject({ refusal: 'client_aborted', model: 'mistral:latest' });
    expect(left.host ?? null).toBeNull();
    // Its wait is in the record though no host served it.
    expect(left.queueMs).toBeGreaterThan(0);
  });

  test('metrics: each host’s state, the queue, and how long requests waited', async () => {
    poolMetrics(env.registry, env.guard.pool!);
    await ollama().generate({ model: 'mistral', prompt: 'hi' });
    const text = await env.registry.metrics();
    for (const h of ['gpu1', 'gpu2', 'gpu3']) {
      expect(text).toContain(`wgo_guard_pool_host_up{host="${h}"} 1`);
      expect(text).toContain(`wgo_guard_pool_host_in_flight{host="${h}"} 0`);
      expect(text).toContain(`wgo_guard_pool_host_parallel{host="${h}"} 1`);
    }
    expect(text).toContain('wgo_guard_pool_host_models{host="gpu2"} 2');
    expect(text).toContain('wgo_guard_pool_queued 0');
    expect(text).toMatch(/wgo_guard_queue_wait_seconds_count [1-9]/);
  });

  test('a host that is down before answering: the request goes to another host with the model; a host that dies mid-stream ends that stream', async () => {
    const o = ollama();
    // llama3.2 is on gpu1 and gpu2; gpu1 stops accepting connections
    const port1 = (sims[0]!.server.address() as AddressInfo).port;
    sims[0]!.server.closeAllConnections();
    await new Promise((r) => sims[0]!.server.close(r));
    for (let i = 0; i < 3; i++) expect((await o.generate({ model: 'llama3.2', prompt: `try ${i}` })).done).toBe(true);
    expect(heardBy('/api/generate')).toEqual(['gpu2']);
    expect(env.guard.pool!.status()[0]!.health).toBe('cooldown');
    // now gpu2 dies while streaming: the stream is cut, not replayed on another host
    sims[0]!.server.listen(port1, '127.0.0.1');
    for (const s of sims) s.clear();
    const stream = await o.generate({ model: 'llama3.2', prompt: 'long', stream: true, options: { num_predict: 100000 } });
    let n = 0;
    await expect(
      (async () => {
        for await (const _ of stream) if (++n === 3) sims[1]!.server.closeAllConnections();
      })(),
    ).rejects.toThrow();
    expect(n).toBeGreaterThanOrEqual(3);
    expect(heardBy('/api/generate')).toEqual(['gpu2']);
  });
});

describe('what the router sends to another host after a host broke off before answering', () => {
  let env2: GuardEnv;
  let good: Simulator;
  const seen: string[] = [];
  const fake = createNetServer((socket) => {
    socket.on('error', () => undefined);
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const line = buf.slice(0, buf.indexOf('\r\n'));
      buf = '';
      seen.push(line);
      if (line.startsWith('GET /api/tags') || line.startsWith('GET /api/ps')) {
        // it has llama3.2, and says it is loaded: never less preferred than the good host
        const body = JSON.stringify({ models: [{ name: 'llama3.2:latest', modified_at: '2026-12-01T00:00:00Z' }] });
        socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      } else socket.destroy(); // read the request, then broke off: it may have acted on it
    });
  });
  beforeAll(async () => {
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    good = createSimulator({ tokenRate: 0, tokens: 2, models: ['llama3.2'] });
    await new Promise<void>((r) => good.server.listen(0, '127.0.0.1', r));
    env2 = await startEnv({
      peers: [{ name: 'alice', address: '127.0.0.1' }],
      pool: {
        members: [
          // "a" sorts first, and was picked before "b" in every test: with both idle and the model loaded on both, it is chosen first
          { name: 'a-faulty', origin: `http://127.0.0.1:${(fake.address() as AddressInfo).port}`, parallel: 4 },
          { name: 'b-good', origin: `http://127.0.0.1:${(good.server.address() as AddressInfo).port}`, parallel: 4 },
        ],
        probeIntervalMs: 60_000,
        // back in the rotation at the next probe: each test starts with both hosts healthy
        health: { cooldownMs: 1, maxCooldownMs: 1, serverErrorStreak: 3 },
      },
    });
  });
  afterAll(async () => {
    await env2?.close();
    good.server.closeAllConnections();
    await new Promise((r) => good.server.close(r));
    await new Promise((r) => fake.close(r));
  });
  beforeEach(async () => {
    await new Promise((r) => setTimeout(r, 5));
    await env2.guard.pool!.start();
    expect(env2.guard.pool!.status().map((h) => h.health)).toEqual(['healthy', 'healthy']);
    seen.length = 0;
    good.clear();
  });

  test('a generation: sent to the next host with the model, and served', async () => {
    const r = await env2.request('alice', { path: '/api/generate', body: { model: 'llama3.2', prompt: 'x', stream: false } });
    expect(r.status).toBe(200);
    expect(seen.filter((l) => l.startsWith('POST'))).toEqual(['POST /api/generate HTTP/1.1']);
    expect(good.requests.map((q: { path: string }) => q.path)).toEqual(['/api/generate']);
  });

  test('anything else (here /api/show): not sent anywhere else, answered 503', async () => {
    const r = await env2.request('alice', { path: '/api/show', body: { model: 'llama3.2' } });
    expect(r.status).toBe(503);
    expect(seen.filter((l) => l.startsWith('POST'))).toEqual(['POST /api/show HTTP/1.1']);
    expect(good.requests).toHaveLength(0);
  });
});
