// Shared helpers for the wg-ollama benchmarks (plain Node ESM, run as root).
//
// Every benchmark script calls bench(import.meta.url, NAME, fn):
//   - run from the root namespace it brings the lab up (`scripts/lab.sh up bn`),
//     re-runs itself inside bn-gw (so `wg`, `ipset`, `iptables`, the daemon and
//     the timing code all live in the gateway namespace, no `ip netns exec` in
//     any timed path), and always takes the lab down afterwards;
//   - inside, fn(ctx) runs; its return value is written to $BENCH_OUT/NAME.json.
// Every process started here is tracked by PID and killed at the end; every
// loop is bounded in count and time.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes, generateKeyPairSync } from 'node:crypto';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = join(ROOT, 'bin/wg-ollama.js');
export const LAB = join(ROOT, 'scripts/lab.sh');
export const LISTENER = join(ROOT, 'scripts/lab/listener.mjs');
export const PREFIX = 'bn';
export const NS = { gw: 'bn-gw', gpu: 'bn-gpu', other: 'bn-other', c1: 'bn-c1', c2: 'bn-c2' };
export const GPU = '198.51.100.10';
export const OUT_DIR = process.env.BENCH_OUT || '/tmp/wgo-bench-results';
export const QUICK = process.env.BENCH_QUICK === '1';

const dist = (p) => import(join(ROOT, 'dist', p));

/** Wall clock in ms with sub-ms resolution, comparable with Date.now() of other processes. */
export const now = () => performance.timeOrigin + performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- statistics

export function median(xs) {
  const a = xs.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  if (a.length === 0) return NaN;
  const m = Math.floor(a.length / 2);
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}
export function summary(xs) {
  const a = xs.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
  const r = (v) => Math.round(v * 10) / 10;
  return { n: a.length, median: r(median(a)), min: r(a[0]), max: r(a[a.length - 1]), all: a.map(r) };
}

// ---------------------------------------------------------------- processes

const tracked = new Set();

/**
 * Runs a program to completion with pipes (never use this for anything that
 * starts wireguard-go: see runToFile). Never rejects; kills on timeout.
 */
export function run(cmd, args, opts = {}) {
  return new Promise((resolveRun) => {
    const t0 = now();
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? { ...process.env, LC_ALL: 'C' } });
    tracked.add(child);
    const out = [];
    const err = [];
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => err.push(c));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    let settled = false;
    let grace;
    const timer = setTimeout(() => {
      log(`run: ${cmd} ${args.slice(0, 3).join(' ')} over ${opts.timeoutMs ?? 60_000} ms, killing pid ${child.pid}`);
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    const done = (code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(grace);
      tracked.delete(child);
      resolveRun({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: now() - t0, end: now() });
    };
    child.on('error', () => done(-1));
    child.on('close', (code) => done(code ?? -1));
    // A grandchild holding the pipes open must not hang us: after exit, wait for output at most 2 s.
    child.on('exit', (code) => {
      grace = setTimeout(() => done(code ?? -1), 2000);
    });
  });
}

/** run() that throws on a non-zero exit. */
export async function must(cmd, args, opts = {}) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ').slice(0, 200)} exited ${r.code}: ${r.stderr.trim().slice(0, 500)}`);
  return r;
}

/** Runs to completion with stdout/stderr to a file (wg-quick, wireguard-go daemonise holding their output). */
export function runToFile(cmd, args, log, opts = {}) {
  return new Promise((resolveRun) => {
    const t0 = now();
    const fd = openSync(log, 'a');
    const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: opts.env ?? { ...process.env, LC_ALL: 'C' } });
    closeSync(fd);
    tracked.add(child);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    const done = (code) => {
      clearTimeout(timer);
      tracked.delete(child);
      resolveRun({ code, ms: now() - t0, log });
    };
    child.on('error', () => done(-1));
    child.on('close', (code) => done(code ?? -1));
  });
}

