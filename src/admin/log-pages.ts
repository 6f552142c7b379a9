import { Router, type NextFunction, type Request, type Response } from 'express';
import type { AuditRow } from '../db/audit.js';
import type { ConnectionEventRow } from '../db/connections.js';
import type { RequestRow } from '../db/requests.js';
import { isWgoError } from '../errors.js';
import { httpStatusOf } from './http-status.js';
import { parseLogFilters, type LogKind, type LogRows } from '../gateway/queries.js';
import { render } from './render.js';
import type { AdminAppDeps } from './common.js';

const PAGE = 50;
const iso = (ms: number): string => new Date(ms).toISOString();
const SINCE = { name: 'since', label: 'Since', placeholder: 'e.g. 24h, 7d' };

interface Field { name: string; label: string; placeholder?: string }

/** What each log page shows: its filter fields, columns, and a row as cells. */
const PAGES: { [K in LogKind]: { title: string; fields: Field[]; headers: string[]; cells(row: LogRows[K]): string[] } } = {
  requests: {
    title: 'Request log',
    fields: [{ name: 'peer', label: 'Peer' }, { name: 'model', label: 'Model' }, { name: 'status', label: 'Status', placeholder: 'e.g. 200, 429' }, SINCE],
    headers: ['When', 'Peer', 'Source', 'Auth', 'Request', 'Model', 'Status', 'Tokens', 'TTFB ms', 'ms', 'GPU host', 'Refusal'],
    cells: (q: RequestRow) => [
      iso(q.at), q.peer ?? '—', q.source, q.auth ?? '—', `${q.method ?? ''} ${q.path ?? ''}`, q.model ?? '—', String(q.status),
      q.estimatedTokens != null ? `~${q.estimatedTokens} (estimated)` : q.promptTokens === null && q.evalTokens === null ? '—' : `${q.promptTokens ?? 0} + ${q.evalTokens ?? 0}`,
      q.ttfbMs === null ? '—' : String(Math.round(q.ttfbMs)), String(Math.round(q.durationMs)),
      q.host ? `${q.host}${q.queueMs ? ` (waited ${q.queueMs} ms)` : ''}` : '—', q.refusal ?? '',
    ],
  },
  connections: {
    title: 'Connection log',
    fields: [{ name: 'peer', label: 'Peer' }, SINCE],
    headers: ['When', 'Peer', 'Event', 'Endpoint', 'Previous endpoint', 'Bytes'],
    cells: (e: ConnectionEventRow) => [
      iso(e.at), e.peer, e.kind.replace('_', ' '), e.endpoint ?? '—', e.oldEndpoint ?? '', e.rxBytes === null ? '' : `↓ ${e.rxBytes} ↑ ${e.txBytes ?? 0}`,
    ],
  },
  audit: {
    title: 'Admin audit log',
    fields: [{ name: 'match', label: 'Action, actor or target', placeholder: 'e.g. peer.revoke, alice' }, SINCE],
    headers: ['When', 'Who', 'From', 'Action', 'Target', 'Details'],
    cells: (a: AuditRow) => [iso(a.at), a.actor, a.source, a.action, a.target ?? '—', a.details ? JSON.stringify(a.details) : ''],
  },
};

/** A query field as the form sent it: trimmed, and a blank field is no filter. */
const field = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);

/** The link to the next (older) page, keeping the filters. */
function olderLink(path: string, req: Request, rows: { id: number }[]): string | null {
  if (rows.length < PAGE) return null;
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(req.query)) if (k !== 'before' && typeof v === 'string' && v) p.set(k, v);
  p.set('before', String(rows[0]!.id));
  return `${path}?${p.toString()}`;
}

/**
 * Request log, connection log, admin audit log: filters (validated by the
 * query service, as the CLI's are), newest first, paging to older rows. Bad
 * filters are answered on the page (400; an unknown peer 404); anything else
 * goes to the app's error page (its status by the kind; 500 and logged when unexpected).
 */
export function logPages(deps: AdminAppDeps): Router {
  const r = Router();
  for (const kind of Object.keys(PAGES) as LogKind[]) {
    const page = PAGES[kind] as (typeof PAGES)['requests'];
    const path = `/logs/${kind}`;
    r.get(path, (req: Request, res: Response, next: NextFunction) => {
      const input: Record<string, string | undefined> = Object.fromEntries(page.fields.map((f) => [f.name, field(req.query[f.name])]));
      const filters = page.fields.map((f) => ({ ...f, value: input[f.name] ?? '' }));
      let rows: RequestRow[] = [];
      let error: string | undefined;
      let status = 200;
      try {
        rows = deps.queries.log(parseLogFilters(kind, { ...input, before: field(req.query.before), limit: PAGE })) as RequestRow[];
      } catch (e) {
        if (!isWgoError(e) || !(e.kind === 'bad-input' || e.kind === 'not-found')) return next(e);
        error = e.message;
        status = httpStatusOf(e.kind);
      }
      const table = [...rows].reverse().map((row) => page.cells(row));
      try {
        render(req, res, 'logs', { title: page.title, nav: kind, path, filters, headers: page.headers, rows: table, older: olderLink(path, req, rows), error }, status);
      } catch (e) {
        next(e);
      }
    });
  }
  return r;
}
