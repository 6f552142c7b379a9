import { cutoffs, nearCeiling, nextBatchSize, nextPruneStep, type PruneTarget, type RetentionPolicy } from '../core/retention.js';
import type { Db } from '../db/open.js';
import { databaseSize, retentionRepository, type DatabaseSize } from '../db/retention.js';

/** Aim of each batch's write-lock hold, and its bounds in rows. */
export const BATCH = { targetMs: 5, min: 50, max: 5000, initial: 500 };
/** Free pages reclaimed per incremental_vacuum step (1 MiB at 4 KiB pages; ~2-5 ms here). */
export const VACUUM_PAGES = 256;
/**
 * A PASSIVE checkpoint after every this many batches or vacuum steps (the batches commit with the
 * automatic one off; a batch of ~1,300 rows writes some 200 pages, the automatic one runs at 1000).
 */
const WAL_CHECKPOINT_EVERY = 4;
/** At most this many batches per run (a bound, not a plan: ten million rows at 1,000 a batch; the next run goes on). */
const MAX_BATCHES = 10_000;
/**
 * A database whose auto_vacuum is not incremental (created before it was set) gets its one VACUUM at
 * the first prune run when its file is at most this big; larger ones are left to `doctor`'s
 * warning and a VACUUM at a moment the operator picks (the README says how).
 */
export const VACUUM_AT_START_MAX_BYTES = 64 * 1024 * 1024;

export interface RetentionRun {
  startedAt: number;
  durationMs: number;
  /** Rows deleted per log (and daily token sums). */
  deleted: Record<PruneTarget, number>;
  /** Rows the size ceiling took (any age): included in `deleted`. */
  deletedForCeiling: number;
  batches: number;
  /** Longest write-lock hold of any batch, vacuum step or the closing checkpoint of this run. */
  longestHoldMs: number;
  /** Pages given back to the file system by incremental vacuum. */
  vacuumedPages: number;
  /** Still over the ceiling at the end (the admin audit log alone, or the run was stopped). */
  overCeiling: boolean;
  size: DatabaseSize;
}

/**
 * What one step was: a prune batch of a log, an incremental vacuum step, the closing
 * checkpoint (TRUNCATE: blocks writers), or a passive checkpoint between batches (blocks no
 * writer: not counted as a hold).
 */
export type BatchKind = PruneTarget | 'vacuum' | 'checkpoint' | 'wal';

