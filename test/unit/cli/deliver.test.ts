import { existsSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { outFiles, preflightOut, writeOut } from '../../../src/cli/deliver.js';

const CONFIG = '[Interface]\nPrivateKey = x\n';

describe('--out delivery', () => {
  it('preflight creates nothing, even for a directory that does not exist yet', () => {
    const base = mkdtempSync(join(tmpdir(), 'wgo-out-'));
    const dir = join(base, 'a', 'b');
    expect(preflightOut(dir, 'alice')).toBe(dir);
    expect(existsSync(join(base, 'a'))).toBe(false);
  });

  it('preflight refuses a file in the way and existing target files', () => {
    const base = mkdtempSync(join(tmpdir(), 'wgo-out-'));
    writeFileSync(join(base, 'file'), '');
    expect(() => preflightOut(join(base, 'file', 'x'), 'alice')).toThrow(/not a directory/);
    writeFileSync(outFiles(base, 'alice').png, '');
    expect(() => preflightOut(base, 'alice')).toThrow(/already exists/);
  });

  it('writes the three files 0600 into a new 0700 directory', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'wgo-out-')), 'new');
    const files = await writeOut(dir, 'alice', CONFIG);
    expect(files.map((f) => f.slice(dir.length + 1))).toEqual(['alice.conf', 'alice.png', 'alice.svg']);
    for (const f of files) expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('a failure part-way removes what it wrote and leaves the file in its way alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgo-out-'));
    writeFileSync(outFiles(dir, 'alice').svg, 'someone else');
    await expect(writeOut(dir, 'alice', CONFIG)).rejects.toThrow(/EEXIST/);
    expect(readdirSync(dir)).toEqual(['alice.svg']);
  });
});
