#!/usr/bin/env node
// Load generator for the guard-vs-nginx benchmark. Runs in its own process (never inside the
// proxy), prints one JSON line with its result. Every mode is bounded in time.
//
//   rps:       --target URL --concurrency C --warmup S --duration S --request version|embed
//              undici Pool, connections = C, keep-alive, one request in flight per connection.
//              Reads utime+stime of --pids (the proxy) and --sim-pid at the edges of the
//              measured window, and its own CPU (to show when the generator is the bottleneck).
//   stream:    --target URL --streams N --rounds R --ctl URL --tag T
//              N concurrent /api/generate streams per round; each NDJSON line's arrival time
//              (CLOCK_MONOTONIC) against its emission time in the simulator (sim.mjs /emits).
//              --dump 1 adds every request's {ua, t0, first, firstEmit} (µs) to the result.
//   probe:     --target URL --background N --probes P --interval-ms MS --tag T
//              N long streams run in the background (User-Agent bench-bg); meanwhile P single
//              streamed requests (2 tokens, User-Agent bench-s-probe-T-i), one every MS, on one
//              keep-alive connection; prints each probe's {ua, t0, first, status} (µs).
//   hold:      --target URL --steps 1000,5000 [--open-concurrency K]
//              opens slow streams over raw sockets until `steps[i]` have their first chunk,
//              prints {"ready":n}, waits for a line "next" on stdin; after the last step waits
//              for "done" (or stdin closing), then closes everything.
//   handshake: --target URL --concurrency C --warmup S --duration S --resume 0|1
//              a new TLS connection per request (Connection: close); with --resume 1 each
//              connection offers the last TLS session ticket it got.
// URL is http://HOST:PORT (the simulator, direct) or https://HOST:PORT (mTLS with --tls-dir).
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, createSecureContext } from 'node:tls';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { Pool, request as undiciRequest } from 'undici';
import { clientTls, cpuMsOf, pct, round, sleep, sorted } from './common.mjs';

const { values: a } = parseArgs({
  options: {
    mode: { type: 'string' },
    target: { type: 'string' },
    'tls-dir': { type: 'string' },
    concurrency: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '0.5' },
    duration: { type: 'string', default: '3' },
    request: { type: 'string', default: 'version' },
    pids: { type: 'string', default: '' },
    'sim-pid': { type: 'string', default: '' },
    streams: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '1' },
    ctl: { type: 'string' },
    tag: { type: 'string', default: 'x' },
    steps: { type: 'string', default: '1000' },
    'open-concurrency': { type: 'string', default: '512' },
    resume: { type: 'string', default: '0' },
    'max-seconds': { type: 'string', default: '120' },
    dump: { type: 'string', default: '0' },
    background: { type: 'string', default: '0' },
    probes: { type: 'string', default: '20' },
    'interval-ms': { type: 'string', default: '100' },
  },
});

const url = new URL(a.target);
const secure = url.protocol === 'https:';
const tlsOpts = secure ? clientTls(a['tls-dir']) : null;
const pids = a.pids ? a.pids.split(',').map(Number) : [];
const simPid = a['sim-pid'] ? Number(a['sim-pid']) : null;
const us = () => Number(process.hrtime.bigint()) / 1e3;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// Hard stop: no mode may outlive this.
const hardStop = setTimeout(() => {
  out({ error: `load.mjs ${a.mode}: over ${a['max-seconds']} s, giving up` });
  process.exit(3);
}, Number(a['max-seconds']) * 1000);
hardStop.unref();

const REQUESTS = {
  version: { method: 'GET', path: '/api/version' },
  embed: {
    method: 'POST',
    path: '/api/embed',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'nomic-embed-text', input: 'The quick brown fox jumps over the lazy dog' }),
  },
};

function pool(connections) {
  return new Pool(url.origin, {
    connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    connect: secure ? { ...tlsOpts, rejectUnauthorized: true } : undefined,
  });
}

// ---------------------------------------------------------------- rps

