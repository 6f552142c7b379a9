import { existsSync } from 'node:fs';
import type { Config } from '../config.js';
import type { FirewallSpec } from '../core/firewall-plan.js';
import { auditRepository } from '../db/audit.js';
import { openDatabase } from '../db/open.js';
import { peerRepository } from '../db/peers.js';
import { MIGRATIONS } from '../db/migrations.js';
import { WgoError } from '../errors.js';
import { requestControl } from '../gateway/control.js';
import { ensureClosedFirewall, inspectFirewall, removeFirewall } from '../gateway/firewall.js';
import { ingressBarrierInSync } from '../gateway/ingress.js';
import { effectiveStatus } from '../gateway/peer-service.js';
import { caConstraintProblem } from '../gateway/ca-reissue.js';
import { caStore } from '../gateway/ca-store.js';
import { execRunner, type Runner } from '../system/exec.js';
import { createFirewall } from '../system/firewall.js';
import { createIngress } from '../system/ingress.js';
import { modeOf } from '../system/files.js';
import { ipForwarding } from '../system/sysctl.js';
import { createWireguard } from '../system/wireguard.js';
import { emit, type Io } from './output.js';

const specOf = (c: Config): FirewallSpec => ({ iface: c.interface, ollamaHost: c.ollamaHost, ollamaPort: c.ollamaPort });

async function daemonStatus(config: Config): Promise<{ running: boolean; pid?: number; lastReconcile?: unknown }> {
  try {
    const s = await requestControl<{ pid: number; lastReconcile: unknown }>(config.paths.socket, 'status', 3000);
    return { running: true, pid: s.pid, lastReconcile: s.lastReconcile };
  } catch (e) {
    if (e instanceof WgoError && e.code === 'DAEMON_UNREACHABLE') return { running: false };
    throw e;
  }
}

/** `wg-ollama status`: daemon, interface, firewall and peer counts. */
export async function showStatus(config: Config, o: { json?: boolean }, io: Io, run: Runner = execRunner): Promise<void> {
  const wg = createWireguard(run);
  const db = openDatabase(config.paths.db);
  let counts: Record<string, number> = {};
  let activeAddresses: string[] = [];
  try {
    const now = Date.now();
    for (const p of peerRepository(db).all()) {
      const s = effectiveStatus(p, now);
      counts[s] = (counts[s] ?? 0) + 1;
      if (s === 'active') activeAddresses.push(p.address);
    }
  } finally {
    db.close();
  }
  const [daemon, link, firewall] = await Promise.all([daemonStatus(config), wg.link(config.interface), inspectFirewall(createFirewall(run), specOf(config))]);
  const wgPeers = link ? (await wg.dump(config.interface)).peers.length : 0;
  // The tc barrier lives on the interface: none to check without one.
  const barrier = link ? await ingressBarrierInSync(createIngress(run), specOf(config)).catch(() => false) : null;
  const setMatches = firewall.setEntries.length === activeAddresses.length && activeAddresses.every((a) => firewall.setEntries.includes(a));
  const data = {
    daemon,
    interface: { name: config.interface, exists: !!link, up: link?.up ?? false, addresses: link?.addresses ?? [], peers: wgPeers },
    firewall: { ipv4InSync: firewall.inSync.ipv4, ipv6InSync: firewall.inSync.ipv6, barrierInSync: barrier, setEntries: firewall.setEntries.length, setMatchesDatabase: setMatches },
    peers: counts,
    ca: caCheck(config),
  };
  emit(io, o.json, data, (d) =>
    [
      `daemon      ${d.daemon.running ? `running (pid ${d.daemon.pid})` : 'not running'}`,
      `interface   ${d.interface.name} ${d.interface.exists ? (d.interface.up ? 'up' : 'down') : 'absent'} ${d.interface.addresses.join(' ')} (${d.interface.peers} peers)`,
      `firewall    ipv4 ${d.firewall.ipv4InSync ? 'in sync' : 'OUT OF SYNC'}, ipv6 ${d.firewall.ipv6InSync ? 'in sync' : 'OUT OF SYNC'}, tc barrier ${d.firewall.barrierInSync === null ? 'n/a (no interface)' : d.firewall.barrierInSync ? 'in place' : 'MISSING'}, ${d.firewall.setEntries} addresses allowed${d.firewall.setMatchesDatabase ? '' : ' (differs from database)'}`,
      `peers       ${Object.entries(d.peers).map(([k, v]) => `${v} ${k}`).join(', ') || 'none'}`,
      `ca          ${d.ca.status === 'ok' ? 'name constraints in place' : `${d.ca.status.toUpperCase()}: ${d.ca.detail}`}`,
    ].join('\n') + '\n');
}

/** The CA: there, and with name constraints covering what the config names (warn otherwise: it still works). */
function caCheck(config: Config): { status: 'ok' | 'warn' | 'fail'; detail: string } {
  try {
    const ca = caStore(config.paths).load();
    if (!ca) return { status: 'fail', detail: `${config.paths.caKey} is missing` };
    const problem = caConstraintProblem(config, ca.certPem);
    return problem ? { status: 'warn', detail: problem } : { status: 'ok', detail: `${config.paths.caCert} permits only the names the config implies` };
  } catch (e) {
    return { status: 'fail', detail: (e as Error).message };
  }
}

type CheckResult = { check: string; status: 'ok' | 'warn' | 'fail'; detail: string };

