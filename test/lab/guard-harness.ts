/**
 * The guard on top of the namespace lab: a gateway with its guard sync API on
 * the LAN, the real guard process and the Ollama-API simulator in the GPU
 * namespace (two-box mode, the reference), peers issued with --out, and the
 * helpers the guard lab tests share: mTLS curl, the client scripts in
 * clients/, the simulator's record file, the guard's /healthz and the
 * gateway's request log. Everything started here is tracked by PID and
 * stopped in cleanup (also after a failed test), then the lab is torn down.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { GPU, GW_LAN, ROOT, createGateway, createLab, waitFor, type CliResult, type Gateway, type Lab } from './harness.js';

export const BIN = join(ROOT, 'bin/wg-ollama.js');
export const SIM = join(ROOT, 'scripts/lab/ollama-sim.mjs');
export const CLIENTS = join(ROOT, 'test/lab/clients');
export const SYNC_LISTEN = `${GW_LAN}:7443`;
export const GUARD_URL = `https://${GPU}:11434`;

/** A process running in a namespace, output in files; stop() sends a signal to its PID and waits for it. */
export interface Bg {
  pid: number;
  out: string;
  lines: () => string[];
  json: <T = Record<string, unknown>>() => T[];
  stop: (signal?: NodeJS.Signals) => Promise<void>;
  exited: () => boolean;
}

/** The background processes of one test file, by PID. */
export function processes(lab: Lab) {
  const list: { p: ResultPromise; done: boolean }[] = [];
  let n = 0;
  return {
    spawn(ns: string, cmd: string, args: string[], tag: string): Bg {
      const out = join(lab.dir, `${tag}-${n++}.out`);
      writeFileSync(out, '');
      const p = execa('ip', ['netns', 'exec', ns, cmd, ...args], { reject: false, stdin: 'ignore', stdout: { file: out }, stderr: { file: `${out}.err` } });
      const entry = { p, done: false };
      void p.then(() => (entry.done = true));
      list.push(entry);
      const lines = (): string[] => readFileSync(out, 'utf8').split('\n').filter(Boolean);
      return {
        pid: p.pid!,
        out,
        lines,
        json: <T>() => lines().filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as T),
        async stop(signal: NodeJS.Signals = 'SIGTERM') {
          if (entry.done) return;
          process.kill(p.pid!, signal);
          await p;
        },
        exited: () => entry.done,
      };
    },
    async stopAll(): Promise<void> {
      for (const e of list) if (!e.done && e.p.pid) e.p.kill('SIGKILL');
      await Promise.all(list.map((e) => e.p.catch(() => undefined)));
    },
  };
}

export type Processes = ReturnType<typeof processes>;

/** One line of the simulator's record file. */
export interface SimEvent {
  event: 'request' | 'end';
  id: number;
  at: string;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: Record<string, unknown> | null;
  aborted?: boolean;
  status?: number | null;
  tokens?: number;
}

export interface Sim {
  record: string;
  proc: Bg;
  events: () => SimEvent[];
  /** Requests that reached "Ollama" so far. */
  count: () => number;
}

/** The Ollama-API simulator on 127.0.0.1:11434 in a namespace, recording every arrival to a file. */
export async function startSim(lab: Lab, procs: Processes, ns: string, args: string[] = []): Promise<Sim> {
  const record = join(lab.dir, `sim-${ns}.ndjson`);
  writeFileSync(record, '');
  const proc = procs.spawn(ns, 'node', [SIM, '--listen', '127.0.0.1:11434', '--record', record, ...args], 'sim');
  await waitFor(() => proc.lines().some((l) => l.includes('listening')), 5000, 'the simulator to listen');
  const events = (): SimEvent[] => readFileSync(record, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as SimEvent);
  return { record, proc, events, count: () => events().filter((e) => e.event === 'request').length };
}

/** What add-peer --out --json prints, plus the paths of the files it wrote. */
export interface Peer {
  name: string;
  address: string;
  expiresAt: string | null;
  config: string;
  certificate: string;
  certificateKey: string;
  certificateSerial: string;
  caCertificate: string;
  guardUrl: string;
  p12Passphrase: string | null;
  files: string[];
  crt: string;
  key: string;
  ca: string;
  p12: string;
}

