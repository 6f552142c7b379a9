// Benchmark 3: one peer added through the running daemon at 10,000 existing
// peers; target: live (in WireGuard and the ipset) <= 50 ms after its commit.
//
// Three ways, each repeated, all against bin/wg-ollama.js serve:
//   cli      `wg-ollama add-peer NAME --json` as a process (commit, then it asks
//            the daemon over the control socket and returns when applied).
//            Whole process wall time; commit -> applied from the peer row's
//            created_at (taken inside the transaction, just before COMMIT) to
//            the end of the daemon's reconcile that applied it (its log line).
//   service  PeerService.add in this process (returns right after COMMIT), then
//            requestControl('reconcile'): commit -> daemon's answer, and
//            commit -> end of the applying reconcile (daemon log).
//   poll     PeerService.add, no request: poll `ipset test` and `wg show peers`
//            until both have it (the daemon finds the commit by itself, as it
//            would for a write made by the web UI).
// Direct, same run: `wg set IFACE peer KEY preshared-key FILE allowed-ips IP/32`
// + `ipset add SET IP comment NAME` on a second interface and set that also
// hold 10,000 peers.
//
//   sudo node scripts/bench/add-peer.mjs
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  QUICK, SHIM, bench, setRestoreText, createWgInterface, dist, log, makePeers, must, now, peerRow, reconcileLog, requestControl, run,
  setupPopulated, sleep, startServe, stopServe, summary, waitIfaceGone,
} from './lib.mjs';

const N = Number(process.env.BENCH_PEERS || 10_000);
const REPS = QUICK ? 3 : Number(process.env.BENCH_REPS_ADD || 10);
const POLL_REPS = QUICK ? 2 : 5;
const DIRECT_IF = 'wgobnd3';
const DIRECT_SET = 'bn-direct3';

const jitter = () => sleep(300 + Math.random() * 700);

