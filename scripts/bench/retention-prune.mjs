#!/usr/bin/env node
// One prune run as `serve` runs it (dist/gateway/retention.js with the config's retention and the
// default batch sizing and pauses), on its own connection to the database, in its own process.
// Prints one JSON line: the run's result and the write-lock hold of every batch, vacuum step and
// checkpoint (measured inside each transaction, from BEGIN IMMEDIATE to COMMIT).
//
//   node scripts/bench/retention-prune.mjs CONFIG
import { join } from 'node:path';

const ROOT = new URL('../../', import.meta.url).pathname;
const { loadConfig } = await import(join(ROOT, 'dist/config.js'));
const { openDatabase } = await import(join(ROOT, 'dist/db/open.js'));
const { retentionPolicy } = await import(join(ROOT, 'dist/core/retention.js'));
const { retentionService } = await import(join(ROOT, 'dist/gateway/retention.js'));

const config = loadConfig(process.argv[2]);
const db = openDatabase(config.paths.db);
const batches = [];
const t0 = performance.timeOrigin + performance.now();
const svc = retentionService({
  db,
  path: config.paths.db,
  policy: retentionPolicy(config.retention),
  onBatch: (b) => batches.push({ at: performance.timeOrigin + performance.now(), ...b }),
});
const run = await svc.run();
db.close();
process.stdout.write(JSON.stringify({ start: t0, end: performance.timeOrigin + performance.now(), run, batches }) + '\n');