async function rps() {
  const c = Number(a.concurrency);
  const req = REQUESTS[a.request];
  if (!req) throw new Error(`unknown --request ${a.request}`);
  const p = pool(c);
  const warmMs = Number(a.warmup) * 1000;
  const durMs = Number(a.duration) * 1000;
  let measuring = false;
  let stopped = false;
  let ok = 0;
  let errors = 0;
  const lat = [];
  const statuses = {};
  const worker = async () => {
    while (!stopped) {
      const t0 = performance.now();
      try {
        const r = await p.request({ method: req.method, path: req.path, headers: req.headers, body: req.body });
        await r.body.arrayBuffer();
        if (measuring) {
          statuses[r.statusCode] = (statuses[r.statusCode] ?? 0) + 1;
          if (r.statusCode === 200) {
            ok++;
            lat.push(performance.now() - t0);
          } else errors++;
        }
      } catch (e) {
        if (measuring) errors++;
        statuses[e.code ?? 'error'] = (statuses[e.code ?? 'error'] ?? 0) + 1;
        await sleep(1);
      }
    }
  };
  const workers = Array.from({ length: c }, worker);
  await sleep(warmMs);
  const cpu0 = pids.length ? cpuMsOf(pids) : 0;
  const sim0 = simPid ? cpuMsOf([simPid]) : 0;
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  measuring = true;
  await sleep(durMs);
  measuring = false;
  const wall = performance.now() - t0;
  const cpu1 = pids.length ? cpuMsOf(pids) : 0;
  const sim1 = simPid ? cpuMsOf([simPid]) : 0;
  const self = process.cpuUsage(self0);
  stopped = true;
  await Promise.race([Promise.all(workers), sleep(5000)]);
  await p.destroy().catch(() => {});
  const s = sorted(lat);
  out({
    mode: 'rps',
    target: a.target,
    request: a.request,
    concurrency: c,
    requests: ok,
    errors,
    statuses,
    seconds: round(wall / 1000, 3),
    rps: round((ok / wall) * 1000, 0),
    p50Ms: round(pct(s, 50), 3),
    p99Ms: round(pct(s, 99), 3),
    proxyCpuMs: cpu1 - cpu0,
    proxyCpuUsPerReq: pids.length && ok ? round(((cpu1 - cpu0) * 1000) / ok, 1) : null,
    proxyCpuPct: pids.length ? round(((cpu1 - cpu0) / wall) * 100, 0) : null,
    simCpuUsPerReq: simPid && ok ? round(((sim1 - sim0) * 1000) / ok, 1) : null,
    loadCpuPct: round(((self.user + self.system) / 1000 / wall) * 100, 0),
    loadCpuUsPerReq: ok ? round((self.user + self.system) / ok, 1) : null,
  });
}

// ---------------------------------------------------------------- stream

async function stream() {
  const n = Number(a.streams);
  const rounds = Number(a.rounds);
  const p = pool(n);
  const body = JSON.stringify({ model: 'llama3.2', prompt: 'Say something long.', stream: true });
  const runs = [];
  const one = async (ua) => {
    const rec = { ua, t0: us(), arrivals: [], status: 0, error: null };
    try {
      const r = await p.request({ method: 'POST', path: '/api/generate', headers: { 'content-type': 'application/json', 'user-agent': ua }, body });
      rec.status = r.statusCode;
      for await (const chunk of r.body) {
        const t = us();
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) rec.arrivals.push(t);
      }
    } catch (e) {
      rec.error = e.message;
    }
    return rec;
  };
  // One untimed stream first: connections and JIT warm.
  await Promise.all(Array.from({ length: n }, (_, i) => one(`warm-${a.tag}-${i}`)));
  for (let r = 0; r < rounds; r++) {
    runs.push(...(await Promise.all(Array.from({ length: n }, (_, i) => one(`bench-s-${a.tag}-${r}-${i}`)))));
    await sleep(50);
  }
  await p.destroy().catch(() => {});
  const emits = await (await undiciRequest(`${a.ctl}/emits`)).body.json();
  const ttfb = [];
  const reqLeg = [];
  const oneway = [];
  const gaps = [];
  let mismatched = 0;
  let failed = 0;
  for (const rec of runs) {
    const e = emits[rec.ua];
    if (rec.error || rec.status !== 200 || !e) {
      failed++;
      continue;
    }
    if (e.length !== rec.arrivals.length) mismatched++;
    if (rec.arrivals.length > 0) ttfb.push((rec.arrivals[0] - rec.t0) / 1000);
    // Client send → the simulator's first write (its first token is due one token interval after the request arrives).
    if (e.length > 0) reqLeg.push((e[0] - rec.t0) / 1000);
    for (let k = 1; k < Math.min(e.length, rec.arrivals.length); k++) {
      oneway.push(rec.arrivals[k] - e[k]);
      gaps.push((rec.arrivals[k] - rec.arrivals[k - 1]) / 1000);
    }
  }
  const so = sorted(oneway);
  const st = sorted(ttfb);
  const sg = sorted(gaps);
  const sr = sorted(reqLeg);
  out({
    mode: 'stream',
    target: a.target,
    streams: n,
    rounds,
    completed: runs.length - failed,
    failed,
    mismatched,
    chunks: so.length,
    onewayP50Us: round(pct(so, 50), 1),
    onewayP99Us: round(pct(so, 99), 1),
    ttfbP50Ms: round(pct(st, 50), 3),
    ttfbP99Ms: round(pct(st, 99), 3),
    firstEmitP50Ms: round(pct(sr, 50), 3),
    gapP50Ms: round(pct(sg, 50), 3),
    gapP99Ms: round(pct(sg, 99), 3),
    ...(a.dump === '1' ? { requests: runs.map((r) => ({ ua: r.ua, t0: r.t0, first: r.arrivals[0] ?? null, firstEmit: emits[r.ua]?.[0] ?? null, status: r.status })) } : {}),
  });
}

