import { Router, type Request } from 'express';
import { ago } from '../core/format.js';
import { parseDuration } from '../core/duration.js';
import { auditRepository } from '../db/audit.js';
import { certificateRepository } from '../db/certificates.js';
import { connectionRepository } from '../db/connections.js';
import { peerRepository } from '../db/peers.js';
import { requestRepository } from '../db/requests.js';
import { badInput } from '../errors.js';
import { render } from './render.js';
import type { AdminAppDeps } from './common.js';

export type { StatusSource } from './common.js';

const PAGE = 50;
const str = (v: unknown): string => (typeof v === 'string' ? v.trim().slice(0, 64) : '');
const iso = (ms: number): string => new Date(ms).toISOString();

/** Filters shared by the logs: ?since=24h, ?before=ID (paging to older rows). */
function common(req: Request): { since: number; sinceText: string; beforeId: number | undefined } {
  const sinceText = str(req.query.since);
  const since = sinceText ? Date.now() - parseDuration(sinceText, 'since') : 0;
  const b = Number(str(req.query.before));
  return { since, sinceText, beforeId: Number.isSafeInteger(b) && b > 0 ? b : undefined };
}

/** The link to the next (older) page, keeping the filters. */
function olderLink(path: string, req: Request, rows: { id: number }[]): string | null {
  if (rows.length < PAGE) return null;
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(req.query)) if (k !== 'before' && typeof v === 'string' && v) p.set(k, v);
  p.set('before', String(rows[0]!.id));
  return `${path}?${p.toString()}`;
}

