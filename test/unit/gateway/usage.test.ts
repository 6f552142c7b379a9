/**
 * Issue 10, item 1, the gateway's side: records carry estimated charges
 * (migration 7 stores them, also on a database an older release populated),
 * today's use counts them for every guard, and the budget's figures name the
 * highest record of the asking guard's spool they include.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, test } from 'vitest';
import type { RequestRecord } from '../../../src/core/request-record.js';
import { MIGRATIONS } from '../../../src/db/migrations.js';
import { openDatabase } from '../../../src/db/open.js';
import { requestRepository } from '../../../src/db/requests.js';
import { peerSetSource } from '../../../src/gateway/peer-set.js';
import { T0, WHO, peerEnv, type PeerEnv } from '../../support/peer-env.js';

let env: PeerEnv | undefined;
let dir = '';
afterEach(() => {
  env?.close();
  env = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = '';
});

let serials: Record<string, string> = {};
function rec(seq: number, peer: string, p: number | null, e: number | null, est: number | null, at = T0): RequestRecord {
  return {
    seq, at, peer, certSerial: serials[peer] ?? null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat',
    model: 'llama3.2:latest', promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 1,
    bytesOut: 1, promptTokens: p, evalTokens: e, estimatedTokens: est, ttfbMs: 1, durationMs: 1, refusal: null,
  };
}

describe('estimated charges at the gateway', () => {
  test('stored, listed, and counted in tokensToday (an estimate replaces the counts it was charged instead of)', () => {
    env = peerEnv();
    serials = Object.fromEntries(['alice', 'bob'].map((n) => [n, env!.svc.add({ name: n }, WHO).certificate.serial]));
    const requests = requestRepository(env.db);
    requests.insertBatch('gpu1', [
      rec(1, 'alice', 10, 20, null), // counted: 30
      rec(2, 'alice', null, null, 40), // cut before the counts: 40 by estimate
      rec(3, 'alice', 1, 1, 50), // implausible counts: the estimate was charged
      rec(4, 'bob', null, null, 7),
    ], 'aaaaaaaaaaaaaaaa');
    expect(requests.list({ since: 0 }).map((r) => r.estimatedTokens)).toEqual([null, 40, 50, 7]);
    const source = peerSetSource(env.db, env.config);
    expect(source.load(T0).tokensToday).toEqual({ alice: 120, bob: 7 });
    expect(requests.countsSince(0).get(1)).toEqual({ requests: 3, tokens: 120 });
  });

  test('usage(): the figures with the highest seq stored from the asking guard\'s spool (0 for another spool or guard)', () => {
    env = peerEnv();
    serials = Object.fromEntries(['alice'].map((n) => [n, env!.svc.add({ name: n }, WHO).certificate.serial]));
    const requests = requestRepository(env.db);
    requests.insertBatch('gpu1', [rec(7, 'alice', 1, 2, null), rec(9, 'alice', null, null, 4)], 'aaaaaaaaaaaaaaaa');
    requests.insertBatch('gpu2', [rec(50, 'alice', 10, 10, null)], 'bbbbbbbbbbbbbbbb');
    const source = peerSetSource(env.db, env.config);
    expect(source.usage(T0, 'gpu1', 'aaaaaaaaaaaaaaaa')).toEqual({ day: '2025-01-01', tokensToday: { alice: 27 }, upTo: 9 });
    expect(source.usage(T0, 'gpu1', 'cccccccccccccccc').upTo).toBe(0);
    expect(source.usage(T0, 'gpu2', 'bbbbbbbbbbbbbbbb').upTo).toBe(50);
  });
});

describe('migration 7 on a database from the release before', () => {
  test('old request rows stay and count as before; new ones keep their estimates', () => {
    dir = mkdtempSync(join(tmpdir(), 'wgo-mig7-'));
    const file = join(dir, 'state.db');
    const old = new Database(file);
    old.pragma('journal_mode = WAL');
    for (let v = 0; v < 6; v++) old.exec(MIGRATIONS[v]!);
    old.pragma('user_version = 6');
    old.prepare(`INSERT INTO peers (id, name, address, address_int, public_key, status, created_at, updated_at)
      VALUES (1, 'alice', '10.66.0.2', 1, ?, 'active', 1, 1)`).run('A'.repeat(43) + '=');
    const insert = old.prepare(`INSERT INTO requests (guard, spool, guard_seq, at, peer_id, peer, source, status, bytes_in, bytes_out, prompt_tokens, eval_tokens, duration_ms, auth)
      VALUES ('gpu1', '', ?, ?, ?, 'alice', '10.66.0.2', 200, 1, 1, ?, ?, 1, 'certificate')`);
    insert.run(1, T0, 1, 10, 20);
    insert.run(2, T0, 1, null, null);
    insert.run(3, T0 - 86_400_000, 1, 100, 100); // the day before
    insert.run(4, T0, null, 5, 5); // no peer (refused before one was known)
    old.close();

    const db = openDatabase(file);
    try {
      expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
      // Migration 7 (estimates, daily sums) ran over the old rows, with any after it.
      expect(MIGRATIONS.length).toBeGreaterThanOrEqual(7);
      const requests = requestRepository(db);
      expect(requests.list({ since: 0 }).map((r) => [r.guardSeq, r.promptTokens, r.evalTokens, r.estimatedTokens])).toEqual([
        [1, 10, 20, null], [2, null, null, null], [3, 100, 100, null], [4, 5, 5, null],
      ]);
      // The daily sums were built from the old rows, per UTC day, and follow new ones.
      expect(requests.tokensOnDay('2025-01-01')).toEqual(new Map([[1, 30]]));
      expect(requests.tokensOnDay('2024-12-31')).toEqual(new Map([[1, 200]]));
      const cert = db.prepare(`INSERT INTO certificates (serial, role, peer_id, common_name, not_before, not_after, issued_at, cert_pem) VALUES ('ab', 'peer', 1, 'alice', 0, 1, 0, '')`);
      cert.run();
      serials = { alice: 'ab' };
      requests.insertBatch('local', [rec(5, 'alice', null, null, 12), rec(6, 'alice', 1, 1, null)]);
      expect(requests.list({ since: 0 }).at(-2)).toMatchObject({ guardSeq: 5, estimatedTokens: 12, peerId: 1 });
      expect(requests.tokensOnDay('2025-01-01')).toEqual(new Map([[1, 44]]));
      expect(() => db.prepare(`UPDATE requests SET estimated_tokens = -1 WHERE guard_seq = 5`).run()).toThrow(/CHECK/);
    } finally {
      db.close();
    }
  });
});
