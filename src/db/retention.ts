import { statSync } from 'node:fs';
import type { PruneStep, PruneView, RetainedLog } from '../core/retention.js';
import type { Statement } from 'better-sqlite3';
import type { Db } from './open.js';

/** The database's size, as SQLite and the file system see it. */
export interface DatabaseSize {
  pageSize: number;
  pageCount: number;
  freePages: number;
  /** Pages in use × page size: what rows and indexes take (what the ceiling is about). */
  usedBytes: number;
  /** The main file (page_count × page_size). */
  fileBytes: number;
  /** The -wal file next to it (0 when there is none). */
  walBytes: number;
  /** 'incremental' reclaims freed pages in steps; 'none' keeps them in the file (one VACUUM changes it). */
  autoVacuum: 'none' | 'full' | 'incremental';
}

const AUTO_VACUUM = ['none', 'full', 'incremental'] as const;

export function databaseSize(db: Db, path: string): DatabaseSize {
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  const pageCount = db.pragma('page_count', { simple: true }) as number;
  const freePages = db.pragma('freelist_count', { simple: true }) as number;
  let walBytes = 0;
  if (path !== ':memory:') {
    try {
      walBytes = statSync(`${path}-wal`).size;
    } catch {
      walBytes = 0;
    }
  }
  return {
    pageSize,
    pageCount,
    freePages,
    usedBytes: (pageCount - freePages) * pageSize,
    fileBytes: pageCount * pageSize,
    walBytes,
    autoVacuum: AUTO_VACUUM[db.pragma('auto_vacuum', { simple: true }) as number] ?? 'none',
  };
}

/** The log tables by the names retention uses. */
const TABLE: Record<RetainedLog, string> = { requests: 'requests', connections: 'connection_events', audit: 'audit_log' };

/** What one batch did and how long it held the write lock (BEGIN IMMEDIATE → COMMIT, fsync included). */
export interface BatchResult {
  rows: number;
  heldMs: number;
  /** CPU time of this process during the hold: far below heldMs means waiting (I/O, or another process had the CPU). */
  cpuMs?: number;
}

/**
 * The statements retention needs, prepared once. Every delete takes the oldest rows by `at`
 * (indexed) and never the newest row of its log, so row ids never go back (a new row never takes
 * an id a reader paging with `after` has seen). Deleting request records first saves the highest
 * sequence number of each guard spool they came from (migration 9).
 */
