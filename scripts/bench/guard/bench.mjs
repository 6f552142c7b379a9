#!/usr/bin/env node
// Guard vs nginx vs the connector vs direct, side by side in one run (issues 3 and 13). Started by run.sh.
//
// Processes: the simulator (sim.mjs), the guard (guard-server.mjs, 1 process), nginx
// (worker_processes 1, plus its idle master), the connector (dist/connect/wg-ollama-connect.mjs,
// in front of the same guard), a second guard with its request-leg trace on (legs phase only),
// and the load generator (load.mjs) — each its own process. Same simulator, same certificates.
//   rps:        keep-alive requests, GET /api/version and POST /api/embed (small), concurrency
//               GB_CONC (1,16,64): requests/s, p50/p99, CPU per request of the path's processes
//   streams:    simulator 50 tokens/s; per-chunk one-way delay and time to first byte, 1 and 50
//               streams started together
//   legs:       where a new request's first byte goes, with 0 and 50 streams running in the
//               background (probes, one every 100 ms) and in a burst of 50 started together:
//               the traced guard's marks (src/guard/trace.ts) against direct, nginx and the
//               same guard without the trace
//   handshakes: a new mTLS connection per request, full and resumed
//   rss:        RSS with 1,000 and 5,000 open slow streams, fresh proxies
// Every repetition runs every target of a cell back to back, in a rotated order (trust.mjs
// orderFor). Each phase of each repetition is judged: load average at the start of the run,
// CPU other processes took and steal during it (trust.mjs judgePhase). GB_BUSY=mark (default)
// marks busy phases in the tables; GB_BUSY=refuse prints no figures when any phase was busy.
// Raw results: $BENCH_OUT/guard.json; tables: guard.md (summary.mjs makes them from the json).
import { chmodSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { HERE, ROOT, boundRun, canConnect, childrenOf, dist, freePort, killAll, makeCertificates, ownCpuMs, round, rssKbOf, runOnce, sleep, start, stop } from './common.mjs';
import { DEFAULT_QUIET, judgePhase, orderFor, parseLoadavg, parseProcStat } from './trust.mjs';
import { markdown } from './summary.mjs';

const QUICK = process.env.BENCH_QUICK === '1';
const REPS = Number(process.env.GB_REPS || (QUICK ? 1 : 3));
const OUT_DIR = process.env.BENCH_OUT || '/tmp/wgo-bench-results';
const DEADLINE_MS = Number(process.env.GB_DEADLINE_S || 840) * 1000;
const RPS_SECONDS = Number(process.env.GB_RPS_SECONDS || (QUICK ? 1 : 2.5));
const CONC = (process.env.GB_CONC || '1,16,64').split(',').map(Number);
const HOLD_STEPS = (process.env.GB_HOLD_STEPS || (QUICK ? '200,500' : '1000,5000')).split(',').map(Number);
const HOLD_REPS = Number(process.env.GB_HOLD_REPS || (QUICK ? 1 : 2));
const PROBES = Number(process.env.GB_PROBES || (QUICK ? 10 : 30));
const ONLY = new Set((process.env.GB_ONLY || 'rps,streams,legs,handshakes,rss').split(','));
const BUSY = process.env.GB_BUSY || 'mark';
const QUIET = {
  maxLoad: Number(process.env.GB_MAX_LOAD || DEFAULT_QUIET.maxLoad),
  maxForeignPct: Number(process.env.GB_MAX_FOREIGN_PCT || DEFAULT_QUIET.maxForeignPct),
  maxStealPct: Number(process.env.GB_MAX_STEAL_PCT || DEFAULT_QUIET.maxStealPct),
};
const WAIT_QUIET_S = Number(process.env.GB_WAIT_QUIET_S || 0);
/** Another build's dist/ (e.g. the commit before a change): its guard runs as target "guard-base" in the rps and streams phases. */
const BASELINE_DIST = process.env.GB_BASELINE_DIST || '';
/** A directory: the guard (target "guard") runs under --cpu-prof and writes its profile there when stopped (profile.mjs reads it). */
const PROFILE_DIR = process.env.GB_PROFILE_DIR || '';
const t0 = Date.now();
const log = boundRun(DEADLINE_MS);

const dir = mkdtempSync(join(tmpdir(), 'wgo-guard-bench-'));
mkdirSync(join(dir, 'tmp'));
const node = process.execPath;
const script = (n) => join(HERE, n);
const loadavg = () => parseLoadavg(readFileSync('/proc/loadavg', 'utf8'));
const procStat = () => parseProcStat(readFileSync('/proc/stat', 'utf8'));

async function startSim(rate, tokens) {
  const p = start(node, [script('sim.mjs'), '--listen', '127.0.0.1:0', '--ctl', '127.0.0.1:0', '--token-rate', String(rate), '--tokens', String(tokens)], { log: join(dir, 'sim.err') });
  const m = await p.waitLine(/"listening":(\d+),"ctl":(\d+)/, 15_000);
  return { ...p, port: Number(m[1]), ctl: `http://127.0.0.1:${m[2]}`, pids: [p.pid] };
}

async function startGuard(simPort, extra = [], name = 'guard', distDir = undefined) {
  const env = distDir ? { ...process.env, WGO_BENCH_DIST: distDir } : process.env;
  const prof = PROFILE_DIR && name === 'guard' ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR] : [];
  const p = start(node, [...prof, script('guard-server.mjs'), '--dir', dir, '--listen', '127.0.0.1:0', '--upstream', `http://127.0.0.1:${simPort}`, ...extra], { log: join(dir, `${name}.err`), env });
  const m = await p.waitLine(/"listening":(\d+)/, 20_000);
  const t = /"traceCtl":(\d+)/.exec(m.input);
  return { ...p, name, port: Number(m[1]), pids: [p.pid], url: `https://127.0.0.1:${m[1]}`, traceUrl: t ? `http://127.0.0.1:${t[1]}/trace` : null };
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
  return { ...p, name: 'nginx', port, url: `https://127.0.0.1:${port}`, staticUrl: `https://127.0.0.1:${staticPort}`, workers, pids: [p.pid, ...workers] };
}

