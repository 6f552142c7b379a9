/**
 * The router's waiting room (docs/gpu-pool.md, "Fair queueing"): requests that found no free
 * slot on any host that has their model wait in their peer's queue, and a freed slot is
 * offered to the peers in turn, so one peer's burst never delays another peer's single
 * request by more than one generation slot. Pure: no timers; the caller passes the time and
 * asks for what has waited too long.
 */

export interface QueueLimits {
  /** Requests one peer may have waiting. */
  perPeer: number;
  /** Requests waiting in all. */
  total: number;
  /** A request that has waited this long is taken out (and answered 503 by the caller). */
  maxWaitMs: number;
}

export const QUEUE_DEFAULTS: Readonly<QueueLimits> = Object.freeze({ perPeer: 8, total: 256, maxWaitMs: 30_000 });

export interface Waiting<T> {
  id: number;
  peer: string;
  /** Normalised model name, or null when any host will do. */
  model: string | null;
  /** When it started waiting (ms). */
  at: number;
  item: T;
}

export type EnqueueResult = { ok: true; id: number } | { ok: false; reason: 'queue_full' | 'peer_queue_full'; retryAfterSec: number };

export function createFairQueue<T>(limits: QueueLimits = QUEUE_DEFAULTS) {
  /** Each peer's waiting requests, oldest first; a peer is here only while it has some. */
  const queues = new Map<string, Waiting<T>[]>();
  /** Peers in their turn order: the next freed slot is offered to the first that can use it. */
  let turn: string[] = [];
  let size = 0;
  let nextId = 1;
  const retryAfterSec = Math.max(1, Math.ceil(limits.maxWaitMs / 1000 / 2));

  const remove = (w: Waiting<T>): void => {
    const q = queues.get(w.peer)!;
    q.splice(q.indexOf(w), 1);
    size--;
    if (q.length === 0) {
      queues.delete(w.peer);
      turn = turn.filter((p) => p !== w.peer);
    }
  };

  return {
    /** Puts a request at the back of its peer's queue, or says why not. */
    enqueue(peer: string, model: string | null, item: T, now: number): EnqueueResult {
      if (size >= limits.total) return { ok: false, reason: 'queue_full', retryAfterSec };
      const q = queues.get(peer) ?? [];
      if (q.length >= limits.perPeer) return { ok: false, reason: 'peer_queue_full', retryAfterSec };
      const w: Waiting<T> = { id: nextId++, peer, model, at: now, item };
      if (q.length === 0) {
        queues.set(peer, q);
        turn.push(peer);
      }
      q.push(w);
      size++;
      return { ok: true, id: w.id };
    },

    /**
     * The request to start on a freed slot: the first peer in turn with a waiting request that
     * `canRun` accepts (its oldest such), which then goes to the back of the turn order.
     */
    next(canRun: (w: Waiting<T>) => boolean): Waiting<T> | null {
      for (const peer of turn) {
        const w = queues.get(peer)!.find(canRun);
        if (!w) continue;
        remove(w);
        if (queues.has(peer)) turn = [...turn.filter((p) => p !== peer), peer];
        return w;
      }
      return null;
    },

    /** Takes a request out (its client left): true if it was still waiting. */
    cancel(id: number): boolean {
      for (const q of queues.values()) {
        const w = q.find((x) => x.id === id);
        if (w) {
          remove(w);
          return true;
        }
      }
      return false;
    },

    /** Takes out, and returns, every request that has waited maxWaitMs or longer. */
    expire(now: number): Waiting<T>[] {
      const out: Waiting<T>[] = [];
      for (const q of [...queues.values()]) for (const w of [...q]) if (now - w.at >= limits.maxWaitMs) out.push(w);
      for (const w of out) remove(w);
      return out;
    },

    /** Takes out, and returns, every waiting request `pred` accepts (e.g. those no host can run any more). */
    removeWhere(pred: (w: Waiting<T>) => boolean): Waiting<T>[] {
      const out: Waiting<T>[] = [];
      for (const q of queues.values()) for (const w of q) if (pred(w)) out.push(w);
      for (const w of out) remove(w);
      return out;
    },

    size: (): number => size,
    sizeOf: (peer: string): number => queues.get(peer)?.length ?? 0,
    /** How many waiting requests `pred` accepts (e.g. those only one host can run). */
    count: (pred: (w: Waiting<T>) => boolean): number => {
      let n = 0;
      for (const q of queues.values()) for (const w of q) if (pred(w)) n++;
      return n;
    },
  };
}

export type FairQueue<T> = ReturnType<typeof createFairQueue<T>>;
