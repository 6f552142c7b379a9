/**
 * guard.json's `pool` (guard/pool-role.ts) over real guards and mTLS: a router follows the pool in
 * each peer set (members, parallelism, draining; nothing unless the gateway names it the router),
 * and a member serves only the routers the set names, cutting a router that is no longer one.
 * Request records name the host that served the request and how long it waited.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { poolReportSchema, type PeerSet, type PoolSpec } from '../../../src/core/wire.js';
import { issueCertificate } from '../../../src/pki/ca.js';
import { poolReport, poolRole } from '../../../src/guard/pool-role.js';
import { testCa } from '../../support/ca.js';
import { silentLog, startEnv, type GuardEnv } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

const routerCert = issueCertificate(testCa(), { role: 'guard-client', commonName: 'guard:edge', notAfter: new Date(Date.now() + 3600_000) });
const otherRouter = issueCertificate(testCa(), { role: 'guard-client', commonName: 'guard:edge2', notAfter: new Date(Date.now() + 3600_000) });
const routerTls = { ca: testCa().certPem, cert: routerCert.certPem, key: routerCert.keyPem };
const logged: { event: string }[] = [];
const log = { ...silentLog, info: (o: object) => void logged.push(o as { event: string }), error: (o: object) => void logged.push(o as { event: string }) };

const roles = {
  gpu1: poolRole({ name: 'gpu1', pool: { role: 'member' } }, routerTls, log),
  gpu2: poolRole({ name: 'gpu2', pool: { role: 'member' } }, routerTls, log),
  edge: poolRole({ name: 'edge', pool: { role: 'router' } }, routerTls, log),
};
let gpu1: GuardEnv;
let gpu2: GuardEnv;
let edge: GuardEnv;

/** The peer set a gateway would send, with `pool`; applied the way guard/main.ts does. */
function apply(env: GuardEnv, role: ReturnType<typeof poolRole>, pool: PoolSpec | undefined): PeerSet {
  const set = { ...env.peerSet(), ...(pool ? { pool } : {}) };
  role.apply(set, env.guard.pool);
  env.guard.setPeers(set);
  return set;
}
const spec = (o: { routers?: PoolSpec['routers']; draining?: string[]; parallel?: number } = {}): PoolSpec => ({
  routers: o.routers ?? [{ name: 'edge', serial: routerCert.serial }],
  members: [
    { name: 'gpu1', url: `https://127.0.0.1:${gpu1.port}`, parallel: o.parallel ?? 2, draining: (o.draining ?? []).includes('gpu1'), drainedAt: (o.draining ?? []).includes('gpu1') ? 1234 : null },
    { name: 'gpu2', url: `https://127.0.0.1:${gpu2.port}`, parallel: o.parallel ?? 2, draining: (o.draining ?? []).includes('gpu2') },
  ],
});
const chat = (model: string) => edge.request('alice', { path: '/api/chat', body: { model, messages: [{ role: 'user', content: 'hi' }], stream: false } });
const chats = (env: GuardEnv): number => env.sim.requests.filter((q: { path: string }) => q.path === '/api/chat').length;

beforeAll(async () => {
  gpu1 = await startEnv({ sim: { tokenRate: 2000, tokens: 3, models: ['llama3.2', 'qwen2.5'] }, ...roles.gpu1.guardOptions });
  gpu2 = await startEnv({ sim: { tokenRate: 2000, tokens: 3, models: ['llama3.2', 'mistral'] }, ...roles.gpu2.guardOptions });
  edge = await startEnv({ peers: [{ name: 'alice', address: '127.0.0.1' }], ...roles.edge.guardOptions });
  apply(gpu1, roles.gpu1, spec());
  apply(gpu2, roles.gpu2, spec());
});
afterAll(async () => {
  await edge?.close();
  await gpu1?.close();
  await gpu2?.close();
});

