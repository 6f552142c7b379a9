import { parseDuration } from './duration.js';
import { utcDay } from './rate.js';

/** The logs retention prunes. Peers, certificates, keys, guards, admins and gateway_state never are. */
export const RETAINED_LOGS = ['requests', 'connections', 'audit'] as const;
export type RetainedLog = (typeof RETAINED_LOGS)[number];

/** What can be deleted in one batch: a log, or the daily token sums (derived from requests). */
export type PruneTarget = RetainedLog | 'tokenDays';

export const DAY_MS = 86_400_000;
/** Shortest age a log may be kept: one day (today's budget rows live in peer_tokens_daily as well). */
export const MIN_RETENTION_MS = DAY_MS;
/** Smallest database ceiling accepted (64 MiB): below it a day of busy requests could not fit. */
export const MIN_DATABASE_BYTES = 64 * 1024 * 1024;
/** Ceiling pruning stops at this share of the ceiling, so it does not run again at every insert. */
export const CEILING_TARGET = 0.9;
/** `doctor` and the metrics warn from this share of the ceiling on. */
export const CEILING_WARN = 0.8;

/** The config's `retention`, as written (durations as text). */
export interface RetentionSettings {
  requests: string;
  connections: string;
  audit: string;
  maxDatabaseBytes: number;
}

/** Ages in ms and the ceiling in bytes. */
export interface RetentionPolicy {
  ageMs: Record<RetainedLog, number>;
  maxDatabaseBytes: number;
}

/** Parses the settings (BAD_INPUT naming the field when an age does not parse). */
export function retentionPolicy(s: RetentionSettings): RetentionPolicy {
  return {
    ageMs: {
      requests: parseDuration(s.requests, 'retention.requests'),
      connections: parseDuration(s.connections, 'retention.connections'),
      audit: parseDuration(s.audit, 'retention.audit'),
    },
    maxDatabaseBytes: s.maxDatabaseBytes,
  };
}

/** Rows at or after these moments (ms) are kept by the age rule; `tokenDays`: days before this one go. */
export interface Cutoffs {
  requests: number;
  connections: number;
  audit: number;
  /** UTC day (YYYY-MM-DD): daily token sums of earlier days are pruned with the requests they came from. */
  tokenDays: string;
}

export function cutoffs(policy: RetentionPolicy, now: number): Cutoffs {
  const requests = now - policy.ageMs.requests;
  return {
    requests,
    connections: now - policy.ageMs.connections,
    audit: now - policy.ageMs.audit,
    // Never today's (or yesterday's) rows: the age is at least a day, so this day is at most yesterday.
    tokenDays: utcDay(requests),
  };
}

/** What the pruner sees before each batch. */
export interface PruneView {
  /** Bytes of pages in use (page_count − freelist_count) × page_size: what the rows and indexes take. */
  usedBytes: number;
  /** Oldest `at` of each log among the rows pruning may delete (the newest row of each log is never among them); null: none. */
  oldest: Record<RetainedLog, number | null>;
  /** Whether any daily token sum is older than cutoffs.tokenDays. */
  oldTokenDays: boolean;
}

/**
 * One batch to delete: `before` is the `at` (or day, for tokenDays) rows must be older than.
 * `reason` says why: the age rule, or the size ceiling (then any age, oldest first).
 */
export type PruneStep =
  | { target: RetainedLog; before: number; reason: 'age' | 'ceiling' }
  | { target: 'tokenDays'; beforeDay: string; reason: 'age' };

/**
 * The next batch of a prune run, or null when it is done. First the age rule, log by log. Then,
 * while the used size is over the ceiling (`ceiling` is true once it was: the run goes on down to
 * CEILING_TARGET of it), the oldest rows of requests and connection events — whichever log's
 * oldest row is older — whatever their age. The admin audit log is the security trail: it is
 * pruned by its age only, never for size; when it alone keeps the database over the ceiling the
 * run stops there (`over` in the result of the run says so, and `doctor` warns).
 */
export function nextPruneStep(view: PruneView, c: Cutoffs, policy: RetentionPolicy, ceiling: boolean): PruneStep | null {
  for (const target of RETAINED_LOGS) {
    const oldest = view.oldest[target];
    const before = c[target];
    if (oldest !== null && oldest < before) return { target, before, reason: 'age' };
  }
  if (view.oldTokenDays) return { target: 'tokenDays', beforeDay: c.tokenDays, reason: 'age' };
  const limit = ceiling ? policy.maxDatabaseBytes * CEILING_TARGET : policy.maxDatabaseBytes;
  if (view.usedBytes <= limit) return null;
  const r = view.oldest.requests;
  const e = view.oldest.connections;
  if (r === null && e === null) return null;
  const target: RetainedLog = e === null || (r !== null && r <= e) ? 'requests' : 'connections';
  return { target, before: Number.MAX_SAFE_INTEGER, reason: 'ceiling' };
}

/** Whether a size is at or above the warning share of the ceiling. */
export function nearCeiling(bytes: number, maxDatabaseBytes: number): boolean {
  return bytes >= maxDatabaseBytes * CEILING_WARN;
}

/**
 * Rows per batch after a batch that held the write lock `heldMs` for `rows` rows: sized so the
 * next hold is about `targetMs`, changing by at most ×2 at a time, within [min, max].
 */
export function nextBatchSize(current: number, heldMs: number, o: { targetMs: number; min: number; max: number }): number {
  const want = heldMs <= 0 ? current * 2 : Math.round((current * o.targetMs) / heldMs);
  const step = Math.min(current * 2, Math.max(Math.floor(current / 2), want));
  return Math.min(o.max, Math.max(o.min, step));
}
