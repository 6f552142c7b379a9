/**
 * The snapshot is consistent while another process keeps writing: a writer
 * (its own process, as serve is) commits 50 request rows and a counter in
 * each transaction, without pause, during the whole backup. Every snapshot
 * must hold whole transactions only: rows = counter, a multiple of 50.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openDatabase } from '../../../src/db/open.js';
import { backupEnv, type BackupEnv } from '../../support/backup-env.js';
import { waitFor } from '../../support/wait.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const WRITER = `
const Database = require('better-sqlite3');
const fs = require('node:fs');
const [db, stop] = [new Database(process.argv[1]), process.argv[2]];
db.pragma('busy_timeout = 30000');
const ins = db.prepare("INSERT INTO requests (guard, spool, guard_seq, at, source, status, bytes_in, bytes_out, duration_ms) VALUES ('w', '', ?, ?, '10.66.0.2', 200, 1, 1, 1)");
const set = db.prepare("INSERT INTO gateway_state (key, value) VALUES ('test.count', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value");
let n = 0;
const batch = db.transaction(() => { for (let i = 0; i < 50; i++) ins.run(++n, Date.now()); set.run(String(n)); });
const end = Date.now() + 60000;
(function loop() {
  if (fs.existsSync(stop) || Date.now() > end) { db.close(); process.exit(0); }
  batch();
  setImmediate(loop);
})();
`;

describe('backup while another process writes', () => {
  let env: BackupEnv;
  let writer: ChildProcess;
  const stop = (): string => join(env.root, 'stop');
  const counter = (path: string): { rows: number; counter: number } => {
    const db = openDatabase(path);
    try {
      return {
        rows: db.prepare(`SELECT count(*) FROM requests WHERE guard = 'w'`).pluck().get() as number,
        counter: Number(db.prepare(`SELECT value FROM gateway_state WHERE key = 'test.count'`).pluck().get() ?? 0),
      };
    } finally {
      db.close();
    }
  };

  beforeAll(() => {
    env = backupEnv();
    // Enough rows that copying takes a while (about 40 MB).
    const db = openDatabase(env.config.paths.db);
    const ins = db.prepare(`INSERT INTO requests (guard, spool, guard_seq, at, source, status, bytes_in, bytes_out, duration_ms, path) VALUES ('old', '', ?, ?, '10.66.0.2', 200, 1, 1, 1, ?)`);
    db.transaction(() => {
      for (let i = 1; i <= 200_000; i++) ins.run(i, i, `/api/generate/${'x'.repeat(100)}`);
    })();
    db.close();
    writer = spawn(process.execPath, ['-e', WRITER, env.config.paths.db, stop()], { cwd: ROOT, stdio: 'ignore' });
  });
  afterAll(async () => {
    writeFileSync(stop(), '');
    if (writer.exitCode === null) await new Promise((r) => writer.once('exit', r));
    env.cleanup();
  });

  test('three snapshots taken during the writes each hold whole transactions only', async () => {
    await waitFor(() => counter(env.config.paths.db).counter >= 500, 10_000, 'the writer to commit', 20);
    mkdirSync(join(env.root, 'out'));
    for (let i = 0; i < 3; i++) {
      const before = counter(env.config.paths.db).counter;
      const b = await env.backup(join(env.root, 'out', `b${i}.wgobak`));
      const after = counter(env.config.paths.db).counter;
      // The writer went on while the backup ran (serve is never paused).
      expect(after).toBeGreaterThan(before);
      await env.restore({ file: b.file, configFile: join(env.root, `r${i}`, 'config.json'), stateDir: join(env.root, `r${i}`, 'state') });
      const snap = counter(join(env.root, `r${i}`, 'state', 'wg-ollama.db'));
      expect(snap.rows).toBe(snap.counter);
      expect(snap.rows % 50).toBe(0);
      expect(snap.rows).toBeGreaterThanOrEqual(before);
      expect(snap.rows).toBeLessThanOrEqual(after);
      expect(b.manifest.counts.requests).toBe(200_000 + snap.rows);
    }
    expect(writer.exitCode).toBe(null);
  }, 60_000);
});
