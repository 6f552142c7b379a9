import { statSync } from 'node:fs';
import { afterEach, describe, expect, test } from 'vitest';
import { retentionPolicy } from '../../../src/core/retention.js';
import type { RequestRecord } from '../../../src/core/request-record.js';
import { requestRepository } from '../../../src/db/requests.js';
import { retentionService, type RetentionOptions } from '../../../src/gateway/retention.js';
import { addAudit, addEvents, addRequests, count, DAY, NOW, retentionDb, times } from '../../support/retention-env.js';

const DEFAULTS = { requests: '90d', connections: '30d', audit: '400d', maxDatabaseBytes: 2 * 1024 ** 3 };
const noPause = async (): Promise<void> => undefined;

let env: ReturnType<typeof retentionDb>;
afterEach(() => env?.cleanup());

const service = (o: Partial<RetentionOptions> & { settings?: Partial<typeof DEFAULTS> } = {}) =>
  retentionService({ db: env.db, path: env.path, policy: retentionPolicy({ ...DEFAULTS, ...o.settings }), clock: () => NOW, pause: noPause, ...o });

describe('retention by age', () => {
  test('each log loses exactly its rows older than its age; the newest row of each log stays whatever its age', async () => {
    env = retentionDb();
    addRequests(env.db, [NOW - 200 * DAY, NOW - 91 * DAY, NOW - 89 * DAY, NOW - DAY]);
    addEvents(env.db, [NOW - 40 * DAY, NOW - 31 * DAY, NOW - 29 * DAY]);
    addAudit(env.db, [NOW - 500 * DAY, NOW - 401 * DAY, NOW - 399 * DAY]);
    const run = await service().run();
    expect(run.deleted).toMatchObject({ requests: 2, connections: 2, audit: 2 });
    expect(env.db.prepare('SELECT at FROM requests ORDER BY at').pluck().all()).toEqual([NOW - 89 * DAY, NOW - DAY]);
    expect(env.db.prepare('SELECT at FROM connection_events').pluck().all()).toEqual([NOW - 29 * DAY]);
    expect(env.db.prepare('SELECT at FROM audit_log').pluck().all()).toEqual([NOW - 399 * DAY]);

    // Everything old: the newest row of each log is kept, so ids never go back.
    env.cleanup();
    env = retentionDb();
    addRequests(env.db, [NOW - 300 * DAY, NOW - 200 * DAY]);
    addEvents(env.db, [NOW - 300 * DAY, NOW - 200 * DAY]);
    const maxId = env.db.prepare('SELECT max(id) FROM requests').pluck().get();
    await service().run();
    expect(env.db.prepare('SELECT id FROM requests').pluck().all()).toEqual([maxId]);
    expect(count(env.db, 'connection_events')).toBe(1);
  });

  test('ages come from the config: 1d keeps only the last day', async () => {
    env = retentionDb();
    addRequests(env.db, [NOW - 3 * DAY, NOW - 2 * DAY, NOW - 12 * 3_600_000, NOW - 1000]);
    await service({ settings: { requests: '1d' } }).run();
    expect(count(env.db, 'requests')).toBe(2);
  });

  test("daily token sums: older days go with their requests, today's (and the retained days') stay", async () => {
    env = retentionDb();
    addRequests(env.db, [NOW - 120 * DAY, NOW - 100 * DAY], { tokens: 7 });
    addRequests(env.db, [NOW - 10 * DAY, NOW - 60_000, NOW - 30_000], { tokens: 5 });
    const before = requestRepository(env.db).tokensOnDay('2026-06-15');
    expect(before.get(1)).toBe(10);
    const run = await service().run();
    expect(run.deleted.tokenDays).toBe(2);
    expect(env.db.prepare('SELECT day FROM peer_tokens_daily ORDER BY day').pluck().all()).toEqual(['2026-06-05', '2026-06-15']);
    expect(requestRepository(env.db).tokensOnDay('2026-06-15')).toEqual(before);
  });

  test('peers, certificates and gateway_state are never touched', async () => {
    env = retentionDb();
    env.db.prepare(`UPDATE peers SET status = 'revoked', revoked_at = ? WHERE id = 3`).run(NOW - 900 * DAY);
    env.db.prepare(`INSERT INTO gateway_state (key, value) VALUES ('last_backup', '0')`).run();
    addRequests(env.db, [NOW - 500 * DAY, NOW]);
    await service({ settings: { requests: '1d', connections: '1d', audit: '1d' } }).run();
    expect(count(env.db, 'peers')).toBe(3);
    expect(count(env.db, 'gateway_state')).toBe(1);
  });
});

