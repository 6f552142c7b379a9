/**
 * Issue 11, item 4: what the gateway sends over the sync API is exactly what
 * the guard reads with the shared schemas (core/wire.ts), and what the guard
 * sends is exactly what the gateway stores — for a realistic set (policies,
 * an API token, an expiry, logPrompts) and realistic records (a real guard's
 * record, a token-authenticated one, an estimate, a refusal before any
 * credential). Real sync API, real mTLS, real spool.
 */
import https from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { tokenHash } from '../../../src/core/api-token.js';
import { recordForGateway, requestRecordSchema, type RequestRecord } from '../../../src/core/request-record.js';
import { parseWire, peerSetSchema, pushAnswerSchema, usageSchema, type PeerSet } from '../../../src/core/wire.js';
import { requestRepository } from '../../../src/db/requests.js';
import { guardService, type IssuedGuard } from '../../../src/gateway/guard-service.js';
import { peerSetSource } from '../../../src/gateway/peer-set.js';
import { changeSignal, createSyncApi } from '../../../src/gateway/sync-api.js';
import { tokenService } from '../../../src/gateway/token-service.js';
import type { DraftRecord } from '../../../src/guard/recorder.js';
import { openSpool, type Spool } from '../../../src/guard/spool.js';
import { issueCertificate } from '../../../src/pki/ca.js';
import { testCa, testCaStore } from '../../support/ca.js';
import { startEnv } from '../../support/guard-env.js';
import { WHO, peerEnv, type PeerEnv } from '../../support/peer-env.js';
import { waitFor } from '../../support/wait.js';

let env: PeerEnv;
let server: Server;
let guard: IssuedGuard;
let spool: Spool;
let dir: string;
let token: string;

beforeEach(async () => {
  env = peerEnv({ logPrompts: true, policy: { maxStreams: 2, tokensPerDay: 100_000 } });
  env.now = Date.now(); // real time: the certificates go through real TLS
  env.svc.add({ name: 'alice' }, WHO);
  env.svc.setPolicy('alice', {
    models: ['llama3.2', 'qwen2.5:*', 'team/*'], writeModels: ['alice/*'], apiTokens: true, maxTokensPerRequest: 512,
    maxKeepAliveSec: 300, maxNumCtx: 8192, options: ['temperature', 'num_ctx', 'num_batch'], optionLimits: { num_batch: 512 },
    endpoints: ['chat', 'generate', 'tags', 'v1.chat'],
  }, WHO);
  token = tokenService({ db: env.db, config: env.config }).issue('alice', WHO).token;
  env.svc.add({ name: 'bob', expiresInMs: 3_600_000 }, WHO);
  env.svc.add({ name: 'carol' }, WHO);
  env.svc.disable('carol', WHO);
  guard = guardService({ db: env.db, config: env.config, ca: testCaStore() }).add({ name: 'gpu1', address: '127.0.0.1' }, WHO);
  const gw = issueCertificate(testCa(), { role: 'gateway-server', commonName: 'wg-ollama gateway', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + 86_400_000) });
  server = createSyncApi({ db: env.db, tls: { key: gw.keyPem, cert: gw.certPem, ca: testCa().certPem }, source: peerSetSource(env.db, env.config), changes: changeSignal() });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  dir = mkdtempSync(join(tmpdir(), 'wgo-wire-'));
  spool = openSpool(join(dir, 'spool.db'));
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  spool.close();
  env.close();
  rmSync(dir, { recursive: true, force: true });
});