/** A bare Node mTLS server answering a fixed body (node-static.mjs): the floor of any Node guard. */
async function startNodeStatic() {
  const p = start(node, [script('node-static.mjs'), '--dir', dir, '--listen', '127.0.0.1:0'], { log: join(dir, 'node-static.err') });
  const m = await p.waitLine(/"listening":(\d+)/, 20_000);
  return { ...p, name: 'node-static', port: Number(m[1]), pids: [p.pid], url: `https://127.0.0.1:${m[1]}` };
}

/** The shipped connector (issue 9) with a connect profile for the bench peer, in front of `guard`. */
async function startConnector(guard) {
  const { renderConnectProfile } = await dist('core/connect-profile.js');
  const profile = join(dir, 'bench.connect.json');
  writeFileSync(profile, renderConnectProfile({
    peer: 'bench', guardUrl: guard.url, ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    certificate: readFileSync(join(dir, 'client.pem'), 'utf8'), key: readFileSync(join(dir, 'client.key'), 'utf8'),
  }), { mode: 0o600 });
  chmodSync(profile, 0o600);
  const port = await freePort();
  const p = start(node, [join(ROOT, 'dist/connect/wg-ollama-connect.mjs'), profile, '--listen', `127.0.0.1:${port}`], { log: join(dir, 'connector.err') });
  for (let i = 0; i < 100 && !(await canConnect(port)); i++) await sleep(50);
  if (!(await canConnect(port))) throw new Error(`the connector did not listen: ${p.stderr()}`);
  // Its CPU is counted with the guard's behind it: the whole path.
  return { ...p, name: 'connector', port, url: `http://127.0.0.1:${port}`, pids: [guard.pid, p.pid] };
}

