import { describe, expect, test } from 'vitest';
import { createFairQueue, type Waiting } from '../../../src/core/fair-queue.js';

const LIMITS = { perPeer: 32, total: 64, maxWaitMs: 30_000 };
const any = (): boolean => true;

describe('the fair queue', () => {
  test('a peer with 20 queued and a peer with 1: the single request is next after at most one of the burst', () => {
    const q = createFairQueue<string>(LIMITS);
    for (let i = 0; i < 20; i++) q.enqueue('heavy', 'llama3.2:latest', `h${i}`, 0);
    q.enqueue('light', 'llama3.2:latest', 'l0', 1);
    // One generation slot frees at a time.
    const served = [q.next(any)!.item, q.next(any)!.item, q.next(any)!.item];
    expect(served).toEqual(['h0', 'l0', 'h1']);
    // and the heavy peer's own order is kept
    const rest: string[] = [];
    for (let w = q.next(any); w; w = q.next(any)) rest.push(w.item);
    expect(rest).toEqual(Array.from({ length: 18 }, (_, i) => `h${i + 2}`));
    expect(q.size()).toBe(0);
  });

  test('three peers take turns; a peer that arrives later joins the turn at the back', () => {
    const q = createFairQueue<string>(LIMITS);
    for (const p of ['a', 'b']) for (let i = 0; i < 3; i++) q.enqueue(p, null, `${p}${i}`, 0);
    const order = [q.next(any)!.item, q.next(any)!.item];
    q.enqueue('c', null, 'c0', 5);
    for (let w = q.next(any); w; w = q.next(any)) order.push(w.item);
    expect(order).toEqual(['a0', 'b0', 'a1', 'b1', 'c0', 'a2', 'b2']);
  });

  test('a freed slot on a host goes to the first peer in turn with a request that host can run (its oldest such)', () => {
    const q = createFairQueue<string>(LIMITS);
    q.enqueue('a', 'qwen2.5:7b', 'a-qwen', 0);
    q.enqueue('a', 'llama3.2:latest', 'a-llama', 1);
    q.enqueue('b', 'llama3.2:latest', 'b-llama', 2);
    const onLlamaHost = (w: Waiting<string>): boolean => w.model === 'llama3.2:latest';
    expect(q.next(onLlamaHost)!.item).toBe('a-llama');
    expect(q.next(onLlamaHost)!.item).toBe('b-llama');
    expect(q.next(onLlamaHost)).toBeNull();
    expect(q.size()).toBe(1);
  });

  test('bounds: per peer and in all, with a Retry-After; nothing is added when refused', () => {
    const q = createFairQueue<number>({ perPeer: 2, total: 3, maxWaitMs: 10_000 });
    expect(q.enqueue('a', null, 1, 0).ok).toBe(true);
    expect(q.enqueue('a', null, 2, 0).ok).toBe(true);
    expect(q.enqueue('a', null, 3, 0)).toEqual({ ok: false, reason: 'peer_queue_full', retryAfterSec: 5 });
    expect(q.enqueue('b', null, 4, 0).ok).toBe(true);
    expect(q.enqueue('c', null, 5, 0)).toEqual({ ok: false, reason: 'queue_full', retryAfterSec: 5 });
    expect([q.size(), q.sizeOf('a'), q.sizeOf('b'), q.sizeOf('c')]).toEqual([3, 2, 1, 0]);
  });

  test('a client that leaves is taken out; the peer leaves the turn when its queue is empty', () => {
    const q = createFairQueue<string>(LIMITS);
    const a = q.enqueue('a', null, 'a0', 0);
    q.enqueue('b', null, 'b0', 0);
    expect(a.ok && q.cancel(a.id)).toBe(true);
    expect(a.ok && q.cancel(a.id)).toBe(false);
    expect(q.next(any)!.item).toBe('b0');
    expect(q.next(any)).toBeNull();
    expect(q.size()).toBe(0);
  });

  test('requests that waited maxWaitMs are taken out and returned, the younger stay', () => {
    const q = createFairQueue<string>({ ...LIMITS, maxWaitMs: 1000 });
    q.enqueue('a', null, 'old', 0);
    q.enqueue('a', null, 'young', 600);
    q.enqueue('b', null, 'b-old', 100);
    expect(q.expire(999).map((w) => w.item)).toEqual([]);
    expect(q.expire(1100).map((w) => w.item).sort()).toEqual(['b-old', 'old']);
    expect(q.size()).toBe(1);
    expect(q.next(any)!.item).toBe('young');
  });

  test('removeWhere: takes out and returns what a predicate accepts; a peer left with nothing leaves the turn', () => {
    const q = createFairQueue<string>(LIMITS);
    q.enqueue('a', 'm1', 'a1', 0);
    q.enqueue('b', 'm2', 'b2', 0);
    q.enqueue('b', 'm1', 'b1', 0);
    expect(q.removeWhere((w) => w.model === 'm1').map((w) => w.item).sort()).toEqual(['a1', 'b1']);
    expect([q.size(), q.sizeOf('a'), q.sizeOf('b')]).toEqual([1, 0, 1]);
    expect(q.next(() => true)!.item).toBe('b2');
  });

  test('count: how many waiting requests a predicate accepts', () => {
    const q = createFairQueue<string>(LIMITS);
    q.enqueue('a', 'm1', 'x', 0);
    q.enqueue('b', 'm2', 'y', 0);
    q.enqueue('b', 'm1', 'z', 0);
    expect(q.count((w) => w.model === 'm1')).toBe(2);
  });
});
