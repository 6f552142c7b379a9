import type { Config } from '../config.js';
import type { LinkState } from '../core/monitor.js';
import { auditRepository, type AuditRow } from '../db/audit.js';
import { certificateRepository, type PoolRole } from '../db/certificates.js';
import type { PoolHostReport } from '../core/wire.js';
import { POOL_REPORT_STALE_MS, memberReport } from './guard-service.js';
import { connectionRepository, type ConnectionEventRow } from '../db/connections.js';
import { validatePeerName } from '../core/names.js';
import type { Db } from '../db/open.js';
import { peerRepository, type PeerRow } from '../db/peers.js';
import { requestRepository, type RequestRow } from '../db/requests.js';
import { WgoError } from '../errors.js';
import type { LogFilters, LogKind } from './log-query.js';
import { toView, type PeerView } from './peer-service.js';
import { readStatus, type DaemonSource, type GatewayStatus, type KernelReaders } from './status-query.js';
import { tokenService, type TokenStatus } from './token-service.js';

export { LOG_KINDS, parseLogFilters, type LogFilters, type LogKind } from './log-query.js';
export type { DaemonSource, DaemonStatus, GatewayStatus, KernelReaders } from './status-query.js';

/** Where peers reach the guard: the GPU host address and port the firewall lets them through to. */
export const guardUrl = (config: Config): string => `https://${config.ollamaHost}:${config.ollamaPort}`;

/** A peer with what the connection monitor last saw of its current key. */
export type PeerWithLink = PeerView & {
  endpoint: string | null;
  /** ISO time of the latest handshake of the current key. */
  latestHandshake: string | null;
  connected: boolean;
  /** Traffic counted for the peer (across its keys until the monitor sees the new one). */
  rxBytes: number;
  txBytes: number;
};

/** A peer in the list: its link and what it used today (UTC). */
export type PeerSummary = PeerWithLink & { requestsToday: number; tokensToday: number };

/** One line of a peer's timeline: a connection event or a request, newest first. */
export type TimelineEntry = { at: number; kind: 'connection'; event: ConnectionEventRow } | { at: number; kind: 'request'; request: RequestRow };

export interface GuardSummary {
  name: string;
  address: string;
  dnsNames: string[];
  status: 'active' | 'removed';
  lastSeen: string | null;
  lastSeenFrom: string | null;
  peerSetVersion: string | null;
  /** In a pool of GPU hosts: on its own, the router, or a member. */
  poolRole: PoolRole;
  /** A member's parallelism and draining flag; null / false for other roles. */
  parallel: number | null;
  draining: boolean;
  /** A member as the router last reported it (health, in flight, queued, models), and when (ISO); null: no report. */
  host: PoolHostReport | null;
  reportedAt: string | null;
  /** The report is older than the router's longest interval (3 × 10 s): it is history, the router has stopped reporting. */
  reportStale: boolean;
}

/** The pool of GPU hosts in `status`: its router and each member as the router last reported it; null when there is no pool. */
export interface PoolStatus {
  router: string | null;
  hosts: { name: string; health: PoolHostReport['health'] | 'no report'; draining: boolean; parallel: number | null; inFlight: number | null; queued: number | null; reportedAt: string | null; stale: boolean }[];
}

function poolStatus(guards: GuardSummary[]): PoolStatus | null {
  const active = guards.filter((g) => g.status === 'active' && g.poolRole !== 'none');
  if (active.length === 0) return null;
  return {
    router: active.find((g) => g.poolRole === 'router')?.name ?? null,
    hosts: active.filter((g) => g.poolRole === 'member').map((g) => ({
      name: g.name, health: g.host?.health ?? 'no report', draining: g.draining, parallel: g.parallel, inFlight: g.host?.inFlight ?? null, queued: g.host?.queued ?? null, reportedAt: g.reportedAt, stale: g.reportStale,
    })),
  };
}

/** Rows of each log. */
export interface LogRows {
  requests: RequestRow;
  connections: ConnectionEventRow;
  audit: AuditRow;
}

const TIMELINE = 100;
const DAY_MS = 86_400_000;

/**
 * Every read the CLI and the admin web UI show: peers with their link and
 * today's usage, one peer with its timeline, the three logs, status, guards,
 * expiring certificates and the guard URL. Only reads; changes go through
 * the write services (peerService, tokenService, guardService, accounts).
 */
