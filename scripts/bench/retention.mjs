#!/usr/bin/env node
// Benchmark: log retention on a big database (issue 12, item 2).
//
// A gateway state made by the real `init`, with 1,000,000 request records and 200,000 connection
// events older than their retention ages (plus some young rows that stay). For each of RUNS runs,
// on a fresh copy of that database:
//   1. `add-peer` through the real CLI (bin/wg-ollama.js, same state dir) IDLE times on a quiet database;
//   2. a prune run as serve runs it (retention-prune.mjs: dist/gateway/retention.js, own process,
//      own connection) and, at the same moment, `add-peer` through the real CLI again and again
//      until the prune is done;
// and reports rows/s pruned, the write-lock hold of every batch (longest, median, p99), how long a
// writer like a peer change (retention-lockprobe.mjs, one write every 50 ms) waited for the lock
// during the prune and on the quiet database, and the add-peer times during the prune next to the
// idle ones. No namespaces: `serve` is not running
// (add-peer then commits and reports live: false, which is the part that contends for the lock).
//
//   node scripts/bench/retention.mjs      (after npm run build; ~3-5 min)
//   RT_ROWS=200000 RT_RUNS=1 node scripts/bench/retention.mjs   (smaller)
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, ROOT, run, must, now, summary, sleep } from './lib.mjs';

const ROWS = Number(process.env.RT_ROWS ?? 1_000_000);
const EVENTS = Number(process.env.RT_EVENTS ?? Math.round(ROWS / 5));
const RUNS = Number(process.env.RT_RUNS ?? 3);
const IDLE_ADDS = 5;
const MAX_ADDS_DURING = 60;
const OUT_DIR = process.env.BENCH_OUT || '/tmp/wgo-bench-results';
const WORK = process.env.RT_DIR ?? '/tmp/wgo-bench-rt';
const CONFIG = join(WORK, 'config.json');
const STATE = join(WORK, 'state');
const DAY = 86_400_000;

const { openDatabase } = await import(join(ROOT, 'dist/db/open.js'));

const log = (m) => process.stdout.write(`[retention ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const cli = (args, timeoutMs = 120_000) => run(process.execPath, [BIN, '--config', CONFIG, ...args], { timeoutMs });

/** One add-peer through the real CLI: wall time of the whole process, and its exit code. */
async function addPeer(name) {
  const r = await cli(['add-peer', name, '--json']);
  if (r.code !== 0) throw new Error(`add-peer ${name} exited ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
  return { name, ms: r.ms, start: r.end - r.ms, end: r.end };
}

