import { describe, expect, test } from 'vitest';
import { decideSlot, defaultPerPeer } from '../../../src/core/slots.js';
import { createUpstreamSlots } from '../../../src/guard/slots.js';

describe('decideSlot: who gets the next upstream slot', () => {
  // pool, perPeer, inFlight, peerInFlight, activePeers → reason (null = granted)
  const CASES: [string, number, number, number, number, number, string | null][] = [
    ['an empty pool', 1024, 256, 0, 0, 1, null],
    ['a peer below its cap, pool far from full', 1024, 256, 500, 255, 2, null],
    ['a peer at its cap, whatever the pool', 1024, 256, 256, 256, 1, 'too_many_in_flight'],
    ['a cap larger than the pool is the pool', 8, 100, 8, 8, 1, 'too_many_in_flight'],
    ['nearly full (224 free ≤ cap 300): a peer at its fair share (1024/4) is refused', 1024, 300, 800, 256, 4, 'fair_share'],
    ['nearly full: a peer above pool/active (1024/5 = 204) is refused', 1024, 256, 800, 210, 5, 'fair_share'],
    ['nearly full: a peer below its fair share is served', 1024, 256, 800, 100, 5, null],
    ['nearly full: a newcomer (nothing in flight) is served', 1024, 256, 1000, 0, 6, null],
    ['not nearly full (257 free): above the fair share is still served', 1024, 256, 767, 210, 5, null],
    ['the pool itself full: 503 for a peer below its share', 1024, 256, 1024, 0, 6, 'upstream_busy'],
    ['a pool of one', 1, 1, 0, 0, 1, null],
    ['a pool of one, taken by another peer', 1, 1, 1, 0, 2, 'upstream_busy'],
  ];
  test.each(CASES)('%s', (_, pool, perPeer, inFlight, peerInFlight, activePeers, reason) => {
    const d = decideSlot({ pool, perPeer, inFlight, peerInFlight, activePeers });
    expect(d.ok ? null : d.refusal.reason).toBe(reason);
    if (!d.ok) {
      expect(d.refusal.status).toBe(reason === 'upstream_busy' ? 503 : 429);
      expect(d.refusal.retryAfterSec).toBe(1);
    }
  });

  test('the default cap is a quarter of the pool, at least one', () => {
    expect([1024, 8, 3, 1].map(defaultPerPeer)).toEqual([256, 2, 1, 1]);
  });
});

describe('createUpstreamSlots', () => {
  test('counts per peer and in all; release gives a slot back once; a third peer finds room while two are greedy', () => {
    const seen: [string, number][] = [];
    const slots = createUpstreamSlots({ maxUpstreamRequests: 8, maxUpstreamPerPeer: 3 }, (p, n) => seen.push([p, n]));
    const take = (p: string) => slots.take(p);
    const a = [take('a'), take('a'), take('a')];
    expect(a.every((x) => x.ok)).toBe(true);
    expect(take('a')).toMatchObject({ ok: false, refusal: { reason: 'too_many_in_flight' } });
    const b = [take('b'), take('b')];
    expect(b.every((x) => x.ok)).toBe(true);
    // 3 free ≤ cap: nearly full; b holds 2 < 8/2 and takes a third; c, new, still finds room
    expect(take('b').ok).toBe(true);
    expect(take('c').ok).toBe(true);
    expect(take('c').ok).toBe(true);
    expect(slots.inFlight()).toBe(8);
    expect(take('d')).toMatchObject({ ok: false, refusal: { reason: 'upstream_busy' } });
    const first = a[0]!;
    if (!first.ok) throw new Error('unreachable');
    first.release();
    first.release();
    expect(slots.of('a')).toBe(2);
    expect(slots.inFlight()).toBe(7);
    // one free slot, four active peers: a (2 ≥ 8/4) is refused, d (nothing in flight) gets it
    expect(take('a')).toMatchObject({ ok: false, refusal: { reason: 'fair_share' } });
    expect(take('d').ok).toBe(true);
    expect(seen.slice(0, 3)).toEqual([['a', 1], ['a', 2], ['a', 3]]);
    expect(seen).toContainEqual(['a', 2]);
  });
});
