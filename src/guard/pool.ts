import { createFairQueue, QUEUE_DEFAULTS, type QueueLimits } from '../core/fair-queue.js';
import { normaliseModel } from '../core/model-name.js';
import type { Refusal } from '../core/policy.js';
import { chooseHosts, HEALTH_DEFAULTS, mergeTags, UNPROBED, nextHealth, type HealthEvent, type HealthOptions, type HostState, type TagEntry } from '../core/pool-route.js';
import { createUpstream, type Upstream, type UpstreamOptions } from './upstream.js';

/**
 * The router's GPU hosts (docs/gpu-pool.md): one upstream pool per member, what each has and
 * has loaded (probed), its health, and the slots it has free. `acquire` gives a request a
 * host at once, or queues it fairly (core/fair-queue.ts) until a slot frees on a host that
 * has its model; the lease's `release` reports how it went and hands the slot on.
 */

export interface PoolMember {
  name: string;
  /** http://… for an Ollama the router reaches directly (tests, single host); https://… for a member guard, with tls. */
  origin: string;
  /** Requests it takes at once (its OLLAMA_NUM_PARALLEL). */
  parallel: number;
  tls?: UpstreamOptions['tls'];
  draining?: boolean;
  /** The gateway's stamp of the current drain, echoed in status() (the gateway checks a report is about this drain). */
  drainedAt?: number | null;
}

export interface PoolOptions {
  members: PoolMember[];
  /** How often each member's /api/tags and /api/ps are read (default 5 s). */
  probeIntervalMs?: number;
  /** A probe with no answer within this long failed (default 3 s). */
  probeTimeoutMs?: number;
  keepAliveMs?: number;
  timerResolutionMs?: number;
  health?: HealthOptions;
  queue?: QueueLimits;
  clock?: () => number;
}

/** One member as the router sees it (POST /v1/pool carries these to the gateway). */
export interface PoolHostStatus {
  name: string;
  health: 'healthy' | 'cooldown' | 'unprobed';
  draining: boolean;
  drainedAt: number | null;
  parallel: number;
  inFlight: number;
  /** Requests waiting that this host could take. */
  queued: number;
  models: string[];
  loaded: string[];
}

/** How a leased request went: its answer's status, or that the host could not be reached (before any answer). */
export type Outcome = { status: number } | 'unreachable' | 'cancelled';

export interface Lease {
  host: string;
  upstream: Upstream;
  /** When the request waited for a slot, how long (ms); 0 when it got one at once. */
  queuedMs: number;
  release(outcome: Outcome): void;
}

/** A host, or why not; `refusal` is null when the request was cancelled while waiting (its client left). */
export type Acquired = { ok: true; lease: Lease } | { ok: false; refusal: Refusal | null };

interface Member {
  state: HostState;
  upstream: Upstream;
  probing: boolean;
  /** A probe has answered at least once: its model list is known. */
  probed: boolean;
  /** As given: a change of origin or TLS material makes it another member. */
  spec: PoolMember;
}

interface Wait {
  exclude: ReadonlySet<string>;
  resolve(a: Acquired): void;
}

/** Largest /api/tags or /api/ps answer a probe reads: some 20,000 models. */
export const MAX_PROBE_BYTES = 8 * 1024 * 1024;