async function load(args, timeoutMs = 90_000) {
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

const getJson = async (url) => JSON.parse((await runOnce('curl', ['-s', '--max-time', '10', url])).stdout || '{}');

const startLoad = loadavg();
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
  settings: { baselineDist: BASELINE_DIST || null, reps: REPS, rpsSeconds: RPS_SECONDS, concurrency: CONC, probes: PROBES, holdSteps: HOLD_STEPS, holdReps: HOLD_REPS, guardProcesses: 1, nginxWorkers: 1, quiet: QUIET, busy: BUSY },
  phases: [],
  rps: [],
  streams: [],
  legs: [],
  handshakes: [],
  rss: [],
};

/** Live long-running processes of ours, for the per-phase CPU account. */
let live = [];
/** Runs one repetition of one phase, recording the load average and CPU around it and whether the machine was busy. */
async function phase(name, rep, fn) {
  const la0 = loadavg();
  const cpu0 = procStat();
  const own0 = ownCpuMs(live);
  const w0 = performance.now();
  await fn();
  const wallMs = performance.now() - w0;
  const own1 = ownCpuMs(live);
  const cpu1 = procStat();
  const la1 = loadavg();
  const v = judgePhase({ startLoad1: startLoad.load1, cpu0, cpu1, ownCpuMs: own1 - own0, wallMs, ncpu: cpus().length }, QUIET);
  const row = { phase: name, rep, seconds: round(wallMs / 1000, 1), loadBefore: [la0.load1, la0.load5, la0.load15], loadAfter: [la1.load1, la1.load5, la1.load15], ownCpuPct: round(((own1 - own0) / wallMs) * 100, 0), ...v };
  results.phases.push(row);
  log(`   ${name} rep ${rep + 1}: load ${la0.load1} → ${la1.load1}, machine busy ${v.machineBusyPct} %, ours ${row.ownCpuPct} % of a core, others ${v.foreignPct} % of a core, steal ${v.stealPct} %${v.busy ? `  BUSY: ${v.reasons.join('; ')}` : ''}`);
}

