import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { parseCidr, intToIp, gatewayAddress } from '../core/ipv4.js';
import { parseListen } from '../core/limits.js';
import { WgoError, badInput } from '../errors.js';
import { openGateway } from '../gateway/context.js';
import type { Actor } from '../gateway/peer-service.js';
import type { PoolRole } from '../db/certificates.js';
import { queryService } from '../gateway/queries.js';
import { preflightDir } from './deliver.js';
import { emit, table, type Io } from './output.js';

/** The files `add-guard --out DIR` writes; `guard --config DIR/guard.json` needs nothing else. */
export const guardFiles = (dir: string) => ({
  config: join(dir, 'guard.json'),
  ca: join(dir, 'ca.crt'),
  cert: join(dir, 'guard.crt'),
  key: join(dir, 'guard.key'),
  syncCert: join(dir, 'sync.crt'),
  syncKey: join(dir, 'sync.key'),
});

/**
 * `wg-ollama add-guard NAME --address IP [--dns NAME…] --out DIR`: issues the
 * guard's server and sync certificates and writes a complete guard directory.
 * Checked before anything is issued; if writing fails the guard is removed again.
 */
export async function addGuard(config: Config, name: string, o: { address: string; dns?: string[]; out: string; json?: boolean; router?: boolean; member?: boolean; parallel?: string }, io: Io, who: Actor): Promise<void> {
  if (!config.sync) throw badInput('the gateway has no guard sync API: set "sync": {"listen": "IP:PORT"} in its config (an address the GPU host reaches), restart serve, then add the guard');
  const poolRole = poolRoleOf(config, o);
  const parallel = o.parallel === undefined ? undefined : parallelArg(o.parallel);
  // Checked before anything is issued: a guard name, once used, is never given out again.
  const dir = preflightDir(o.out);
  const files = guardFiles(dir);
  for (const f of Object.values(files)) if (existsSync(f)) throw new WgoError('CONFLICT', `${f} already exists; choose another --out directory`);
  const ctx = openGateway(config);
  try {
    const issued = ctx.guards.add({ name, address: o.address, dnsNames: o.dns ?? [], poolRole, ...(parallel !== undefined ? { parallel } : {}) }, who);
    const net = parseCidr(config.subnet);
    const guardConfig = {
      name: issued.guard.name,
      listen: `${o.address.includes(':') ? `[${o.address}]` : o.address}:${config.ollamaPort}`,
      // The router forwards to the pool's members (from the peer set), not to an Ollama of its own.
      ...(poolRole === 'router' ? { pool: { role: 'router' } } : { upstream: 'http://127.0.0.1:11434' }),
      ...(poolRole === 'member' ? { pool: { role: 'member' } } : {}),
      gatewayUrl: issued.syncUrl,
      tunnelSubnet: config.subnet,
      gatewayTunnelAddress: intToIp(gatewayAddress(net)),
      tls: { ca: 'ca.crt', cert: 'guard.crt', key: 'guard.key', syncCert: 'sync.crt', syncKey: 'sync.key' },
    };
    const written: string[] = [];
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const items: [string, string, number][] = [
        [files.config, JSON.stringify(guardConfig, null, 2) + '\n', 0o600],
        [files.ca, issued.caCertificate, 0o644],
        [files.cert, issued.server.certPem, 0o644],
        [files.key, issued.server.keyPem, 0o600],
        [files.syncCert, issued.client.certPem, 0o644],
        [files.syncKey, issued.client.keyPem, 0o600],
      ];
      for (const [f, data, mode] of items) {
        writeFileSync(f, data, { mode, flag: 'wx' });
        written.push(f);
      }
    } catch (e) {
      for (const f of written) rmSync(f, { force: true });
      // Forced: a member that never ran is not drained, and must not stay half-added.
      ctx.guards.remove(issued.guard.name, { ...who, source: `${who.source} (undo: writing the guard files failed)` }, { force: true });
      throw new WgoError('EXEC_FAILED', `could not write the guard files to ${dir}: ${(e as Error).message}; the guard was removed again (its name stays taken: use another)`, { cause: e });
    }
    const data = { name: issued.guard.name, address: o.address, dnsNames: issued.guard.dnsNames, syncUrl: issued.syncUrl, config: files.config, files: written, serverCertificate: issued.server.serial, syncCertificate: issued.client.serial };
    emit(io, o.json, data, (d) =>
      `guard ${d.name} at ${d.address}: wrote ${d.files.join(', ')}\n` +
      `copy ${dir} to the GPU host and run: wg-ollama guard --config ${join('<dir>', 'guard.json')}\n`);
  } finally {
    ctx.close();
  }
}

