import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:https';
import { afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { RequestRecord } from '../../../src/core/request-record.js';
import { certificateRepository } from '../../../src/db/certificates.js';
import { peerRepository } from '../../../src/db/peers.js';
import { requestRepository } from '../../../src/db/requests.js';
import { guardService, type IssuedGuard } from '../../../src/gateway/guard-service.js';
import { peerSetSource, type PeerSetSource } from '../../../src/gateway/peer-set.js';
import { changeSignal, createSyncApi, type ChangeSignal } from '../../../src/gateway/sync-api.js';
import { parseWire, pushAnswerSchema, type PeerSet } from '../../../src/core/wire.js';
import { createCa, issueCertificate, type CaMaterial } from '../../../src/pki/ca.js';
import { testCa, testCaStore } from '../../support/ca.js';
import { WHO, peerEnv, type PeerEnv } from '../../support/peer-env.js';
import { fillDatabase } from '../../support/full-db.js';

interface Who {
  cert: string;
  key: string;
}
interface Reply {
  status: number;
  text: string;
  /** ms from sending the request to the end of the answer. */
  ms: number;
}

let foreignCa: CaMaterial;
beforeAll(() => {
  foreignCa = createCa({ commonName: 'someone else' });
});

let env: PeerEnv;
let server: Server;
let port: number;
let source: PeerSetSource;
let changes: ChangeSignal;
let guard: IssuedGuard;
let aliceCert: Who & { serial: string };
let stored: { guard: string; records: RequestRecord[] }[];
const gatewayCert = (() => {
  let c: { cert: string; key: string } | undefined;
  return () => {
    if (!c) {
      const issued = issueCertificate(testCa(), { role: 'gateway-server', commonName: 'wg-ollama gateway', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + 86_400_000) });
      c = { cert: issued.certPem, key: issued.keyPem };
    }
    return c;
  };
})();

beforeEach(async () => {
  env = peerEnv();
  env.now = Date.now(); // real time: the certificates go through real TLS
  const a = env.svc.add({ name: 'alice' }, WHO);
  aliceCert = { cert: a.certificate.certPem, key: a.certificate.keyPem, serial: a.certificate.serial };
  env.svc.add({ name: 'bob' }, WHO);
  guard = guardService({ db: env.db, config: env.config, ca: testCaStore() }).add({ name: 'gpu1', address: '127.0.0.1' }, WHO);
  source = peerSetSource(env.db, env.config);
  changes = changeSignal();
  stored = [];
  server = createSyncApi({
    db: env.db,
    tls: { ...gatewayCert(), ca: testCa().certPem },
    source,
    changes,
    onRecords: (g, records) => stored.push({ guard: g, records }),
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  env.close();
});

const asGuard = (): Who => ({ cert: guard.client.certPem, key: guard.client.keyPem });

function call(who: Who | null, method: string, path: string, body?: string): Promise<Reply> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1', port, method, path, agent: false, ca: testCa().certPem, ...(who ?? {}),
        headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, text, ms: Date.now() - started }));
        res.on('error', reject);
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error('test request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

const peerSet = (r: Reply): PeerSet => {
  expect(r.status, r.text).toBe(200);
  return JSON.parse(r.text) as PeerSet;
};

function rec(seq: number, o: Partial<RequestRecord> = {}): RequestRecord {
  return {
    seq, at: Date.now(), peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat',
    endpoint: 'chat', model: 'llama3.2:latest', promptSha256: 'cd'.repeat(32), promptLength: 42, promptText: null,
    status: 200, bytesIn: 120, bytesOut: 4000, promptTokens: 12, evalTokens: 80, ttfbMs: 30, durationMs: 900,
    refusal: null, ...o,
  };
}
const push = (records: unknown, who: Who = asGuard()) => call(who, 'POST', '/v1/records', JSON.stringify({ records }));
const rows = () => requestRepository(env.db).list({ since: 0 });

describe('who may use the sync API', () => {
  test('a guard certificate gets the current peer set, and the guard is marked seen', async () => {
    const set = peerSet(await call(asGuard(), 'GET', '/v1/peers'));
    expect(set).toEqual(JSON.parse(JSON.stringify(source.load(Date.now()))));
    expect(set.peers.map((p) => p.name)).toEqual(['alice', 'bob']);
    expect(set.peers[0]!.serial).toBe(aliceCert.serial);
    expect(certificateRepository(env.db).guardByName('gpu1')).toMatchObject({ lastSeenFrom: '127.0.0.1', lastVersion: set.version, lastSeenAt: expect.any(Number) });
  });

  test("a peer's certificate is 403 on both endpoints, and nothing is stored", async () => {
    const r = await call(aliceCert, 'GET', '/v1/peers');
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text)).toEqual({ error: 'this certificate is not a guard of this gateway' });
    expect((await push([rec(1)], aliceCert)).status).toBe(403);
    expect(rows()).toEqual([]);
    expect(certificateRepository(env.db).guardByName('gpu1')!.lastSeenAt).toBeNull();
  });

  test("a removed guard's certificate is 403 from then on", async () => {
    expect((await call(asGuard(), 'GET', '/v1/peers')).status).toBe(200);
    guardService({ db: env.db, config: env.config, ca: testCaStore() }).remove('gpu1', WHO);
    expect((await call(asGuard(), 'GET', '/v1/peers')).status).toBe(403);
    expect((await push([rec(1)])).status).toBe(403);
    expect(rows()).toEqual([]);
  });

  test('a guard certificate from another CA, or none at all, fails the TLS handshake', async () => {
    const foreign = issueCertificate(foreignCa, { role: 'guard-client', commonName: 'guard:gpu1', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + 86_400_000) });
    await expect(call({ cert: foreign.certPem, key: foreign.keyPem }, 'GET', '/v1/peers')).rejects.toThrow();
    await expect(call(null, 'GET', '/v1/peers')).rejects.toThrow();
    expect(certificateRepository(env.db).guardByName('gpu1')!.lastSeenAt).toBeNull();
  });

  test('unknown endpoints and methods are 404', async () => {
    expect((await call(asGuard(), 'GET', '/v1/records')).status).toBe(404);
    expect((await call(asGuard(), 'POST', '/v1/peers', '{}')).status).toBe(404);
    expect((await call(asGuard(), 'GET', '/v1/nothing')).status).toBe(404);
  });
});

