import { decideSlot, defaultPerPeer } from '../core/slots.js';
import type { Limits } from '../core/limits.js';
import type { Refusal } from '../core/policy.js';

/**
 * Requests in flight to Ollama, per peer and in all (core/slots.ts decides who gets the
 * next one). `take` is synchronous: a slot is counted the moment it is granted, so two
 * requests of one peer can never both see the last free one.
 */
export function createUpstreamSlots(limits: Pick<Limits, 'maxUpstreamRequests' | 'maxUpstreamPerPeer'>, onChange: (peer: string, n: number) => void = () => undefined) {
  const pool = limits.maxUpstreamRequests;
  const perPeer = limits.maxUpstreamPerPeer ?? defaultPerPeer(pool);
  const byPeer = new Map<string, number>();
  let inFlight = 0;
  return {
    /** A slot for one request of `peer`, or why not; `release` gives it back (once). */
    take(peer: string): { ok: true; release: () => void } | { ok: false; refusal: Refusal } {
      const mine = byPeer.get(peer) ?? 0;
      const d = decideSlot({ pool, perPeer, inFlight, peerInFlight: mine, activePeers: byPeer.size + (mine === 0 ? 1 : 0) });
      if (!d.ok) return d;
      byPeer.set(peer, mine + 1);
      inFlight++;
      onChange(peer, mine + 1);
      let released = false;
      return {
        ok: true,
        release(): void {
          if (released) return;
          released = true;
          inFlight--;
          const n = (byPeer.get(peer) ?? 1) - 1;
          if (n <= 0) byPeer.delete(peer);
          else byPeer.set(peer, n);
          onChange(peer, Math.max(0, n));
        },
      };
    },
    inFlight: (): number => inFlight,
    of: (peer: string): number => byPeer.get(peer) ?? 0,
  };
}

export type UpstreamSlots = ReturnType<typeof createUpstreamSlots>;
