import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { bearerToken, createFailureLimiter, generateApiToken, isApiToken, tokenHash } from '../../../src/core/api-token.js';

describe('API tokens', () => {
  test('a token is wgo_ and 32 random bytes in base64url; no two alike', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const t = generateApiToken();
      expect(t).toMatch(/^wgo_[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(t.slice(4), 'base64url')).toHaveLength(32);
      seen.add(t);
    }
    expect(seen.size).toBe(200);
  });

  test('the stored form is the SHA-256 of the whole token text, in hex', () => {
    const t = 'wgo_' + 'A'.repeat(43);
    expect(tokenHash(t)).toBe(createHash('sha256').update(t).digest('hex'));
    expect(tokenHash(t)).not.toBe(tokenHash('wgo_' + 'A'.repeat(42) + 'B'));
  });

  test.each([
    ['wgo_' + 'a'.repeat(43), true],
    ['wgo_' + 'a'.repeat(42), false],
    ['wgo_' + 'a'.repeat(44), false],
    ['WGO_' + 'a'.repeat(43), false],
    ['wgo_' + 'a'.repeat(42) + '=', false],
    ['wgo_' + 'a'.repeat(42) + '+', false],
    ['', false],
  ])('isApiToken(%j) = %s', (text, ok) => {
    expect(isApiToken(text)).toBe(ok);
  });
});

describe('bearerToken', () => {
  const t = generateApiToken();
  test.each<[string | string[] | undefined, ReturnType<typeof bearerToken>]>([
    [undefined, null],
    [`Bearer ${t}`, { token: t }],
    [`bearer ${t}`, { token: t }],
    [`Bearer  ${t} `, { token: t }],
    [`Basic ${t}`, { malformed: true }],
    [`Bearer ${t} extra`, { malformed: true }],
    [`Bearer ${t.slice(0, -1)}`, { malformed: true }],
    ['Bearer sk-1234', { malformed: true }],
    ['Bearer', { malformed: true }],
    [t, { malformed: true }],
    [[`Bearer ${t}`, `Bearer ${t}`], { malformed: true }],
  ])('%j', (header, expected) => {
    expect(bearerToken(header)).toEqual(expected);
  });
});

describe('createFailureLimiter', () => {
  const T = 1_000_000;
  test('allows max failures per window from the first one, then refuses until the window ends', () => {
    const l = createFailureLimiter({ max: 3, windowMs: 60_000 });
    expect(l.check('a', T)).toEqual({ ok: true });
    l.fail('a', T);
    l.fail('a', T + 1000);
    expect(l.check('a', T + 2000)).toEqual({ ok: true });
    l.fail('a', T + 2000);
    expect(l.check('a', T + 2000)).toEqual({ ok: false, retryAfterSec: 58 });
    expect(l.check('a', T + 59_500)).toEqual({ ok: false, retryAfterSec: 1 });
    // Other keys are untouched.
    expect(l.check('b', T + 2000)).toEqual({ ok: true });
    // The window is over: a fresh start.
    expect(l.check('a', T + 60_000)).toEqual({ ok: true });
    l.fail('a', T + 60_000);
    expect(l.check('a', T + 60_001)).toEqual({ ok: true });
  });

  test('windows that ended are forgotten, and at most maxKeys are held (oldest first)', () => {
    const l = createFailureLimiter({ max: 1, windowMs: 1000, maxKeys: 3 });
    for (const k of ['a', 'b', 'c']) l.fail(k, T);
    expect(l.size()).toBe(3);
    l.fail('d', T + 1);
    expect(l.size()).toBe(3);
    expect(l.check('a', T + 2)).toEqual({ ok: true });
    expect(l.check('d', T + 2)).toMatchObject({ ok: false });
    expect(l.check('x', T + 5000)).toEqual({ ok: true });
    expect(l.size()).toBe(0);
  });
});
