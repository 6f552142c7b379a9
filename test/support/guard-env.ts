/**
 * The guard for real, in process: the Ollama simulator on 127.0.0.1:0, the
 * guard in front of it with a guard-server certificate for 127.0.0.1, peers
 * with 'peer' certificates whose SAN IP is their address (127.0.0.1 and
 * 127.0.0.2: Linux loopback answers all of 127/8, so a client proves its
 * address by binding to it), and small clients that speak real TLS to it.
 */
import { once } from 'node:events';
import https from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { Registry } from 'prom-client';
import type { z } from 'zod';
import { createSimulator, type Simulator, type SimulatorOptions } from '../../scripts/lab/ollama-sim.mjs';
import { limitsSchema } from '../../src/core/limits.js';
import { DEFAULT_POLICY, mergePolicy, type Policy } from '../../src/core/policy.js';
import { utcDay } from '../../src/core/rate.js';
import type { RequestRecord } from '../../src/core/request-record.js';
import { guardMetrics } from '../../src/guard/metrics.js';
import type { PeerSet } from '../../src/core/wire.js';
import { createGuard, type Guard, type GuardOptions } from '../../src/guard/server.js';
import { issueCertificate, type CaMaterial, type IssuedCert } from '../../src/pki/ca.js';
import { testCa } from './ca.js';
import { waitFor } from './wait.js';

export type Rec = Omit<RequestRecord, 'seq'>;

export interface PeerSpec {
  name: string;
  address: string;
  policy?: Partial<Policy>;
}

export interface EnvOptions {
  sim?: SimulatorOptions;
  limits?: z.input<typeof limitsSchema>;
  /** Default: alice at 127.0.0.1 and bob at 127.0.0.2, default policy. */
  peers?: PeerSpec[];
  logPrompts?: boolean;
  /** Another upstream than the simulator (a test's own fake Ollama); the simulator still runs. */
  upstream?: string;
  /** Also given every record the guard makes (env.records has them too). */
  record?: (r: Rec) => void;
  /** The guard's audit gate (audit.ts). */
  audit?: GuardOptions['audit'];
  /** Per-request leg times (src/guard/trace.ts). */
  trace?: boolean;
  /** Route to a pool of GPU hosts (src/guard/pool.ts) instead of the simulator. */
  pool?: GuardOptions['pool'];
  /** A pool member (src/guard/member.ts): only these router certificates may use it. */
  member?: GuardOptions['member'];
}

/** Who a client is: a peer's name, explicit TLS material, or no client certificate at all. */
export type Who = string | { cert: string; key: string } | null;

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export interface RequestOptions {
  method?: string;
  path: string;
  /** An object is sent as JSON. */
  body?: unknown;
  headers?: Record<string, string | number>;
  localAddress?: string;
}

export const DAY_MS = 86_400_000;
export const silentLog = { info: () => undefined, warn: () => undefined, error: () => undefined };

export interface GuardEnv {
  ca: CaMaterial;
  sim: Simulator;
  simPort: number;
  guard: Guard;
  port: number;
  registry: Registry;
  records: Rec[];
  /** Errors the guard logged (an exchange that threw). */
  errors: object[];
  certs: Map<string, IssuedCert>;
  specs: PeerSpec[];
  /** The peer set for these peers, minus `without`, with per-peer policy overrides. */
  peerSet(o?: { without?: string[]; policies?: Record<string, Partial<Policy>>; logPrompts?: boolean; version?: string }): PeerSet;
  tlsFor(who: Who): tls.ConnectionOptions;
  request(who: Who, o: RequestOptions): Promise<Reply>;
  /** A raw TLS connection to the guard, connected and handshaken. */
  rawTls(who: Who, localAddress?: string): Promise<tls.TLSSocket>;
  /**
   * Between tests: waits until the previous test's connections are closed,
   * then clears the simulator's log and the records, and sets `peers` if given.
   */
  reset(o?: { peers?: PeerSet; settleMs?: number }): Promise<void>;
  close(): Promise<void>;
}

