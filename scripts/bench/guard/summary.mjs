#!/usr/bin/env node
// The tables of a guard benchmark run, from its raw results (bench.mjs writes guard.json), in
// the shape BENCHMARKS.md uses: medians with ranges over the repetitions, ratios and additions
// paired within each repetition, the load average and busy verdict of every phase, and the leg
// breakdown of a new request's first byte.
//   node scripts/bench/guard/summary.mjs [/tmp/wgo-bench-results/guard.json]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PIECES, guardLegs, legStats, opaqueLegs } from './legs.mjs';
import { fmtSpread, paired, spread } from './trust.mjs';

const f = (v, d = 0) => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(d));
const REQ = { version: 'GET /api/version', embed: 'POST /api/embed' };

/** " ⚠ busy" when any repetition of the phase was judged busy. */
function busyMark(results, phase) {
  return results.phases?.some((p) => p.phase === phase && p.busy) ? ' ⚠ busy' : '';
}

export function phaseTable(results) {
  const L = ['| phase | rep | s | load avg before (1 / 5 / 15 min) | after | machine busy % | ours, % of a core | others, % of a core | steal % | verdict |', '|---|---|---|---|---|---|---|---|---|---|'];
  for (const p of results.phases ?? []) {
    L.push(`| ${p.phase} | ${p.rep + 1} | ${f(p.seconds)} | ${p.loadBefore.join(' / ')} | ${p.loadAfter.join(' / ')} | ${f(p.machineBusyPct)} | ${f(p.ownCpuPct)} | ${f(p.foreignPct)} | ${f(p.stealPct, 1)} | ${p.busy ? `**busy**: ${p.reasons.join('; ')}` : 'quiet'} |`);
  }
  return L;
}

export function rpsTable(results) {
  const rows = (results.rps ?? []).filter((r) => !r.error);
  if (!rows.length) return [];
  const L = [`Keep-alive requests${busyMark(results, 'rps')}: medians (ranges) over ${results.settings.reps} repetitions; ratios paired within each repetition; CPU is the path's processes (connector: connector + guard).`, ''];
  L.push('| request | conc. | guard req/s | nginx req/s | connector req/s | guard/nginx | connector/guard | guard p50 / p99 ms | nginx p50 / p99 ms | connector p50 / p99 ms | CPU µs/req guard / nginx / connector path | direct req/s | nginx-static req/s |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const c of results.settings.concurrency ?? [1, 16, 64]) {
    for (const req of ['version', 'embed']) {
      const cell = rows.filter((r) => r.concurrency === c && r.request === req);
      if (!cell.length) continue;
      const of = (t, k) => spread(cell.filter((r) => r.target === t).map((r) => r[k]));
      const lat = (t) => `${f(of(t, 'p50Ms').median, 2)} / ${f(of(t, 'p99Ms').median, 2)}`;
      const cpu = (t) => f(of(t, 'proxyCpuUsPerReq').median);
      L.push(`| ${REQ[req]} | ${c} | ${fmtSpread(of('guard', 'rps'))} | ${fmtSpread(of('nginx', 'rps'))} | ${fmtSpread(of('connector', 'rps'))} | **${fmtSpread(paired(cell, 'guard', 'nginx', (r) => r.rps), 2)}** | ${fmtSpread(paired(cell, 'connector', 'guard', (r) => r.rps), 2)} | ${lat('guard')} | ${lat('nginx')} | ${lat('connector')} | ${cpu('guard')} / ${cpu('nginx')} / ${cpu('connector')} | ${fmtSpread(of('direct', 'rps'))} | ${req === 'version' ? fmtSpread(of('nginx-static', 'rps')) : ''} |`);
    }
  }
  if (rows.some((r) => r.target === 'guard-base')) L.push('', ...baselineRps(results, rows));
  if (rows.some((r) => r.target === 'node-static')) L.push('', ...staticFloor(results, rows));
  return L;
}

