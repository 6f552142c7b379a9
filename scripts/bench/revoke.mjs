// Benchmark 4: `revoke-peer` until the flow is dead; target <= 1 s.
//
// Each repetition: a new peer (`add-peer --json`), its config brought up in
// bn-c1 with wg-quick (wireguard-go), `curl -N` streaming one NDJSON line
// every 100 ms from the GPU host's listener through the tunnel; then
// `wg-ollama revoke-peer NAME` (a process, as an admin would run it). Measured
// from the start of revoke-peer: the GPU-side listener reporting the
// connection closed (its {"closed": ms} stderr line), the last line the client
// received, and the revoke-peer process itself. Done at two sizes: a gateway
// with no other peers, and one with 10,000 other live peers.
// Direct, same run: the same kill done by hand on a tunnel to a second
// interface (`wg set IFACE peer KEY remove` + `ipset del` + `conntrack -D` both
// directions), from its start to the listener's close line.
//
//   sudo node scripts/bench/revoke.mjs
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  GPU, LISTENER, NS, QUICK, background, bench, destroyGateway, log, must, now, reconcileLog, run, runToFile, setupPopulated,
  sleep, stopServe, streamLines, summary, waitFor,
} from './lib.mjs';

const REPS = QUICK ? 2 : Number(process.env.BENCH_REPS_REVOKE || 5);
const SIZES = (process.env.BENCH_REVOKE_SIZES || '0,10000').split(',').map(Number);
const CLIENT_IF = 'wgobnc1';
const WGQ_ENV = { ...process.env, WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go' };

await bench(import.meta.url, 'revoke', async (ctx) => {
  const listenerLog = join(ctx.dir, 'gpu-listener.log');
  const listener = background('ip', ['netns', 'exec', NS.gpu, process.execPath, LISTENER, 'gpu', '11434'], listenerLog);
  await waitFor(async () => (await run('curl', ['-s', '-m', '1', `http://${GPU}:11434/api/version`])).code === 0, 10_000, 'GPU listener');
  const closedLines = () => readFileSync(listener.errLog, 'utf8').split('\n').filter(Boolean).map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      return {};
    }
  });
  const confFile = join(ctx.dir, `${CLIENT_IF}.conf`);
  const clientUp = async (config) => {
    writeFileSync(confFile, config, { mode: 0o600 });
    const r = await runToFile('ip', ['netns', 'exec', NS.c1, 'wg-quick', 'up', confFile], join(ctx.dir, 'wg-quick.log'), { env: WGQ_ENV });
    if (r.code !== 0) throw new Error(`wg-quick up failed, see ${r.log}: ${readFileSync(r.log, 'utf8').slice(-500)}`);
  };
  const clientDown = async () => {
    await runToFile('ip', ['netns', 'exec', NS.c1, 'wg-quick', 'down', confFile], join(ctx.dir, 'wg-quick.log'), { env: WGQ_ENV });
    await waitFor(async () => (await run('ip', ['netns', 'exec', NS.c1, 'ip', 'link', 'show', 'dev', CLIENT_IF])).code !== 0, 10_000, 'client interface gone');
  };
  ctx.cleanups.push(clientDown);

  /** Starts a stream from bn-c1 and waits for its first lines. */
  const startStream = async () => {
    const s = streamLines('ip', ['netns', 'exec', NS.c1, 'curl', '-sN', '-m', '40', `http://${GPU}:11434/stream?seconds=30`]);
    await waitFor(() => s.lines.length >= 5, 15_000, 'the stream to flow', 20);
    return s;
  };

  /** After `t0`: when the listener reported this peer's stream closed, and when the client's lines stopped. */
  const observeDeath = async (stream, address, t0) => {
    const from = `::ffff:${address}`;
    let closed = null;
    for (let i = 0; i < 600 && !closed; i++) {
      closed = closedLines().find((c) => c.from === from && c.closed >= t0 - 1000) ?? null;
      if (!closed) await sleep(10);
    }
    // The client: no new line for 1.5 s (lines come every 100 ms) means the stream stopped.
    for (let i = 0; i < 100; i++) {
      const last = stream.lines.at(-1);
      if (now() - last.t > 1500) break;
      await sleep(50);
    }
    const after = stream.lines.filter((l) => l.t >= t0);
    const lastLine = stream.lines.at(-1);
    return {
      listenerClosedMs: closed ? closed.closed - t0 : NaN,
      listenerReason: closed?.reason ?? null,
      clientLastLineMs: after.length ? lastLine.t - t0 : 0,
      clientLinesAfter: after.length,
      curlExited: stream.child.exitCode !== null,
    };
  };

  const sizes = [];
  for (const size of SIZES) {
    log(`revoke at ${size} other peers`);
    const { gw } = await setupPopulated(ctx, { iface: `wgobn4${size ? 'k' : 'z'}`, n: size });
    const reps = [];
    for (let i = 0; i < REPS; i++) {
      const name = `rv${size}x${i}`;
      const added = await gw.cli('add-peer', name, '--json');
      if (added.code !== 0) throw new Error(`add-peer: ${added.stderr}`);
      const peer = JSON.parse(added.stdout);
      await clientUp(peer.config);
      const stream = await startStream();
      await sleep(300 + Math.random() * 700);
      const t0 = now();
      const rv = await gw.cli('revoke-peer', name, '--json');
      const t1 = now();
      if (rv.code !== 0) throw new Error(`revoke-peer: ${rv.stderr}`);
      const death = await observeDeath(stream, peer.address, t0);
      stream.kill();
      await clientDown();
      const rec = reconcileLog(gw, Math.floor(t0)).find((r) => r.ok && r.wgRemoved >= 1);
      const x = {
        ...death,
        revokeProcessMs: t1 - t0,
        reconcileMs: rec?.durationMs ?? NaN,
        reconcileEndMs: rec ? Date.parse(rec.time) - t0 : NaN,
        cut: rec?.cut ?? [],
        live: JSON.parse(rv.stdout).live,
      };
      reps.push(x);
      log(`  ${name}: listener closed after ${x.listenerClosedMs.toFixed(0)} ms (${x.listenerReason}), client's last line at ${x.clientLastLineMs.toFixed(0)} ms, revoke-peer process ${x.revokeProcessMs.toFixed(0)} ms, applying reconcile ${x.reconcileMs.toFixed(0)} ms ending at ${x.reconcileEndMs.toFixed(0)} ms, cut ${x.cut.join(',')}`);
    }

    // ---- direct: the same cut by hand on the same interface and set, with the daemon stopped
    // (it would otherwise race the hand-made change); its firewall rules stay in place.
    const direct = [];
    const addedD = [];
    for (let i = 0; i < REPS; i++) {
      const name = `dr${size}x${i}`;
      const added = await gw.cli('add-peer', name, '--json');
      if (added.code !== 0) throw new Error(`add-peer: ${added.stderr}`);
      addedD.push(JSON.parse(added.stdout));
    }
    await stopServe(gw);
    for (const peer of addedD) {
      await clientUp(peer.config);
      const stream = await startStream();
      await sleep(300 + Math.random() * 700);
      const t0 = now();
      const a = await must('wg', ['set', gw.iface, 'peer', peer.publicKey, 'remove']);
      const b = await must('ipset', ['del', gw.set, peer.address]);
      const c = await run('conntrack', ['-D', '-s', peer.address]);
      const d = await run('conntrack', ['-D', '-d', peer.address]);
      const t1 = now();
      const death = await observeDeath(stream, peer.address, t0);
      stream.kill();
      await clientDown();
      direct.push({ ...death, commandsMs: t1 - t0, parts: { wgRemove: a.ms, ipsetDel: b.ms, conntrackSrc: c.ms, conntrackDst: d.ms } });
      log(`  direct: listener closed after ${death.listenerClosedMs.toFixed(0)} ms, client's last line at ${death.clientLastLineMs.toFixed(0)} ms, commands ${(t1 - t0).toFixed(0)} ms`);
    }
    await destroyGateway(gw);
    const s = (list, k) => summary(list.map((x) => x[k]));
    sizes.push({
      otherPeers: size,
      ours: s(reps, 'listenerClosedMs'),
      oursClientLastLineMs: s(reps, 'clientLastLineMs'),
      revokeProcessMs: s(reps, 'revokeProcessMs'),
      reconcileMs: s(reps, 'reconcileMs'),
      reconcileEndMs: s(reps, 'reconcileEndMs'),
      direct: s(direct, 'listenerClosedMs'),
      directClientLastLineMs: s(direct, 'clientLastLineMs'),
      directCommandsMs: s(direct, 'commandsMs'),
      ratio: median(reps.map((x) => x.listenerClosedMs)) / median(direct.map((x) => x.listenerClosedMs)),
      reps,
      directReps: direct,
    });
  }
  listener.child.kill('SIGKILL');
  return { targetMs: 1000, sizes };
});

function median(xs) {
  return summary(xs).median;
}
