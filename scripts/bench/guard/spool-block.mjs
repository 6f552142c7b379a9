#!/usr/bin/env node
// How long the guard's spool writes block the event loop (issue 13, item 3), and what moving them
// to the spool's writer thread (dist/guard/spool-thread.js) changes.
//
// Each run is a child process with the real audit trail (dist/guard/audit.js: the recorder, its
// 50 ms deadline for charged records) writing to a real spool file (WAL, synchronous = FULL) on
// the state disk, fed --rate records a second (every one charged tokens, so a flush every 50 ms:
// the worst case), while a keep-alive HTTP client in the same process sends one small request at
// a time to an HTTP server in the same process (its latency includes whatever blocks the loop).
// Measured after a 1 s warm-up: perf_hooks.monitorEventLoopDelay (1 ms resolution), the request
// round trips, and the time each flush spends on the event loop (mode "sync": the whole append
// with its commit and fsync; mode "thread": handing the batch to the thread).
//
//   node scripts/bench/guard/spool-block.mjs [--runs 3] [--seconds 10] [--rate 400] [--dir DIR]
// Runs sync and thread interleaved, --runs times each, prints one line per run (with the load
// average before and after) and the medians and ranges. `npm run build` first.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { dist, printRunSummary } from './common.mjs';

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '400' },
    dir: { type: 'string', default: '/var/tmp' },
  },
});
const seconds = Number(values.seconds);
const rate = Number(values.rate);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const pct = (xs, p) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function child(mode) {
  const { createAuditTrail } = await dist('guard/audit.js');
  const { guardMetrics } = await dist('guard/metrics.js');
  const { openSpool } = await dist('guard/spool.js');
  const { startSpoolThread } = await dist('guard/spool-thread.js');
  const dir = mkdtempSync(join(values.dir, 'wgo-spool-block-'));
  const path = join(dir, 'spool.db');
  const spool = openSpool(path);
  const writer = mode === 'thread' ? startSpoolThread(path, { maxBytes: 1 << 30 }) : null;
  const flushes = [];
  const target = writer ?? spool;
  const timed = {
    append(batch) {
      const t0 = performance.now();
      const r = target.append(batch);
      flushes.push(performance.now() - t0);
      return r;
    },
    probe: () => target.probe(),
  };
  const silent = { info() {}, warn() {}, error: (o, m) => process.stderr.write(`${m} ${JSON.stringify(o)}\n`) };
  const audit = createAuditTrail({ spool: timed, mode: 'refuse', metrics: guardMetrics(new Registry()), log: silent });
  const server = http.createServer((req, res) => res.end('{"ok":true}'));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = () => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: server.address().port, path: '/', agent }, (res) => {
      res.resume();
      res.on('end', resolve);
    }).on('error', reject);
  });

  let n = 0;
  const record = () => audit.record({
    at: Date.now(), peer: 'bench', certSerial: '01', source: '127.0.0.1', method: 'POST', path: '/api/chat', endpoint: 'chat',
    model: 'llama3.2:latest', promptSha256: 'a'.repeat(64), promptLength: 200, promptText: null, status: 200, bytesIn: 300, bytesOut: 4000,
    promptTokens: 20, evalTokens: 100 + (n++ % 50), ttfbMs: 12, durationMs: 900, refusal: null,
  });
  const tickMs = 5;
  let owed = 0;
  const feeder = setInterval(() => {
    owed += (rate * tickMs) / 1000;
    for (; owed >= 1; owed--) record();
  }, tickMs);

  const eld = monitorEventLoopDelay({ resolution: 1 });
  const latencies = [];
  let measuring = false;
  let running = true;
  const client = (async () => {
    while (running) {
      const t0 = performance.now();
      await get();
      if (measuring) latencies.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  await new Promise((r) => setTimeout(r, 1000));
  flushes.length = 0;
  eld.enable();
  measuring = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  eld.disable();
  measuring = false;
  running = false;
  clearInterval(feeder);
  await client;
  await audit.flush();
  await audit.stop();
  await writer?.close();
  const spooled = spool.count();
  spool.close();
  server.close();
  agent.destroy();
  rmSync(dir, { recursive: true, force: true });
  const ms = (ns) => ns / 1e6;
  process.stdout.write(JSON.stringify({
    mode,
    eldP50: ms(eld.percentile(50)), eldP99: ms(eld.percentile(99)), eldMax: ms(eld.max),
    reqP50: pct(latencies, 50), reqP99: pct(latencies, 99), reqMax: Math.max(...latencies), requests: latencies.length,
    flushes: flushes.length, flushP50: pct(flushes, 50), flushP99: pct(flushes, 99), flushMax: Math.max(...flushes),
    loopMsPerSec: flushes.reduce((a, b) => a + b, 0) / (wall / 1000),
    cpuPct: ((cpu.user + cpu.system) / 1000 / wall) * 100,
    spooled,
  }) + '\n');
}

if (values.child) {
  await child(values.child);
} else {
  const runs = Number(values.runs);
  const results = { sync: [], thread: [] };
  const f = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  console.log(`spool-block: ${rate} charged records/s, ${seconds} s per run, ${runs} runs per mode (interleaved), spool in ${values.dir}`);
  for (let i = 0; i < runs; i++) {
    for (const mode of ['sync', 'thread']) {
      const before = load();
      const r = spawnSync(process.execPath, [new URL(import.meta.url).pathname, '--child', mode, '--seconds', String(seconds), '--rate', String(rate), '--dir', values.dir], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`run ${mode} failed: ${r.stderr}`);
      const x = JSON.parse(r.stdout.trim().split('\n').pop());
      results[mode].push(x);
      console.log(`run ${i + 1} ${mode.padEnd(6)} load ${before} -> ${load()} | loop delay p50 ${f(x.eldP50)} p99 ${f(x.eldP99)} max ${f(x.eldMax)} ms | request p50 ${f(x.reqP50)} p99 ${f(x.reqP99)} max ${f(x.reqMax)} ms (${x.requests}) | on the loop per flush p50 ${f(x.flushP50)} p99 ${f(x.flushP99)} ms (${x.flushes} flushes, ${f(x.loopMsPerSec)} ms/s) | cpu ${f(x.cpuPct)} % | spooled ${x.spooled}`);
    }
  }
  const keys = ['eldP50', 'eldP99', 'eldMax', 'reqP50', 'reqP99', 'flushP50', 'flushP99', 'loopMsPerSec', 'cpuPct'];
  printRunSummary(results, ['sync', 'thread'], keys);
}
