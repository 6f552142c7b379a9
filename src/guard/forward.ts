import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { ResponseFramingError } from '../core/http-response.js';
import type { EndpointDef } from '../core/ollama-api.js';
import { filterModelList } from '../core/policy.js';
import type { RequestRecord } from '../core/request-record.js';
import type { GuardPeer } from '../core/wire.js';
import { NOT_FOR_OTHER_SITES, sendRefusal } from './answer.js';
import { startCharge } from './charge.js';
import type { ExchangeDeps } from './exchange.js';
import { watchStall } from './stall.js';
import type { TraceRecord } from './trace.js';
import { PEER_HEADER } from './member.js';
import type { Lease, Pool } from './pool.js';
import type { Upstream, UpstreamCall, UpstreamHandler } from './upstream.js';

/** Request headers passed on to Ollama; everything else (cookies, Origin, Authorization, encodings) stays behind. */
const FORWARD_REQUEST = ['content-type', 'accept', 'user-agent'];
/** Response headers passed back; hop-by-hop ones and anything unexpected are dropped. */
const FORWARD_RESPONSE = ['content-type', 'content-length', 'date', 'cache-control', 'etag', 'last-modified', 'location'];
/** /api/tags and /v1/models are filtered, so read whole; they are small, but not unbounded. */
const MAX_LIST_BYTES = 16 * 1024 * 1024;

type Draft = Omit<RequestRecord, 'seq'>;

