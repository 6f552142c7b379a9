import type { Config } from '../config.js';
import type { FirewallSpec } from '../core/firewall-plan.js';
import type { Db } from '../db/open.js';
import { gatewayStateRepository } from '../db/gateway-state.js';
import { peerRepository } from '../db/peers.js';
import { WgoError } from '../errors.js';
import type { FirewallDriver } from '../system/firewall.js';
import type { IngressDriver } from '../system/ingress.js';
import type { WireguardDriver } from '../system/wireguard.js';
import { caConstraintProblem } from './ca-reissue.js';
import { caStore } from './ca-store.js';
import { requestControl } from './control.js';
import { inspectFirewall } from './firewall.js';
import { ingressBarrierInSync } from './ingress.js';
import { effectiveStatus } from './peer-service.js';

/** The kernel state the status reads: WireGuard interface, firewall, tc barrier. */
export interface KernelReaders {
  wg: WireguardDriver;
  fw: FirewallDriver;
  tc: IngressDriver;
}

/** What the last reconcile of the daemon reported (as serve keeps it and its control socket answers). */
export interface ReconcileSummary {
  ok: boolean;
  mode: string;
  errors: string[];
}

/** The daemon, as it reports itself: over the control socket (CLI), or in process (the web UI inside serve). */
export interface DaemonStatus {
  running: boolean;
  pid?: number;
  lastReconcile?: ReconcileSummary | null;
  /** When that reconcile finished (ISO), where the source knows it. */
  lastReconcileAt?: string | null;
}
export type DaemonSource = () => Promise<DaemonStatus>;

export type CheckStatus = 'ok' | 'warn' | 'fail';

/** `wg-ollama status` and the status page: daemon, interface, firewall, peer counts, CA. */
export interface GatewayStatus {
  daemon: DaemonStatus;
  interface: { name: string; exists: boolean; up: boolean; addresses: string[]; peers: number };
  firewall: { ipv4InSync: boolean; ipv6InSync: boolean; barrierInSync: boolean | null; setEntries: number; setMatchesDatabase: boolean };
  peers: Record<string, number>;
  ca: { status: CheckStatus; detail: string };
  /** The last backup `wg-ollama backup` wrote of this gateway (time ISO, file, bytes), or null: never. */
  lastBackup: { at: string; file: string; size: number } | null;
}

export const firewallSpecOf = (c: Config): FirewallSpec => ({ iface: c.interface, ollamaHost: c.ollamaHost, ollamaPort: c.ollamaPort });

/** The daemon over its control socket: not running when nothing answers. */
export function controlDaemon(config: Config): DaemonSource {
  return async () => {
    try {
      const s = await requestControl<{ pid: number; lastReconcile: ReconcileSummary | null }>(config.paths.socket, 'status', 3000);
      return { running: true, pid: s.pid, lastReconcile: s.lastReconcile };
    } catch (e) {
      if (e instanceof WgoError && e.code === 'DAEMON_UNREACHABLE') return { running: false };
      throw e;
    }
  };
}

/** The CA: there, and with name constraints covering what the config names (warn otherwise: it still works). */
export function caCheck(config: Config): { status: CheckStatus; detail: string } {
  try {
    const ca = caStore(config.paths).load();
    if (!ca) return { status: 'fail', detail: `${config.paths.caKey} is missing` };
    const problem = caConstraintProblem(config, ca.certPem);
    return problem ? { status: 'warn', detail: problem } : { status: 'ok', detail: `${config.paths.caCert} permits only the names the config implies` };
  } catch (e) {
    return { status: 'fail', detail: (e as Error).message };
  }
}

/** Reads the status from the kernel, the database and the daemon (never guessed from the daemon's errors). */
export async function readStatus(deps: { config: Config; db: Db; kernel: KernelReaders; daemon: DaemonSource; clock?: () => number }): Promise<GatewayStatus> {
  const { config, kernel } = deps;
  const now = (deps.clock ?? Date.now)();
  const counts: Record<string, number> = {};
  const activeAddresses: string[] = [];
  for (const p of peerRepository(deps.db).all()) {
    const s = effectiveStatus(p, now);
    counts[s] = (counts[s] ?? 0) + 1;
    if (s === 'active') activeAddresses.push(p.address);
  }
  const spec = firewallSpecOf(config);
  const [daemon, link, firewall] = await Promise.all([deps.daemon(), kernel.wg.link(config.interface), inspectFirewall(kernel.fw, spec)]);
  const wgPeers = link ? (await kernel.wg.dump(config.interface)).peers.length : 0;
  // The tc barrier lives on the interface: none to check without one.
  const barrier = link ? await ingressBarrierInSync(kernel.tc, spec).catch(() => false) : null;
  const setMatches = firewall.setEntries.length === activeAddresses.length && activeAddresses.every((a) => firewall.setEntries.includes(a));
  return {
    daemon,
    interface: { name: config.interface, exists: !!link, up: link?.up ?? false, addresses: link?.addresses ?? [], peers: wgPeers },
    firewall: { ipv4InSync: firewall.inSync.ipv4, ipv6InSync: firewall.inSync.ipv6, barrierInSync: barrier, setEntries: firewall.setEntries.length, setMatchesDatabase: setMatches },
    peers: counts,
    ca: caCheck(config),
    lastBackup: lastBackupOf(deps.db),
  };
}

function lastBackupOf(db: Db): GatewayStatus['lastBackup'] {
  const b = gatewayStateRepository(db).lastBackup();
  return b ? { at: new Date(b.at).toISOString(), file: b.file, size: b.size } : null;
}