describe('GET /v1/peers long-poll', () => {
  test('a stale version is answered at once', async () => {
    const r = await call(asGuard(), 'GET', '/v1/peers?after=0.0&wait=5');
    expect(peerSet(r).version).toBe(source.version());
    expect(r.ms).toBeLessThan(1000);
  });

  test('the current version is held until a peer changes, then answered within 200 ms of notify()', async () => {
    const current = source.version();
    let answered = false;
    const pending = call(asGuard(), 'GET', `/v1/peers?after=${encodeURIComponent(current)}&wait=5`).finally(() => (answered = true));
    await new Promise((r) => setTimeout(r, 400));
    expect(answered).toBe(false);
    env.svc.disable('bob', WHO);
    const changedAt = Date.now();
    changes.notify();
    const r = await pending;
    const latency = Date.now() - changedAt;
    expect(latency).toBeLessThan(200);
    const set = peerSet(r);
    expect(set.version).not.toBe(current);
    expect(set.version).toBe(source.version());
    expect(set.peers.map((p) => p.name)).toEqual(['alice']);
  });

  test('a wake-up without a change keeps waiting; no change at all is 204 after the wait', async () => {
    const current = source.version();
    const pending = call(asGuard(), 'GET', `/v1/peers?after=${encodeURIComponent(current)}&wait=1`);
    await new Promise((r) => setTimeout(r, 200));
    changes.notify(); // nothing changed: must not answer early
    const r = await pending;
    expect(r.status).toBe(204);
    expect(r.text).toBe('');
    expect(r.ms).toBeGreaterThanOrEqual(950);
    expect(r.ms).toBeLessThan(3000);
    expect(certificateRepository(env.db).guardByName('gpu1')!.lastVersion).toBe(current);
  });

  test('a policy change is a new version too', async () => {
    const current = source.version();
    const pending = call(asGuard(), 'GET', `/v1/peers?after=${encodeURIComponent(current)}&wait=5`);
    await new Promise((r) => setTimeout(r, 100));
    env.svc.setPolicy('alice', { maxStreams: 1 }, WHO);
    changes.notify();
    const set = peerSet(await pending);
    expect(set.peers.find((p) => p.name === 'alice')!.policy.maxStreams).toBe(1);
  });
});

