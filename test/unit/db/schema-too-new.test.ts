/**
 * A database written by a newer wg-ollama (user_version above MIGRATIONS.length)
 * is refused with SCHEMA_TOO_NEW before anything is written: the main file, its
 * WAL and (when no other connection holds them) its -shm stay as they were, and
 * no migration runs. Also through the CLI entry (main): every verb that opens
 * the database exits 1 with the same one-line message.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { type Config } from '../../../src/config.js';
import { MIGRATIONS } from '../../../src/db/migrations.js';
import { migrate, openDatabase } from '../../../src/db/open.js';
import { expectWgoError } from '../../support/errors.js';
import { WHO, gatewayState, type GatewayState } from '../../support/gateway-state.js';

const CURRENT = MIGRATIONS.length;
const NEWER = CURRENT + 1;
const SUFFIXES = ['', '-wal', '-shm'] as const;

/** Each database file's bytes, or null where the file does not exist. */
function snapshot(path: string): (string | null)[] {
  return SUFFIXES.map((s) => (existsSync(path + s) ? readFileSync(path + s).toString('base64') : null));
}

/** A current database, closed cleanly, then stamped with a newer version and a table this release does not know. */
function newerDatabase(path: string): void {
  openDatabase(path).close();
  const db = new Database(path);
  db.exec('CREATE TABLE from_the_future (x INTEGER) STRICT');
  db.pragma(`user_version = ${NEWER}`);
  db.close();
}

const dir = mkdtempSync(join(tmpdir(), 'wgo-newer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function expectRefusal(fn: () => unknown, path: string): void {
  const err = expectWgoError(fn, 'SCHEMA_TOO_NEW');
  expect(err.kind).toBe('unavailable');
  expect(err.message).toContain(path);
  expect(err.message).toContain(`schema version ${NEWER}`);
  expect(err.message).toContain(`${CURRENT}`);
  expect(err.message).toMatch(/restore/);
}

describe('openDatabase refuses a database from a newer wg-ollama', () => {
  test('a cleanly closed one: no byte of it changes and no -wal or -shm appears', () => {
    const path = join(dir, 'clean.db');
    newerDatabase(path);
    const before = snapshot(path);
    expect(before[1]).toBeNull();
    expectRefusal(() => openDatabase(path), path);
    expectRefusal(() => openDatabase(path, { readonly: true }), path);
    expect(snapshot(path)).toEqual(before);
  });

  test('one whose newer version is still in its WAL (the writer crashed): the WAL is not checkpointed', () => {
    const path = join(dir, 'hot.db');
    openDatabase(path).close();
    // A process that writes and dies without closing leaves its commits in the WAL only.
    const script = `const D = require(${JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'))});
      const d = new D(${JSON.stringify(path)}); d.pragma('wal_autocheckpoint = 0');
      d.exec('CREATE TABLE from_the_future (x INTEGER) STRICT'); d.pragma('user_version = ${NEWER}'); process.exit(0);`;
    execFileSync(process.execPath, ['-e', script]);
    const [main0, wal0] = snapshot(path);
    expect(wal0).not.toBeNull();
    expectRefusal(() => openDatabase(path), path);
    const [main1, wal1] = snapshot(path);
    expect(main1).toBe(main0);
    expect(wal1).toBe(wal0);
    const raw = new Database(path, { readonly: true });
    expect(raw.prepare(`SELECT count(*) FROM sqlite_schema WHERE name = 'gateway_state'`).pluck().get()).toBe(1);
    expect(raw.pragma('user_version', { simple: true })).toBe(NEWER);
    raw.close();
  });

  test('migrate() itself refuses too (a connection opened elsewhere)', () => {
    const db = new Database(':memory:');
    db.pragma(`user_version = ${NEWER}`);
    const err = expectWgoError(() => migrate(db), 'SCHEMA_TOO_NEW');
    expect(err.message).toContain(`schema version ${NEWER}`);
    expect(db.prepare(`SELECT count(*) FROM sqlite_schema`).pluck().get()).toBe(0);
    db.close();
  });

});

describe('the CLI verbs refuse it and write nothing', () => {
  let state: GatewayState;
  afterAll(() => state?.cleanup());
  let file: string;
  let config: Config;
  let dbPath: string;
  /** The state directory as it was before any verb ran: every verb must leave exactly this. */
  let pristine: { files: string[]; db: (string | null)[] };

  beforeAll(() => {
    state = gatewayState({ name: 'newer-cli' });
    ({ configFile: file, config } = state);
    state.withGateway((ctx) => ctx.peers.add({ name: 'alice' }, WHO));
    dbPath = config.paths.db;
    const db = new Database(dbPath);
    db.pragma(`user_version = ${NEWER}`);
    db.close();
    pristine = { files: readdirSync(config.stateDir).sort(), db: snapshot(dbPath) };
    expect(pristine.db[1]).toBeNull();
  });

  async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (t) => void out.push(t), err: (t) => void err.push(t), env: {} };
    const code = await main(['--config', file, ...argv], io);
    return { code, out: out.join(''), err: err.join('') };
  }

  test.each([
    // Verbs that take access away would touch the kernel if they got past the database: the lab test covers serve.
    ['list-peers'], ['show-peer', 'alice'], ['add-peer', 'bob'], ['enable-peer', 'alice'],
    ['set-policy', 'alice', '--rate', '5/min'], ['issue-token', 'alice'], ['logs', 'audit'], ['logs', 'requests'],
    ['list-guards'], ['admin', 'list'], ['reissue-ca', '--dry-run'],
  ])('%s %s', async (...argv) => {
    const r = await cli(...argv.filter((a): a is string => typeof a === 'string'));
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toContain(`schema version ${NEWER}`);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(snapshot(dbPath)).toEqual(pristine.db);
    expect(readdirSync(config.stateDir).sort()).toEqual(pristine.files);
  });
});
