/**
 * Peer-bound API tokens as values: their text form, their hash, the
 * Authorization header that carries one, and the limiter for failed attempts.
 * The clock is always passed in (ms).
 */
import { createHash, randomBytes } from 'node:crypto';

/** `wgo_` and 32 random bytes in base64url (43 characters): 256 bits, recognisable in a secret scanner. */
const TOKEN_RE = /^wgo_[A-Za-z0-9_-]{43}$/;

/** A new token: 32 bytes from the CSPRNG. Shown once; only tokenHash() of it is kept. */
export function generateApiToken(): string {
  return `wgo_${randomBytes(32).toString('base64url')}`;
}

/** SHA-256 (lowercase hex) of the token text. A 256-bit random secret needs no slow hash. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function isApiToken(text: string): boolean {
  return TOKEN_RE.test(text);
}

/**
 * The token in an Authorization header: `{token}` for `Bearer wgo_…`,
 * `{malformed: true}` for anything else (another scheme, several headers,
 * a value that cannot be one of our tokens), null when there is no header.
 */
export function bearerToken(header: string | string[] | undefined): { token: string } | { malformed: true } | null {
  if (header === undefined) return null;
  if (Array.isArray(header)) return { malformed: true };
  const m = /^Bearer +(\S+) *$/i.exec(header);
  if (!m || !isApiToken(m[1]!)) return { malformed: true };
  return { token: m[1]! };
}

export interface FailureLimiter {
  /** Whether `key` may try now; when not, the seconds until it may (≥ 1). */
  check(key: string, now: number): { ok: true } | { ok: false; retryAfterSec: number };
  /** Counts one failure for `key`. */
  fail(key: string, now: number): void;
  /** Keys currently held. */
  size(): number;
}

/**
 * At most `max` failures per key in a fixed window of `windowMs` that starts
 * at the key's first failure; once reached, the key is refused until the
 * window ends. A success does not reset it (so guesses cannot be interleaved
 * with a good token). At most `maxKeys` keys are held: the oldest window is
 * forgotten first, and windows that ended are dropped on every call.
 */
export function createFailureLimiter(o: { max: number; windowMs: number; maxKeys?: number }): FailureLimiter {
  const maxKeys = o.maxKeys ?? 10_000;
  // Insertion order = window start order: expiry only ever looks at the front.
  const windows = new Map<string, { start: number; failures: number }>();
  const expire = (now: number): void => {
    for (const [key, w] of windows) {
      if (now - w.start < o.windowMs && now >= w.start) break;
      windows.delete(key);
    }
  };
  return {
    check(key, now) {
      expire(now);
      const w = windows.get(key);
      if (!w || w.failures < o.max) return { ok: true };
      return { ok: false, retryAfterSec: Math.max(1, Math.ceil((w.start + o.windowMs - now) / 1000)) };
    },
    fail(key, now) {
      expire(now);
      const w = windows.get(key);
      if (w) {
        w.failures++;
        return;
      }
      if (windows.size >= maxKeys) windows.delete(windows.keys().next().value!);
      windows.set(key, { start: now, failures: 1 });
    },
    size: () => windows.size,
  };
}
