// Benchmark 2 (and 5, daemon started at 10k): a reconcile with nothing to do at 10,000 peers.
//
// Ours: `requestControl(socket, 'reconcile-full')` against the running
// bin/wg-ollama.js serve; the daemon's own durationMs and noop, and the wall
// time of the request. Direct, interleaved with ours: the reads a no-op needs,
// run by hand the way reconcileOnce runs them (iptables-save, ip6tables-save,
// ipset save and `ip -j addr show` in parallel, then `wg show IFACE dump`), and
// also one after the other.
//
//   sudo node scripts/bench/noop-reconcile.mjs      (BENCH_REPS=30 by default)
import { QUICK, bench, log, memoryOf, requestControl, run, setupPopulated, sleep, summary, now } from './lib.mjs';

const N = Number(process.env.BENCH_PEERS || 10_000);
const REPS = QUICK ? 5 : Number(process.env.BENCH_REPS_NOOP || 30);

await bench(import.meta.url, 'noop-reconcile', async (ctx) => {
  const { gw } = await setupPopulated(ctx, { iface: 'wgobn2', n: N });
  await sleep(1000);
  const memStart = memoryOf(gw.serve.pid);
  const ours = [];
  const direct = [];
  for (let i = 0; i < REPS; i++) {
    // ours
    const t0 = now();
    // A *full* reconcile (kernel read back and compared): what the periodic drift repair does.
    // ('reconcile', the fast path after a commit, reads nothing and takes ~0 ms with nothing to do.)
    const res = await requestControl(gw.socket, 'reconcile-full');
    const wall = now() - t0;
    ours.push({ wallMs: wall, durationMs: res.durationMs, noop: res.noop, ok: res.ok, peers: res.peers, queuedMs: wall - res.durationMs, rssMiB: memoryOf(gw.serve.pid).rssMiB });
    await sleep(150);
    // direct, the same structure as reconcileOnce's reads
    const d0 = now();
    const par = await Promise.all([
      run('iptables-save', ['-t', 'filter']),
      run('ip6tables-save', ['-t', 'filter']),
      run('ipset', ['save', gw.set]),
      run('ip', ['-j', 'addr', 'show', 'dev', gw.iface]),
    ]);
    const dump = await run('wg', ['show', gw.iface, 'dump']);
    const structured = now() - d0;
    if (par.some((r) => r.code !== 0) || dump.code !== 0) throw new Error('direct reads failed');
    await sleep(50);
    // all five at once (what reconcileOnce could do: the dump does not need to wait for the others)
    const a0 = now();
    const all = await Promise.all([
      run('iptables-save', ['-t', 'filter']),
      run('ip6tables-save', ['-t', 'filter']),
      run('ipset', ['save', gw.set]),
      run('ip', ['-j', 'addr', 'show', 'dev', gw.iface]),
      run('wg', ['show', gw.iface, 'dump']),
    ]);
    const allParallel = now() - a0;
    if (all.some((r) => r.code !== 0)) throw new Error('direct reads failed');
    await sleep(50);
    // the four reads the brief names, one after the other
    const seq = [];
    for (const [c, a] of [['wg', ['show', gw.iface, 'dump']], ['ipset', ['save', gw.set]], ['iptables-save', ['-t', 'filter']], ['ip6tables-save', ['-t', 'filter']]]) {
      seq.push((await run(c, a)).ms);
    }
    direct.push({ structuredMs: structured, allParallelMs: allParallel, parallelReadsMs: Math.max(...par.map((r) => r.ms)), dumpMs: dump.ms, sequentialMs: seq.reduce((a, b) => a + b, 0), seq });
    await sleep(150 + Math.random() * 200);
  }
  const memEnd = memoryOf(gw.serve.pid);
  const clean = ours.filter((o) => o.queuedMs < 20);
  const o = summary(ours.map((x) => x.durationMs));
  const w = summary(ours.map((x) => x.wallMs));
  const d = summary(direct.map((x) => x.structuredMs));
  log(`ours: durationMs median ${o.median} (min ${o.min}, max ${o.max}), wall median ${w.median}; all noop: ${ours.every((x) => x.noop && x.ok)}; ${ours.length - clean.length} of ${ours.length} requests waited behind a periodic reconcile`);
  log(`direct: reads as reconcileOnce does them ${d.median} ms; all five in parallel ${summary(direct.map((x) => x.allParallelMs)).median} ms; sequential ${summary(direct.map((x) => x.sequentialMs)).median} ms`);
  log(`daemon memory at ${N} peers (started on a populated state): RSS ${memEnd.rssMiB.toFixed(1)} MiB, HWM ${memEnd.hwmMiB.toFixed(1)} MiB`);
  return {
    peers: N,
    targetMs: 100,
    ours: o,
    oursWall: w,
    oursWallNotQueued: summary(clean.map((x) => x.wallMs)),
    allNoop: ours.every((x) => x.noop && x.ok),
    queuedBehindPeriodic: ours.length - clean.length,
    direct: d,
    directSequential: summary(direct.map((x) => x.sequentialMs)),
    directAllFiveParallel: summary(direct.map((x) => x.allParallelMs)),
    directParts: {
      parallelReadsMs: summary(direct.map((x) => x.parallelReadsMs)),
      wgDumpMs: summary(direct.map((x) => x.dumpMs)),
      seqWgDumpMs: summary(direct.map((x) => x.seq[0])),
      seqIpsetSaveMs: summary(direct.map((x) => x.seq[1])),
      seqIptablesSaveMs: summary(direct.map((x) => x.seq[2])),
      seqIp6tablesSaveMs: summary(direct.map((x) => x.seq[3])),
    },
    ratio: o.median / d.median,
    ratioWall: w.median / d.median,
    memory: { startedAtPopulated: memStart, afterReps: memEnd, rssAfterEachRequestMiB: ours.map((x) => Math.round(x.rssMiB * 10) / 10) },
    ours_raw: ours,
  };
});