async function main() {
  results.machine.nginx = (await runOnce('nginx', ['-v'])).stderr.trim();
  log(`load average at start: ${startLoad.load1} ${startLoad.load5} ${startLoad.load15}`);
  for (let waited = 0; loadavg().load1 > QUIET.maxLoad && waited < WAIT_QUIET_S; waited += 5) await sleep(5000);
  if (WAIT_QUIET_S > 0) {
    Object.assign(startLoad, loadavg());
    results.machine.loadavgAtStart = readFileSync('/proc/loadavg', 'utf8').trim();
    log(`load average after waiting for quiet (≤ ${WAIT_QUIET_S} s): ${startLoad.load1}`);
  }
  if (startLoad.load1 > QUIET.maxLoad && BUSY === 'refuse') throw new Error(`load average ${startLoad.load1} > ${QUIET.maxLoad}: the machine is busy, no figures (GB_BUSY=refuse)`);
  log(`certificates in ${dir}`);
  await makeCertificates(dir);

  const sim = await startSim(50, 50);
  const guard = await startGuard(sim.port);
  const nginx = await startNginx(sim.port, 'main');
  const connector = await startConnector(guard);
  const direct = { name: 'direct', url: `http://127.0.0.1:${sim.port}`, pids: [sim.pid] };
  const base = BASELINE_DIST ? await startGuard(sim.port, [], 'guard-base', BASELINE_DIST) : null;
  const nodeStatic = await startNodeStatic();
  const withBase = (targets) => (base ? [...targets, base] : targets);
  live = [sim.pid, guard.pid, ...nginx.pids, connector.pid, nodeStatic.pid, ...(base ? [base.pid] : [])];
  if (base) log(`baseline guard from ${BASELINE_DIST} :${base.port} (pid ${base.pid})`);
  log(`sim :${sim.port} (pid ${sim.pid}), guard :${guard.port} (pid ${guard.pid}), nginx :${nginx.port} (master ${nginx.pid}, worker ${nginx.workers}), connector :${connector.port} (pid ${connector.pid})`);
  const simArgs = ['--sim-pid', String(sim.pid)];
  const nginxStatic = { name: 'nginx-static', url: nginx.staticUrl, pids: nginx.pids };

  // Warm every path (JIT, connection pools) before anything is timed.
  for (const p of withBase([guard, nginx, connector])) for (const req of ['version', 'embed']) await load(['--mode', 'rps', '--target', p.url, '--concurrency', '16', '--warmup', '0', '--duration', '1', '--request', req]);

  if (ONLY.has('rps')) log(`rps: keep-alive requests at concurrency ${CONC.join(', ')}`);
  const rpsArgs = (c, req) => ['--mode', 'rps', '--concurrency', String(c), '--warmup', '0.5', '--duration', String(RPS_SECONDS), '--request', req, ...simArgs];
  for (let rep = 0; rep < (ONLY.has('rps') ? REPS : 0); rep++) {
    await phase('rps', rep, async () => {
      for (const c of CONC) {
        for (const req of ['version', 'embed']) {
          // direct: the generator's ceiling against the simulator; nginx-static / node-static: nginx / a bare
          // Node mTLS server answering a fixed body (no proxying).
          const targets = withBase(req === 'version' ? [guard, nginx, connector, direct, nginxStatic, nodeStatic] : [guard, nginx, connector, direct]);
          for (const p of orderFor(rep, targets)) {
            const r = await load([...rpsArgs(c, req), '--target', p.url, '--pids', p.pids.join(',')]);
            results.rps.push({ rep, ...r, target: p.name, url: r.target });
          }
        }
      }
    });
  }

  if (ONLY.has('streams')) log('streams: 50 tokens/s, 50 tokens each, 1 and 50 at once');
  for (let rep = 0; rep < (ONLY.has('streams') ? REPS : 0); rep++) {
    await phase('streams', rep, async () => {
      for (const [n, rounds] of [[1, QUICK ? 1 : 3], [50, QUICK ? 1 : 2]]) {
        for (const t of orderFor(rep, withBase([direct, guard, nginx, connector]))) {
          const r = await load(['--mode', 'stream', '--target', t.url, '--streams', String(n), '--rounds', String(rounds), '--ctl', sim.ctl, '--tag', `${t.name}-${rep}-${n}`]);
          results.streams.push({ rep, ...r, target: t.name, url: r.target });
        }
      }
    });
  }

  if (ONLY.has('legs')) {
    log(`legs: a new request's first byte, traced guard, ${PROBES} probes with 0 and 50 streams running, and a burst of 50`);
    const traced = await startGuard(sim.port, ['--trace-ctl', '127.0.0.1:0'], 'guard-traced');
    live.push(traced.pid);
    const simArrivals = () => getJson(`${sim.ctl}/arrivals`);
    const simEmits = () => getJson(`${sim.ctl}/emits`);
    await load(['--mode', 'rps', '--target', traced.url, '--concurrency', '16', '--warmup', '0', '--duration', '1', '--request', 'embed']);
    await getJson(traced.traceUrl);
    for (let rep = 0; rep < REPS; rep++) {
      await phase('legs', rep, async () => {
        // The untraced guard too: what the trace itself costs shows as the difference between the two.
        const untraced = { ...guard, name: 'guard-untraced' };
        for (const t of orderFor(rep, [direct, traced, nginx, untraced])) {
          for (const bg of [0, 50]) {
            const r = await load(['--mode', 'probe', '--target', t.url, '--background', String(bg), '--probes', String(PROBES), '--interval-ms', '100', '--tag', `${t.name}-${rep}-${bg}`]);
            const [arr, em, tr] = [await simArrivals(), await simEmits(), t.traceUrl ? await getJson(t.traceUrl) : null];
            results.legs.push({ rep, kind: `probe-${bg}`, target: t.name === 'guard-traced' ? 'guard' : t.name, background: bg, backgroundOpen: r.backgroundOpen, requests: joinLegs(r.probes ?? [], arr, em, tr), error: r.error });
          }
          const b = await load(['--mode', 'stream', '--target', t.url, '--streams', '50', '--rounds', '1', '--ctl', sim.ctl, '--tag', `legs-${t.name}-${rep}`, '--dump', '1']);
          const [arr, tr] = [await simArrivals(), t.traceUrl ? await getJson(t.traceUrl) : null];
          // load.mjs stream has already taken the emits; it returns each request's first write.
          const firstEmits = Object.fromEntries((b.requests ?? []).map((q) => [q.ua, q.firstEmit]));
          results.legs.push({ rep, kind: 'burst-50', target: t.name === 'guard-traced' ? 'guard' : t.name, requests: joinLegs(b.requests ?? [], arr, firstEmits, tr), error: b.error });
        }
      });
    }
    live = live.filter((p) => p !== traced.pid);
    await stop(traced);
  }

  if (ONLY.has('handshakes')) log('handshakes: a new mTLS connection per request');
  for (let rep = 0; rep < (ONLY.has('handshakes') ? REPS : 0); rep++) {
    await phase('handshakes', rep, async () => {
      for (const resume of ['0', '1']) {
        for (const p of orderFor(rep, [guard, nginx, nginxStatic])) {
          const r = await load(['--mode', 'handshake', '--target', p.url, '--pids', p.pids.join(','), '--concurrency', '8', '--warmup', '0.5', '--duration', String(RPS_SECONDS), '--resume', resume]);
          results.handshakes.push({ rep, ...r, target: p.name, url: r.target });
        }
      }
    });
  }
  live = [];
  await stop(connector);
  if (base) await stop(base);
  await stop(nodeStatic);
  await stop(guard);
  await stop(nginx);
  await stop(sim);

  if (!ONLY.has('rss')) return;
  log(`rss: ${HOLD_STEPS.join(' / ')} open streams (1 token/s)`);
  const slow = await startSim(1, 1_000_000);
  for (let rep = 0; rep < HOLD_REPS; rep++) {
    for (const name of orderFor(rep, ['guard', 'nginx'])) {
      const p = name === 'guard'
        ? await startGuard(slow.port, ['--upstream-connections', String(HOLD_STEPS[HOLD_STEPS.length - 1] + 1000)])
        : await startNginx(slow.port, `hold-${rep}`);
      live = [slow.pid, ...p.pids];
      try {
        await phase(`rss-${name}`, rep, () => holdStreams(p, name, rep));
      } finally {
        live = [];
        await stop(p, 5000);
      }
    }
  }
  await stop(slow);
}

