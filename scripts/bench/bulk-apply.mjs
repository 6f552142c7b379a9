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
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  QUICK, bench, bulkInsert, createGateway, destroyGateway, dist, log, makePeers, memoryOf, must, now, reconcileLog,
  run, runToFile, sleep, startServe, summary, waitCounts,
} from './lib.mjs';

const N = Number(process.env.BENCH_PEERS || 10_000);
const REPS = QUICK ? 1 : Number(process.env.BENCH_REPS || 5);
const DIRECT_IF = 'wgobnd';
const DIRECT_SET = 'bn-direct';

await bench(import.meta.url, 'bulk-apply', async (ctx) => {
  const { renderSetRestore } = await dist('core/firewall-plan.js');
  const reps = [];
  for (let rep = 0; rep < REPS; rep++) {
    // ---- ours
    const gw = await createGateway(ctx, { iface: 'wgobn1' });
    ctx.cleanups.push(() => destroyGateway(gw));
    await startServe(ctx, gw);
    await sleep(1500);
    const mem0 = memoryOf(gw.serve.pid);
    const peers = await makePeers(N);
    const { committed, txMs } = await bulkInsert(gw, peers);
    const live = await waitCounts(gw.iface, gw.set, N, committed, { timeoutMs: 60_000 });
    await sleep(200);
    const applied = reconcileLog(gw, committed - 5).find((r) => r.wgUpserted >= N || r.setAdded >= N);
    const appliedEnd = applied ? Date.parse(applied.time) - committed : NaN;
    // Let a periodic reconcile (every 3 s) and a monitor tick (every 5 s) run at 10k before reading memory.
    await sleep(7000);
    const mem10k = memoryOf(gw.serve.pid);
    const wgGoPid = (await run('pgrep', ['-f', `^wireguard-go ${gw.iface}$`])).stdout.trim().split('\n')[0];
    const wgGoMem = wgGoPid ? memoryOf(Number(wgGoPid)) : null;
    await destroyGateway(gw);

    // ---- direct: the same peers with ipset restore + wg syncconf into an empty interface
    await run('ipset', ['destroy', DIRECT_SET]);
    await run('ip', ['link', 'del', 'dev', DIRECT_IF]);
    const keyFile = join(ctx.dir, 'direct.key');
    const key = (await must('wg', ['genkey'])).stdout.trim();
    writeFileSync(keyFile, key + '\n', { mode: 0o600 });
    const created = await runToFile('wireguard-go', [DIRECT_IF], join(ctx.dir, 'wireguard-go-direct.log'));
    if (created.code !== 0) throw new Error('wireguard-go for the direct interface failed');
    await must('wg', ['set', DIRECT_IF, 'private-key', keyFile, 'listen-port', '51821']);
    await must('ip', ['addr', 'add', '10.67.0.1/16', 'dev', DIRECT_IF]);
    await must('ip', ['link', 'set', 'dev', DIRECT_IF, 'up']);
    const conf = ['[Interface]', `PrivateKey = ${key}`, 'ListenPort = 51821', ''];
    for (const p of peers) conf.push('[Peer]', `PublicKey = ${p.publicKey}`, `PresharedKey = ${p.psk}`, `AllowedIPs = ${p.address}/32`, '');
    const confFile = join(ctx.dir, 'direct.conf');
    writeFileSync(confFile, conf.join('\n'), { mode: 0o600 });
    const setText = renderSetRestore(DIRECT_SET, { add: peers.map((p) => [p.address, p.name]), del: [] });
    const ipsetR = await must('ipset', ['restore'], { input: setText });
    const syncR = await must('wg', ['syncconf', DIRECT_IF, confFile]);
    const check = await Promise.all([run('wg', ['show', DIRECT_IF, 'peers']), run('ipset', ['list', '-t', DIRECT_SET])]);
    const directOk = check[0].stdout.trimEnd().split('\n').length === N && check[1].stdout.includes(`Number of entries: ${N}`);
    await run('ip', ['link', 'del', 'dev', DIRECT_IF]);
    await run('ipset', ['destroy', DIRECT_SET]);

    const r = {
      rep,
      txMs,
      oursMs: live.bothMs,
      wgLiveMs: live.wg.liveMs,
      wgLowerMs: live.wg.lowerMs,
      wgPolls: live.wg.polls,
      ipsetLiveMs: live.ipset.liveMs,
      ipsetLowerMs: live.ipset.lowerMs,
      ipsetPolls: live.ipset.polls,
      lastWgPollMs: live.wg.pollMs,
      reconcileDurationMs: applied?.durationMs ?? NaN,
      reconcileEndAfterCommitMs: appliedEnd,
      reconcileStartAfterCommitMs: appliedEnd - (applied?.durationMs ?? NaN),
      directIpsetMs: ipsetR.ms,
      directWgMs: syncR.ms,
      directMs: ipsetR.ms + syncR.ms,
      directOk,
      mem0,
      mem10k,
      wireguardGoMem10k: wgGoMem,
    };
    reps.push(r);
    log(`rep ${rep}: ours ${r.oursMs.toFixed(0)} ms (wg ${r.wgLiveMs.toFixed(0)}, ipset ${r.ipsetLiveMs.toFixed(0)}; reconcile ${r.reconcileDurationMs?.toFixed?.(0)} ms starting ${r.reconcileStartAfterCommitMs.toFixed(0)} ms after commit) | direct ${r.directMs.toFixed(0)} ms (ipset ${ipsetR.ms.toFixed(0)}, syncconf ${syncR.ms.toFixed(0)}) | RSS ${mem0.rssMiB.toFixed(1)} -> ${mem10k.rssMiB.toFixed(1)} MiB, HWM ${mem10k.hwmMiB.toFixed(1)}`);
  }
  const pick = (k) => summary(reps.map((r) => r[k]));
  const ours = pick('oursMs');
  const direct = pick('directMs');
  return {
    peers: N,
    method: 'peer repository inserts in one immediate better-sqlite3 transaction; psk files via psk-store before it',
    targetMs: 1000,
    ours,
    direct,
    ratio: ours.median / direct.median,
    detail: {
      wgLiveMs: pick('wgLiveMs'), ipsetLiveMs: pick('ipsetLiveMs'), reconcileDurationMs: pick('reconcileDurationMs'),
      reconcileStartAfterCommitMs: pick('reconcileStartAfterCommitMs'), reconcileEndAfterCommitMs: pick('reconcileEndAfterCommitMs'),
      txMs: pick('txMs'), directIpsetMs: pick('directIpsetMs'), directWgMs: pick('directWgMs'), lastWgPollMs: pick('lastWgPollMs'),
    },
    memory: {
      rss0MiB: summary(reps.map((r) => r.mem0.rssMiB)), hwm0MiB: summary(reps.map((r) => r.mem0.hwmMiB)),
      rss10kMiB: summary(reps.map((r) => r.mem10k.rssMiB)), hwm10kMiB: summary(reps.map((r) => r.mem10k.hwmMiB)),
      wireguardGoRss10kMiB: summary(reps.map((r) => r.wireguardGoMem10k?.rssMiB)),
    },
    reps,
  };
});
