import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { pskStore } from '../../../src/gateway/psk-store.js';
import { isWgoError } from '../../../src/errors.js';

let root: string;
let dir: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'wgo-psk-'));
  dir = join(root, 'psk');
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const KEY = Buffer.alloc(32, 9).toString('base64');

describe('pskStore', () => {
  test('write creates a 0700 directory and a 0600 file named by a random reference', () => {
    const s = pskStore(dir);
    const ref = s.write(KEY);
    expect(ref).toMatch(/^[0-9a-f]{24}$/);
    expect(s.path(ref)).toBe(join(dir, `${ref}.psk`));
    expect(readFileSync(s.path(ref), 'utf8')).toBe(KEY + '\n');
    expect(statSync(s.path(ref)).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readdirSync(dir)).toEqual([`${ref}.psk`]);
    expect(s.write(KEY)).not.toBe(ref);
  });

  test('read returns the key; remove deletes it and is idempotent', () => {
    const s = pskStore(dir);
    const ref = s.write(KEY);
    expect(s.read(ref)).toBe(KEY);
    s.remove(ref);
    s.remove(ref);
    expect(existsSync(s.path(ref))).toBe(false);
    let err: unknown;
    try {
      s.read(ref);
    } catch (e) {
      err = e;
    }
    expect(isWgoError(err, 'NOT_INITIALIZED')).toBe(true);
  });

  test('prune removes only unreferenced key files that pass the age test', () => {
    const s = pskStore(dir);
    const keep = s.write(KEY);
    const young = s.write(KEY);
    const orphan = s.write(KEY);
    writeFileSync(join(dir, 'notes.txt'), 'x');
    const removed = s.prune(new Set([keep]), (ref) => ref !== young);
    expect(removed).toBe(1);
    expect(readdirSync(dir).sort()).toEqual([`${keep}.psk`, `${young}.psk`, 'notes.txt'].sort());
    expect(existsSync(s.path(orphan))).toBe(false);
  });

  test('prune of a missing directory removes nothing', () => {
    expect(pskStore(join(root, 'nope')).prune(new Set())).toBe(0);
  });
});