/** RSS of a fresh proxy, idle and with HOLD_STEPS open streams. */
async function holdStreams(p, name, rep) {
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
}

/** Client times, the simulator's arrival and first write, and the guard's marks, per request (by User-Agent). */
function joinLegs(requests, arrivals, emits, trace) {
  const marks = new Map((trace?.records ?? []).filter((r) => r.ua).map((r) => [r.ua, r]));
  return requests
    .filter((q) => q.ua?.startsWith('bench-s-'))
    .map((q) => {
      const e = emits[q.ua];
      const tr = marks.get(q.ua);
      return { ua: q.ua, status: q.status, t0: q.t0, first: q.first, simArrived: arrivals[q.ua] ?? null, simFirstEmit: Array.isArray(e) ? e[0] ?? null : e ?? null, marks: tr?.marks ?? null, nth: tr?.nth ?? null };
    });
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
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(join(OUT_DIR, 'guard.json'), JSON.stringify(results, null, 1));
  const busy = results.phases.filter((p) => p.busy);
  if (BUSY === 'refuse' && (busy.length > 0 || code !== 0)) {
    const why = busy.map((p) => `${p.phase} rep ${p.rep + 1}: ${p.reasons.join('; ')}`).join('\n');
    process.stdout.write(`\nREFUSED: the machine was busy (GB_BUSY=refuse), no figures.\n${why}\n(raw: ${join(OUT_DIR, 'guard.json')})\n`);
    if (code === 0) code = 4;
  } else {
    const md = markdown(results);
    writeFileSync(join(OUT_DIR, 'guard.md'), md + '\n');
    process.stdout.write(`\n${md}\n\n(raw: ${join(OUT_DIR, 'guard.json')}; ${results.seconds} s)\n`);
  }
  if (process.env.GB_KEEP_DIR !== '1') rmSync(dir, { recursive: true, force: true });
}
process.exit(code);