describe('POST /v1/records', () => {
  test("on the gateway's full disk: 503 saying so, nothing stored; the same batch is stored once there is room", async () => {
    const full = fillDatabase(env.db);
    const r = await push([rec(1), rec(2)]);
    expect(r.status).toBe(503);
    expect(JSON.parse(r.text)).toEqual({ error: expect.stringMatching(/^the disk is full \(database or disk is full\): nothing was stored; /) });
    expect(rows()).toEqual([]);
    full.room();
    const again = await push([rec(1), rec(2)]);
    expect(again.status, again.text).toBe(200);
    expect(rows()).toHaveLength(2);
  });

  test('stores the records under the guard, with peer_id from the certificate serial', async () => {
    const r = await push([rec(1, { certSerial: aliceCert.serial }), rec(2, { peer: null, certSerial: null, status: 401, refusal: 'auth_no_certificate' })]);
    expect(r.status, r.text).toBe(200);
    expect(JSON.parse(r.text)).toEqual({ received: 2, stored: 2, rejected: [], upTo: 2 });
    const alice = peerRepository(env.db).byName('alice')!;
    expect(rows().map((x) => [x.guard, x.guardSeq, x.peerId, x.status])).toEqual([['gpu1', 1, alice.id, 200], ['gpu1', 2, null, 401]]);
    expect(stored.map((s) => [s.guard, s.records.map((x) => x.seq)])).toEqual([['gpu1', [1, 2]]]);
  });

  test('the same batch pushed twice is stored once', async () => {
    const batch = [rec(1), rec(2), rec(3)];
    expect(JSON.parse((await push(batch)).text)).toEqual({ received: 3, stored: 3, rejected: [], upTo: 3 });
    expect(JSON.parse((await push(batch)).text)).toEqual({ received: 3, stored: 0, rejected: [], upTo: 3 });
    expect(rows()).toHaveLength(3);
    expect(stored).toHaveLength(1);
  });

  test('a replaced spool (new spool id) starts a new sequence: its records are not taken for duplicates', async () => {
    const withSpool = (spool: string, records: unknown[]) => call(asGuard(), 'POST', '/v1/records', JSON.stringify({ spool, records }));
    const a = 'a'.repeat(32);
    const b = 'b'.repeat(32);
    expect(JSON.parse((await withSpool(a, [rec(1), rec(2)])).text)).toMatchObject({ stored: 2 });
    expect(JSON.parse((await withSpool(a, [rec(1), rec(2)])).text)).toMatchObject({ stored: 0 });
    expect(JSON.parse((await withSpool(b, [rec(1)])).text)).toMatchObject({ stored: 1 });
    expect(rows()).toHaveLength(3);
    expect((await withSpool('not-hex', [rec(3)])).status).toBe(400);
  });

  test('a batch that overlaps one already stored adds only its new records, and reports only those', async () => {
    await push([rec(1), rec(2)]);
    expect(JSON.parse((await push([rec(1), rec(2), rec(3)])).text)).toEqual({ received: 3, stored: 1, rejected: [], upTo: 3 });
    expect(rows().map((x) => x.guardSeq)).toEqual([1, 2, 3]);
    // onRecords feeds the metrics: a record counted twice would inflate them.
    expect(stored.map((s) => s.records.map((x) => x.seq))).toEqual([[1, 2], [3]]);
  });

  test.each([
    ['not JSON', '{"records": [', /body is not JSON/],
    ['no records field', JSON.stringify({ rows: [] }), /invalid records/],
    ['records not an array', JSON.stringify({ records: {} }), /invalid records/],
  ])('%s is 400 and nothing is stored', async (_what, body, message) => {
    const r = await call(asGuard(), 'POST', '/v1/records', body);
    expect(r.status).toBe(400);
    expect(JSON.parse(r.text).error).toMatch(message);
    expect(rows()).toEqual([]);
    expect(stored).toEqual([]);
  });

  test.each([
    ['seq 0', { ...rec(2), seq: 0 }, /seq/],
    ['an unknown field', { ...rec(2), prompt: 'secret' }, /Unrecognized key/i],
    ['an uppercase serial', rec(2, { certSerial: 'ABCDEF' }), /certSerial/],
    ['a bad prompt hash', rec(2, { promptSha256: 'xyz' }), /promptSha256/],
    ['a negative byte count', rec(2, { bytesOut: -1 }), /bytesOut/],
    ['a missing field', (({ source: _s, ...r }) => r)(rec(2)), /source/],
    ['a model name over 256 characters', rec(2, { model: 'm'.repeat(300) }), /model/],
  ])('a record with %s is rejected and reported; the others in the batch are stored', async (_what, bad, message) => {
    const r = await call(asGuard(), 'POST', '/v1/records', JSON.stringify({ records: [rec(1), bad, rec(3)] }));
    expect(r.status).toBe(200);
    const answer = parseWire(pushAnswerSchema, r.text, 'push answer');
    expect(answer).toMatchObject({ received: 3, stored: 2 });
    expect(answer.rejected).toHaveLength(1);
    expect(answer.rejected![0]!.error).toMatch(message);
    expect(rows().map((x) => x.guardSeq)).toEqual([1, 3]);
  });
});
