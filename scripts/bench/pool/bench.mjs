#!/usr/bin/env node
// The pool router's benchmark (issue 14, docs/gpu-pool.md). Separate processes on 127.0.0.1: one
// simulator per GPU host (scripts/bench/guard/sim.mjs: fixed token rate; the router's parallelism
// per host plays the GPU's), the guard as router (scripts/bench/guard/guard-server.mjs --pool),
// and this process as the clients (undici, mTLS, peers "bench" at 127.0.0.1 and "light" at
// 127.0.0.2). Three measurements, each repeated REPS times, medians and ranges:
//   1. throughput: aggregate tokens/s through the router with 1, 2 and 3 hosts of parallelism P,
//      kept busy (P per host in flight plus 4 queued), against linear (hosts × P × token rate);
//   2. the router's own cost: added TTFB and per-chunk gap against a plain guard on the same
//      simulator, single streams, interleaved; and as deployed, the router forwarding over mTLS to
//      a member guard (guard-server.mjs --member) in front of the simulator, against one guard;
//   3. fairness: one host, P = 2; "bench" keeps 8 generations going (2 running, 6 queued); "light"
//      sends one request every 400 ms. Its wait (TTFB) with its own certificate (fair queue: its
//      own turn) against the same requests sent with bench's certificate (one queue: FIFO).
//
//   node scripts/bench/pool/bench.mjs [--reps 3] [--seconds 8]
// `npm run build` first; on a shared machine `flock /tmp/wgo-bench.lock`. Prints JSON and tables.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connect as tlsConnect } from 'node:tls';
import { Client } from 'undici';
import { HERE as GUARD_BENCH, killAll, makeCertificates, sleep, start, stop } from '../guard/common.mjs';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '3' }, seconds: { type: 'string', default: '8' } } });
const REPS = Number(values.reps);
const SECONDS = Number(values.seconds);
const RATE = 50;
const P = 2;
const node = process.execPath;
const dir = mkdtempSync(join(tmpdir(), 'wgo-pool-bench-'));
const log = (m) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${m}\n`);

async function startSim() {
  const p = start(node, [join(GUARD_BENCH, 'sim.mjs'), '--listen', '127.0.0.1:0', '--ctl', '127.0.0.1:0', '--token-rate', String(RATE), '--tokens', '1000'], { log: join(dir, 'sim.err') });
  const m = await p.waitLine(/"listening":(\d+)/, 15_000);
  return { ...p, port: Number(m[1]) };
}

async function startGuard(extra) {
  const p = start(node, [join(GUARD_BENCH, 'guard-server.mjs'), '--dir', dir, '--listen', '127.0.0.1:0', ...extra], { log: join(dir, 'guard.err') });
  const m = await p.waitLine(/"listening":(\d+)/, 20_000);
  return { ...p, url: `https://127.0.0.1:${m[1]}` };
}

/** undici's connector for a peer: its certificate, and for "light" its own source address (undici's options have no localAddress). */
const connectorOf = (who) => {
  const tls = {
    ca: readFileSync(join(dir, 'ca.pem')),
    cert: readFileSync(join(dir, who === 'light' ? 'light.pem' : 'client.pem')),
    key: readFileSync(join(dir, who === 'light' ? 'light.key' : 'client.key')),
    localAddress: who === 'light' ? '127.0.0.2' : '127.0.0.1',
  };
  return (opts, cb) => {
    const s = tlsConnect({ host: opts.hostname, port: Number(opts.port), ...tls, ALPNProtocols: ['http/1.1'] });
    s.setNoDelay(true);
    s.once('secureConnect', () => cb(null, s));
    s.once('error', (e) => cb(e, null));
  };
};

/** One streamed generation: TTFB, gaps between chunks, tokens (lines), status. */
async function generate(client, tokens) {
  const t0 = performance.now();
  const body = JSON.stringify({ model: 'llama3.2', prompt: 'bench', stream: true, options: { num_predict: tokens } });
  const r = await client.request({ method: 'POST', path: '/api/generate', headers: { 'content-type': 'application/json' }, body });
  let first = null;
  let last = null;
  const gaps = [];
  let lines = 0;
  for await (const chunk of r.body) {
    const now = performance.now();
    if (first === null) first = now;
    else gaps.push(now - last);
    last = now;
    for (const b of chunk) if (b === 10) lines++;
  }
  return { status: r.statusCode, ttfbMs: first === null ? null : first - t0, gaps, lines };
}

