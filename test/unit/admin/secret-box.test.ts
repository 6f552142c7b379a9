import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createSecretBox, loadAdminKey } from '../../../src/admin/secret-box.js';
import { expectWgoError } from '../../support/errors.js';

const SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';

/** Replaces part `i` of a `v1.iv.tag.ct` string with `f(bytes)`. */
function alter(sealed: string, i: number, f: (b: Buffer) => Buffer): string {
  const parts = sealed.split('.');
  parts[i] = f(Buffer.from(parts[i]!, 'base64url')).toString('base64url');
  return parts.join('.');
}
const flipFirstBit = (b: Buffer): Buffer => {
  const c = Buffer.from(b);
  c[0] = c[0]! ^ 1;
  return c;
};

describe('createSecretBox', () => {
  const box = createSecretBox(randomBytes(32));

  test('seal/open round trip; the sealed text does not contain the secret and differs each time', () => {
    const a = box.seal(SECRET, 'alice');
    const b = box.seal(SECRET, 'alice');
    expect(a).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]+$/);
    expect(a).not.toContain(SECRET);
    expect(a).not.toBe(b);
    expect(box.open(a, 'alice')).toBe(SECRET);
    expect(box.open(b, 'alice')).toBe(SECRET);
    expect(box.open(box.seal('', 'x'), 'x')).toBe('');
    expect(box.open(box.seal('ünïcødé ✓', 'bob'), 'bob')).toBe('ünïcødé ✓');
  });

  test('tag: the same text gives the same 64-hex tag under one key, another under another key, and is not a plain SHA-256', () => {
    const t = box.tag('hunter2-password');
    expect(t).toMatch(/^[0-9a-f]{64}$/);
    expect(box.tag('hunter2-password')).toBe(t);
    expect(box.tag('hunter2-passwore')).not.toBe(t);
    expect(createSecretBox(randomBytes(32)).tag('hunter2-password')).not.toBe(t);
    expect(t).not.toBe(createHash('sha256').update('hunter2-password').digest('hex'));
  });

  test('another context (admin name) does not open it: a sealed secret copied onto another account fails', () => {
    const sealed = box.seal(SECRET, 'alice');
    expect(expectWgoError(() => box.open(sealed, 'bob'), 'INTERNAL').message).toMatch(/does not open/);
    expectWgoError(() => box.open(sealed, 'alice '), 'INTERNAL');
    expectWgoError(() => box.open(sealed, ''), 'INTERNAL');
  });

  test('tampered ciphertext, tag or IV fails', () => {
    const sealed = box.seal(SECRET, 'alice');
    for (const part of [1, 2, 3]) expectWgoError(() => box.open(alter(sealed, part, flipFirstBit), 'alice'), 'INTERNAL');
    // one byte more or less of ciphertext
    expectWgoError(() => box.open(alter(sealed, 3, (b) => b.subarray(0, -1)), 'alice'), 'INTERNAL');
    expectWgoError(() => box.open(alter(sealed, 3, (b) => Buffer.concat([b, Buffer.of(0)])), 'alice'), 'INTERNAL');
  });

  test('a truncated authentication tag is refused (a 4-byte tag would be forged in 2^32 tries)', () => {
    const sealed = box.seal(SECRET, 'alice');
    for (const n of [4, 8, 12, 15]) expectWgoError(() => box.open(alter(sealed, 2, (b) => b.subarray(0, n)), 'alice'), 'INTERNAL');
  });

  test('the wrong key fails', () => {
    const sealed = box.seal(SECRET, 'alice');
    expectWgoError(() => createSecretBox(randomBytes(32)).open(sealed, 'alice'), 'INTERNAL');
  });

  test('malformed sealed text is INTERNAL, not a crash of another kind', () => {
    for (const s of ['', 'v1', 'v1.a.b', 'v2.a.b.c', `${box.seal(SECRET, 'a')}.x`, 'plain-secret']) {
      expectWgoError(() => box.open(s, 'a'), 'INTERNAL');
    }
  });

  test('a key that is not 32 bytes is refused', () => {
    for (const n of [0, 16, 31, 33]) expectWgoError(() => createSecretBox(randomBytes(n)), 'INTERNAL');
  });
});

describe('loadAdminKey', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wgo-adminkey-'));
    path = join(dir, 'admin.key');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('create=true makes a 0600 file of 64 hex characters, and nothing else in the directory', () => {
    const key = loadAdminKey(path, true);
    expect(key).toHaveLength(32);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
    expect(readFileSync(path, 'utf8').trim()).toBe(key.toString('hex'));
    expect(readdirSync(dir)).toEqual(['admin.key']);
  });

  test('a second call (create or not) returns the same key and leaves the file alone', () => {
    const first = loadAdminKey(path, true);
    const text = readFileSync(path, 'utf8');
    expect(loadAdminKey(path, true).equals(first)).toBe(true);
    expect(loadAdminKey(path, false).equals(first)).toBe(true);
    expect(readFileSync(path, 'utf8')).toBe(text);
    expect(readdirSync(dir)).toEqual(['admin.key']);
    // and what one box sealed, a box from the reloaded key opens
    expect(createSecretBox(loadAdminKey(path, false)).open(createSecretBox(first).seal(SECRET, 'alice'), 'alice')).toBe(SECRET);
  });

  test('create=false on a missing file is NOT_INITIALIZED and creates nothing', () => {
    expect(expectWgoError(() => loadAdminKey(path, false), 'NOT_INITIALIZED').message).toContain(path);
    expect(existsSync(path)).toBe(false);
  });

  test.each([
    ['not hex', 'z'.repeat(64)],
    ['too short', 'ab'.repeat(31)],
    ['too long', 'ab'.repeat(33)],
    ['upper case', 'AB'.repeat(32)],
    ['empty', ''],
    ['two keys', `${'ab'.repeat(32)}\n${'cd'.repeat(32)}`],
  ])('a malformed key file (%s) is CONFIG_INVALID, with create or without, and is not replaced', (_what, text) => {
    writeFileSync(path, text, { mode: 0o600 });
    for (const create of [false, true]) expectWgoError(() => loadAdminKey(path, create), 'CONFIG_INVALID');
    expect(readFileSync(path, 'utf8')).toBe(text);
  });

  test('surrounding whitespace is fine (an editor may add a newline)', () => {
    const hex = randomBytes(32).toString('hex');
    writeFileSync(path, `  ${hex}\n\n`, { mode: 0o600 });
    expect(loadAdminKey(path, false).toString('hex')).toBe(hex);
  });

  test('a key file that cannot be read is NOT_INITIALIZED', () => {
    // A directory where the file should be: unreadable as a file even for root.
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    expectWgoError(() => loadAdminKey(sub, true), 'NOT_INITIALIZED');
  });
});
