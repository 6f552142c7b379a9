// Benchmark 1 (and 5): 10,000 peers live after one bulk change, with `serve` running;
// daemon memory at 0 and at 10,000 peers.
//
// Ours: a fresh gateway (init + serve, 0 peers); one SQLite transaction inserts
// 10,000 active peers (peer repository + psk-store files); time from COMMIT to
// `wg show IFACE peers` = 10000 and `ipset list -t SET` = 10000.
// Direct, same run, same peers: `ipset restore` of the same 10,000 adds into a
// new set + `wg syncconf` of the same 10,000 peers into a new empty wireguard-go
// interface.
//
//   sudo node scripts/bench/bulk-apply.mjs      (BENCH_REPS=5 by default)
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  QUICK, SHIM, bench, setRestoreText, bulkInsert, createGateway, createWgInterface, destroyGateway, dist, log, makePeers, memoryOf, must,
  reconcileLog, run, sleep, startServe, summary, waitCounts, waitIfaceGone, wgPeerCount,
} from './lib.mjs';

const N = Number(process.env.BENCH_PEERS || 10_000);
const REPS = QUICK ? 1 : Number(process.env.BENCH_REPS || 5);
const DIRECT_IF = 'wgobnd';
const DIRECT_SET = 'bn-direct';



/** Exec records of the shim (BENCH_EXEC_LOG) that fall inside [from, to]. */
function execsBetween(file, from, to) {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.start >= from - 1 && e.start <= to);
}

/** One fresh gateway, serve at 0 peers, one bulk commit of N peers, wait until live. */
async function oursOnce(ctx, peers, { launcher, env, timeoutMs, iface }) {
  const gw = await createGateway(ctx, { iface });
  ctx.cleanups.push(() => destroyGateway(gw));
  await startServe(ctx, gw, { launcher, env });
  await sleep(1500);
  const mem0 = memoryOf(gw.serve.pid);
  const { committed, txMs } = await bulkInsert(gw, peers);
  const live = await waitCounts(gw.iface, gw.set, N, committed, { timeoutMs, gapMs: 20 });
  await sleep(300);
  const recs = reconcileLog(gw, committed - 5);
  const applied = recs.find((r) => r.ok && (r.wgUpserted >= N || r.setAdded >= N)) ?? null;
  const appliedEnd = applied ? Date.parse(applied.time) - committed : NaN;
  let execs = [];
  if (applied && env.BENCH_EXEC_LOG) {
    const end = Date.parse(applied.time) + 1;
    execs = execsBetween(env.BENCH_EXEC_LOG, end - applied.durationMs - 2, end).map((e) => ({
      what: `${e.file} ${e.args.slice(0, 2).join(' ')}`.replace(/ wgobn\w+| wgo-peers-\S+| \/\S+/g, ''), atMs: e.start - committed, ms: e.ms, inputBytes: e.inputBytes,
    }));
  }
  let mem10k = null;
  let wgGoMem = null;
  if (applied) {
    // Let a periodic reconcile (every 3 s) and a monitor tick (every 5 s) run at 10k before reading memory.
    await sleep(7000);
    mem10k = memoryOf(gw.serve.pid);
    const wgGoPid = (await run('pgrep', ['-f', `^wireguard-go ${gw.iface}$`])).stdout.trim().split('\n')[0];
    wgGoMem = wgGoPid ? memoryOf(Number(wgGoPid)) : null;
  }
  const errors = [...new Set(recs.flatMap((r) => r.errors ?? []))];
  const wgNow = (await wgPeerCount(gw.iface)).count;
  const failedReconciles = recs.filter((r) => !r.ok).length;
  await destroyGateway(gw);
  return { committed, txMs, live, applied, appliedEnd, execs, mem0, mem10k, wgGoMem, errors, wgNow, failedReconciles };
}

