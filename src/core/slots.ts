import type { Refusal } from './policy.js';

/** The upstream pool as one request finds it. */
export interface SlotState {
  /** Requests the guard may have in flight to Ollama at once (limits.maxUpstreamRequests). */
  pool: number;
  /** Most one peer may have in flight (limits.maxUpstreamPerPeer, default a quarter of the pool). */
  perPeer: number;
  /** In flight now, all peers together. */
  inFlight: number;
  /** In flight now for the peer asking. */
  peerInFlight: number;
  /** Peers with at least one request in flight, the one asking included. */
  activePeers: number;
}

/** The per-peer cap when the config names none: a quarter of the pool (at least one). */
export function defaultPerPeer(pool: number): number {
  return Math.max(1, Math.ceil(pool / 4));
}

/**
 * Whether one more request of this peer may go to Ollama. Every request counts, whatever its
 * endpoint (a response the client reads slowly holds its slot as long as a generation does):
 *
 * 1. A peer never holds more than `perPeer` slots: one peer alone leaves three quarters of the
 *    pool (by default) to the others.
 * 2. When the pool is nearly full — no more than `perPeer` slots free — a peer already holding
 *    its fair share, pool / active peers, is refused too, so what is left goes to peers below
 *    their share. As requests end (bounded by maxRequestSec, and idleTimeoutSec for a client
 *    that does not read) the pool converges to equal shares without cutting anyone.
 * 3. The pool itself is full: 503, as Ollama answers when its own queue is full.
 *
 * A peer refused by 1 or 2 gets 429 with Retry-After (it is its own load); 3 is the server's.
 */
export function decideSlot(s: SlotState): { ok: true } | { ok: false; refusal: Refusal } {
  const perPeer = Math.min(s.perPeer, s.pool);
  if (s.peerInFlight >= perPeer) {
    return { ok: false, refusal: { status: 429, error: `too many requests in flight for this peer (limit ${perPeer})`, reason: 'too_many_in_flight', retryAfterSec: 1 } };
  }
  const fairShare = Math.max(1, Math.floor(s.pool / Math.max(1, s.activePeers)));
  if (s.pool - s.inFlight <= perPeer && s.peerInFlight >= fairShare) {
    return { ok: false, refusal: { status: 429, error: `server busy: this peer already has its share of requests in flight (${fairShare} of ${s.pool})`, reason: 'fair_share', retryAfterSec: 1 } };
  }
  if (s.inFlight >= s.pool) {
    return { ok: false, refusal: { status: 503, error: 'server busy, please try again (too many requests in flight)', reason: 'upstream_busy', retryAfterSec: 1 } };
  }
  return { ok: true };
}