export async function addPeer(lab: Lab, gw: Gateway, name: string, extra: string[] = []): Promise<Peer> {
  const dir = join(lab.dir, `peers-${gw.iface}`);
  const p = await gw.cliJson<Omit<Peer, 'crt' | 'key' | 'ca' | 'p12'>>('add-peer', name, '--out', dir, ...extra);
  return { ...p, crt: join(dir, `${name}.crt`), key: join(dir, `${name}.key`), ca: join(dir, 'ca.crt'), p12: join(dir, `${name}.p12`) };
}

/** Client credentials for curl and the client scripts: any certificate and key, and the CA to trust. */
export interface Creds {
  ca: string;
  crt?: string;
  key?: string;
}

export interface HttpResult {
  /** curl's exit code (0 = an HTTP answer came). */
  code: number;
  status: number;
  headers: Record<string, string>;
  body: string;
  json: () => Record<string, unknown>;
  stderr: string;
}

/**
 * An HTTPS request with curl from a namespace: --path-as-is, so the guard sees
 * the path exactly as written. Never throws; `status` is 0 without an answer.
 */
export async function tlsCurl(
  lab: Lab, ns: string, creds: Creds, path: string,
  o: { method?: string; data?: string; headers?: string[]; timeoutSec?: number; base?: string; extra?: string[] } = {},
): Promise<HttpResult> {
  const args = ['-s', '-S', '-i', '--path-as-is', '--http1.1', '--connect-timeout', String(o.timeoutSec ?? 3), '-m', String((o.timeoutSec ?? 3) + 7), '--cacert', creds.ca];
  if (creds.crt) args.push('--cert', creds.crt);
  if (creds.key) args.push('--key', creds.key);
  if (o.method) args.push('-X', o.method);
  if (o.data !== undefined) args.push('-H', 'content-type: application/json', '--data-binary', o.data);
  for (const h of o.headers ?? []) args.push('-H', h);
  args.push(...(o.extra ?? []), `${o.base ?? GUARD_URL}${path}`);
  const r = await lab.exec(ns, 'curl', args, { timeoutMs: 30_000 });
  return parseCurl(r);
}

export function parseCurl(r: CliResult): HttpResult {
  let rest = r.stdout;
  let status = 0;
  const headers: Record<string, string> = {};
  // Header blocks (a 100 Continue may come first), then the body.
  while (/^HTTP\/\d(\.\d)? \d{3}/.test(rest)) {
    const end = rest.indexOf('\r\n\r\n');
    const head = end === -1 ? rest : rest.slice(0, end);
    rest = end === -1 ? '' : rest.slice(end + 4);
    const [line, ...fields] = head.split('\r\n');
    status = Number(line!.split(' ')[1]);
    for (const f of fields) {
      const i = f.indexOf(':');
      if (i > 0) headers[f.slice(0, i).toLowerCase()] = f.slice(i + 1).trim();
    }
  }
  return { code: r.code, status, headers, body: rest, stderr: r.stderr, json: () => JSON.parse(rest) as Record<string, unknown> };
}