/** Starts a long-running process, output to files; tracked and killed at the end. */
export function background(cmd, args, log, opts = {}) {
  const out = openSync(log, 'a');
  const err = openSync(`${log}.err`, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', out, err], env: opts.env ?? process.env });
  closeSync(out);
  closeSync(err);
  tracked.add(child);
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  exited.then(() => tracked.delete(child));
  return { child, pid: child.pid, log, errLog: `${log}.err`, exited };
}

async function killTracked() {
  for (const c of tracked) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  tracked.clear();
}

/** Polls fn until it returns a truthy value; bounded by timeoutMs. */
export async function waitFor(fn, timeoutMs, what, everyMs = 50) {
  const start = now();
  for (let i = 0; i < 100_000; i++) {
    const v = await fn();
    if (v) return v;
    if (now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
  throw new Error(`gave up waiting for ${what}`);
}

// ---------------------------------------------------------------- entry point

/**
 * Outside the lab: lab up, re-run this script inside bn-gw, lab down.
 * Inside: run fn(ctx), write the result JSON, kill what was started.
 */
export async function bench(scriptUrl, name, fn) {
  if (process.getuid?.() !== 0) {
    console.error(`${name}: run as root (sudo node scripts/bench/${basename(fileURLToPath(scriptUrl))})`);
    process.exit(2);
  }
  if (process.env.BN_INSIDE !== '1') {
    if (!existsSync(join(ROOT, 'dist/cli/main.js'))) {
      console.error('dist/ is missing: run `npm run build` first');
      process.exit(2);
    }
    const up = await run(LAB, ['up', PREFIX], { timeoutMs: 60_000 });
    if (up.code !== 0) {
      console.error(`lab up failed: ${up.stderr}`);
      await run(LAB, ['down', PREFIX]);
      process.exit(1);
    }
    let code = 1;
    try {
      const limit = Number(process.env.BENCH_SCRIPT_TIMEOUT_S || 300) * 1000;
      const child = spawn('ip', ['netns', 'exec', NS.gw, process.execPath, fileURLToPath(scriptUrl)], {
        stdio: 'inherit',
        env: { ...process.env, BN_INSIDE: '1' },
      });
      tracked.add(child);
      const timer = setTimeout(() => {
        console.error(`${name}: over ${limit / 1000} s, killing it`);
        child.kill('SIGKILL');
      }, limit);
      code = await new Promise((r) => child.on('close', (c) => r(c ?? 1)));
      clearTimeout(timer);
      tracked.delete(child);
    } finally {
      await killTracked();
      await run(LAB, ['down', PREFIX], { timeoutMs: 60_000 });
    }
    process.exit(code);
  }

  const ctx = { dir: mkdtempSync(join(tmpdir(), 'wgo-bn-')), name, cleanups: [] };
  let code = 0;
  try {
    const started = new Date().toISOString();
    const result = await fn(ctx);
    mkdirSync(OUT_DIR, { recursive: true });
    writeFileSync(join(OUT_DIR, `${name}.json`), JSON.stringify({ name, started, finished: new Date().toISOString(), machine: await machine(), ...result }, null, 2) + '\n');
    console.log(`${name}: results in ${join(OUT_DIR, `${name}.json`)}`);
  } catch (e) {
    console.error(`${name} failed: ${e.stack ?? e}`);
    code = 1;
  } finally {
    for (const c of ctx.cleanups.reverse()) await c().catch(() => undefined);
    await killTracked();
    if (process.env.BENCH_KEEP !== '1') rmSync(ctx.dir, { recursive: true, force: true });
  }
  process.exit(code);
}

export function log(...a) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...a);
}

// ---------------------------------------------------------------- machine

export async function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? 'unknown';
  const ipt = await run('iptables', ['--version']);
  const wgv = await run('wg', ['--version']);
  const wgo = await run('wireguard-go', ['--version']);
  const ipsetv = await run('ipset', ['version']);
  const kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  const hasWgModule = existsSync('/sys/module/wireguard');
  return {
    nproc: cpus().length,
    cpu: model,
    kernel,
    wireguard: hasWgModule ? 'kernel module present' : `userspace (${wgo.stdout.trim().split('\n')[0] || 'wireguard-go'})`,
    wgTools: wgv.stdout.trim(),
    iptables: ipt.stdout.trim(),
    ipset: ipsetv.stdout.trim(),
    node: process.version,
    loadavg: readFileSync('/proc/loadavg', 'utf8').trim(),
  };
}

