// Shared helpers for the guard-vs-nginx benchmark (scripts/bench/guard/): statistics,
// /proc readings, certificate material, and process tracking (every process started is
// tracked by PID and killed at the end; every wait is bounded).
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { connect, createServer } from 'node:net';

export const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(HERE, '../../..');
/** A module of the build; WGO_BENCH_DIST points at another build (the baseline guard of bench.mjs). */
export const dist = (p) => import(join(process.env.WGO_BENCH_DIST || join(ROOT, 'dist'), p));

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** CLOCK_MONOTONIC in ns: the same clock in every process of the machine. */
export const mono = () => process.hrtime.bigint();

// ---------------------------------------------------------------- statistics

export function sorted(xs) {
  return Float64Array.from(xs.filter((x) => Number.isFinite(x))).sort();
}
/** Nearest-rank percentile of an already sorted array. */
export function pct(a, p) {
  if (a.length === 0) return NaN;
  return a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))];
}
export function median(xs) {
  const a = sorted(xs);
  if (a.length === 0) return NaN;
  const m = Math.floor(a.length / 2);
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}
/**
 * Prints, for each mode, the median and [min–max] over runs of each key
 * (`results[mode]` is one object per run).
 */
export function printRunSummary(results, modes, keys) {
  const f = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  console.log('\nmedian [min–max] over runs');
  for (const mode of modes) {
    console.log(`${mode.padEnd(6)} ` + keys.map((k) => {
      const xs = results[mode].map((x) => x[k]).filter((x) => Number.isFinite(x));
      return `${k} ${f(median(xs))} [${f(Math.min(...xs))}–${f(Math.max(...xs))}]`;
    }).join(' | '));
  }
}
export const round = (v, d = 1) => (Number.isFinite(v) ? Math.round(v * 10 ** d) / 10 ** d : null);

// ---------------------------------------------------------------- /proc

export const CLK_TCK = 100; // getconf CLK_TCK on Linux/x86-64

/** utime + stime of a process (all its threads), in ms. */
export function cpuMs(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): utime is field 14, stime field 15.
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}
export const cpuMsOf = (pids) => pids.reduce((t, p) => t + cpuMs(p), 0);

/**
 * CPU used so far by this process, the children it has reaped (cutime + cstime: every load.mjs
 * run that has ended) and the given live processes, in ms. The difference of two readings is the
 * benchmark's own CPU in between, as long as the live ones are still running at both.
 */
export function ownCpuMs(livePids) {
  const s = readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const self = ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000) / CLK_TCK;
  let live = 0;
  for (const p of livePids) {
    try {
      live += cpuMs(p);
    } catch {
      /* gone: reaped, so counted in cutime */
    }
  }
  return self + live;
}

/** VmRSS in KiB. */
export function rssKb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}
export const rssKbOf = (pids) => pids.reduce((t, p) => t + rssKb(p), 0);

/** Direct children of a process (nginx workers of a master). */
export function childrenOf(ppid) {
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === ppid) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

// ---------------------------------------------------------------- certificates

/**
 * CA, guard server certificate (SAN IP 127.0.0.1) and one peer client certificate
 * (CN bench, SAN IP 127.0.0.1), made by the project's own dist/pki/ca.js.
 * Files: ca.pem, server.pem, server.key, client.pem, client.key, peer.json; with
 * `{ secondPeer: true }` also light.pem, light.key, light.json (peer "light", 127.0.0.2).
 */
export async function makeCertificates(dir, opts = {}) {
  const { createCa, issueCertificate } = await dist('pki/ca.js');
  mkdirSync(dir, { recursive: true });
  const ca = createCa({ commonName: 'wg-ollama bench CA' });
  const notAfter = new Date(Date.now() + 2 * 86_400_000);
  const server = issueCertificate(ca, { role: 'guard-server', commonName: 'bench-guard', ipAddresses: ['127.0.0.1'], notAfter });
  const peer = issueCertificate(ca, { role: 'peer', commonName: 'bench', ipAddresses: ['127.0.0.1'], notAfter });
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'server.pem'), server.certPem);
  writeFileSync(join(dir, 'server.key'), server.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'client.pem'), peer.certPem);
  writeFileSync(join(dir, 'client.key'), peer.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'peer.json'), JSON.stringify({ name: 'bench', address: '127.0.0.1', serial: peer.serial, expiresAt: notAfter.getTime() }));
  // The pool router's own guard certificate (it presents it to member guards): router.pem, router.key, router.json.
  const router = issueCertificate(ca, { role: 'guard-client', commonName: 'guard:router', notAfter });
  writeFileSync(join(dir, 'router.pem'), router.certPem);
  writeFileSync(join(dir, 'router.key'), router.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'router.json'), JSON.stringify({ serial: router.serial }));
  if (opts.secondPeer) {
    // A second peer at 127.0.0.2 (the pool benchmark's light peer): light.pem, light.key, light.json.
    const light = issueCertificate(ca, { role: 'peer', commonName: 'light', ipAddresses: ['127.0.0.2'], notAfter });
    writeFileSync(join(dir, 'light.pem'), light.certPem);
    writeFileSync(join(dir, 'light.key'), light.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'light.json'), JSON.stringify({ name: 'light', address: '127.0.0.2', serial: light.serial, expiresAt: notAfter.getTime() }));
  }
}

