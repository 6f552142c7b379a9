#!/usr/bin/env node
// Where the guard's CPU goes, from a V8 CPU profile (`GB_PROFILE_DIR=DIR scripts/bench/guard/run.sh`
// runs the benchmark's guard under --cpu-prof; the profile is written when the guard stops).
//
//   node scripts/bench/guard/profile.mjs FILE.cpuprofile [--top 25]
//
// Prints self time by area (our code by file, Node's TLS / HTTP / streams / net internals,
// prom-client, the spool's message port, garbage collection, idle) and the functions with the
// most self time. Self time is sampled: a share of the profile, not an exact cost.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
if (positionals.length !== 1) {
  process.stderr.write('usage: node scripts/bench/guard/profile.mjs FILE.cpuprofile [--top N]\n');
  process.exit(2);
}
const prof = JSON.parse(readFileSync(positionals[0], 'utf8'));

/** Sample counts per node id, then self µs per node (samples × mean interval). */
const counts = new Map();
for (const id of prof.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
const totalUs = prof.endTime - prof.startTime;
const usPerSample = totalUs / prof.samples.length;

/** Which area a frame belongs to, by its script URL and name. */
function area(cf) {
  const url = cf.url || '';
  const name = cf.functionName;
  if (name === '(idle)') return 'idle';
  if (name === '(garbage collector)') return 'garbage collection';
  if (name === '(program)') return 'V8/native (program)';
  const ours = /\/dist\/(.+?\.js)/.exec(url);
  if (ours) return `ours: ${ours[1]}`;
  if (url.includes('node_modules/prom-client')) return 'prom-client (metrics)';
  if (url.includes('node_modules/')) return `dependency: ${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1]}`;
  if (/node:internal\/(tls|crypto)|node:_tls|_tls_/.test(url)) return 'node: TLS';
  if (/node:_http|node:internal\/http|node:http/.test(url)) return 'node: HTTP';
  if (/node:internal\/streams|node:stream/.test(url)) return 'node: streams';
  if (/node:net|node:internal\/net|stream_base/.test(url)) return 'node: net';
  if (/node:internal\/(timers|process\/task_queues)|node:timers/.test(url)) return 'node: timers and ticks';
  if (/node:internal\/(worker|per_context\/messageport)|node:worker_threads/.test(url)) return 'node: worker messages (spool thread)';
  if (/node:events|node:internal\/event_target/.test(url)) return 'node: events';
  if (url.startsWith('node:')) return `node: other (${url.replace(/^node:(internal\/)?/, '')})`;
  if (url === '') return `native: ${name || '(anonymous)'}`;
  return url;
}

const byArea = new Map();
const byFn = new Map();
for (const n of prof.nodes) {
  const c = counts.get(n.id) ?? 0;
  if (!c) continue;
  const a = area(n.callFrame);
  byArea.set(a, (byArea.get(a) ?? 0) + c);
  const key = `${n.callFrame.functionName || '(anonymous)'}  ${(n.callFrame.url || '').replace(/^.*\/dist\//, 'dist/').replace(/^file:\/\//, '')}:${n.callFrame.lineNumber + 1}`;
  byFn.set(key, (byFn.get(key) ?? 0) + c);
}
/** Inclusive samples (the function and what it called) of our own functions, counted once per stack. */
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const keyOf = (n) => `${n.callFrame.functionName || '(anonymous)'}  ${(n.callFrame.url || '').replace(/^.*\/dist\//, 'dist/')}:${n.callFrame.lineNumber + 1}`;
const inclusive = new Map();
for (const [id, c] of counts) {
  const seen = new Set();
  for (let n = byId.get(id); n; n = byId.get(parent.get(n.id))) {
    if (!/\/dist\//.test(n.callFrame.url || '')) continue;
    const k = keyOf(n);
    if (seen.has(k)) continue;
    seen.add(k);
    inclusive.set(k, (inclusive.get(k) ?? 0) + c);
  }
}
const idle = byArea.get('idle') ?? 0;
const busy = prof.samples.length - idle;
const pct = (c, of) => `${((c / of) * 100).toFixed(1)} %`;

const out = [];
out.push(`${positionals[0]}: ${(totalUs / 1e6).toFixed(1)} s, ${prof.samples.length} samples (${usPerSample.toFixed(0)} µs each), busy ${pct(busy, prof.samples.length)}`, '');
out.push('| area | share of busy time | self ms |', '|---|---|---|');
for (const [a, c] of [...byArea].filter(([a]) => a !== 'idle').sort((x, y) => y[1] - x[1])) out.push(`| ${a} | ${pct(c, busy)} | ${((c * usPerSample) / 1000).toFixed(0)} |`);
out.push('', `| top ${values.top} functions by self time | share of busy time |`, '|---|---|');
for (const [k, c] of [...byFn].filter(([k]) => !k.startsWith('(idle)')).sort((x, y) => y[1] - x[1]).slice(0, Number(values.top))) out.push(`| \`${k}\` | ${pct(c, busy)} |`);
out.push('', `| top ${values.top} of our functions, inclusive (with what they call) | share of busy time |`, '|---|---|');
for (const [k, c] of [...inclusive].sort((x, y) => y[1] - x[1]).slice(0, Number(values.top))) out.push(`| \`${k}\` | ${pct(c, busy)} |`);
process.stdout.write(`${out.join('\n')}\n`);