describe('a router following the pool in its peer set', () => {
  test('before any set names members it routes nowhere: 404 would be a lie, so nothing is found and nothing is sent', async () => {
    const r = await chat('qwen2.5');
    expect(r.status).toBe(404);
    expect(chats(gpu1) + chats(gpu2)).toBe(0);
  });

  test('the members of the set are probed, and each model goes to a host that has it; the record names the host', async () => {
    apply(edge, roles.edge, spec());
    await edge.guard.pool!.probe();
    expect(edge.guard.pool!.status().map((h) => [h.name, h.health, h.parallel])).toEqual([['gpu1', 'healthy', 2], ['gpu2', 'healthy', 2]]);
    expect(logged.filter((l) => l.event === 'pool.members')).toHaveLength(1);
    edge.records.length = 0;
    expect((await chat('qwen2.5')).status).toBe(200);
    expect((await chat('mistral')).status).toBe(200);
    expect([chats(gpu1), chats(gpu2)]).toEqual([1, 1]);
    await waitFor(() => edge.records.length >= 2, 1000, 'the router’s records');
    expect(edge.records.map((r) => [r.model, r.host, r.queueMs])).toEqual([['qwen2.5:latest', 'gpu1', 0], ['mistral:latest', 'gpu2', 0]]);
  });

  test('the same set again changes nothing; a drain in the set moves new requests to the other host', async () => {
    apply(edge, roles.edge, spec());
    expect(logged.filter((l) => l.event === 'pool.members')).toHaveLength(1);
    apply(edge, roles.edge, spec({ draining: ['gpu1'] }));
    // The drain's stamp is echoed in what the router reports (remove-guard checks it is this drain).
    expect(poolReport(edge.guard.pool!).hosts.find((h) => h.name === 'gpu1')).toMatchObject({ draining: true, drainedAt: 1234 });
    const before = [chats(gpu1), chats(gpu2)];
    for (let i = 0; i < 3; i++) expect((await chat('llama3.2')).status).toBe(200);
    expect([chats(gpu1) - before[0]!, chats(gpu2) - before[1]!]).toEqual([0, 3]);
    // qwen2.5 is only on the draining host: 503 with Retry-After, not sent anywhere
    const r = await chat('qwen2.5');
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBeDefined();
    expect(chats(gpu1) - before[0]!).toBe(0);
    apply(edge, roles.edge, spec());
  });

  test('a set that does not name this guard the router: it routes to no host, and says why in its log', async () => {
    apply(edge, roles.edge, spec({ routers: [{ name: 'edge2', serial: otherRouter.serial }] }));
    expect(edge.guard.pool!.status()).toEqual([]);
    expect(logged.some((l) => l.event === 'pool.not-router')).toBe(true);
    const before = chats(gpu1) + chats(gpu2);
    expect((await chat('llama3.2')).status).toBe(404);
    expect(chats(gpu1) + chats(gpu2)).toBe(before);
    apply(edge, roles.edge, spec());
    await edge.guard.pool!.probe();
    expect((await chat('llama3.2')).status).toBe(200);
  });
});

describe('a member following the routers in its peer set', () => {
  test('a router the set no longer names is refused (403), and its open connections are cut', async () => {
    const s = await gpu1.rawTls({ cert: routerCert.certPem, key: routerCert.keyPem });
    s.write('GET /api/version HTTP/1.1\r\nhost: gpu1\r\n\r\n');
    await waitFor(() => s.readableLength > 0, 1000, 'an answer on the router’s connection');
    expect(String(s.read())).toMatch(/^HTTP\/1\.1 200/);
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    apply(gpu1, roles.gpu1, spec({ routers: [{ name: 'edge2', serial: otherRouter.serial }] }));
    expect(roles.gpu1.routers()).toEqual(['edge2']);
    await closed;
    const r = await gpu1.request({ cert: routerCert.certPem, key: routerCert.keyPem }, { path: '/api/version' });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text).error).toBe('this guard is a pool member: it serves only its pool router');
    // the router that is named gets in
    expect((await gpu1.request({ cert: otherRouter.certPem, key: otherRouter.keyPem }, { path: '/api/version' })).status).toBe(200);
    apply(gpu1, roles.gpu1, spec());
  });

  test('a set with no pool at all: the member serves no one', async () => {
    apply(gpu2, roles.gpu2, undefined);
    expect(roles.gpu2.routers()).toEqual([]);
    expect((await gpu2.request({ cert: routerCert.certPem, key: routerCert.keyPem }, { path: '/api/version' })).status).toBe(403);
    apply(gpu2, roles.gpu2, spec());
    expect((await gpu2.request({ cert: routerCert.certPem, key: routerCert.keyPem }, { path: '/api/version' })).status).toBe(200);
  });
});

describe('the router’s report to the gateway', () => {
  test('cut to what the gateway takes: a host with an over-long model name or too many models does not spoil the report', () => {
    const models = [...Array.from({ length: 1500 }, (_, i) => `m${i}:latest`), 'x'.repeat(300)].sort();
    const pool = {
      status: () => [{ name: 'gpu1', health: 'healthy' as const, draining: false, drainedAt: null, parallel: 2, inFlight: 1, queued: 0, models, loaded: ['x'.repeat(300), 'm1:latest'] }],
      queued: () => 3,
    };
    const r = poolReport(pool);
    expect(poolReportSchema.safeParse(JSON.parse(JSON.stringify(r))).success).toBe(true);
    expect(r.hosts[0]!.models).toHaveLength(1000);
    expect(r.hosts[0]!.models.every((m) => m.length <= 256)).toBe(true);
    expect(r.hosts[0]!.loaded).toEqual(['m1:latest']);
    expect(r.queued).toBe(3);
  });
});
