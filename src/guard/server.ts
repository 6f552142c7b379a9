import type { EventLog } from '../core/log-events.js';
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import type { Limits } from '../core/limits.js';
import type { Refusal } from '../core/policy.js';
import { createRateLimiter } from '../core/rate.js';
import type { RequestRecord } from '../core/request-record.js';
import type { GuardPeer, PeerSet } from '../core/wire.js';
import { loadChatSite, type ChatSite } from './browser.js';
import { createBudget, type Usage } from './budget.js';
import { refusalBody } from './answer.js';
import { handleExchange, type ExchangeDeps } from './exchange.js';
import { identifyConnection, plainAddress, type ConnectionIdentity } from './identity.js';
import type { GuardMetrics } from './metrics.js';
import { EMPTY_PEER_SET, indexPeerSet } from './peer-set.js';
import { createUpstreamSlots } from './slots.js';
import { createTokenGate } from './tokens.js';
import { createUpstream } from './upstream.js';
import { createPool, type PoolOptions } from './pool.js';
import { createGuardTrace, nowUs, type TraceRecord } from './trace.js';

/** The guard's logger: every line names its event (src/core/log-events.ts). */
export type GuardLog = EventLog;

export interface GuardOptions {
  tls: { key: string; cert: string; ca: string };
  limits: Limits;
  /** Ollama's origin, e.g. http://127.0.0.1:11434. */
  upstream: string;
  metrics: GuardMetrics;
  record(r: Omit<RequestRecord, 'seq'>): void;
  log: GuardLog;
  clock?: () => number;
  /** The chat page's files; read from web/chat when the guard is created if not given. */
  web?: ChatSite;
  /** Refuses requests while their records cannot be written (audit.ts); without it, never. */
  audit?: ExchangeDeps['audit'];
  /** Keep each request's leg times (trace.ts) for `trace.drain()`; off by default, and free when off. */
  trace?: boolean;
  /**
   * Route to a pool of GPU hosts instead of `upstream` (pool.ts, docs/gpu-pool.md). Its probes
   * start with `guard.pool.start()`.
   */
  pool?: PoolOptions;
  /** This guard is a pool member (member.ts): only its router's certificate, by serial, may use it. */
  member?: ExchangeDeps['member'];
}

/**
 * The guard: an HTTPS server (not yet listening) that requires a client
 * certificate from our CA, applies the current peer set and policy to every
 * request, and proxies to Ollama over a pooled keep-alive client. `setPeers`
 * swaps the peer set at once and closes every connection whose certificate
 * is no longer good, streams in flight included.
 */
