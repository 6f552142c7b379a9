import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { bearerToken, createFailureLimiter, tokenHash, type FailureLimiter } from '../core/api-token.js';
import type { Refusal } from '../core/policy.js';
import { authorize, type ConnectionIdentity } from './identity.js';
import type { GuardPeer } from '../core/wire.js';

/** Failed token attempts allowed per source address and minute before 429. */
export const TOKEN_FAILURES_PER_MINUTE = 10;

export type AuthMethod = 'certificate' | 'token';

/** How a request authenticated: the decision, the method (null before any credential verified) and the serial recorded. */
export interface RequestAuth {
  auth: ReturnType<typeof authorize>;
  method: AuthMethod | null;
  serial: string | null;
}

/** The certificate path: authorize() on the verified certificate, recorded as 'certificate' when one verified. */
export function authenticateByCertificate(id: ConnectionIdentity, peer: GuardPeer | undefined, now: number): RequestAuth {
  return { auth: authorize(id, peer, now), method: id.serial === null ? null : 'certificate', serial: id.serial };
}

const refusal = (status: 401 | 403 | 429, error: string, reason: string, retryAfterSec?: number): Refusal =>
  ({ status, error, reason, ...(retryAfterSec === undefined ? {} : { retryAfterSec }) });

/**
 * Peer-bound API tokens at the guard. A request on a connection that presented
 * no client certificate may carry `Authorization: Bearer wgo_…`; its SHA-256
 * must be the token of a peer in the current set and the TCP source that
 * peer's tunnel address. A verified certificate always wins: the header is
 * then ignored (and, like every header but three, never forwarded). Failures
 * are counted per source address and limited. Connections a token
 * authenticated are closed when the token leaves the set (revoked, replaced,
 * rotated away, policy off, peer gone) or its peer expires.
 */
export function createTokenGate(o: { tokenFailure(reason: string): void; limiter?: FailureLimiter }) {
  const limiter = o.limiter ?? createFailureLimiter({ max: TOKEN_FAILURES_PER_MINUTE, windowMs: 60_000 });
  let byHash = new Map<string, GuardPeer>();
  const sockets = new Map<string, Set<Socket>>();
  const socketHash = new WeakMap<Socket, string>();

  const track = (socket: Socket, hash: string): void => {
    const old = socketHash.get(socket);
    if (old === hash) return;
    if (old !== undefined) sockets.get(old)?.delete(socket);
    else socket.once('close', () => untrack(socket));
    socketHash.set(socket, hash);
    let set = sockets.get(hash);
    if (!set) sockets.set(hash, (set = new Set()));
    set.add(socket);
  };
  const untrack = (socket: Socket): void => {
    const hash = socketHash.get(socket);
    if (hash === undefined) return;
    const set = sockets.get(hash);
    set?.delete(socket);
    if (set?.size === 0) sockets.delete(hash);
  };

  const fail = (source: string, now: number, reason: string, r: Refusal, peer: GuardPeer | null = null) => {
    limiter.fail(source, now);
    o.tokenFailure(reason);
    return { auth: { ok: false as const, refusal: r }, method: peer ? ('token' as const) : null, serial: peer?.serial ?? null };
  };

  /** Token checks for a request without a client certificate that carries an Authorization header. */
  const byToken = (id: ConnectionIdentity, req: IncomingMessage, now: number): RequestAuth => {
    const blocked = limiter.check(id.source, now);
    if (!blocked.ok) {
      o.tokenFailure('rate_limited');
      return { auth: { ok: false, refusal: refusal(429, 'too many failed API token attempts', 'token_rate_limited', blocked.retryAfterSec) }, method: null, serial: null };
    }
    const bearer = bearerToken(req.headers.authorization);
    if (!bearer || 'malformed' in bearer) return fail(id.source, now, 'malformed', refusal(401, 'invalid API token', 'token_invalid'));
    const hash = tokenHash(bearer.token);
    const peer = byHash.get(hash);
    // Unknown, revoked, replaced and rotated-away tokens get the same answer.
    if (!peer) return fail(id.source, now, 'unknown', refusal(401, 'invalid API token', 'token_invalid'));
    // From another address, the same answer as an unknown token: whoever holds a leaked token
    // learns neither that it is live nor where it works. The record and metric say why.
    if (peer.address !== id.source) return fail(id.source, now, 'wrong_source', refusal(401, 'invalid API token', 'token_wrong_source'), peer);
    if (peer.expiresAt !== null && peer.expiresAt <= now) {
      return fail(id.source, now, 'expired', refusal(401, 'peer has expired', 'auth_peer_expired'), peer);
    }
    track(req.socket, hash);
    return { auth: { ok: true, peer }, method: 'token', serial: peer.serial };
  };

  return {
    /** Takes the tokens of a new peer set (the server then calls enforce). */
    setPeers(peers: readonly GuardPeer[]): void {
      byHash = new Map(peers.filter((p) => typeof p.tokenSha256 === 'string').map((p) => [p.tokenSha256!, p]));
    },
    /**
     * Who sent this request: the certificate when one was presented (verified
     * or not: a bad certificate is refused as such), else a Bearer token when
     * the request carries an Authorization header, else "certificate required".
     */
    authenticate(id: ConnectionIdentity, certPeer: GuardPeer | undefined, req: IncomingMessage, now: number): RequestAuth {
      const noCertificate = id.failure?.reason === 'auth_no_certificate';
      if (noCertificate && req.headers.authorization !== undefined) return byToken(id, req, now);
      return authenticateByCertificate(id, certPeer, now);
    },
    /** Closes token connections whose token is no longer in the set or whose peer has expired. */
    enforce(now: number, cut: (socket: Socket, reason: string) => void): void {
      for (const [hash, set] of sockets) {
        const p = byHash.get(hash);
        const expired = p !== undefined && p.expiresAt !== null && p.expiresAt <= now;
        if (p && !expired) continue;
        for (const s of set) cut(s, expired ? 'peer_expired' : 'token_revoked');
      }
    },
    /** Open connections that a token authenticated. */
    connections: (): number => [...sockets.values()].reduce((n, s) => n + s.size, 0),
  };
}

export type TokenGate = ReturnType<typeof createTokenGate>;