const clients = [];
/** A client with one connection: each loop of a measurement gets its own. */
const client = (url, who) => {
  const c = new Client(url, { connect: connectorOf(who), pipelining: 1, keepAliveTimeout: 60_000 });
  clients.push(c);
  return c;
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : null;
};
const spread = (xs) => ({ median: pct(xs, 50), min: Math.min(...xs), max: Math.max(...xs) });
const r1 = (x) => (x === null ? null : Math.round(x * 10) / 10);

async function throughput(hosts) {
  const sims = [];
  for (let i = 0; i < hosts; i++) sims.push(await startSim());
  const guard = await startGuard(['--upstream', `http://127.0.0.1:${sims[0].port}`, '--pool', sims.map((s, i) => `gpu${i + 1}=http://127.0.0.1:${s.port}/${P}`).join(','), '--queue-per-peer', '64']);
  const loops = hosts * P + 4;
  let tokens = 0;
  let counting = false;
  let errors = 0;
  const stopAt = performance.now() + (1 + SECONDS) * 1000;
  setTimeout(() => (counting = true), 1000);
  await Promise.all(
    Array.from({ length: loops }, async () => {
      const c = client(guard.url, 'bench');
      while (performance.now() < stopAt) {
        const t0 = performance.now();
        const r = await generate(c, 25).catch(() => ({ status: 0, lines: 0 }));
        if (r.status !== 200) {
          errors++;
          await sleep(50);
        } else if (counting && performance.now() <= stopAt) tokens += r.lines - 1; // the last line is the summary, not a token
        if (performance.now() - t0 < 1) await sleep(1);
      }
    }),
  );
  await stop(guard);
  for (const s of sims) await stop(s);
  const tps = tokens / SECONDS;
  return { hosts, loops, tokensPerSec: r1(tps), linear: hosts * P * RATE, ofLinear: Math.round((tps / (hosts * P * RATE)) * 100) / 100, errors };
}

async function routerCost() {
  const sim = await startSim();
  const router = await startGuard(['--upstream', `http://127.0.0.1:${sim.port}`, '--pool', `gpu1=http://127.0.0.1:${sim.port}/64`]);
  const plain = await startGuard(['--upstream', `http://127.0.0.1:${sim.port}`]);
  // As deployed: the router forwards over mTLS to a member guard in front of the GPU host's Ollama.
  const member = await startGuard(['--upstream', `http://127.0.0.1:${sim.port}`, '--member']);
  const deployed = await startGuard(['--upstream', `http://127.0.0.1:${sim.port}`, '--pool', `gpu1=${member.url}/64`]);
  const targets = { router: client(router.url, 'bench'), guard: client(plain.url, 'bench'), pool: client(deployed.url, 'bench') };
  const out = { router: { ttfb: [], gaps: [] }, guard: { ttfb: [], gaps: [] }, pool: { ttfb: [], gaps: [] } };
  const orders = [['guard', 'router', 'pool'], ['pool', 'guard', 'router'], ['router', 'pool', 'guard']];
  for (let i = 0; i < 40; i++) {
    for (const name of orders[i % 3]) {
      const r = await generate(targets[name], 10);
      if (i >= 4 && r.status === 200) {
        out[name].ttfb.push(r.ttfbMs);
        out[name].gaps.push(...r.gaps);
      }
    }
  }
  for (const p of [router, plain, deployed, member, sim]) await stop(p);
  const m = (n, k) => pct(out[n][k], 50);
  const us = (x) => Math.round(x * 1000);
  return {
    ttfbMs: { router: r1(m('router', 'ttfb')), guard: r1(m('guard', 'ttfb')), pool: r1(m('pool', 'ttfb')) },
    gapMs: { router: r1(m('router', 'gaps')), guard: r1(m('guard', 'gaps')), pool: r1(m('pool', 'gaps')) },
    addedTtfbUs: us(m('router', 'ttfb') - m('guard', 'ttfb')), addedGapUs: us(m('router', 'gaps') - m('guard', 'gaps')),
    // Router and member guard together, against one guard: what a peer pays for the pool.
    poolAddedTtfbUs: us(m('pool', 'ttfb') - m('guard', 'ttfb')), poolAddedGapUs: us(m('pool', 'gaps') - m('guard', 'gaps')),
  };
}