/** A fixed answer over the same mTLS: bare Node (node-static.mjs) against nginx, next to the guard. */
function staticFloor(results, rows) {
  const L = ['The floor: a fixed body over the same mTLS, no proxying (GET /api/version), same repetitions:', ''];
  L.push('| conc. | node-static req/s | nginx-static req/s | node-static/nginx-static | guard/node-static | guard/nginx | CPU µs/req node-static / nginx-static / guard / nginx |');
  L.push('|---|---|---|---|---|---|---|');
  for (const c of results.settings.concurrency ?? [1, 16, 64]) {
    const cell = rows.filter((r) => r.concurrency === c && r.request === 'version');
    if (!cell.some((r) => r.target === 'node-static')) continue;
    const of = (t, k) => spread(cell.filter((r) => r.target === t).map((r) => r[k]));
    const cpu = (t) => f(of(t, 'proxyCpuUsPerReq').median);
    L.push(`| ${c} | ${fmtSpread(of('node-static', 'rps'))} | ${fmtSpread(of('nginx-static', 'rps'))} | **${fmtSpread(paired(cell, 'node-static', 'nginx-static', (r) => r.rps), 2)}** | ${fmtSpread(paired(cell, 'guard', 'node-static', (r) => r.rps), 2)} | ${fmtSpread(paired(cell, 'guard', 'nginx', (r) => r.rps), 2)} | ${cpu('node-static')} / ${cpu('nginx-static')} / ${cpu('guard')} / ${cpu('nginx')} |`);
  }
  return L;
}

/** The guard against the baseline build (GB_BASELINE_DIST), same repetitions. */
function baselineRps(results, rows) {
  const L = [`Against the baseline guard (${results.settings.baselineDist}), same repetitions:`, ''];
  L.push('| request | conc. | guard req/s | baseline req/s | guard/baseline | guard/nginx | baseline/nginx | CPU µs/req guard / baseline / nginx |');
  L.push('|---|---|---|---|---|---|---|---|');
  for (const c of results.settings.concurrency ?? [1, 16, 64]) {
    for (const req of ['version', 'embed']) {
      const cell = rows.filter((r) => r.concurrency === c && r.request === req);
      if (!cell.some((r) => r.target === 'guard-base')) continue;
      const of = (t, k) => spread(cell.filter((r) => r.target === t).map((r) => r[k]));
      const cpu = (t) => f(of(t, 'proxyCpuUsPerReq').median);
      L.push(`| ${REQ[req]} | ${c} | ${fmtSpread(of('guard', 'rps'))} | ${fmtSpread(of('guard-base', 'rps'))} | ${fmtSpread(paired(cell, 'guard', 'guard-base', (r) => r.rps), 2)} | **${fmtSpread(paired(cell, 'guard', 'nginx', (r) => r.rps), 2)}** | ${fmtSpread(paired(cell, 'guard-base', 'nginx', (r) => r.rps), 2)} | ${cpu('guard')} / ${cpu('guard-base')} / ${cpu('nginx')} |`);
    }
  }
  return L;
}

export function streamTable(results) {
  const rows = (results.streams ?? []).filter((r) => !r.error);
  if (!rows.length) return [];
  const L = [`Streams (simulator 50 tokens/s, started together)${busyMark(results, 'streams')}: one-way per chunk = simulator write → client read; "added" = target − direct, paired within each repetition, median (range).`, ''];
  L.push('| streams | target | one-way p50 / p99 µs | added p50 µs | added p99 µs | TTFB p50 ms | added TTFB p50 µs | of which request leg µs | chunks | failed |');
  L.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const n of [1, 50]) {
    const cell = rows.filter((r) => r.streams === n);
    for (const t of ['direct', 'guard', 'guard-base', 'nginx', 'connector']) {
      const x = cell.filter((r) => r.target === t);
      if (!x.length) continue;
      const med = (k) => spread(x.map((r) => r[k])).median;
      const add = (k, scale = 1) => (t === 'direct' ? '' : fmtSpread(paired(cell, t, 'direct', (r) => r[k] * scale, 'diff')));
      L.push(`| ${n} | ${t} | ${f(med('onewayP50Us'))} / ${f(med('onewayP99Us'))} | ${add('onewayP50Us')} | ${add('onewayP99Us')} | ${f(med('ttfbP50Ms'), 2)} | ${add('ttfbP50Ms', 1000)} | ${add('firstEmitP50Ms', 1000)} | ${x.reduce((a, r) => a + r.chunks, 0)} | ${x.reduce((a, r) => a + r.failed, 0)} |`);
    }
  }
  return L;
}

