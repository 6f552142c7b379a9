import { Router } from 'express';
import { ago, bytes } from '../core/format.js';
import type { GatewayStatus } from '../gateway/queries.js';
import { render } from './render.js';
import type { AdminAppDeps } from './common.js';

const EXPIRING_MS = 30 * 86_400_000;

type Fact = [string, string, boolean | undefined];

/** The status as facts: the same reads as `wg-ollama status`, plus connected peers and the last reconcile. */
function factsOf(s: GatewayStatus, peersConnected: number, now: number): Fact[] {
  const i = s.interface;
  const f = s.firewall;
  const inSync = f.ipv4InSync && f.ipv6InSync && f.barrierInSync !== false && f.setMatchesDatabase;
  const firewall = `ipv4 ${f.ipv4InSync ? 'in sync' : 'OUT OF SYNC'}, ipv6 ${f.ipv6InSync ? 'in sync' : 'OUT OF SYNC'}, tc barrier ${f.barrierInSync === null ? 'n/a (no interface)' : f.barrierInSync ? 'in place' : 'MISSING'}, ${f.setEntries} addresses allowed${f.setMatchesDatabase ? '' : ' (differs from database)'}`;
  const last = s.daemon.lastReconcile;
  return [
    ['Daemon', s.daemon.running ? `running (pid ${s.daemon.pid})` : 'not running', s.daemon.running],
    ['Interface', `${i.name}: ${i.exists ? (i.up ? 'up' : 'down') : 'absent'}${i.addresses.length ? ` ${i.addresses.join(' ')}` : ''} (${i.peers} peers)`, i.exists && i.up],
    ['Peers connected', String(peersConnected), undefined],
    ['Firewall', inSync ? `in sync with the database (${firewall})` : `NOT in sync: ${firewall}`, inSync],
    ['Peers', Object.entries(s.peers).map(([k, v]) => `${v} ${k}`).join(', ') || 'none', undefined],
    ['CA', s.ca.status === 'ok' ? 'name constraints in place' : `${s.ca.status.toUpperCase()}: ${s.ca.detail}`, s.ca.status === 'ok' ? true : s.ca.status === 'fail' ? false : undefined],
    ['Last backup', s.lastBackup ? `${s.lastBackup.at} (${ago(Date.parse(s.lastBackup.at), now)}): ${s.lastBackup.file}, ${bytes(s.lastBackup.size)}` : 'never', s.lastBackup ? undefined : false],
    ['Last reconcile', last ? `${s.daemon.lastReconcileAt ?? ''} (${last.mode}, ${last.ok ? 'ok' : 'with errors'})`.trim() : 'not yet', last ? last.ok : undefined],
    ...(last?.errors ?? []).slice(0, 10).map((e): Fact => ['Error', e, false]),
  ];
}

/** The status page: daemon, kernel, peers, guards and certificates running out. */
export function statusPage(deps: AdminAppDeps): Router {
  const r = Router();
  r.get('/status', async (req, res, next) => {
    try {
      const { queries } = deps;
      const now = Date.now();
      const s = await queries.status({ kernel: deps.kernel, daemon: deps.daemon });
      const facts = factsOf(s, queries.peers().filter((p) => p.connected).length, now);
      const guards = queries.guards().filter((g) => g.status === 'active')
        .map((g) => ({ name: g.name, address: g.address, role: g.poolRole === 'none' ? '' : g.poolRole, lastSeen: g.lastSeen ? `${ago(Date.parse(g.lastSeen), now)} from ${g.lastSeenFrom ?? '?'}` : 'never' }));
      // The pool's GPU hosts as the router last reported them (docs/gpu-pool.md).
      const hosts = queries.guards().filter((g) => g.status === 'active' && g.poolRole === 'member').map((g) => ({
        name: g.name,
        health: !g.host ? 'no report from the router' : g.reportStale ? `${g.host.health}, but the router has not reported since (is it running?)` : g.host.health,
        ok: g.host?.health === 'healthy' && !g.draining && !g.reportStale,
        draining: g.draining,
        load: g.host ? `${g.host.inFlight} / ${g.parallel ?? '?'} in flight, ${g.host.queued} queued` : `parallel ${g.parallel ?? '?'}`,
        models: g.host ? g.host.models.map((m) => (g.host!.loaded.includes(m) ? `${m} (loaded)` : m)).join(', ') || 'none' : '—',
        reported: g.reportedAt ? ago(Date.parse(g.reportedAt), now) : 'never',
      }));
      render(req, res, 'status', { title: 'Status', nav: 'status', facts, guards, hosts, expiring: queries.expiringCertificates(EXPIRING_MS) });
    } catch (e) {
      next(e);
    }
  });
  return r;
}
