/**
 * A router and a pool member, both real guards over mTLS (docs/gpu-pool.md): a peer's request
 * passes the router's policy and reaches the member's Ollama; the member serves only the router's
 * certificate (a peer's own certificate, valid for the router, is refused there), keeps the
 * router's connection across peer-set changes, records nothing the router records, and learns
 * the peer's name for its metrics from the router.
 */
import { Ollama } from 'ollama';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { issueCertificate } from '../../../src/pki/ca.js';
import { testCa } from '../../support/ca.js';
import { startEnv, type GuardEnv } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

let member: GuardEnv;
let router: GuardEnv;
const agents: Agent[] = [];
const routerCert = issueCertificate(testCa(), { role: 'guard-client', commonName: 'guard:edge', notAfter: new Date(Date.now() + 3600_000) });

beforeAll(async () => {
  member = await startEnv({ sim: { tokenRate: 500, tokens: 5, models: ['llama3.2'] }, member: { routers: () => new Set([routerCert.serial]) } });
  router = await startEnv({
    peers: [{ name: 'alice', address: '127.0.0.1', policy: { models: ['llama3.2'] } }],
    pool: {
      members: [{ name: 'gpu1', origin: `https://127.0.0.1:${member.port}`, parallel: 2, tls: { ca: testCa().certPem, cert: routerCert.certPem, key: routerCert.keyPem } }],
      probeIntervalMs: 60_000,
    },
  });
  await router.guard.pool!.start();
});
afterAll(async () => {
  await Promise.all(agents.map((a) => a.close()));
  await router?.close();
  await member?.close();
});

const ollamaAs = (env: GuardEnv): Ollama => {
  const alice = env.certs.get('alice')!;
  const agent = new Agent({ connect: { ca: env.ca.certPem, cert: alice.certPem, key: alice.keyPem } });
  agents.push(agent);
  return new Ollama({ host: `https://127.0.0.1:${env.port}`, fetch: ((i: Parameters<typeof undiciFetch>[0], init?: Parameters<typeof undiciFetch>[1]) => undiciFetch(i, { ...init, dispatcher: agent })) as unknown as typeof fetch });
};

describe('a router in front of a pool member, over mTLS', () => {
  test('the router probed the member through it: it knows the member’s models', () => {
    expect(router.guard.pool!.status()).toMatchObject([{ name: 'gpu1', health: 'healthy', models: ['llama3.2:latest'] }]);
  });

  test('a peer’s chat goes through the router’s policy to the member’s Ollama; recorded once, by the router', async () => {
    member.records.length = 0;
    const parts: string[] = [];
    for await (const p of await ollamaAs(router).chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true })) parts.push(p.message.content);
    expect(parts.length).toBeGreaterThan(1);
    expect(member.sim.requests.filter((q: { path: string }) => q.path === '/api/chat')).toHaveLength(1);
    await waitFor(() => router.records.length >= 1, 1000, 'the router’s record');
    expect(router.records.at(-1)).toMatchObject({ peer: 'alice', endpoint: 'chat', status: 200, model: 'llama3.2:latest' });
    expect(member.records).toEqual([]);
    // the member counted it under the peer's name the router sent
    expect(await member.registry.getSingleMetricAsString('wgo_guard_requests_total')).toContain('peer="alice"');
  });

  test('the router’s policy still decides: a model alice may not use never reaches the member', async () => {
    const before = member.sim.requests.length;
    await expect(ollamaAs(router).generate({ model: 'mistral', prompt: 'x' })).rejects.toThrow();
    expect(member.sim.requests.length).toBe(before);
  });

  test('the member refuses a peer’s own certificate (403), and records the attempt', async () => {
    member.records.length = 0;
    const r = await member.request('alice', { path: '/api/version' });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text)).toEqual({ error: 'this guard is a pool member: it serves only its pool router' });
    await waitFor(() => member.records.length === 1, 1000, 'the refusal recorded');
    expect(member.records[0]).toMatchObject({ status: 403, refusal: 'auth_not_router' });
  });

  test('a new peer set at the member does not cut the router’s connections', async () => {
    const o = ollamaAs(router);
    const stream = await o.generate({ model: 'llama3.2', prompt: 'long', stream: true, options: { num_predict: 400 } });
    let n = 0;
    for await (const _ of stream) {
      if (++n === 2) member.guard.setPeers(member.peerSet({ version: 'v-next' }));
    }
    expect(n).toBeGreaterThan(100);
  });
});