// ---------------------------------------------------------------- probe

async function probe() {
  const n = Number(a.background);
  const probes = Number(a.probes);
  const interval = Number(a['interval-ms']);
  const bgPool = n > 0 ? pool(n) : null;
  const bgBody = JSON.stringify({ model: 'llama3.2', prompt: 'Keep talking.', stream: true, options: { num_predict: 1_000_000 } });
  let bgFirst = 0;
  let bgFailed = 0;
  const bgStop = new AbortController();
  const background = Array.from({ length: n }, async () => {
    try {
      const r = await bgPool.request({ method: 'POST', path: '/api/generate', headers: { 'content-type': 'application/json', 'user-agent': 'bench-bg' }, body: bgBody, signal: bgStop.signal });
      let first = true;
      for await (const _ of r.body) {
        if (first) (first = false), bgFirst++;
      }
    } catch {
      if (!bgStop.signal.aborted) bgFailed++;
    }
  });
  for (let i = 0; i < 200 && bgFirst + bgFailed < n; i++) await sleep(50);
  await sleep(500);
  const bgOpen = bgFirst;
  const p = pool(1);
  const body = JSON.stringify({ model: 'llama3.2', prompt: 'One word.', stream: true, options: { num_predict: 2 } });
  const one = async (ua) => {
    const rec = { ua, t0: us(), first: null, status: 0 };
    try {
      const r = await p.request({ method: 'POST', path: '/api/generate', headers: { 'content-type': 'application/json', 'user-agent': ua }, body });
      rec.status = r.statusCode;
      for await (const _ of r.body) if (rec.first === null) rec.first = us();
    } catch (e) {
      rec.error = e.message;
    }
    return rec;
  };
  await one(`warm-probe-${a.tag}`);
  const list = [];
  for (let i = 0; i < probes; i++) {
    const start = performance.now();
    list.push(await one(`bench-s-probe-${a.tag}-${i}`));
    await sleep(Math.max(0, interval - (performance.now() - start)));
  }
  bgStop.abort();
  await Promise.race([Promise.all(background), sleep(3000)]);
  await p.destroy().catch(() => {});
  await bgPool?.destroy().catch(() => {});
  out({ mode: 'probe', target: a.target, background: n, backgroundOpen: bgOpen, backgroundFailed: bgFailed, probes: list });
}

// ---------------------------------------------------------------- raw connections

// One SecureContext for every raw connection: tls.connect({ca, cert, key}) would parse the key and
// build a new certificate store for each connection (milliseconds of generator CPU each).
const secureContext = secure ? createSecureContext(tlsOpts) : null;
function rawConnect(opts = {}) {
  const port = Number(url.port);
  const host = url.hostname;
  const s = secure ? tlsConnect({ host, port, secureContext, rejectUnauthorized: true, ...opts }) : netConnect({ host, port });
  // Nagle + delayed ACK would hold the request behind the client's last handshake flight (~40 ms).
  s.setNoDelay(true);
  return s;
}

// ---------------------------------------------------------------- hold