export function createGuard(o: GuardOptions) {
  const clock = o.clock ?? Date.now;
  let set: PeerSet = EMPTY_PEER_SET;
  let index = new Map<string, GuardPeer>();
  const identities = new WeakMap<TLSSocket, ConnectionIdentity>();
  const bySerial = new Map<string, Set<TLSSocket>>();
  const cutReasons = new WeakMap<TLSSocket, string>();
  /** Requests of a socket now in handleExchange (which records them; pipelined ones overlap), and sockets a parser error was answered on. */
  const inExchange = new WeakMap<Socket, number>();
  const answered = new WeakSet<Socket>();
  const budget = createBudget();
  const tokens = createTokenGate({ tokenFailure: (reason) => o.metrics.tokenFailure(reason) });
  // Its timeouts (idleTimeoutSec) are checked at a quarter of the limit, at most every 500 ms.
  const upstream = createUpstream({ origin: o.upstream, keepAliveMs: 30_000, maxIdle: o.limits.maxUpstreamRequests, timerResolutionMs: Math.min(500, o.limits.idleTimeoutSec * 250) });
  let expiryTimer: NodeJS.Timeout | undefined;
  const trace = o.trace ? createGuardTrace() : undefined;
  const pool = o.pool ? createPool({ timerResolutionMs: Math.min(500, o.limits.idleTimeoutSec * 250), ...o.pool }) : undefined;
  /** With tracing on: when each connection's handshake finished, and how many requests it has carried. */
  const accepts = new WeakMap<Socket, { at: number; n: number }>();

  const deps: ExchangeDeps = {
    limits: o.limits,
    upstream,
    metrics: o.metrics,
    budget,
    rate: createRateLimiter(),
    clock,
    peerBySerial: (serial) => (serial === null ? undefined : index.get(serial)),
    logPrompts: () => set.logPrompts,
    record: o.record,
    streams: new Map(),
    slots: createUpstreamSlots(o.limits, (peer, n) => o.metrics.upstreamInFlight(peer, n)),
    cutReason: (s) => cutReasons.get(s),
    web: o.web ?? loadChatSite(),
    tokens,
    ...(o.audit ? { audit: o.audit } : {}),
    ...(trace ? { trace } : {}),
    ...(pool ? { pool } : {}),
    ...(o.member ? { member: o.member } : {}),
  };

  const server: Server = createServer(
    {
      key: o.tls.key,
      cert: o.tls.cert,
      ca: o.tls.ca,
      requestCert: true,
      // Verified by OpenSSL against our CA either way; a bad certificate is answered
      // 401 in JSON (and recorded) instead of a bare TLS alert.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      maxHeaderSize: o.limits.maxHeaderBytes,
      headersTimeout: o.limits.headerTimeoutSec * 1000,
      // Node checks headersTimeout/requestTimeout only this often (default 30 s, so a slow-header
      // client would hold its connection for up to 30 s past the limit).
      connectionsCheckingInterval: Math.min(1000, o.limits.headerTimeoutSec * 250),
      requestTimeout: o.limits.bodyTimeoutSec * 1000 + o.limits.headerTimeoutSec * 1000,
      keepAliveTimeout: o.limits.keepAliveSec * 1000,
      noDelay: true,
      // A client that opens TCP and never finishes the handshake is dropped with the slow-header clients.
      handshakeTimeout: o.limits.headerTimeoutSec * 1000,
    },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      let tr: TraceRecord | undefined;
      if (trace) {
        const a = accepts.get(socket);
        tr = trace.begin(req, a?.at ?? null, a ? a.n++ : 0);
      }
      const id = identities.get(socket) ?? identifyConnection(socket);
      inExchange.set(socket, (inExchange.get(socket) ?? 0) + 1);
      res.once('close', () => inExchange.set(socket, (inExchange.get(socket) ?? 1) - 1));
      // Node sets a keep-alive connection's timeout to 0 when its next request arrives: re-arm the idle limit.
      socket.setTimeout(o.limits.idleTimeoutSec * 1000);
      handleExchange(deps, id, req, res, tr).catch((e: unknown) => {
        o.log.error({ event: 'exchange.failed', err: (e as Error).message }, 'request failed');
        if (!res.headersSent && !res.destroyed) {
          res.writeHead(500, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
          res.end(JSON.stringify({ error: 'internal guard error' }));
        } else res.destroy();
      });
    },
  );

  server.on('secureConnection', (socket: TLSSocket) => {
    if (trace) accepts.set(socket, { at: nowUs(), n: 0 });
    const id = identifyConnection(socket);
    identities.set(socket, id);
    if (id.failure) o.metrics.authFailure(id.failure.reason);
    if (id.serial) {
      let list = bySerial.get(id.serial);
      if (!list) bySerial.set(id.serial, (list = new Set()));
      list.add(socket);
      socket.once('close', () => {
        list!.delete(socket);
        if (list!.size === 0 && bySerial.get(id.serial!) === list) bySerial.delete(id.serial!);
      });
    }
    // No byte either way for this long: the request (or the idle keep-alive) is cut. With an
    // answer waiting to be written, it is the client that stopped reading (exchange.ts cuts those too).
    socket.setTimeout(o.limits.idleTimeoutSec * 1000, () => {
      cutReasons.set(socket, socket.writableNeedDrain ? 'client_stalled' : 'idle_timeout');
      socket.destroy();
    });
  });

  // Handshakes that never finished (no TLS, wrong protocol, client refused our certificate).
  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    o.metrics.authFailure('tls_handshake');
    o.record(errorRecord(plainAddress(socket.remoteAddress), null, null, 0, 'tls_handshake_failed', clock()));
    socket.destroy();
  });

  // Requests Node's parser refused before our handler ran: oversized or slow heads, CL+TE, garbage.
  server.on('clientError', (err: Error & { code?: string }, socket: Socket) => {
    const tls = socket as TLSSocket;
    const id = identities.get(tls);
    // https.Server re-emits every tlsClientError as clientError: a failed handshake is recorded there, once.
    // And one answer per connection: the client closing after our 408/431 is not another error.
    if (!identities.has(tls) || answered.has(socket)) return void socket.destroy();
    const r = parserRefusal(err.code);
    if (r && socket.writable && !(err.code === 'ECONNRESET')) {
      answered.add(socket);
      const body = refusalBody(r);
      socket.end(`HTTP/1.1 ${r.status} ${STATUS_TEXT[r.status] ?? 'Error'}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    } else socket.destroy();
    if (r && (inExchange.get(socket) ?? 0) > 0) {
      // The request was already handed over (its body was still arriving): the exchange records it, with this reason.
      cutReasons.set(tls, r.reason);
    } else if (r) {
      o.metrics.refusal(r.reason);
      const peer = id?.serial ? index.get(id.serial)?.name ?? null : null;
      o.record(errorRecord(id?.source ?? plainAddress(socket.remoteAddress), peer, id?.serial ?? null, r.status, r.reason, clock()));
    }
  });

  /** Closes the connections of certificates that are no longer good, and arms a timer for the next expiry. */
  const enforce = (): void => {
    const now = clock();
    clearTimeout(expiryTimer);
    // The next expiry of any peer in the set, not only of those connected now: a
    // connection made after this call must be cut at its peer's expiry too.
    let next = Infinity;
    for (const p of index.values()) if (p.expiresAt !== null && p.expiresAt > now) next = Math.min(next, p.expiresAt);
    const routers = o.member?.routers();
    for (const [serial, sockets] of bySerial) {
      // A pool member's router is not a peer: its connections stay while its certificate is in the router list.
      if (routers?.has(serial)) continue;
      const p = index.get(serial);
      const expired = p && p.expiresAt !== null && p.expiresAt <= now;
      if (p && !expired) continue;
      for (const s of sockets) {
        cutReasons.set(s, expired ? 'peer_expired' : 'peer_revoked');
        s.destroy();
      }
    }
    tokens.enforce(now, (s, reason) => {
      cutReasons.set(s as TLSSocket, reason);
      s.destroy();
    });
    if (next !== Infinity) expiryTimer = setTimeout(enforce, Math.min(Math.max(0, next - now + 1), 2 ** 31 - 1));
  };

  return {
    server,
    /** Replaces the peer set; connections it no longer allows are closed at once. */
    setPeers(next: PeerSet): void {
      set = next;
      index = indexPeerSet(next);
      tokens.setPeers(next.peers);
      budget.seed(next.day, next.tokensToday, clock());
      o.metrics.peers(next.peers.length);
      enforce();
    },
    peers: (): PeerSet => set,
    /** Per-request leg times, when created with `trace: true` (trace.ts). */
    trace,
    /** The GPU hosts, when created with `pool` (pool.ts). */
    pool,
    /**
     * The daily budget's ledger (budget.ts): the gateway's figures as they arrive, the
     * records as they reach the spool (or the database) with their sequence numbers, and
     * at start what the spool still holds.
     */
    budget: {
      usage: (u: Usage): void => budget.usage(u, clock()),
      spooled: (records: Parameters<typeof budget.spooled>[0]): void => budget.spooled(records, clock()),
      restore: (records: Parameters<typeof budget.restore>[0], saved: Usage | null): void => budget.restore(records, saved, clock()),
      used: (peer: string): number => budget.used(peer, clock()),
    },
    /** Open client connections (for health and tests). */
    connections: (): number => [...bySerial.values()].reduce((n, s) => n + s.size, 0) + tokens.connections(),
    async close(): Promise<void> {
      clearTimeout(expiryTimer);
      trace?.close();
      server.close();
      server.closeAllConnections();
      await upstream.close().catch(() => undefined);
      await pool?.close().catch(() => undefined);
    },
  };
}

export type Guard = ReturnType<typeof createGuard>;

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 413: 'Payload Too Large', 431: 'Request Header Fields Too Large' };

function parserRefusal(code: string | undefined): Refusal | null {
  switch (code) {
    case 'ECONNRESET':
      return null;
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, error: 'request headers too large', reason: 'headers_too_large' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, error: 'request not received in time', reason: 'request_timeout' };
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return { status: 400, error: 'request has both Content-Length and Transfer-Encoding', reason: 'ambiguous_length' };
    default:
      return { status: 400, error: 'malformed request', reason: 'bad_request' };
  }
}

function errorRecord(source: string, peer: string | null, serial: string | null, status: number, refusal: string, at: number): Omit<RequestRecord, 'seq'> {
  return {
    at, peer, certSerial: serial, source, method: null, path: null, endpoint: null, model: null, promptSha256: null, promptLength: null,
    promptText: null, status, bytesIn: 0, bytesOut: 0, promptTokens: null, evalTokens: null, ttfbMs: null, durationMs: 0, refusal,
  };
}
