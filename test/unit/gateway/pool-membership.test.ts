/**
 * The pool of GPU hosts at the gateway (docs/gpu-pool.md): add-guard --router / --member, drain,
 * parallelism, remove only once drained; the pool in every guard's peer set; the router's
 * report of its members over the real sync API (mTLS); host and queue wait in request records.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:https';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { RequestRecord } from '../../../src/core/request-record.js';
import { parseWire, peerSetSchema, type PoolHostReport } from '../../../src/core/wire.js';
import { auditRepository } from '../../../src/db/audit.js';
import { requestRepository } from '../../../src/db/requests.js';
import { guardService, POOL_REPORT_FRESH_MS, type GuardService, type IssuedGuard } from '../../../src/gateway/guard-service.js';
import { peerSetSource } from '../../../src/gateway/peer-set.js';
import { queryService } from '../../../src/gateway/queries.js';
import { changeSignal, createSyncApi } from '../../../src/gateway/sync-api.js';
import { issueCertificate } from '../../../src/pki/ca.js';
import { testCa, testCaStore } from '../../support/ca.js';
import { expectWgoError } from '../../support/errors.js';
import { WHO, peerEnv, type PeerEnv } from '../../support/peer-env.js';

let env: PeerEnv;
let guards: GuardService;
beforeEach(() => {
  env = peerEnv({ sync: { listen: '127.0.0.1:8443' } });
  guards = guardService({ db: env.db, config: env.config, ca: testCaStore(), clock: () => env.now });
});
afterEach(() => env.close());

const count = (table: string): number => env.db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
const host = (name: string, o: Partial<PoolHostReport> = {}): PoolHostReport => ({ name, health: 'healthy', draining: false, parallel: 2, inFlight: 0, queued: 0, models: ['llama3.2:latest'], loaded: [], ...o });

describe('adding the pool’s guards', () => {
  test('a router and members with their parallelism (default 4); a guard on its own stays "none"', () => {
    guards.add({ name: 'edge', address: '192.168.1.10', poolRole: 'router' }, WHO);
    guards.add({ name: 'gpu1', address: '192.168.1.21', poolRole: 'member', parallel: 2 }, WHO);
    guards.add({ name: 'gpu2', address: '192.168.1.22', poolRole: 'member' }, WHO);
    guards.add({ name: 'solo', address: '192.168.1.30' }, WHO);
    expect(guards.list().map((g) => [g.name, g.poolRole, g.parallel, g.draining])).toEqual([
      ['edge', 'router', null, false], ['gpu1', 'member', 2, false], ['gpu2', 'member', 4, false], ['solo', 'none', null, false],
    ]);
    expect(auditRepository(env.db).list({ since: 0 }).filter((a) => a.action === 'guard.add').map((a) => a.details)).toEqual([
      expect.objectContaining({ pool: 'router' }), expect.objectContaining({ pool: 'member', parallel: 2 }), expect.objectContaining({ pool: 'member', parallel: 4 }),
      expect.not.objectContaining({ pool: expect.anything() }),
    ]);
  });

  test('bad parallelism, parallel without --member, or a second router: a clear error and nothing issued', () => {
    guards.add({ name: 'edge', address: '192.168.1.10', poolRole: 'router' }, WHO);
    const before = [count('guards'), count('certificates'), count('audit_log')];
    for (const parallel of [0, 257, 1.5, Number.NaN]) {
      expect(expectWgoError(() => guards.add({ name: 'gpu1', address: '192.168.1.21', poolRole: 'member', parallel }, WHO), 'BAD_INPUT').message).toMatch(/--parallel must be a whole number from 1 to 256/);
    }
    expect(expectWgoError(() => guards.add({ name: 'gpu1', address: '192.168.1.21', parallel: 2 }, WHO), 'BAD_INPUT').message).toMatch(/--parallel is for a pool member/);
    expect(expectWgoError(() => guards.add({ name: 'edge2', address: '192.168.1.11', poolRole: 'router' }, WHO), 'CONFLICT').message).toMatch(/edge is already the pool's router/);
    expect([count('guards'), count('certificates'), count('audit_log')]).toEqual(before);
  });

  test('at most 64 members: the 65th is refused (a larger pool would break every guard’s peer set)', () => {
    for (let i = 1; i <= 64; i++) guards.add({ name: `gpu${i}`, address: `192.168.2.${i}`, poolRole: 'member' }, WHO);
    const before = [count('guards'), count('certificates')];
    expect(expectWgoError(() => guards.add({ name: 'gpu65', address: '192.168.2.65', poolRole: 'member' }, WHO), 'CONFLICT').message).toMatch(/the pool has 64 members, the most it takes/);
    expect([count('guards'), count('certificates')]).toEqual(before);
    // guards on their own are not members
    guards.add({ name: 'solo', address: '192.168.2.100' }, WHO);
    // and the set the guards get still fits their schema
    expect(parseWire(peerSetSchema, JSON.stringify(peerSetSource(env.db, env.config).load(env.now)), 'peer set').pool!.members).toHaveLength(64);
  }, 60_000);

  test('a second router can be added once the first is removed', () => {
    guards.add({ name: 'edge', address: '192.168.1.10', poolRole: 'router' }, WHO);
    guards.remove('edge', WHO);
    expect(guards.add({ name: 'edge2', address: '192.168.1.10', poolRole: 'router' }, WHO).guard.poolRole).toBe('router');
  });
});

describe('drain, parallelism, remove', () => {
  beforeEach(() => {
    guards.add({ name: 'edge', address: '192.168.1.10', poolRole: 'router' }, WHO);
    guards.add({ name: 'gpu1', address: '192.168.1.21', poolRole: 'member', parallel: 2 }, WHO);
  });
  const router = () => guards.list().find((g) => g.name === 'edge')!;
  /** What the router reports after it applied the current peer set: the drain's stamp echoed. */
  const drained = (o: Partial<PoolHostReport> = {}): PoolHostReport => host('gpu1', { draining: true, drainedAt: guards.list().find((g) => g.name === 'gpu1')!.drainedAt, ...o });

  test('drain and undrain: audited once each, idempotent', () => {
    expect(guards.setDraining('gpu1', true, WHO)).toMatchObject({ changed: true, guard: { draining: true } });
    expect(guards.setDraining('gpu1', true, WHO).changed).toBe(false);
    expect(guards.setDraining('gpu1', false, WHO)).toMatchObject({ changed: true, guard: { draining: false } });
    expect(auditRepository(env.db).list({ since: 0 }).map((a) => a.action).filter((a) => a.startsWith('guard.') && a !== 'guard.add')).toEqual(['guard.drain', 'guard.undrain']);
  });

  test('drain and set-parallel are for members only; unknown and removed guards are NOT_FOUND', () => {
    expect(expectWgoError(() => guards.setDraining('edge', true, WHO), 'BAD_INPUT').message).toMatch(/not a pool member/);
    expect(expectWgoError(() => guards.setParallel('edge', 2, WHO), 'BAD_INPUT').message).toMatch(/not a pool member/);
    expectWgoError(() => guards.setDraining('nope', true, WHO), 'NOT_FOUND');
    expectWgoError(() => guards.setParallel('gpu1', 0, WHO), 'BAD_INPUT');
    expect(guards.setParallel('gpu1', 8, WHO)).toMatchObject({ changed: true, guard: { parallel: 8 } });
    guards.setDraining('gpu1', true, WHO);
    guards.report(router(), { hosts: [drained()], queued: 0 });
    guards.remove('gpu1', WHO);
    expectWgoError(() => guards.setDraining('gpu1', false, WHO), 'NOT_FOUND');
  });

  test('a member taking requests is not removed; drained, it is once the router reports 0 in flight', () => {
    expect(expectWgoError(() => guards.remove('gpu1', WHO), 'CONFLICT').message).toMatch(/run drain-guard gpu1 first/);
    guards.setDraining('gpu1', true, WHO);
    // No report since the drain: what it runs is unknown.
    expect(expectWgoError(() => guards.remove('gpu1', WHO), 'CONFLICT').message).toMatch(/has not reported since the drain \(no report\)/);
    // A report from before the router saw the drain does not count.
    guards.report(router(), { hosts: [host('gpu1', { draining: false, inFlight: 0 })], queued: 0 });
    expectWgoError(() => guards.remove('gpu1', WHO), 'CONFLICT');
    guards.report(router(), { hosts: [drained({ inFlight: 2 })], queued: 0 });
    expect(expectWgoError(() => guards.remove('gpu1', WHO), 'CONFLICT').message).toMatch(/still runs 2 request\(s\)/);
    guards.report(router(), { hosts: [drained()], queued: 0 });
    // A stale report is not trusted.
    env.now += POOL_REPORT_FRESH_MS + 1;
    expect(expectWgoError(() => guards.remove('gpu1', WHO), 'CONFLICT').message).toMatch(/last report 15 s ago/);
    guards.report(router(), { hosts: [drained()], queued: 0 });
    expect(guards.remove('gpu1', WHO).changed).toBe(true);
    expect(env.db.prepare(`SELECT count(*) FROM certificates WHERE guard_id = (SELECT id FROM guards WHERE name = 'gpu1') AND revoked_at IS NULL`).pluck().get()).toBe(0);
  });

  test('an idle report about an earlier drain does not count: drain, report idle, undrain, drain again, remove is refused', () => {
    env.now = 1_000_000;
    guards.setDraining('gpu1', true, WHO);
    const first = drained();
    expect(first.drainedAt).toBe(1_000_000);
    guards.report(router(), { hosts: [first], queued: 0 });
    env.now += 3000;
    guards.setDraining('gpu1', false, WHO);
    expect(guards.list().find((g) => g.name === 'gpu1')!.drainedAt).toBeNull();
    env.now += 1000;
    guards.setDraining('gpu1', true, WHO);
    env.now += 500;
    // The report from the first drain is 4.5 s old and says idle, but the router may have sent requests while undrained.
    expect(expectWgoError(() => guards.remove('gpu1', WHO), 'CONFLICT').message).toMatch(/has not reported since the drain \(last report 5 s ago, about an earlier state\)/);
    // A stale report arriving late (built during the first drain) does not count either.
    guards.report(router(), { hosts: [first], queued: 0 });
    expectWgoError(() => guards.remove('gpu1', WHO), 'CONFLICT');
    guards.report(router(), { hosts: [drained()], queued: 0 });
    expect(guards.remove('gpu1', WHO).changed).toBe(true);
  });

  test('--force removes a member that still runs requests, and the audit says so', () => {
    guards.report(router(), { hosts: [host('gpu1', { inFlight: 2 })], queued: 3 });
    expect(guards.remove('gpu1', WHO, { force: true }).changed).toBe(true);
    expect(auditRepository(env.db).list({ since: 0 }).at(-1)).toMatchObject({ action: 'guard.remove', target: 'gpu1', details: { force: true } });
  });

  test('a report older than 30 s reads as stale: the router has stopped reporting', () => {
    const q = queryService({ db: env.db, config: env.config, clock: () => env.now });
    expect(q.guards().find((g) => g.name === 'gpu1')).toMatchObject({ host: null, reportStale: false });
    guards.report(router(), { hosts: [host('gpu1', { inFlight: 1 })], queued: 0 });
    env.now += 30_000;
    expect(q.guards().find((g) => g.name === 'gpu1')).toMatchObject({ host: { inFlight: 1 }, reportStale: false });
    env.now += 1;
    expect(q.guards().find((g) => g.name === 'gpu1')).toMatchObject({ host: { inFlight: 1 }, reportStale: true });
  });

  test('only the router may report; unknown names are skipped', () => {
    const member = guards.list().find((g) => g.name === 'gpu1')!;
    expectWgoError(() => guards.report(member, { hosts: [host('gpu1')], queued: 0 }), 'FORBIDDEN');
    expect(guards.report(router(), { hosts: [host('gpu1'), host('ghost')], queued: 0 })).toEqual({ stored: 1 });
  });
});

