import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { runDoctor, runVacuum } from '../../../src/cli/system.js';
import type { Io } from '../../../src/cli/output.js';
import { parseConfig, type Config } from '../../../src/config.js';
import { openDatabase } from '../../../src/db/open.js';
import { databaseChecks } from '../../../src/gateway/db-check.js';
import type { Runner } from '../../../src/system/exec.js';

let dir: string;
let config: Config;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-doctor-db-'));
  config = parseConfig({
    stateDir: join(dir, 'state'), interface: 'wgo0', listenPort: 51820, subnet: '10.66.0.0/24', endpoint: 'vpn.example.com:51820',
    ollamaHost: '192.168.1.10', ollamaPort: 11434, retention: { maxDatabaseBytes: 64 * 1024 * 1024 },
  }, 'test');
  mkdirSync(config.stateDir, { mode: 0o700 });
  openDatabase(config.paths.db).close();
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const byName = (c: Config) => Object.fromEntries(databaseChecks(c).map((r) => [r.check, r]));
/** The same config with a ceiling below the config's minimum, so a small file is near it. */
const withCeiling = (max: number): Config => ({ ...config, retention: { ...config.retention, maxDatabaseBytes: max } });

describe('doctor: the database', () => {
  test('a new database: schema current, far under the ceiling, space reused', () => {
    const r = byName(config);
    expect(r['database']!.status).toBe('ok');
    expect(r['database size']!).toMatchObject({ status: 'ok' });
    expect(r['database size']!.detail).toContain('of the 64.0 MiB ceiling');
    expect(r['database space reuse']!.status).toBe('ok');
  });

  test('warns from 80 % of the ceiling, not below', () => {
    const db = openDatabase(config.paths.db);
    const used = ((db.pragma('page_count', { simple: true }) as number) - (db.pragma('freelist_count', { simple: true }) as number)) * (db.pragma('page_size', { simple: true }) as number);
    db.close();
    expect(byName(withCeiling(Math.ceil(used / 0.79)))['database size']!.status).toBe('ok');
    const near = byName(withCeiling(Math.floor(used / 0.8)))['database size']!;
    expect(near.status).toBe('warn');
    expect(near.detail).toContain('at 80 % of retention.maxDatabaseBytes or more');
  });

  test('an older database (auto_vacuum none) is warned about until "wg-ollama vacuum" rebuilds it', async () => {
    const db = openDatabase(config.paths.db);
    db.pragma('auto_vacuum = NONE');
    db.exec('VACUUM');
    db.close();
    expect(byName(config)['database space reuse']).toMatchObject({ status: 'warn', detail: expect.stringContaining('wg-ollama vacuum') });
    let out = '';
    const io: Io = { out: (t) => void (out += t), err: () => undefined, env: {} };
    await runVacuum(config, { json: true }, io, 'root');
    expect(JSON.parse(out)).toMatchObject({ autoVacuum: 'incremental' });
    expect(byName(config)['database space reuse']!.status).toBe('ok');
    const check = openDatabase(config.paths.db, { readonly: true });
    expect(check.prepare(`SELECT actor, action FROM audit_log`).all()).toEqual([{ actor: 'root', action: 'database.vacuum' }]);
    check.close();
  });

  test('runDoctor reports the checks (and warns without failing for them)', async () => {
    let out = '';
    const io: Io = { out: (t) => void (out += t), err: () => undefined, env: {} };
    const none: Runner = async () => {
      throw new Error('not here');
    };
    await runDoctor(withCeiling(1), { json: true }, io, none);
    const rows = JSON.parse(out) as { check: string; status: string }[];
    expect(rows.find((r) => r.check === 'database size')).toMatchObject({ status: 'warn' });
    expect(rows.find((r) => r.check === 'database space reuse')).toMatchObject({ status: 'ok' });
  });
});
