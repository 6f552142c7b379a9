import { existsSync } from 'node:fs';
import type { Config } from '../config.js';
import { auditRepository } from '../db/audit.js';
import { openDatabase } from '../db/open.js';
import { databaseSize, retentionRepository } from '../db/retention.js';
import { WgoError } from '../errors.js';
import { ensureClosedFirewall, inspectFirewall, removeFirewall } from '../gateway/firewall.js';
import { ingressBarrierInSync } from '../gateway/ingress.js';
import { databaseChecks } from '../gateway/db-check.js';
import { queryService, type GatewayStatus, type PoolStatus } from '../gateway/queries.js';
import { caCheck, controlDaemon, firewallSpecOf } from '../gateway/status-query.js';
import { execRunner, type Runner } from '../system/exec.js';
import { createFirewall } from '../system/firewall.js';
import { createIngress } from '../system/ingress.js';
import { modeOf } from '../system/files.js';
import { ipForwarding } from '../system/sysctl.js';
import { createWireguard } from '../system/wireguard.js';
import { bytes, emit, escapeControl, type Io } from './output.js';


/** `wg-ollama status`: daemon, interface, firewall and peer counts. */
export async function showStatus(config: Config, o: { json?: boolean }, io: Io, run: Runner = execRunner): Promise<void> {
  const db = openDatabase(config.paths.db);
  let data: GatewayStatus & { pool: PoolStatus | null };
  try {
    const kernel = { wg: createWireguard(run), fw: createFirewall(run), tc: createIngress(run) };
    data = await queryService({ db, config }).status({ kernel, daemon: controlDaemon(config) });
  } finally {
    db.close();
  }
  emit(io, o.json, data, (d) =>
    [
      `daemon      ${d.daemon.running ? `running (pid ${d.daemon.pid})` : 'not running'}`,
      `interface   ${d.interface.name} ${d.interface.exists ? (d.interface.up ? 'up' : 'down') : 'absent'} ${d.interface.addresses.join(' ')} (${d.interface.peers} peers)`,
      `firewall    ipv4 ${d.firewall.ipv4InSync ? 'in sync' : 'OUT OF SYNC'}, ipv6 ${d.firewall.ipv6InSync ? 'in sync' : 'OUT OF SYNC'}, tc barrier ${d.firewall.barrierInSync === null ? 'n/a (no interface)' : d.firewall.barrierInSync ? 'in place' : 'MISSING'}, ${d.firewall.setEntries} addresses allowed${d.firewall.setMatchesDatabase ? '' : ' (differs from database)'}`,
      `peers       ${Object.entries(d.peers).map(([k, v]) => `${v} ${k}`).join(', ') || 'none'}`,
      `ca          ${d.ca.status === 'ok' ? 'name constraints in place' : `${d.ca.status.toUpperCase()}: ${d.ca.detail}`}`,
      `backup      ${d.lastBackup ? `${d.lastBackup.at} ${escapeControl(d.lastBackup.file)} (${bytes(d.lastBackup.size)})` : 'never'}`,
      ...(d.pool ? [`pool        router ${d.pool.router ?? 'NONE (add-guard --router)'}, ${d.pool.hosts.length} GPU host(s)`,
        ...d.pool.hosts.map((h) => `  ${h.name.padEnd(12)} ${h.health}${h.stale ? ' (stale report: is the router running?)' : ''}${h.draining ? ', draining' : ''}, ${h.inFlight ?? '?'}/${h.parallel ?? '?'} in flight, ${h.queued ?? '?'} queued${h.reportedAt ? ` (reported ${h.reportedAt})` : ''}`)] : []),
    ].join('\n') + '\n');
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
  // Schema version, size against retention.maxDatabaseBytes (warn from 80 %), auto_vacuum.
  for (const c of databaseChecks(config)) add(c.check, c.status, c.detail);
  const ca = caCheck(config);
  add('CA name constraints', ca.status, ca.detail);
  add('ip forwarding', ipForwarding() ? 'ok' : config.manageForwarding ? 'warn' : 'fail', ipForwarding() ? 'net.ipv4.ip_forward = 1' : 'net.ipv4.ip_forward = 0');
  try {
    const fw = await inspectFirewall(createFirewall(run), firewallSpecOf(config));
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
      const ok = await ingressBarrierInSync(createIngress(run), firewallSpecOf(config));
      add('tunnel barrier', ok ? 'ok' : 'fail', ok ? `tc ingress filter on ${config.interface} in place` : `tc ingress filter on ${config.interface} missing or changed (tc filter show dev ${config.interface} ingress)`);
    } catch (e) {
      add('tunnel barrier', 'fail', (e as Error).message);
    }
  }
  const d = await controlDaemon(config)();
  add('daemon', d.running ? 'ok' : 'warn', d.running ? `serve running (pid ${d.pid})` : 'serve is not running');
  emit(io, o.json, results, (rs) => rs.map((r) => `${r.status.toUpperCase().padEnd(4)}  ${r.check.padEnd(26)} ${r.detail}`).join('\n') + '\n');
  return results.some((r) => r.status === 'fail') ? 1 : 0;
}

/** `wg-ollama firewall-init`: the closed firewall, before the interface exists (boot). */
export async function firewallInit(config: Config, o: { json?: boolean }, io: Io, run: Runner = execRunner): Promise<void> {
  const repaired = await ensureClosedFirewall(createFirewall(run), firewallSpecOf(config));
  emit(io, o.json, { interface: config.interface, repaired }, (d) =>
    `firewall for ${d.interface} ${d.repaired.length ? `installed (${d.repaired.join(', ')})` : 'already in place'}\n`);
}

/** `wg-ollama down`: the only verb that removes the firewall; the daemon must be stopped first. */
export async function runDown(config: Config, o: { json?: boolean }, io: Io, actor: string, run: Runner = execRunner): Promise<void> {
  if ((await controlDaemon(config)()).running) {
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

/**
 * `wg-ollama vacuum`: rebuilds the database file once (VACUUM) with auto_vacuum=INCREMENTAL, so
 * space retention prunes goes back to the file system (databases created before this release
 * keep it in the file). It holds the write lock throughout and needs free disk about the size of
 * the database: refused while serve runs unless --online (serve's writes then wait for it).
 */
export async function runVacuum(config: Config, o: { json?: boolean; online?: boolean }, io: Io, actor: string): Promise<void> {
  if (!o.online && (await controlDaemon(config)()).running) {
    throw new WgoError('ALREADY_RUNNING', 'wg-ollama serve is running: stop it first (the tunnel stays up), or pass --online to let its writes wait for the rebuild');
  }
  const db = openDatabase(config.paths.db);
  try {
    const before = databaseSize(db, config.paths.db);
    const repo = retentionRepository(db);
    const vacuum = repo.vacuumIncremental();
    repo.checkpoint();
    const after = databaseSize(db, config.paths.db);
    auditRepository(db).record({ actor, source: 'cli', action: 'database.vacuum', target: null, details: { beforeBytes: before.fileBytes, afterBytes: after.fileBytes, ms: Math.round(vacuum.heldMs) } }, Date.now());
    emit(io, o.json, { beforeBytes: before.fileBytes + before.walBytes, afterBytes: after.fileBytes + after.walBytes, autoVacuum: after.autoVacuum, durationMs: Math.round(vacuum.heldMs) }, (d) =>
      `database rebuilt in ${d.durationMs} ms: ${bytes(d.beforeBytes)} -> ${bytes(d.afterBytes)}, auto_vacuum ${d.autoVacuum}\n`);
  } finally {
    db.close();
  }
}
