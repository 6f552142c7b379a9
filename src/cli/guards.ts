import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { parseCidr, intToIp, gatewayAddress } from '../core/ipv4.js';
import { parseListen } from '../core/limits.js';
import { WgoError, badInput } from '../errors.js';
import { openGateway } from '../gateway/context.js';
import type { Actor } from '../gateway/peer-service.js';
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
export async function addGuard(config: Config, name: string, o: { address: string; dns?: string[]; out: string; json?: boolean }, io: Io, who: Actor): Promise<void> {
  if (!config.sync) throw badInput('the gateway has no guard sync API: set "sync": {"listen": "IP:PORT"} in its config (an address the GPU host reaches), restart serve, then add the guard');
  // Checked before anything is issued: a guard name, once used, is never given out again.
  const dir = preflightDir(o.out);
  const files = guardFiles(dir);
  for (const f of Object.values(files)) if (existsSync(f)) throw new WgoError('CONFLICT', `${f} already exists; choose another --out directory`);
  const ctx = openGateway(config);
  try {
    const issued = ctx.guards.add({ name, address: o.address, dnsNames: o.dns ?? [] }, who);
    const net = parseCidr(config.subnet);
    const guardConfig = {
      name: issued.guard.name,
      listen: `${o.address.includes(':') ? `[${o.address}]` : o.address}:${config.ollamaPort}`,
      upstream: 'http://127.0.0.1:11434',
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
      ctx.guards.remove(issued.guard.name, { ...who, source: `${who.source} (undo: writing the guard files failed)` });
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
    emit(io, o.json, rows, (list) =>
      list.length === 0 ? 'no guards\n' : table([['NAME', 'ADDRESS', 'STATUS', 'LAST SEEN', 'FROM'], ...list.map((g) => [g.name, g.address, g.status, g.lastSeen ?? '-', g.lastSeenFrom ?? '-'])]));
  } finally {
    ctx.close();
  }
}

export function removeGuard(config: Config, name: string, o: { json?: boolean }, io: Io, who: Actor): void {
  const ctx = openGateway(config);
  try {
    const r = ctx.guards.remove(name, who);
    emit(io, o.json, { name: r.guard.name, status: 'removed', changed: r.changed }, (d) => `${d.name}: removed${d.changed ? '' : ' (unchanged)'}\n`);
  } finally {
    ctx.close();
  }
}

/** Where `wg-ollama guard` reads its config: --config, then WG_OLLAMA_GUARD_CONFIG, then /etc/wg-ollama/guard.json. */
export function guardConfigFile(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? (env.WG_OLLAMA_GUARD_CONFIG || '/etc/wg-ollama/guard.json');
}

export { parseListen };
