import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Limits } from '../core/limits.js';
import type { EndpointDef } from '../core/ollama-api.js';
import { ResponseFramingError } from '../core/http-response.js';
import { decideBody, decideHead, filterModelList, type Refusal } from '../core/policy.js';
import { createRateLimiter, secondsUntilUtcMidnight } from '../core/rate.js';
import type { RequestRecord } from '../core/request-record.js';
import { sameOriginAllowed } from '../core/web-request.js';
import { answerBrowser, type ChatSite } from './browser.js';
import type { Budget } from './budget.js';
import { startCharge } from './charge.js';
import type { ConnectionIdentity } from './identity.js';
import type { GuardMetrics } from './metrics.js';
import type { GuardPeer } from '../core/wire.js';
import type { UpstreamSlots } from './slots.js';
import { watchStall } from './stall.js';
import { authenticateByCertificate, type TokenGate } from './tokens.js';
import type { GuardTrace, TraceRecord } from './trace.js';
import type { Upstream, UpstreamCall, UpstreamHandler } from './upstream.js';

/** Request headers passed on to Ollama; everything else (cookies, Origin, Authorization, encodings) stays behind. */
const FORWARD_REQUEST = ['content-type', 'accept', 'user-agent'];
/** Response headers passed back; hop-by-hop ones and anything unexpected are dropped. */
const FORWARD_RESPONSE = ['content-type', 'content-length', 'date', 'cache-control', 'etag', 'last-modified', 'location'];
/**
 * On every answer: a browser holding the peer's certificate must not let another site embed
 * or sniff one (an <img> or <script> of /api/tags); API clients ignore both.
 */
const NOT_FOR_OTHER_SITES = Object.freeze({ 'x-content-type-options': 'nosniff', 'cross-origin-resource-policy': 'same-origin' });
/** /api/tags and /v1/models are filtered, so read whole; they are small, but not unbounded. */
const MAX_LIST_BYTES = 16 * 1024 * 1024;

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
  /** Per-request leg times (trace.ts); absent unless asked for. */
  trace?: GuardTrace;
}

type Draft = Omit<RequestRecord, 'seq'>;

export function refusalBody(r: Refusal): string {
  return JSON.stringify({ error: r.error });
}

/** Answers like Ollama: JSON {"error": "..."} with the status, plus Allow / Retry-After where they apply. */
function sendRefusal(res: ServerResponse, r: Refusal, close: boolean): number {
  const body = refusalBody(r);
  const headers: Record<string, string | number> = { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...NOT_FOR_OTHER_SITES };
  if (r.allow) headers.allow = r.allow.join(', ');
  if (r.retryAfterSec !== undefined) headers['retry-after'] = Math.max(1, Math.ceil(r.retryAfterSec));
  if (close) headers.connection = 'close';
  res.writeHead(r.status, headers);
  res.end(body);
  return Buffer.byteLength(body);
}

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
    deps.record(draft);
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
  const { auth, method, serial } = deps.tokens ? deps.tokens.authenticate(identity, peer, req, started) : authenticateByCertificate(identity, peer, started);
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

interface Forward {
  req: IncomingMessage;
  res: ServerResponse;
  socket: TLSSocket;
  draft: Draft;
  endpoint: EndpointDef;
  forward: Buffer | undefined;
  stream: boolean;
  peer: string;
  t0: number;
  policy: GuardPeer['policy'];
  tr: TraceRecord | undefined;
}

/**
 * Forwards over the guard's own upstream connections (upstream.ts): the request is written as
 * soon as it is decided, and chunks go to the client straight from onData. Backpressure: the
 * upstream read pauses while the client's socket is full. A client that leaves, or the
 * max-duration timer, aborts the upstream request.
 */
