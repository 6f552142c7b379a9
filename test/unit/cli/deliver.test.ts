import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { outFiles, preflightOut, writeOut } from '../../../src/cli/deliver.js';
import { CONNECTOR_FILE, connectorBundle } from '../../../src/connect/bundle.js';
import { testDir } from '../../support/temp.js';

const CONFIG = '[Interface]\nPrivateKey = x\n';

describe('--out delivery', () => {
  it('preflight creates nothing, even for a directory that does not exist yet', () => {
    const base = testDir('out');
    const dir = join(base, 'a', 'b');
    expect(preflightOut(dir, 'alice')).toBe(dir);
    expect(existsSync(join(base, 'a'))).toBe(false);
  });

  it('preflight refuses a file in the way and existing target files', () => {
    const base = testDir('out');
    writeFileSync(join(base, 'file'), '');
    expect(() => preflightOut(join(base, 'file', 'x'), 'alice')).toThrow(/not a directory/);
    writeFileSync(outFiles(base, 'alice').png, '');
    expect(() => preflightOut(base, 'alice')).toThrow(/already exists/);
  });

  it('writes the three files 0600 into a new 0700 directory', async () => {
    const dir = join(testDir('out'), 'new');
    const files = await writeOut(dir, 'alice', CONFIG);
    expect(files.map((f) => f.slice(dir.length + 1))).toEqual(['alice.conf', 'alice.png', 'alice.svg']);
    for (const f of files) expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('a failure part-way removes what it wrote and leaves the file in its way alone', async () => {
    const dir = testDir('out');
    writeFileSync(outFiles(dir, 'alice').svg, 'someone else');
    await expect(writeOut(dir, 'alice', CONFIG)).rejects.toThrow(/EEXIST/);
    expect(readdirSync(dir)).toEqual(['alice.svg']);
  });

  it('with a TLS bundle: the certificate, key, .p12 and connect profile are 0600; ca.crt and the connector are shared', async () => {
    const dir = testDir('out');
    const tls = { certPem: 'CERT', keyPem: 'KEY', caPem: 'CA', p12: Buffer.from('P12'), connectProfile: '{"wgOllamaConnect":1}\n' };
    const files = await writeOut(dir, 'alice', CONFIG, tls);
    const names = files.map((f) => f.slice(dir.length + 1));
    expect(names).toEqual(['alice.conf', 'alice.png', 'alice.svg', 'alice.crt', 'alice.key', 'alice.p12', 'alice.connect.json', 'ca.crt', CONNECTOR_FILE]);
    for (const f of files.slice(0, 7)) expect(statSync(f).mode & 0o077).toBe(0);
    expect(readFileSync(outFiles(dir, 'alice').connect, 'utf8')).toBe(tls.connectProfile);
    // The connector handed out is the bundle npm run build made.
    expect(readFileSync(join(dir, CONNECTOR_FILE)).equals(readFileSync(connectorBundle()!))).toBe(true);
    // A second peer in the same directory shares ca.crt and the connector: they are not written again.
    const bob = await writeOut(dir, 'bob', CONFIG, tls);
    expect(bob.map((f) => f.slice(dir.length + 1))).toEqual(['bob.conf', 'bob.png', 'bob.svg', 'bob.crt', 'bob.key', 'bob.p12', 'bob.connect.json']);
    // An older connector left there (an upgrade) is replaced, not an error.
    writeFileSync(join(dir, CONNECTOR_FILE), 'old');
    const carol = await writeOut(dir, 'carol', CONFIG, tls);
    expect(carol.map((f) => f.slice(dir.length + 1))).toContain(CONNECTOR_FILE);
  });

  it('preflight refuses an existing connect profile', () => {
    const base = testDir('out');
    writeFileSync(outFiles(base, 'alice').connect, '');
    expect(() => preflightOut(base, 'alice')).toThrow(/alice\.connect\.json already exists/);
  });

  it('shared files planted as symlinks are replaced, never written through (add-peer runs as root)', async () => {
    const dir = testDir('out');
    const victim = join(testDir('victim'), 'victim.txt');
    writeFileSync(victim, 'precious');
    symlinkSync(victim, join(dir, CONNECTOR_FILE));
    symlinkSync(victim, join(dir, 'ca.crt'));
    const tls = { certPem: 'CERT', keyPem: 'KEY', caPem: 'CA', p12: Buffer.from('P12'), connectProfile: '{}' };
    await writeOut(dir, 'alice', CONFIG, tls);
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(lstatSync(join(dir, 'ca.crt')).isSymbolicLink()).toBe(false);
    expect(readFileSync(join(dir, 'ca.crt'), 'utf8')).toBe('CA');
    expect(lstatSync(join(dir, CONNECTOR_FILE)).isSymbolicLink()).toBe(false);
    expect(readdirSync(dir).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it("a failure part-way leaves the directory's shared files (other peers use them) as they were", async () => {
    const dir = testDir('out');
    writeFileSync(join(dir, 'ca.crt'), 'OLD CA');
    writeFileSync(join(dir, CONNECTOR_FILE), 'old connector');
    // alice.connect.json is in the way (a directory): the last per-peer file cannot be written.
    mkdirSync(outFiles(dir, 'alice').connect);
    const tls = { certPem: 'CERT', keyPem: 'KEY', caPem: 'NEW CA', p12: Buffer.from('P12'), connectProfile: '{}' };
    await expect(writeOut(dir, 'alice', CONFIG, tls)).rejects.toThrow();
    expect(readFileSync(join(dir, 'ca.crt'), 'utf8')).toBe('OLD CA');
    expect(readFileSync(join(dir, CONNECTOR_FILE), 'utf8')).toBe('old connector');
    expect(readdirSync(dir).sort()).toEqual(['alice.connect.json', 'ca.crt', CONNECTOR_FILE].sort());
  });
});
