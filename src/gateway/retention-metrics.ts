import { Counter, Gauge, Registry } from 'prom-client';
import type { Db } from '../db/open.js';
import { databaseSize, retentionRepository } from '../db/retention.js';
import type { BatchKind, RetentionRun } from './retention.js';

/** Row counts cost a scan of the smallest index: read at most this often, whatever the scrape interval. */
const COUNTS_TTL_MS = 30_000;

/**
 * The database and its retention, as Prometheus metrics: rows and oldest record per log, sizes,
 * the ceiling, and what pruning did (rows, the last run's duration and longest write-lock hold).
 */
export function retentionMetrics(registry: Registry, o: { db: Db; path: string; maxDatabaseBytes: number; last: () => RetentionRun | null; clock?: () => number }) {
  const repo = retentionRepository(o.db);
  const clock = o.clock ?? Date.now;
  let cached: { at: number; value: ReturnType<typeof repo.counts> } | null = null;
  const counts = (): ReturnType<typeof repo.counts> => {
    const now = clock();
    if (!cached || now - cached.at >= COUNTS_TTL_MS) cached = { at: now, value: repo.counts() };
    return cached.value;
  };
  new Gauge({
    name: 'wgo_db_rows', help: 'Rows in each log table (requests, connections, audit); refreshed at most every 30 s', labelNames: ['log'] as const, registers: [registry],
    collect() {
      for (const [log, c] of Object.entries(counts())) this.set({ log }, c.rows);
    },
  });
  new Gauge({
    name: 'wgo_db_oldest_record_timestamp_seconds', help: 'Time of the oldest row of each log (absent: empty)', labelNames: ['log'] as const, registers: [registry],
    collect() {
      this.reset();
      for (const [log, c] of Object.entries(counts())) if (c.oldest !== null) this.set({ log }, Math.floor(c.oldest / 1000));
    },
  });
  new Gauge({
    name: 'wgo_db_size_bytes', help: 'Database size: file (main file), wal (the -wal file), used (pages in use: what the ceiling counts)', labelNames: ['part'] as const, registers: [registry],
    collect() {
      const s = databaseSize(o.db, o.path);
      this.set({ part: 'file' }, s.fileBytes);
      this.set({ part: 'wal' }, s.walBytes);
      this.set({ part: 'used' }, s.usedBytes);
    },
  });
  new Gauge({ name: 'wgo_db_max_bytes', help: 'The size ceiling (retention.maxDatabaseBytes)', registers: [registry] }).set(o.maxDatabaseBytes);
  new Gauge({
    name: 'wgo_db_auto_vacuum_incremental', help: 'Whether pruned space goes back to the file system (1), or stays in the file until one VACUUM (0)', registers: [registry],
    collect() {
      this.set(databaseSize(o.db, o.path).autoVacuum === 'incremental' ? 1 : 0);
    },
  });
  const pruned = new Counter({ name: 'wgo_retention_pruned_rows_total', help: 'Rows retention deleted, by log (tokenDays: daily token sums)', labelNames: ['log'] as const, registers: [registry] });
  const lastRun = (name: string, help: string, value: (r: RetentionRun) => number): void =>
    void new Gauge({
      name, help, registers: [registry],
      collect() {
        const r = o.last();
        if (r) this.set(value(r));
      },
    });
  lastRun('wgo_retention_last_run_timestamp_seconds', 'When the latest prune run started (0: none yet)', (r) => Math.floor(r.startedAt / 1000));
  lastRun('wgo_retention_last_run_duration_seconds', 'How long the latest prune run took (pauses between batches included)', (r) => r.durationMs / 1000);
  lastRun('wgo_retention_last_run_longest_lock_hold_seconds', 'Longest write-lock hold of one batch, vacuum step or checkpoint in the latest prune run', (r) => r.longestHoldMs / 1000);
  lastRun('wgo_retention_over_ceiling', 'Whether the latest prune run left the database over its ceiling (1: only the admin audit log and peers are left to blame)', (r) => (r.overCeiling ? 1 : 0));
  return {
    /** Feed each batch here (retentionService onBatch). */
    batch(b: { target: BatchKind; rows: number }): void {
      if (b.target === 'vacuum' || b.target === 'checkpoint' || b.target === 'wal') return;
      pruned.inc({ log: b.target }, b.rows);
      cached = null;
    },
  };
}
