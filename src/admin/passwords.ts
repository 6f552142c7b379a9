import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { badInput } from '../errors.js';

/**
 * Admin passwords: scrypt (memory-hard) with a random 16-byte salt, stored as
 * `scrypt$N$r$p$salt$hash` (base64) so the cost can be raised later without
 * invalidating old hashes. Passwords are NFKC-normalised first (NIST SP
 * 800-63B), so the same Unicode password typed on two keyboards matches.
 */
const N = 1 << 15;
const R = 8;
const P = 1;
const KEY_LEN = 32;
const SALT_LEN = 16;
const MAXMEM = 128 * N * R * 2;

export const PASSWORD_MIN = 12;
/** Characters after normalisation: long passphrases are fine, megabytes are not. */
export const PASSWORD_MAX = 1024;

function derive(password: string, salt: Buffer, o: ScryptOptions & { keylen: number }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, o.keylen, { N: o.N, r: o.r, p: o.p, maxmem: MAXMEM }, (e, key) => (e ? reject(e) : resolve(key)));
  });
}

/** Throws BAD_INPUT naming the rule a new password breaks. */
export function checkNewPassword(password: unknown): string {
  if (typeof password !== 'string') throw badInput('password is required');
  const p = password.normalize('NFKC');
  const length = [...p].length;
  if (length < PASSWORD_MIN) throw badInput(`password must be at least ${PASSWORD_MIN} characters long`);
  if (length > PASSWORD_MAX) throw badInput(`password must be at most ${PASSWORD_MAX} characters long`);
  // \p{Cc}: C0, DEL and C1 (U+0085 is a line break too).
  if (/\p{Cc}/u.test(p)) throw badInput('password must not contain control characters (line breaks, tabs)');
  return password;
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_LEN);
  const key = await derive(password, salt, { N, r: R, p: P, keylen: KEY_LEN });
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Constant-time comparison; false for a malformed hash rather than an exception. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(stored);
  if (!m || typeof password !== 'string' || password.length > PASSWORD_MAX * 4) return false;
  const [n, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (n !== N || r !== R || p !== P) return false;
  const salt = Buffer.from(m[4]!, 'base64');
  const expected = Buffer.from(m[5]!, 'base64');
  // Only full-length keys: an empty or truncated one would match any password, or one in 256.
  if (salt.length < SALT_LEN || expected.length !== KEY_LEN) return false;
  const key = await derive(password, salt, { N: n, r, p, keylen: KEY_LEN });
  return timingSafeEqual(key, expected);
}

/** A hash of nothing anyone knows: checked against for unknown names, so they cost the same time. */
export const DUMMY_HASH_PROMISE: () => Promise<string> = (() => {
  let h: Promise<string> | null = null;
  return () => (h ??= hashPassword(randomBytes(24).toString('base64')));
})();
