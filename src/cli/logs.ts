import type { Config } from '../config.js';
import { parseDuration } from '../core/duration.js';
import { auditRepository, type AuditRow } from '../db/audit.js';
import { connectionRepository, type ConnectionEventRow } from '../db/connections.js';
import { openDatabase } from '../db/open.js';
import { peerRepository } from '../db/peers.js';
import { WgoError, badInput } from '../errors.js';
import { bytes, type Io } from './output.js';

export interface LogOptions {
  peer?: string;
  since?: string;
  json?: boolean;
  follow?: boolean;
  limit?: string;
}

const FOLLOW_POLL_MS = 500;

function formatConnection(e: ConnectionEventRow): string {
  const t = new Date(e.at).toISOString();
  switch (e.kind) {
    case 'handshake': return `${t}  ${e.peer}  handshake from ${e.endpoint ?? '?'}`;
    case 'handshake_lost': return `${t}  ${e.peer}  handshake lost (last endpoint ${e.endpoint ?? '?'})`;
    case 'endpoint_changed': return `${t}  ${e.peer}  endpoint ${e.oldEndpoint} -> ${e.endpoint}`;
    default: return `${t}  ${e.peer}  traffic rx ${bytes(e.rxBytes ?? 0)} tx ${bytes(e.txBytes ?? 0)}`;
  }
}

function formatAudit(e: AuditRow): string {
  return `${new Date(e.at).toISOString()}  ${e.actor}@${e.source}  ${e.action}  ${e.target ?? '-'}${e.details ? '  ' + JSON.stringify(e.details) : ''}`;
}

/**
 * `wg-ollama logs connections|audit`: rows since --since (default 24h),
 * optionally for one peer; --json prints one JSON object per line (NDJSON)
 * so --follow can stream; --follow keeps printing new rows until interrupted.
 */
export async function showLogs(config: Config, kind: string, o: LogOptions, io: Io, signal?: AbortSignal): Promise<void> {
  if (kind !== 'connections' && kind !== 'audit') throw badInput(`unknown log "${kind}": use connections or audit`);
  const since = Date.now() - parseDuration(o.since ?? '24h', '--since');
  const limit = o.limit === undefined ? 1000 : Number(o.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw badInput('--limit must be a whole number from 1 to 100000');
  const db = openDatabase(config.paths.db);
  try {
    let peerId: number | undefined;
    if (o.peer !== undefined) {
      if (kind === 'audit') throw badInput('--peer applies to connection logs only');
      const p = peerRepository(db).byName(o.peer);
      if (!p) throw new WgoError('NOT_FOUND', `no peer named "${o.peer}"`);
      peerId = p.id;
    }
    const conns = connectionRepository(db);
    const audit = auditRepository(db);
    let afterId = 0;
    // The first read shows the newest `limit` rows; --follow then prints everything after them.
    let newest = true;
    const fetch = (): { id: number; at: number }[] => {
      const rows = kind === 'connections' ? conns.list({ since, peerId, afterId, limit, newest }) : audit.list({ since, afterId, limit, newest });
      newest = false;
      return rows;
    };
    const print = (rows: { id: number; at: number }[]): void => {
      for (const r of rows) {
        io.out((o.json ? JSON.stringify({ ...r, at: new Date(r.at).toISOString() }) : kind === 'connections' ? formatConnection(r as unknown as ConnectionEventRow) : formatAudit(r as unknown as AuditRow)) + '\n');
        afterId = r.id;
      }
    };
    print(fetch());
    while (o.follow && !signal?.aborted) {
      await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
      print(fetch());
    }
  } finally {
    db.close();
  }
}
