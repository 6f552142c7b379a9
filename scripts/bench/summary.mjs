// Prints the benchmark results ($BENCH_OUT/*.json, default /tmp/wgo-bench-results) as markdown tables.
//   node scripts/bench/summary.mjs [DIR]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2] || process.env.BENCH_OUT || '/tmp/wgo-bench-results';
const load = (n) => (existsSync(join(dir, `${n}.json`)) ? JSON.parse(readFileSync(join(dir, `${n}.json`), 'utf8')) : null);
const f = (v, d = 0) => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(d));
const met = (v, t) => (Number.isFinite(v) ? (v <= t ? 'yes' : 'NO') : 'NO');
const rows = [['benchmark', 'target', 'ours (median)', 'direct (median)', 'ratio ours/direct', 'runs', 'target met']];

const bulk = load('bulk-apply');
if (bulk) {
  rows.push(['1. 10k peers live after one bulk commit, as shipped', '≤ 1000 ms', `never (WireGuard ${bulk.shipped.wgPeersAfter6s}/${bulk.peers} after 6 s; ipset ${f(bulk.shipped.ipsetLiveMs)} ms)`, `${f(bulk.direct.median)} ms`, '∞', '1', 'NO']);
  rows.push(['1. same, with syncconf through a file (serve-shim)', '≤ 1000 ms', `${f(bulk.ours.median)} ms`, `${f(bulk.direct.median)} ms`, f(bulk.ratio, 2), String(bulk.ours.n), met(bulk.ours.median, 1000)]);
}
const noop = load('noop-reconcile');
if (noop) {
  rows.push(['2. no-op reconcile at 10k (daemon durationMs)', '≤ 100 ms', `${f(noop.ours.median)} ms`, `${f(noop.direct.median)} ms`, f(noop.ratio, 2), String(noop.ours.n), met(noop.ours.median, 100)]);
  if (noop.directAllFiveParallel) rows.push(['2. (direct: the same five reads all in parallel)', '', '', `${f(noop.directAllFiveParallel.median)} ms`, '', String(noop.directAllFiveParallel.n), '']);
  rows.push(['2. same, wall time of the control request', '≤ 100 ms', `${f(noop.oursWall.median)} ms`, `${f(noop.direct.median)} ms`, f(noop.ratioWall, 2), String(noop.oursWall.n), met(noop.oursWall.median, 100)]);
}
const add = load('add-peer');
if (add) {
  rows.push(['3. add one peer at 10k: commit → applied (CLI add-peer)', '≤ 50 ms', `${f(add.cli.commitToAppliedMs.median)} ms`, `${f(add.direct.median)} ms`, f(add.ratio, 1), String(add.cli.commitToAppliedMs.n), met(add.cli.commitToAppliedMs.median, 50)]);
  rows.push(['3. same, PeerService.add + requestControl: commit → answer', '≤ 50 ms', `${f(add.service.commitToAnswerMs.median)} ms`, `${f(add.direct.median)} ms`, f(add.service.commitToAnswerMs.median / add.direct.median, 1), String(add.service.commitToAnswerMs.n), met(add.service.commitToAnswerMs.median, 50)]);
  rows.push(['3. same, no request, polled until live', '≤ 50 ms', `${f(add.poll.liveMs.median)} ms`, `${f(add.direct.median)} ms`, f(add.poll.liveMs.median / add.direct.median, 1), String(add.poll.liveMs.n), met(add.poll.liveMs.median, 50)]);
  if (add.reconcilesPerCliChange) rows.push(['3. full reconciles per add-peer (exec log)', '(info)', `${f(add.reconcilesPerCliChange.median)}`, '', '', String(add.reconcilesPerCliChange.n), '']);
  rows.push(['3. add-peer process, whole', '(info)', `${f(add.cli.processMs.median)} ms`, '', '', String(add.cli.processMs.n), '']);
}
const rv = load('revoke');
if (rv) {
  for (const s of rv.sizes) {
    rows.push([`4. revoke-peer → GPU side sees the flow closed (${s.otherPeers} other peers)`, '≤ 1000 ms', `${f(s.ours.median)} ms`, `${f(s.direct.median)} ms`, f(s.ratio, 1), String(s.ours.n), met(s.ours.median, 1000)]);
    rows.push([`4. revoke-peer → client's last line (${s.otherPeers} other peers)`, '≤ 1000 ms', `${f(s.oursClientLastLineMs.median)} ms`, `${f(s.directClientLastLineMs.median)} ms`, '', String(s.oursClientLastLineMs.n), met(s.oursClientLastLineMs.median, 1000)]);
  }
}
if (bulk) {
  if (bulk.shipped.mem0) rows.push(['5. daemon RSS / HWM at 0 peers (bin/wg-ollama.js serve)', '(info)', `${f(bulk.shipped.mem0.rssMiB, 1)} / ${f(bulk.shipped.mem0.hwmMiB, 1)} MiB`, '', '', '1', '']);
  rows.push(['5. daemon RSS at 0 peers (serve-shim)', '(info)', `${f(bulk.memory.rss0MiB.median, 1)} MiB`, '', '', String(bulk.memory.rss0MiB.n), '']);
  rows.push(['5. daemon RSS / HWM at 10k peers (after the bulk apply)', '(info)', `${f(bulk.memory.rss10kMiB.median, 1)} / ${f(bulk.memory.hwm10kMiB.median, 1)} MiB`, '', '', String(bulk.memory.rss10kMiB.n), '']);
  rows.push(['5. wireguard-go RSS at 10k peers', '(info)', `${f(bulk.memory.wireguardGoRss10kMiB.median, 1)} MiB`, '', '', String(bulk.memory.wireguardGoRss10kMiB.n), '']);
}
if (noop) {
  rows.push(['5. daemon RSS / HWM at 10k peers (started on a populated state)', '(info)', `${f(noop.memory.afterReps.rssMiB, 1)} / ${f(noop.memory.afterReps.hwmMiB, 1)} MiB`, '', '', '1', '']);
}
const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
const line = (r) => `| ${r.map((c, i) => c.padEnd(w[i])).join(' | ')} |`;
console.log(line(rows[0]));
console.log(`|${w.map((n) => '-'.repeat(n + 2)).join('|')}|`);
for (const r of rows.slice(1)) console.log(line(r));

const prof = load('profile');
if (prof) {
  console.log('\nprofile (in-process reconcileOnce at 10k, medians):');
  console.log(`  bulk:  ${f(prof.bulk.totalMs)} ms = loadDesired ${f(prof.bulk.loadDesiredMs)} + programs ${f(prof.bulk.programsWallMs)} + other ${f(prof.bulk.inProcessOtherMs)}; ${prof.bulk.processes} processes`);
  console.log(`  noop:  ${f(prof.noop.totalMs.median)} ms = loadDesired ${f(prof.noop.loadDesiredMs.median)} + programs ${f(prof.noop.programsWallMs.median)} + other ${f(prof.noop.inProcessOtherMs.median)}; ${prof.noop.processes} processes`);
  console.log(`  add1:  ${f(prof.add1.totalMs.median)} ms = loadDesired ${f(prof.add1.loadDesiredMs.median)} + programs ${f(prof.add1.programsWallMs.median)} + other ${f(prof.add1.inProcessOtherMs.median)}; ${prof.add1.processes} processes`);
}
const m = (bulk ?? noop ?? add ?? rv)?.machine;
if (m) console.log(`\nmachine: ${m.nproc} x ${m.cpu}, kernel ${m.kernel}, WireGuard ${m.wireguard}, ${m.iptables}, node ${m.node}, load ${m.loadavg}`);
