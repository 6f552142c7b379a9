import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { showLogs, type LogOptions } from '../../../src/cli/logs.js';
import type { Io } from '../../../src/cli/output.js';
import { type Config } from '../../../src/config.js';
import { generateKeyPair } from '../../../src/core/keys.js';
import type { RequestRecord } from '../../../src/core/request-record.js';
import { openDatabase } from '../../../src/db/open.js';
import { peerRepository } from '../../../src/db/peers.js';
import { requestRepository } from '../../../src/db/requests.js';
import { peerService } from '../../../src/gateway/peer-service.js';
import { pskStore } from '../../../src/gateway/psk-store.js';
import { testCaStore } from '../../support/ca.js';
import { WgoError } from '../../../src/errors.js';
import { gatewayState, type GatewayState } from '../../support/gateway-state.js';

const WHO = { actor: 'root', source: 'cli' };
const HOUR = 3_600_000;

let state: GatewayState;
let config: Config;
let now: number;
let ids: { alice: number; bob: number };

function rec(seq: number, o: Partial<RequestRecord>): RequestRecord {
  return {
    seq, at: now, peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat',
    model: 'llama3.2:latest', promptSha256: 'ef'.repeat(32), promptLength: 10, promptText: null, status: 200, bytesIn: 50,
    bytesOut: 900, promptTokens: 11, evalTokens: 22, ttfbMs: 12, durationMs: 345.6, refusal: null, ...o,
  };
}

beforeAll(() => {
  state = gatewayState({ name: 'logs', keys: false });
  config = state.config;
  now = Date.now();
  const db = openDatabase(config.paths.db);
  try {
    const svc = peerService({ db, config, serverPublicKey: generateKeyPair().publicKey, psk: pskStore(config.paths.pskDir), ca: testCaStore() });
    const alice = svc.add({ name: 'alice' }, WHO).certificate.serial;
    const bob = svc.add({ name: 'bob' }, WHO).certificate.serial;
    const peers = peerRepository(db);
    ids = { alice: peers.byName('alice')!.id, bob: peers.byName('bob')!.id };
    requestRepository(db).insertBatch('gpu1', [
      rec(1, { at: now - 30 * HOUR, certSerial: alice }), // older than the default 24h
      rec(2, { at: now - 3 * HOUR, certSerial: alice, model: 'llama3.2:latest' }),
      rec(3, { at: now - 2 * HOUR, certSerial: bob, peer: 'bob', source: '10.66.0.3', model: 'qwen2.5:7b' }),
      rec(4, { at: now - HOUR, certSerial: alice, model: 'qwen2.5:7b', status: 429, refusal: 'rate_limited', promptTokens: null, evalTokens: null }),
      rec(5, { at: now - 1000, certSerial: bob, peer: 'bob', source: '10.66.0.3', model: 'llama3.2:3b', status: 403, refusal: 'model_denied', promptTokens: null, evalTokens: null }),
      rec(6, { at: now - 500, peer: null, certSerial: null, source: '10.66.0.9', method: null, path: null, endpoint: null, model: null, status: 401, refusal: 'auth_no_certificate', promptTokens: null, evalTokens: null, durationMs: 2 }),
    ]);
  } finally {
    db.close();
  }
});
afterAll(() => state.cleanup());

async function logs(o: LogOptions): Promise<string[]> {
  const out: string[] = [];
  const io: Io = { out: (t) => void out.push(t), err: () => undefined, env: {} };
  await showLogs(config, 'requests', o, io);
  return out.join('').split('\n').filter((l) => l.length > 0);
}
/** The WgoError a promise rejects with (the test fails when it resolves or throws something else). */
async function failure(p: Promise<unknown>): Promise<WgoError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e, 'expected a WgoError').toBeInstanceOf(WgoError);
  return e as WgoError;
}
async function seqs(o: LogOptions): Promise<number[]> {
  return (await logs({ ...o, json: true })).map((l) => (JSON.parse(l) as { guardSeq: number }).guardSeq);
}

