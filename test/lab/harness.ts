/**
 * The namespace lab for tests: real network namespaces, real wireguard-go,
 * real iptables, the real CLI and daemon. Each test file uses its own prefix
 * and interface names; everything it starts is tracked by PID and killed, and
 * its namespaces are deleted, in cleanup (also after a failed test).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { waitFor as poll } from '../support/wait.js';

export const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/wg-ollama.js');
const LAB = join(ROOT, 'scripts/lab.sh');
const LISTENER = join(ROOT, 'scripts/lab/listener.mjs');

export const GPU = '198.51.100.10';
export const OTHER = '198.51.100.20';
export const GW_LAN = '198.51.100.1';
export const GW_INET = '192.0.2.1';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Lab {
  prefix: string;
  dir: string;
  ns: (name: 'gw' | 'gpu' | 'other' | 'c1' | 'c2') => string;
  /** Runs a command in a namespace; never throws on a non-zero exit. `env` adds variables (e.g. a client's CA bundle). */
  exec: (ns: string, cmd: string, args: string[], opts?: { input?: string; timeoutMs?: number; env?: Record<string, string> }) => Promise<CliResult>;
  /** Starts a long-running process in a namespace, tracked for cleanup. */
  spawn: (ns: string, cmd: string, args: string[]) => ResultPromise;
  cleanup: () => Promise<void>;
  /** Streams the GPU host's listener reported closed: {closed: ms, from: address, reason}. */
  gpuClosures: () => { closed: number; from: string; reason: string }[];
}

export function requireBuilt(): void {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run `npm run build` first');
}

export interface LabOptions {
  /** Start the plain listener on GPU:11434 and :22 (default true); off when a guard needs the port. */
  gpuListener?: boolean;
}