async function fairness(mode) {
  const sim = await startSim();
  const guard = await startGuard(['--upstream', `http://127.0.0.1:${sim.port}`, '--pool', `gpu1=http://127.0.0.1:${sim.port}/2`, '--queue-per-peer', '16']);
  let running = true;
  const heavy = Promise.all(
    Array.from({ length: 8 }, async () => {
      const c = client(guard.url, 'bench');
      while (running) await generate(c, 25).catch(() => sleep(50));
    }),
  );
  await sleep(1500); // the queue fills
  const who = mode === 'fair' ? 'light' : 'bench';
  const waits = [];
  await Promise.all(
    Array.from({ length: 15 }, async (_, i) => {
      await sleep(i * 400);
      const r = await generate(client(guard.url, who), 2);
      if (r.status === 200) waits.push(r.ttfbMs);
    }),
  );
  running = false;
  await heavy;
  await stop(guard);
  await stop(sim);
  return { mode, n: waits.length, p50Ms: r1(pct(waits, 50)), p99Ms: r1(pct(waits, 99)), maxMs: r1(Math.max(...waits)) };
}

const results = { date: new Date().toISOString(), loadavgAtStart: loadavg(), settings: { reps: REPS, seconds: SECONDS, tokenRate: RATE, parallel: P }, throughput: [], routerCost: [], fairness: [] };
try {
  await makeCertificates(dir, { secondPeer: true });
  for (let rep = 0; rep < REPS; rep++) {
    log(`rep ${rep + 1}: load ${loadavg()[0].toFixed(2)}`);
    for (const h of rep % 2 ? [3, 2, 1] : [1, 2, 3]) results.throughput.push({ rep, ...(await throughput(h)) });
    results.routerCost.push({ rep, ...(await routerCost()) });
    for (const mode of rep % 2 ? ['fifo', 'fair'] : ['fair', 'fifo']) results.fairness.push({ rep, ...(await fairness(mode)) });
  }
  results.loadavgAtEnd = loadavg();
  const L = [];
  L.push(`Pool router, ${REPS} repetitions (medians, ranges); load average ${results.loadavgAtStart.map((x) => x.toFixed(2)).join(' / ')} at start, ${results.loadavgAtEnd.map((x) => x.toFixed(2)).join(' / ')} at end.`, '');
  L.push('| hosts | tokens/s | linear | of linear | errors |', '|---|---|---|---|---|');
  for (const h of [1, 2, 3]) {
    const rows = results.throughput.filter((r) => r.hosts === h);
    const t = spread(rows.map((r) => r.tokensPerSec));
    const o = spread(rows.map((r) => r.ofLinear));
    L.push(`| ${h} | ${t.median} (${t.min}–${t.max}) | ${rows[0].linear} | **${o.median}** (${o.min}–${o.max}) | ${rows.reduce((a, r) => a + r.errors, 0)} |`);
  }
  const rc = (k) => spread(results.routerCost.map((r) => r[k]));
  L.push('', '| router against a plain guard, same simulator | median (range) |', '|---|---|');
  L.push(`| added TTFB µs (p50 of 36 streams each) | ${rc('addedTtfbUs').median} (${rc('addedTtfbUs').min}–${rc('addedTtfbUs').max}) |`);
  L.push(`| added gap between chunks µs (p50) | ${rc('addedGapUs').median} (${rc('addedGapUs').min}–${rc('addedGapUs').max}) |`);
  L.push(`| TTFB ms router / guard (p50) | ${spread(results.routerCost.map((r) => r.ttfbMs.router)).median} / ${spread(results.routerCost.map((r) => r.ttfbMs.guard)).median} |`);
  L.push(`| as deployed (router → member guard over mTLS → Ollama): added TTFB µs (p50) | ${rc('poolAddedTtfbUs').median} (${rc('poolAddedTtfbUs').min}–${rc('poolAddedTtfbUs').max}) |`);
  L.push(`| as deployed: added gap between chunks µs (p50) | ${rc('poolAddedGapUs').median} (${rc('poolAddedGapUs').min}–${rc('poolAddedGapUs').max}) |`);
  L.push('', '| light peer’s wait while a heavy peer saturates one host | p50 ms | p99 ms | max ms |', '|---|---|---|---|');
  for (const mode of ['fair', 'fifo']) {
    const rows = results.fairness.filter((r) => r.mode === mode);
    const s = (k) => spread(rows.map((r) => r[k]));
    L.push(`| ${mode === 'fair' ? 'fair queue (its own certificate)' : 'one queue, FIFO (the heavy peer’s certificate)'} | ${s('p50Ms').median} (${s('p50Ms').min}–${s('p50Ms').max}) | ${s('p99Ms').median} (${s('p99Ms').min}–${s('p99Ms').max}) | ${s('maxMs').median} |`);
  }
  process.stdout.write(`${JSON.stringify(results)}\n\n${L.join('\n')}\n`);
} finally {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  killAll();
  rmSync(dir, { recursive: true, force: true });
}
