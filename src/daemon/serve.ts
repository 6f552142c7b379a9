import type { EventLog } from '../core/log-events.js';
import { statSync } from 'node:fs';
import type { Config } from '../config.js';
import { startAdminUi } from '../admin/server.js';
import { auditRepository } from '../db/audit.js';
import { peerRepository } from '../db/peers.js';
import { WgoError } from '../errors.js';
import { createConntrack } from '../system/conntrack.js';
import { execRunner, type Runner } from '../system/exec.js';
import { onStopSignal } from '../system/signals.js';
import { createFirewall } from '../system/firewall.js';
import { createIngress } from '../system/ingress.js';
import { enableIpForwarding, ipForwarding } from '../system/sysctl.js';
import { createWireguard } from '../system/wireguard.js';
import { createDesiredStore, openGateway, type GatewayContext } from '../gateway/context.js';
import { withoutDenied } from '../core/denials.js';
import { saveDenials } from '../gateway/denials.js';
import { tokenService } from '../gateway/token-service.js';
import { listenControl } from '../gateway/control.js';
import { coverConfigNames } from '../gateway/ca-reissue.js';
import { createMonitor } from '../gateway/monitor.js';
import type { FirewallLayers } from '../gateway/metrics.js';
import { peerSetSource } from '../gateway/peer-set.js';
import { createReconciler, type ReconcileResult } from '../gateway/reconciler.js';
import { retentionService } from '../gateway/retention.js';
import { retentionMetrics } from '../gateway/retention-metrics.js';
import { retentionPolicy } from '../core/retention.js';
import { changeSignal } from '../gateway/sync-api.js';
import { startLocalGuard } from './local-guard.js';
import { daemonMetrics, startMetricsServer } from './metrics.js';
import { startSyncApi } from './sync.js';
import { createTeardown, type Teardown } from './teardown.js';

/** How often the daemon looks for commits made by other processes (PRAGMA data_version). */
const CHANGE_POLL_MS = 25;
/** Retry delay after a reconcile that reported errors. */
const RETRY_MS = 1000;
/** How often pending denials (gateway/denials.ts) are tried against the database. */
const DENIAL_SAVE_MS = 1000;
/** Log retention runs this long after start, then at this interval. */
const RETENTION_FIRST_MS = 10_000;
const RETENTION_INTERVAL_MS = 3_600_000;

/**
 * `wg-ollama serve`: reconcile at start, on every change, on expiry and
 * periodically; monitor connections; answer the control socket; run what the
 * config turns on besides WireGuard (guard sync API, single-box guard,
 * /metrics + /healthz, admin UI). Resolves on SIGTERM/SIGINT after a clean
 * stop; a start-up that fails part-way takes the same way down (teardown.ts)
 * and throws. Firewall and interface are left as they are (closed to
 * everything but active peers).
 */
export async function serve(config: Config, log: EventLog, run: Runner = execRunner): Promise<void> {
  const ctx = openGateway(config);
  const down = createTeardown(() => ctx.close());
  try {
    await start(ctx, log, run, down);
  } catch (e) {
    // Exit rather than run half a daemon; the firewall stays as it is (closed to all but active peers).
    await down.run();
    throw e;
  }
  let off = (): void => undefined;
  await new Promise<void>((resolve) => {
    off = onStopSignal((signal) => {
      if (down.stopping) return;
      log.info({ event: 'serve.stop', signal }, 'stopping; firewall stays closed');
      void down.run().finally(resolve);
    });
  });
  off();
}