await bench(import.meta.url, 'add-peer', async (ctx) => {
  const { gw, peers } = await setupPopulated(ctx, { iface: 'wgobn3', n: N });
  const { openGateway } = await dist('gateway/context.js');
  const g = openGateway(gw.config);
  ctx.cleanups.push(async () => g.close());
  const who = { actor: 'bench', source: 'bench' };

  /** The reconcile (daemon log) that applied a peer committed at `after`: first ok one with an upsert. */
  const appliedBy = (after) => reconcileLog(gw, after - 1).find((r) => r.ok && r.wgUpserted >= 1) ?? null;
  const inWg = async (key) => (await run('wg', ['show', gw.iface, 'peers'])).stdout.includes(key);
  const inSet = async (ip) => (await run('ipset', ['test', gw.set, ip])).code === 0;

  // ---- cli
  const cli = [];
  for (let i = 0; i < REPS; i++) {
    await jitter();
    const name = `cli${i}`;
    const t0 = now();
    const r = await gw.cli('add-peer', name, '--json');
    const t1 = now();
    if (r.code !== 0) throw new Error(`add-peer failed: ${r.stderr}`);
    const out = JSON.parse(r.stdout);
    const row = await peerRow(gw, name);
    await sleep(100);
    const rec = appliedBy(row.createdAt);
    const x = {
      processMs: t1 - t0,
      startToCommitMs: row.createdAt - t0,
      commitToAnswerMs: t1 - row.createdAt,
      commitToAppliedMs: rec ? Date.parse(rec.time) - row.createdAt : NaN,
      applyingReconcileMs: rec?.durationMs ?? NaN,
      live: out.live,
      verified: (await inSet(out.address)) && (await inWg(out.publicKey)),
    };
    cli.push(x);
    log(`cli ${i}: process ${x.processMs.toFixed(0)} ms (commit at +${x.startToCommitMs.toFixed(0)}), commit->applied ${x.commitToAppliedMs.toFixed(0)} ms (reconcile ${x.applyingReconcileMs.toFixed(0)} ms), commit->answer ${x.commitToAnswerMs.toFixed(0)} ms, live=${x.live} verified=${x.verified}`);
  }

  // ---- service + requestControl
  const svc = [];
  for (let i = 0; i < REPS; i++) {
    await jitter();
    const issued = g.peers.add({ name: `svc${i}` }, who);
    const committed = now();
    const res = await requestControl(gw.socket, 'reconcile');
    const answered = now();
    await sleep(100);
    const rec = appliedBy(Math.floor(committed));
    const x = {
      commitToAnswerMs: answered - committed,
      commitToAppliedMs: rec ? Date.parse(rec.time) - committed : NaN,
      applyingReconcileMs: rec?.durationMs ?? NaN,
      answerWasNoop: res.noop,
      answerDurationMs: res.durationMs,
      verified: (await inSet(issued.peer.address)) && (await inWg(issued.peer.publicKey)),
    };
    svc.push(x);
    log(`service ${i}: commit->answer ${x.commitToAnswerMs.toFixed(0)} ms (answer from a ${x.answerWasNoop ? 'no-op follow-up' : 'applying'} reconcile of ${x.answerDurationMs.toFixed(0)} ms), commit->applied ${x.commitToAppliedMs.toFixed(0)} ms, verified=${x.verified}`);
  }

  // ---- service + polling
  const poll = [];
  for (let i = 0; i < POLL_REPS; i++) {
    await jitter();
    const issued = g.peers.add({ name: `poll${i}` }, who);
    const committed = now();
    const res = {};
    let lastStart = committed;
    const both = await Promise.all([
      (async () => {
        for (let k = 0; k < 200 && now() - committed < 10_000; k++) {
          const s = now();
          if (await inSet(issued.peer.address)) return { at: now() - committed, lower: lastStart - committed, polls: k + 1 };
          lastStart = s;
          await sleep(2);
        }
        return { at: NaN };
      })(),
      (async () => {
        let last = committed;
        for (let k = 0; k < 200 && now() - committed < 10_000; k++) {
          const s = now();
          if (await inWg(issued.peer.publicKey)) return { at: now() - committed, lower: last - committed, polls: k + 1 };
          last = s;
          await sleep(2);
        }
        return { at: NaN };
      })(),
    ]);
    res.ipsetMs = both[0].at;
    res.wgMs = both[1].at;
    res.wgLowerMs = both[1].lower;
    res.liveMs = Math.max(res.ipsetMs, res.wgMs);
    await sleep(100);
    const rec = appliedBy(Math.floor(committed));
    res.commitToAppliedMs = rec ? Date.parse(rec.time) - committed : NaN;
    poll.push(res);
    log(`poll ${i}: live after ${res.liveMs.toFixed(0)} ms (ipset ${res.ipsetMs.toFixed(0)}, wg ${res.wgMs.toFixed(0)}, wg lower bound ${res.wgLowerMs.toFixed(0)}), daemon log: applied at ${res.commitToAppliedMs.toFixed(0)} ms`);
  }

  // ---- how many full reconciles one CLI change costs: the daemon run as serve-shim with its
  // exec log (each reconcile runs `ip -j addr show` exactly once; the monitor never does).
  await stopServe(gw);
  const execLog = join(ctx.dir, 'exec-add.jsonl');
  await startServe(ctx, gw, { launcher: SHIM, env: { BENCH_EXEC_LOG: execLog } });
  const perChange = [];
  for (let i = 0; i < POLL_REPS; i++) {
    await jitter();
    const name = `cnt${i}`;
    const r = await gw.cli('add-peer', name, '--json');
    if (r.code !== 0) throw new Error(`add-peer failed: ${r.stderr}`);
    const row = await peerRow(gw, name);
    await sleep(800);
    const n = readFileSync(execLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))
      .filter((e) => e.file === 'ip' && e.args[0] === '-j' && e.start >= row.createdAt && e.start <= row.createdAt + 700).length;
    perChange.push(n);
  }
  await stopServe(gw);
  log(`full reconciles started within 700 ms of each add-peer commit: ${perChange.join(', ')}`);

  // ---- direct: a second interface and set with the same 10,000 peers, then one peer at a time
  await run('ipset', ['destroy', DIRECT_SET]);
  const { key } = await createWgInterface(ctx, DIRECT_IF, { port: 51823, address: '10.67.0.1/16' });
  ctx.cleanups.push(async () => {
    await run('ip', ['link', 'del', 'dev', DIRECT_IF]);
    await run('ipset', ['destroy', DIRECT_SET]);
    await waitIfaceGone(DIRECT_IF).catch(() => undefined);
  });
  const conf = ['[Interface]', `PrivateKey = ${key}`, 'ListenPort = 51823', ''];
  for (const p of peers) conf.push('[Peer]', `PublicKey = ${p.publicKey}`, `PresharedKey = ${p.psk}`, `AllowedIPs = ${p.address}/32`, '');
  const confFile = join(ctx.dir, 'direct3.conf');
  writeFileSync(confFile, conf.join('\n'), { mode: 0o600 });
  await must('wg', ['syncconf', DIRECT_IF, confFile]);
  await must('ipset', ['restore'], { input: await setRestoreText(DIRECT_SET, peers) });
  const extra = await makePeers(REPS, { offset: N + 500, prefix: 'direct' });
  const direct = [];
  for (let i = 0; i < REPS; i++) {
    await jitter();
    const p = extra[i];
    const pskFile = join(ctx.dir, `direct-${i}.psk`);
    writeFileSync(pskFile, p.psk + '\n', { mode: 0o600 });
    const a = await must('wg', ['set', DIRECT_IF, 'peer', p.publicKey, 'preshared-key', pskFile, 'allowed-ips', `${p.address}/32`]);
    // The same entry the reconciler writes (timeout 0 = permanent, in a set created with timeouts).
    const b = await must('ipset', ['add', DIRECT_SET, p.address, 'timeout', '0', 'comment', p.name]);
    direct.push({ wgSetMs: a.ms, ipsetAddMs: b.ms, totalMs: a.ms + b.ms });
  }
  const d = summary(direct.map((x) => x.totalMs));
  log(`direct: wg set + ipset add ${d.median} ms (wg set ${summary(direct.map((x) => x.wgSetMs)).median}, ipset add ${summary(direct.map((x) => x.ipsetAddMs)).median})`);

  const s = (list, k) => summary(list.map((x) => x[k]));
  const cliApplied = s(cli, 'commitToAppliedMs');
  const svcAnswer = s(svc, 'commitToAnswerMs');
  return {
    peers: N,
    targetMs: 50,
    cli: {
      processMs: s(cli, 'processMs'), startToCommitMs: s(cli, 'startToCommitMs'), commitToAppliedMs: cliApplied,
      commitToAnswerMs: s(cli, 'commitToAnswerMs'), applyingReconcileMs: s(cli, 'applyingReconcileMs'),
      allLive: cli.every((x) => x.live && x.verified),
    },
    service: {
      commitToAnswerMs: svcAnswer, commitToAppliedMs: s(svc, 'commitToAppliedMs'), applyingReconcileMs: s(svc, 'applyingReconcileMs'),
      answersFromNoopFollowUp: svc.filter((x) => x.answerWasNoop).length, allVerified: svc.every((x) => x.verified),
    },
    reconcilesPerCliChange: summary(perChange),
    poll: { liveMs: s(poll, 'liveMs'), ipsetMs: s(poll, 'ipsetMs'), wgMs: s(poll, 'wgMs'), wgLowerMs: s(poll, 'wgLowerMs'), commitToAppliedMs: s(poll, 'commitToAppliedMs') },
    direct: d,
    directParts: { wgSetMs: s(direct, 'wgSetMs'), ipsetAddMs: s(direct, 'ipsetAddMs') },
    ours: cliApplied,
    ratio: cliApplied.median / d.median,
    raw: { cli, svc, poll, direct },
  };
});
