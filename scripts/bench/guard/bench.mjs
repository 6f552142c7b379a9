#!/usr/bin/env node
// Guard vs nginx, side by side in one run (issue 3, "Benchmarks"). Started by run.sh.
//
// Processes: the simulator (sim.mjs), the guard (guard-server.mjs, 1 process), nginx
// (worker_processes 1, plus its idle master), and the load generator (load.mjs) — each its own
// process. Same simulator, same certificates, same worker count for both proxies.
//   1. keep-alive mTLS requests: GET /api/version and POST /api/embed (small) at concurrency
//      1, 16, 64 → requests/s, p50/p99, proxy CPU per request (/proc/PID/stat utime+stime);
//      plus the generator's ceilings: the simulator direct (plain HTTP) and nginx answering a
//      fixed body over the same mTLS (no proxying).
//   2. streams (simulator 50 tokens/s): per-chunk one-way delay (simulator write → client
//      read, CLOCK_MONOTONIC) and time to first byte, guard / nginx / direct, 1 and 50 streams.
//   3. handshakes: a new mTLS connection per request, full handshakes and with TLS 1.3
//      session-ticket resumption.
//   4. RSS with 1,000 and 5,000 open slow streams (simulator 1 token/s), fresh proxies.
// Repetitions alternate the order of guard and nginx. Raw results: $BENCH_OUT/guard.json.
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { HERE, boundRun, canConnect, childrenOf, freePort, killAll, makeCertificates, median, round, rssKbOf, runOnce, sleep, start, stop } from './common.mjs';

const QUICK = process.env.BENCH_QUICK === '1';
const REPS = Number(process.env.GB_REPS || (QUICK ? 1 : 3));
const OUT_DIR = process.env.BENCH_OUT || '/tmp/wgo-bench-results';
const DEADLINE_MS = Number(process.env.GB_DEADLINE_S || 840) * 1000;
const RPS_SECONDS = Number(process.env.GB_RPS_SECONDS || (QUICK ? 1 : 2.5));
const HOLD_STEPS = (process.env.GB_HOLD_STEPS || (QUICK ? '200,500' : '1000,5000')).split(',').map(Number);
const HOLD_REPS = Number(process.env.GB_HOLD_REPS || (QUICK ? 1 : 2));
const ONLY = new Set((process.env.GB_ONLY || 'rps,streams,handshakes,rss').split(','));
const t0 = Date.now();
const log = boundRun(DEADLINE_MS);

const dir = mkdtempSync(join(tmpdir(), 'wgo-guard-bench-'));
mkdirSync(join(dir, 'tmp'));
const node = process.execPath;
const script = (n) => join(HERE, n);

async function startSim(rate, tokens) {
  const p = start(node, [script('sim.mjs'), '--listen', '127.0.0.1:0', '--ctl', '127.0.0.1:0', '--token-rate', String(rate), '--tokens', String(tokens)], { log: join(dir, 'sim.err') });
  const m = await p.waitLine(/"listening":(\d+),"ctl":(\d+)/, 15_000);
  return { ...p, port: Number(m[1]), ctl: `http://127.0.0.1:${m[2]}`, pids: [p.pid] };
}

async function startGuard(simPort, extra = []) {
  const p = start(node, [script('guard-server.mjs'), '--dir', dir, '--listen', '127.0.0.1:0', '--upstream', `http://127.0.0.1:${simPort}`, ...extra], { log: join(dir, 'guard.err') });
  const m = await p.waitLine(/"listening":(\d+)/, 20_000);
  return { ...p, name: 'guard', port: Number(m[1]), pids: [p.pid], url: `https://127.0.0.1:${m[1]}` };
}

async function startNginx(simPort, tag) {
  const port = await freePort();
  const staticPort = await freePort();
  const conf = readFileSync(script('nginx.conf.template'), 'utf8')
    .replaceAll('@DIR@', dir)
    .replaceAll('@WORKERS@', '1')
    .replaceAll('@SIM_PORT@', String(simPort))
    .replaceAll('@PORT@', String(port))
    .replaceAll('@STATIC_PORT@', String(staticPort));
  const file = join(dir, `nginx-${tag}.conf`);
  writeFileSync(file, conf);
  const p = start('nginx', ['-p', dir, '-c', file], { log: join(dir, 'nginx.err') });
  for (let i = 0; i < 100 && !((await canConnect(port)) && childrenOf(p.pid).length >= 1); i++) await sleep(50);
  const workers = childrenOf(p.pid);
  if (workers.length !== 1) throw new Error(`nginx: expected 1 worker, found ${workers.length}: ${p.stderr()}`);
  return {
    ...p,
    name: 'nginx',
    port,
    url: `https://127.0.0.1:${port}`,
    staticUrl: `https://127.0.0.1:${staticPort}`,
    workers,
    pids: [p.pid, ...workers],
  };
}

