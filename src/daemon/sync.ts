import type { EventLog } from '../core/log-events.js';
import { parseListen } from '../core/limits.js';
import type { RequestRecord } from '../core/request-record.js';
import type { GatewayContext } from '../gateway/context.js';
import type { PeerSetSource } from '../gateway/peer-set.js';
import { ensureServerCert } from '../gateway/server-cert.js';
import { createSyncApi, type ChangeSignal } from '../gateway/sync-api.js';
import { listen } from '../system/metrics-http.js';
import { closeableServer } from '../system/sockets.js';

/**
 * Two-box mode (config sync): the guard sync API on sync.listen, with a server
 * certificate of the gateway's own. Returns null when config.sync is off.
 */
export async function startSyncApi(ctx: GatewayContext, o: {
  caPem: string;
  source: PeerSetSource;
  changes: ChangeSignal;
  onRecords(guard: string, records: RequestRecord[]): void;
  log: EventLog;
}): Promise<{ close(): Promise<void> } | null> {
  const sync = ctx.config.sync;
  if (!sync) return null;
  const addr = parseListen(sync.listen)!;
  const tls = ensureServerCert(ctx, 'sync', 'gateway-server', 'wg-ollama gateway', [addr.host], []);
  const api = createSyncApi({ db: ctx.db, tls: { ...tls, ca: o.caPem }, source: o.source, changes: o.changes, onRecords: o.onRecords,
    onPoolReport: (router, report) => void ctx.guards.report(router, report) });
  const closeable = closeableServer(api);
  await listen(api, addr.host, addr.port, 'guard sync API (config sync.listen)');
  o.log.info({ event: 'sync-api.start', listen: sync.listen }, 'guard sync API listening');
  return closeable;
}
