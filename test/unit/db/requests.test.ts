import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { RequestRecord } from '../../../src/core/request-record.js';
import { peerRepository } from '../../../src/db/peers.js';
import { requestRepository, type RequestRepository } from '../../../src/db/requests.js';
import { T0, WHO, peerEnv, type PeerEnv } from '../../support/peer-env.js';

const HOUR = 3_600_000;

/** A served chat request; override what a test is about. */
function rec(seq: number, o: Partial<RequestRecord> = {}): RequestRecord {
  return {
    seq, at: T0 + seq, peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat',
    endpoint: 'chat', model: 'llama3.2:latest', promptSha256: 'ab'.repeat(32), promptLength: 12, promptText: null,
    status: 200, bytesIn: 100, bytesOut: 2000, promptTokens: 10, evalTokens: 20, ttfbMs: 15.5, durationMs: 300.25,
    refusal: null, ...o,
  };
}

let env: PeerEnv;
let repo: RequestRepository;
let aliceSerial: string;
let bobSerial: string;
const id = (name: string) => peerRepository(env.db).byName(name)!.id;
const count = () => env.db.prepare('SELECT count(*) FROM requests').pluck().get() as number;

beforeEach(() => {
  env = peerEnv();
  aliceSerial = env.svc.add({ name: 'alice' }, WHO).certificate.serial;
  bobSerial = env.svc.add({ name: 'bob' }, WHO).certificate.serial;
  repo = requestRepository(env.db);
});
afterEach(() => env.close());

describe('insertBatch', () => {
  test('stores every field and returns how many were new', () => {
    const r = rec(1, { certSerial: aliceSerial, promptText: 'hi there', refusal: null });
    expect(repo.insertBatch('gpu1', [r])).toBe(1);
    const { seq, ...rest } = r;
    expect(repo.list({ since: 0 })).toEqual([{ ...rest, id: expect.any(Number), guard: 'gpu1', guardSeq: seq, peerId: id('alice'), auth: null, estimatedTokens: null, host: null, queueMs: null }]);
  });

  test('the same batch twice is stored once; an overlapping batch stores only its new records', () => {
    expect(repo.insertBatch('gpu1', [rec(1), rec(2), rec(3)])).toBe(3);
    expect(repo.insertBatch('gpu1', [rec(1), rec(2), rec(3)])).toBe(0);
    expect(repo.insertBatch('gpu1', [rec(2), rec(3), rec(4)])).toBe(1);
    expect(count()).toBe(4);
    expect(repo.list({ since: 0 }).map((r) => r.guardSeq)).toEqual([1, 2, 3, 4]);
    expect(repo.maxSeq('gpu1')).toBe(4);
  });

  test('insertNew returns exactly the records that were new, a seq repeated in one batch included', () => {
    repo.insertBatch('gpu1', [rec(1), rec(2)]);
    const fresh = repo.insertNew('gpu1', [rec(1), rec(2), rec(3), rec(3, { status: 500 }), rec(4)]);
    expect(fresh.map((r) => [r.seq, r.status])).toEqual([[3, 200], [4, 200]]);
    expect(repo.insertNew('gpu1', [rec(3), rec(4)])).toEqual([]);
    expect(count()).toBe(4);
  });

  test('a duplicate keeps the first version of the record', () => {
    repo.insertBatch('gpu1', [rec(1, { status: 200 })]);
    repo.insertBatch('gpu1', [rec(1, { status: 500 })]);
    expect(repo.list({ since: 0 }).map((r) => r.status)).toEqual([200]);
  });

  test('sequence numbers are per guard: the same seq from two guards is two records', () => {
    expect(repo.insertBatch('gpu1', [rec(1)])).toBe(1);
    expect(repo.insertBatch('gpu2', [rec(1)])).toBe(1);
    expect(repo.list({ since: 0 }).map((r) => [r.guard, r.guardSeq])).toEqual([['gpu1', 1], ['gpu2', 1]]);
    expect(repo.maxSeq('gpu2')).toBe(1);
    expect(repo.maxSeq('nobody')).toBe(0);
  });

  test('peer_id comes from the certificate serial: a peer certificate, never a guess from the name', () => {
    repo.insertBatch('gpu1', [
      rec(1, { peer: 'alice', certSerial: aliceSerial }),
      rec(2, { peer: 'alice', certSerial: bobSerial }),
      rec(3, { peer: 'alice', certSerial: 'abcdef' }),
      rec(4, { peer: null, certSerial: null }),
    ]);
    expect(repo.list({ since: 0 }).map((r) => r.peerId)).toEqual([id('alice'), id('bob'), null, null]);
  });
});