/** VmRSS and VmHWM of a process, in MiB. */
export function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
}

// ---------------------------------------------------------------- gateway

let gwCount = 0;

/** `wg-ollama init` in a fresh state directory (inside bn-gw). */
export async function createGateway(ctx, { iface, subnet = '10.66.0.0/16', listenPort = 51820 }) {
  const n = ++gwCount;
  const configFile = join(ctx.dir, `${iface}-${n}.json`);
  const stateDir = join(ctx.dir, `${iface}-${n}-state`);
  await must(process.execPath, [BIN, '--config', configFile, 'init', '--endpoint', '192.0.2.1:51820', '--ollama-host', GPU,
    '--interface', iface, '--state-dir', stateDir, '--subnet', subnet, '--listen-port', String(listenPort), '--json']);
  const { loadConfig } = await dist('config.js');
  const config = loadConfig(configFile);
  const gw = {
    iface,
    configFile,
    stateDir,
    config,
    set: `wgo-peers-${iface}`,
    socket: config.paths.socket,
    cli: (...args) => run(process.execPath, [BIN, '--config', configFile, ...args]),
    serve: null,
  };
  return gw;
}

/**
 * Starts `wg-ollama serve` (the real CLI, or another launcher script with the
 * same arguments) and waits until its first reconcile has finished.
 */
export async function startServe(ctx, gw, { launcher = BIN, env = {} } = {}) {
  const logFile = join(ctx.dir, `serve-${gw.iface}-${Date.now()}.log`);
  const proc = background(process.execPath, [launcher, '--config', gw.configFile, 'serve'], logFile, { env: { ...process.env, ...env } });
  proc.launcher = launcher;
  const { requestControl } = await dist('gateway/control.js');
  await waitFor(async () => {
    if (proc.child.exitCode !== null) throw new Error(`serve exited: ${readFileSync(proc.errLog, 'utf8').slice(-2000)}`);
    try {
      const s = await requestControl(gw.socket, 'status', 2000);
      return s.lastReconcile !== null;
    } catch {
      return false;
    }
  }, 30_000, 'serve to finish its first reconcile', 50);
  gw.serve = proc;
  return proc;
}

export async function stopServe(gw) {
  const s = gw.serve;
  if (!s) return;
  if (s.child.exitCode === null && s.child.signalCode === null) {
    s.child.kill('SIGTERM');
    const r = await Promise.race([s.exited, sleep(15_000).then(() => null)]);
    if (r === null) s.child.kill('SIGKILL');
  }
  gw.serve = null;
}

/** Stops serve and removes the interface and firewall (`wg-ollama down`). */
export async function destroyGateway(gw) {
  await stopServe(gw);
  await gw.cli('down', '--json');
  await run('ip', ['link', 'del', 'dev', gw.iface]);
  await waitIfaceGone(gw.iface);
}

/** Waits until a (wireguard-go) interface and its UAPI socket are gone, so its name can be reused. */
export async function waitIfaceGone(iface) {
  await waitFor(async () => (await run('ip', ['link', 'show', 'dev', iface])).code !== 0 && !existsSync(`/var/run/wireguard/${iface}.sock`),
    10_000, `${iface} to disappear`, 50);
}

/** Creates a wireguard-go interface with a private key and port, up, with an address. */
export async function createWgInterface(ctx, iface, { port, address }) {
  await run('ip', ['link', 'del', 'dev', iface]);
  await waitIfaceGone(iface);
  const key = (await must('wg', ['genkey'])).stdout.trim();
  const keyFile = join(ctx.dir, `${iface}.key`);
  writeFileSync(keyFile, key + '\n', { mode: 0o600 });
  const created = await runToFile('wireguard-go', [iface], join(ctx.dir, `wireguard-go-${iface}.log`));
  if (created.code !== 0) throw new Error(`wireguard-go ${iface} failed`);
  await waitFor(() => existsSync(`/var/run/wireguard/${iface}.sock`), 5000, `${iface} socket`, 20);
  await must('wg', ['set', iface, 'private-key', keyFile, 'listen-port', String(port)]);
  await must('ip', ['addr', 'add', address, 'dev', iface]);
  await must('ip', ['link', 'set', 'dev', iface, 'up']);
  return { key, keyFile };
}