describe('guard sequence numbers survive pruning', () => {
  test("spoolSeq (the budget's upTo) and maxSeq (the local guard's next number) do not go back", async () => {
    env = retentionDb();
    addRequests(env.db, [NOW - 200 * DAY, NOW - 199 * DAY], { guard: 'g2', spool: 'old' });
    addRequests(env.db, [NOW - 200 * DAY, NOW - 199 * DAY], { guard: 'local', spool: '' });
    addRequests(env.db, [NOW]);
    const repo = requestRepository(env.db);
    const upTo = repo.spoolSeq('g2', 'old');
    const local = repo.maxSeq('local');
    expect(upTo).toBeGreaterThan(0);
    await service().run();
    expect(count(env.db, 'requests', `guard IN ('g2', 'local')`)).toBe(0);
    expect(repo.spoolSeq('g2', 'old')).toBe(upTo);
    expect(repo.maxSeq('local')).toBe(local);
    expect(repo.spoolSeq('g2', 'other')).toBe(0);
  });

  test('a batch pushed again after its rows were pruned (its answer was lost) is not stored, nor charged, twice', async () => {
    env = retentionDb();
    const repo = requestRepository(env.db);
    const rec = (seq: number, at: number): RequestRecord => ({
      seq, at, peer: 'p1', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat', model: 'llama3.2:latest',
      promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 1, bytesOut: 1, promptTokens: 5, evalTokens: 5,
      ttfbMs: 1, durationMs: 1, refusal: null,
    });
    const batch = [rec(1, NOW - 200 * DAY), rec(2, NOW - 199 * DAY), rec(3, NOW)];
    expect(repo.insertNew('g1', batch, 'sp')).toHaveLength(3);
    await service().run();
    expect(count(env.db, 'requests', `guard = 'g1'`)).toBe(1);
    expect(repo.insertNew('g1', batch, 'sp')).toEqual([]);
    expect(count(env.db, 'requests', `guard = 'g1'`)).toBe(1);
    expect(repo.insertNew('g1', [rec(4, NOW)], 'sp').map((r) => r.seq)).toEqual([4]);
  });
});

describe('size ceiling', () => {
  const MiB = 1024 * 1024;

  test('over the ceiling, the oldest requests and events go whatever their age, down to 90 % of it; young audit stays', async () => {
    env = retentionDb();
    // ~30 MiB of young request records, a few events, and young audit.
    for (let i = 0; i < 6; i++) addRequests(env.db, times(NOW - 10 * DAY + i * DAY, 10_000, 1000), { pad: 400 });
    addEvents(env.db, times(NOW - 5 * DAY, 100, 1000));
    addAudit(env.db, times(NOW - 100 * DAY, 500, 1000));
    const before = count(env.db, 'requests');
    const used0 = (env.db.pragma('page_count', { simple: true }) as number) * 4096;
    const max = 64 * MiB;
    expect(used0).toBeLessThan(max);
    // Nothing to do below the ceiling.
    expect((await service({ settings: { maxDatabaseBytes: max } }).run()).deleted.requests).toBe(0);
    // A ceiling we are over (bypassing the config's 64 MiB minimum to keep the test small).
    const policy = { ...retentionPolicy(DEFAULTS), maxDatabaseBytes: Math.floor(used0 / 2) };
    const run = await retentionService({ db: env.db, path: env.path, policy, clock: () => NOW, pause: noPause }).run();
    expect(run.deletedForCeiling).toBeGreaterThan(0);
    expect(run.size.usedBytes).toBeLessThanOrEqual(policy.maxDatabaseBytes * 0.9);
    expect(run.overCeiling).toBe(false);
    const left = count(env.db, 'requests');
    expect(left).toBeLessThan(before);
    // Oldest first: what is left is the newest.
    expect(env.db.prepare('SELECT min(at) FROM requests').pluck().get()).toBeGreaterThan(NOW - 10 * DAY);
    expect(env.db.prepare('SELECT max(at) FROM requests').pluck().get()).toBe(NOW - 5 * DAY + 9_999_000);
    expect(count(env.db, 'audit_log')).toBe(500);
  });

  test('when young audit alone is over the ceiling it is kept, and the run says it is still over', async () => {
    env = retentionDb();
    addAudit(env.db, times(NOW - 10 * DAY, 2000, 1000), 2000);
    addRequests(env.db, times(NOW - DAY, 100, 1000));
    const used = (env.db.pragma('page_count', { simple: true }) as number) * 4096;
    const policy = { ...retentionPolicy(DEFAULTS), maxDatabaseBytes: Math.floor(used / 4) };
    const warnings: string[] = [];
    const run = await retentionService({ db: env.db, path: env.path, policy, clock: () => NOW, pause: noPause, log: { info: () => undefined, warn: (_o, m) => void warnings.push(m) } }).run();
    expect(count(env.db, 'audit_log')).toBe(2000);
    expect(count(env.db, 'requests')).toBe(1);
    expect(run.overCeiling).toBe(true);
    expect(warnings.some((w) => w.includes('still over its size ceiling'))).toBe(true);
  });
});

