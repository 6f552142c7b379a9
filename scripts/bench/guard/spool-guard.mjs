#!/usr/bin/env node
// Request latency through the real guard while request records flow to its spool (issue 13,
// item 3): the spool written on the event loop ("sync", as before) against the spool's writer
// thread ("thread", dist/guard/spool-thread.js, as `wg-ollama guard` now runs it).
//
// The guard child is wired like guard-server.mjs (createGuard, one peer, the bench certificates
// of common.mjs, DEFAULT_POLICY with limits that never refuse) plus the audit trail
// (dist/guard/audit.js) over the chosen spool. The load: --streams clients, each sending
// POST /api/generate (stream false, so every record charged tokens: a spool write every 50 ms)
// one after the other to the simulator through the guard; a probe client sends GET /api/version
// one at a time and its round trips are the latency reported. The guard measures its own event
// loop delay (perf_hooks.monitorEventLoopDelay, 1 ms resolution) after a 1 s warm-up.
//
//   node scripts/bench/guard/spool-guard.mjs [--runs 3] [--seconds 10] [--streams 16]
// `npm run build` first; wrap in `flock /tmp/wgo-bench.lock`.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { Pool } from 'undici';
import { clientTls, dist, freePort, printRunSummary, makeCertificates, pct as pctSorted, sleep, sorted, start, stop } from './common.mjs';

const pct = (xs, p) => pctSorted(sorted(xs), p);
const { values } = parseArgs({
  options: {
    'guard-child': { type: 'string' },
    dir: { type: 'string' },
    upstream: { type: 'string' },
    port: { type: 'string' },
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    streams: { type: 'string', default: '16' },
  },
});

async function guardChild(mode) {
  const { createGuard } = await dist('guard/server.js');
  const { guardMetrics } = await dist('guard/metrics.js');
  const { createAuditTrail } = await dist('guard/audit.js');
  const { openSpool } = await dist('guard/spool.js');
  const { startSpoolThread } = await dist('guard/spool-thread.js');
  const { DEFAULT_POLICY, mergePolicy } = await dist('core/policy.js');
  const { limitsSchema } = await dist('core/limits.js');
  const dir = values.dir;
  const tls = { ca: readFileSync(join(dir, 'ca.pem'), 'utf8'), cert: readFileSync(join(dir, 'server.pem'), 'utf8'), key: readFileSync(join(dir, 'server.key'), 'utf8') };
  const peer = JSON.parse(readFileSync(join(dir, 'peer.json'), 'utf8'));
  const policy = mergePolicy(DEFAULT_POLICY, { models: ['llama3.2'], tokensPerDay: 1e12, requestsPerMinute: 1e9, burst: 1e9, maxStreams: 1e6 });
  const path = join(mkdtempSync(join('/var/tmp', 'wgo-spool-guard-')), 'spool.db');
  const spool = openSpool(path);
  const thread = mode === 'thread' ? startSpoolThread(path, { maxBytes: 1 << 30 }) : null;
  const log = { info() {}, warn() {}, error: (o, m) => process.stderr.write(`error ${m} ${JSON.stringify(o)}\n`) };
  const metrics = guardMetrics(new Registry());
  const audit = createAuditTrail({ spool: thread ?? spool, mode: 'refuse', metrics, log });
  const guard = createGuard({
    tls, upstream: values.upstream, metrics, record: audit.record, log, audit,
    limits: limitsSchema.parse({ maxUpstreamPerPeer: limitsSchema.parse({}).maxUpstreamRequests }),
  });
  guard.setPeers({ version: 'b1', peers: [{ name: peer.name, address: peer.address, serial: peer.serial, expiresAt: peer.expiresAt, policy }], logPrompts: false, tokensToday: {}, day: new Date().toISOString().slice(0, 10) });
  const eld = monitorEventLoopDelay({ resolution: 1 });
  guard.server.listen({ host: '127.0.0.1', port: Number(values.port) }, () => process.stdout.write(`${JSON.stringify({ listening: true })}\n`));
  setTimeout(() => eld.enable(), 1000);
  process.once('SIGTERM', () => void (async () => {
    eld.disable();
    await guard.close();
    await audit.flush();
    await audit.stop();
    await thread?.close();
    const spooled = spool.count();
    spool.close();
    rmSync(join(path, '..'), { recursive: true, force: true });
    process.stdout.write(`${JSON.stringify({ eldP50: eld.percentile(50) / 1e6, eldP99: eld.percentile(99) / 1e6, eldMax: eld.max / 1e6, spooled })}\n`);
    process.exit(0);
  })());
}

