import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { parseListen } from '../core/limits.js';
import { certificateRepository } from '../db/certificates.js';
import type { RequestRecord } from '../core/request-record.js';
import type { CertRole } from '../db/certificates.js';
import { certificateInfo, issueCertificate } from '../pki/ca.js';
import { ensurePrivateDir, writeSecretFile } from '../system/files.js';
import { closeableServer } from '../system/sockets.js';
import { createMetricsServer, listen } from '../system/metrics-http.js';
import { guardMetrics } from '../guard/metrics.js';
import { createAuditTrail, type AuditTrail } from '../guard/audit.js';
import { createGuard, type GuardLog } from '../guard/server.js';
import { generateLeafKey } from '../gateway/ca-store.js';
import type { GatewayContext } from '../gateway/context.js';
import { localAuditSpool } from '../gateway/local-audit.js';
import { firewallMetrics, gatewayMetrics, type FirewallLayers } from '../gateway/metrics.js';
import { followPeerSet, peerSetSource } from '../gateway/peer-set.js';
import { changeSignal, createSyncApi } from '../gateway/sync-api.js';

/** Server certificates the gateway makes for itself are renewed this long before they expire. */
const RENEW_BEFORE_MS = 30 * 86_400_000;
const SERVER_CERT_MS = 825 * 86_400_000;
/** How often the single-box guard's budget takes today's figures from the database (other guards' records). */
const USAGE_REFRESH_MS = 2000;

/**
 * A server certificate of the gateway's own (sync API, single-box guard) in
 * <state>/tls: reused while it is from the current CA, names the same
 * addresses and is not close to expiry; otherwise issued afresh.
 */
export function ensureServerCert(ctx: GatewayContext, file: string, role: CertRole, commonName: string, ips: string[], dns: string[]): { cert: string; key: string } {
  const { ca } = ctx.ca.ensure();
  ensurePrivateDir(ctx.config.paths.tlsDir);
  const certFile = join(ctx.config.paths.tlsDir, `${file}.crt`);
  const keyFile = join(ctx.config.paths.tlsDir, `${file}.key`);
  const now = Date.now();
  if (existsSync(certFile) && existsSync(keyFile)) {
    const cert = readFileSync(certFile, 'utf8');
    const info = certificateInfo(cert);
    const same = (a: string[], b: string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));
    const key = readFileSync(keyFile, 'utf8');
    const x = new X509Certificate(cert);
    if (x.verify(new X509Certificate(ca.certPem).publicKey) && x.checkPrivateKey(createPrivateKey(key)) && same(info.ipAddresses, ips) && same(info.dnsNames, dns) && info.notAfter.getTime() - now > RENEW_BEFORE_MS) {
      return { cert, key };
    }
  }
  const key = generateLeafKey();
  const issued = issueCertificate(ca, { role, commonName, ipAddresses: ips, dnsNames: dns, notAfter: new Date(now + SERVER_CERT_MS), publicKeyPem: key.publicKeyPem });
  certificateRepository(ctx.db).insert({
    serial: issued.serial, role, peerId: null, guardId: null, commonName, notBefore: issued.notBefore.getTime(),
    notAfter: issued.notAfter.getTime(), issuedAt: now, certPem: issued.certPem,
  });
  writeSecretFile(keyFile, key.keyPem);
  writeSecretFile(certFile, issued.certPem);
  return { cert: issued.certPem, key: key.keyPem };
}

/**
 * What `serve` runs besides WireGuard: the guard sync API (two-box), the
 * guard itself (single-box, sharing the database) and /metrics + /healthz.
 * `changed()` is called by serve's change poll after every commit.
 */
