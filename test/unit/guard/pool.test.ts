/**
 * The router's GPU hosts (src/guard/pool.ts) against three real simulators, each with its own
 * models: probing, model-aware choice, merged tags, fair queueing on a host's parallelism,
 * queue bounds and timeouts, a host that dies and comes back, draining.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { createSimulator, type Simulator } from '../../../scripts/lab/ollama-sim.mjs';
import { MAX_PROBE_BYTES, createPool, type Acquired, type Lease, type Pool, type PoolOptions } from '../../../src/guard/pool.js';
import { waitFor } from '../../support/wait.js';

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function sim(models: string[], port = 0): Promise<{ sim: Simulator; port: number; stop(): Promise<void> }> {
  const s = createSimulator({ tokenRate: 0, tokens: 2, models });
  await new Promise<void>((r) => s.server.listen(port, '127.0.0.1', r));
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    s.server.closeAllConnections();
    await new Promise((r) => s.server.close(r));
  };
  cleanup.push(stop);
  return { sim: s, port: (s.server.address() as AddressInfo).port, stop };
}

async function threeHosts(o: Partial<PoolOptions> = {}, parallel = 2): Promise<{ pool: Pool; hosts: Awaited<ReturnType<typeof sim>>[] }> {
  const hosts = [await sim(['llama3.2', 'nomic-embed-text']), await sim(['llama3.2', 'qwen2.5:7b']), await sim(['mistral'])];
  const pool = createPool({
    members: hosts.map((h, i) => ({ name: `gpu${i + 1}`, origin: `http://127.0.0.1:${h.port}`, parallel })),
    probeIntervalMs: 60_000, timerResolutionMs: 25, ...o,
  });
  cleanup.push(() => pool.close());
  await pool.probe();
  return { pool, hosts };
}

const lease = async (a: { result: Promise<Acquired> }): Promise<Lease> => {
  const r = await a.result;
  if (!r.ok) throw new Error(`refused: ${JSON.stringify(r.refusal)}`);
  return r.lease;
};

/** A GET through a lease's host: its status, or the error. */
const get = (l: Lease, path: string): Promise<number> =>
  new Promise((resolve, reject) => {
    let status = 0;
    l.upstream.request({ method: 'GET', path, headers: {}, headersTimeoutMs: 2000, bodyTimeoutMs: 2000 }, { onStart: () => undefined, onHead: (s) => (status = s), onData: () => undefined, onEnd: () => resolve(status), onError: reject });
  });

