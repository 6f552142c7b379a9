import type { IncomingMessage } from 'node:http';
import { ENDPOINT_NAMES } from '../core/ollama-api.js';
import { OPTION_NAMES } from '../core/model-options.js';
import type { RequestPolicy } from '../core/policy.js';
import type { ConnectionIdentity } from './identity.js';
import type { RequestAuth } from './tokens.js';

/**
 * A guard that is a member of a pool (docs/gpu-pool.md) serves only the pool's router: the
 * router has already applied each peer's policy, rate, streams and budget, exactly once for
 * the whole pool. The member checks that the client certificate is the router's (its guard
 * certificate, by serial) and forwards with the same strict request path as always, under a
 * policy that lets through what the router decided. The peer's name comes from the router in
 * `x-wgo-peer`, trusted only on the router's certificate, for the member's metrics.
 */
export const ROUTER_POLICY: Readonly<RequestPolicy> = Object.freeze({
  endpoints: [...ENDPOINT_NAMES],
  models: null,
  writeModels: null,
  requestsPerMinute: 100_000,
  burst: 100_000,
  maxStreams: 1000,
  tokensPerDay: null,
  maxKeepAliveSec: null,
  maxNumCtx: null,
  maxTokensPerRequest: null,
  options: [...OPTION_NAMES],
  optionLimits: {},
});

/** Header in which the router names the peer a request is for. */
export const PEER_HEADER = 'x-wgo-peer';
const PEER_NAME = /^[a-z0-9][a-z0-9._-]{0,31}$/;

/** The router's certificate, or a refusal: 401 without a good certificate, 403 for any other (a peer's included). */
export function authenticateRouter(id: ConnectionIdentity, routers: ReadonlySet<string>, req: IncomingMessage): RequestAuth {
  if (id.failure) return { auth: { ok: false, refusal: id.failure }, method: null, serial: null };
  if (id.serial === null || !routers.has(id.serial)) {
    return { auth: { ok: false, refusal: { status: 403, error: 'this guard is a pool member: it serves only its pool router', reason: 'auth_not_router' } }, method: 'certificate', serial: id.serial };
  }
  const named = req.headers[PEER_HEADER];
  const name = typeof named === 'string' && PEER_NAME.test(named) ? named : 'router';
  return { auth: { ok: true, peer: { name, address: id.source, serial: id.serial, expiresAt: null, policy: { ...ROUTER_POLICY } } }, method: 'certificate', serial: id.serial };
}
