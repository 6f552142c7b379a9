import { WgoError, asDiskFull } from '../errors.js';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { requestRecordSchema, type RequestRecord } from '../core/request-record.js';
import { SPOOL_ID, issuesText, poolReportSchema, pushRequestSchema, type PoolReport, type PushAnswer } from '../core/wire.js';
import { certificateRepository, type GuardRow } from '../db/certificates.js';
import type { Db } from '../db/open.js';
import { requestRepository } from '../db/requests.js';
import { normaliseSerial } from '../pki/ca.js';
import type { PeerSetSource } from './peer-set.js';

/** Longest a guard's long-poll is held open without a change. */
const MAX_WAIT_SEC = 30;
const MAX_PUSH_BYTES = 32 * 1024 * 1024;
/** A report at its largest (64 hosts, two lists of 1,000 names of 256 characters each) is about 33 MB. */
const MAX_POOL_BYTES = 40 * 1024 * 1024;

/** The request body as text; null when it is larger than `max` bytes. */
async function readBody(req: IncomingMessage, max: number): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > max) return null;
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Wakes long-polls when the database changed (serve's change poll calls notify). */
export function changeSignal() {
  let waiters: (() => void)[] = [];
  return {
    notify(): void {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    },
    wait(ms: number): Promise<void> {
      return new Promise((resolve) => {
        const t = setTimeout(done, ms);
        function done(): void {
          clearTimeout(t);
          waiters = waiters.filter((f) => f !== done);
          resolve();
        }
        waiters.push(done);
      });
    },
  };
}

export type ChangeSignal = ReturnType<typeof changeSignal>;

export interface SyncApiOptions {
  db: Db;
  tls: { key: string; cert: string; ca: string };
  source: PeerSetSource;
  changes: ChangeSignal;
  /** Stores the pool router's report of its members (guard-service report); without it, POST /v1/pool is 404. */
  onPoolReport?(router: GuardRow, report: PoolReport): void;
  /** Called with every batch stored (new records only), e.g. for metrics. */
  onRecords?(guard: string, records: RequestRecord[]): void;
  clock?: () => number;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * The guard sync API (mTLS; only certificates issued to a guard, not revoked):
 *   GET  /v1/peers?after=VERSION&wait=SEC  the active peer set, long-polled: answered at once when
 *                                          the version differs, else when it changes, else 204 after SEC
 *   POST /v1/records {spool, records:[...]} request records; (guard, spool, seq) already stored are
 *                                          skipped, malformed ones reported in `rejected` and skipped;
 *                                          the answer carries `usage` (below) read after the insert
 *   GET  /v1/usage?spool=ID                today's charged tokens per active peer (all guards) and
 *                                          `upTo`, the highest seq stored from this guard's spool ID:
 *                                          the daily budget's figures (guard/budget.ts), which no
 *                                          peer-set version tracks
 *   POST /v1/pool {hosts:[...], queued}    the pool router's view of its members (health, models, in
 *                                          flight, queued), for list-guards, status and remove-guard;
 *                                          403 from any guard that is not the router
 */
export function createSyncApi(o: SyncApiOptions): Server {
  const clock = o.clock ?? Date.now;
  const certs = certificateRepository(o.db);
  const requests = requestRepository(o.db);

  const guardOf = (socket: TLSSocket) => {
    if (!socket.authorized) return null;
    const serial = normaliseSerial(socket.getPeerCertificate().serialNumber);
    const cert = certs.bySerial(serial);
    if (!cert || cert.role !== 'guard-client' || cert.revokedAt !== null || cert.guardId === null) return null;
    const g = certs.guardById(cert.guardId);
    return g && g.revokedAt === null ? g : null;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const socket = req.socket as TLSSocket;
    const guard = guardOf(socket);
    if (!guard) return json(res, 403, { error: 'this certificate is not a guard of this gateway' });
    const url = new URL(req.url ?? '/', 'https://gateway');
    const from = socket.remoteAddress ?? '?';

    if (url.pathname === '/v1/peers' && req.method === 'GET') {
      const after = url.searchParams.get('after') ?? '';
      const wait = Math.min(Math.max(Number(url.searchParams.get('wait') ?? 0) || 0, 0), MAX_WAIT_SEC);
      const deadline = Date.now() + wait * 1000;
      let closed = false;
      res.on('close', () => (closed = true));
      while (o.source.version() === after && Date.now() < deadline && !closed) {
        await o.changes.wait(Math.max(1, deadline - Date.now()));
      }
      if (closed) return;
      certs.guardSeen(guard.id, clock(), from, o.source.version());
      if (o.source.version() === after) {
        res.writeHead(204);
        res.end();
        return;
      }
      return json(res, 200, o.source.load(clock()));
    }

    if (url.pathname === '/v1/usage' && req.method === 'GET') {
      const spool = url.searchParams.get('spool') ?? '';
      if (!SPOOL_ID.test(spool)) return json(res, 400, { error: 'spool must be the guard\'s spool id (16 to 64 hex digits)' });
      return json(res, 200, o.source.usage(clock(), guard.name, spool));
    }

    if (url.pathname === '/v1/pool' && req.method === 'POST' && o.onPoolReport) {
      if (guard.poolRole !== 'router') return json(res, 403, { error: `guard ${guard.name} is not the pool's router` });
      const body = await readBody(req, MAX_POOL_BYTES);
      if (body === null) return json(res, 413, { error: `pool report larger than ${MAX_POOL_BYTES} bytes` });
      let parsed;
      try {
        parsed = poolReportSchema.safeParse(JSON.parse(body));
      } catch {
        return json(res, 400, { error: 'body is not JSON' });
      }
      if (!parsed.success) return json(res, 400, { error: `invalid pool report: ${issuesText(parsed.error)}` });
      o.onPoolReport(guard, parsed.data);
      certs.guardSeen(guard.id, clock(), from, null);
      res.writeHead(204);
      res.end();
      return;
    }

    if (url.pathname === '/v1/records' && req.method === 'POST') {
      const body = await readBody(req, MAX_PUSH_BYTES);
      if (body === null) return json(res, 413, { error: `push larger than ${MAX_PUSH_BYTES} bytes` });
      let parsed;
      try {
        parsed = pushRequestSchema.safeParse(JSON.parse(body));
      } catch {
        return json(res, 400, { error: 'body is not JSON' });
      }
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        return json(res, 400, { error: `invalid records: ${issue.path.join('.')}: ${issue.message}` });
      }
      // Each record on its own: a malformed one is reported and skipped, never allowed to block the rest.
      const records: RequestRecord[] = [];
      const rejected: NonNullable<PushAnswer['rejected']> = [];
      for (const raw of parsed.data.records) {
        const r = requestRecordSchema.safeParse(raw);
        if (r.success) records.push(r.data);
        else rejected.push({ seq: (raw as { seq?: unknown } | null)?.seq ?? null, error: issuesText(r.error) });
      }
      const fresh = requests.insertNew(guard.name, records, parsed.data.spool ?? '');
      certs.guardSeen(guard.id, clock(), from, null);
      if (fresh.length > 0) o.onRecords?.(guard.name, fresh);
      const usage = parsed.data.spool ? o.source.usage(clock(), guard.name, parsed.data.spool) : undefined;
      const answer: PushAnswer = { received: parsed.data.records.length, stored: fresh.length, rejected, upTo: records.reduce((m, r) => Math.max(m, r.seq), 0), usage };
      return json(res, 200, answer);
    }
    return json(res, 404, { error: 'unknown sync endpoint' });
  };

  return createServer(
    { key: o.tls.key, cert: o.tls.cert, ca: o.tls.ca, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2', headersTimeout: 10_000, requestTimeout: 60_000 },
    (req, res) => {
      handle(req, res).catch((e: unknown) => {
        // A full disk is the gateway's trouble for now, not the guard's: 503, and the guard keeps its spool and pushes again.
        const full = asDiskFull(e, 'nothing was stored');
        if (!res.headersSent) json(res, full instanceof WgoError ? 503 : 500, { error: (full as Error).message });
        else res.destroy();
      });
    },
  );
}
