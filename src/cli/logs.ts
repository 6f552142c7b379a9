import type { Config } from '../config.js';
import { escapeControl } from '../core/format.js';
import type { AuditRow } from '../db/audit.js';
import type { ConnectionEventRow } from '../db/connections.js';
import { openDatabase } from '../db/open.js';
import type { RequestRow } from '../db/requests.js';
import { parseLogFilters, queryService } from '../gateway/queries.js';
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
  // Behind a pool router: the GPU host that served it, and its wait for a slot there.
  const pool = r.host ? `  on ${r.host}${r.queueMs ? `, waited ${r.queueMs} ms` : ''}` : '';
  return `${t}  ${r.peer ?? '-'}@${r.source}  ${what}  ${r.model ?? '-'}  ${r.status}${r.refusal ? ` ${r.refusal}` : ''}  ${Math.round(r.durationMs)}ms${tokens}${pool}${r.auth ? `  via ${r.auth}` : ''}`;
}

function formatAudit(e: AuditRow): string {
  return `${new Date(e.at).toISOString()}  ${e.actor}@${e.source}  ${e.action}  ${e.target ?? '-'}${e.details ? '  ' + JSON.stringify(e.details) : ''}`;
}

/**
 * `wg-ollama logs connections|requests|audit`: rows since --since (default 24h),
 * optionally for one peer; --json prints one JSON object per line (NDJSON)
 * so --follow can stream; --follow keeps printing new rows until interrupted.
 */
export async function showLogs(config: Config, kind: string, o: LogOptions, io: Io, signal?: AbortSignal): Promise<void> {
  const filters = parseLogFilters(kind, { peer: o.peer, since: o.since ?? '24h', model: o.model, status: o.status, limit: o.limit }, (f) => `--${f}`);
  const db = openDatabase(config.paths.db);
  try {
    const queries = queryService({ db, config });
    // The first read shows the newest `limit` rows; --follow then prints everything after them.
    let after: number | undefined;
    const print = (rows: { id: number; at: number }[]): void => {
      for (const r of rows) {
        // Model names, sign-in names and endpoints are chosen by clients: the
        // human line is escaped whole, so none of them can end it or drive the terminal.
        const text = o.json ? JSON.stringify({ ...r, at: new Date(r.at).toISOString() })
          : escapeControl(filters.kind === 'connections' ? formatConnection(r as ConnectionEventRow)
            : filters.kind === 'requests' ? formatRequest(r as RequestRow)
            : formatAudit(r as AuditRow));
        io.out(text + '\n');
        after = r.id;
      }
    };
    print(queries.log(filters));
    while (o.follow && !signal?.aborted) {
      await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
      print(queries.log({ ...filters, after: after ?? 0 }));
    }
  } finally {
    db.close();
  }
}