/** Everything serve starts, each part registered with `down` as soon as it runs. */
async function start(ctx: GatewayContext, log: EventLog, run: Runner, down: Teardown): Promise<void> {
  const { config } = ctx;
  const caNames = coverConfigNames({ db: ctx.db, config, ca: ctx.ca }, { actor: 'serve', source: 'config' });
  if (caNames.unconstrained) log.warn({ event: 'ca.unconstrained' }, 'the CA has no name constraints (it can sign for any name): run "wg-ollama reissue-ca", then re-import ca.crt on devices and guards');
  if (caNames.reissued.length) log.warn({ event: 'ca.reissued', permitted: caNames.reissued }, 'CA certificate re-issued (same key) to permit names the config added: re-import ca.crt on devices and guards that need them');
  // A config whose default policy no longer allows API tokens takes them away for good.
  const tokensPruned = tokenService({ db: ctx.db, config }).prune({ actor: 'serve', source: 'config' });
  if (tokensPruned.length) log.info({ event: 'tokens.pruned', peers: tokensPruned }, 'API tokens removed: the default policy no longer allows them');
  const wg = createWireguard(run, { tmpDir: config.stateDir });
  const fw = createFirewall(run);
  const tc = createIngress(run);
  const startedAt = Date.now();

  if (!ipForwarding()) {
    if (!config.manageForwarding) {
      log.warn({ event: 'forwarding.off' }, 'net.ipv4.ip_forward is off: peers cannot reach the Ollama host');
    } else {
      try {
        enableIpForwarding();
        log.info({ event: 'forwarding.enabled' }, 'enabled net.ipv4.ip_forward');
      } catch (e) {
        throw new WgoError('EXEC_FAILED', `cannot enable net.ipv4.ip_forward (${(e as Error).message}); set it in /etc/sysctl.d`);
      }
    }
  }

  // Changes by other processes (data_version) and by this one (total_changes), as one number.
  const totalChanges = ctx.db.prepare('SELECT total_changes()').pluck();
  const dataVersion = (): number =>
    (ctx.db.pragma('data_version', { simple: true }) as number) * 1e9 + (totalChanges.get() as number);
  const store = createDesiredStore(ctx, (msg) => log.error({ event: 'desired.failed' }, msg), Date.now, dataVersion);
  // Peers a revoke or disable names that a full disk kept out of the database stay out of the
  // kernel (and every run is a full one) until the denial is saved (gateway/denials.ts).
  const reconciler = createReconciler({
    loadDesired: () => withoutDenied(store.full(), ctx.denials.deniedIds()),
    loadChanges: () => (ctx.denials.deniedIds().size ? null : store.changes()),
    wg,
    fw,
    tc,
    conntrack: createConntrack(run),
    privateKey: ctx.privateKey,
    privateKeyFile: config.paths.serverKey,
    wireguard: config.wireguard,
    wireguardGo: config.wireguardGo,
    log,
    version: dataVersion,
  });
  down.drain(() => reconciler.idle());
  const peers = peerRepository(ctx.db);
  const audit = auditRepository(ctx.db);
  let last: ReconcileResult | null = null;
  const layers: FirewallLayers = { iptables: null, tc: null };
  let lastAt = 0;
  let expiryTimer: NodeJS.Timeout | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  down.halt(() => {
    clearTimeout(expiryTimer);
    clearTimeout(retryTimer);
  });

  /** `changes` after a commit (the fast path), `full` for start, drift repair, expiry and retries. */
  const reconcile = async (mode: 'full' | 'changes' = 'full'): Promise<ReconcileResult> => {
    // Peers expiring after this moment may have been applied as live: the timer must cover them.
    const requestedAt = Date.now();
    const res = await reconciler.request(mode);
    last = res;
    if (res.mode === 'full') {
      layers.iptables = !res.errors.some((e) => e.startsWith('firewall:'));
      if (res.barrier !== null) layers.tc = res.barrier !== 'failed';
    }
    lastAt = Date.now();
    if (down.stopping) return res;
    try {
      const now = Date.now();
      for (const p of peers.newlyExpired(now)) {
        ctx.db.transaction(() => {
          peers.noteExpiry(p.id, now);
          audit.record({ actor: 'system', source: 'serve', action: 'peer.expire', target: p.name }, now);
        })();
        log.info({ event: 'peer.expired', peer: p.name }, 'peer expired');
      }
      clearTimeout(expiryTimer);
      const next = peers.nextExpiry(requestedAt - 1);
      if (next !== null) expiryTimer = setTimeout(() => void reconcile(), Math.min(Math.max(0, next - now + 5), 2 ** 31 - 1));
    } catch (e) {
      res.ok = false;
      log.error({ event: 'expiry.failed', err: (e as Error).message }, 'expiry bookkeeping failed');
    }
    if (!res.ok && !retryTimer) {
      retryTimer = setTimeout(() => {
        retryTimer = undefined;
        void reconcile();
      }, RETRY_MS);
    }
    return res;
  };

  const control = await listenControl(config.paths.socket, async (op) => {
    if (op === 'ping') return { pid: process.pid };
    if (op === 'reconcile') return reconcile('changes');
    // A full run (kernel read back and repaired), e.g. after changing rules by hand.
    if (op === 'reconcile-full') return reconcile('full');
    if (op === 'status') return { pid: process.pid, startedAt: new Date(startedAt).toISOString(), lastReconcile: last };
    throw new WgoError('BAD_INPUT', `unknown control operation "${op}"`);
  });
  down.halt(() => control.close());

  // Key files a crash left behind between writing and committing (older than a minute).
  const pruned = ctx.psk.prune(peers.pskRefs(), (ref) => {
    try {
      return Date.now() - statSync(ctx.psk.path(ref)).mtimeMs > 60_000;
    } catch {
      return false;
    }
  });
  if (pruned) log.info({ event: 'psk.pruned', files: pruned }, 'removed orphaned preshared key files');

  const first = await reconcile();
  log.info({ event: 'serve.start', interface: config.interface, peers: first.peers, ok: first.ok }, 'serving');

  // The CA (created here for gateways initialised before it existed), sync API, single-box guard, metrics.
  const { ca } = ctx.ca.ensure();
  const metrics = daemonMetrics(ctx.db, () => layers);
  // Log retention (gateway/retention.ts): small batches with pauses, so peer changes are not held up.
  let pruneMetrics: ReturnType<typeof retentionMetrics> | null = null;
  const retention = retentionService({
    db: ctx.db, path: config.paths.db, policy: retentionPolicy(config.retention), log,
    onBatch: (b) => pruneMetrics?.batch(b),
  });
  pruneMetrics = retentionMetrics(metrics.registry, { db: ctx.db, path: config.paths.db, maxDatabaseBytes: config.retention.maxDatabaseBytes, last: () => retention.last() });
  down.drain(() => retention.stop());
  const prune = (): void => {
    retention.run().catch((e: unknown) => log.error({ event: 'retention.failed', err: (e as Error).message }, 'pruning old log rows failed; retrying at the next run'));
  };
  const source = peerSetSource(ctx.db, config);
  const changes = changeSignal();
  down.service(await startSyncApi(ctx, { caPem: ca.certPem, source, changes, onRecords: (_g, records) => metrics.gateway.records(records), log }));
  const localGuard = down.service(await startLocalGuard(ctx, { caPem: ca.certPem, registry: metrics.registry, source, onWritten: (records) => metrics.gateway.records(records), log }));
  down.service(await startMetricsServer(config.metricsListen, metrics.registry, () => ({
    ok: !!last?.ok,
    interface: config.interface,
    peers: last?.peers ?? 0,
    lastReconcile: last ? { ok: last.ok, errors: last.errors } : null,
    firewall: { ...layers },
  }), localGuard?.audit));
  let peerSetVersion = source.version();
  /** The database changed: give the local guard the new peer set, and wake the guards' long-polls. */
  const peerSetChanged = (): void => {
    localGuard?.follow();
    const v = source.version();
    if (v === peerSetVersion) return;
    peerSetVersion = v;
    changes.notify();
  };

  // The admin web UI, in this process: its changes are applied at once (and seen by the change poll too).
  down.service(await startAdminUi(ctx, {
    log,
    onChange: () => void reconcile('changes'),
    // The status page reads the kernel itself; the daemon's part is this process.
    kernel: { wg, fw, tc },
    daemon: async () => ({
      running: true,
      pid: process.pid,
      lastReconcile: last ? { ok: last.ok, mode: last.mode, errors: last.errors } : null,
      lastReconcileAt: last ? new Date(lastAt).toISOString() : null,
    }),
  }));
  let linkVersion = dataVersion();

  const monitor = createMonitor({
    db: ctx.db,
    dump: () => wg.dump(config.interface),
    settings: { handshakeTimeoutSec: config.handshakeTimeoutSec, trafficIntervalMs: config.trafficIntervalSec * 1000 },
    log,
  });
  const timers = [
    setInterval(() => void reconcile(), config.reconcileIntervalSec * 1000),
    setInterval(() => {
      // Another process committed since the latest run started: apply it (joins a run that already saw it).
      const v = dataVersion();
      if (v !== reconciler.startedVersion()) void reconcile('changes');
      if (v !== linkVersion) {
        linkVersion = v;
        try {
          peerSetChanged();
        } catch (e) {
          log.error({ event: 'guard-link.failed', err: (e as Error).message }, 'cannot load the peer set for guards');
        }
      }
    }, CHANGE_POLL_MS),
    setTimeout(prune, RETENTION_FIRST_MS),
    setInterval(prune, RETENTION_INTERVAL_MS),
    setInterval(() => {
      // Denials kept while the disk was full: saved once there is room (the journal made too, if missing).
      try {
        if (!ctx.denials.ensure()) return;
        saveDenials(ctx.denials, (d) => ctx.peers.saveDenial(d), (d) =>
          log.info({ event: 'denial.saved', peer: d.name, action: d.action }, `the ${d.action} of ${d.name} kept while the disk was full is saved`));
      } catch (e) {
        log.error({ event: 'denial.failed', err: (e as Error).message }, 'cannot save the denials kept while the disk was full');
      }
    }, DENIAL_SAVE_MS),
    setInterval(() => {
      monitor.tick().catch((e: unknown) => log.warn({ event: 'monitor.failed', err: (e as Error).message }, 'monitor tick failed'));
    }, config.monitorIntervalSec * 1000),
  ];
  down.halt(() => {
    for (const t of timers) clearInterval(t);
  });
}

