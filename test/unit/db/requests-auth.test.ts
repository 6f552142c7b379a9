/** The auth column of request records: what guards may push, and what is stored (older guards send no field). */
import { afterEach, describe, expect, test } from 'vitest';
import { requestRecordSchema, type RequestRecord } from '../../../src/core/request-record.js';
import { requestRepository } from '../../../src/db/requests.js';
import { WHO, peerEnv, type PeerEnv } from '../../support/peer-env.js';

let env: PeerEnv;
afterEach(() => env?.close());

const rec = (seq: number, extra: Partial<RequestRecord> = {}): RequestRecord => ({
  seq, at: 1, peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'GET', path: '/api/version', endpoint: 'version', model: null,
  promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 0, bytesOut: 10, promptTokens: null, evalTokens: null,
  ttfbMs: 1, durationMs: 1, refusal: null, ...extra,
});

describe('requestRecordSchema', () => {
  test.each([['token'], ['certificate'], [null]])('accepts auth %j', (auth) => {
    expect(requestRecordSchema.safeParse(rec(1, { auth: auth as RequestRecord['auth'] })).success).toBe(true);
  });
  test('accepts a record without the field (a guard older than tokens)', () => {
    const { auth: _none, ...old } = rec(1);
    expect(requestRecordSchema.safeParse(old).success).toBe(true);
  });
  test.each(['password', 'TOKEN', '', 1])('refuses auth %j', (auth) => {
    expect(requestRecordSchema.safeParse({ ...rec(1), auth }).success).toBe(false);
  });
});

describe('stored', () => {
  test('token and certificate as sent; missing or null as null; the peer found by the bound certificate', () => {
    env = peerEnv();
    const serial = env.svc.add({ name: 'alice' }, WHO).certificate.serial;
    const repo = requestRepository(env.db);
    const { auth: _none, ...old } = rec(4, { certSerial: serial });
    expect(repo.insertBatch('gpu1', [rec(1, { certSerial: serial, auth: 'token' }), rec(2, { certSerial: serial, auth: 'certificate' }), rec(3, { auth: null, peer: null, status: 401 }), old])).toBe(4);
    const rows = repo.list({ since: 0 });
    expect(rows.map((r) => [r.guardSeq, r.auth, r.peerId !== null])).toEqual([[1, 'token', true], [2, 'certificate', true], [3, null, false], [4, null, true]]);
  });
});
