import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, test } from 'vitest';
import { migrate, openDatabase, type Db } from '../../../src/db/open.js';
import { MIGRATIONS } from '../../../src/db/migrations.js';
import { peerRepository } from '../../../src/db/peers.js';
import { expectWgoError } from '../../support/errors.js';

const KEY = (n: number): string => Buffer.alloc(32, n).toString('base64');

let db: Db;
beforeEach(() => {
  db = openDatabase(':memory:');
});
afterEach(() => db.close());

const insert = (name: string, address: string, key: string, status = 'active'): void => {
  const n = address.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  db.prepare(
    `INSERT INTO peers (name, address, address_int, public_key, psk_ref, status, created_at, updated_at)
     VALUES (?, ?, ?, ?, NULL, ?, 0, 0)`,
  ).run(name, address, n, key, status);
};
const count = (): number => db.prepare('SELECT count(*) FROM peers').pluck().get() as number;

describe('openDatabase', () => {
  test('migrates to the latest version with foreign keys on', () => {
    expect(MIGRATIONS.length).toBeGreaterThan(0);
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    const tables = db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`).pluck().all();
    expect(tables).toEqual(['admin_sessions', 'admins', 'audit_log', 'certificates', 'connection_events', 'enrollments', 'gateway_state', 'guards', 'login_throttle', 'peer_link', 'peer_tokens', 'peer_tokens_daily', 'peers', 'request_spool_seqs', 'requests', 'retired_keys']);
  });

  test('migrating again is a no-op', () => {
    migrate(db);
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
  });

  test('refuses a database from a newer wg-ollama', () => {
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    expect(expectWgoError(() => migrate(db), 'SCHEMA_TOO_NEW').message).toContain('newer than this wg-ollama');
  });

  test('a file database that cannot be opened read-only is NOT_INITIALIZED', () => {
    expectWgoError(() => openDatabase('/nonexistent/dir/wg-ollama.db', { readonly: true }), 'NOT_INITIALIZED');
  });

  describe('on disk', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgo-db-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    test('a new file reclaims freed pages (auto_vacuum incremental); an existing one keeps its setting', () => {
      const path = join(dir, 'av.db');
      const rw = openDatabase(path);
      expect(rw.pragma('auto_vacuum', { simple: true })).toBe(2);
      rw.pragma('auto_vacuum = NONE');
      rw.exec('VACUUM');
      rw.close();
      const again = openDatabase(path);
      expect(again.pragma('auto_vacuum', { simple: true })).toBe(0);
      again.close();
    });

    test('uses WAL and can be reopened read-only', () => {
      const path = join(dir, 'state.db');
      const rw = openDatabase(path);
      expect(rw.pragma('journal_mode', { simple: true })).toBe('wal');
      rw.close();
      const ro = openDatabase(path, { readonly: true });
      expect(ro.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
      ro.close();
    });
  });
});

describe('schema constraints', () => {
  test('foreign keys are enforced', () => {
    expect(() => db.prepare(`INSERT INTO retired_keys (public_key, peer_id, retired_at) VALUES (?, 999, 0)`).run(KEY(1))).toThrow(
      /FOREIGN KEY constraint failed/,
    );
  });

  test.each([
    ['uppercase', 'Alice'],
    ['space', 'al ice'],
    ['semicolon', 'a;b'],
    ['slash', 'a/b'],
    ['empty', ''],
    ['33 characters', 'x'.repeat(33)],
    ['non-ASCII', 'zoë'],
  ])('the peers CHECK rejects a name with %s inserted by raw SQL', (_what, name) => {
    expect(() => insert(name, '10.66.0.2', KEY(1))).toThrow(/CHECK constraint failed/);
    expect(count()).toBe(0);
  });

  test('the CHECK accepts every character validatePeerName allows', () => {
    insert('a-b_c.d09', '10.66.0.2', KEY(1));
    insert('x'.repeat(32), '10.66.0.3', KEY(2));
    expect(count()).toBe(2);
  });

  test('a public key must be 44 characters and a status one of three', () => {
    expect(() => insert('alice', '10.66.0.2', 'short')).toThrow(/CHECK constraint failed/);
    expect(() => insert('alice', '10.66.0.2', KEY(1), 'expired')).toThrow(/CHECK constraint failed/);
  });

  test('a live name is unique', () => {
    insert('alice', '10.66.0.2', KEY(1));
    expect(() => insert('alice', '10.66.0.3', KEY(2))).toThrow(/UNIQUE constraint failed: peers.name/);
    expect(() => insert('alice', '10.66.0.3', KEY(2), 'disabled')).toThrow(/UNIQUE constraint failed/);
  });

  test('the live-name index compares case-insensitively, and lookups by name do too', () => {
    const cols = db.prepare(`SELECT name, coll FROM pragma_index_xinfo('peers_live_name') WHERE key = 1`).all();
    expect(cols).toEqual([{ name: 'name', coll: 'NOCASE' }]);
    insert('alice', '10.66.0.2', KEY(1));
    const repo = peerRepository(db);
    expect(repo.liveByName('ALICE')?.name).toBe('alice');
    expect(repo.byName('Alice')?.name).toBe('alice');
  });

  test('a revoked peer’s name can be used again, but its address cannot', () => {
    insert('alice', '10.66.0.2', KEY(1), 'revoked');
    insert('alice', '10.66.0.3', KEY(2));
    expect(count()).toBe(2);
    expect(() => insert('bob', '10.66.0.2', KEY(3))).toThrow(/UNIQUE constraint failed: peers.address_int/);
  });

  test('addresses and public keys are unique across all rows', () => {
    insert('alice', '10.66.0.2', KEY(1));
    expect(() => insert('bob', '10.66.0.2', KEY(2))).toThrow(/UNIQUE constraint failed: peers.address_int/);
    expect(() => insert('bob', '10.66.0.3', KEY(1))).toThrow(/UNIQUE constraint failed: peers.public_key/);
    expect(count()).toBe(1);
  });

  test('a connection event kind must be one of four', () => {
    insert('alice', '10.66.0.2', KEY(1));
    const ev = db.prepare(`INSERT INTO connection_events (at, peer_id, kind) VALUES (0, 1, ?)`);
    ev.run('handshake');
    expect(() => ev.run('hijack')).toThrow(/CHECK constraint failed/);
  });
});