describe('the pool in the peer set', () => {
  test('no pool: no pool field, and the version is what it was before pools existed', () => {
    guards.add({ name: 'solo', address: '192.168.1.30' }, WHO);
    const source = peerSetSource(env.db, env.config);
    const set = source.load(env.now);
    expect(set.pool).toBeUndefined();
    expect(source.version()).toMatch(/^\d+\.[0-9a-f]{12}$/);
  });

  test('routers by their client certificate, members at address:ollamaPort; a drain or a new member is a new version', () => {
    const edge = guards.add({ name: 'edge', address: '192.168.1.10', poolRole: 'router' }, WHO);
    guards.add({ name: 'gpu1', address: '192.168.1.21', poolRole: 'member', parallel: 2 }, WHO);
    guards.add({ name: 'gpu6', address: 'fd00::6', poolRole: 'member' }, WHO);
    const source = peerSetSource(env.db, env.config);
    const v1 = source.version();
    const set = parseWire(peerSetSchema, JSON.stringify(source.load(env.now)), 'peer set');
    expect(set.version).toBe(v1);
    expect(set.pool).toEqual({
      routers: [{ name: 'edge', serial: edge.client.serial }],
      members: [
        { name: 'gpu1', url: `https://192.168.1.21:${env.config.ollamaPort}`, parallel: 2, draining: false, drainedAt: null },
        { name: 'gpu6', url: `https://[fd00::6]:${env.config.ollamaPort}`, parallel: 4, draining: false, drainedAt: null },
      ],
    });
    guards.setDraining('gpu1', true, WHO);
    const v2 = source.version();
    expect(v2).not.toBe(v1);
    expect(source.load(env.now).pool!.members[0]).toMatchObject({ draining: true, drainedAt: env.now });
    guards.add({ name: 'gpu3', address: '192.168.1.23', poolRole: 'member' }, WHO);
    expect(source.version()).not.toBe(v2);
    // A report changes no version (it changes nothing a guard enforces).
    const v3 = source.version();
    guards.report(guards.list().find((g) => g.name === 'edge')!, { hosts: [host('gpu3', { inFlight: 1 })], queued: 0 });
    expect(source.version()).toBe(v3);
  });

  test('a removed router or member leaves the set at once', () => {
    guards.add({ name: 'edge', address: '192.168.1.10', poolRole: 'router' }, WHO);
    guards.add({ name: 'gpu1', address: '192.168.1.21', poolRole: 'member' }, WHO);
    const source = peerSetSource(env.db, env.config);
    guards.remove('gpu1', WHO, { force: true });
    expect(source.load(env.now).pool!.members).toEqual([]);
    guards.remove('edge', WHO);
    expect(source.load(env.now).pool).toBeUndefined();
  });
});

