import { Registry, collectDefaultMetrics } from 'prom-client';
import { parseListen } from '../core/limits.js';
import type { Db } from '../db/open.js';
import { firewallMetrics, gatewayMetrics, type FirewallLayers } from '../gateway/metrics.js';
import type { AuditState } from '../guard/audit.js';
import { createMetricsServer, listen } from '../system/metrics-http.js';

export type Health = Record<string, unknown> & { ok: boolean };

/**
 * The daemon's one metrics registry: process metrics, the gateway's (records,
 * peers) and the firewall layers; the single-box guard adds its own to it.
 */
export function daemonMetrics(db: Db, firewall: () => FirewallLayers) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'wgo_process_' });
  const gateway = gatewayMetrics(registry, db);
  firewallMetrics(registry, firewall);
  return { registry, gateway };
}

/**
 * /metrics and /healthz on metricsListen (plain HTTP). Not healthy while the
 * single-box guard cannot record requests, in either auditFailure mode.
 * Returns null when metricsListen is off.
 */
export async function startMetricsServer(metricsListen: string | null, registry: Registry, health: () => Health, audit?: () => AuditState): Promise<{ close(): void } | null> {
  if (!metricsListen) return null;
  const m = parseListen(metricsListen)!;
  const withAudit = (): Health => {
    const h = health();
    if (!audit) return h;
    const a = audit();
    return { ...h, ok: h.ok && a.ok, audit: { ok: a.ok, mode: a.mode, buffered: a.buffered, lastError: a.lastError } };
  };
  const server = createMetricsServer(registry, withAudit);
  await listen(server, m.host, m.port, 'metrics (config metricsListen)');
  return { close: () => void server.close() };
}