const KINDS = { 'probe-0': 'a new request, no other streams', 'probe-50': 'a new request while 50 streams run', 'burst-50': '50 requests started together (the "streams" phase\'s 50)' };

/** Per kind: the traced guard's pieces (p50 / p99 over every request of every repetition), and the outline of each target. */
export function legsTables(results) {
  const rows = results.legs ?? [];
  if (!rows.length) return [];
  const ok = (q) => q.status === 200 && Number.isFinite(q.first) && Number.isFinite(q.simArrived);
  const L = [`Where a new request's first byte goes${busyMark(results, 'legs')} (µs; the guard's marks from WGO trace, src/guard/trace.ts, on the clock the client and the simulator share). p50 / p99 over every request of every repetition; "added" = target's p50 − direct's p50 in the same repetition, median (range).`, ''];
  for (const kind of Object.keys(KINDS)) {
    const k = rows.filter((r) => r.kind === kind);
    if (!k.length) continue;
    const g = k.filter((r) => r.target === 'guard').flatMap((r) => r.requests.filter(ok)).map(guardLegs);
    const s = legStats(g);
    L.push(`**${kind}**: ${KINDS[kind]}${kind === 'probe-50' ? ` (background streams open: ${k.map((r) => r.backgroundOpen).join(', ')})` : ''}`, '');
    L.push('| guard piece | p50 | p99 | n |', '|---|---|---|---|');
    for (const [key, what] of PIECES) L.push(`| ${key}: ${what} | ${f(s[key]?.p50)} | ${f(s[key]?.p99)} | ${s[key]?.n ?? 0} |`);
    L.push('');
    L.push('| target | TTFB p50 / p99 | request leg p50 / p99 | response leg p50 / p99 | added TTFB p50 | added request leg p50 | added response leg p50 | requests |', '|---|---|---|---|---|---|---|---|');
    const perRep = k.map((r) => {
      const legs = r.requests.filter(ok).map((q) => (r.target === 'guard' ? guardLegs(q) : opaqueLegs(q)));
      const st = legStats(legs);
      return { rep: r.rep, target: r.target, ttfb: st.ttfb?.p50, requestLeg: st.requestLeg?.p50, responseLeg: st.responseLeg?.p50, legs };
    });
    for (const t of ['direct', 'guard', 'guard-untraced', 'nginx', 'connector']) {
      const x = perRep.filter((r) => r.target === t);
      if (!x.length) continue;
      const all = legStats(x.flatMap((r) => r.legs));
      const pp = (key) => `${f(all[key]?.p50)} / ${f(all[key]?.p99)}`;
      const add = (key) => (t === 'direct' ? '' : fmtSpread(paired(perRep, t, 'direct', (r) => r[key], 'diff')));
      L.push(`| ${t} | ${pp('ttfb')} | ${pp('requestLeg')} | ${pp('responseLeg')} | ${add('ttfb')} | ${add('requestLeg')} | ${add('responseLeg')} | ${all.ttfb?.n ?? 0} |`);
    }
    L.push('');
    if (kind === 'burst-50') L.push(...burstOrder(k.filter((r) => r.target === 'guard')), '');
  }
  return L;
}

/**
 * The burst through the traced guard, in time: when the 50 requests were sent, when their
 * handlers ran, when their policy was decided, and when undici gave each its upstream
 * connection (ms after the first send: first … median … last), and how many got their
 * connection before the last one's policy was decided.
 */
export function burstOrder(rows) {
  const L = ['| rep | sent | handler ran (head) | policy decided | upstream connection (connected) | simulator has it | connected before the last policy |', '|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const q = r.requests.filter((x) => x.marks && Number.isFinite(x.t0));
    if (!q.length) continue;
    const t0 = Math.min(...q.map((x) => x.t0));
    const span = (xs) => {
      const a = xs.filter(Number.isFinite).map((v) => (v - t0) / 1000).sort((x, y) => x - y);
      return a.length ? `${a[0].toFixed(1)} … ${a[a.length >> 1].toFixed(1)} … ${a[a.length - 1].toFixed(1)}` : 'n/a';
    };
    const lastPolicy = Math.max(...q.map((x) => x.marks.policy ?? -Infinity));
    const early = q.filter((x) => x.marks.connected < lastPolicy).length;
    L.push(`| ${r.rep + 1} | ${span(q.map((x) => x.t0))} | ${span(q.map((x) => x.marks.head))} | ${span(q.map((x) => x.marks.policy))} | ${span(q.map((x) => x.marks.connected))} | ${span(q.map((x) => x.simArrived))} | ${early} of ${q.length} |`);
  }
  return L;
}

