#!/usr/bin/env node
// Probes TCP targets over and over until told to stop (SIGTERM) or a hard
// time limit passes, and prints one JSON line per attempt:
//   {"start": ms, "t": ms, "target": "HOST:PORT", "ok": true|false}
// A target whose attempt connects and gets an HTTP answer counts as ok.
//   node probe.mjs --max-ms 30000 --every-ms 50 --workers 3 HOST:PORT [HOST:PORT...]
// Every attempt is bounded (--timeout-ms); --workers loops per target, staggered, so
// a dropped SYN that waits out its timeout leaves no gap in the probing.
import { request } from 'node:http';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  strict: true,
  allowPositionals: true,
  options: {
    'max-ms': { type: 'string', default: '30000' },
    'every-ms': { type: 'string', default: '50' },
    'timeout-ms': { type: 'string', default: '400' },
    workers: { type: 'string', default: '1' },
  },
});
const maxMs = Math.min(Number(values['max-ms']), 120_000);
const everyMs = Math.max(Number(values['every-ms']), 10);
const timeoutMs = Number(values['timeout-ms']);
const workers = Math.min(Math.max(Number(values.workers), 1), 8);
if (positionals.length === 0) {
  console.error('usage: probe.mjs [--max-ms N] [--every-ms N] [--timeout-ms N] HOST:PORT...');
  process.exit(2);
}

const print = (o) => process.stdout.write(JSON.stringify(o) + '\n');
let stopped = false;

function attempt(target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const start = Date.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      print({ start, t: Date.now(), target, ok });
      resolve();
    };
    const req = request({ host, port, path: '/', agent: false }, (res) => {
      res.resume();
      finish(res.statusCode === 200);
    });
    req.on('error', () => finish(false));
    const timer = setTimeout(() => finish(false), timeoutMs);
    req.end();
  });
}

async function loop(target, delayMs) {
  await new Promise((r) => setTimeout(r, delayMs));
  while (!stopped) {
    const started = Date.now();
    await attempt(target);
    await new Promise((r) => setTimeout(r, Math.max(0, everyMs - (Date.now() - started))));
  }
}

const end = setTimeout(() => (stopped = true), maxMs);
process.on('SIGTERM', () => {
  stopped = true;
  clearTimeout(end);
});
const loops = [];
for (const target of positionals) for (let w = 0; w < workers; w++) loops.push(loop(target, Math.round((w * timeoutMs) / workers)));
await Promise.all(loops);