/** One sync API call as the guard makes it (its client certificate); the answer's text. */
function call(method: string, path: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port: (server.address() as AddressInfo).port, method, path, agent: false,
      ca: testCa().certPem, cert: guard.client.certPem, key: guard.client.keyPem,
      headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The text exactly as sent, as a plain value (what JSON carries). */
const sent = (text: string): unknown => JSON.parse(text);

async function peerSet(): Promise<{ text: string; set: PeerSet }> {
  const r = await call('GET', '/v1/peers?after=&wait=0');
  expect(r.status, r.text).toBe(200);
  return { text: r.text, set: parseWire(peerSetSchema, r.text, 'peer set') };
}

test('the peer set the gateway sends is exactly what the guard reads: no field dropped, added or retyped', async () => {
  const { text, set } = await peerSet();
  expect(set).toEqual(sent(text));
  expect(set.logPrompts).toBe(true);
  expect(set.peers.map((p) => p.name)).toEqual(['alice', 'bob']);
  const [alice, bob] = set.peers;
  expect(alice!.tokenSha256).toBe(tokenHash(token));
  expect(alice!.policy).toMatchObject({ models: ['llama3.2', 'qwen2.5:*', 'team/*'], writeModels: ['alice/*'], maxStreams: 2, tokensPerDay: 100_000, optionLimits: { num_batch: 512 } });
  expect(alice!.policy).not.toHaveProperty('apiTokens');
  // The earlier of the peer's expiry and its certificate's notAfter (whole seconds in X.509).
  const bobExpires = env.rows().find((p) => p.name === 'bob')!.expiresAt!;
  expect(bob!.expiresAt).toBe(Math.floor(bobExpires / 1000) * 1000);
  expect(bob!.tokenSha256).toBeNull();
  expect(set.recordFields).toEqual(['auth', 'estimatedTokens', 'host', 'queueMs']);
});

test('the records a guard pushes are stored field for field, estimates and auth included; the answer and the usage figures parse on the guard', async () => {
  const { set } = await peerSet();
  const alice = set.peers.find((p) => p.name === 'alice')!;
  // A record as the real guard makes it.
  const g = await startEnv();
  let fromGuard: Omit<RequestRecord, 'seq'>;
  try {
    const r = await g.request('alice', { path: '/api/chat', body: { model: 'llama3.2', messages: [{ role: 'user', content: 'hello' }] } });
    expect(r.status).toBe(200);
    await waitFor(() => g.records.length > 0, 5000, 'the record');
    fromGuard = g.records[0]!;
  } finally {
    await g.close();
  }
  expect(fromGuard).toMatchObject({ auth: 'certificate', status: 200, endpoint: 'chat' });
  const base: DraftRecord = {
    at: Date.now(), peer: 'alice', certSerial: alice.serial, source: alice.address, method: 'POST', path: '/v1/chat/completions',
    endpoint: 'v1.chat', model: 'qwen2.5:0.5b', promptSha256: 'ab'.repeat(32), promptLength: 5, promptText: 'hello', status: 200,
    bytesIn: 120, bytesOut: 4000, promptTokens: 12, evalTokens: 80, ttfbMs: 30.125, durationMs: 900.5, refusal: null,
  };
  const drafts: DraftRecord[] = [
    { ...fromGuard!, certSerial: alice.serial, peer: 'alice' },
    { ...base, auth: 'token', estimatedTokens: null },
    // A stream the client cut before Ollama's counts: charged by estimate.
    { ...base, auth: 'certificate', promptTokens: null, evalTokens: null, estimatedTokens: 37, refusal: 'client_aborted' },
    // Refused before any credential verified.
    { ...base, peer: null, certSerial: null, auth: null, status: 401, refusal: 'token_invalid', model: null, promptSha256: null, promptLength: null, promptText: null, bytesIn: 0, promptTokens: null, evalTokens: null, ttfbMs: null },
  ];
  const records = spool.append(drafts);
  const body = JSON.stringify({ spool: spool.id(), records: spool.pending(10).map((r) => recordForGateway(r, set.recordFields)) });
  const r = await call('POST', '/v1/records', body);
  expect(r.status, r.text).toBe(200);
  const answer = parseWire(pushAnswerSchema, r.text, 'push answer');
  expect(answer).toEqual(sent(r.text));
  expect(answer).toMatchObject({ received: 4, stored: 4, rejected: [], upTo: records.at(-1)!.seq });

  const rows = requestRepository(env.db).list({ since: 0 });
  const fields = Object.keys(requestRecordSchema.shape).filter((k) => k !== 'seq') as (keyof DraftRecord)[];
  const pick = (x: object) => Object.fromEntries(fields.map((k) => [k, (x as Record<string, unknown>)[k] ?? null]));
  expect(rows.map(pick)).toEqual(drafts.map(pick));
  expect(rows.map((x) => x.guardSeq)).toEqual(records.map((x) => x.seq));

  // The figures the guard's budget gets: the estimate counted, up to the last record pushed.
  const charged = (fromGuard!.promptTokens ?? 0) + (fromGuard!.evalTokens ?? 0) + 12 + 80 + 37;
  expect(answer.usage).toEqual({ day: set.day, tokensToday: { alice: charged, bob: 0 }, upTo: records.at(-1)!.seq });
  const u = await call('GET', `/v1/usage?spool=${spool.id()}`);
  expect(u.status).toBe(200);
  expect(parseWire(usageSchema, u.text, 'usage answer')).toEqual(sent(u.text));
  expect(sent(u.text)).toEqual(answer.usage);
});

test('a malformed record is refused by the gateway naming the field, and the rest of the batch is stored', async () => {
  const good: DraftRecord = {
    at: Date.now(), peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat', model: 'llama3.2:latest',
    promptSha256: null, promptLength: 1, promptText: null, status: 200, bytesIn: 1, bytesOut: 1, promptTokens: 1, evalTokens: 1, ttfbMs: 1, durationMs: 1, refusal: null, estimatedTokens: null,
  };
  const body = JSON.stringify({ spool: spool.id(), records: [{ ...good, seq: 1 }, { ...good, seq: 2, estimatedTokens: -3 }, { ...good, seq: 3, auth: 'password' }] });
  const r = await call('POST', '/v1/records', body);
  const answer = parseWire(pushAnswerSchema, r.text, 'push answer');
  expect(answer.stored).toBe(1);
  expect(answer.rejected?.map((x) => [x.seq, x.error.split(':')[0]])).toEqual([[2, 'estimatedTokens'], [3, 'auth']]);
  expect(requestRepository(env.db).list({ since: 0 }).map((x) => x.guardSeq)).toEqual([1]);
});