describe('batches', () => {
  test('every batch is its own short transaction of at most batch.max rows, with a pause after each', async () => {
    env = retentionDb();
    addRequests(env.db, times(NOW - 200 * DAY, 5000, 1000));
    addRequests(env.db, [NOW]);
    const batches: { target: string; rows: number }[] = [];
    // Each commit by another connection moves a reader's data_version: one move per pause means one commit per batch.
    const { openDatabase } = await import('../../../src/db/open.js');
    const reader = openDatabase(env.path, { readonly: true });
    const versions: number[] = [];
    try {
      const run = await service({
        batch: { initial: 100, min: 100, max: 100 },
        onBatch: (b) => void batches.push(b),
        pause: async () => {
          expect(env.db.inTransaction).toBe(false);
          versions.push(reader.pragma('data_version', { simple: true }) as number);
        },
      }).run();
      expect(run.deleted.requests).toBe(5000);
    } finally {
      reader.close();
    }
    const pruneBatches = batches.filter((b) => b.target === 'requests');
    expect(pruneBatches.length).toBe(50);
    expect(Math.max(...pruneBatches.map((b) => b.rows))).toBe(100);
    expect(versions.length).toBeGreaterThanOrEqual(50);
    for (let i = 1; i < 50; i++) expect(versions[i]).not.toBe(versions[i - 1]);
  });

  test('the pause after a batch is at least twice its hold, and at least pauseMs', async () => {
    env = retentionDb();
    addRequests(env.db, times(NOW - 200 * DAY, 3000, 1000));
    addRequests(env.db, [NOW]);
    const steps: { held?: number; pause?: number }[] = [];
    await service({
      pauseMs: 3,
      batch: { initial: 200, min: 200, max: 200 },
      onBatch: (b) => void (b.target === 'requests' && steps.push({ held: b.heldMs })),
      pause: async (ms) => {
        const last = steps[steps.length - 1];
        if (last && last.pause === undefined) last.pause = ms;
      },
    }).run();
    expect(steps.length).toBe(15);
    for (const st of steps) {
      expect(st.pause).toBeGreaterThanOrEqual(3);
      expect(st.pause).toBeGreaterThanOrEqual(2 * st.held!);
    }
  });

  test('a peer change from another connection while a prune runs is not held up', async () => {
    env = retentionDb();
    addRequests(env.db, times(NOW - 200 * DAY, 20_000, 100));
    addRequests(env.db, [NOW]);
    const { openDatabase } = await import('../../../src/db/open.js');
    const other = openDatabase(env.path);
    // No waiting at all: the other writer must find the lock free between batches.
    other.pragma('busy_timeout = 0');
    let changes = 0;
    try {
      await service({
        batch: { initial: 500, min: 500, max: 500 },
        pause: async () => {
          other.prepare(`UPDATE peers SET status = CASE status WHEN 'active' THEN 'disabled' ELSE 'active' END WHERE id = 2`).run();
          changes++;
        },
      }).run();
    } finally {
      other.close();
    }
    expect(changes).toBeGreaterThanOrEqual(40);
    expect(count(env.db, 'requests')).toBe(1);
  });
});

describe('space', () => {
  test('a new database reclaims pruned space: the file shrinks and the WAL is emptied', async () => {
    env = retentionDb();
    expect(env.db.pragma('auto_vacuum', { simple: true })).toBe(2);
    addRequests(env.db, times(NOW - 200 * DAY, 20_000, 1000), { pad: 300 });
    addRequests(env.db, [NOW]);
    env.db.pragma('wal_checkpoint(TRUNCATE)');
    const big = statSync(env.path).size;
    const run = await service().run();
    expect(run.vacuumedPages).toBeGreaterThan(0);
    const small = statSync(env.path).size;
    expect(small).toBeLessThan(big / 4);
    expect(statSync(`${env.path}-wal`).size).toBe(0);
    expect(run.size.walBytes).toBe(0);
  });

  test("pruning commits without fsync, and leaves the connection's FULL sync as it was (a revoke on it must survive a power cut)", async () => {
    env = retentionDb();
    addRequests(env.db, times(NOW - 200 * DAY, 2000, 1000), { pad: 300 });
    addRequests(env.db, [NOW]);
    expect(env.db.pragma('synchronous', { simple: true })).toBe(2);
    const auto = env.db.pragma('wal_autocheckpoint', { simple: true });
    expect(auto).toBeGreaterThan(0);
    const seen: string[] = [];
    await service({ onBatch: () => void seen.push(`${env.db.pragma('synchronous', { simple: true })}/${env.db.pragma('wal_autocheckpoint', { simple: true })}`) }).run();
    expect(seen.length).toBeGreaterThan(1);
    expect(new Set(seen)).toEqual(new Set([`2/${auto}`]));
    expect(env.db.pragma('synchronous', { simple: true })).toBe(2);
  });

  test('an older database (auto_vacuum none) gets its one VACUUM at the first run when it is small', async () => {
    env = retentionDb();
    env.db.pragma('auto_vacuum = NONE');
    env.db.exec('VACUUM');
    expect(env.db.pragma('auto_vacuum', { simple: true })).toBe(0);
    const held: string[] = [];
    await service({ onBatch: (b) => void held.push(b.target) }).run();
    expect(env.db.pragma('auto_vacuum', { simple: true })).toBe(2);
    expect(held[0]).toBe('vacuum');
  });
});