await bench(import.meta.url, 'bulk-apply', async (ctx) => {

  // ---- as shipped (bin/wg-ollama.js serve): documents what happens; one run is enough.
  log('as shipped: bin/wg-ollama.js serve, one bulk commit of', N, 'peers');
  const shippedPeers = await makePeers(N);
  const shipped = await oursOnce(ctx, shippedPeers, { launcher: undefined, env: {}, timeoutMs: 6000, iface: 'wgobn1s' });
  const shippedResult = {
    ipsetLiveMs: shipped.live.ipset.liveMs,
    wgLiveMs: shipped.live.wg.liveMs,
    wgPeersAfter6s: shipped.wgNow,
    reconcilesFailed: shipped.failedReconciles,
    errors: shipped.errors,
    mem0: shipped.mem0,
  };
  log(`as shipped: ipset live after ${shippedResult.ipsetLiveMs.toFixed(0)} ms; WireGuard has ${shipped.wgNow} peers after 6 s; errors: ${shipped.errors.join(' | ')}`);

  // ---- with the syncconf-through-a-file shim (the proposed fix), and direct, REPS times.
  const reps = [];
  for (let rep = 0; rep < REPS; rep++) {
    const peers = await makePeers(N);
    const execLog = join(ctx.dir, `exec-bulk-${rep}.jsonl`);
    const o = await oursOnce(ctx, peers, { launcher: SHIM, env: { BENCH_SYNCCONF_FILE: '1', BENCH_EXEC_LOG: execLog }, timeoutMs: 30_000, iface: `wgobn1${rep}` });

    // ---- direct: the same peers with ipset restore + wg syncconf into an empty interface
    await run('ipset', ['destroy', DIRECT_SET]);
    const { key } = await createWgInterface(ctx, DIRECT_IF, { port: 51821, address: '10.67.0.1/16' });
    const conf = ['[Interface]', `PrivateKey = ${key}`, 'ListenPort = 51821', ''];
    for (const p of peers) conf.push('[Peer]', `PublicKey = ${p.publicKey}`, `PresharedKey = ${p.psk}`, `AllowedIPs = ${p.address}/32`, '');
    const confFile = join(ctx.dir, 'direct.conf');
    writeFileSync(confFile, conf.join('\n'), { mode: 0o600 });
    const setText = await setRestoreText(DIRECT_SET, peers);
    const ipsetR = await must('ipset', ['restore'], { input: setText });
    const syncR = await must('wg', ['syncconf', DIRECT_IF, confFile]);
    const check = await Promise.all([wgPeerCount(DIRECT_IF), run('ipset', ['list', '-t', DIRECT_SET])]);
    const directOk = check[0].count === N && check[1].stdout.includes(`Number of entries: ${N}`);
    await run('ip', ['link', 'del', 'dev', DIRECT_IF]);
    await run('ipset', ['destroy', DIRECT_SET]);
    await waitIfaceGone(DIRECT_IF);

    const r = {
      rep,
      txMs: o.txMs,
      oursMs: o.live.bothMs,
      wgLiveMs: o.live.wg.liveMs,
      wgLowerMs: o.live.wg.lowerMs,
      wgPolls: o.live.wg.polls,
      ipsetLiveMs: o.live.ipset.liveMs,
      ipsetLowerMs: o.live.ipset.lowerMs,
      ipsetPolls: o.live.ipset.polls,
      lastWgPollMs: o.live.wg.pollMs,
      reconcileDurationMs: o.applied?.durationMs ?? NaN,
      reconcileEndAfterCommitMs: o.appliedEnd,
      reconcileStartAfterCommitMs: o.appliedEnd - (o.applied?.durationMs ?? NaN),
      execs: o.execs,
      directIpsetMs: ipsetR.ms,
      directWgMs: syncR.ms,
      directMs: ipsetR.ms + syncR.ms,
      directOk,
      mem0: o.mem0,
      mem10k: o.mem10k,
      wireguardGoMem10k: o.wgGoMem,
      errors: o.errors,
    };
    reps.push(r);
    const f = (v) => (Number.isFinite(v) ? v.toFixed(0) : String(v));
    log(`rep ${rep}: ours(fixed) ${f(r.oursMs)} ms (wg ${f(r.wgLiveMs)}, ipset ${f(r.ipsetLiveMs)}; reconcile ${f(r.reconcileDurationMs)} ms starting ${f(r.reconcileStartAfterCommitMs)} ms after commit) | direct ${f(r.directMs)} ms (ipset ${f(ipsetR.ms)}, syncconf ${f(syncR.ms)}) ok=${directOk} | RSS ${o.mem0.rssMiB.toFixed(1)} -> ${o.mem10k?.rssMiB.toFixed(1)} MiB, HWM ${o.mem10k?.hwmMiB.toFixed(1)}`);
    log(`   execs: ${o.execs.map((e) => `${e.what} @${f(e.atMs)} ${f(e.ms)}ms`).join(', ')}`);
  }
  const pick = (k) => summary(reps.map((r) => r[k]));
  const ours = pick('oursMs');
  const direct = pick('directMs');
  // Median duration of each program in the bulk reconcile.
  const execNames = [...new Set(reps.flatMap((r) => r.execs.map((e) => e.what)))];
  const execMedians = Object.fromEntries(execNames.map((w) => [w, summary(reps.map((r) => r.execs.filter((e) => e.what === w).reduce((a, e) => a + e.ms, 0)))]));
  return {
    peers: N,
    method: 'peer repository inserts in one immediate better-sqlite3 transaction; psk files via psk-store before it (PeerService.add is not used: it re-reads every used address per call, O(n^2) for a bulk)',
    targetMs: 1000,
    shipped: shippedResult,
    ours,
    direct,
    ratio: ours.median / direct.median,
    detail: {
      wgLiveMs: pick('wgLiveMs'), ipsetLiveMs: pick('ipsetLiveMs'), reconcileDurationMs: pick('reconcileDurationMs'),
      reconcileStartAfterCommitMs: pick('reconcileStartAfterCommitMs'), reconcileEndAfterCommitMs: pick('reconcileEndAfterCommitMs'),
      txMs: pick('txMs'), directIpsetMs: pick('directIpsetMs'), directWgMs: pick('directWgMs'), lastWgPollMs: pick('lastWgPollMs'),
      execMedians,
    },
    memory: {
      rss0MiB: summary(reps.map((r) => r.mem0.rssMiB)), hwm0MiB: summary(reps.map((r) => r.mem0.hwmMiB)),
      rss10kMiB: summary(reps.map((r) => r.mem10k?.rssMiB)), hwm10kMiB: summary(reps.map((r) => r.mem10k?.hwmMiB)),
      wireguardGoRss10kMiB: summary(reps.map((r) => r.wireguardGoMem10k?.rssMiB)),
    },
    reps,
  };
});