export function handshakeTable(results) {
  const rows = (results.handshakes ?? []).filter((r) => !r.error);
  if (!rows.length) return [];
  const L = [`New mTLS connections${busyMark(results, 'handshakes')}:`, '', '| handshakes | guard /s | nginx /s | guard/nginx | guard CPU µs/conn | nginx CPU µs/conn | resumed % (guard / nginx) | nginx-static /s |', '|---|---|---|---|---|---|---|---|'];
  for (const resume of [false, true]) {
    const cell = rows.filter((r) => r.resume === resume);
    const of = (t, k) => spread(cell.filter((r) => r.target === t).map((r) => r[k]));
    L.push(`| ${resume ? 'with resumption (TLS 1.3 tickets)' : 'full handshakes'} | ${fmtSpread(of('guard', 'perSec'))} | ${fmtSpread(of('nginx', 'perSec'))} | **${fmtSpread(paired(cell, 'guard', 'nginx', (r) => r.perSec), 2)}** | ${f(of('guard', 'proxyCpuUsPerConn').median)} | ${f(of('nginx', 'proxyCpuUsPerConn').median)} | ${f(of('guard', 'reusedPct').median)} / ${f(of('nginx', 'reusedPct').median)} | ${fmtSpread(of('nginx-static', 'perSec'))} |`);
  }
  return L;
}

export function rssTable(results) {
  const rows = results.rss ?? [];
  if (!rows.length) return [];
  const L = ['| open streams | guard RSS MiB (idle) | guard KB/stream | nginx RSS MiB (idle) | nginx KB/stream |', '|---|---|---|---|---|'];
  for (const step of results.settings.holdSteps) {
    const one = (t) => {
      const x = rows.filter((r) => r.target === t).map((r) => ({ idleKb: r.idleKb, ...r.steps.find((s) => s.target === step) })).filter((r) => r.rssKb);
      return { rss: spread(x.map((r) => r.rssKb / 1024)), idle: spread(x.map((r) => r.idleKb / 1024)), kb: spread(x.map((r) => r.kbPerStream)) };
    };
    const g = one('guard');
    const n = one('nginx');
    L.push(`| ${step} | ${f(g.rss.median, 1)} (${f(g.idle.median, 1)}) | ${fmtSpread(g.kb, 1)} | ${f(n.rss.median, 1)} (${f(n.idle.median, 1)}) | ${fmtSpread(n.kb, 1)} |`);
  }
  return L;
}

export function markdown(results) {
  const m = results.machine;
  const q = results.settings.quiet ?? {};
  const busy = (results.phases ?? []).filter((p) => p.busy);
  const L = [
    `Run ${results.date}: ${m.nproc} × ${m.cpu}, node ${m.node}, ${m.nginx}, kernel ${m.kernel}; load average at start ${m.loadavgAtStart.split(' ').slice(0, 3).join(' ')}.`,
    `Quiet means: load average ≤ ${q.maxLoad} when the run starts, other processes ≤ ${q.maxForeignPct} % of a core and steal ≤ ${q.maxStealPct} % during each phase. ${busy.length ? `**${busy.length} phase repetition(s) ran on a busy machine (marked ⚠ below).**` : 'Every phase ran quiet.'}`,
    '',
    ...phaseTable(results),
    '',
  ];
  for (const t of [rpsTable, streamTable, legsTables, handshakeTable, rssTable]) {
    const x = t(results);
    if (x.length) L.push(...x, '');
  }
  return L.join('\n').trimEnd();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2] ?? `${process.env.BENCH_OUT || '/tmp/wgo-bench-results'}/guard.json`;
  process.stdout.write(markdown(JSON.parse(readFileSync(file, 'utf8'))) + '\n');
}
