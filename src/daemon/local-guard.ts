import type { Registry } from 'prom-client';
import { parseListen } from '../core/limits.js';
import type { RequestRecord } from '../core/request-record.js';
import type { GatewayContext } from '../gateway/context.js';
import { localAuditSpool } from '../gateway/local-audit.js';
import { followPeerSet, type PeerSetSource } from '../gateway/peer-set.js';
import { ensureServerCert } from '../gateway/server-cert.js';
import { createAuditTrail, type AuditState } from '../guard/audit.js';
import { guardMetrics } from '../guard/metrics.js';
import { createGuard, type GuardLog } from '../guard/server.js';
import { listen } from '../system/metrics-http.js';

/** How often the single-box guard's budget takes today's figures from the database (other guards' records). */
const USAGE_REFRESH_MS = 2000;

export interface LocalGuard {
  /** The database changed: give the guard the new peer set (a failed load is retried at the next call). */
  follow(): void;
  /** Whether requests are being recorded (for /healthz). */
  audit(): AuditState;
  close(): Promise<void>;
}

/**
 * Single-box mode (config guard): the guard in the daemon's process, sharing
 * the database. Its records are written straight to the database through the
 * audit trail; its daily budget reads today's figures from there. Returns
 * null when config.guard is off. Nothing stays behind when it cannot listen.
 */
export async function startLocalGuard(ctx: GatewayContext, o: {
  caPem: string;
  registry: Registry;
  source: PeerSetSource;
  /** Records the audit trail has written (gateway metrics). */
  onWritten(records: RequestRecord[]): void;
  log: GuardLog;
}): Promise<LocalGuard | null> {
  const g = ctx.config.guard;
  if (!g) return null;
  const { source, log } = o;
  const addr = parseListen(g.listen)!;
  const tls = ensureServerCert(ctx, 'guard', 'guard-server', 'wg-ollama guard (local)', [addr.host], g.dnsNames);
  let stored = (_records: RequestRecord[]): void => undefined;
  const metrics = guardMetrics(o.registry);
  // Records go to the database; while they cannot be written, guard.auditFailure decides (guard/audit.ts).
  const audit = createAuditTrail({
    spool: localAuditSpool(ctx.db), mode: g.auditFailure, metrics, log,
    onWritten: (records) => {
      stored(records);
      o.onWritten(records);
    },
  });
  const guard = createGuard({ tls: { ...tls, ca: o.caPem }, limits: g.limits, upstream: g.upstream, metrics, record: audit.record, log, audit });
  guard.setPeers(source.load(Date.now()));
  // The daily budget (guard/budget.ts): records are in the database once written, so the figures
  // read from it (with the highest 'local' seq they include) are all a restart needs; records
  // written since the last read count through spooled() until the next one includes them.
  stored = guard.budget.spooled;
  const refreshUsage = (): void => {
    try {
      guard.budget.usage(source.usage(Date.now(), 'local', ''));
    } catch (e) {
      log.error({ event: 'budget.failed', err: (e as Error).message }, 'cannot read today\'s token use; retrying');
    }
  };
  refreshUsage();
  const usageTimer = setInterval(refreshUsage, USAGE_REFRESH_MS);
  usageTimer.unref();
  try {
    await listen(guard.server, addr.host, addr.port, 'guard (config guard.listen)');
  } catch (e) {
    clearInterval(usageTimer);
    throw e;
  }
  log.info({ event: 'local-guard.start', listen: g.listen, upstream: g.upstream }, 'guard listening (single-box)');
  return {
    follow: followPeerSet(source, guard.setPeers, (e) => log.error({ event: 'local-guard.peers-failed', err: e.message }, 'cannot load the peer set for the local guard; retrying at the next change poll')),
    audit: () => audit.state(),
    async close(): Promise<void> {
      await guard.close();
      await audit.flush();
      await audit.stop();
      clearInterval(usageTimer);
    },
  };
}