/** Daemon log lines (pino JSON) of reconciles (event reconcile.done or reconcile.failed), optionally after a wall time. */
export function reconcileLog(gw, afterMs = 0) {
  if (!gw.serve) return [];
  const out = [];
  for (const line of readFileSync(gw.serve.log, 'utf8').split('\n')) {
    if (!line.includes('"reconcile.')) continue;
    try {
      const j = JSON.parse(line);
      if ((j.event === 'reconcile.done' || j.event === 'reconcile.failed') && Date.parse(j.time) >= afterMs) out.push(j);
    } catch {
      /* partial line */
    }
  }
  return out;
}

export async function requestControl(socket, op, timeoutMs = 15_000) {
  const { requestControl: rc } = await dist('gateway/control.js');
  return rc(socket, op, timeoutMs);
}

// ---------------------------------------------------------------- peers

/** n fresh peers: X25519 key pairs (node:crypto), preshared keys, names and addresses from offset. */
export async function makePeers(n, { offset = 0, subnet = '10.66.0.0/16', prefix = 'bn' } = {}) {
  const { parseCidr, intToIp } = await dist('core/ipv4.js');
  const net = parseCidr(subnet);
  const peers = [];
  for (let i = 0; i < n; i++) {
    // DER, not JWK: on this Node (20.20.2) exporting x25519 keys as JWK in a loop
    // deadlocks after a few thousand keys (see repro-jwk-deadlock.mjs).
    const { publicKey } = generateKeyPairSync('x25519');
    const pub = publicKey.export({ type: 'spki', format: 'der' }).subarray(-32).toString('base64');
    const addressInt = net.base + 2 + offset + i;
    peers.push({ name: `${prefix}${offset + i}`, publicKey: pub, psk: randomBytes(32).toString('base64'), addressInt, address: intToIp(addressInt) });
  }
  return peers;
}

/**
 * The bulk change: preshared-key files written through psk-store (as
 * PeerService does, before its transaction), then ONE immediate SQLite
 * transaction inserting every peer through the peer repository.
 * Returns the wall time right after COMMIT.
 */
export async function bulkInsert(gw, peers) {
  const { openDatabase } = await dist('db/open.js');
  const { peerRepository } = await dist('db/peers.js');
  const { pskStore } = await dist('gateway/psk-store.js');
  const db = openDatabase(gw.config.paths.db);
  try {
    const repo = peerRepository(db);
    const psk = pskStore(gw.config.paths.pskDir);
    const refs = peers.map((p) => psk.write(p.psk));
    const t = Date.now();
    const tx = db.transaction(() => {
      for (let i = 0; i < peers.length; i++) {
        const p = peers[i];
        repo.insert({ name: p.name, address: p.address, addressInt: p.addressInt, publicKey: p.publicKey, pskRef: refs[i], expiresAt: null, now: t });
      }
    });
    const t0 = now();
    tx.immediate();
    const committed = now();
    return { committed, txMs: committed - t0, pskFiles: refs.map((r) => psk.path(r)) };
  } finally {
    db.close();
  }
}

// ---------------------------------------------------------------- kernel state

export async function wgPeerCount(iface) {
  const r = await run('wg', ['show', iface, 'peers'], { timeoutMs: 10_000 });
  if (r.code !== 0) return { count: -1, r };
  const count = r.stdout === '' ? 0 : r.stdout.trimEnd().split('\n').length;
  return { count, r };
}

export async function ipsetCount(set) {
  const r = await run('ipset', ['list', '-t', set], { timeoutMs: 10_000 });
  const m = /Number of entries: (\d+)/.exec(r.stdout);
  return { count: m ? Number(m[1]) : -1, r };
}

/**
 * Polls `wg show IFACE peers` and `ipset list -t SET` (two independent loops,
 * one process at a time each) until both show `want` entries. For each: the
 * end of the first poll that saw it (an upper bound of when it became live)
 * and the start of the last poll that did not (a lower bound).
 */
