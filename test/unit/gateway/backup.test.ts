/**
 * backup → restore on a real state directory (real SQLite, real key files, real
 * AES-256-GCM and scrypt), and every way a backup file can be wrong: each is a
 * clear error with nothing written (the directory listing is the same after).
 */
import { readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BACKUP_FORMAT, type Manifest } from '../../../src/core/backup-format.js';
import { gatewayStateRepository } from '../../../src/db/gateway-state.js';
import { MIGRATIONS } from '../../../src/db/migrations.js';
import { openDatabase } from '../../../src/db/open.js';
import { peerRepository } from '../../../src/db/peers.js';
import { auditRepository } from '../../../src/db/audit.js';
import { WgoError } from '../../../src/errors.js';
import { writeEnvelope } from '../../../src/gateway/backup-envelope.js';
import { verifyBackup } from '../../../src/gateway/backup-service.js';
import { FAST_KDF, PASS, backupEnv, listing, tree, type BackupEnv } from '../../support/backup-env.js';

async function rejects(p: Promise<unknown>, code: string, message: RegExp): Promise<WgoError> {
  const e = await p.then(() => null, (x: unknown) => x);
  expect(e, 'expected a WgoError').toBeInstanceOf(WgoError);
  expect((e as WgoError).code).toBe(code);
  expect((e as WgoError).message).toMatch(message);
  return e as WgoError;
}

describe('backup: what it cannot take, refused before anything is written', () => {
  test('a file in the state directory whose name restore would not take (an editor backup) is named, and nothing is written', async () => {
    const env = backupEnv();
    try {
      writeFileSync(join(env.stateDir, 'server.key~'), 'stray');
      mkdirSync(join(env.root, 'out'));
      await rejects(env.backup(join(env.root, 'out', 'gw.wgobak')), 'BAD_INPUT', /^cannot back up .*server\.key~: not a file name wg-ollama writes/);
      expect(readdirSync(join(env.root, 'out'))).toEqual([]);
    } finally {
      env.cleanup();
    }
  });

  test('no database: NOT_INITIALIZED, and none is created', async () => {
    const env = backupEnv();
    try {
      for (const f of readdirSync(env.stateDir).filter((n) => n.startsWith('wg-ollama.db'))) rmSync(join(env.stateDir, f));
      mkdirSync(join(env.root, 'out'));
      await rejects(env.backup(join(env.root, 'out', 'gw.wgobak')), 'NOT_INITIALIZED', /^no database at /);
      expect(readdirSync(join(env.root, 'out'))).toEqual([]);
      expect(existsSync(env.config.paths.db)).toBe(false);
    } finally {
      env.cleanup();
    }
  });
});