export interface RetentionOptions {
  db: Db;
  /** The database file (for the -wal size); ':memory:' in tests. */
  path: string;
  policy: RetentionPolicy;
  clock?: () => number;
  /** Between batches: gives other writers (serve's own, CLI processes) the lock. Default: a timer of pauseMs. */
  pause?: (ms: number) => Promise<void>;
  /**
   * Pause after each batch: at least this, and at least twice as long as the batch held the lock.
   * A writer waiting on the busy handler retries at growing intervals (1, 2, 5, … 100 ms), so it
   * must find the lock free most of the time, not just for a moment: at a third of the time held,
   * nine retries in a row that all hit a batch are rare (measured in BENCHMARKS.md).
   */
  pauseMs?: number;
  batch?: Partial<typeof BATCH>;
  /** Each batch (tests count transactions here; serve feeds the metrics). */
  onBatch?(b: { target: BatchKind; rows: number; heldMs: number; cpuMs?: number }): void;
  log?: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Log retention for serve: deletes what the policy no longer keeps in small batches, each its own
 * short IMMEDIATE transaction sized to hold the write lock about BATCH.targetMs, with a pause after
 * each (twice the hold) so serve's own writes and CLI processes (busy_timeout 30 s) get the lock; then
 * gives the freed pages back (incremental vacuum, in steps) and empties the WAL. What goes and
 * what stays: core/retention.ts. One run at a time: a second call joins the running one.
 */
export function retentionService(o: RetentionOptions) {
  const repo = retentionRepository(o.db);
  const clock = o.clock ?? Date.now;
  const pause = o.pause ?? sleep;
  const pauseMs = o.pauseMs ?? 5;
  const batch = { ...BATCH, ...o.batch };
  let running: Promise<RetentionRun> | null = null;
  let stopped = false;
  let last: RetentionRun | null = null;

  const size = (): DatabaseSize => databaseSize(o.db, o.path);

  const once = async (): Promise<RetentionRun> => {
    const startedAt = clock();
    const t0 = performance.now();
    const deleted: Record<PruneTarget, number> = { requests: 0, connections: 0, audit: 0, tokenDays: 0 };
    let deletedForCeiling = 0;
    let batches = 0;
    let longestHoldMs = 0;
    let vacuumedPages = 0;
    const held = (target: BatchKind, rows: number, ms: number, cpuMs?: number): void => {
      if (target !== 'wal') longestHoldMs = Math.max(longestHoldMs, ms);
      o.onBatch?.({ target, rows, heldMs: ms, ...(cpuMs === undefined ? {} : { cpuMs }) });
    };
    /** The WAL copied back every few steps (the batches commit with automatic checkpoints off). */
    let steps = 0;
    const walCheck = (): void => {
      if (o.path === ':memory:' || ++steps % WAL_CHECKPOINT_EVERY !== 0) return;
      const r = repo.checkpointPassive();
      held('wal', r.rows, r.heldMs);
    };
    const yieldLock = (ms: number): Promise<void> => pause(Math.max(pauseMs, Math.ceil(2 * ms)));

    let s = size();
    if (s.autoVacuum !== 'incremental' && o.path !== ':memory:') {
      if (s.fileBytes <= VACUUM_AT_START_MAX_BYTES) {
        const r = repo.vacuumIncremental();
        held('vacuum', 0, r.heldMs);
        o.log?.info({ event: 'retention.vacuumed', vacuumMs: Math.round(r.heldMs), bytes: s.fileBytes }, 'database rebuilt once (VACUUM) to reclaim space as logs are pruned (auto_vacuum incremental)');
        s = size();
      } else {
        o.log?.warn({ event: 'retention.vacuum-needed', bytes: s.fileBytes }, 'this database keeps pruned space in the file (auto_vacuum is not incremental): run "wg-ollama vacuum" once at a quiet moment (README, Retention)');
      }
    }

    const c = cutoffs(o.policy, clock());
    let n = batch.initial;
    let ceiling = false;
    while (!stopped && batches < MAX_BATCHES) {
      const step = nextPruneStep(repo.view(c.tokenDays, s.usedBytes), c, o.policy, ceiling);
      if (!step) break;
      if (step.reason === 'ceiling' && !ceiling) {
        ceiling = true;
        o.log?.warn({ event: 'retention.over-ceiling', usedBytes: s.usedBytes, maxDatabaseBytes: o.policy.maxDatabaseBytes }, 'the database is over its size ceiling: pruning the oldest request records and connection events whatever their age (retention.maxDatabaseBytes)');
      }
      const r = repo.prune(step, n);
      batches++;
      deleted[step.target] += r.rows;
      if (step.reason === 'ceiling') deletedForCeiling += r.rows;
      held(step.target, r.rows, r.heldMs, r.cpuMs);
      n = nextBatchSize(n, r.heldMs, batch);
      s = size();
      walCheck();
      await yieldLock(r.heldMs);
    }

    // Freed pages back to the file system, a step at a time (each step is a write transaction too).
    if (s.autoVacuum === 'incremental') {
      for (let i = 0; i < MAX_BATCHES && !stopped && s.freePages > 0; i++) {
        const r = repo.incrementalVacuum(VACUUM_PAGES);
        vacuumedPages += r.rows;
        held('vacuum', r.rows, r.heldMs, r.cpuMs);
        s = size();
        if (r.rows === 0) break;
        walCheck();
        await yieldLock(r.heldMs);
      }
    }
    if (o.path !== ':memory:' && !stopped) {
      const r = repo.checkpoint();
      held('checkpoint', r.rows, r.heldMs);
      s = size();
    }
    const overCeiling = s.usedBytes > o.policy.maxDatabaseBytes;
    const run: RetentionRun = { startedAt, durationMs: performance.now() - t0, deleted, deletedForCeiling, batches, longestHoldMs, vacuumedPages, overCeiling, size: s };
    const total = deleted.requests + deleted.connections + deleted.audit;
    if (total > 0 || vacuumedPages > 0) o.log?.info({ event: 'retention.pruned', deleted, deletedForCeiling, batches, longestHoldMs: Math.round(longestHoldMs * 10) / 10, vacuumedPages, durationMs: Math.round(run.durationMs), usedBytes: s.usedBytes }, 'old log rows pruned');
    if (overCeiling && !stopped) o.log?.warn({ event: 'retention.over-ceiling', usedBytes: s.usedBytes, maxDatabaseBytes: o.policy.maxDatabaseBytes }, 'the database is still over its size ceiling: what is left is the admin audit log (never pruned for size) and peers; raise retention.maxDatabaseBytes or shorten retention.audit');
    else if (nearCeiling(s.usedBytes, o.policy.maxDatabaseBytes)) o.log?.warn({ event: 'retention.near-ceiling', usedBytes: s.usedBytes, maxDatabaseBytes: o.policy.maxDatabaseBytes }, 'the database is at 80 % of its size ceiling or more');
    last = run;
    return run;
  };

  return {
    /** One prune run (joins the one running). */
    run(): Promise<RetentionRun> {
      running ??= once().finally(() => {
        running = null;
      });
      return running;
    },
    /** The latest finished run (null: none yet). */
    last: (): RetentionRun | null => last,
    /** Stops between batches; resolves when the running run (if any) has ended. */
    async stop(): Promise<void> {
      stopped = true;
      await running?.catch(() => undefined);
    },
  };
}

export type RetentionService = ReturnType<typeof retentionService>;