export async function waitCounts(iface, set, want, since, { timeoutMs = 30_000, gapMs = 5 } = {}) {
  const loop = async (probe) => {
    let lastStart = since;
    let polls = 0;
    for (; polls < 20_000; polls++) {
      const start = now();
      const { count, r } = await probe();
      if (count === want) return { liveMs: r.end - since, lowerMs: lastStart - since, polls: polls + 1, pollMs: r.ms };
      lastStart = start;
      if (now() - since > timeoutMs) return { liveMs: NaN, lowerMs: NaN, polls, lastCount: count, timedOut: true };
      if (gapMs) await sleep(gapMs);
    }
    return { liveMs: NaN, polls };
  };
  const [wg, ipset] = await Promise.all([loop(() => wgPeerCount(iface)), loop(() => ipsetCount(set))]);
  return { wg, ipset, bothMs: Math.max(wg.liveMs, ipset.liveMs) };
}

export { dist };

export const SHIM = join(ROOT, 'scripts/bench/serve-shim.mjs');

/**
 * A gateway with N live peers, served by the real `bin/wg-ollama.js serve`:
 * the peers are inserted in one transaction and applied by serve-shim.mjs
 * (syncconf through a file: the shipped daemon cannot apply a bulk of more
 * than 200 peers, see BENCHMARKS.md), then the shim is stopped and the real
 * daemon started on the populated state (its first reconcile is a no-op).
 */
export async function setupPopulated(ctx, { iface, n = 10_000 }) {
  log(`setup: gateway ${iface}`);
  const gw = await createGateway(ctx, { iface });
  ctx.cleanups.push(() => destroyGateway(gw));
  const peers = await makePeers(n);
  log(`setup: ${n} peers generated; starting serve-shim`);
  await startServe(ctx, gw, { launcher: SHIM, env: { BENCH_SYNCCONF_FILE: '1' } });
  if (n > 0) {
    const { committed } = await bulkInsert(gw, peers);
    const live = await waitCounts(gw.iface, gw.set, n, committed, { timeoutMs: 60_000, gapMs: 50 });
    if (!Number.isFinite(live.bothMs)) throw new Error(`setup: ${n} peers did not become live`);
    log(`setup: ${n} peers live after ${live.bothMs.toFixed(0)} ms; restarting with bin/wg-ollama.js serve`);
  }
  await stopServe(gw);
  await startServe(ctx, gw);
  log('setup: done');
  const first = reconcileLog(gw)[0];
  return { gw, peers, firstReconcile: first ?? { noop: true } };
}

/** Peer rows by name (for created_at). */
export async function peerRow(gw, name) {
  const { openDatabase } = await dist('db/open.js');
  const db = openDatabase(gw.config.paths.db, { readonly: true });
  try {
    return db.prepare('SELECT id, name, address, public_key AS publicKey, created_at AS createdAt, updated_at AS updatedAt, status FROM peers WHERE name = ? ORDER BY id DESC LIMIT 1').get(name);
  } finally {
    db.close();
  }
}

/** Starts a process whose stdout lines are timestamped as they arrive (tracked, killed at the end). */
export function streamLines(cmd, args) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
  tracked.add(child);
  const lines = [];
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (c) => {
    const t = now();
    buf += c;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push({ t, text: buf.slice(0, nl) });
      buf = buf.slice(nl + 1);
    }
  });
  const exited = new Promise((r) => child.once('close', (code) => {
    tracked.delete(child);
    r({ code, t: now() });
  }));
  return { child, pid: child.pid, lines, exited, kill: () => child.exitCode === null && child.kill('SIGKILL') };
}

/** `ipset restore` text adding these peers, exactly as the reconciler renders it (entry format of the current dist). */
export async function setRestoreText(setName, peers) {
  const fp = await dist('core/firewall-plan.js');
  const entry = (p) => (fp.setEntryFor ? fp.setEntryFor(p.name, null, Date.now()) : p.name);
  return fp.renderSetRestore(setName, { add: peers.map((p) => [p.address, entry(p)]), del: [] });
}