export function queryService(deps: { db: Db; config: Config; clock?: () => number }) {
  const { db, config } = deps;
  const clock = deps.clock ?? Date.now;
  const peers = peerRepository(db);
  const links = connectionRepository(db);
  const requests = requestRepository(db);
  const audit = auditRepository(db);
  const certs = certificateRepository(db);
  const tokens = tokenService({ db, config, clock });

  /** Handshake and endpoint belong to a key: after a rotation the old key's are not the peer's. */
  const withLink = (p: PeerView, l: LinkState | undefined): PeerWithLink => {
    const sameKey = l !== undefined && l.publicKey === p.publicKey;
    return {
      ...p,
      endpoint: sameKey ? l.endpoint : null,
      latestHandshake: sameKey && l.latestHandshake ? new Date(l.latestHandshake * 1000).toISOString() : null,
      connected: sameKey && l.connected,
      rxBytes: l?.rxTotal ?? 0,
      txBytes: l?.txTotal ?? 0,
    };
  };

  const find = (name: string): PeerRow => {
    const p = peers.byName(name);
    if (!p) throw new WgoError('NOT_FOUND', `no peer named "${name}"`);
    return p;
  };

  /** Every guard with its pool role and, for a member, the router's last report of it. */
  function guardSummaries(): GuardSummary[] {
    const now = clock();
    return certs.guards().map((g) => {
      const r = g.poolRole === 'member' ? memberReport(g, now) : null;
      return {
        name: g.name, address: g.address, dnsNames: g.dnsNames, status: g.revokedAt === null ? 'active' : 'removed',
        lastSeen: g.lastSeenAt === null ? null : new Date(g.lastSeenAt).toISOString(), lastSeenFrom: g.lastSeenFrom, peerSetVersion: g.lastVersion,
        poolRole: g.poolRole, parallel: g.parallel, draining: g.draining,
        host: r?.report ?? null, reportedAt: r && g.poolReportedAt !== null ? new Date(g.poolReportedAt).toISOString() : null,
        reportStale: r !== null && r.ageMs > POOL_REPORT_STALE_MS,
      };
    });
  }

  return {
    guardUrl: (): string => guardUrl(config),

    /** Peers (revoked ones with includeRevoked), by name, with link and today's requests and tokens. */
    peers(o: { includeRevoked?: boolean } = {}): PeerSummary[] {
      const now = clock();
      const all = links.links();
      const today = requests.countsSince(Math.floor(now / DAY_MS) * DAY_MS);
      return (o.includeRevoked ? peers.all() : peers.live()).map((row) => {
        const t = today.get(row.id);
        return { ...withLink(toView(row, now), all.get(row.id)), requestsToday: t?.requests ?? 0, tokensToday: t?.tokens ?? 0 };
      });
    },

    /** One peer (BAD_INPUT for a name no peer can have, NOT_FOUND when there is none), its API token state and its latest connection events and requests. */
    peer(name: string): { peer: PeerWithLink; apiToken: TokenStatus; timeline: TimelineEntry[] } {
      validatePeerName(name);
      const row = find(name);
      const peer = withLink(toView(row, clock()), links.links().get(row.id));
      const timeline: TimelineEntry[] = [
        ...links.list({ since: 0, peerId: row.id, limit: TIMELINE, newest: true }).map((event) => ({ at: event.at, kind: 'connection' as const, event })),
        ...requests.list({ since: 0, peerId: row.id, limit: TIMELINE, newest: true }).map((request) => ({ at: request.at, kind: 'request' as const, request })),
      ]
        .sort((a, b) => b.at - a.at)
        .slice(0, TIMELINE);
      return { peer, apiToken: tokens.status(row.name), timeline };
    },

    /** One log's rows, oldest first (see logFilterSchema); an unknown peer is NOT_FOUND. */
    log<K extends LogKind>(f: LogFilters & { kind: K }): LogRows[K][] {
      const peerId = f.peer === undefined ? undefined : find(f.peer).id;
      const q = { since: f.since === undefined ? 0 : clock() - f.since, beforeId: f.before, afterId: f.after, limit: f.limit, newest: f.after === undefined };
      const rows =
        f.kind === 'requests' ? requests.list({ ...q, peerId, model: f.model, status: f.status })
        : f.kind === 'connections' ? links.list({ ...q, peerId })
        : audit.list({ ...q, match: f.match });
      return rows as LogRows[K][];
    },

    /** Daemon, kernel (interface, firewall, barrier), peer counts and CA, read now. */
    status: async (sources: { kernel: KernelReaders; daemon: DaemonSource }): Promise<GatewayStatus & { pool: PoolStatus | null }> => {
      const status = await readStatus({ config, db, clock, ...sources });
      return { ...status, pool: poolStatus(guardSummaries()) };
    },

    guards: (): GuardSummary[] => guardSummaries(),
    /** Peer certificates in force that end within `withinMs`. */
    expiringCertificates(withinMs: number): { name: string; serial: string; notAfter: string }[] {
      const now = clock();
      return certs.expiring(now, now + withinMs).filter((c) => c.role === 'peer').map((c) => ({ name: c.commonName, serial: c.serial, notAfter: new Date(c.notAfter).toISOString() }));
    },
  };
}

export type QueryService = ReturnType<typeof queryService>;