async function hold() {
  const steps = a.steps.split(',').map(Number);
  const k = Number(a['open-concurrency']);
  const body = JSON.stringify({ model: 'llama3.2', prompt: 'Say something very long.', stream: true });
  const head = `POST /api/generate HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: bench-hold\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
  const sockets = new Set();
  let open = 0;
  let lost = 0;
  let failedOpen = 0;
  let bad = 0;
  const openOne = () =>
    new Promise((resolve) => {
      const s = rawConnect();
      sockets.add(s);
      let first = true;
      const timer = setTimeout(() => s.destroy(new Error('no first chunk in 30 s')), 30_000);
      s.on(secure ? 'secureConnect' : 'connect', () => s.write(head + body));
      s.on('data', (d) => {
        if (first) {
          first = false;
          clearTimeout(timer);
          if (!d.toString('latin1', 0, 12).startsWith('HTTP/1.1 200')) bad++;
          open++;
          resolve(true);
        }
      });
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        clearTimeout(timer);
        if (first) {
          failedOpen++;
          resolve(false);
        } else {
          open--;
          lost++;
        }
      });
    });
  const lines = createInterface({ input: process.stdin });
  const stdinLines = [];
  let stdinClosed = false;
  lines.on('line', (l) => stdinLines.push(l.trim()));
  lines.on('close', () => (stdinClosed = true));
  const waitStdin = async (word, maxMs) => {
    const t = Date.now();
    while (Date.now() - t < maxMs && !stdinClosed) {
      const i = stdinLines.indexOf(word);
      if (i >= 0) return stdinLines.splice(i, 1);
      await sleep(20);
    }
  };
  const t0 = performance.now();
  for (const target of steps) {
    // A sliding window of at most k streams waiting for their first chunk.
    let attempts = 0;
    let inflight = 0;
    await new Promise((resolve) => {
      const pump = () => {
        while (inflight < k && open + inflight < target && attempts < target * 2) {
          attempts++;
          inflight++;
          openOne().then(() => {
            inflight--;
            if (open >= target) resolve();
            else pump();
          });
        }
        if (inflight === 0) resolve(); // nothing left to wait for (attempts used up)
      };
      pump();
    });
    await sleep(1000); // every first chunk in, the proxy settled
    out({ ready: open, target, lost, failedOpen, bad, seconds: round((performance.now() - t0) / 1000, 1) });
    await waitStdin(target === steps[steps.length - 1] ? 'done' : 'next', 90_000);
  }
  for (const s of sockets) s.destroy();
  out({ closed: true, lost, failedOpen, bad });
}

// ---------------------------------------------------------------- handshake

async function handshake() {
  const c = Number(a.concurrency);
  const resume = a.resume === '1';
  const warmMs = Number(a.warmup) * 1000;
  const durMs = Number(a.duration) * 1000;
  const req = `GET /api/version HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`;
  let measuring = false;
  let stopped = false;
  let ok = 0;
  let errors = 0;
  let reused = 0;
  const lat = [];
  const once = (session) =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const s = rawConnect(resume && session ? { session } : {});
      let got = '';
      let newSession = null;
      let wasReused = false;
      s.on('session', (sess) => (newSession = sess));
      s.on(secure ? 'secureConnect' : 'connect', () => {
        wasReused = secure ? s.isSessionReused() : false;
        s.write(req);
      });
      s.setEncoding('latin1');
      s.on('data', (d) => (got += d));
      s.on('error', () => {});
      const timer = setTimeout(() => s.destroy(), 10_000);
      s.on('close', () => {
        clearTimeout(timer);
        resolve({ ok: got.startsWith('HTTP/1.1 200') && got.includes('"version"'), ms: performance.now() - t0, newSession, wasReused });
      });
    });
  const worker = async () => {
    let session = null;
    while (!stopped) {
      const r = await once(session);
      if (r.newSession) session = r.newSession;
      if (!measuring) continue;
      if (r.ok) {
        ok++;
        lat.push(r.ms);
        if (r.wasReused) reused++;
      } else {
        errors++;
        await sleep(1);
      }
    }
  };
  const workers = Array.from({ length: c }, worker);
  await sleep(warmMs);
  const cpu0 = pids.length ? cpuMsOf(pids) : 0;
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  measuring = true;
  await sleep(durMs);
  measuring = false;
  const wall = performance.now() - t0;
  const cpu1 = pids.length ? cpuMsOf(pids) : 0;
  const self = process.cpuUsage(self0);
  stopped = true;
  await Promise.race([Promise.all(workers), sleep(10_000)]);
  const s = sorted(lat);
  out({
    mode: 'handshake',
    target: a.target,
    resume,
    concurrency: c,
    connections: ok,
    errors,
    reusedPct: ok ? round((reused / ok) * 100, 1) : null,
    perSec: round((ok / wall) * 1000, 0),
    p50Ms: round(pct(s, 50), 3),
    p99Ms: round(pct(s, 99), 3),
    proxyCpuUsPerConn: pids.length && ok ? round(((cpu1 - cpu0) * 1000) / ok, 1) : null,
    proxyCpuPct: pids.length ? round(((cpu1 - cpu0) / wall) * 100, 0) : null,
    loadCpuPct: round(((self.user + self.system) / 1000 / wall) * 100, 0),
  });
}

const modes = { rps, stream, probe, hold, handshake };
if (!modes[a.mode]) {
  console.error(`unknown --mode ${a.mode}`);
  process.exit(2);
}
try {
  await modes[a.mode]();
  process.exit(0);
} catch (e) {
  out({ error: e.stack ?? String(e) });
  process.exit(1);
}