export async function createLab(prefix: string, opts: LabOptions = {}): Promise<Lab> {
  requireBuilt();
  const dir = mkdtempSync(join(tmpdir(), `wgo-${prefix}-`));
  const procs: ResultPromise[] = [];
  await execa(LAB, ['up', prefix]);
  const ns = (n: string): string => `${prefix}-${n}`;
  const lab: Lab = {
    prefix,
    dir,
    ns,
    async exec(n, cmd, args, opts = {}) {
      const r = await execa('ip', ['netns', 'exec', n, cmd, ...args], {
        reject: false,
        input: opts.input ?? '',
        timeout: opts.timeoutMs ?? 60_000,
        env: { WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go', ...opts.env },
      });
      return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
    },
    spawn(n, cmd, args) {
      // Output goes to files in the lab directory: readable after a failure, and no pipe
      // is left open by a daemonising grandchild (wireguard-go).
      const log = join(dir, `${n}-${procs.length}-${cmd.replace(/\W/g, '')}.log`);
      const p = execa('ip', ['netns', 'exec', n, cmd, ...args], { reject: false, stdin: 'ignore', stdout: { file: log }, stderr: { file: `${log}.err` } });
      procs.push(p);
      return p;
    },
    gpuClosures() {
      const text = readFileSync(join(dir, `${ns('gpu')}-0-node.log.err`), 'utf8');
      return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { closed: number; from: string; reason: string });
    },
    async cleanup() {
      for (const p of procs) if (p.pid && p.exitCode === undefined) p.kill('SIGKILL');
      await execa(LAB, ['down', prefix], { reject: false });
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // Listeners: the GPU host (11434 = Ollama, 22 = SSH), another LAN host, the gateway itself.
  const gpuListener = opts.gpuListener ?? true;
  if (gpuListener) lab.spawn(ns('gpu'), 'node', [LISTENER, 'gpu', '11434', '22']);
  lab.spawn(ns('other'), 'node', [LISTENER, 'other', '11434', '8080']);
  lab.spawn(ns('gw'), 'node', [LISTENER, 'gw', '8080', '22']);
  lab.spawn(ns('c2'), 'node', [LISTENER, 'c2', '8080']);
  const waits = [['gpu', 11434], ['other', 8080], ['gw', 8080], ['c2', 8080]] as const;
  for (const [n, port] of waits.filter(([n]) => gpuListener || n !== 'gpu')) {
    await waitFor(async () => (await lab.exec(ns(n), 'curl', ['-s', '-m', '1', `http://127.0.0.1:${port}/`])).code === 0, 5000, `listener in ${n}`);
  }
  return lab;
}

/** The shared wait (test/support/wait.ts), polling every 100 ms by default: lab checks run commands. */
export const waitFor = (cond: () => Promise<boolean> | boolean, timeoutMs: number, what: string, everyMs = 100): Promise<number> =>
  poll(cond, timeoutMs, what, everyMs);

/** One gateway: its config file, CLI and daemon, inside the lab's gw namespace. */
export interface Gateway {
  configFile: string;
  iface: string;
  cli: (...args: string[]) => Promise<CliResult>;
  cliJson: <T = Record<string, unknown>>(...args: string[]) => Promise<T>;
  /** Starts `serve` and waits until it answers. (The subprocess is a thenable: never return it from an async function.) */
  start: () => Promise<void>;
  daemon: () => ResultPromise | null;
}

export async function createGateway(lab: Lab, iface: string, extra: string[] = []): Promise<Gateway> {
  const configFile = join(lab.dir, `${iface}.json`);
  let daemon: ResultPromise | null = null;
  const cli = (...args: string[]): Promise<CliResult> => lab.exec(lab.ns('gw'), 'node', [BIN, '--config', configFile, ...args]);
  const gw: Gateway = {
    configFile,
    iface,
    cli,
    async cliJson<T>(...args: string[]) {
      const r = await cli(...args, '--json');
      if (r.code !== 0) throw new Error(`wg-ollama ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout) as T;
    },
    async start() {
      daemon = lab.spawn(lab.ns('gw'), 'node', [BIN, '--config', configFile, 'serve']);
      await waitFor(async () => {
        const r = await cli('status', '--json');
        return r.code === 0 && (JSON.parse(r.stdout) as { daemon: { running: boolean } }).daemon.running;
      }, 15_000, 'serve to answer');
    },
    daemon: () => daemon,
  };
  const r = await cli('init', '--endpoint', `${GW_INET}:51820`, '--ollama-host', GPU, '--interface', iface,
    '--state-dir', join(lab.dir, `${iface}-state`), ...extra);
  if (r.code !== 0) throw new Error(`init failed: ${r.stderr}`);
  return gw;
}

/** Brings a client tunnel up with wg-quick from exactly the given config text. */
export async function clientUp(lab: Lab, ns: string, ifname: string, config: string): Promise<void> {
  const file = join(lab.dir, `${ifname}.conf`);
  writeFileSync(file, config, { mode: 0o600 });
  // wg-quick starts wireguard-go, which daemonises holding its parent's output:
  // write to a file, not a pipe, or the call never sees end-of-output.
  const log = join(lab.dir, `${ifname}.wg-quick.log`);
  const r = await execa('ip', ['netns', 'exec', ns, 'wg-quick', 'up', file], {
    reject: false, stdin: 'ignore', stdout: { file: log }, stderr: { file: log }, timeout: 30_000,
    env: { WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go' },
  });
  if (r.exitCode !== 0) throw new Error(`wg-quick up failed (exit ${r.exitCode}), see ${log}`);
}

export async function clientDown(lab: Lab, ns: string, ifname: string): Promise<void> {
  await lab.exec(ns, 'wg-quick', ['down', join(lab.dir, `${ifname}.conf`)]);
}

/** An HTTP GET from a namespace with curl; ok only for a 2xx answer within the time limit. */
export async function get(lab: Lab, ns: string, url: string, timeoutSec = 2): Promise<{ ok: boolean; body: string; code: number }> {
  const r = await lab.exec(ns, 'curl', ['-s', '-g', '-f', '--connect-timeout', String(timeoutSec), '-m', String(timeoutSec + 1), url]);
  return { ok: r.code === 0, body: r.stdout, code: r.code };
}

/** Packets the WireGuard interface's ingress filter (tc clsact, the first barrier) dropped on the gateway. */
export async function tunnelDrops(lab: Lab, iface: string): Promise<number> {
  const r = await lab.exec(lab.ns('gw'), 'tc', ['-s', '-j', 'qdisc', 'show', 'dev', iface]);
  const clsact = (JSON.parse(r.stdout) as { kind: string; drops: number }[]).find((q) => q.kind === 'clsact');
  if (!clsact) throw new Error(`no clsact qdisc on ${iface}: ${r.stdout} ${r.stderr}`);
  return clsact.drops;
}

/** A long NDJSON stream from the GPU host through the tunnel (curl -N), written to a file. */
export interface Stream {
  lines: () => number;
  stop: () => void;
}

export async function openStream(lab: Lab, ns: string, tag: string): Promise<Stream> {
  const out = join(lab.dir, `stream-${tag}.ndjson`);
  writeFileSync(out, '');
  const p = execa('ip', ['netns', 'exec', ns, 'curl', '-s', '-N', '-m', '40', `http://${GPU}:11434/stream?seconds=30`], {
    reject: false, stdin: 'ignore', stdout: { file: out }, stderr: 'ignore',
  });
  const lines = (): number => readFileSync(out, 'utf8').split('\n').filter(Boolean).length;
  await waitFor(() => lines() >= 3, 5000, `stream ${tag} to flow`);
  return { lines, stop: () => void p.kill('SIGKILL') };
}

/**
 * Asserts that a flow is dead within limitMs of t0: the GPU host saw its
 * connection from `address` closed, and the client receives nothing more.
 * Returns how long the GPU side took.
 */
export async function expectFlowDies(lab: Lab, stream: Stream, address: string, t0: number, limitMs = 5000): Promise<number> {
  const from = `::ffff:${address}`;
  let closedAt = 0;
  await waitFor(() => {
    const c = lab.gpuClosures().find((e) => e.from === from && e.closed >= t0 - 50);
    if (c) closedAt = c.closed;
    return !!c;
  }, limitMs, `the GPU host to see the flow from ${address} closed`, 50);
  const n = stream.lines();
  await new Promise((r) => setTimeout(r, 700));
  if (stream.lines() !== n) throw new Error(`the client still receives data after the flow was cut (${n} -> ${stream.lines()} lines)`);
  stream.stop();
  return closedAt - t0;
}
