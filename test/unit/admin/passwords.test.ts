import { describe, expect, test } from 'vitest';
import { checkNewPassword, DUMMY_HASH_PROMISE, hashPassword, PASSWORD_MAX, PASSWORD_MIN, verifyPassword } from '../../../src/admin/passwords.js';
import { expectWgoError } from '../../support/errors.js';

// scrypt costs ~50-100 ms a call here: each test hashes once or twice.
const GOOD = 'correct horse battery staple';

describe('hashPassword / verifyPassword', () => {
  test('round trip: the right password verifies, a wrong one (or a near miss) does not', async () => {
    const h = await hashPassword(GOOD);
    expect(h).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
    expect(h).not.toContain(GOOD);
    expect(await verifyPassword(GOOD, h)).toBe(true);
    expect(await verifyPassword('correct horse battery stapl', h)).toBe(false);
    expect(await verifyPassword(GOOD + ' ', h)).toBe(false);
  });

  test('two hashes of one password differ (random salt) and both verify', async () => {
    const [a, b] = await Promise.all([hashPassword(GOOD), hashPassword(GOOD)]);
    expect(a).not.toBe(b);
    expect(a.split('$')[4]).not.toBe(b.split('$')[4]);
    expect(await verifyPassword(GOOD, b)).toBe(true);
  });

  test('a 1024-character password is accepted and verifies; one character less does not', async () => {
    const long = 'x'.repeat(PASSWORD_MAX - 1) + 'y';
    expect(checkNewPassword(long)).toBe(long);
    const h = await hashPassword(long);
    expect(await verifyPassword(long, h)).toBe(true);
    expect(await verifyPassword(long.slice(0, -1), h)).toBe(false);
  });

  test('Unicode passwords round trip', async () => {
    const p = 'pässwörd 日本語 🔑 ключ';
    expect(checkNewPassword(p)).toBe(p);
    const h = await hashPassword(p);
    expect(await verifyPassword(p, h)).toBe(true);
    expect(await verifyPassword('passwörd 日本語 🔑 ключ', h)).toBe(false);
  });

  test('NFKC: the "ﬁ" ligature matches "fi", and composed é matches e + combining accent', async () => {
    const ligature = 'pro\uFB01le-secret-12';
    const plain = 'profile-secret-12';
    const composed = 'caf\u00e9-au-lait-42';
    const decomposed = 'cafe\u0301-au-lait-42';
    expect(ligature).not.toBe(plain);
    expect(composed).not.toBe(decomposed);
    const [h1, h2] = await Promise.all([hashPassword(ligature), hashPassword(decomposed)]);
    expect(await verifyPassword(plain, h1)).toBe(true);
    expect(await verifyPassword(composed, h2)).toBe(true);
  });

  test('a malformed or foreign stored hash is false, never an exception', async () => {
    const real = await hashPassword(GOOD);
    const [, n, r, p, salt, key] = real.split('$');
    const bad = [
      '',
      'garbage',
      '$2b$12$abcdefghijklmnopqrstuuD1rz3O8b7aJm0Zk7bG9J6u3v1bO5a2',
      `scrypt$${n}$${r}$${p}$${salt}`,
      `scrypt$16384$${r}$${p}$${salt}$${key}`, // another cost: not ours
      `scrypt$${n}$${r}$${p}$${salt}$${key}$extra`,
      `scrypt$${n}$${r}$${p}$${salt}$not base64!`,
      // An empty key would compare equal to an empty derived key for any password.
      `scrypt$${n}$${r}$${p}$${salt}$=`,
      // A truncated key would be compared on its few bytes only.
      `scrypt$${n}$${r}$${p}$${salt}$${Buffer.from(key!, 'base64').subarray(0, 1).toString('base64')}`,
      `scrypt$${n}$${r}$${p}$=$${key}`,
      real.replace('scrypt', 'SCRYPT'),
    ];
    for (const stored of bad) {
      await expect(verifyPassword(GOOD, stored), stored).resolves.toBe(false);
    }
    await expect(verifyPassword(undefined as unknown as string, real)).resolves.toBe(false);
    await expect(verifyPassword(GOOD, null as unknown as string)).resolves.toBe(false);
  });
});

describe('checkNewPassword', () => {
  test('returns a good password unchanged', () => {
    expect(checkNewPassword(GOOD)).toBe(GOOD);
    expect(checkNewPassword('a'.repeat(PASSWORD_MIN))).toBe('a'.repeat(PASSWORD_MIN));
  });

  test('too short is BAD_INPUT (counted in characters, not UTF-16 units)', () => {
    expect(expectWgoError(() => checkNewPassword('a'.repeat(PASSWORD_MIN - 1)), 'BAD_INPUT').message).toMatch(/at least 12/);
    expectWgoError(() => checkNewPassword(''), 'BAD_INPUT');
    // 11 emoji are 22 UTF-16 units but 11 characters
    expectWgoError(() => checkNewPassword('🔑'.repeat(PASSWORD_MIN - 1)), 'BAD_INPUT');
    expect(checkNewPassword('🔑'.repeat(PASSWORD_MIN))).toBe('🔑'.repeat(PASSWORD_MIN));
  });

  test('too long is BAD_INPUT', () => {
    expect(expectWgoError(() => checkNewPassword('a'.repeat(PASSWORD_MAX + 1)), 'BAD_INPUT').message).toMatch(/at most 1024/);
    expect(checkNewPassword('🔑'.repeat(PASSWORD_MAX))).toHaveLength(2 * PASSWORD_MAX);
    expectWgoError(() => checkNewPassword('🔑'.repeat(PASSWORD_MAX + 1)), 'BAD_INPUT');
  });

  test('lengths are measured after NFKC: six "ﬁ" ligatures are twelve characters', () => {
    expect(checkNewPassword('\uFB01'.repeat(6))).toBe('\uFB01'.repeat(6));
    expectWgoError(() => checkNewPassword('\uFB01'.repeat(5)), 'BAD_INPUT');
  });

  test.each([
    ['a line feed', 'password-with\nnewline'],
    ['a carriage return', 'password-with\rreturn'],
    ['a tab', 'password\twith-tab'],
    ['NUL', 'password-with\u0000nul'],
    ['DEL', 'password-with\u007fdel'],
    ['ESC', 'password-with\u001b[31m'],
    ['a C1 control (NEL, a line break)', 'password-with\u0085nel'],
  ])('%s is BAD_INPUT', (_what, p) => {
    expect(expectWgoError(() => checkNewPassword(p), 'BAD_INPUT').message).toMatch(/control characters/);
  });

  test('a non-string is BAD_INPUT', () => {
    for (const p of [undefined, null, 123456789012, ['a'.repeat(12)]]) expectWgoError(() => checkNewPassword(p), 'BAD_INPUT');
  });
});

describe('DUMMY_HASH_PROMISE', () => {
  test('one well-formed hash, computed once, that no empty or common password matches', async () => {
    const a = await DUMMY_HASH_PROMISE();
    expect(await DUMMY_HASH_PROMISE()).toBe(a);
    expect(a).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(await verifyPassword('', a)).toBe(false);
  });
});