describe('backup and restore', () => {
  let env: BackupEnv;
  let file: string;
  let manifest: Manifest;

  beforeAll(async () => {
    env = backupEnv();
    mkdirSync(join(env.root, 'out'));
    file = join(env.root, 'out', 'gw.wgobak');
    manifest = (await env.backup(file)).manifest;
  });
  afterAll(() => env.cleanup());

  test('the file is 0600, alone in its directory (no temporary left), and its manifest counts what the database holds', () => {
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(env.root, 'out'))).toEqual(['gw.wgobak']);
    expect(manifest).toMatchObject({
      format: BACKUP_FORMAT, wgOllamaVersion: '0.1.0', schemaVersion: MIGRATIONS.length,
      gateway: { name: 'gw1', interface: 'wgo0', endpoint: 'vpn.example.com:51820', stateDir: env.stateDir, configFile: env.file },
      counts: { peers: { active: 2, revoked: 1 }, apiTokens: 1, guards: 0, admins: 0, requests: 0 },
      notIncluded: [],
    });
    // Peer certificates plus the sync server certificate.
    expect(manifest.counts.certificates).toBe(4);
    const names = manifest.entries.map((e) => e.name).sort();
    const psk = readdirSync(join(env.stateDir, 'psk')).map((f) => `state/psk/${f}`);
    expect(names).toEqual(['config.json', 'state/admin.key', 'state/ca.crt', 'state/ca.key', 'state/denials', 'state/server.key', 'state/tls/sync.crt', 'state/tls/sync.key', 'state/wg-ollama.db', ...psk].sort());
    expect(manifest.entries.find((e) => e.name === 'state/ca.crt')!.mode).toBe(0o644);
    expect(manifest.entries.find((e) => e.name === 'state/ca.key')!.mode).toBe(0o600);
  });

  test('the live database records the backup (time, file, size) and an audit record', () => {
    const db = openDatabase(env.config.paths.db);
    try {
      const last = gatewayStateRepository(db).lastBackup();
      expect(last).toEqual({ at: expect.any(Number), file, size: statSync(file).size });
      expect(auditRepository(db).list({ since: 0 }).map((a) => a.action)).toContain('gateway.backup');
    } finally {
      db.close();
    }
  });

  test('the file holds no key or config in the clear', () => {
    const bytes = readFileSync(file);
    for (const f of ['server.key', 'ca.key', 'admin.key']) {
      const secret = readFileSync(join(env.stateDir, f), 'utf8').trim().split('\n')[1] ?? readFileSync(join(env.stateDir, f), 'utf8').trim();
      expect(bytes.includes(Buffer.from(secret)), f).toBe(false);
    }
    expect(bytes.includes(Buffer.from('vpn.example.com'))).toBe(false);
  });

  test('verify reads it all and returns the same manifest, writing nothing', async () => {
    const before = listing(env.root);
    const v = await verifyBackup(file, PASS);
    expect(v.manifest).toEqual(manifest);
    expect(JSON.parse(v.configText)).toMatchObject({ stateDir: env.stateDir });
    expect(listing(env.root)).toEqual(before);
  });

  test('restore into a new state directory: every file with its bytes and mode, the database with its rows, the config pointing there', async () => {
    const target = join(env.root, 'restored');
    // Written data is made durable (syncfs) before it is renamed into place, and again after.
    const flushed: [string, boolean][] = [];
    const r = await env.restore({ file, flush: async (p) => void flushed.push([p, existsSync(join(target, 'state'))]) });
    expect(flushed).toEqual([[expect.stringMatching(/\/restored\/\.wg-ollama-restore-\w+$/), false], [join(target, 'state'), true]]);
    expect(r).toMatchObject({ stateDir: join(target, 'state'), configFile: join(target, 'config.json'), movedAside: [], dryRun: false });
    const a = tree(env.stateDir);
    const b = tree(join(target, 'state'));
    const dbFiles = (k: string): boolean => k.startsWith('wg-ollama.db');
    expect([...b].filter(([k]) => !dbFiles(k))).toEqual([...a].filter(([k]) => !dbFiles(k)));
    expect(statSync(join(target, 'state')).mode & 0o777).toBe(0o700);
    expect(statSync(join(target, 'config.json')).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(target, 'config.json'), 'utf8'))).toEqual({ ...JSON.parse(readFileSync(env.file, 'utf8')), stateDir: join(target, 'state') });
    const live = openDatabase(env.config.paths.db);
    const copy = openDatabase(join(target, 'state', 'wg-ollama.db'));
    try {
      expect(peerRepository(copy).all()).toEqual(peerRepository(live).all());
      for (const t of ['certificates', 'peer_tokens', 'guards', 'admins']) {
        expect(copy.prepare(`SELECT * FROM ${t}`).all(), t).toEqual(live.prepare(`SELECT * FROM ${t}`).all());
      }
      expect(auditRepository(copy).list({ since: 0 }).at(-1)).toMatchObject({ action: 'gateway.restore', target: join(target, 'state') });
      // The restored gateway's last backup is the one it came from.
      expect(gatewayStateRepository(copy).lastBackup()).toEqual({ at: Date.parse(manifest.createdAt), file, size: statSync(file).size });
    } finally {
      live.close();
      copy.close();
    }
    expect(readdirSync(env.root).filter((f) => f.startsWith('.wg-ollama'))).toEqual([]);
  });

  describe('refusals: a clear error, nothing written', () => {
    let target: string;
    const restoreInto = (f: string, extra: Record<string, unknown> = {}) =>
      env.restore({ file: f, configFile: join(target, 'config.json'), stateDir: join(target, 'state'), ...extra });
    /** Runs a refused restore and checks that the listing of the whole temp root did not change. */
    const refused = async (f: string, code: string, message: RegExp, extra: Record<string, unknown> = {}): Promise<void> => {
      const before = listing(env.root);
      await rejects(restoreInto(f, extra), code, message);
      expect(listing(env.root)).toEqual(before);
    };
    const variant = (name: string, change: (b: Buffer) => Buffer): string => {
      const p = join(env.root, 'bad', name);
      mkdirSync(join(env.root, 'bad'), { recursive: true });
      writeFileSync(p, change(Buffer.from(readFileSync(file))));
      return p;
    };
    const flip = (at: (len: number) => number) => (b: Buffer): Buffer => {
      const i = at(b.length);
      b[i] = b[i]! ^ 0x01;
      return b;
    };

    beforeAll(() => {
      target = join(env.root, 'target');
    });

    test('a wrong passphrase', async () => {
      await refused(file, 'BAD_INPUT', /^wrong passphrase for this backup/, { passphrase: 'not the passphrase at all' });
    });

    test.each([
      ['10 bytes', 10],
      ['header only', 80],
      ['half', -0.5],
      ['all but the last byte', -1],
    ])('a truncated file (%s)', async (name, cut) => {
      const f = variant(`cut-${name}`, (b) => b.subarray(0, cut === -0.5 ? Math.floor(b.length / 2) : cut < 0 ? b.length + cut : cut));
      await refused(f, 'BAD_INPUT', /^the backup file is damaged: (it is only \d+ bytes long \(truncated\)|it was truncated or changed)/);
    });

    test.each([
      ['the salt', () => 25, /^wrong passphrase for this backup \(or its header was changed\)/],
      ['the nonce', () => 40, /^wrong passphrase for this backup \(or its header was changed\)/],
      ['the header MAC', () => 60, /^wrong passphrase for this backup \(or its header was changed\)/],
      ['the first byte of the body', () => 80, /^the backup file is damaged: it was truncated or changed/],
      ['the middle of the body', (n: number) => Math.floor(n / 2), /^the backup file is damaged: it was truncated or changed/],
      ['the tag', (n: number) => n - 3, /^the backup file is damaged: it was truncated or changed/],
    ])('a flipped bit in %s', async (name, at, message) => {
      await refused(variant(`flip-${name}`, flip(at)), 'BAD_INPUT', message);
    });

    test('a file that is not a backup', async () => {
      await refused(variant('other', (b) => Buffer.concat([Buffer.from('SQLite format 3\0'), b.subarray(16)])), 'BAD_INPUT', /^this is not a wg-ollama backup file/);
    });

    test('a backup from a newer format', async () => {
      await refused(variant('format2', (b) => (b.writeUInt16BE(BACKUP_FORMAT + 1, 8), b)), 'BAD_INPUT', /^the backup was made by a newer wg-ollama \(backup format 2; this one reads up to 1\)/);
    });

    /** A correctly encrypted backup whose manifest or entries are changed before sealing. */
    const crafted = async (name: string, m: Manifest, entries: { name: string; mode: number; data: Buffer }[]): Promise<string> => {
      mkdirSync(join(env.root, 'bad'), { recursive: true });
      const p = join(env.root, 'bad', name);
      const fh = await open(p, 'wx', 0o600);
      try {
        await writeEnvelope(fh, PASS, FAST_KDF, JSON.stringify(m), entries.map((e) => ({ ...e, size: e.data.length })));
      } finally {
        await fh.close();
      }
      return p;
    };
    const small = (m: Manifest): { name: string; mode: number; data: Buffer }[] => [
      { name: 'config.json', mode: 0o600, data: readFileSync(env.file) },
    ].concat(m.entries.filter((e) => e.name !== 'config.json').map((e) => ({ name: e.name, mode: e.mode, data: Buffer.alloc(0) })));

    test('a backup of a newer database schema', async () => {
      const f = await crafted('schema', { ...manifest, schemaVersion: MIGRATIONS.length + 1, wgOllamaVersion: '9.0.0' }, small(manifest));
      await refused(f, 'SCHEMA_TOO_NEW', new RegExp(`^the backup holds a database of schema version ${MIGRATIONS.length + 1}, newer than this wg-ollama's ${MIGRATIONS.length} \\(it was made by wg-ollama 9.0.0\\)`));
    });

    test.each(['state/../../escape', '/etc/passwd', 'state/psk/../../x', 'state', 'elsewhere/file'])('an entry named %j', async (bad) => {
      const m = { ...manifest, entries: [...manifest.entries, { name: bad, mode: 0o600, size: 1, sha256: '0'.repeat(64) }] };
      const f = await crafted(`name-${bad.replace(/\W/g, '_')}`, m, [...small(manifest), { name: bad, mode: 0o600, data: Buffer.from('x') }]);
      await refused(f, 'BAD_INPUT', /^the backup file is damaged: entry name .* is not a plain path inside the state directory/);
    });

    test('an entry whose bytes do not match the manifest', async () => {
      await refused(await crafted('sha', manifest, small(manifest)), 'BAD_INPUT', /^the backup file is damaged: entry .* does not match/);
    });

    test('an existing state directory or config, without --force', async () => {
      mkdirSync(join(target, 'state'), { recursive: true, mode: 0o700 });
      writeFileSync(join(target, 'state', 'keep-me'), 'x');
      await refused(file, 'CONFLICT', /state already exists: restore onto a fresh machine, give --config and --state-dir elsewhere, or pass --force to move it aside \(nothing is deleted\)$/);
      writeFileSync(join(target, 'config.json'), '{}');
      await refused(file, 'CONFLICT', /state and .*config.json already exist/);
    });

    test('a running serve on the target, even with --force', async () => {
      await refused(file, 'ALREADY_RUNNING', /^wg-ollama serve is running on /, { force: true, daemonRunning: async () => true });
    });

    test('--dry-run checks everything and writes nothing', async () => {
      const before = listing(env.root);
      const r = await restoreInto(file, { dryRun: true, force: true });
      expect(r).toMatchObject({ dryRun: true, stateDir: join(target, 'state'), movedAside: [] });
      expect(listing(env.root)).toEqual(before);
    });

    test('--force moves the existing state directory and config aside, deleting nothing', async () => {
      const r = await restoreInto(file, { force: true, clock: () => Date.UTC(2026, 0, 2, 3, 4, 5) });
      expect(r.movedAside).toEqual([join(target, 'state.replaced-20260102T030405Z'), join(target, 'config.json.replaced-20260102T030405Z')]);
      expect(readFileSync(join(target, 'state.replaced-20260102T030405Z', 'keep-me'), 'utf8')).toBe('x');
      expect(readFileSync(join(target, 'config.json.replaced-20260102T030405Z'), 'utf8')).toBe('{}');
      expect(existsSync(join(target, 'state', 'ca.key'))).toBe(true);
    });
  });

  describe('backup refusals', () => {
    test('an --out that exists, or one inside the state directory: nothing written', async () => {
      const before = listing(env.root);
      await rejects(env.backup(file), 'CONFLICT', /gw.wgobak already exists; give a new file name$/);
      await rejects(env.backup(join(env.stateDir, 'b.wgobak')), 'BAD_INPUT', /^the backup must not go into the state directory/);
      expect(listing(env.root)).toEqual(before);
    });
  });
});
