#!/usr/bin/env node
// A writer like a peer change: every INTERVAL ms one write transaction (BEGIN IMMEDIATE, one row
// in gateway_state, COMMIT with synchronous FULL and busy_timeout 30 s, as the CLI opens it),
// timing how long BEGIN IMMEDIATE waited for the write lock. Runs until SIGTERM (or MAX_MS),
// then prints one JSON line: { waits: [ms...], totals: [ms...] }.
//
//   node scripts/bench/retention-lockprobe.mjs DB [INTERVAL_MS]
import { join } from 'node:path';

const ROOT = new URL('../../', import.meta.url).pathname;
const { openDatabase } = await import(join(ROOT, 'dist/db/open.js'));
const db = openDatabase(process.argv[2]);
const interval = Number(process.argv[3] ?? 50);
const MAX_MS = 600_000;
const put = db.prepare(`INSERT INTO gateway_state (key, value) VALUES ('bench_lockprobe', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`);
const waits = [];
const totals = [];
let stop = false;
process.once('SIGTERM', () => (stop = true));
const t0 = Date.now();
while (!stop && Date.now() - t0 < MAX_MS) {
  const a = performance.now();
  db.exec('BEGIN IMMEDIATE');
  const b = performance.now();
  put.run(String(Date.now()));
  db.exec('COMMIT');
  waits.push(b - a);
  totals.push(performance.now() - a);
  await new Promise((r) => setTimeout(r, interval));
}
db.close();
process.stdout.write(JSON.stringify({ waits, totals }) + '\n');
