import type { ConnectionEvent, LinkState } from '../core/monitor.js';
import type { Db } from './open.js';

export interface ConnectionEventRow extends ConnectionEvent {
  id: number;
  at: number;
  peerId: number;
  peer: string;
}

export interface EventQuery {
  since: number;
  peerId?: number;
  afterId?: number;
  /** Only rows older than this id (paging backwards). */
  beforeId?: number;
  limit?: number;
  /** With a limit: the newest rows (still printed oldest first) instead of the oldest. */
  newest?: boolean;
}

/** Connection events and the monitor's per-peer link state. */
export function connectionRepository(db: Db) {
  const s = {
    insert: db.prepare(`INSERT INTO connection_events (at, peer_id, kind, endpoint, old_endpoint, rx_bytes, tx_bytes)
      VALUES (@at, @peerId, @kind, @endpoint, @oldEndpoint, @rxBytes, @txBytes)`),
    list: db.prepare(`SELECT e.id, e.at, e.peer_id AS peerId, p.name AS peer, e.kind, e.endpoint, e.old_endpoint AS oldEndpoint,
        e.rx_bytes AS rxBytes, e.tx_bytes AS txBytes
      FROM connection_events e JOIN peers p ON p.id = e.peer_id
      WHERE e.at >= @since AND e.id > @afterId AND (@beforeId IS NULL OR e.id < @beforeId) AND (@peerId IS NULL OR e.peer_id = @peerId)
      ORDER BY e.id LIMIT @limit`),
    newest: db.prepare(`SELECT * FROM (SELECT e.id, e.at, e.peer_id AS peerId, p.name AS peer, e.kind, e.endpoint, e.old_endpoint AS oldEndpoint,
        e.rx_bytes AS rxBytes, e.tx_bytes AS txBytes
      FROM connection_events e JOIN peers p ON p.id = e.peer_id
      WHERE e.at >= @since AND e.id > @afterId AND (@beforeId IS NULL OR e.id < @beforeId) AND (@peerId IS NULL OR e.peer_id = @peerId)
      ORDER BY e.id DESC LIMIT @limit) ORDER BY id`),
    links: db.prepare(`SELECT peer_id AS peerId, public_key AS publicKey, endpoint, latest_handshake AS latestHandshake,
        connected, rx_seen AS rxSeen, tx_seen AS txSeen, rx_pending AS rxPending, tx_pending AS txPending,
        rx_total AS rxTotal, tx_total AS txTotal, traffic_at AS trafficAt FROM peer_link`),
    upsertLink: db.prepare(`INSERT INTO peer_link (peer_id, public_key, endpoint, latest_handshake, connected, rx_seen, tx_seen,
        rx_pending, tx_pending, rx_total, tx_total, traffic_at, updated_at)
      VALUES (@peerId, @publicKey, @endpoint, @latestHandshake, @connected, @rxSeen, @txSeen, @rxPending, @txPending,
        @rxTotal, @txTotal, @trafficAt, @now)
      ON CONFLICT (peer_id) DO UPDATE SET public_key = excluded.public_key, endpoint = excluded.endpoint,
        latest_handshake = excluded.latest_handshake, connected = excluded.connected, rx_seen = excluded.rx_seen,
        tx_seen = excluded.tx_seen, rx_pending = excluded.rx_pending, tx_pending = excluded.tx_pending,
        rx_total = excluded.rx_total, tx_total = excluded.tx_total, traffic_at = excluded.traffic_at,
        updated_at = excluded.updated_at`),
  };
  return {
    list(q: EventQuery): ConnectionEventRow[] {
      return (q.newest ? s.newest : s.list).all({ since: q.since, afterId: q.afterId ?? 0, beforeId: q.beforeId ?? null, peerId: q.peerId ?? null, limit: q.limit ?? 1000 }) as ConnectionEventRow[];
    },
    links(): Map<number, LinkState> {
      const rows = s.links.all() as (Omit<LinkState, 'connected'> & { peerId: number; connected: number })[];
      return new Map(rows.map(({ peerId, ...r }) => [peerId, { ...r, connected: r.connected === 1 }]));
    },
    /** Saves one monitor tick (all events and link states) in one transaction. */
    saveTick: db.transaction(
      (now: number, items: { peerId: number; state: LinkState | undefined; events: ConnectionEvent[] }[]) => {
        for (const { peerId, state, events } of items) {
          for (const e of events) s.insert.run({ at: now, peerId, ...e });
          if (state) s.upsertLink.run({ peerId, now, ...state, connected: state.connected ? 1 : 0 });
        }
      },
    ),
  };
}

export type ConnectionRepository = ReturnType<typeof connectionRepository>;