export function retentionRepository(db: Db) {
  const oldest = Object.fromEntries(Object.entries(TABLE).map(([k, t]) => [k,
    // The first row in `at` order that is not the newest: stops at once (min() with a WHERE may scan).
    db.prepare(`SELECT at FROM ${t} WHERE id < (SELECT max(id) FROM ${t}) ORDER BY at LIMIT 1`).pluck()])) as Record<RetainedLog, Statement>;
  const count = Object.fromEntries(Object.entries(TABLE).map(([k, t]) => [k, db.prepare(`SELECT count(*) FROM ${t}`).pluck()])) as Record<RetainedLog, Statement>;
  const oldestAll = Object.fromEntries(Object.entries(TABLE).map(([k, t]) => [k, db.prepare(`SELECT min(at) FROM ${t}`).pluck()])) as Record<RetainedLog, Statement>;
  const pick = (t: string): string => `SELECT id FROM ${t} WHERE at < @before AND id < (SELECT max(id) FROM ${t}) ORDER BY at, id LIMIT @n`;
  const del = Object.fromEntries(Object.entries(TABLE).map(([k, t]) => [k, db.prepare(`DELETE FROM ${t} WHERE id IN (${pick(t)})`)])) as Record<RetainedLog, Statement>;
  const markSeqs = db.prepare(`INSERT INTO request_spool_seqs (guard, spool, seq)
    SELECT guard, spool, max(guard_seq) FROM requests WHERE id IN (${pick('requests')}) GROUP BY guard, spool
    ON CONFLICT (guard, spool) DO UPDATE SET seq = max(seq, excluded.seq)`);
  const oldTokenDay = db.prepare(`SELECT 1 FROM peer_tokens_daily WHERE day < ? LIMIT 1`).pluck();
  const delTokenDays = db.prepare(`DELETE FROM peer_tokens_daily WHERE (day, peer_id) IN
    (SELECT day, peer_id FROM peer_tokens_daily WHERE day < @beforeDay ORDER BY day LIMIT @n)`);

  /**
   * Runs fn with this connection's commits not waiting for fsync (synchronous NORMAL, WAL): the
   * sync would be most of each short hold (~5 ms here). The database stays consistent; a power
   * cut may lose the last pruning batches, which the next run does again. Every other commit on
   * the connection keeps its setting (restored before returning; the next FULL commit syncs the
   * WAL up to and including these).
   */
  const relaxed = <T>(fn: () => T): T => {
    const sync = db.pragma('synchronous', { simple: true }) as number;
    // No automatic checkpoint at the commit either: it would copy and sync the WAL inside the
    // timed hold (it does not hold the write lock). The service checkpoints between batches.
    const auto = db.pragma('wal_autocheckpoint', { simple: true }) as number;
    db.pragma('synchronous = NORMAL');
    db.pragma('wal_autocheckpoint = 0');
    try {
      return fn();
    } finally {
      db.pragma(`synchronous = ${sync}`);
      db.pragma(`wal_autocheckpoint = ${auto}`);
    }
  };
  /** Runs fn in one BEGIN IMMEDIATE transaction and times the hold from the lock to the commit. */
  const timed = (fn: () => number): BatchResult =>
    relaxed(() => {
      db.exec('BEGIN IMMEDIATE');
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      let rows: number;
      try {
        rows = fn();
        db.exec('COMMIT');
      } catch (e) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw e;
      }
      const heldMs = performance.now() - t0;
      const c = process.cpuUsage(c0);
      return { rows, heldMs, cpuMs: (c.user + c.system) / 1000 };
    });

  return {
    /** What the pruner decides on (core/retention.ts nextPruneStep). */
    view(tokenDaysBefore: string, usedBytes: number): PruneView {
      return {
        usedBytes,
        oldest: { requests: (oldest.requests.get() as number | undefined) ?? null, connections: (oldest.connections.get() as number | undefined) ?? null, audit: (oldest.audit.get() as number | undefined) ?? null },
        oldTokenDays: oldTokenDay.get(tokenDaysBefore) !== undefined,
      };
    },
    /** Deletes at most n rows of one step in one short transaction. */
    prune(step: PruneStep, n: number): BatchResult {
      if (step.target === 'tokenDays') return timed(() => delTokenDays.run({ beforeDay: step.beforeDay, n }).changes);
      const args = { before: step.before, n };
      return timed(() => {
        if (step.target === 'requests') markSeqs.run(args);
        return del[step.target].run(args).changes;
      });
    },
    /** Moves up to `pages` free pages to the end of the file and cuts them off (auto_vacuum incremental). */
    incrementalVacuum(pages: number): BatchResult {
      const before = db.pragma('freelist_count', { simple: true }) as number;
      return timed(() => {
        db.pragma(`incremental_vacuum(${Math.max(1, Math.floor(pages))})`);
        return before - (db.pragma('freelist_count', { simple: true }) as number);
      });
    },
    /**
     * What the automatic checkpoint would do: copies what it can of the WAL into the file without
     * waiting for readers or blocking writers (PASSIVE), so the WAL stays small during a long prune.
     */
    checkpointPassive(): BatchResult {
      const t0 = performance.now();
      const r = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
      return { rows: r[0]?.checkpointed ?? 0, heldMs: performance.now() - t0 };
    },
    /** Copies the WAL into the file and empties it, so the -wal file does not keep the space. */
    checkpoint(): BatchResult {
      const t0 = performance.now();
      const r = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
      return { rows: r[0]?.checkpointed ?? 0, heldMs: performance.now() - t0 };
    },
    /** Turns on auto_vacuum=INCREMENTAL for an existing database: one VACUUM, holding the write lock throughout. */
    vacuumIncremental(): BatchResult {
      const t0 = performance.now();
      db.pragma('auto_vacuum = INCREMENTAL');
      db.exec('VACUUM');
      return { rows: 0, heldMs: performance.now() - t0 };
    },
    /** Rows of each log, and the oldest `at` of each (null: empty). */
    counts(): Record<RetainedLog, { rows: number; oldest: number | null }> {
      const out = {} as Record<RetainedLog, { rows: number; oldest: number | null }>;
      for (const k of Object.keys(TABLE) as RetainedLog[]) out[k] = { rows: count[k].get() as number, oldest: (oldestAll[k].get() as number | null) ?? null };
      return out;
    },
  };
}

export type RetentionRepository = ReturnType<typeof retentionRepository>;
