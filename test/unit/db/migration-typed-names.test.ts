/**
 * Issue 10, item 7: releases before the keyed tag stored a failed sign-in's
 * name field as typed (people type passwords there), in login_throttle keys
 * and in the audit log. Opening such a database removes them.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, test } from 'vitest';
import { MIGRATIONS } from '../../../src/db/migrations.js';
import { openDatabase } from '../../../src/db/open.js';

let dir = '';
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const TYPED = 'Hunter2-correct-horse';

describe('migration 6: typed sign-in names', () => {
  test('throttle rows keyed by a typed name and audit rows naming no account are purged; real accounts and other rows stay', () => {
    dir = mkdtempSync(join(tmpdir(), 'wgo-mig-'));
    const file = join(dir, 'state.db');
    // A database as the release before this one left it (schema version 5).
    const old = new Database(file);
    old.pragma('journal_mode = WAL');
    for (let v = 0; v < 5; v++) old.exec(MIGRATIONS[v]!);
    old.pragma('user_version = 5');
    old.prepare(`INSERT INTO admins (name, role, password_hash, totp_secret, created_at, updated_at) VALUES ('alice', 'admin', 'h', 's', 1, 1)`).run();
    const throttle = old.prepare('INSERT INTO login_throttle (key, failures, window_start, locked_until) VALUES (?, 1, 1, NULL)');
    for (const key of [`account:${TYPED}`, 'account:alice', 'source:10.0.0.9']) throttle.run(key);
    const audit = old.prepare('INSERT INTO audit_log (at, actor, action, target, source) VALUES (1, ?, ?, ?, ?)');
    audit.run(TYPED, 'admin.login.failed', TYPED, '10.0.0.9');
    audit.run(TYPED, 'admin.login.locked', TYPED, '10.0.0.9');
    audit.run('alice', 'admin.login.failed', 'alice', '10.0.0.9');
    audit.run('-', 'admin.login.failed', null, '10.0.0.9');
    audit.run('root', 'peer.add', 'laptop1', 'cli');
    old.close();

    const db = openDatabase(file);
    expect(db.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect(db.prepare('SELECT key FROM login_throttle ORDER BY key').pluck().all()).toEqual(['source:10.0.0.9']);
    expect(db.prepare('SELECT actor, action, target FROM audit_log ORDER BY id').all()).toEqual([
      { actor: 'unknown', action: 'admin.login.failed', target: 'unknown' },
      { actor: 'unknown', action: 'admin.login.locked', target: 'unknown' },
      { actor: 'alice', action: 'admin.login.failed', target: 'alice' },
      { actor: '-', action: 'admin.login.failed', target: null },
      { actor: 'root', action: 'peer.add', target: 'laptop1' },
    ]);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
    // And the typed text is gone from the files too, not only from the rows (secure_delete).
    for (const f of readdirSync(dir)) expect(readFileSync(join(dir, f)).includes(Buffer.from(TYPED)), f).toBe(false);
  });
});
