import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Limits } from '../core/limits.js';
import type { EndpointDef } from '../core/ollama-api.js';
import { decideBody, decideHead, type Refusal } from '../core/policy.js';
import { createRateLimiter, secondsUntilUtcMidnight } from '../core/rate.js';
import type { RequestRecord } from '../core/request-record.js';
import { sameOriginAllowed } from '../core/web-request.js';
import { answerBrowser, type ChatSite } from './browser.js';
import type { Budget } from './budget.js';
import type { ConnectionIdentity } from './identity.js';
import type { GuardMetrics } from './metrics.js';
import type { GuardPeer } from '../core/wire.js';
import type { UpstreamSlots } from './slots.js';
import { authenticateByCertificate, type TokenGate } from './tokens.js';
import type { GuardTrace, TraceRecord } from './trace.js';
import type { Pool } from './pool.js';
import type { Upstream } from './upstream.js';
import { sendRefusal } from './answer.js';
import { forwardUpstream } from './forward.js';
import { authenticateRouter } from './member.js';

export interface ExchangeDeps {
  limits: Limits;
  upstream: Upstream;
  metrics: GuardMetrics;
  budget: Budget;
  rate: ReturnType<typeof createRateLimiter>;
  clock: () => number;
  /** Peer with this certificate serial in the current set. */
  peerBySerial(serial: string | null): GuardPeer | undefined;
  logPrompts(): boolean;
  record(r: Omit<RequestRecord, 'seq'>): void;
  /** In-flight generative requests per peer. */
  streams: Map<string, number>;
  /** Requests to Ollama in flight, per peer and in all, and who may send the next (slots.ts). */
  slots: UpstreamSlots;
  /** Why the guard cut this connection (revocation, timeout), read when the request ends. */
  cutReason(socket: TLSSocket): string | undefined;
  /** The chat page and its files (browser.ts). */
  web: ChatSite;
  /** Peer-bound API tokens (requests without a client certificate); without it, certificates only. */
  tokens?: TokenGate;
  /** Whether a request may go to Ollama while its record cannot be written (audit.ts); without it, always. */
  audit?: { admit(): Refusal | null };
  /** This guard is a pool member (member.ts): only these router certificates (serials) may use it. */
  member?: { routers(): ReadonlySet<string> };
  /** A pool of GPU hosts (pool.ts, docs/gpu-pool.md): requests are routed to its members instead of `upstream`. */
  pool?: Pool;
  /** Per-request leg times (trace.ts); absent unless asked for. */
  trace?: GuardTrace;
}

type Draft = Omit<RequestRecord, 'seq'>;

/** Reads the request body up to `max` bytes; null when it is larger (the caller answers 413). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > max) {
        over = true;
        chunks.length = 0;
        resolve(null);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => !over && resolve(Buffer.concat(chunks, size)));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('client aborted')));
  });
}

/**
 * One request from arrival to its record: identity, policy, limits, then the
 * body is forwarded and the answer streamed back chunk by chunk. A refused
 * request never reaches Ollama. The record is written when the exchange ends,
 * however it ends.
 */