async function main() {
  const runs = Number(values.runs);
  const seconds = Number(values.seconds);
  const streams = Number(values.streams);
  const dir = mkdtempSync(join(tmpdir(), 'wgo-spool-guard-certs-'));
  await makeCertificates(dir);
  const [simPort, ctlPort] = [await freePort(), await freePort()];
  const sim = start(process.execPath, [new URL('./sim.mjs', import.meta.url).pathname, '--listen', `127.0.0.1:${simPort}`, '--ctl', `127.0.0.1:${ctlPort}`, '--token-rate', '2000', '--tokens', '20']);
  await sleep(500);
  const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
  const f = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  const results = { sync: [], thread: [] };
  console.log(`spool-guard: ${streams} clients sending /api/generate (charged records) through the guard, a probe sending GET /api/version; ${seconds} s per run, ${runs} runs per mode (interleaved)`);
  try {
    for (let i = 0; i < runs; i++) {
      for (const mode of ['sync', 'thread']) {
        const before = load();
        const port = await freePort();
        const g = start(process.execPath, [new URL(import.meta.url).pathname, '--guard-child', mode, '--dir', dir, '--upstream', `http://127.0.0.1:${simPort}`, '--port', String(port)]);
        await g.waitLine(/listening/, 10_000);
        const tlsOpts = clientTls(dir);
        const pool = new Pool(`https://127.0.0.1:${port}`, { connect: { ...tlsOpts, localAddress: '127.0.0.1' }, connections: streams + 1 });
        let running = true;
        let measuring = false;
        let generated = 0;
        const lat = [];
        const worker = async () => {
          while (running) {
            const r = await pool.request({ method: 'POST', path: '/api/generate', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'llama3.2', prompt: 'hello there', stream: false }) });
            await r.body.text();
            if (measuring) generated++;
          }
        };
        const probe = async () => {
          while (running) {
            const t0 = performance.now();
            const r = await pool.request({ method: 'GET', path: '/api/version' });
            await r.body.text();
            if (measuring) lat.push(performance.now() - t0);
            await sleep(2);
          }
        };
        const all = [...Array.from({ length: streams }, worker), probe()];
        await sleep(1000);
        measuring = true;
        await sleep(seconds * 1000);
        measuring = false;
        running = false;
        await Promise.all(all);
        await pool.close();
        await stop(g, 10_000);
        const line = g.lines.filter((l) => l.startsWith('{"eld')).pop();
        if (!line) throw new Error(`the ${mode} guard ended without its figures: ${g.stderr().slice(-800)}`);
        const gx = JSON.parse(line);
        const x = { ...gx, reqP50: pct(lat, 50), reqP99: pct(lat, 99), reqMax: Math.max(...lat), probes: lat.length, genPerSec: generated / seconds };
        results[mode].push(x);
        console.log(`run ${i + 1} ${mode.padEnd(6)} load ${before} -> ${load()} | guard loop delay p50 ${f(x.eldP50)} p99 ${f(x.eldP99)} max ${f(x.eldMax)} ms | probe p50 ${f(x.reqP50)} p99 ${f(x.reqP99)} max ${f(x.reqMax)} ms (${x.probes}) | generate ${f(x.genPerSec)}/s | spooled ${x.spooled}`);
      }
    }
  } finally {
    await stop(sim);
    rmSync(dir, { recursive: true, force: true });
  }
  const keys = ['eldP99', 'eldMax', 'reqP50', 'reqP99', 'genPerSec'];
  printRunSummary(results, ['sync', 'thread'], keys);
}

if (values['guard-child']) await guardChild(values['guard-child']);
else await main();