describe('a pool of GPU hosts', () => {
  test('probes learn each host’s models; /api/tags is their union, each name once', async () => {
    const { pool } = await threeHosts();
    expect(pool.status().map((h) => [h.name, h.health, h.models])).toEqual([
      ['gpu1', 'healthy', ['llama3.2:latest', 'nomic-embed-text:latest']],
      ['gpu2', 'healthy', ['llama3.2:latest', 'qwen2.5:7b']],
      ['gpu3', 'healthy', ['mistral:latest']],
    ]);
    expect(pool.tags().map((t) => t.name).sort()).toEqual(['llama3.2:latest', 'mistral:latest', 'nomic-embed-text:latest', 'qwen2.5:7b']);
  });

  test('a request goes to a host that has its model, named as the client named it', async () => {
    const { pool } = await threeHosts();
    expect((await lease(pool.acquire('ann', 'Qwen2.5:7B'))).host).toBe('gpu2');
    expect((await lease(pool.acquire('ann', 'mistral'))).host).toBe('gpu3');
    expect((await lease(pool.acquire('ann', 'nomic-embed-text:latest'))).host).toBe('gpu1');
    // two hosts have llama3.2: the less busy one
    const first = await lease(pool.acquire('ann', 'llama3.2'));
    const second = await lease(pool.acquire('ann', 'llama3.2'));
    expect(new Set([first.host, second.host])).toEqual(new Set(['gpu1', 'gpu2']));
  });

  test('a model no host has: 404 as Ollama says it; no model (e.g. /api/version): any host', async () => {
    const { pool } = await threeHosts();
    expect(await pool.acquire('ann', 'gemma3').result).toEqual({ ok: false, refusal: { status: 404, error: 'model "gemma3:latest" not found on any GPU host', reason: 'model_not_found' } });
    expect((await lease(pool.acquire('ann', null))).host).toMatch(/^gpu[123]$/);
  });

  test('parallelism is never exceeded; waiting peers take turns, so one request is not stuck behind another peer’s burst', async () => {
    const { pool } = await threeHosts({}, 1);
    const running = await lease(pool.acquire('heavy', 'mistral'));
    const heavy = Array.from({ length: 5 }, () => pool.acquire('heavy', 'mistral'));
    const light = pool.acquire('light', 'mistral');
    expect(pool.queued()).toBe(6);
    expect(pool.status().find((h) => h.name === 'gpu3')!.inFlight).toBe(1);
    const order: string[] = [];
    heavy.forEach((a, i) => void a.result.then(() => order.push(`heavy${i}`)));
    void light.result.then(() => order.push('light'));
    running.release({ status: 200 });
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual(['heavy0']);
    (await lease(heavy[0]!)).release({ status: 200 });
    await new Promise((r) => setImmediate(r));
    // the light peer's single request started one generation slot after it arrived
    expect(order).toEqual(['heavy0', 'light']);
    expect((await lease(light)).queuedMs).toBeGreaterThanOrEqual(0);
  });

  test('queue bounds and waiting too long: 503 with Retry-After; a client that leaves is taken out', async () => {
    const { pool } = await threeHosts({ queue: { perPeer: 1, total: 10, maxWaitMs: 150 } }, 1);
    await lease(pool.acquire('ann', 'mistral'));
    const waiting = pool.acquire('ann', 'mistral');
    expect(await pool.acquire('ann', 'mistral').result).toMatchObject({ ok: false, refusal: { status: 503, reason: 'peer_queue_full' } });
    expect(await waiting.result).toMatchObject({ ok: false, refusal: { status: 503, reason: 'queue_timeout', retryAfterSec: 1 } });
    const leaving = pool.acquire('bob', 'mistral');
    leaving.cancel();
    expect(await leaving.result).toEqual({ ok: false, refusal: null });
    expect(pool.queued()).toBe(0);
  });

  test('a host that cannot be reached leaves the rotation; requests go to another host with the model; it returns after it restarts', async () => {
    const { pool, hosts } = await threeHosts({ health: { cooldownMs: 100, maxCooldownMs: 1000, serverErrorStreak: 3 } });
    const port = hosts[0]!.port;
    await hosts[0]!.stop();
    // a request that fails to reach gpu1 is reported; the retry excludes it
    const first = await lease(pool.acquire('ann', 'nomic-embed-text'));
    expect(first.host).toBe('gpu1');
    first.release('unreachable');
    expect(pool.status()[0]!.health).toBe('cooldown');
    expect((await lease(pool.acquire('ann', 'llama3.2'))).host).toBe('gpu2');
    expect(await pool.acquire('ann', 'nomic-embed-text').result).toMatchObject({ ok: false, refusal: { status: 503, reason: 'upstream_unavailable' } });
    expect(pool.tags().map((t) => t.name)).not.toContain('nomic-embed-text:latest');
    // still down: the probe fails, the cooldown grows
    await new Promise((r) => setTimeout(r, 120));
    await pool.probe();
    expect(pool.status()[0]!.health).toBe('cooldown');
    await sim(['llama3.2', 'nomic-embed-text'], port);
    await waitFor(async () => {
      await pool.probe();
      return pool.status()[0]!.health === 'healthy';
    }, 3000, 'gpu1 back in the rotation');
    expect((await lease(pool.acquire('ann', 'nomic-embed-text'))).host).toBe('gpu1');
  });

  test('a request waiting for a host that drains, leaves or fails is answered at once, not after maxWaitMs', async () => {
    const { pool, hosts } = await threeHosts({ queue: { perPeer: 8, total: 64, maxWaitMs: 60_000 } }, 1);
    const members = hosts.map((h, i) => ({ name: `gpu${i + 1}`, origin: `http://127.0.0.1:${h.port}`, parallel: 1 }));
    // draining: gpu3 is mistral's only host
    let running = await lease(pool.acquire('ann', 'mistral'));
    let waiting = pool.acquire('bob', 'mistral');
    expect(pool.queued()).toBe(1);
    pool.setDraining('gpu3', true);
    expect(await waiting.result).toMatchObject({ ok: false, refusal: { status: 503, reason: 'upstream_unavailable' } });
    running.release({ status: 200 });
    pool.setDraining('gpu3', false);
    // failing: the running request finds gpu3 unreachable, gpu3 cools down
    running = await lease(pool.acquire('ann', 'mistral'));
    waiting = pool.acquire('bob', 'mistral');
    running.release('unreachable');
    expect(await waiting.result).toMatchObject({ ok: false, refusal: { status: 503, retryAfterSec: expect.any(Number) } });
    // leaving: nomic-embed-text is only on gpu1
    running = await lease(pool.acquire('ann', 'nomic-embed-text'));
    waiting = pool.acquire('bob', 'nomic-embed-text');
    pool.setMembers(members.slice(1));
    expect(await waiting.result).toMatchObject({ ok: false, refusal: { status: 404, reason: 'model_not_found' } });
    expect(pool.queued()).toBe(0);
  });

  test('three 5xx answers in a row take a host out too', async () => {
    const { pool } = await threeHosts();
    for (let i = 0; i < 3; i++) (await lease(pool.acquire('ann', 'mistral'))).release({ status: 500 });
    expect(pool.status()[2]!.health).toBe('cooldown');
  });

  test('a draining host takes no new requests; the one it runs finishes and frees its slot', async () => {
    const { pool } = await threeHosts();
    const running = await lease(pool.acquire('ann', 'mistral'));
    pool.setDraining('gpu3', true);
    expect(await pool.acquire('ann', 'mistral').result).toMatchObject({ ok: false, refusal: { status: 503 } });
    running.release({ status: 200 });
    expect(pool.status()[2]).toMatchObject({ draining: true, inFlight: 0 });
    pool.setDraining('gpu3', false);
    expect((await lease(pool.acquire('ann', 'mistral'))).host).toBe('gpu3');
  });

  test('members change with a new list: a new host joins after its probe; a host that left finishes what it runs, then closes', async () => {
    const { pool, hosts } = await threeHosts();
    const extra = await sim(['gemma3']);
    const members = hosts.map((h, i) => ({ name: `gpu${i + 1}`, origin: `http://127.0.0.1:${h.port}`, parallel: 2 }));
    const running = await lease(pool.acquire('ann', 'mistral'));
    expect(running.host).toBe('gpu3');
    pool.setMembers([...members.slice(0, 2), { name: 'gpu4', origin: `http://127.0.0.1:${extra.port}`, parallel: 1 }]);
    // gpu3 left: no new requests for its model (503 while gpu4, not probed yet, might have it); the one it runs is not cut
    expect(await pool.acquire('ann', 'mistral').result).toMatchObject({ ok: false, refusal: { status: 503 } });
    expect(await get(running, '/api/version')).toBe(200);
    // gpu4 joins after its probe; now every host is known, and none has mistral
    await pool.probe();
    expect((await lease(pool.acquire('ann', 'gemma3'))).host).toBe('gpu4');
    expect(await pool.acquire('ann', 'mistral').result).toMatchObject({ ok: false, refusal: { status: 404 } });
    expect(pool.status().map((h) => h.name)).toEqual(['gpu1', 'gpu2', 'gpu4']);
    expect(pool.tags().map((t) => t.name)).not.toContain('mistral:latest');
    running.release({ status: 200 });
    await waitFor(() => running.upstream.stats().open === 0, 1000, 'gpu3’s connections closed once its request ended');
    await expect(get(running, '/api/version')).rejects.toThrow('upstream client closed');
    // a new parallelism applies at once
    pool.setMembers([{ ...members[0]!, parallel: 1 }, members[1]!]);
    expect(pool.status()).toMatchObject([{ name: 'gpu1', parallel: 1 }, { name: 'gpu2', parallel: 2 }]);
  });

  test('a list that is not valid changes nothing, whatever is wrong with it', async () => {
    const { pool, hosts } = await threeHosts();
    const ok = hosts.map((h, i) => ({ name: `gpu${i + 1}`, origin: `http://127.0.0.1:${h.port}`, parallel: 2 }));
    expect(() => pool.setMembers([{ name: 'x', origin: 'http://127.0.0.1:1', parallel: 1 }, { name: 'x', origin: 'http://127.0.0.1:2', parallel: 1 }])).toThrow('named twice');
    // gpu1 moved to https without TLS material: refused when its connection pool is made, before gpu1 is taken out
    expect(() => pool.setMembers([{ ...ok[0]!, origin: 'https://127.0.0.1:1' }, ok[1]!])).toThrow('needs tls options');
    expect(pool.status().map((h) => [h.name, h.health])).toEqual([['gpu1', 'healthy'], ['gpu2', 'healthy'], ['gpu3', 'healthy']]);
  });

  test('a new member takes no request before its first probe passes; a closed pool takes none at all', async () => {
    const { pool } = await threeHosts();
    const extra = await sim(['gemma3']);
    pool.setMembers([{ name: 'gpu4', origin: `http://127.0.0.1:${extra.port}`, parallel: 1 }]);
    expect(await pool.acquire('ann', null).result).toMatchObject({ ok: false, refusal: { status: 503 } });
    await pool.probe();
    expect((await lease(pool.acquire('ann', null))).host).toBe('gpu4');
    await pool.close();
    expect(await pool.acquire('ann', null).result).toMatchObject({ ok: false, refusal: { status: 503, error: 'the guard is stopping' } });
  });

  test('before a host has answered its first probe, a model no other host has is not called missing (503, not 404)', async () => {
    const h = await sim(['mistral']);
    const pool = createPool({ members: [{ name: 'gpu1', origin: `http://127.0.0.1:${h.port}`, parallel: 1 }], probeIntervalMs: 60_000 });
    cleanup.push(() => pool.close());
    expect(await pool.acquire('ann', 'mistral').result).toMatchObject({ ok: false, refusal: { status: 503, retryAfterSec: 1 } });
    await pool.probe();
    expect((await lease(pool.acquire('ann', 'mistral'))).host).toBe('gpu1');
    expect(await pool.acquire('ann', 'gemma3').result).toMatchObject({ ok: false, refusal: { status: 404, reason: 'model_not_found' } });
  });

  test('a host whose model list is larger than any real one fails its probe instead of being read whole', async () => {
    const big = createServer((req, res) => {
      if (req.url === '/api/ps') return void res.end('{"models":[]}');
      // 9 MiB of model entries, streamed
      res.write('{"models":[');
      const entry = JSON.stringify({ name: 'x'.repeat(200), model: 'x', modified_at: '2024-01-01T00:00:00Z', size: 1, digest: 'd' });
      let sent = 0;
      const more = (): void => {
        while (sent < MAX_PROBE_BYTES + 1024 * 1024) {
          sent += entry.length + 1;
          if (!res.write(entry + ',')) return void res.once('drain', more);
        }
        res.end(`${entry}]}`);
      };
      more();
    });
    await new Promise<void>((r) => big.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => { big.closeAllConnections(); big.close(() => r()); }));
    const ok = await sim(['llama3.2']);
    const pool = createPool({ members: [{ name: 'big', origin: `http://127.0.0.1:${(big.address() as AddressInfo).port}`, parallel: 1 }, { name: 'ok', origin: `http://127.0.0.1:${ok.port}`, parallel: 1 }], probeIntervalMs: 60_000, timerResolutionMs: 25 });
    cleanup.push(() => pool.close());
    await pool.probe();
    expect(pool.status().map((h) => [h.name, h.health, h.models.length])).toEqual([['big', 'unprobed', 0], ['ok', 'healthy', 1]]);
  });

  test('members are checked when the pool is made', () => {
    expect(() => createPool({ members: [{ name: 'a', origin: 'http://127.0.0.1:1', parallel: 1 }, { name: 'a', origin: 'http://127.0.0.1:2', parallel: 1 }] })).toThrow('named twice');
    expect(() => createPool({ members: [{ name: 'a', origin: 'http://127.0.0.1:1', parallel: 0 }] })).toThrow('parallel');
  });
});
