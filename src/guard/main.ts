import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { parseListen } from '../core/limits.js';
import { utcDay } from '../core/rate.js';
import type { PeerSet } from '../core/wire.js';
import { WgoError } from '../errors.js';
import { ensurePrivateDir } from '../system/files.js';
import { createMetricsServer, listen } from '../system/metrics-http.js';
import type { GuardConfig } from './config.js';
import { createAuditTrail } from './audit.js';
import { guardMetrics, poolMetrics, spoolMetrics } from './metrics.js';
import { poolReport, poolRole } from './pool-role.js';
import { createGuard, type GuardLog } from './server.js';
import { openSpool } from './spool.js';
import { startSpoolThread } from './spool-thread.js';
import { startSyncClient } from './sync-client.js';
import { onStopSignal } from '../system/signals.js';

function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new WgoError('CONFIG_INVALID', `cannot read the ${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * `wg-ollama guard`: the guard on a GPU host. Enforces the last peer set it
 * has (from the spool at start) until the gateway sends a newer one; spools
 * request records and pushes them. Resolves after SIGTERM/SIGINT, once the
 * last records are spooled.
 */
export async function runGuard(config: GuardConfig, log: GuardLog): Promise<void> {
  const tls = { ca: readPem(config.tls.ca, 'CA certificate'), cert: readPem(config.tls.cert, 'server certificate'), key: readPem(config.tls.key, 'server key') };
  const syncTls = { ca: tls.ca, cert: readPem(config.tls.syncCert, 'sync certificate'), key: readPem(config.tls.syncKey, 'sync key') };
  const addr = parseListen(config.listen)!;
  ensurePrivateDir(config.stateDir);
  const spoolPath = join(config.stateDir, 'spool.db');
  // Opened (made, rebuilt) here; reads stay on this connection, every write goes to the spool's
  // own thread, so no commit's fsync blocks the event loop that serves requests (issue 13).
  const spool = openSpool(spoolPath, { maxBytes: config.spool.maxBytes });
  const writer = startSpoolThread(spoolPath, { maxBytes: config.spool.maxBytes });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'wgo_guard_process_' });
  const metrics = guardMetrics(registry);
  spoolMetrics(registry, () => spool.size());

  let sync: ReturnType<typeof startSyncClient> | null = null;
  /** Records reaching the spool go to the budget's ledger (set once the guard exists). */
  let onSpooled: (records: ReturnType<typeof spool.append>) => void = () => undefined;
  // Request records go to the spool; while they cannot be written, auditFailure decides (audit.ts).
  const audit = createAuditTrail({
    spool: writer, mode: config.auditFailure, metrics, log,
    onWritten: (records) => {
      onSpooled(records);
      sync?.kick();
    },
  });
  // A pool router or member (docs/gpu-pool.md) follows the pool in each peer set; a guard on its own ignores it.
  const role = poolRole(config, syncTls, log);
  const guard = createGuard({ tls, limits: config.limits, upstream: config.upstream, metrics, record: audit.record, log, audit, ...role.guardOptions });
  onSpooled = guard.budget.spooled;
  const applySet = (set: PeerSet): void => {
    // Before setPeers: its check of open connections keeps the router's (a member) only while it is still one.
    role.apply(set, guard.pool);
    guard.setPeers(set);
  };
  if (guard.pool) {
    poolMetrics(registry, guard.pool);
    void guard.pool.start();
  }
  // A saved set that does not fit this release is not enforced: nobody gets in until the gateway answers (its first answer is the whole set).
  let cached: PeerSet | null = null;
  try {
    cached = spool.loadPeerSet();
  } catch (e) {
    log.error({ event: 'peers.cache-unreadable', err: (e as Error).message }, 'cannot read the peer set saved at the last sync; enforcing none until the gateway answers');
  }
  if (cached) {
    applySet(cached);
    log.info({ event: 'peers.cached', version: cached.version, peers: cached.peers.length }, 'enforcing the peer set saved at the last sync');
  }
  // Today's spending survives a restart: the gateway's last figures and this guard's records it did not have then.
  guard.budget.restore(spool.charges(Date.parse(`${utcDay(Date.now())}T00:00:00Z`)), spool.loadUsage());
  sync = startSyncClient({
    gatewayUrl: config.gatewayUrl,
    tls: syncTls,
    spool: { pending: spool.pending, count: spool.count, id: spool.id, loadPeerSet: spool.loadPeerSet, ack: writer.ack, saveUsage: writer.saveUsage, savePeerSet: writer.savePeerSet },
    log,
    onUsage: guard.budget.usage,
    onSpoolError: (e) => audit.failed(e, 'the peer set'),
    ...(guard.pool ? { poolReport: () => poolReport(guard.pool!) } : {}),
    onPeerSet: (set) => {
      applySet(set);
      log.info({ event: 'peers.updated', version: set.version, peers: set.peers.length }, 'peer set updated');
    },
  });

  await listen(guard.server, addr.host, addr.port, 'guard (guard.json listen)');
  const metricsServer = config.metricsListen
    ? createMetricsServer(registry, () => {
        const s = sync!.state();
        const a = audit.state();
        // Not healthy while records cannot be written, in either auditFailure mode: someone must free the disk.
        return {
          ok: guard.peers().version !== '' && a.ok, name: config.name, peersVersion: guard.peers().version, peers: guard.peers().peers.length,
          gateway: s.connected ? 'connected' : 'unreachable', spooled: s.pending, lastError: a.lastError ?? s.lastError,
          audit: { ok: a.ok, mode: a.mode, buffered: a.buffered },
          ...(guard.pool ? { pool: { hosts: guard.pool.status().map((h) => ({ name: h.name, health: h.health, draining: h.draining, inFlight: h.inFlight, queued: h.queued })), queued: guard.pool.queued() } } : {}),
          ...(config.pool?.role === 'member' ? { pool: { role: 'member', routers: role.routers() } } : {}),
        };
      })
    : null;
  if (metricsServer) {
    const m = parseListen(config.metricsListen!)!;
    await listen(metricsServer, m.host, m.port, 'metrics (guard.json metricsListen)');
  }
  log.info({ event: 'guard.start', listen: config.listen, upstream: config.pool?.role === 'router' ? 'pool' : config.upstream, gateway: config.gatewayUrl, pool: config.pool?.role ?? null }, 'guard serving');

  let stopped = (): void => undefined;
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ event: 'guard.stop', signal }, 'stopping guard');
      void (async () => {
        metricsServer?.close();
        await guard.close();
        await audit.flush();
        await audit.stop();
        await sync!.stop();
        await writer.close();
        spool.close();
        resolve();
      })();
    };
    stopped = onStopSignal(stop);
  });
  stopped();
}