describe('logs requests', () => {
  test('the last 24 hours by default, oldest first, one line per request', async () => {
    const lines = await logs({});
    expect(lines).toHaveLength(5);
    const t = (ms: number) => new Date(ms).toISOString();
    expect(lines[0]).toBe(`${t(now - 3 * HOUR)}  alice@10.66.0.2  POST /api/chat  llama3.2:latest  200  346ms  tokens 11+22`);
    expect(lines[2]).toBe(`${t(now - HOUR)}  alice@10.66.0.2  POST /api/chat  qwen2.5:7b  429 rate_limited  346ms`);
    expect(lines[4]).toBe(`${t(now - 500)}  -@10.66.0.9  (no request)  -  401 auth_no_certificate  2ms`);
    expect(await seqs({ since: '2d' })).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await seqs({ since: '90m' })).toEqual([4, 5, 6]);
  });

  test('--model is normalised: llama3.2 is llama3.2:latest, in any case; other tags are not matched', async () => {
    expect(await seqs({ model: 'llama3.2' })).toEqual([2]);
    expect(await seqs({ model: 'LLAMA3.2' })).toEqual([2]);
    expect(await seqs({ model: 'library/llama3.2:latest' })).toEqual([2]);
    expect(await seqs({ model: 'llama3.2:3b' })).toEqual([5]);
    expect(await seqs({ model: 'qwen2.5:7b', since: '2d' })).toEqual([3, 4]);
    expect(await seqs({ model: 'mistral' })).toEqual([]);
  });

  test('--status and --peer filter, also together', async () => {
    expect(await seqs({ status: '429' })).toEqual([4]);
    expect(await seqs({ status: '200', since: '2d' })).toEqual([1, 2, 3]);
    expect(await seqs({ peer: 'alice' })).toEqual([2, 4]);
    expect(await seqs({ peer: 'bob' })).toEqual([3, 5]);
    expect(await seqs({ peer: 'bob', status: '403', model: 'llama3.2:3b' })).toEqual([5]);
    expect(await seqs({ peer: 'alice', status: '403' })).toEqual([]);
  });

  test('--limit gives the newest rows', async () => {
    expect(await seqs({ limit: '2' })).toEqual([5, 6]);
  });

  test('--json prints one JSON object per line (NDJSON) with an ISO time and every field', async () => {
    const lines = await logs({ json: true, peer: 'alice' });
    expect(lines).toHaveLength(2);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(first).toEqual({
      id: expect.any(Number), guard: 'gpu1', guardSeq: 2, at: new Date(now - 3 * HOUR).toISOString(), peerId: ids.alice, peer: 'alice',
      certSerial: expect.stringMatching(/^[0-9a-f]+$/), source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat',
      model: 'llama3.2:latest', promptSha256: 'ef'.repeat(32), promptLength: 10, promptText: null, status: 200, bytesIn: 50,
      bytesOut: 900, promptTokens: 11, evalTokens: 22, ttfbMs: 12, durationMs: 345.6, refusal: null, auth: null, estimatedTokens: null, host: null, queueMs: null,
    });
    expect((JSON.parse(lines[1]!) as { peerId: number }).peerId).toBe(ids.alice);
  });

  test.each(['abc', '1000', '20x', '-1', '2.5', '1e2', ' 200', ''])('--status %j is BAD_INPUT', async (status) => {
    const out: string[] = [];
    const e = await failure(showLogs(config, 'requests', { status }, { out: (t) => void out.push(t), err: () => undefined, env: {} }));
    expect(e).toMatchObject({ code: 'BAD_INPUT', message: '--status must be an HTTP status code such as 200 or 429' });
    expect(out).toEqual([]);
  });

  test('an unknown peer is NOT_FOUND; --model and --status are for request logs only', async () => {
    const io: Io = { out: () => undefined, err: () => undefined, env: {} };
    expect((await failure(showLogs(config, 'requests', { peer: 'nobody' }, io))).code).toBe('NOT_FOUND');
    expect((await failure(showLogs(config, 'connections', { model: 'llama3.2' }, io))).code).toBe('BAD_INPUT');
    expect((await failure(showLogs(config, 'audit', { status: '200' }, io))).code).toBe('BAD_INPUT');
  });
});