export interface Forward {
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
export function forwardUpstream(deps: ExchangeDeps, f: Forward): Promise<void> {
  const { req, res, draft, endpoint, tr } = f;
  if (deps.pool) {
    // A pool knows every host's models: the lists (and /api/ps, what is loaded) are answered from what it has probed.
    if (endpoint.listsModels) return Promise.resolve(answerPoolList(deps.pool, f));
    // Installing or removing models is per GPU host: through the router it would land on one host, or none.
    if (POOL_ADMIN.has(endpoint.name)) {
      const r = { status: 501 as const, error: `${endpoint.name} is not available through the pool router: manage models on each GPU host`, reason: 'pool_admin_unsupported' };
      draft.status = r.status;
      draft.refusal = r.reason;
      draft.bytesOut = sendRefusal(res, r, false);
      return Promise.resolve();
    }
  }
  const trace = deps.trace;
  const headers: Record<string, string> = {};
  for (const h of FORWARD_REQUEST) {
    const v = req.headers[h];
    if (typeof v === 'string') headers[h] = v;
  }
  const generative = endpoint.generative;
  const charge = startCharge({ budget: deps.budget, peer: f.peer, policy: f.policy, generative, stream: f.stream, promptLength: draft.promptLength, at: draft.at, clock: deps.clock });
  let controller: UpstreamCall | null = null;
  /** With a pool: the host this request holds, a wait for one, and the hosts it failed on. */
  let lease: Lease | null = null;
  let waiting: { cancel(): void } | null = null;
  const tried = new Set<string>();
  let sawHead = false;
  /** Set when the upstream request must stop (client gone, max duration) before or after it started. */
  let abortReason: Error | null = null;
  let clientGone = false;
  /** /api/tags and /v1/models: read whole, filtered, then sent. */
  let list: { chunks: Buffer[]; size: number; headers: Record<string, string> } | null = null;

  const abort = (e: Error): void => {
    abortReason ??= e;
    waiting?.cancel();
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
    /** A 5xx head from a pool host is being abandoned for another host (onHead → abort → onError). */
    let retrying = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(maxTimer);
      stall.stop();
      res.off('close', onClose);
      res.off('drain', onDrain);
      if (generative) deps.metrics.stream(f.peer, -1);
      if (clientGone) draft.refusal ??= deps.cutReason(f.socket) ?? 'client_aborted';
      lease?.release(sawHead ? { status: draft.status } : 'cancelled');
      lease = null;
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
        if (lease && statusCode >= 500 && deps.pool!.candidates(draft.model, new Set([...tried, lease.host])) > 0) {
          // A host that fails before any byte of its answer reached the client: another host with the model gets the request.
          lease.release({ status: statusCode });
          lease = null;
          retrying = true;
          return controller!.abort(new Error(`${statusCode} from a GPU host`));
        }
        sawHead = true;
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
        if (retrying) {
          retrying = false;
          controller = null;
          return begin();
        }
        if (lease && !sawHead && !clientGone && !abortReason && !res.headersSent && !res.destroyed) {
          // The host could not be reached, or broke off before answering: it is reported, and another host with the model
          // is tried — for a generation (nothing on the host changes), or when the request never reached the host at all.
          lease.release('unreachable');
          lease = null;
          controller = null;
          if ((endpoint.generative || neverReached(e)) && deps.pool!.candidates(draft.model, tried) > 0) return begin();
        }
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
    begin();

    /** Sends the request: to Ollama, or to a host of the pool once one has a slot for it. */
    function begin(): void {
      const pool = deps.pool;
      if (!pool) return send(deps.upstream);
      const a = pool.acquire(f.peer, draft.model, tried);
      const asked = performance.now();
      waiting = a;
      void a.result
        .then((r) => {
        waiting = null;
        if (!r.ok) {
          // Refused after a wait (queue_timeout, its last host gone) or left while waiting: the wait is recorded too.
          const waited = Math.round(performance.now() - asked);
          if (waited > 0) draft.queueMs = (draft.queueMs ?? 0) + waited;
          if (r.refusal === null || clientGone || res.destroyed) {
            // The client left while its request waited for a slot: no host heard of it.
            clientGone = true;
            draft.status = 499;
          } else {
            draft.refusal ??= r.refusal.reason;
            draft.status = r.refusal.status;
            draft.bytesOut = sendRefusal(res, r.refusal, false);
          }
          return settle();
        }
        lease = r.lease;
        tried.add(r.lease.host);
        // The host that serves it (the last one tried), and the wait for every slot it got.
        draft.host = r.lease.host;
        draft.queueMs = (draft.queueMs ?? 0) + Math.round(r.lease.queuedMs);
        deps.metrics.queueWait(r.lease.queuedMs / 1000);
        send(r.lease.upstream);
      })
        .catch(() => {
          // A bug above must not leave the request hanging or its lease taken.
          if (!res.destroyed) res.destroy();
          draft.refusal ??= 'internal_error';
          settle();
        });
    }

    function send(upstream: Upstream): void {
      upstream.request(
        {
          method: req.method ?? 'GET',
          path: draft.path ?? '/',
          // To a pool member: which peer this is for (it trusts the header only on our certificate).
          headers: lease ? { ...headers, [PEER_HEADER]: f.peer } : headers,
          ...(f.forward ? { body: f.forward } : {}),
          headersTimeoutMs: deps.limits.idleTimeoutSec * 1000,
          bodyTimeoutMs: deps.limits.idleTimeoutSec * 1000,
        },
        handler,
      );
    }
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

/** Endpoints a pool router refuses (501): they install or remove models on one GPU host. */
const POOL_ADMIN: ReadonlySet<string> = new Set(['pull', 'push', 'delete', 'create', 'copy', 'blobs']);

/** /api/tags, /v1/models and /api/ps of a pool: every healthy host's models (or loaded models), merged, filtered by the peer's policy. */
function answerPoolList(pool: Pool, f: Forward): void {
  const kind = f.endpoint.listsModels!;
  const tags = f.endpoint.name === 'ps' ? pool.running() : pool.tags();
  const list =
    kind === 'tags'
      ? { models: tags }
      : { object: 'list', data: tags.map((t) => ({ id: t.name, object: 'model', created: Math.floor((Date.parse(String(t.modified_at)) || 0) / 1000), owned_by: t.name.includes('/') ? t.name.split('/')[0] : 'library' })) };
  const body = JSON.stringify(filterModelList(kind, list, f.policy));
  f.draft.status = 200;
  f.draft.ttfbMs = Math.round((performance.now() - f.t0) * 1000) / 1000;
  f.draft.bytesOut = f.req.method === 'HEAD' ? 0 : Buffer.byteLength(body);
  f.res.writeHead(200, { ...NOT_FOR_OTHER_SITES, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  f.res.end(f.req.method === 'HEAD' ? undefined : body);
}

/** Connection errors that mean the request never reached the host (so sending it elsewhere cannot do anything twice). */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']);
function neverReached(e: Error): boolean {
  return NOT_CONNECTED.has(String((e as NodeJS.ErrnoException).code)) || e.message === 'upstream connect timeout';
}