describe('POST /v1/pool over the real sync API', () => {
  let server: Server;
  let port: number;
  let edge: IssuedGuard;
  let gpu1: IssuedGuard;
  beforeEach(async () => {
    env.now = Date.now();
    edge = guards.add({ name: 'edge', address: '127.0.0.1', poolRole: 'router' }, WHO);
    gpu1 = guards.add({ name: 'gpu1', address: '127.0.0.2', poolRole: 'member', parallel: 2 }, WHO);
    const gw = issueCertificate(testCa(), { role: 'gateway-server', commonName: 'wg-ollama gateway', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + 86_400_000) });
    server = createSyncApi({
      db: env.db, tls: { cert: gw.certPem, key: gw.keyPem, ca: testCa().certPem }, source: peerSetSource(env.db, env.config), changes: changeSignal(),
      onPoolReport: (router, report) => void guards.report(router, report),
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const post = (who: IssuedGuard, body: string): Promise<{ status: number; text: string }> =>
    new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/pool', agent: false, ca: testCa().certPem, cert: who.client.certPem, key: who.client.keyPem, headers: { 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  const reportOf = () => queryService({ db: env.db, config: env.config }).guards().find((g) => g.name === 'gpu1')!;

  test('the router’s report lands on the member’s row: list-guards and status read it', async () => {
    const r = await post(edge, JSON.stringify({ hosts: [host('gpu1', { inFlight: 2, queued: 5, loaded: ['llama3.2:latest'] })], queued: 5 }));
    expect(r.status, r.text).toBe(204);
    expect(reportOf()).toMatchObject({ poolRole: 'member', parallel: 2, host: { health: 'healthy', inFlight: 2, queued: 5, loaded: ['llama3.2:latest'] } });
    expect(reportOf().reportedAt).not.toBeNull();
  });

  test('a member’s certificate is 403, a malformed report 400, and neither stores anything', async () => {
    const bad = await post(gpu1, JSON.stringify({ hosts: [host('gpu1')], queued: 0 }));
    expect(bad.status).toBe(403);
    expect(JSON.parse(bad.text).error).toMatch(/not the pool's router/);
    for (const body of ['not json', JSON.stringify({ hosts: [host('gpu1', { inFlight: -1 })], queued: 0 }), JSON.stringify({ hosts: 'gpu1', queued: 0 }), JSON.stringify({ hosts: [host('gpu1', { models: ['x'.repeat(257)] })], queued: 0 })]) {
      const r = await post(edge, body);
      expect(r.status, body).toBe(400);
    }
    expect(reportOf().host).toBeNull();
    // A field a newer router adds is no reason to refuse its report.
    expect((await post(edge, JSON.stringify({ hosts: [host('gpu1')], queued: 0, since: 'a newer release' }))).status).toBe(204);
  });
});

describe('request records name the GPU host and the queue wait', () => {
  test('stored and read back; absent ones are null', () => {
    const base: RequestRecord = {
      seq: 1, at: Date.now(), peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat', model: 'llama3.2:latest',
      promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 1, bytesOut: 2, promptTokens: 1, evalTokens: 2, ttfbMs: 3, durationMs: 4, refusal: null,
    };
    const requests = requestRepository(env.db);
    requests.insertNew('edge', [{ ...base, host: 'gpu2', queueMs: 1234 }, { ...base, seq: 2 }], 'a'.repeat(16));
    expect(requests.list({ since: 0 }).map((r) => [r.host, r.queueMs])).toEqual([['gpu2', 1234], [null, null]]);
  });
});
