/**
 * Upgrades with the real daemon: `serve` starts on a database of every released
 * schema version (test/fixtures/db) and the CLI then lists the peers that release
 * made; and `serve` refuses a database from a newer release — exit 1, one clear
 * line, the database files byte for byte as they were, no daemon left running.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/db/migrations.js';
import { createGateway, createLab, type Gateway, type Lab } from './harness.js';

const FIXTURES = resolve(import.meta.dirname, '../fixtures/db');
const versions = readdirSync(FIXTURES).map((f) => /^v(\d+)\.sql$/.exec(f)?.[1]).filter((v): v is string => !!v).map(Number).sort((a, b) => a - b);

interface Listed { name: string; address: string; publicKey: string; status: string }

describe('upgrades with the real daemon', () => {
  let lab: Lab;
  let gw: Gateway;
  let dbPath: string;

  beforeAll(async () => {
    lab = await createLab('up');
    gw = await createGateway(lab, 'wgoup');
    dbPath = join(lab.dir, 'wgoup-state', 'wg-ollama.db');
  });
  afterAll(async () => {
    await lab?.cleanup();
  });

  /** Replaces the gateway's database (serve stopped) with a fixture's. */
  function install(version: number): void {
    for (const s of ['', '-wal', '-shm']) rmSync(dbPath + s, { force: true });
    const db = new Database(dbPath);
    db.exec(readFileSync(join(FIXTURES, `v${version}.sql`), 'utf8'));
    db.close();
  }

  async function stop(): Promise<void> {
    const d = gw.daemon();
    if (!d) return;
    d.kill('SIGTERM');
    await d;
  }

  it.each(versions)('serve starts on a schema-%i database and the peers it held are there', async (version) => {
    const expected = JSON.parse(readFileSync(join(FIXTURES, `v${version}.expect.json`), 'utf8')) as { list: Listed[] };
    install(version);
    await gw.start();
    try {
      const listed = await gw.cliJson<Listed[]>('list-peers', '--all');
      const pick = (p: Listed): Listed => ({ name: p.name, address: p.address, publicKey: p.publicKey, status: p.status });
      expect(listed.map(pick).sort((a, b) => a.name.localeCompare(b.name))).toEqual(expected.list.map(pick).sort((a, b) => a.name.localeCompare(b.name)));
      const v = new Database(dbPath, { readonly: true });
      expect(v.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
      v.close();
    } finally {
      await stop();
    }
  });

  it('serve refuses a database from a newer release and changes nothing', async () => {
    install(versions.at(-1)!);
    await gw.start();
    await stop();
    const raw = new Database(dbPath);
    raw.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    raw.close();
    const snap = (): (string | null)[] => ['', '-wal', '-shm'].map((s) => (existsSync(dbPath + s) ? createHash('sha256').update(readFileSync(dbPath + s)).digest('hex') : null));
    const before = snap();

    // serve logs JSON lines on stdout: the refusal is its last one, event serve.failed.
    const r = await gw.cli('serve');
    expect(r.code).toBe(1);
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { level: string; event: string; code: string; err: string };
    expect(last).toMatchObject({ level: 'fatal', event: 'serve.failed', code: 'SCHEMA_TOO_NEW' });
    expect(last.err).toContain(`schema version ${MIGRATIONS.length + 1}, newer than this wg-ollama knows (${MIGRATIONS.length})`);
    expect(snap()).toEqual(before);

    const status = await gw.cli('status', '--json');
    expect(status.code).toBe(1);
    expect(status.stderr).toContain('newer than this wg-ollama');
    const doctor = await gw.cli('doctor', '--json');
    expect(doctor.code).toBe(1);
    const rows = JSON.parse(doctor.stdout) as { check: string; status: string; detail: string }[];
    expect(rows.find((x) => x.check === 'database')).toMatchObject({ status: 'fail' });
    expect(snap()).toEqual(before);
  });
});