export async function startEnv(o: EnvOptions = {}): Promise<GuardEnv> {
  const ca = testCa();
  const serverCert = issueCertificate(ca, { role: 'guard-server', commonName: 'guard', ipAddresses: ['127.0.0.1'], notAfter: new Date(Date.now() + 30 * DAY_MS) });
  const specs = o.peers ?? [
    { name: 'alice', address: '127.0.0.1' },
    { name: 'bob', address: '127.0.0.2' },
  ];
  const certs = new Map<string, IssuedCert>();
  for (const p of specs) {
    certs.set(p.name, issueCertificate(ca, { role: 'peer', commonName: p.name, ipAddresses: [p.address], notAfter: new Date(Date.now() + 30 * DAY_MS) }));
  }

  const sim = createSimulator({ tokenRate: 1000, tokens: 20, ...o.sim });
  sim.server.listen(0, '127.0.0.1');
  await once(sim.server, 'listening');
  const simPort = (sim.server.address() as AddressInfo).port;

  const registry = new Registry();
  const records: Rec[] = [];
  const errors: object[] = [];
  const guard = createGuard({
    tls: { key: serverCert.keyPem, cert: serverCert.certPem, ca: ca.certPem },
    limits: limitsSchema.parse(o.limits ?? {}),
    upstream: o.upstream ?? `http://127.0.0.1:${simPort}`,
    metrics: guardMetrics(registry),
    record: (r) => {
      records.push(r);
      o.record?.(r);
    },
    log: { ...silentLog, error: (obj: object) => errors.push(obj) },
    ...(o.audit ? { audit: o.audit } : {}),
    ...(o.trace ? { trace: true } : {}),
    ...(o.pool ? { pool: o.pool } : {}),
    ...(o.member ? { member: o.member } : {}),
  });
  guard.server.listen(0, '127.0.0.1');
  await once(guard.server, 'listening');
  const port = (guard.server.address() as AddressInfo).port;

  const peerSet: GuardEnv['peerSet'] = (s = {}) => ({
    version: s.version ?? String(Date.now()),
    peers: specs
      .filter((p) => !(s.without ?? []).includes(p.name))
      .map((p) => ({
        name: p.name,
        address: p.address,
        serial: certs.get(p.name)!.serial,
        expiresAt: null,
        policy: mergePolicy(DEFAULT_POLICY, { ...p.policy, ...s.policies?.[p.name] }),
      })),
    logPrompts: s.logPrompts ?? o.logPrompts ?? false,
    tokensToday: {},
    day: utcDay(Date.now()),
  });
  guard.setPeers(peerSet());

  const tlsFor = (who: Who): tls.ConnectionOptions => {
    if (who === null) return { ca: ca.certPem };
    if (typeof who === 'string') {
      const c = certs.get(who);
      if (!c) throw new Error(`no peer ${who}`);
      return { ca: ca.certPem, cert: c.certPem, key: c.keyPem };
    }
    return { ca: ca.certPem, ...who };
  };

  const sockets = new Set<tls.TLSSocket>();
  const request = (who: Who, r: RequestOptions): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const body = r.body === undefined ? undefined : typeof r.body === 'string' || Buffer.isBuffer(r.body) ? r.body : JSON.stringify(r.body);
      const headers: Record<string, string | number> = { ...r.headers };
      if (body !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
      // Node's client sends a DELETE body without any framing unless told its length.
      if (body !== undefined && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) headers['content-length'] = Buffer.byteLength(body);
      const req = https.request({
        host: '127.0.0.1', port, method: r.method ?? (body === undefined ? 'GET' : 'POST'), path: r.path, headers, agent: false,
        ...tlsFor(who), ...(r.localAddress ? { localAddress: r.localAddress } : {}),
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });

  const rawTls = async (who: Who, localAddress?: string): Promise<tls.TLSSocket> => {
    const s = tls.connect({ host: '127.0.0.1', port, ...tlsFor(who), ...(localAddress ? { localAddress } : {}) });
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    await once(s, 'secureConnect');
    return s;
  };

  return {
    ca, sim, simPort, guard, port, registry, records, errors, certs, specs, peerSet, tlsFor, request, rawTls,
    async reset(r = {}) {
      await waitFor(() => guard.connections() === 0, r.settleMs ?? 1000, 'connections of the previous test closed');
      if (r.peers) guard.setPeers(r.peers);
      sim.clear();
      records.length = 0;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await guard.close();
      sim.server.closeAllConnections();
      await new Promise((r) => sim.server.close(r));
    },
  };
}

/**
 * Waits for the n-th request record, then a little longer to see that no
 * other arrives with it; fails naming what did arrive.
 */
export async function exactRecords(env: Pick<GuardEnv, 'records'>, n = 1): Promise<Rec[]> {
  await waitFor(() => env.records.length >= n, 2000, `${n} record(s)`);
  await new Promise((r) => setTimeout(r, 20));
  if (env.records.length !== n) {
    throw new Error(`expected ${n} record(s), got ${JSON.stringify(env.records.map((r) => [r.status, r.refusal, r.method, r.path, r.peer]))}`);
  }
  return env.records;
}

/** Everything a raw socket receives until it closes (or `ms` pass: then `closed` is false). */
export function readUntilClose(s: tls.TLSSocket, ms: number): Promise<{ data: string; closed: boolean; afterMs: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let data = '';
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      resolve({ data, closed, afterMs: Date.now() - t0 });
    };
    const timer = setTimeout(() => done(false), ms);
    s.setEncoding('utf8');
    s.on('data', (c: string) => (data += c));
    s.on('error', () => undefined);
    if (s.destroyed) done(true);
    else s.once('close', () => done(true));
  });
}

/** Splits a raw HTTP/1.1 answer (Content-Length framed) into status, lower-cased headers and body. */
export function parseRaw(raw: string): { status: number; headers: Record<string, string>; body: string } {
  const end = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, end === -1 ? raw.length : end).split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status, headers, body: end === -1 ? '' : raw.slice(end + 4) };
}

export const ndjson = (text: string): Record<string, any>[] => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);

/** The body of an error answer, parsed, with the check that it is exactly {"error": string}. */
export function errorOf(r: { text: string } | { body: string }): string {
  const text = 'text' in r ? r.text : r.body;
  const parsed = JSON.parse(text) as unknown;
  if (typeof parsed !== 'object' || parsed === null || Object.keys(parsed).join() !== 'error' || typeof (parsed as { error: unknown }).error !== 'string') {
    throw new Error(`not an Ollama-style error body: ${text}`);
  }
  return (parsed as { error: string }).error;
}