function forwardUpstream(deps: ExchangeDeps, f: Forward): Promise<void> {
  const { req, res, draft, endpoint, tr } = f;
  const trace = deps.trace;
  const headers: Record<string, string> = {};
  for (const h of FORWARD_REQUEST) {
    const v = req.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  const generative = endpoint.generative;
  const charge = startCharge({ budget: deps.budget, peer: f.peer, policy: f.policy, generative, stream: f.stream, promptLength: draft.promptLength, at: draft.at, clock: deps.clock });
  let controller: UpstreamCall | null = null;
  /** Set when the upstream request must stop (client gone, max duration) before or after it started. */
  let abortReason: Error | null = null;
  let clientGone = false;
  /** /api/tags and /v1/models: read whole, filtered, then sent. */
  let list: { chunks: Buffer[]; size: number; headers: Record<string, string> } | null = null;

  const abort = (e: Error): void => {
    abortReason ??= e;
    if (controller && !controller.aborted) controller.abort(e);
  };
  const onClose = (): void => {
    if (!res.writableFinished) {
      clientGone = true;
      abort(new Error('client gone'));
    }
  };
  // An answer the client does not drain for idleTimeoutSec is cut, partial reads or not: it holds a slot.
  const stall = watchStall(deps.limits.idleTimeoutSec * 1000, () => {
    draft.refusal ??= 'client_stalled';
    abort(new Error('client stalled'));
    f.socket.destroy();
  });
  const onDrain = (): void => {
    stall.drained();
    controller?.resume();
  };
  res.on('close', onClose);
  res.on('drain', onDrain);
  const maxTimer = setTimeout(() => {
    draft.refusal = 'max_duration';
    abort(new Error('max duration'));
    f.socket.destroy();
  }, deps.limits.maxRequestSec * 1000);
  if (generative) deps.metrics.stream(f.peer, 1);
  const ttfb = (): void => {
    if (draft.ttfbMs === null) draft.ttfbMs = Math.round((performance.now() - f.t0) * 1000) / 1000;
  };

  return new Promise<void>((resolve) => {
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(maxTimer);
      stall.stop();
      res.off('close', onClose);
      res.off('drain', onDrain);
      if (generative) deps.metrics.stream(f.peer, -1);
      if (clientGone) draft.refusal ??= deps.cutReason(f.socket) ?? 'client_aborted';
      chargeTokens();
      resolve();
    };
    const chargeTokens = (): void => {
      // Ollama's final counts, or an estimate when they are missing or implausible (guard/charge.ts).
      const c = charge.settle(draft.status > 0 && draft.status < 400);
      draft.promptTokens = c.promptTokens;
      draft.evalTokens = c.evalTokens;
      draft.estimatedTokens = c.estimatedTokens;
      if (c.estimatedTokens === null && c.promptTokens !== null) deps.metrics.tokens(f.peer, draft.model, c.promptTokens, c.evalTokens ?? 0);
    };

    const handler: UpstreamHandler = {
      onStart(c) {
        controller = c;
        if (tr) trace!.mark(tr, 'connected');
        if (abortReason) c.abort(abortReason);
      },
      onWritten() {
        if (tr) trace!.mark(tr, 'written');
      },
      onHead(statusCode, upHeaders) {
        if (tr) trace!.mark(tr, 'upHead');
        draft.status = statusCode;
        const type = upHeaders['content-type'];
        charge.contentType(typeof type === 'string' ? type : undefined);
        if (endpoint.listsModels && statusCode === 200) {
          list = { chunks: [], size: 0, headers: pickHeaders(upHeaders) };
          return;
        }
        res.writeHead(statusCode, pickHeaders(upHeaders));
      },
      onData(chunk) {
        if (tr) trace!.mark(tr, 'upByte');
        if (list) {
          list.size += chunk.length;
          if (list.size > MAX_LIST_BYTES) controller!.abort(new Error('model list too large'));
          else list.chunks.push(chunk);
          return;
        }
        ttfb();
        draft.bytesOut += chunk.length;
        if (!charge.push(chunk)) {
          // Past the day's budget by more than the policy allows: the rest is not generated, nor sent.
          draft.refusal ??= 'token_budget';
          return abort(new Error('token budget'));
        }
        const flowing = res.write(chunk);
        if (tr) trace!.mark(tr, 'clientByte');
        if (!flowing) {
          controller!.pause();
          stall.blocked();
        }
      },
      onEnd() {
        if (list) {
          let body: string;
          try {
            body = JSON.stringify(filterModelList(endpoint.listsModels!, JSON.parse(Buffer.concat(list.chunks, list.size).toString('utf8')), f.policy));
          } catch {
            body = JSON.stringify(endpoint.listsModels === 'tags' ? { models: [] } : { object: 'list', data: [] });
          }
          ttfb();
          list.headers['content-length'] = String(Buffer.byteLength(body));
          res.writeHead(draft.status, list.headers);
          res.end(body);
          draft.bytesOut = Buffer.byteLength(body);
        } else {
          res.end();
        }
        settle();
      },
      onError(e) {
        if (clientGone) {
          // The record keeps Ollama's status when its answer had begun; 499 when it had not.
          if (!res.headersSent) draft.status = 499;
        } else if (!res.headersSent && !res.destroyed) {
          // Nothing sent yet: Ollama was unreachable, failed before answering, or answered with a head that is not passed on.
          draft.refusal ??= 'upstream_unavailable';
          draft.status = 503;
          const error = e instanceof ResponseFramingError ? `ollama answered with a malformed response: ${e.detail}` : `ollama is not reachable: ${e.message}`;
          draft.bytesOut = sendRefusal(res, { status: 503, error, reason: 'upstream_unavailable' }, false);
        } else if (!res.destroyed) {
          // Upstream died, or we aborted it (revoked, timed out), mid-answer: the client's answer is cut short.
          res.destroy();
        }
        settle();
      },
    };
    if (res.destroyed) {
      // The client left while its body was being decided: Ollama never hears of it.
      clientGone = true;
      draft.status = 499;
      return settle();
    }
    deps.upstream.request(
      {
        method: req.method ?? 'GET',
        path: draft.path ?? '/',
        headers,
        ...(f.forward ? { body: f.forward } : {}),
        headersTimeoutMs: deps.limits.idleTimeoutSec * 1000,
        bodyTimeoutMs: deps.limits.idleTimeoutSec * 1000,
      },
      handler,
    );
  });
}

/** The response headers passed back to the client (FORWARD_RESPONSE), single-valued only, plus NOT_FOR_OTHER_SITES. */
function pickHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = { ...NOT_FOR_OTHER_SITES };
  for (const k of FORWARD_RESPONSE) {
    const v = h[k];
    if (typeof v === 'string') out[k] = v;
  }
  return out;
}
