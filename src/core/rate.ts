/**
 * Request-rate arithmetic for the guard: a per-key token bucket and the UTC
 * day boundaries of the token budget. The clock is always passed in (ms).
 */

/** A key not used for this long is forgotten (its bucket would be refilled or nearly so). */
const IDLE_MS = 10 * 60_000;

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date. */
  at: number;
  lastUsed: number;
}

export interface RateLimiter {
  /** Consumes one token for `key`, or says how many seconds until one is available (≥ 1). */
  take(key: string, ratePerMin: number, burst: number, now: number): { ok: true } | { ok: false; retryAfterSec: number };
  /** Keys currently held. */
  size(): number;
}

/**
 * Per-key token bucket: `burst` tokens, refilled at `ratePerMin`. A new key
 * starts full. Rate and burst are read on every call, so a policy change
 * applies at once. Keys unused for more than 10 minutes are dropped on the
 * next call, so memory stays bounded by the keys active in that window.
 */
export function createRateLimiter(): RateLimiter {
  // Map iteration order is insertion order; re-inserting on use keeps it
  // ordered by last use, so expiry only ever looks at the front.
  const buckets = new Map<string, Bucket>();

  function expire(now: number): void {
    for (const [key, b] of buckets) {
      if (now - b.lastUsed <= IDLE_MS) break;
      buckets.delete(key);
    }
  }

  return {
    take(key, ratePerMin, burst, now) {
      expire(now);
      const size = Math.max(1, burst);
      const perMs = Math.max(ratePerMin, Number.MIN_VALUE) / 60_000;
      let b = buckets.get(key);
      if (b) {
        buckets.delete(key);
        // A clock that stepped back refills nothing rather than draining.
        b.tokens = Math.min(size, b.tokens + Math.max(0, now - b.at) * perMs);
        b.at = Math.max(b.at, now);
      } else {
        b = { tokens: size, at: now, lastUsed: now };
      }
      b.lastUsed = Math.max(b.lastUsed, now);
      buckets.set(key, b);
      if (b.tokens >= 1) {
        b.tokens -= 1;
        return { ok: true };
      }
      return { ok: false, retryAfterSec: Math.max(1, Math.ceil((1 - b.tokens) / perMs / 1000 - 1e-9)) };
    },
    size: () => buckets.size,
  };
}

/** The UTC day of `now` (ms) as 'YYYY-MM-DD': the key of the daily token budget. */
export function utcDay(now: number): string {
  return new Date(now).toISOString().slice(0, 10);
}

/** Seconds until the next UTC midnight (≥ 1): Retry-After for an exhausted budget. */
export function secondsUntilUtcMidnight(now: number): number {
  const d = new Date(now);
  const next = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
  return Math.max(1, Math.ceil((next - now) / 1000));
}