/** `wg-ollama doctor`: checks the machine and the gateway's state; exit 1 if anything fails. */
export async function runDoctor(config: Config, o: { json?: boolean }, io: Io, run: Runner = execRunner): Promise<number> {
  const results: CheckResult[] = [];
  const add = (check: string, status: CheckResult['status'], detail: string): void => void results.push({ check, status, detail });
  const programs: [string, string[]][] = [
    ['wg', ['--version']], ['ip', ['-V']], ['iptables-restore', ['--version']], ['ip6tables-restore', ['--version']],
    ['ipset', ['version']], ['conntrack', ['--version']], ['tc', ['-V']],
  ];
  if (config.wireguard !== 'kernel') programs.push([config.wireguardGo, ['--version']]);
  for (const [p, args] of programs) {
    try {
      const r = await run(p, args);
      add(`program ${p}`, 'ok', (r.stdout || r.stderr).trim().split('\n')[0] ?? '');
    } catch (e) {
      add(`program ${p}`, 'fail', (e as Error).message);
    }
  }
  const mode = (path: string, want: number, what: string): void => {
    const m = modeOf(path);
    if (m === null) add(what, 'fail', `${path} is missing`);
    else if ((m & ~want) !== 0) add(what, 'fail', `${path} has mode ${m.toString(8)}, expected ${want.toString(8)}`);
    else add(what, 'ok', `${path} mode ${m.toString(8)}`);
  };
  mode(config.stateDir, 0o700, 'state directory');
  mode(config.paths.serverKey, 0o600, 'server key');
  if (existsSync(config.paths.pskDir)) mode(config.paths.pskDir, 0o700, 'preshared key directory');
  try {
    const db = openDatabase(config.paths.db, { readonly: true });
    const v = db.pragma('user_version', { simple: true });
    db.close();
    add('database', v === MIGRATIONS.length ? 'ok' : 'warn', `schema version ${v} of ${MIGRATIONS.length}`);
  } catch (e) {
    add('database', 'fail', (e as Error).message);
  }
  const ca = caCheck(config);
  add('CA name constraints', ca.status, ca.detail);
  add('ip forwarding', ipForwarding() ? 'ok' : config.manageForwarding ? 'warn' : 'fail', ipForwarding() ? 'net.ipv4.ip_forward = 1' : 'net.ipv4.ip_forward = 0');
  try {
    const fw = await inspectFirewall(createFirewall(run), specOf(config));
    add('firewall ipv4', fw.inSync.ipv4 ? 'ok' : 'fail', fw.inSync.ipv4 ? 'chains and hooks in place' : 'chains or hooks missing or changed');
    add('firewall ipv6', fw.inSync.ipv6 ? 'ok' : 'fail', fw.inSync.ipv6 ? 'chains and hooks in place' : 'chains or hooks missing or changed');
    add('peer set', fw.setExists ? 'ok' : 'fail', fw.setExists ? `${fw.setEntries.length} addresses` : 'ipset missing');
  } catch (e) {
    add('firewall', 'fail', (e as Error).message);
  }
  let hasLink = false;
  try {
    const link = await createWireguard(run).link(config.interface);
    hasLink = !!link;
    add('interface', link?.up ? 'ok' : 'fail', link ? `${config.interface} ${link.up ? 'up' : 'down'} ${link.addresses.join(' ')}` : `${config.interface} does not exist`);
  } catch (e) {
    add('interface', 'fail', (e as Error).message);
  }
  // The second barrier lives on the interface (see README, Firewall).
  if (hasLink) {
    try {
      const ok = await ingressBarrierInSync(createIngress(run), specOf(config));
      add('tunnel barrier', ok ? 'ok' : 'fail', ok ? `tc ingress filter on ${config.interface} in place` : `tc ingress filter on ${config.interface} missing or changed (tc filter show dev ${config.interface} ingress)`);
    } catch (e) {
      add('tunnel barrier', 'fail', (e as Error).message);
    }
  }
  const d = await daemonStatus(config);
  add('daemon', d.running ? 'ok' : 'warn', d.running ? `serve running (pid ${d.pid})` : 'serve is not running');
  emit(io, o.json, results, (rs) => rs.map((r) => `${r.status.toUpperCase().padEnd(4)}  ${r.check.padEnd(26)} ${r.detail}`).join('\n') + '\n');
  return results.some((r) => r.status === 'fail') ? 1 : 0;
}

/** `wg-ollama firewall-init`: the closed firewall, before the interface exists (boot). */
export async function firewallInit(config: Config, o: { json?: boolean }, io: Io, run: Runner = execRunner): Promise<void> {
  const repaired = await ensureClosedFirewall(createFirewall(run), specOf(config));
  emit(io, o.json, { interface: config.interface, repaired }, (d) =>
    `firewall for ${d.interface} ${d.repaired.length ? `installed (${d.repaired.join(', ')})` : 'already in place'}\n`);
}

/** `wg-ollama down`: the only verb that removes the firewall; the daemon must be stopped first. */
export async function runDown(config: Config, o: { json?: boolean }, io: Io, actor: string, run: Runner = execRunner): Promise<void> {
  if ((await daemonStatus(config)).running) {
    throw new WgoError('ALREADY_RUNNING', 'wg-ollama serve is running; stop it first (systemctl stop wg-ollama)');
  }
  const wg = createWireguard(run);
  // Interface first: with no interface there is no tunnel traffic left to filter.
  const hadLink = !!(await wg.link(config.interface));
  if (hadLink) await wg.remove(config.interface);
  await removeFirewall(createFirewall(run), config.interface);
  const db = openDatabase(config.paths.db);
  try {
    auditRepository(db).record({ actor, source: 'cli', action: 'gateway.down', target: config.interface }, Date.now());
  } finally {
    db.close();
  }
  emit(io, o.json, { interface: config.interface, removed: true }, (d) => `${d.interface} and its firewall removed\n`);
}