describe('list', () => {
  beforeEach(() => {
    repo.insertBatch('gpu1', [
      rec(1, { at: T0 - 2 * HOUR, certSerial: aliceSerial, model: 'llama3.2:latest', status: 200 }),
      rec(2, { at: T0 - HOUR, certSerial: bobSerial, peer: 'bob', model: 'qwen2.5:7b', status: 200 }),
      rec(3, { at: T0, certSerial: aliceSerial, model: 'qwen2.5:7b', status: 429, refusal: 'rate_limited' }),
      rec(4, { at: T0 + HOUR, certSerial: bobSerial, peer: 'bob', model: 'llama3.2:latest', status: 403, refusal: 'model_denied' }),
      rec(5, { at: T0 + 2 * HOUR, certSerial: aliceSerial, model: 'llama3.2:latest', status: 200 }),
    ]);
  });
  const seqs = (q: Parameters<RequestRepository['list']>[0]) => repo.list(q).map((r) => r.guardSeq);

  test('filters by peer, model, status and since, alone and together', () => {
    expect(seqs({ since: 0 })).toEqual([1, 2, 3, 4, 5]);
    expect(seqs({ since: 0, peerId: id('alice') })).toEqual([1, 3, 5]);
    expect(seqs({ since: 0, peerId: id('bob') })).toEqual([2, 4]);
    expect(seqs({ since: 0, model: 'qwen2.5:7b' })).toEqual([2, 3]);
    expect(seqs({ since: 0, status: 200 })).toEqual([1, 2, 5]);
    expect(seqs({ since: T0 })).toEqual([3, 4, 5]);
    expect(seqs({ since: T0, peerId: id('alice'), model: 'llama3.2:latest', status: 200 })).toEqual([5]);
    expect(seqs({ since: 0, model: 'nothing:latest' })).toEqual([]);
  });

  test('limit gives the oldest; newest gives the newest N, still oldest first; afterId pages on', () => {
    expect(seqs({ since: 0, limit: 2 })).toEqual([1, 2]);
    expect(seqs({ since: 0, limit: 2, newest: true })).toEqual([4, 5]);
    expect(seqs({ since: 0, peerId: id('alice'), limit: 2, newest: true })).toEqual([3, 5]);
    const third = repo.list({ since: 0 })[2]!.id;
    expect(seqs({ since: 0, afterId: third })).toEqual([4, 5]);
  });
});

describe('tokensSince', () => {
  test('sums prompt and eval tokens per peer (by id, from the certificate) since a moment; missing counts are 0', () => {
    repo.insertBatch('gpu1', [
      rec(1, { at: T0 - 1, certSerial: aliceSerial, promptTokens: 1000, evalTokens: 1000 }),
      rec(2, { at: T0, certSerial: aliceSerial, promptTokens: 10, evalTokens: 20 }),
      rec(3, { at: T0 + 1, certSerial: aliceSerial, promptTokens: 5, evalTokens: null }),
      rec(4, { at: T0 + 2, peer: 'bob', certSerial: bobSerial, promptTokens: null, evalTokens: 7 }),
      rec(5, { at: T0 + 3, peer: 'carol', certSerial: null, promptTokens: 9, evalTokens: 9 }),
      rec(6, { at: T0 + 4, peer: null, promptTokens: 50, evalTokens: 50 }),
    ]);
    repo.insertBatch('gpu2', [rec(1, { at: T0 + 5, peer: 'bob', certSerial: bobSerial, promptTokens: 1, evalTokens: 2 })]);
    expect(repo.tokensSince(T0)).toEqual(new Map([[id('alice'), 35], [id('bob'), 10]]));
    expect(repo.tokensSince(T0 + 10)).toEqual(new Map());
  });

  test('a new peer with a revoked peer\'s name starts from 0', () => {
    repo.insertBatch('gpu1', [rec(1, { at: T0, certSerial: aliceSerial, promptTokens: 10, evalTokens: 20 })]);
    const oldId = id('alice');
    env.svc.revoke('alice', WHO);
    env.svc.add({ name: 'alice' }, WHO);
    const tokens = repo.tokensSince(T0);
    expect(tokens.get(oldId)).toBe(30);
    expect(tokens.get(id('alice'))).toBeUndefined();
  });
});