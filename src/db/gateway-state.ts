import type { Db } from './open.js';

/** The last backup written of this gateway, as `backup` records it. */
export interface LastBackup {
  /** When it finished (ms since the epoch). */
  at: number;
  file: string;
  size: number;
}

const LAST_BACKUP = 'backup.last';

/** Small facts the gateway keeps about itself (gateway_state, migration 8). */
export function gatewayStateRepository(db: Db) {
  const get = db.prepare<[string], { value: string }>('SELECT value FROM gateway_state WHERE key = ?');
  const set = db.prepare<[string, string]>('INSERT INTO gateway_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
  return {
    lastBackup(): LastBackup | null {
      const row = get.get(LAST_BACKUP);
      if (!row) return null;
      try {
        const v = JSON.parse(row.value) as Partial<LastBackup>;
        return typeof v.at === 'number' && typeof v.file === 'string' && typeof v.size === 'number' ? { at: v.at, file: v.file, size: v.size } : null;
      } catch {
        return null;
      }
    },
    recordBackup(b: LastBackup): void {
      set.run(LAST_BACKUP, JSON.stringify(b));
    },
  };
}

/** What a backup's manifest says the database holds. */
export interface StateCounts {
  peers: Record<string, number>;
  certificates: number;
  certificatesInForce: number;
  apiTokens: number;
  guards: number;
  admins: number;
  requests: number;
  connectionEvents: number;
  auditRecords: number;
}

/** Counts of what a database holds (peers by effective status: an active peer past its expiry is `expired`). */
export function stateCounts(db: Db, now: number): StateCounts {
  const one = (sql: string, ...args: unknown[]): number => db.prepare(sql).pluck().get(...args) as number;
  const peers: Record<string, number> = {};
  const rows = db.prepare(`SELECT CASE WHEN status = 'active' AND expires_at IS NOT NULL AND expires_at <= ? THEN 'expired' ELSE status END AS s, count(*) AS n FROM peers GROUP BY s ORDER BY s`).all(now) as { s: string; n: number }[];
  for (const r of rows) peers[r.s] = r.n;
  return {
    peers,
    certificates: one('SELECT count(*) FROM certificates'),
    certificatesInForce: one('SELECT count(*) FROM certificates WHERE revoked_at IS NULL AND not_after > ?', now),
    apiTokens: one('SELECT count(*) FROM peer_tokens'),
    guards: one('SELECT count(*) FROM guards WHERE revoked_at IS NULL'),
    admins: one('SELECT count(*) FROM admins'),
    requests: one('SELECT count(*) FROM requests'),
    connectionEvents: one('SELECT count(*) FROM connection_events'),
    auditRecords: one('SELECT count(*) FROM audit_log'),
  };
}

/** Preshared-key references of peers that are not revoked (their key files must be in a backup). */
export function livePskRefs(db: Db): string[] {
  return db.prepare(`SELECT psk_ref FROM peers WHERE status <> 'revoked' AND psk_ref IS NOT NULL`).pluck().all() as string[];
}