export async function handleExchange(deps: ExchangeDeps, identity: ConnectionIdentity, req: IncomingMessage, res: ServerResponse, tr?: TraceRecord): Promise<void> {
  const started = deps.clock();
  const t0 = performance.now();
  const socket = req.socket as TLSSocket;
  const draft: Draft = {
    at: started, peer: null, certSerial: identity.serial, source: identity.source, method: req.method ?? null,
    path: (req.url ?? '').slice(0, 2048), endpoint: null, model: null, promptSha256: null, promptLength: null, promptText: null,
    status: 0, bytesIn: 0, bytesOut: 0, promptTokens: null, evalTokens: null, ttfbMs: null, durationMs: 0, refusal: null,
  };
  const finish = (): void => {
    draft.durationMs = Math.round((performance.now() - t0) * 1000) / 1000;
    // Model names are the client's choice: only those Ollama served become label values (bounded series).
    deps.metrics.request(draft.peer ?? '', draft.status > 0 && draft.status < 400 ? draft.model : null, draft.status, draft.endpoint, draft.durationMs / 1000);
    if (draft.refusal) deps.metrics.refusal(draft.refusal);
    // A pool member's requests are the router's records (one per request, charged once); it only counts them.
    if (!deps.member || draft.peer === null) deps.record(draft);
    if (tr) deps.trace!.mark(tr, 'end');
  };
  const refuse = (r: Refusal, close = false): void => {
    draft.status = r.status;
    draft.refusal = r.reason;
    // A refusal sent before the body was read closes the connection: the unread body must not be parsed as a request.
    draft.bytesOut = sendRefusal(res, r, close || !req.complete);
    finish();
  };

  const peer = deps.peerBySerial(identity.serial);
  const { auth, method, serial } = deps.member
    ? authenticateRouter(identity, deps.member.routers(), req)
    : deps.tokens
      ? deps.tokens.authenticate(identity, peer, req, started)
      : authenticateByCertificate(identity, peer, started);
  draft.auth = method;
  draft.certSerial = serial;
  if (!auth.ok) {
    // A certificate that failed verification was counted once, at the handshake; a peer check fails per request.
    if (!identity.failure) deps.metrics.authFailure(auth.refusal.reason);
    // A browser navigation gets the HTML page on installing the certificate; API clients keep JSON.
    if (answerBrowser(deps.web, req, res, draft, auth.refusal)) return finish();
    return refuse(auth.refusal, true);
  }
  const { policy, name } = auth.peer;
  draft.peer = name;

  // A browser holding a peer's .p12 must not be driven by another site; the guard's own chat page may (core/web-request.ts).
  const h = req.headers;
  const navigation = { method: req.method ?? '', target: req.url ?? '', fetchMode: h['sec-fetch-mode'], fetchDest: h['sec-fetch-dest'] };
  if (!sameOriginAllowed({ origin: h.origin, host: h.host, fetchSite: h['sec-fetch-site'], referer: h.referer, navigation })) {
    return refuse({ status: 403, error: 'requests from web pages are not accepted', reason: 'cross_origin' });
  }
  // The chat page and its files (/_wgo/...) are answered here and never reach Ollama.
  if (answerBrowser(deps.web, req, res, draft, null)) return finish();

  const head = decideHead({ method: req.method ?? '', rawUrl: req.url ?? '', headers: req.headers, policy, maxBodyBytes: deps.limits.maxBodyBytes });
  if (!head.ok) return refuse(head.refusal);
  const endpoint: EndpointDef = head.endpoint;
  draft.endpoint = endpoint.name;
  draft.path = head.path;
  const { pathModel } = head;

  const rate = deps.rate.take(name, policy.requestsPerMinute, policy.burst, started);
  if (!rate.ok) return refuse({ status: 429, error: 'rate limit exceeded', reason: 'rate_limited', retryAfterSec: rate.retryAfterSec });
  if (endpoint.generative) {
    if ((deps.streams.get(name) ?? 0) >= policy.maxStreams) {
      return refuse({ status: 429, error: `too many concurrent requests (limit ${policy.maxStreams})`, reason: 'too_many_streams', retryAfterSec: 1 });
    }
    if (policy.tokensPerDay !== null && deps.budget.used(name, started) >= policy.tokensPerDay) {
      return refuse({ status: 429, error: `daily token budget of ${policy.tokensPerDay} used up`, reason: 'token_budget', retryAfterSec: secondsUntilUtcMidnight(started) });
    }
    // The slot is taken now, not when forwarding: a request arriving while this body is still being read must see it.
    deps.streams.set(name, (deps.streams.get(name) ?? 0) + 1);
  }
  try {
    await decideAndForward();
  } finally {
    if (endpoint.generative) {
      const n = (deps.streams.get(name) ?? 1) - 1;
      if (n <= 0) deps.streams.delete(name);
      else deps.streams.set(name, n);
    }
  }

  /** Body, body decision, forwarding: everything that runs while a generative request holds its slot. */
  async function decideAndForward(): Promise<void> {
    let forward: Buffer | undefined;
    if (endpoint.body !== 'none' || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') || req.headers['transfer-encoding']) {
      let body: Buffer | null;
      try {
        body = await readBody(req, deps.limits.maxBodyBytes);
      } catch {
        // Gone mid-body, or cut by the guard (a body not received in time is answered 408 by the server).
        draft.refusal = deps.cutReason(socket) ?? 'client_aborted';
        draft.status = draft.refusal === 'request_timeout' ? 408 : 499;
        return finish();
      }
      if (body === null) return refuse({ status: 413, error: `request body too large (limit ${deps.limits.maxBodyBytes} bytes)`, reason: 'body_too_large' }, true);
      draft.bytesIn = body.length;
      if (tr) deps.trace!.mark(tr, 'body');
      if (endpoint.body === 'none' && body.length > 0) return refuse({ status: 400, error: `${endpoint.name} takes no request body`, reason: 'unexpected_body' });
      forward = body;
    }
    let stream = false;
    if (endpoint.body === 'json') {
      const d = decideBody({ endpoint, pathModel, body: forward ?? Buffer.alloc(0), policy });
      if (!d.ok) return refuse(d.refusal);
      forward = d.forward;
      stream = d.stream;
      draft.model = d.model;
      if (d.prompt) {
        draft.promptSha256 = d.prompt.sha256;
        draft.promptLength = d.prompt.length;
        // The digested text itself (cut to MAX_PROMPT_TEXT when recorded; the digest covers all of it).
        if (deps.logPrompts()) draft.promptText = d.prompt.text;
      }
    } else if (pathModel) {
      const d = decideBody({ endpoint, pathModel, body: Buffer.alloc(0), policy });
      if (!d.ok) return refuse(d.refusal);
      draft.model = d.model;
    }
    // Nothing goes to Ollama unrecorded while records cannot be written (auditFailure "refuse", audit.ts).
    const unrecordable = deps.audit?.admit();
    if (unrecordable) return refuse(unrecordable);
    // Every request takes a slot of the upstream pool, within the peer's share (core/slots.ts); beyond
    // the pool a request would wait without an answer: say so instead, as Ollama does when its queue is full.
    const slot = deps.slots.take(name);
    if (!slot.ok) return refuse(slot.refusal);
    if (tr) deps.trace!.mark(tr, 'policy');
    try {
      await forwardUpstream(deps, { req, res, socket, draft, endpoint, forward, stream, peer: name, t0, policy, tr });
    } finally {
      slot.release();
    }
    finish();
  }
}
