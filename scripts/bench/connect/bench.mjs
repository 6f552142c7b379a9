#!/usr/bin/env node
// The connector's added cost (issue 9, "Benchmarks"): client → connector → guard against
// client → guard with the certificate, in the same run, on 127.0.0.1.
//
// Processes (each its own, tracked by PID and killed at the end): the simulator
// (../guard/sim.mjs), the real guard (../guard/guard-server.mjs: policy, audit spool and
// metrics on, as in production), the shipped connector artefact
// (dist/connect/wg-ollama-connect.mjs with a connect profile), and the load generator
// (../guard/load.mjs).
//   1. small requests (GET /api/version) at concurrency 1 and 16: requests/s, p50/p99, and
//      CPU per request of the guard and of the connector;
//   2. streams (simulator 50 tokens/s, 50 tokens each), 1 and 50 at once: one-way delay per
//      chunk (simulator write → client read, CLOCK_MONOTONIC) and time to first byte.
// Repetitions alternate the order of the two paths. Results: $BENCH_OUT/connect.json and
// connect.md (default /tmp/wgo-bench-results).
//   node scripts/bench/connect/bench.mjs        (after npm run build; ~3 min)
//   CB_REPS=1 CB_SECONDS=1 node scripts/bench/connect/bench.mjs   (smoke test, ~1 min)
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { HERE as GUARD_BENCH, ROOT, boundRun, canConnect, dist, freePort, killAll, makeCertificates, median, round, runOnce, sleep, start, stop } from '../guard/common.mjs';

const REPS = Number(process.env.CB_REPS || 3);
const SECONDS = Number(process.env.CB_SECONDS || 2.5);
const OUT_DIR = process.env.BENCH_OUT || '/tmp/wgo-bench-results';
const DEADLINE_MS = Number(process.env.CB_DEADLINE_S || 600) * 1000;
const log = boundRun(DEADLINE_MS);

const node = process.execPath;
const dir = mkdtempSync(join(tmpdir(), 'wgo-connect-bench-'));
const bundle = join(ROOT, 'dist/connect/wg-ollama-connect.mjs');

async function load(args, timeoutMs = 60_000) {
  const r = await runOnce(node, [join(GUARD_BENCH, 'load.mjs'), '--tls-dir', dir, ...args], { timeoutMs });
  try {
    const o = JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
    if (o.error) log(`load.mjs: ${o.error.slice(0, 300)}`);
    return o;
  } catch {
    log(`load.mjs exited ${r.code}: ${r.stderr.slice(-300)}`);
    return { error: 'no result' };
  }
}

async function main() {
  log(`machine: ${cpus().length} cores; reps ${REPS}, ${SECONDS} s per cell`);
  await makeCertificates(dir);
  const sim = start(node, [join(GUARD_BENCH, 'sim.mjs'), '--listen', '127.0.0.1:0', '--ctl', '127.0.0.1:0', '--token-rate', '50', '--tokens', '50'], { log: join(dir, 'sim.err') });
  const sm = await sim.waitLine(/"listening":(\d+),"ctl":(\d+)/, 15_000);
  const simPort = Number(sm[1]);
  const ctl = `http://127.0.0.1:${sm[2]}`;
  const guard = start(node, [join(GUARD_BENCH, 'guard-server.mjs'), '--dir', dir, '--listen', '127.0.0.1:0', '--upstream', `http://127.0.0.1:${simPort}`], { log: join(dir, 'guard.err') });
  const gm = await guard.waitLine(/"listening":(\d+)/, 20_000);
  const guardUrl = `https://127.0.0.1:${gm[1]}`;

  const { renderConnectProfile } = await dist('core/connect-profile.js');
  const profile = join(dir, 'bench.connect.json');
  writeFileSync(profile, renderConnectProfile({
    peer: 'bench', guardUrl, ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    certificate: readFileSync(join(dir, 'client.pem'), 'utf8'), key: readFileSync(join(dir, 'client.key'), 'utf8'),
  }), { mode: 0o600 });
  chmodSync(profile, 0o600);
  const cport = await freePort();
  const connector = start(node, [bundle, profile, '--listen', `127.0.0.1:${cport}`], { log: join(dir, 'connector.err') });
  for (let i = 0; i < 100 && !(await canConnect(cport)); i++) await sleep(50);
  if (!(await canConnect(cport))) throw new Error(`the connector did not listen: ${connector.stderr()}`);

  const paths = [
    { name: 'direct', url: guardUrl, pids: [guard.pid] },
    { name: 'connector', url: `http://127.0.0.1:${cport}`, pids: [guard.pid, connector.pid], connectorPid: connector.pid },
  ];
  const results = { machine: { cores: cpus().length, model: cpus()[0]?.model }, reps: REPS, seconds: SECONDS, rps: [], streams: [] };

  // Warm both paths (JIT, pools) before anything is measured.
  for (const p of paths) await load(['--mode', 'rps', '--target', p.url, '--concurrency', '16', '--warmup', '0', '--duration', '1', '--request', 'version']);

  log('1. small requests (GET /api/version)');
  for (let rep = 0; rep < REPS; rep++) {
    for (const c of [1, 16]) {
      const order = rep % 2 === 0 ? paths : [...paths].reverse();
      for (const p of order) {
        const r = await load(['--mode', 'rps', '--target', p.url, '--concurrency', String(c), '--warmup', '0.5', '--duration', String(SECONDS), '--request', 'version', '--pids', String(guard.pid)]);
        // The connector's own CPU, read the same way (a second run would not be the same window): from /proc around the cell.
        results.rps.push({ rep, path: p.name, ...r });
        log(`   rep ${rep} c=${c} ${p.name}: ${r.rps} req/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, guard CPU ${r.proxyCpuUsPerReq} µs/req`);
      }
    }
  }
  log('   connector CPU per request (c=16, separate cells)');
  for (let rep = 0; rep < REPS; rep++) {
    const r = await load(['--mode', 'rps', '--target', paths[1].url, '--concurrency', '16', '--warmup', '0.5', '--duration', String(SECONDS), '--request', 'version', '--pids', String(connector.pid)]);
    results.rps.push({ rep, path: 'connector-cpu', ...r });
  }

  log('2. streams (50 tokens/s, 50 tokens each)');
  for (let rep = 0; rep < REPS; rep++) {
    for (const n of [1, 50]) {
      const order = rep % 2 === 0 ? paths : [...paths].reverse();
      for (const p of order) {
        const r = await load(['--mode', 'stream', '--target', p.url, '--streams', String(n), '--rounds', n === 1 ? '5' : '2', '--ctl', ctl, '--tag', `${p.name}-${rep}-${n}`]);
        results.streams.push({ rep, path: p.name, ...r });
        log(`   rep ${rep} ${n} streams ${p.name}: one-way p50 ${r.onewayP50Us} µs, p99 ${r.onewayP99Us} µs, TTFB p50 ${r.ttfbP50Ms} ms`);
      }
    }
  }

  await stop(connector);
  await stop(guard);
  await stop(sim);
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, 'connect.json'), JSON.stringify(results, null, 2));
  const md = summarise(results);
  writeFileSync(join(OUT_DIR, 'connect.md'), md);
  process.stdout.write(md);
}