export function listGuards(config: Config, o: { json?: boolean }, io: Io): void {
  const ctx = openGateway(config);
  try {
    const rows = queryService(ctx).guards();
    emit(io, o.json, rows, (list) => {
      if (list.length === 0) return 'no guards\n';
      const head = table([['NAME', 'ADDRESS', 'ROLE', 'STATUS', 'LAST SEEN', 'FROM'], ...list.map((g) => [g.name, g.address, g.poolRole, g.status, g.lastSeen ?? '-', g.lastSeenFrom ?? '-'])]);
      const members = list.filter((g) => g.poolRole === 'member' && g.status === 'active');
      if (members.length === 0) return head;
      // The router's view of each GPU host, as it last reported it.
      return `${head}\nGPU hosts (as the router last reported them):\n` + table([
        ['HOST', 'HEALTH', 'DRAINING', 'IN FLIGHT', 'PARALLEL', 'QUEUED', 'MODELS', 'LOADED', 'REPORTED'],
        ...members.map((g) => {
          const h = g.host;
          return [g.name, h ? `${h.health}${g.reportStale ? ' (stale)' : ''}` : 'no report', g.draining ? 'yes' : 'no', h ? String(h.inFlight) : '-', String(g.parallel), h ? String(h.queued) : '-', h ? h.models.join(',') || '-' : '-', h ? h.loaded.join(',') || '-' : '-', g.reportedAt ?? '-'];
        }),
      ]);
    });
  } finally {
    ctx.close();
  }
}

export function removeGuard(config: Config, name: string, o: { json?: boolean; force?: boolean }, io: Io, who: Actor): void {
  const ctx = openGateway(config);
  try {
    const r = ctx.guards.remove(name, who, { force: o.force === true });
    emit(io, o.json, { name: r.guard.name, status: 'removed', changed: r.changed }, (d) => `${d.name}: removed${d.changed ? '' : ' (unchanged)'}\n`);
  } finally {
    ctx.close();
  }
}

/** drain-guard / undrain-guard NAME. */
export function drainGuard(config: Config, name: string, draining: boolean, o: { json?: boolean }, io: Io, who: Actor): void {
  const ctx = openGateway(config);
  try {
    const r = ctx.guards.setDraining(name, draining, who);
    emit(io, o.json, { name: r.guard.name, draining: r.guard.draining, changed: r.changed }, (d) =>
      `${d.name}: ${d.draining ? 'draining (no new requests; the running ones finish; list-guards shows what it still runs)' : 'taking requests'}${d.changed ? '' : ' (unchanged)'}\n`);
  } finally {
    ctx.close();
  }
}

/** set-guard NAME --parallel N. */
export function setGuard(config: Config, name: string, o: { parallel: string; json?: boolean }, io: Io, who: Actor): void {
  const parallel = parallelArg(o.parallel);
  const ctx = openGateway(config);
  try {
    const r = ctx.guards.setParallel(name, parallel, who);
    emit(io, o.json, { name: r.guard.name, parallel: r.guard.parallel, changed: r.changed }, (d) => `${d.name}: parallel ${d.parallel}${d.changed ? '' : ' (unchanged)'}\n`);
  } finally {
    ctx.close();
  }
}

function parallelArg(v: string): number {
  if (!/^[0-9]{1,4}$/.test(v)) throw badInput(`--parallel "${v}" is not a whole number (the host's OLLAMA_NUM_PARALLEL, 1 to 256)`);
  return Number(v);
}

/** --router / --member, checked against the gateway's config before anything is issued. */
function poolRoleOf(config: Config, o: { address: string; router?: boolean; member?: boolean; parallel?: string }): PoolRole {
  if (o.router && o.member) throw badInput('--router and --member exclude each other: the router is where peers connect, members are the GPU hosts behind it');
  if (o.parallel !== undefined && !o.member) throw badInput('--parallel is for a pool member (add it with --member)');
  if (o.router) {
    if (config.guard) throw badInput('single-box mode (the config\'s "guard" section) runs its guard inside serve at ollamaHost; a pool router runs as its own "wg-ollama guard" there: remove the guard section first');
    if (o.address !== config.ollamaHost) throw badInput(`--router: the router is what peers reach, at ollamaHost ${config.ollamaHost}; use --address ${config.ollamaHost}`);
    return 'router';
  }
  if (o.member) {
    if (config.guard) throw badInput('single-box mode (the config\'s "guard" section) has no pool router, so a member would serve no one: a pool needs "wg-ollama guard" at ollamaHost, added with --router');
    if (o.address === config.ollamaHost) throw badInput(`--member: ${o.address} is ollamaHost, where peers connect (the router's address); a GPU host of the pool has its own address`);
    return 'member';
  }
  return 'none';
}

/** Where `wg-ollama guard` reads its config: --config, then WG_OLLAMA_GUARD_CONFIG, then /etc/wg-ollama/guard.json. */
export function guardConfigFile(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? (env.WG_OLLAMA_GUARD_CONFIG || '/etc/wg-ollama/guard.json');
}

export { parseListen };
