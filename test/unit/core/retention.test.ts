import { describe, expect, test } from 'vitest';
import { cutoffs, nearCeiling, nextBatchSize, nextPruneStep, retentionPolicy } from '../../../src/core/retention.js';
import { expectWgoError } from '../../support/errors.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 15, 12);
const policy = retentionPolicy({ requests: '90d', connections: '30d', audit: '400d', maxDatabaseBytes: 1000 });
const c = cutoffs(policy, NOW);
const view = (o: Partial<{ usedBytes: number; requests: number | null; connections: number | null; audit: number | null; oldTokenDays: boolean }>) => ({
  usedBytes: o.usedBytes ?? 0,
  oldest: { requests: o.requests ?? null, connections: o.connections ?? null, audit: o.audit ?? null },
  oldTokenDays: o.oldTokenDays ?? false,
});

describe('retention plan', () => {
  test('cutoffs: each age back from now; token days before the requests cutoff day (never today)', () => {
    expect(c).toEqual({ requests: NOW - 90 * DAY, connections: NOW - 30 * DAY, audit: NOW - 400 * DAY, tokenDays: '2026-03-17' });
    expect(cutoffs(retentionPolicy({ requests: '1d', connections: '1d', audit: '1d', maxDatabaseBytes: 1 }), NOW).tokenDays).toBe('2026-06-14');
  });

  test('age first, log by log, then the token days; nothing when all is young and under the ceiling', () => {
    expect(nextPruneStep(view({ requests: NOW - 91 * DAY, audit: NOW - 500 * DAY }), c, policy, false)).toEqual({ target: 'requests', before: c.requests, reason: 'age' });
    expect(nextPruneStep(view({ requests: NOW - 89 * DAY, audit: NOW - 500 * DAY }), c, policy, false)).toEqual({ target: 'audit', before: c.audit, reason: 'age' });
    expect(nextPruneStep(view({ connections: NOW - 31 * DAY }), c, policy, false)).toMatchObject({ target: 'connections' });
    expect(nextPruneStep(view({ oldTokenDays: true }), c, policy, false)).toEqual({ target: 'tokenDays', beforeDay: '2026-03-17', reason: 'age' });
    expect(nextPruneStep(view({ requests: NOW - DAY, connections: NOW - DAY, audit: NOW - DAY, usedBytes: 1000 }), c, policy, false)).toBeNull();
  });

  test('over the ceiling: the older of requests and events, any age; once started, down to 90 %; audit never', () => {
    expect(nextPruneStep(view({ usedBytes: 1001, requests: NOW - 2 * DAY, connections: NOW - DAY }), c, policy, false)).toEqual({ target: 'requests', before: Number.MAX_SAFE_INTEGER, reason: 'ceiling' });
    expect(nextPruneStep(view({ usedBytes: 1001, requests: NOW - DAY, connections: NOW - 2 * DAY }), c, policy, false)).toMatchObject({ target: 'connections', reason: 'ceiling' });
    expect(nextPruneStep(view({ usedBytes: 950, requests: NOW - DAY }), c, policy, false)).toBeNull();
    expect(nextPruneStep(view({ usedBytes: 950, requests: NOW - DAY }), c, policy, true)).toMatchObject({ target: 'requests', reason: 'ceiling' });
    expect(nextPruneStep(view({ usedBytes: 900, requests: NOW - DAY }), c, policy, true)).toBeNull();
    expect(nextPruneStep(view({ usedBytes: 5000, audit: NOW - DAY }), c, policy, true)).toBeNull();
  });

  test('near the ceiling from 80 %', () => {
    expect(nearCeiling(799, 1000)).toBe(false);
    expect(nearCeiling(800, 1000)).toBe(true);
  });

  test('batch size follows the measured hold, at most ×2 or ÷2 a step, within bounds', () => {
    const o = { targetMs: 5, min: 50, max: 20_000 };
    expect(nextBatchSize(1000, 5, o)).toBe(1000);
    expect(nextBatchSize(1000, 2.5, o)).toBe(2000);
    expect(nextBatchSize(1000, 0.1, o)).toBe(2000);
    expect(nextBatchSize(1000, 0, o)).toBe(2000);
    expect(nextBatchSize(1000, 10, o)).toBe(500);
    expect(nextBatchSize(1000, 100, o)).toBe(500);
    expect(nextBatchSize(60, 100, o)).toBe(50);
    expect(nextBatchSize(15_000, 1, o)).toBe(20_000);
  });

  test('a bad age names its field', () => {
    expect(expectWgoError(() => retentionPolicy({ requests: '90x', connections: '30d', audit: '400d', maxDatabaseBytes: 1 }), 'BAD_INPUT').message).toContain('retention.requests');
  });
});