/** Runs one of the client scripts in clients/ in a namespace and returns the JSON it printed last. */
export async function runClient<T = Record<string, unknown>>(lab: Lab, ns: string, script: string, args: string[]): Promise<T> {
  const r = await lab.exec(ns, 'node', [join(CLIENTS, script), ...args], { timeoutMs: 60_000 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (!last.startsWith('{')) throw new Error(`${script} printed no result (exit ${r.code}): ${r.stderr}`);
  return JSON.parse(last) as T;
}

export const clientArgs = (creds: Creds, url = GUARD_URL): string[] =>
  ['--url', url, '--ca', creds.ca, ...(creds.crt ? ['--cert', creds.crt, '--key', creds.key!] : [])];

/** A request record as `logs requests --json` prints it. */
export interface RequestRow {
  id: number;
  guard: string;
  guardSeq: number;
  at: string;
  peer: string | null;
  source: string;
  method: string | null;
  path: string | null;
  endpoint: string | null;
  model: string | null;
  status: number;
  refusal: string | null;
  durationMs: number;
  promptTokens: number | null;
  evalTokens: number | null;
  promptSha256: string | null;
  promptLength: number | null;
  promptText: string | null;
  certSerial: string | null;
  bytesOut: number;
}

export async function requestLog(gw: Gateway): Promise<RequestRow[]> {
  const r = await gw.cli('logs', 'requests', '--json', '--since', '1h', '--limit', '100000');
  if (r.code !== 0) throw new Error(`logs requests failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as RequestRow);
}

/** GET on a plain-HTTP metrics server inside a namespace. */
export async function httpGet(lab: Lab, ns: string, url: string): Promise<{ status: number; body: string }> {
  const r = parseCurl(await lab.exec(ns, 'curl', ['-s', '-i', '-m', '3', url]));
  return { status: r.status, body: r.body };
}

/** A Prometheus sample's value, or undefined; labels must all match. */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    const m = /^([^{ ]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

export interface GuardHealth {
  ok: boolean;
  name: string;
  peersVersion: string;
  peers: number;
  gateway: 'connected' | 'unreachable';
  spooled: number;
  lastError: string | null;
}

/** Two-box mode: gateway (sync API on the LAN) in gw, guard + simulator in gpu. */
export interface GuardLab {
  lab: Lab;
  gw: Gateway;
  procs: Processes;
  sim: Sim;
  guardDir: string;
  guardConfig: string;
  startGuard: () => Promise<void>;
  stopGuard: (signal?: NodeJS.Signals) => Promise<void>;
  health: () => Promise<GuardHealth>;
  /** Runs a change (CLI call) and waits until the guard enforces the peer set it produced. */
  change: (fn: () => Promise<CliResult>) => Promise<CliResult>;
  /** Waits until the guard enforces `n` peers. */
  waitPeers: (n: number) => Promise<void>;
  cleanup: () => Promise<void>;
}

export async function createGuardLab(prefix: string, o: { simArgs?: string[]; guardLimits?: Record<string, number> } = {}): Promise<GuardLab> {
  const lab = await createLab(prefix, { gpuListener: false });
  const procs = processes(lab);
  let guard: Bg | null = null;
  const cleanup = async (): Promise<void> => {
    await procs.stopAll();
    await lab.cleanup();
  };
  try {
    const gw = await createGateway(lab, `wgo${prefix}`, ['--sync-listen', SYNC_LISTEN]);
    await gw.start();
    const guardDir = join(lab.dir, 'guard');
    const added = await gw.cli('add-guard', 'gpu1', '--address', GPU, '--out', guardDir);
    if (added.code !== 0) throw new Error(`add-guard failed: ${added.stderr}`);
    const guardConfig = join(guardDir, 'guard.json');
    if (o.guardLimits) {
      const c = JSON.parse(readFileSync(guardConfig, 'utf8')) as Record<string, unknown>;
      writeFileSync(guardConfig, JSON.stringify({ ...c, limits: o.guardLimits }, null, 2));
    }
    const gpu = lab.ns('gpu');
    const sim = await startSim(lab, procs, gpu, o.simArgs);
    const health = async (): Promise<GuardHealth> => {
      const r = await httpGet(lab, gpu, 'http://127.0.0.1:9478/healthz');
      if (r.status === 0) throw new Error('guard /healthz does not answer');
      return JSON.parse(r.body) as GuardHealth;
    };
    const healthOr = async (): Promise<GuardHealth | null> => health().catch(() => null);
    const gl: GuardLab = {
      lab, gw, procs, sim, guardDir, guardConfig, health,
      async startGuard() {
        guard = procs.spawn(gpu, 'node', [BIN, 'guard', '--config', guardConfig], 'guard');
        const g = guard;
        await waitFor(async () => {
          if (g.exited()) throw new Error(`the guard exited: ${readFileSync(`${g.out}.err`, 'utf8')}${readFileSync(g.out, 'utf8')}`);
          return (await healthOr())?.ok === true;
        }, 15_000, 'the guard to serve a peer set');
      },
      async stopGuard(signal = 'SIGTERM') {
        await guard?.stop(signal);
        guard = null;
      },
      async change(fn) {
        const before = (await health()).peersVersion;
        const r = await fn();
        if (r.code !== 0) throw new Error(`change failed (exit ${r.code}): ${r.stderr}`);
        await waitFor(async () => (await healthOr())?.peersVersion !== before, 5000, 'the guard to get the new peer set', 20);
        return r;
      },
      async waitPeers(n) {
        await waitFor(async () => (await healthOr())?.peers === n, 5000, `the guard to enforce ${n} peers`, 20);
      },
      cleanup,
    };
    await gl.startGuard();
    return gl;
  } catch (e) {
    await cleanup();
    throw e;
  }
}