async function populate() {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true, mode: 0o700 });
  await must(process.execPath, [BIN, '--config', CONFIG, 'init', '--endpoint', 'vpn.example.com:51820', '--ollama-host', '192.168.1.50', '--state-dir', STATE, '--json']);
  const db = openDatabase(join(STATE, 'wg-ollama.db'));
  const t0 = now();
  const nowMs = Date.now();
  const peers = 20;
  const insPeer = db.prepare(`INSERT INTO peers (name, address, address_int, public_key, status, created_at, updated_at) VALUES (?, ?, ?, ?, 'active', 0, 0)`);
  db.transaction(() => {
    for (let i = 1; i <= peers; i++) insPeer.run(`old${i}`, `10.66.0.${200 + i}`, 0x0a4200c8 + i, Buffer.alloc(32, i).toString('base64'));
  })();
  const ids = db.prepare(`SELECT id FROM peers`).pluck().all();
  const insReq = db.prepare(`INSERT INTO requests (guard, spool, guard_seq, at, peer_id, peer, source, method, path, endpoint, model,
      prompt_sha256, prompt_length, status, bytes_in, bytes_out, prompt_tokens, eval_tokens, ttfb_ms, duration_ms, auth)
    VALUES ('gpu1', 'spool1', ?, ?, ?, ?, '10.66.0.5', 'POST', '/api/chat', 'chat', 'llama3.2:latest', ?, 812, 200, 1400, 5200, 180, 420, 95.5, 4123.4, 'certificate')`);
  const insEv = db.prepare(`INSERT INTO connection_events (at, peer_id, kind, endpoint, rx_bytes, tx_bytes) VALUES (?, ?, 'traffic', '198.51.100.7:40001', 123456, 654321)`);
  const sha = 'ab'.repeat(32);
  // Old rows spread over 100-280 days ago (requests) and 31-211 days ago (events); then 1,000 young of each.
  const CHUNK = 50_000;
  let seq = 0;
  for (let done = 0; done < ROWS; done += CHUNK) {
    db.transaction(() => {
      for (let i = done; i < Math.min(ROWS, done + CHUNK); i++) {
        const p = ids[i % ids.length];
        insReq.run(++seq, nowMs - 280 * DAY + Math.floor((i / ROWS) * 180 * DAY), p, `old${(i % peers) + 1}`, sha);
      }
    })();
  }
  db.transaction(() => {
    for (let i = 0; i < EVENTS; i++) insEv.run(nowMs - 211 * DAY + Math.floor((i / EVENTS) * 180 * DAY), ids[i % ids.length]);
    for (let i = 0; i < 1000; i++) {
      insReq.run(++seq, nowMs - DAY + i * 60_000, ids[i % ids.length], `old${(i % peers) + 1}`, sha);
      insEv.run(nowMs - DAY + i * 60_000, ids[i % ids.length]);
    }
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  copyFileSync(join(STATE, 'wg-ollama.db'), join(WORK, 'template.db'));
  const bytes = statSync(join(WORK, 'template.db')).size;
  log(`populated ${ROWS} requests + ${EVENTS} events (old) + 1000 young each in ${Math.round(now() - t0)} ms; file ${(bytes / 1024 / 1024).toFixed(0)} MiB`);
  return { populateMs: now() - t0, fileBytes: bytes };
}

/** The lock probe (retention-lockprobe.mjs) in the background; stop() ends it and returns its waits. */
function lockProbe() {
  const child = spawn(process.execPath, [join(ROOT, 'scripts/bench/retention-lockprobe.mjs'), join(STATE, 'wg-ollama.db'), '50'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  const exited = new Promise((r) => child.once('exit', r));
  const killer = setTimeout(() => child.kill('SIGKILL'), 600_000);
  return {
    async stop() {
      child.kill('SIGTERM');
      await exited;
      clearTimeout(killer);
      return JSON.parse(out.trim().split('\n').pop());
    },
  };
}

function freshCopy() {
  for (const f of ['wg-ollama.db', 'wg-ollama.db-wal', 'wg-ollama.db-shm']) rmSync(join(STATE, f), { force: true });
  copyFileSync(join(WORK, 'template.db'), join(STATE, 'wg-ollama.db'));
}

const trim = (x) => {
  delete x.all;
  return x;
};

async function oneRun(r) {
  freshCopy();
  const idle = [];
  for (let i = 0; i < IDLE_ADDS; i++) idle.push(await addPeer(`idle-${r}-${i}`));
  const idleProbe = lockProbe();
  await sleep(3000);
  const probeIdle = await idleProbe.stop();
  const busyProbe = lockProbe();
  const prune = run(process.execPath, [join(ROOT, 'scripts/bench/retention-prune.mjs'), CONFIG], { timeoutMs: 300_000 });
  let finished = false;
  void prune.then(() => (finished = true));
  const during = [];
  // The prune process needs a moment to start; adds run back to back (with a 50 ms gap) while it runs.
  await sleep(300);
  for (let i = 0; i < MAX_ADDS_DURING && !finished; i++) {
    during.push(await addPeer(`busy-${r}-${i}`));
    await sleep(50);
  }
  const p = await prune;
  const probeBusy = await busyProbe.stop();
  if (p.code !== 0) throw new Error(`prune exited ${p.code}: ${p.stderr.slice(0, 500)}`);
  const out = JSON.parse(p.stdout.trim().split('\n').pop());
  const pruneBatches = out.batches.filter((b) => ['requests', 'connections', 'audit', 'tokenDays'].includes(b.target));
  const vacuumSteps = out.batches.filter((b) => b.target === 'vacuum');
  // Holds over 20 ms: how much of them this process spent on the CPU (the rest: waiting for it, or for I/O).
  const slow = out.batches.filter((b) => b.target !== 'wal' && b.heldMs > 20);
  const lastPrune = pruneBatches.length ? pruneBatches[pruneBatches.length - 1].at : out.start;
  const deleted = out.run.deleted.requests + out.run.deleted.connections;
  // add-peer runs that overlapped the prune process at all.
  const overlapped = during.filter((a) => a.start < out.end && a.end > out.start);
  const holds = out.batches.filter((b) => b.target !== 'wal').map((b) => b.heldMs);
  const res = {
    run: r,
    deleted: out.run.deleted,
    batches: out.run.batches,
    pruneMs: lastPrune - out.start,
    totalMs: out.end - out.start,
    rowsPerSec: Math.round(deleted / ((lastPrune - out.start) / 1000)),
    vacuumedPages: out.run.vacuumedPages,
    longestHoldMs: out.run.longestHoldMs,
    vacuumMs: vacuumSteps.length ? vacuumSteps[vacuumSteps.length - 1].at - lastPrune : 0,
    slowHolds: slow.map((b) => ({ target: b.target, rows: b.rows, heldMs: Math.round(b.heldMs * 10) / 10, cpuMs: Math.round((b.cpuMs ?? NaN) * 10) / 10 })),
    holdByKind: Object.fromEntries(['requests', 'connections', 'tokenDays', 'vacuum', 'checkpoint', 'wal'].map((k) => [k, summary(out.batches.filter((b) => b.target === k).map((b) => b.heldMs))]).map(([k, s]) => [k, { n: s.n, median: s.median, max: s.max }])),
    holdP99Ms: holds.sort((a, b) => a - b)[Math.floor(holds.length * 0.99)] ?? null,
    batchRows: summary(pruneBatches.map((b) => b.rows)),
    fileBytesAfter: out.run.size.fileBytes,
    lockWaitIdleMs: trim(summary(probeIdle.waits)),
    lockWaitDuringMs: trim(summary(probeBusy.waits)),
    lockWaitDuringP99Ms: probeBusy.waits.sort((a, b) => a - b)[Math.floor(probeBusy.waits.length * 0.99)] ?? null,
    addPeerIdleMs: summary(idle.map((a) => a.ms)),
    addPeerDuringMs: summary(overlapped.map((a) => a.ms)),
  };
  delete res.batchRows.all;
  delete res.addPeerIdleMs.all;
  log(`run ${r}: ${deleted} rows in ${Math.round(res.pruneMs)} ms (${res.rowsPerSec}/s), ${res.batches} batches, longest hold ${res.longestHoldMs.toFixed(1)} ms; lock wait of a writer idle ${res.lockWaitIdleMs.median}/${res.lockWaitIdleMs.max} ms, during ${res.lockWaitDuringMs.median}/${res.lockWaitDuringP99Ms?.toFixed(1)}/${res.lockWaitDuringMs.max} ms (median/p99/max, n=${res.lockWaitDuringMs.n}); add-peer idle ${res.addPeerIdleMs.median} ms, during ${res.addPeerDuringMs.median} ms (n=${res.addPeerDuringMs.n}, ${res.addPeerDuringMs.min}-${res.addPeerDuringMs.max})`);
  return res;
}

/** The one-time rebuild of an older database (`wg-ollama vacuum`) at this size, for VACUUM_AT_START_MAX_BYTES. */
async function vacuumCost() {
  freshCopy();
  const db = openDatabase(join(STATE, 'wg-ollama.db'));
  db.pragma('auto_vacuum = NONE');
  db.close();
  const r = await cli(['vacuum', '--json'], 600_000);
  if (r.code !== 0) throw new Error(`vacuum exited ${r.code}: ${r.stderr.slice(0, 300)}`);
  const j = JSON.parse(r.stdout);
  log(`wg-ollama vacuum of the ${(j.beforeBytes / 1024 / 1024).toFixed(0)} MiB database: ${j.durationMs} ms (process ${Math.round(r.ms)} ms)`);
  return { ...j, processMs: r.ms };
}

const cpu = spawnSync('uptime', { encoding: 'utf8' }).stdout.trim();
log(`rows ${ROWS}, events ${EVENTS}, runs ${RUNS}; ${cpu}`);
const setup = await populate();
const runs = [];
for (let r = 1; r <= RUNS; r++) runs.push(await oneRun(r));
const vacuum = process.env.RT_VACUUM === '0' ? null : await vacuumCost();
const pick = (f) => summary(runs.map(f));
const result = {
  when: new Date().toISOString(),
  rows: ROWS,
  events: EVENTS,
  setup,
  uptime: cpu,
  summary: {
    rowsPerSec: pick((x) => x.rowsPerSec),
    pruneMs: pick((x) => x.pruneMs),
    totalMs: pick((x) => x.totalMs),
    vacuumMs: pick((x) => x.vacuumMs),
    longestHoldMs: pick((x) => x.longestHoldMs),
    holdP99Ms: pick((x) => x.holdP99Ms),
    lockWaitDuringMaxMs: pick((x) => x.lockWaitDuringMs.max),
    lockWaitDuringP99Ms: pick((x) => x.lockWaitDuringP99Ms),
    lockWaitIdleMaxMs: pick((x) => x.lockWaitIdleMs.max),
    addPeerIdleMedianMs: pick((x) => x.addPeerIdleMs.median),
    addPeerDuringMedianMs: pick((x) => x.addPeerDuringMs.median),
    addPeerDuringMaxMs: pick((x) => x.addPeerDuringMs.max),
  },
  runs,
  vacuum,
};
mkdirSync(OUT_DIR, { recursive: true });
writeFileSync(join(OUT_DIR, 'retention.json'), JSON.stringify(result, null, 2) + '\n');
log(`summary ${JSON.stringify(result.summary)}`);
rmSync(WORK, { recursive: true, force: true });