function summarise(r) {
  const cell = (path, key, filter) => r.rps.filter((x) => x.path === path && filter(x) && !x.error).map((x) => x[key]);
  const range = (xs, d = 1) => (xs.length ? `${round(Math.min(...xs), d)}–${round(Math.max(...xs), d)}` : '-');
  const L = [];
  L.push(`Connector vs direct mTLS to the guard, same run, ${r.machine.cores} cores (${r.machine.model}), ${r.reps} repetitions; medians (ranges).`, '');
  L.push('| GET /api/version | req/s direct | req/s connector | ratio | p50 ms direct | p50 ms connector | p99 ms direct | p99 ms connector | added per-request time |');
  L.push('|---|---|---|---|---|---|---|---|---|');
  for (const c of [1, 16]) {
    const f = (x) => x.concurrency === c;
    const dr = cell('direct', 'rps', f);
    const cr = cell('connector', 'rps', f);
    // Per-request time: latency at concurrency 1 (one request at a time); 1 / throughput at 16 (the machine is saturated).
    const added = c === 1 ? median(cell('connector', 'p50Ms', f)) / median(cell('direct', 'p50Ms', f)) - 1 : median(dr) / median(cr) - 1;
    L.push(`| concurrency ${c} | ${round(median(dr), 0)} (${range(dr, 0)}) | ${round(median(cr), 0)} (${range(cr, 0)}) | ${round(median(cr) / median(dr), 2)} | ${round(median(cell('direct', 'p50Ms', f)), 3)} | ${round(median(cell('connector', 'p50Ms', f)), 3)} | ${round(median(cell('direct', 'p99Ms', f)), 3)} | ${round(median(cell('connector', 'p99Ms', f)), 3)} | +${round(added * 100, 0)} % |`);
  }
  const gd = cell('direct', 'proxyCpuUsPerReq', (x) => x.concurrency === 16);
  const gc = cell('connector', 'proxyCpuUsPerReq', (x) => x.concurrency === 16);
  const cc = cell('connector-cpu', 'proxyCpuUsPerReq', () => true);
  L.push('', `CPU per request at concurrency 16: guard ${round(median(gd), 1)} µs direct (${range(gd)}), ${round(median(gc), 1)} µs behind the connector (${range(gc)}); the connector itself ${round(median(cc), 1)} µs (${range(cc)}).`, '');
  L.push('| streams | one-way per chunk p50 / p99 µs: direct | connector | added p50 µs | TTFB p50 ms: direct / connector |');
  L.push('|---|---|---|---|---|');
  for (const n of [1, 50]) {
    const s = (path, key) => r.streams.filter((x) => x.path === path && x.streams === n && !x.error).map((x) => x[key]);
    const p50d = median(s('direct', 'onewayP50Us'));
    const p50c = median(s('connector', 'onewayP50Us'));
    L.push(`| ${n} | ${round(p50d, 0)} / ${round(median(s('direct', 'onewayP99Us')), 0)} | ${round(p50c, 0)} / ${round(median(s('connector', 'onewayP99Us')), 0)} | +${round(p50c - p50d, 0)} (per-rep ${range(s('connector', 'onewayP50Us').map((v, i) => v - (s('direct', 'onewayP50Us')[i] ?? NaN)), 0)}) | ${round(median(s('direct', 'ttfbP50Ms')), 2)} / ${round(median(s('connector', 'ttfbP50Ms')), 2)} |`);
  }
  return L.join('\n') + '\n';
}

try {
  await main();
} catch (e) {
  log(`failed: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  killAll();
  rmSync(dir, { recursive: true, force: true });
}
