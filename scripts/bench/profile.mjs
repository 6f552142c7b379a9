// Where the time of a reconcile goes. Runs reconcileOnce from dist/ in this
// process (the daemon stopped, so nothing else reconciles), wired exactly as
// dist/daemon/serve.js wires it, with an instrumented Runner (every external
// program timed) and an instrumented loadDesired. Scenarios at 10,000 peers:
//   bulk   - 10,000 new peers committed, applied into an empty interface
//   noop   - nothing to do (repeated)
//   add1   - one peer added through PeerService.add (repeated)
// plus micro-timings of the in-process steps of a no-op on the real outputs,
// and the measurements behind the proposed changes (psk reads sync vs async,
// cost of PeerService.add's address scan).
//
//   sudo node scripts/bench/profile.mjs
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { unlinkSync, writeFileSync } from 'node:fs';
import {
  QUICK, SHIM, bench, bulkInsert, createGateway, destroyGateway, dist, log, makePeers, now, startServe, stopServe, summary,
} from './lib.mjs';

const N = Number(process.env.BENCH_PEERS || 10_000);
const NOOP_REPS = QUICK ? 3 : 15;
const ADD_REPS = QUICK ? 3 : 10;

await bench(import.meta.url, 'profile', async (ctx) => {
  const { openGateway, desiredLoader } = await dist('gateway/context.js');
  const { reconcileOnce } = await dist('gateway/reconciler.js');
  const { execRunner } = await dist('system/exec.js');
  const { createWireguard } = await dist('system/wireguard.js');
  const { createFirewall } = await dist('system/firewall.js');
  const { createConntrack } = await dist('system/conntrack.js');
  const fp = await dist('core/firewall-plan.js');
  const { parseWgDump } = await dist('core/wg-dump.js');
  const { diffWireguard } = await dist('core/wg-plan.js');
  const { peerRepository } = await dist('db/peers.js');
  const { default: pino } = await import('pino');

  // An interface and firewall made by the daemon itself, then the daemon stopped.
  const gw = await createGateway(ctx, { iface: 'wgobn5' });
  ctx.cleanups.push(() => destroyGateway(gw));
  await startServe(ctx, gw, { launcher: SHIM, env: { BENCH_SYNCCONF_FILE: '1' } });
  await stopServe(gw);

  let execs = [];
  const runner = async (file, args, options = {}) => {
    let a = args;
    let tmp = null;
    // The proposed fix (as in serve-shim.mjs): syncconf from a 0600 file, not /dev/stdin.
    if (file === 'wg' && args[0] === 'syncconf' && args[2] === '/dev/stdin') {
      tmp = join(gw.config.stateDir, `syncconf-${randomBytes(6).toString('hex')}.conf`);
      writeFileSync(tmp, options.input ?? '', { mode: 0o600, flag: 'wx' });
      a = [args[0], args[1], tmp];
      options = { ...options, input: '' };
    }
    const start = now();
    try {
      return await execRunner(file, a, options);
    } finally {
      execs.push({ what: `${file} ${a.slice(0, 2).join(' ')}`.replace(/ wgobn\w+| \/\S+|wgo-peers-\w+/g, '').trim(), start, ms: now() - start, inputBytes: options.input?.length ?? 0 });
      if (tmp) unlinkSync(tmp);
    }
  };

  const g = openGateway(gw.config);
  ctx.cleanups.push(async () => g.close());
  const load = desiredLoader(g, (m) => log('desired:', m));
  let loadMs = 0;
  const deps = {
    loadDesired: () => {
      const t = now();
      try {
        return load();
      } finally {
        loadMs = now() - t;
      }
    },
    wg: createWireguard(runner),
    fw: createFirewall(runner),
    conntrack: createConntrack(runner),
    privateKey: g.privateKey,
    privateKeyFile: gw.config.paths.serverKey,
    wireguard: gw.config.wireguard,
    wireguardGo: gw.config.wireguardGo,
    log: pino({ level: 'silent' }),
  };

  /** One reconcile with its timeline: loadDesired, every program, and what is left (in-process work). */
  const profiled = async () => {
    execs = [];
    const t0 = now();
    const res = await reconcileOnce(deps);
    const total = now() - t0;
    // Time covered by at least one program (programs can overlap: Promise.all).
    const iv = execs.map((e) => [e.start - t0, e.start - t0 + e.ms]).sort((x, y) => x[0] - y[0]);
    let covered = 0;
    let end = -Infinity;
    for (const [s, e] of iv) {
      if (e <= end) continue;
      covered += e - Math.max(s, end);
      end = e;
    }
    return {
      ok: res.ok, noop: res.noop, errors: res.errors, totalMs: total, loadDesiredMs: loadMs, programsWallMs: covered,
      inProcessOtherMs: total - loadMs - covered, processes: execs.length,
      programs: execs.map((e) => ({ what: e.what, atMs: e.start - t0, ms: e.ms, inputBytes: e.inputBytes })),
    };
  };

  // ---- bulk: N peers into the empty interface
  const peers = await makePeers(N);
  await bulkInsert(gw, peers);
  const bulk = await profiled();
  log(`bulk: ${bulk.totalMs.toFixed(0)} ms = loadDesired ${bulk.loadDesiredMs.toFixed(0)} (uncached psk reads) + programs ${bulk.programsWallMs.toFixed(0)} + other ${bulk.inProcessOtherMs.toFixed(0)}; ${bulk.processes} processes`);
  for (const p of bulk.programs) log(`   @${p.atMs.toFixed(0).padStart(5)} ${p.ms.toFixed(1).padStart(7)} ms  ${p.what}${p.inputBytes ? ` (stdin ${p.inputBytes} B)` : ''}`);
  if (!bulk.ok) throw new Error(`bulk reconcile failed: ${bulk.errors.join('; ')}`);

  // ---- no-op, repeated
  const noops = [];
  for (let i = 0; i < NOOP_REPS; i++) noops.push(await profiled());
  const byProgram = (list) => {
    const names = [...new Set(list.flatMap((r) => r.programs.map((p) => p.what)))];
    return Object.fromEntries(names.map((w) => [w, summary(list.map((r) => r.programs.filter((p) => p.what === w).reduce((a, p) => a + p.ms, 0)))]));
  };
  const noop = {
    totalMs: summary(noops.map((r) => r.totalMs)),
    loadDesiredMs: summary(noops.map((r) => r.loadDesiredMs)),
    programsWallMs: summary(noops.map((r) => r.programsWallMs)),
    inProcessOtherMs: summary(noops.map((r) => r.inProcessOtherMs)),
    processes: noops[0].processes,
    allNoop: noops.every((r) => r.noop && r.ok),
    programs: byProgram(noops),
    timeline: noops[Math.floor(noops.length / 2)].programs,
  };
  log(`noop: ${noop.totalMs.median} ms = loadDesired ${noop.loadDesiredMs.median} + programs ${noop.programsWallMs.median} + other ${noop.inProcessOtherMs.median}; ${noop.processes} processes; all noop ${noop.allNoop}`);
  for (const [w, s] of Object.entries(noop.programs)) log(`   ${s.median.toString().padStart(7)} ms  ${w}`);

  // ---- micro-timings of the in-process steps of a no-op, on the real outputs
  const names = fp.chainNames(gw.iface);
  const [s4, s6, setText, dumpText] = await Promise.all([
    execRunner('iptables-save', ['-t', 'filter']), execRunner('ip6tables-save', ['-t', 'filter']),
    execRunner('ipset', ['save', names.set]), execRunner('wg', ['show', gw.iface, 'dump']),
  ]).then((rs) => rs.map((r) => r.stdout));
  const repo = peerRepository(g.db);
  const micro = (fn, reps = 10) => {
    const xs = [];
    for (let i = 0; i < reps; i++) {
      const t = now();
      fn();
      xs.push(now() - t);
    }
    return summary(xs);
  };
  const desired = load();
  const want = new Map(desired.peers.map((p) => [p.address, fp.setEntryFor ? fp.setEntryFor(p.name, p.expiresAt ?? null, Date.now()) : p.name]));
  const dump = parseWgDump(dumpText);
  const spec = { iface: gw.iface, ollamaHost: gw.config.ollamaHost, ollamaPort: gw.config.ollamaPort };
  const steps = {
    'sql: peers.active() (10k rows)': micro(() => repo.active(Date.now())),
    'loadDesired (psk cached)': micro(() => load()),
    'parseIpsetSave': micro(() => fp.parseIpsetSave(setText, names.set)),
    'diffSet': micro(() => fp.diffSet(want, fp.parseIpsetSave(setText, names.set))),
    'parseIptablesSave+firewallInSync x2': micro(() => {
      fp.firewallInSync(fp.parseIptablesSave(s4), spec, 'ipv4');
      fp.firewallInSync(fp.parseIptablesSave(s6), spec, 'ipv6');
    }),
    'parseWgDump': micro(() => parseWgDump(dumpText)),
    'diffWireguard': micro(() => diffWireguard(desired, dump)),
  };
  log('noop in-process steps (median ms):', Object.entries(steps).map(([k, v]) => `${k} ${v.median}`).join(', '));

  // ---- preshared-key reads: what an uncached loadDesired pays, sync (as now) vs async
  const pskFiles = repo.active(Date.now()).map((p) => g.psk.path(p.pskRef));
  const syncRead = micro(() => {
    for (const f of pskFiles) readFileSync(f, 'utf8');
  }, 3);
  const asyncRead = [];
  for (let i = 0; i < 3; i++) {
    const t = now();
    await Promise.all(pskFiles.map((f) => readFile(f, 'utf8')));
    asyncRead.push(now() - t);
  }
  log(`reading ${pskFiles.length} psk files (page cache warm): sync ${syncRead.median} ms, async Promise.all ${summary(asyncRead).median} ms`);

  // ---- PeerService.add's address scan at N rows (why the bulk uses the repository directly)
  const scan = micro(() => repo.usedAddresses(), 5);
  // ---- what an incremental apply would read instead of everything: rows changed since a time (no index)
  const delta = g.db.prepare('SELECT id, name, address, public_key, psk_ref, status, expires_at FROM peers WHERE updated_at > ?');
  const deltaQuery = micro(() => delta.all(Date.now() - 1000), 10);
  log(`PeerService.add's usedAddresses() at ${N} rows: ${scan.median} ms per add; a "changed since" query (full scan, no index): ${deltaQuery.median} ms`);

  // ---- one peer added through PeerService.add, then one reconcile
  const adds = [];
  for (let i = 0; i < ADD_REPS; i++) {
    const t0 = now();
    g.peers.add({ name: `prof${i}` }, { actor: 'bench', source: 'bench' });
    const addMs = now() - t0;
    const r = await profiled();
    adds.push({ addMs, ...r });
  }
  const add1 = {
    serviceAddMs: summary(adds.map((r) => r.addMs)),
    totalMs: summary(adds.map((r) => r.totalMs)),
    loadDesiredMs: summary(adds.map((r) => r.loadDesiredMs)),
    programsWallMs: summary(adds.map((r) => r.programsWallMs)),
    inProcessOtherMs: summary(adds.map((r) => r.inProcessOtherMs)),
    processes: adds[0].processes,
    programs: byProgram(adds),
    timeline: adds[Math.floor(adds.length / 2)].programs,
  };
  log(`add1: PeerService.add ${add1.serviceAddMs.median} ms; reconcile ${add1.totalMs.median} ms = loadDesired ${add1.loadDesiredMs.median} + programs ${add1.programsWallMs.median} + other ${add1.inProcessOtherMs.median}; ${add1.processes} processes`);
  for (const p of add1.timeline) log(`   @${p.atMs.toFixed(0).padStart(5)} ${p.ms.toFixed(1).padStart(7)} ms  ${p.what}`);

  return {
    peers: N,
    bulk,
    noop,
    noopSteps: steps,
    pskReads: { files: pskFiles.length, syncMs: syncRead, asyncMs: summary(asyncRead) },
    peerServiceAddressScanMs: scan,
    changedSinceQueryMs: deltaQuery,
    add1,
  };
});