async function load(args, timeoutMs = 60_000) {
  const r = await runOnce(node, [script('load.mjs'), '--tls-dir', dir, ...args], { timeoutMs });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let o;
  try {
    o = JSON.parse(line);
  } catch {
    o = { error: `load.mjs exited ${r.code}: ${r.stderr.slice(-500)}` };
  }
  if (o.error) log(`load.mjs ${args.slice(0, 4).join(' ')}: ${o.error.slice(0, 300)}`);
  return o;
}

const results = {
  date: new Date().toISOString(),
  machine: {
    nproc: cpus().length,
    cpu: (/model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8')) ?? [])[1] ?? '?',
    node: process.version,
    nginx: '',
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    loadavgAtStart: readFileSync('/proc/loadavg', 'utf8').trim(),
  },
  settings: { reps: REPS, rpsSeconds: RPS_SECONDS, holdSteps: HOLD_STEPS, holdReps: HOLD_REPS, guardProcesses: 1, nginxWorkers: 1 },
  rps: [],
  streams: [],
  handshakes: [],
  rss: [],
};

async function main() {
  results.machine.nginx = (await runOnce('nginx', ['-v'])).stderr.trim();
  log(`certificates in ${dir}`);
  await makeCertificates(dir);

  // ------------------------------------------------------------ 1, 2, 3: shared setup
  const sim = await startSim(50, 50);
  const guard = await startGuard(sim.port);
  const nginx = await startNginx(sim.port, 'main');
  log(`sim :${sim.port} (pid ${sim.pid}), guard :${guard.port} (pid ${guard.pid}), nginx :${nginx.port} (master ${nginx.pid}, worker ${nginx.workers})`);
  const simArgs = ['--sim-pid', String(sim.pid)];
  const proxies = [guard, nginx];
  const ordered = (rep) => (rep % 2 === 0 ? proxies : [...proxies].reverse());

  // Warm both proxies (JIT, connection pools) before anything is timed.
  for (const p of proxies) for (const req of ['version', 'embed']) await load(['--mode', 'rps', '--target', p.url, '--concurrency', '16', '--warmup', '0', '--duration', '1', '--request', req]);

  // ------------------------------------------------------------ 1. requests/s
  if (ONLY.has('rps')) log('1. keep-alive mTLS requests');
  const rpsArgs = (c, req) => ['--mode', 'rps', '--concurrency', String(c), '--warmup', '0.5', '--duration', String(RPS_SECONDS), '--request', req, ...simArgs];
  for (let rep = 0; rep < (ONLY.has('rps') ? REPS : 0); rep++) {
    for (const c of [1, 16, 64]) {
      for (const req of ['version', 'embed']) {
        for (const p of ordered(rep)) {
          const r = await load([...rpsArgs(c, req), '--target', p.url, '--pids', p.pids.join(',')]);
          results.rps.push({ rep, ...r, target: p.name, url: r.target });
        }
      }
      // The generator's ceilings (no proxy in the way of the measured server's CPU).
      const d = await load([...rpsArgs(c, 'version'), '--target', `http://127.0.0.1:${sim.port}`, '--pids', String(sim.pid)]);
      results.rps.push({ rep, ...d, target: "direct", url: d.target });
      const s = await load([...rpsArgs(c, 'version'), '--target', nginx.staticUrl, '--pids', nginx.pids.join(',')]);
      results.rps.push({ rep, ...s, target: "nginx-static", url: s.target });
    }
    log(`   rep ${rep + 1}/${REPS} done`);
  }

  // ------------------------------------------------------------ 2. streams
  if (ONLY.has('streams')) log('2. streams (50 tokens/s, 50 tokens each)');
  const targets = [{ name: 'direct', url: `http://127.0.0.1:${sim.port}` }, guard, nginx];
  for (let rep = 0; rep < (ONLY.has('streams') ? REPS : 0); rep++) {
    for (const [n, rounds] of [[1, QUICK ? 1 : 3], [50, QUICK ? 1 : 2]]) {
      const order = rep % 2 === 0 ? targets : [...targets].reverse();
      for (const t of order) {
        const r = await load(['--mode', 'stream', '--target', t.url, '--streams', String(n), '--rounds', String(rounds), '--ctl', sim.ctl, '--tag', `${t.name}-${rep}-${n}`]);
        results.streams.push({ rep, ...r, target: t.name, url: r.target });
      }
    }
    log(`   rep ${rep + 1}/${REPS} done`);
  }

  // ------------------------------------------------------------ 3. handshakes
  if (ONLY.has('handshakes')) log('3. new mTLS connections per second');
  for (let rep = 0; rep < (ONLY.has('handshakes') ? REPS : 0); rep++) {
    for (const resume of ['0', '1']) {
      for (const p of ordered(rep)) {
        const r = await load(['--mode', 'handshake', '--target', p.url, '--pids', p.pids.join(','), '--concurrency', '8', '--warmup', '0.5', '--duration', String(RPS_SECONDS), '--resume', resume]);
        results.handshakes.push({ rep, ...r, target: p.name, url: r.target });
      }
      const s = await load(['--mode', 'handshake', '--target', nginx.staticUrl, '--pids', nginx.pids.join(','), '--concurrency', '8', '--warmup', '0.5', '--duration', String(RPS_SECONDS), '--resume', resume]);
      results.handshakes.push({ rep, ...s, target: "nginx-static", url: s.target });
    }
    log(`   rep ${rep + 1}/${REPS} done`);
  }
  await stop(guard);
  await stop(nginx);
  await stop(sim);

  // ------------------------------------------------------------ 4. RSS with open streams
  if (!ONLY.has('rss')) return;
  log(`4. RSS with ${HOLD_STEPS.join(' / ')} open streams (1 token/s)`);
  const slow = await startSim(1, 1_000_000);
  for (let rep = 0; rep < HOLD_REPS; rep++) {
    for (const name of rep % 2 === 0 ? ['guard', 'nginx'] : ['nginx', 'guard']) {
      const p = name === 'guard'
        ? await startGuard(slow.port, ['--upstream-connections', String(HOLD_STEPS[HOLD_STEPS.length - 1] + 1000)])
        : await startNginx(slow.port, `hold-${rep}`);
      try {
        await load(['--mode', 'rps', '--target', p.url, '--concurrency', '16', '--warmup', '0', '--duration', '1', '--request', 'embed']);
        await sleep(1500);
        const idleKb = rssKbOf(p.pids);
        const h = start(node, [script('load.mjs'), '--tls-dir', dir, '--mode', 'hold', '--target', p.url, '--steps', HOLD_STEPS.join(','), '--max-seconds', '240'], { log: join(dir, 'hold.err'), stdin: 'pipe' });
        const row = { rep, target: name, idleKb, steps: [] };
        try {
          for (let i = 0; i < HOLD_STEPS.length; i++) {
            // load.mjs hold prints nothing but one {"ready":…} line per step.
            const m = await h.waitLine(/"ready":(\d+)/, 120_000, i);
            const info = JSON.parse(m.input);
            const kb = rssKbOf(p.pids);
            row.steps.push({ target: HOLD_STEPS[i], open: info.ready, rssKb: kb, kbPerStream: round((kb - idleKb) / info.ready, 1), lost: info.lost, failedOpen: info.failedOpen, bad: info.bad, openSeconds: info.seconds });
            log(`   ${name}: ${info.ready} open streams, RSS ${(kb / 1024).toFixed(1)} MiB (idle ${(idleKb / 1024).toFixed(1)} MiB)`);
            h.child.stdin.write(i === HOLD_STEPS.length - 1 ? 'done\n' : 'next\n');
          }
          await Promise.race([h.exited, sleep(20_000)]);
        } catch (e) {
          row.error = e.message;
          log(`   ${name}: ${e.message}`);
        } finally {
          await stop(h, 2000);
        }
        results.rss.push(row);
      } finally {
        await stop(p, 5000);
      }
    }
  }
  await stop(slow);
}

// ---------------------------------------------------------------- summary

const med = (rows, f) => round(median(rows.map(f).filter((v) => v !== null && v !== undefined)), 1);
/** Median over repetitions of guard/nginx within the same repetition. */
function pairedRatio(rows, f, filter) {
  const ratios = [];
  for (const rep of new Set(rows.map((r) => r.rep))) {
    const g = rows.find((r) => r.rep === rep && r.target === 'guard' && filter(r));
    const n = rows.find((r) => r.rep === rep && r.target === 'nginx' && filter(r));
    if (g && n && f(n)) ratios.push(f(g) / f(n));
  }
  return round(median(ratios), 2);
}

function summarise() {
  const s = { rps: [], streams: [], handshakes: [], rss: [] };
  for (const c of [1, 16, 64]) {
    for (const req of ['version', 'embed']) {
      const rows = results.rps.filter((r) => r.concurrency === c && r.request === req && !r.error);
      const one = (t) => {
        const x = rows.filter((r) => r.target === t);
        return x.length ? { rps: med(x, (r) => r.rps), p50Ms: med(x, (r) => r.p50Ms * 1000) / 1000, p99Ms: med(x, (r) => r.p99Ms * 1000) / 1000, cpuUsPerReq: med(x, (r) => r.proxyCpuUsPerReq), loadCpuPct: med(x, (r) => r.loadCpuPct), n: x.length } : null;
      };
      s.rps.push({
        concurrency: c, request: req, guard: one('guard'), nginx: one('nginx'), direct: one('direct'), nginxStatic: one('nginx-static'),
        rpsRatio: pairedRatio(rows, (r) => r.rps, () => true),
        cpuRatio: pairedRatio(rows, (r) => r.proxyCpuUsPerReq, () => true),
      });
    }
  }
  for (const n of [1, 50]) {
    const rows = results.streams.filter((r) => r.streams === n && !r.error);
    const one = (t) => {
      const x = rows.filter((r) => r.target === t);
      return x.length ? { onewayP50Us: med(x, (r) => r.onewayP50Us), onewayP99Us: med(x, (r) => r.onewayP99Us), ttfbP50Ms: med(x, (r) => r.ttfbP50Ms * 1000) / 1000, ttfbP99Ms: med(x, (r) => r.ttfbP99Ms * 1000) / 1000, chunks: x.reduce((a, r) => a + r.chunks, 0), failed: x.reduce((a, r) => a + r.failed, 0), mismatched: x.reduce((a, r) => a + r.mismatched, 0), n: x.length } : null;
    };
    /** Added over direct, paired by repetition, median. */
    const added = (t, f) => {
      const v = [];
      for (const rep of new Set(rows.map((r) => r.rep))) {
        const a = rows.find((r) => r.rep === rep && r.target === t);
        const d = rows.find((r) => r.rep === rep && r.target === 'direct');
        if (a && d) v.push(f(a) - f(d));
      }
      return round(median(v), 1);
    };
    const add = (t) => ({
      p50Us: added(t, (r) => r.onewayP50Us),
      p99Us: added(t, (r) => r.onewayP99Us),
      ttfbP50Us: added(t, (r) => r.ttfbP50Ms * 1000),
      ttfbP99Us: added(t, (r) => r.ttfbP99Ms * 1000),
      // The request leg alone: client send → simulator's first write.
      requestLegP50Us: added(t, (r) => r.firstEmitP50Ms * 1000),
    });
    s.streams.push({ streams: n, direct: one('direct'), guard: one('guard'), nginx: one('nginx'), addedGuard: add('guard'), addedNginx: add('nginx') });
  }
  for (const resume of [false, true]) {
    const rows = results.handshakes.filter((r) => r.resume === resume && !r.error);
    const one = (t) => {
      const x = rows.filter((r) => r.target === t);
      return x.length ? { perSec: med(x, (r) => r.perSec), p50Ms: med(x, (r) => r.p50Ms * 1000) / 1000, cpuUsPerConn: med(x, (r) => r.proxyCpuUsPerConn), reusedPct: med(x, (r) => r.reusedPct), loadCpuPct: med(x, (r) => r.loadCpuPct), n: x.length } : null;
    };
    s.handshakes.push({ resume, guard: one('guard'), nginx: one('nginx'), nginxStatic: one('nginx-static'), ratio: pairedRatio(rows, (r) => r.perSec, () => true), cpuRatio: pairedRatio(rows, (r) => r.proxyCpuUsPerConn, () => true) });
  }
  for (const step of HOLD_STEPS) {
    const one = (t) => {
      const x = results.rss.filter((r) => r.target === t).map((r) => ({ idleKb: r.idleKb, ...r.steps.find((st) => st.target === step) })).filter((r) => r.rssKb);
      return x.length ? { idleMiB: round(median(x.map((r) => r.idleKb)) / 1024, 1), rssMiB: round(median(x.map((r) => r.rssKb)) / 1024, 1), kbPerStream: med(x, (r) => r.kbPerStream), open: Math.min(...x.map((r) => r.open)), n: x.length } : null;
    };
    s.rss.push({ streams: step, guard: one('guard'), nginx: one('nginx') });
  }
  return s;
}

function markdown(s) {
  const f = (v, d = 0) => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(d));
  const L = [];
  L.push(`Machine: ${results.machine.nproc} × ${results.machine.cpu}, ${results.machine.node}, ${results.machine.nginx}, kernel ${results.machine.kernel}; load average at start ${results.machine.loadavgAtStart.split(' ').slice(0, 3).join(' ')}`);
  L.push('');
  L.push('| request | conc. | guard req/s | nginx req/s | guard/nginx | guard p50 / p99 ms | nginx p50 / p99 ms | guard CPU µs/req | nginx CPU µs/req | direct req/s | nginx-static req/s |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of s.rps) {
    const g = r.guard ?? {};
    const n = r.nginx ?? {};
    L.push(`| ${r.request === 'version' ? 'GET /api/version' : 'POST /api/embed'} | ${r.concurrency} | ${f(g.rps)} | ${f(n.rps)} | **${f(r.rpsRatio, 2)}** | ${f(g.p50Ms, 2)} / ${f(g.p99Ms, 2)} | ${f(n.p50Ms, 2)} / ${f(n.p99Ms, 2)} | ${f(g.cpuUsPerReq)} | ${f(n.cpuUsPerReq)} | ${r.direct ? f(r.direct.rps) : ''} | ${r.nginxStatic ? f(r.nginxStatic.rps) : ''} |`);
  }
  L.push('');
  L.push('| streams | one-way per chunk p50 / p99 µs: direct | guard | nginx | added p50 / p99 µs: guard | nginx | TTFB p50 ms: direct / guard / nginx | added TTFB p50 µs: guard / nginx | of which request leg µs: guard / nginx |');
  L.push('|---|---|---|---|---|---|---|---|---|');
  for (const r of s.streams) {
    const o = (x) => (x ? `${f(x.onewayP50Us)} / ${f(x.onewayP99Us)}` : 'n/a');
    L.push(`| ${r.streams} | ${o(r.direct)} | ${o(r.guard)} | ${o(r.nginx)} | ${f(r.addedGuard.p50Us)} / ${f(r.addedGuard.p99Us)} | ${f(r.addedNginx.p50Us)} / ${f(r.addedNginx.p99Us)} | ${f(r.direct?.ttfbP50Ms, 2)} / ${f(r.guard?.ttfbP50Ms, 2)} / ${f(r.nginx?.ttfbP50Ms, 2)} | ${f(r.addedGuard.ttfbP50Us)} / ${f(r.addedNginx.ttfbP50Us)} | ${f(r.addedGuard.requestLegP50Us)} / ${f(r.addedNginx.requestLegP50Us)} |`);
  }
  L.push('');
  L.push('| handshakes | guard /s | nginx /s | guard/nginx | guard CPU µs/conn | nginx CPU µs/conn | resumed % (guard / nginx) | nginx-static /s |');
  L.push('|---|---|---|---|---|---|---|---|');
  for (const r of s.handshakes) {
    L.push(`| ${r.resume ? 'with resumption (TLS 1.3 tickets)' : 'full handshakes'} | ${f(r.guard?.perSec)} | ${f(r.nginx?.perSec)} | **${f(r.ratio, 2)}** | ${f(r.guard?.cpuUsPerConn)} | ${f(r.nginx?.cpuUsPerConn)} | ${f(r.guard?.reusedPct)} / ${f(r.nginx?.reusedPct)} | ${f(r.nginxStatic?.perSec)} |`);
  }
  L.push('');
  L.push('| open streams | guard RSS MiB (idle) | guard KB/stream | nginx RSS MiB (idle) | nginx KB/stream |');
  L.push('|---|---|---|---|---|');
  for (const r of s.rss) {
    L.push(`| ${r.streams} | ${f(r.guard?.rssMiB, 1)} (${f(r.guard?.idleMiB, 1)}) | ${f(r.guard?.kbPerStream, 1)} | ${f(r.nginx?.rssMiB, 1)} (${f(r.nginx?.idleMiB, 1)}) | ${f(r.nginx?.kbPerStream, 1)} |`);
  }
  return L.join('\n');
}

let code = 0;
try {
  await main();
} catch (e) {
  log(`FAILED: ${e.stack ?? e}`);
  code = 1;
} finally {
  killAll();
  results.seconds = Math.round((Date.now() - t0) / 1000);
  results.summary = summarise();
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, 'guard.json'), JSON.stringify(results, null, 1));
  const md = markdown(results.summary);
  writeFileSync(join(OUT_DIR, 'guard.md'), md + '\n');
  process.stdout.write(`\n${md}\n\n(raw: ${join(OUT_DIR, 'guard.json')}; ${results.seconds} s)\n`);
  if (process.env.GB_KEEP_DIR !== '1') rmSync(dir, { recursive: true, force: true });
}
process.exit(code);
