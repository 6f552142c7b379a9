/**
 * Log retention in the real daemon (issue 12, item 2): `serve` prunes what its config no longer
 * keeps soon after it starts, keeps what is young, exposes it on /metrics, and `doctor` reports
 * the database against its ceiling.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/open.js';
import { createGateway, createLab, waitFor, type Gateway, type Lab } from './harness.js';

const DAY = 86_400_000;

describe('retention in serve', () => {
  let lab: Lab;
  let gw: Gateway;
  let dbPath: string;

  beforeAll(async () => {
    lab = await createLab('rt');
    gw = await createGateway(lab, 'wgort');
    const cfg = JSON.parse(readFileSync(gw.configFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(gw.configFile, JSON.stringify({ ...cfg, retention: { requests: '30d', connections: '7d' } }));
    dbPath = join(cfg.stateDir as string, 'wg-ollama.db');
    await gw.cliJson('add-peer', 'ann');
    // Old and young rows, written as guards and the monitor would have written them.
    const db = openDatabase(dbPath);
    const now = Date.now();
    const req = db.prepare(`INSERT INTO requests (guard, spool, guard_seq, at, peer, source, status, bytes_in, bytes_out, duration_ms) VALUES ('gpu1', 's', ?, ?, 'ann', '10.66.0.2', 200, 1, 2, 3)`);
    const ev = db.prepare(`INSERT INTO connection_events (at, peer_id, kind) VALUES (?, (SELECT id FROM peers WHERE name = 'ann'), 'handshake')`);
    db.transaction(() => {
      for (let i = 0; i < 5000; i++) req.run(i + 1, now - 40 * DAY + i);
      for (let i = 0; i < 10; i++) req.run(6000 + i, now - DAY + i);
      for (let i = 0; i < 300; i++) ev.run(now - 10 * DAY + i);
      for (let i = 0; i < 5; i++) ev.run(now - 3600_000 + i);
    })();
    db.close();
    await gw.start();
  });
  afterAll(async () => {
    await lab?.cleanup();
  });

  it('prunes old rows soon after start, keeps young ones, and says so on /metrics', async () => {
    const left = (table: string): number => {
      const db = openDatabase(dbPath, { readonly: true });
      try {
        return db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
      } finally {
        db.close();
      }
    };
    await waitFor(() => left('requests') === 10, 30_000, 'serve to prune the old request records');
    // Connection events are pruned in a later batch of the same run than requests: wait for it too.
    await waitFor(() => left('connection_events') < 300, 10_000, 'serve to prune the old connection events');
    expect(left('connection_events')).toBeGreaterThanOrEqual(5);
    // The guard's highest stored seq outlives its rows (migration 9).
    const db = openDatabase(dbPath, { readonly: true });
    expect(db.prepare(`SELECT seq FROM request_spool_seqs WHERE guard = 'gpu1' AND spool = 's'`).pluck().get()).toBe(5000);
    db.close();
    let metrics = '';
    await waitFor(async () => {
      metrics = (await lab.exec(lab.ns('gw'), 'curl', ['-s', 'http://127.0.0.1:9477/metrics'])).stdout;
      return metrics.includes('wgo_retention_pruned_rows_total{log="connections"}');
    }, 10_000, 'the prune run to finish');
    expect(metrics).toContain('wgo_retention_pruned_rows_total{log="requests"} 5000');
    expect(metrics).toMatch(/wgo_db_size_bytes\{part="used"\} \d+/);
    expect(metrics).toContain('wgo_db_max_bytes 2147483648');
    expect(metrics).toMatch(/wgo_retention_last_run_longest_lock_hold_seconds \d/);
    expect(metrics).toContain('wgo_db_auto_vacuum_incremental 1');
  });

  it('doctor reports the database against its ceiling', async () => {
    const r = await gw.cli('doctor', '--json');
    const checks = JSON.parse(r.stdout) as { check: string; status: string; detail: string }[];
    expect(checks.find((c) => c.check === 'database size')).toMatchObject({ status: 'ok', detail: expect.stringContaining('of the 2.0 GiB ceiling') });
    expect(checks.find((c) => c.check === 'database space reuse')).toMatchObject({ status: 'ok' });
  });
});
