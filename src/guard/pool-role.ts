import { MAX_POOL_MEMBERS, MAX_REPORT_MODELS, MAX_REPORT_NAME, type PeerSet, type PoolReport } from '../core/wire.js';
import type { GuardConfig } from './config.js';
import type { Pool, PoolMember } from './pool.js';
import type { GuardLog, GuardOptions } from './server.js';

/**
 * The router's report for POST /v1/pool, cut to what the gateway takes: one GPU host with a
 * model name longer than a report allows, or more models than it lists, must not make every
 * report refused (the names are whatever the host's Ollama answered).
 */
export function poolReport(pool: Pick<Pool, 'status' | 'queued'>): PoolReport {
  const names = (list: string[]): string[] => list.filter((n) => n.length <= MAX_REPORT_NAME).slice(0, MAX_REPORT_MODELS);
  return {
    hosts: pool.status().slice(0, MAX_POOL_MEMBERS).map((h) => ({ ...h, models: names(h.models), loaded: names(h.loaded) })),
    queued: pool.queued(),
  };
}

/**
 * What guard.json's `pool` makes of a guard (docs/gpu-pool.md), and how it follows the pool
 * section of each peer set:
 * - a router forwards to the set's members over mTLS with its own guard certificate (the
 *   sync one), as long as the gateway names it the router; otherwise it routes to no host;
 * - a member serves only the client certificates of the set's routers;
 * - a guard on its own ignores the pool.
 */
export function poolRole(config: Pick<GuardConfig, 'name' | 'pool'>, tls: { ca: string; cert: string; key: string }, log: GuardLog) {
  const role = config.pool?.role ?? null;
  let routers: ReadonlySet<string> = new Set();
  let routerNames: string[] = [];
  let lastMembers = '';
  let warnedNotRouter = false;
  const q = config.pool?.queue;
  const guardOptions: Pick<GuardOptions, 'pool' | 'member'> =
    role === 'router'
      ? { pool: { members: [], ...(q ? { queue: { perPeer: q.perPeer, total: q.total, maxWaitMs: q.maxWaitSec * 1000 } } : {}) } }
      : role === 'member'
        ? { member: { routers: () => routers } }
        : {};

  return {
    guardOptions,
    /** The routers a member serves, by name (for /healthz). */
    routers: (): string[] => routerNames,
    apply(set: PeerSet, pool: Pool | undefined): void {
      if (role === 'member') {
        const list = set.pool?.routers ?? [];
        const names = list.map((r) => r.name).sort();
        if (names.join(',') !== routerNames.join(',')) log.info({ event: 'pool.routers', routers: names }, names.length ? `serving the pool router ${names.join(', ')}` : 'no pool router is named: this member serves no one');
        routers = new Set(list.map((r) => r.serial));
        routerNames = names;
        return;
      }
      if (role !== 'router' || !pool) return;
      const named = set.pool?.routers.some((r) => r.name === config.name) ?? false;
      if (!named && !warnedNotRouter) log.error({ event: 'pool.not-router', name: config.name }, `guard.json says this guard is the pool router, but the gateway does not name ${config.name} its router (add it with add-guard --router): it routes to no GPU host`);
      warnedNotRouter = !named;
      const members: PoolMember[] = named ? (set.pool?.members ?? []).map((m) => ({ name: m.name, origin: m.url, parallel: m.parallel, draining: m.draining, drainedAt: m.drainedAt ?? null, tls })) : [];
      const text = JSON.stringify(members.map((m) => [m.name, m.origin, m.parallel, m.draining, m.drainedAt]));
      if (text === lastMembers) return;
      try {
        pool.setMembers(members);
      } catch (e) {
        // Never thrown for a set the gateway made (names are unique, parallel 1–256); the old hosts stay, and the peers change all the same.
        log.error({ event: 'pool.members-failed', err: (e as Error).message }, 'cannot route to the GPU hosts of this peer set; keeping the previous ones');
        return;
      }
      lastMembers = text;
      log.info({ event: 'pool.members', members: members.map((m) => `${m.name}=${m.origin}/${m.parallel}`), draining: members.filter((m) => m.draining).map((m) => m.name) }, `routing to ${members.length} GPU host(s)`);
    },
  };
}
