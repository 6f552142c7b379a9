import { describe, expect, test } from 'vitest';
import { createRateLimiter, secondsUntilUtcMidnight, utcDay } from '../../../../src/core/rate.js';

const T0 = Date.UTC(2025, 0, 15, 12, 0, 0);

describe('createRateLimiter', () => {
  test('a new key gets the whole burst, then waits for the refill', () => {
    const r = createRateLimiter();
    for (let i = 0; i < 5; i++) expect(r.take('a', 60, 5, T0)).toEqual({ ok: true });
    // 60/min = one token a second.
    expect(r.take('a', 60, 5, T0)).toEqual({ ok: false, retryAfterSec: 1 });
    expect(r.take('a', 60, 5, T0 + 999)).toEqual({ ok: false, retryAfterSec: 1 });
    expect(r.take('a', 60, 5, T0 + 1000)).toEqual({ ok: true });
    expect(r.take('a', 60, 5, T0 + 1000)).toMatchObject({ ok: false });
  });

  test.each<[number, number, number]>([
    // ratePerMin, ms after the burst is spent, expected Retry-After
    [6, 0, 10],
    [6, 4000, 6],
    [6, 9001, 1],
    [1, 0, 60],
    [600, 0, 1],
  ])('rate %i/min, %i ms later: Retry-After %i', (rate, later, retry) => {
    const r = createRateLimiter();
    expect(r.take('k', rate, 1, T0)).toEqual({ ok: true });
    expect(r.take('k', rate, 1, T0 + later)).toEqual({ ok: false, retryAfterSec: retry });
  });

  test('refill never exceeds the burst', () => {
    const r = createRateLimiter();
    r.take('a', 60, 3, T0);
    const later = T0 + 5 * 60_000;
    const results = Array.from({ length: 5 }, () => r.take('a', 60, 3, later).ok);
    expect(results).toEqual([true, true, true, false, false]);
  });

  test('keys are independent', () => {
    const r = createRateLimiter();
    expect(r.take('a', 60, 1, T0).ok).toBe(true);
    expect(r.take('a', 60, 1, T0).ok).toBe(false);
    expect(r.take('b', 60, 1, T0).ok).toBe(true);
  });

  test('a smaller burst from a policy change applies at once', () => {
    const r = createRateLimiter();
    r.take('a', 60, 100, T0);
    expect(r.take('a', 60, 1, T0 + 1).ok).toBe(true);
    expect(r.take('a', 60, 1, T0 + 2).ok).toBe(false);
  });

  test('a clock that steps back neither refills nor breaks the bucket', () => {
    const r = createRateLimiter();
    r.take('a', 60, 1, T0);
    expect(r.take('a', 60, 1, T0 - 60_000)).toMatchObject({ ok: false });
    expect(r.take('a', 60, 1, T0 + 1000)).toEqual({ ok: true });
  });

  test('keys unused for more than 10 minutes are dropped: memory stays bounded', () => {
    const r = createRateLimiter();
    for (let i = 0; i < 1000; i++) r.take(`k${i}`, 60, 5, T0 + i);
    expect(r.size()).toBe(1000);
    r.take('k999', 60, 5, T0 + 5 * 60_000);
    expect(r.size()).toBe(1000);
    r.take('fresh', 60, 5, T0 + 10 * 60_000 + 500);
    // k0..k499 were last used more than 10 minutes before; k500.. and k999 were not.
    expect(r.size()).toBe(501);
    r.take('fresh', 60, 5, T0 + 14 * 60_000);
    // k999 was used at +5 min, fresh just now; k500..k998 (+0 min) are gone.
    expect(r.size()).toBe(2);
    r.take('fresh', 60, 5, T0 + 30 * 60_000);
    expect(r.size()).toBe(1);
  });

  test('a steady stream of new keys never grows past the 10-minute window', () => {
    const r = createRateLimiter();
    let max = 0;
    for (let i = 0; i < 5000; i++) {
      r.take(`k${i}`, 60, 1, T0 + i * 1000);
      max = Math.max(max, r.size());
    }
    expect(max).toBe(601);
  });
});

describe('UTC days', () => {
  test.each<[number, string, number]>([
    [Date.UTC(2025, 0, 15, 12, 0, 0), '2025-01-15', 12 * 3600],
    [Date.UTC(2025, 0, 15, 23, 59, 59, 500), '2025-01-15', 1],
    [Date.UTC(2025, 0, 15, 23, 59, 59, 999), '2025-01-15', 1],
    [Date.UTC(2025, 0, 16, 0, 0, 0, 0), '2025-01-16', 86_400],
    [Date.UTC(2024, 1, 28, 23, 0, 0), '2024-02-28', 3600],
    [Date.UTC(2024, 11, 31, 23, 30, 0), '2024-12-31', 1800],
  ])('%i: day %s, %i s to midnight', (now, day, secs) => {
    expect(utcDay(now)).toBe(day);
    expect(secondsUntilUtcMidnight(now)).toBe(secs);
  });
});