/** Request log, connection log, admin audit log (filters, newest first, paging), and the status page. */
export function logPages(deps: AdminAppDeps): Router {
  const r = Router();
  const { db } = deps.ctx;
  const requests = requestRepository(db);
  const connections = connectionRepository(db);
  const audit = auditRepository(db);
  const peers = peerRepository(db);
  const certs = certificateRepository(db);

  const peerId = (name: string): number | undefined => {
    if (!name) return undefined;
    const p = peers.byName(name);
    return p ? p.id : -1;
  };

  r.get('/logs/requests', (req, res, next) => {
    const peer = str(req.query.peer);
    const model = str(req.query.model);
    const status = str(req.query.status);
    const filters = [
      { name: 'peer', label: 'Peer', value: peer },
      { name: 'model', label: 'Model', value: model },
      { name: 'status', label: 'Status', value: status, placeholder: 'e.g. 200, 429' },
      { name: 'since', label: 'Since', value: str(req.query.since), placeholder: 'e.g. 24h, 7d' },
    ];
    let error: string | undefined;
    let rows: ReturnType<typeof requests.list> = [];
    try {
      const c = common(req);
      if (status && !/^\d{3}$/.test(status)) throw badInput('status must be a three-digit HTTP status');
      rows = requests.list({ since: c.since, beforeId: c.beforeId, peerId: peerId(peer), model: model || undefined, status: status ? Number(status) : undefined, limit: PAGE, newest: true });
    } catch (e) {
      error = (e as Error).message;
    }
    const headers = ['When', 'Peer', 'Source', 'Auth', 'Request', 'Model', 'Status', 'Tokens', 'TTFB ms', 'ms', 'Refusal'];
    const table = [...rows].reverse().map((q) => [
      iso(q.at), q.peer ?? '—', q.source, q.auth ?? '—', `${q.method ?? ''} ${q.path ?? ''}`, q.model ?? '—', String(q.status),
      q.estimatedTokens != null ? `~${q.estimatedTokens} (estimated)` : q.promptTokens === null && q.evalTokens === null ? '—' : `${q.promptTokens ?? 0} + ${q.evalTokens ?? 0}`,
      q.ttfbMs === null ? '—' : String(Math.round(q.ttfbMs)), String(Math.round(q.durationMs)), q.refusal ?? '',
    ]);
    try {
      render(req, res, 'logs', { title: 'Request log', nav: 'requests', path: '/logs/requests', filters, headers, rows: table, older: olderLink('/logs/requests', req, rows), error }, error ? 400 : 200);
    } catch (e) {
      next(e);
    }
  });

  r.get('/logs/connections', (req, res) => {
    const peer = str(req.query.peer);
    const filters = [
      { name: 'peer', label: 'Peer', value: peer },
      { name: 'since', label: 'Since', value: str(req.query.since), placeholder: 'e.g. 24h, 7d' },
    ];
    let error: string | undefined;
    let rows: ReturnType<typeof connections.list> = [];
    try {
      const c = common(req);
      rows = connections.list({ since: c.since, beforeId: c.beforeId, peerId: peerId(peer), limit: PAGE, newest: true });
    } catch (e) {
      error = (e as Error).message;
    }
    const table = [...rows].reverse().map((e) => [
      iso(e.at), e.peer, e.kind.replace('_', ' '), e.endpoint ?? '—', e.oldEndpoint ?? '', e.rxBytes === null ? '' : `↓ ${e.rxBytes} ↑ ${e.txBytes ?? 0}`,
    ]);
    render(req, res, 'logs', { title: 'Connection log', nav: 'connections', path: '/logs/connections', filters, headers: ['When', 'Peer', 'Event', 'Endpoint', 'Previous endpoint', 'Bytes'], rows: table, older: olderLink('/logs/connections', req, rows), error }, error ? 400 : 200);
  });

  r.get('/logs/audit', (req, res) => {
    const match = str(req.query.match);
    const filters = [
      { name: 'match', label: 'Action, actor or target', value: match, placeholder: 'e.g. peer.revoke, alice' },
      { name: 'since', label: 'Since', value: str(req.query.since), placeholder: 'e.g. 24h, 7d' },
    ];
    let error: string | undefined;
    let rows: ReturnType<typeof audit.list> = [];
    try {
      const c = common(req);
      rows = audit.list({ since: c.since, beforeId: c.beforeId, match: match || undefined, limit: PAGE, newest: true });
    } catch (e) {
      error = (e as Error).message;
    }
    const table = [...rows].reverse().map((a) => [iso(a.at), a.actor, a.source, a.action, a.target ?? '—', a.details ? JSON.stringify(a.details) : '']);
    render(req, res, 'logs', { title: 'Admin audit log', nav: 'audit', path: '/logs/audit', filters, headers: ['When', 'Who', 'From', 'Action', 'Target', 'Details'], rows: table, older: olderLink('/logs/audit', req, rows), error }, error ? 400 : 200);
  });

  r.get('/status', (req, res) => {
    const s = deps.status();
    const now = Date.now();
    const facts: [string, string, boolean | undefined][] = [
      ['Interface', `${deps.ctx.config.interface}: ${s.interfaceUp ? 'up' : 'down'}`, s.interfaceUp],
      ['Peers connected', String(s.peersConnected), undefined],
      ['Firewall', s.firewallInSync ? 'in sync with the database' : 'NOT in sync (see errors)', s.firewallInSync],
      ['Last reconcile', s.lastReconcile ?? 'not yet', undefined],
      ...s.errors.slice(0, 10).map((e): [string, string, boolean] => ['Error', e, false]),
    ];
    const guards = deps.ctx.guards.list().filter((g) => g.revokedAt === null).map((g) => ({ name: g.name, address: g.address, lastSeen: g.lastSeenAt ? `${ago(g.lastSeenAt, now)} from ${g.lastSeenFrom ?? '?'}` : 'never' }));
    const expiring = certs.expiring(now, now + 30 * 86_400_000).filter((c) => c.role === 'peer').map((c) => ({ name: c.commonName, serial: c.serial, notAfter: iso(c.notAfter) }));
    render(req, res, 'status', { title: 'Status', nav: 'status', facts, guards, expiring });
  });
  return r;
}