export function createPool(o: PoolOptions) {
  const clock = o.clock ?? Date.now;
  const health = o.health ?? HEALTH_DEFAULTS;
  const limits = o.queue ?? QUEUE_DEFAULTS;
  const probeTimeoutMs = o.probeTimeoutMs ?? 3000;
  const members = new Map<string, Member>();
  /** Members taken out of the pool while requests still ran on them: closed when the last one ends. */
  const retiring = new Set<Member>();
  const check = (list: readonly PoolMember[]): void => {
    const names = new Set<string>();
    for (const m of list) {
      if (names.has(m.name)) throw new Error(`pool member ${m.name} is named twice`);
      names.add(m.name);
      if (!Number.isInteger(m.parallel) || m.parallel < 1) throw new Error(`pool member ${m.name}: parallel must be a whole number ≥ 1`);
    }
  };
  const makeMember = (m: PoolMember): Member => {
    const upstream = createUpstream({
      origin: m.origin, keepAliveMs: o.keepAliveMs ?? 30_000, maxIdle: m.parallel, timerResolutionMs: o.timerResolutionMs ?? 500, ...(m.tls ? { tls: m.tls } : {}),
    });
    // Out of the rotation until its first probe says it answers and what it has.
    const state: HostState = { name: m.name, parallel: m.parallel, inFlight: 0, queued: 0, draining: m.draining ?? false, health: { ...UNPROBED, cooldownMs: health.cooldownMs }, models: new Set(), loaded: new Set(), lastPickedAt: 0 };
    return { state, upstream, probing: false, probed: false, spec: m };
  };
  check(o.members);
  for (const m of o.members) members.set(m.name, makeMember(m));
  const retire = (m: Member): void => {
    m.state.draining = true;
    if (m.state.inFlight === 0) void m.upstream.close();
    else retiring.add(m);
  };
  const queue = createFairQueue<Wait>(limits);
  let closed = false;
  let lists = new Map<string, TagEntry[]>();
  /** Each host's /api/ps models at its last probe. */
  let running = new Map<string, TagEntry[]>();

  const states = (): HostState[] => [...members.values()].map((m) => m.state);
  const report = (m: Member, e: HealthEvent): void => {
    const before = m.state.health.state;
    m.state.health = nextHealth(m.state.health, e, clock(), health);
    if (before !== 'healthy' && m.state.health.state === 'healthy') dispatch(m);
    if (before === 'healthy' && m.state.health.state !== 'healthy') dropHopeless();
  };

  /**
   * Waiting requests that no host can take any more (their last host for the model left, is
   * draining or cooling down) are answered now, as a new request for that model would be,
   * instead of when they time out.
   */
  function dropHopeless(): void {
    const all = states();
    for (const w of queue.removeWhere((x) => chooseHosts(all, x.model, x.item.exclude).length === 0)) {
      w.item.resolve({ ok: false, refusal: noHost(w.model, w.item.exclude) });
    }
  }

  const grant = (m: Member, queuedMs: number): Lease => {
    m.state.inFlight++;
    m.state.lastPickedAt = clock();
    let released = false;
    return {
      host: m.state.name,
      upstream: m.upstream,
      queuedMs,
      release(outcome) {
        if (released) return;
        released = true;
        m.state.inFlight--;
        if (retiring.has(m)) {
          if (m.state.inFlight === 0) {
            retiring.delete(m);
            void m.upstream.close();
          }
          return;
        }
        if (outcome === 'unreachable') report(m, { kind: 'unreachable' });
        else if (outcome !== 'cancelled') report(m, { kind: 'answer', status: outcome.status });
        dispatch(m);
      },
    };
  };

  const canRun = (m: Member, model: string | null, exclude: ReadonlySet<string>): boolean =>
    m.state.health.state === 'healthy' && !m.state.draining && !exclude.has(m.state.name) && (model === null || m.state.models.has(model));

  /** Hands free slots of `m` to waiting requests, peers in turn. */
  function dispatch(m: Member): void {
    while (!closed && m.state.inFlight < m.state.parallel) {
      const w = queue.next((x) => canRun(m, x.model, x.item.exclude));
      if (!w) return;
      w.item.resolve({ ok: true, lease: grant(m, clock() - w.at) });
    }
  }

  let expiry: NodeJS.Timeout | null = null;
  const watchExpiry = (): void => {
    expiry ??= setInterval(() => {
      for (const w of queue.expire(clock())) w.item.resolve({ ok: false, refusal: { status: 503, error: `waited ${Math.round(limits.maxWaitMs / 1000)} s for a free GPU slot`, reason: 'queue_timeout', retryAfterSec: Math.max(1, Math.ceil(limits.maxWaitMs / 2000)) } });
      if (queue.size() === 0 && expiry) {
        clearInterval(expiry);
        expiry = null;
      }
    }, Math.min(1000, Math.max(10, Math.floor(limits.maxWaitMs / 4)))).unref();
  };

  /**
   * A host for a request of `peer` for `model` (as the request named it, or null for any
   * host), other than those in `exclude` (hosts it already failed on). Resolves at once when
   * a candidate has a free slot, else when one frees; `cancel` (the client left) takes a
   * waiting request out, and it resolves with refusal null: nothing was sent anywhere.
   */
  function acquire(peer: string, model: string | null, exclude: ReadonlySet<string> = new Set()): { result: Promise<Acquired>; cancel(): void } {
    if (closed) return { result: Promise.resolve({ ok: false, refusal: { status: 503, error: 'the guard is stopping', reason: 'upstream_unavailable', retryAfterSec: 5 } }), cancel: () => undefined };
    const key = model === null ? null : normaliseModel(model);
    const now = clock();
    const candidates = chooseHosts(states(), key, exclude);
    const free = candidates.find((h) => h.inFlight < h.parallel);
    if (free) return { result: Promise.resolve({ ok: true, lease: grant(members.get(free.name)!, 0) }), cancel: () => undefined };
    if (candidates.length === 0) return { result: Promise.resolve({ ok: false, refusal: noHost(key, exclude) }), cancel: () => undefined };
    let resolve!: (a: Acquired) => void;
    const result = new Promise<Acquired>((r) => (resolve = r));
    const q = queue.enqueue(peer, key, { exclude, resolve }, now);
    if (!q.ok) return { result: Promise.resolve({ ok: false, refusal: { status: 503, error: q.reason === 'peer_queue_full' ? 'too many of your requests are waiting for a GPU slot' : 'too many requests are waiting for a GPU slot', reason: q.reason, retryAfterSec: q.retryAfterSec } }), cancel: () => undefined };
    watchExpiry();
    return {
      result,
      cancel: () => {
        if (queue.cancel(q.id)) resolve({ ok: false, refusal: null });
      },
    };
  }

  /** Why no host can take a request: no member has the model (404, as Ollama says it), or those that have it are down or draining (503). */
  function noHost(model: string | null, exclude: ReadonlySet<string>): Refusal {
    const having = states().filter((h) => model === null || h.models.has(model));
    if (model !== null && having.length === 0) {
      // A host whose models are not known yet (just started, or not answering since) may have it: not a 404.
      if ([...members.values()].some((m) => !m.probed && !m.state.draining)) {
        return { status: 503, error: 'not every GPU host has answered yet: try again shortly', reason: 'upstream_unavailable', retryAfterSec: 1 };
      }
      return { status: 404, error: `model "${model}" not found on any GPU host`, reason: 'model_not_found' };
    }
    const cooling = having.filter((h) => h.health.state === 'cooldown' && !exclude.has(h.name));
    const retryAfterSec = cooling.length ? Math.max(1, Math.ceil((Math.min(...cooling.map((h) => h.health.until)) - clock()) / 1000)) : 5;
    return { status: 503, error: 'no GPU host that has this model is available', reason: 'upstream_unavailable', retryAfterSec };
  }

  /** GETs `path` on a member and parses the JSON; null when it failed. */
  const getJson = (m: Member, path: string): Promise<unknown> =>
    new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let status = 0;
      let size = 0;
      const call = m.upstream.request(
        { method: 'GET', path, headers: { accept: 'application/json' }, headersTimeoutMs: probeTimeoutMs, bodyTimeoutMs: probeTimeoutMs },
        {
          onStart: () => undefined,
          onHead: (s) => (status = s),
          onData: (c) => {
            size += c.length;
            // A list larger than any real one fails the probe (onError resolves null).
            if (size > MAX_PROBE_BYTES) call.abort(new Error(`${path} answer over ${MAX_PROBE_BYTES} bytes`));
            else chunks.push(c);
          },
          onEnd: () => {
            try {
              resolve(status === 200 ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : null);
            } catch {
              resolve(null);
            }
          },
          onError: () => resolve(null),
        },
      );
    });

  /** Reads each member's models and loaded models; a member that does not answer both fails its probe. */
  async function probe(): Promise<void> {
    await Promise.all(
      [...members.values()].map(async (m) => {
        if (m.probing || closed) return;
        m.probing = true;
        try {
          const [tags, ps] = await Promise.all([getJson(m, '/api/tags'), getJson(m, '/api/ps')]);
          const tagList = modelsOf(tags);
          const psList = modelsOf(ps);
          // A member replaced or removed while its probe ran: what it found belongs to no one.
          if (members.get(m.state.name) !== m) return;
          if (!tagList || !psList) return report(m, { kind: 'probe', ok: false });
          m.state.models = new Set(tagList.map((t) => normaliseModel(t.name)));
          m.state.loaded = new Set(psList.map((t) => normaliseModel(t.name)));
          m.probed = true;
          lists = new Map(lists).set(m.state.name, tagList);
          running = new Map(running).set(m.state.name, psList);
          report(m, { kind: 'probe', ok: true });
          dispatch(m);
        } finally {
          m.probing = false;
        }
      }),
    );
  }

  let prober: NodeJS.Timeout | null = null;

  return {
    acquire,
    /** How many hosts could take a request for `model` now, other than `exclude`. */
    candidates: (model: string | null, exclude: ReadonlySet<string>): number => chooseHosts(states(), model === null ? null : normaliseModel(model), exclude).length,
    /** Probes every member now; resolves when all have answered or failed. */
    probe,
    /** Probes now and then every probeIntervalMs, until close(). */
    start(): Promise<void> {
      prober ??= setInterval(() => void probe(), o.probeIntervalMs ?? 5000).unref();
      return probe();
    },
    /** /api/tags of the pool: the models of every healthy member, merged (core/pool-route.ts). */
    tags: (): TagEntry[] => mergeTags(states().filter((h) => h.health.state === 'healthy').map((h) => lists.get(h.name) ?? [])),
    /** /api/ps of the pool: what every healthy member had loaded at its last probe. */
    running: (): TagEntry[] => mergeTags(states().filter((h) => h.health.state === 'healthy').map((h) => running.get(h.name) ?? [])),
    /**
     * The pool's members from now on (a new peer set): new ones join after their first probe,
     * changed parallelism and draining apply at once, and a member that left (or whose origin
     * or TLS material changed) takes no new requests; the ones it runs finish, then its
     * connections close. A list that is not valid changes nothing.
     */
    setMembers(list: readonly PoolMember[]): void {
      check(list);
      const next = new Map(list.map((m) => [m.name, m]));
      const changed = (m: Member, want: PoolMember): boolean => want.origin !== m.spec.origin || JSON.stringify(want.tls ?? null) !== JSON.stringify(m.spec.tls ?? null);
      // Every new member is made first (a bad origin or TLS material throws here), before anything changes.
      const fresh = new Map<string, Member>();
      try {
        for (const want of list) {
          const m = members.get(want.name);
          if (!m || changed(m, want)) fresh.set(want.name, makeMember(want));
        }
      } catch (e) {
        for (const m of fresh.values()) void m.upstream.close();
        throw e;
      }
      const gone = new Set<string>();
      for (const [name, m] of members) {
        const want = next.get(name);
        if (!want || changed(m, want)) {
          members.delete(name);
          gone.add(name);
          retire(m);
        }
      }
      for (const want of list) {
        const made = fresh.get(want.name);
        if (made) {
          // Not a candidate until its first probe says what it has.
          members.set(want.name, made);
          continue;
        }
        const m = members.get(want.name)!;
        m.spec = want;
        m.state.parallel = want.parallel;
        m.state.draining = want.draining ?? false;
        dispatch(m);
      }
      lists = new Map([...lists].filter(([name]) => members.has(name) && !gone.has(name)));
      running = new Map([...running].filter(([name]) => members.has(name) && !gone.has(name)));
      dropHopeless();
      if (fresh.size > 0 && !closed && prober) void probe();
    },
    setDraining(name: string, draining: boolean): void {
      const m = members.get(name);
      if (!m) throw new Error(`no pool member ${name}`);
      m.state.draining = draining;
      if (!draining) dispatch(m);
      else dropHopeless();
    },
    /** Each member as the router sees it, for status, metrics and tests. */
    status: (): PoolHostStatus[] =>
      [...members.values()].map((m) => {
        const h = m.state;
        // Waiting requests this host could take once a slot frees (one may count for several hosts).
        const queued = queue.count((w) => !w.item.exclude.has(h.name) && (w.model === null || h.models.has(w.model)));
        return { name: h.name, health: m.probed ? h.health.state : 'unprobed', draining: h.draining, drainedAt: m.spec.drainedAt ?? null, parallel: h.parallel, inFlight: h.inFlight, queued, models: [...h.models].sort(), loaded: [...h.loaded].sort() };
      }),
    queued: (): number => queue.size(),
    async close(): Promise<void> {
      closed = true;
      if (prober) clearInterval(prober);
      if (expiry) clearInterval(expiry);
      prober = null;
      expiry = null;
      for (const w of queue.expire(Infinity)) w.item.resolve({ ok: false, refusal: { status: 503, error: 'the guard is stopping', reason: 'upstream_unavailable', retryAfterSec: 5 } });
      await Promise.all([...members.values(), ...retiring].map((m) => m.upstream.close()));
    },
  };
}

export type Pool = ReturnType<typeof createPool>;

function modelsOf(v: unknown): TagEntry[] | null {
  if (typeof v !== 'object' || v === null || !Array.isArray((v as { models?: unknown }).models)) return null;
  return ((v as { models: unknown[] }).models).filter((m): m is TagEntry => typeof m === 'object' && m !== null && typeof (m as TagEntry).name === 'string');
}
