import type { Config } from '../config.js';
import { parseDuration } from '../core/duration.js';
import { escapeControl } from '../core/format.js';
import { auditRepository, type AuditRow } from '../db/audit.js';
import { connectionRepository, type ConnectionEventRow } from '../db/connections.js';
import { openDatabase } from '../db/open.js';
import { peerRepository } from '../db/peers.js';
import { normaliseModel } from '../core/policy.js';
import { requestRepository, type RequestRow } from '../db/requests.js';
import { WgoError, badInput } from '../errors.js';
import { bytes, type Io } from './output.js';

export interface LogOptions {
  peer?: string;
  since?: string;
  json?: boolean;
  follow?: boolean;
  limit?: string;
  model?: string;
  status?: string;
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

function formatRequest(r: RequestRow): string {
  const t = new Date(r.at).toISOString();
  // An estimate was charged instead of Ollama's counts (missing or implausible): shown as such.
  const tokens = r.estimatedTokens != null ? `  tokens ~${r.estimatedTokens} (estimated)`
    : r.promptTokens !== null || r.evalTokens !== null ? `  tokens ${r.promptTokens ?? 0}+${r.evalTokens ?? 0}` : '';
  const what = r.method ? `${r.method} ${r.path}` : '(no request)';
  return `${t}  ${r.peer ?? '-'}@${r.source}  ${what}  ${r.model ?? '-'}  ${r.status}${r.refusal ? ` ${r.refusal}` : ''}  ${Math.round(r.durationMs)}ms${tokens}${r.auth ? `  via ${r.auth}` : ''}`;
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
  if (kind !== 'connections' && kind !== 'audit' && kind !== 'requests') throw badInput(`unknown log "${kind}": use connections, requests or audit`);
  if (kind !== 'requests' && (o.model !== undefined || o.status !== undefined)) throw badInput('--model and --status apply to request logs only');
  const status = o.status === undefined ? undefined : Number(o.status);
  if (status !== undefined && !(Number.isInteger(status) && status >= 0 && status <= 999 && /^\d{1,3}$/.test(o.status!))) throw badInput('--status must be an HTTP status code such as 200 or 429');
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
    const requests = requestRepository(db);
    let afterId = 0;
    // The first read shows the newest `limit` rows; --follow then prints everything after them.
    let newest = true;
    const fetch = (): { id: number; at: number }[] => {
      const rows =
        kind === 'connections' ? conns.list({ since, peerId, afterId, limit, newest })
        : kind === 'requests' ? requests.list({ since, peerId, model: o.model === undefined ? undefined : normaliseModel(o.model), status, afterId, limit, newest })
        : audit.list({ since, afterId, limit, newest });
      newest = false;
      return rows;
    };
    const print = (rows: { id: number; at: number }[]): void => {
      for (const r of rows) {
        // Model names, sign-in names and endpoints are chosen by clients: the
        // human line is escaped whole, so none of them can end it or drive the terminal.
        const text = o.json ? JSON.stringify({ ...r, at: new Date(r.at).toISOString() })
          : escapeControl(kind === 'connections' ? formatConnection(r as unknown as ConnectionEventRow)
            : kind === 'requests' ? formatRequest(r as unknown as RequestRow)
            : formatAudit(r as unknown as AuditRow));
        io.out(text + '\n');
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