export function clientTls(dir) {
  return { ca: readFileSync(join(dir, 'ca.pem')), cert: readFileSync(join(dir, 'client.pem')), key: readFileSync(join(dir, 'client.key')) };
}

// ---------------------------------------------------------------- processes

const tracked = new Set();

/**
 * Starts a long-running process. Its stdout is read line by line: onLine(line) for each;
 * stderr goes to `log`. Tracked and killed by killAll().
 */
export function start(cmd, args, { log, onLine, env, stdin = 'ignore' } = {}) {
  const child = spawn(cmd, args, { stdio: [stdin, 'pipe', 'pipe'], env: env ?? process.env });
  tracked.add(child);
  const lines = [];
  const waiters = [];
  const rl = createInterface({ input: child.stdout });
  rl.on('line', (l) => {
    lines.push(l);
    onLine?.(l);
    for (const w of [...waiters]) w();
  });
  const errChunks = [];
  child.stderr.on('data', (c) => {
    errChunks.push(c);
    if (log) writeFileSync(log, c, { flag: 'a' });
  });
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  exited.then(() => {
    tracked.delete(child);
    for (const w of [...waiters]) w();
  });
  /** Waits (bounded) for a stdout line matching re; returns the match. */
  const waitLine = (re, timeoutMs, from = 0) =>
    new Promise((res, rej) => {
      let i = from;
      const check = () => {
        for (; i < lines.length; i++) {
          const m = re.exec(lines[i]);
          if (m) return done(null, m);
        }
        if (child.exitCode !== null || child.signalCode !== null) {
          return done(new Error(`${cmd} ${args.slice(0, 2).join(' ')} exited (${child.exitCode ?? child.signalCode}) before printing ${re}: ${Buffer.concat(errChunks).toString().slice(-800)}`));
        }
      };
      const timer = setTimeout(() => done(new Error(`timed out after ${timeoutMs} ms waiting for ${re} from ${cmd} ${args.slice(0, 2).join(' ')}`)), timeoutMs);
      const done = (e, m) => {
        clearTimeout(timer);
        const k = waiters.indexOf(check);
        if (k >= 0) waiters.splice(k, 1);
        e ? rej(e) : res(m);
      };
      waiters.push(check);
      check();
    });
  const stderr = () => Buffer.concat(errChunks).toString();
  return { child, pid: child.pid, lines, waitLine, exited, stderr };
}

/** Runs a process to completion (bounded); resolves with its code and output. */
export function runOnce(cmd, args, { timeoutMs = 60_000, env, input } = {}) {
  return new Promise((res) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env });
    tracked.add(child);
    const out = [];
    const err = [];
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => err.push(c));
    child.stdin.on('error', () => {});
    child.stdin.end(input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      tracked.delete(child);
      res({ code: code ?? -1, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
}

/** SIGTERM, then SIGKILL after graceMs, one tracked process. */
export async function stop(p, graceMs = 3000) {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  try {
    process.kill(p.pid, 'SIGTERM');
  } catch {
    return;
  }
  const t = setTimeout(() => {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }, graceMs);
  await p.exited;
  clearTimeout(t);
}

/**
 * SIGKILL every tracked process still running, by PID, and its direct children (nginx
 * workers outlive a SIGKILLed master).
 */
export function killAll() {
  for (const c of tracked) {
    if (c.exitCode === null && c.signalCode === null) {
      const kids = childrenOf(c.pid);
      for (const pid of [c.pid, ...kids]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
  }
  tracked.clear();
}

/**
 * Bounds a benchmark: after `ms` (and on SIGINT, SIGTERM, SIGHUP) every tracked process is
 * killed and this one exits. Returns a logger that prefixes the seconds since the start.
 */
export function boundRun(ms) {
  const t0 = Date.now();
  const log = (m) => process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${m}\n`);
  const deadline = setTimeout(() => {
    log(`over ${ms / 1000} s: killing everything`);
    killAll();
    process.exit(3);
  }, ms);
  deadline.unref();
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
      log(`${sig}: killing everything`);
      killAll();
      process.exit(130);
    });
  }
  return log;
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function canConnect(port) {
  return new Promise((res) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), res(true)));
    s.once('error', () => res(false));
  });
}