export async function startGuardLink(ctx: GatewayContext, log: GuardLog, health: () => Record<string, unknown> & { ok: boolean }, firewall?: () => FirewallLayers) {
  const { config } = ctx;
  const { ca } = ctx.ca.ensure();
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'wgo_process_' });
  const gm = gatewayMetrics(registry, ctx.db);
  if (firewall) firewallMetrics(registry, firewall);
  const source = peerSetSource(ctx.db, config);
  const changes = changeSignal();
  const closers: (() => Promise<void> | void)[] = [];

  let localGuard: ReturnType<typeof createGuard> | null = null;
  let flushLocal = (): void => undefined;
  let localAudit: AuditTrail | null = null;
  try {
    if (config.sync) {
      const addr = parseListen(config.sync.listen)!;
      const tls = ensureServerCert(ctx, 'sync', 'gateway-server', 'wg-ollama gateway', [addr.host], []);
      const api = createSyncApi({ db: ctx.db, tls: { ...tls, ca: ca.certPem }, source, changes, onRecords: (_g, records) => gm.records(records) });
      const closeable = closeableServer(api);
      await listen(api, addr.host, addr.port, 'guard sync API (config sync.listen)');
      closers.push(closeable.close);
      log.info({ event: 'sync', listen: config.sync.listen }, 'guard sync API listening');
    }

    if (config.guard) {
      const g = config.guard;
      const addr = parseListen(g.listen)!;
      const tls = ensureServerCert(ctx, 'guard', 'guard-server', 'wg-ollama guard (local)', [addr.host], g.dnsNames);
      let stored = (_records: RequestRecord[]): void => undefined;
      const metrics = guardMetrics(registry);
      // Records go to the database; while they cannot be written, guard.auditFailure decides (guard/audit.ts).
      const audit = createAuditTrail({
        spool: localAuditSpool(ctx.db), mode: g.auditFailure, metrics, log,
        onWritten: (records) => {
          stored(records);
          gm.records(records);
        },
      });
      localAudit = audit;
      flushLocal = () => void audit.flush();
      localGuard = createGuard({ tls: { ...tls, ca: ca.certPem }, limits: g.limits, upstream: g.upstream, metrics, record: audit.record, log, audit });
      localGuard.setPeers(source.load(Date.now()));
      const guard = localGuard;
      // The daily budget (guard/budget.ts): records are in the database once written, so the figures
      // read from it (with the highest 'local' seq they include) are all a restart needs; records
      // written since the last read count through spooled() until the next one includes them.
      stored = guard.budget.spooled;
      const refreshUsage = (): void => {
        try {
          guard.budget.usage(source.usage(Date.now(), 'local', ''));
        } catch (e) {
          log.error({ event: 'budget', err: (e as Error).message }, 'cannot read today\'s token use; retrying');
        }
      };
      refreshUsage();
      const usageTimer = setInterval(refreshUsage, USAGE_REFRESH_MS);
      usageTimer.unref();
      closers.push(() => clearInterval(usageTimer));
      await listen(localGuard.server, addr.host, addr.port, 'guard (config guard.listen)');
      closers.push(async () => {
        await guard.close();
        audit.flush();
        audit.stop();
      });
      log.info({ event: 'guard', listen: g.listen, upstream: g.upstream }, 'guard listening (single-box)');
    }

    if (config.metricsListen) {
      const m = parseListen(config.metricsListen)!;
      // Not healthy while the single-box guard cannot record requests, in either auditFailure mode.
      const withAudit = (): Record<string, unknown> & { ok: boolean } => {
        const h = health();
        if (!localAudit) return h;
        const a = localAudit.state();
        return { ...h, ok: h.ok && a.ok, audit: { ok: a.ok, mode: a.mode, buffered: a.buffered, lastError: a.lastError } };
      };
      const server = createMetricsServer(registry, withAudit);
      await listen(server, m.host, m.port, 'metrics (config metricsListen)');
      closers.push(() => void server.close());
    }

  } catch (e) {
    // Nothing half-started stays behind: close what did start.
    for (const c of closers.reverse()) await c();
    throw e;
  }

  let version = source.version();
  const follow = localGuard
    ? followPeerSet(source, localGuard.setPeers, (e) => log.error({ event: 'peers', err: e.message }, 'cannot load the peer set for the local guard; retrying at the next change poll'))
    : () => undefined;
  return {
    /** The database changed: wake long-polls, and give the local guard the new peer set. */
    changed(): void {
      follow();
      const v = source.version();
      if (v === version) return;
      version = v;
      changes.notify();
    },
    flush: (): void => flushLocal(),
    async close(): Promise<void> {
      for (const c of closers.reverse()) await c();
    },
  };
}
