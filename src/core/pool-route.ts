/**
 * Which GPU host of a pool gets a request, and when a host leaves and rejoins the rotation
 * (docs/gpu-pool.md). Pure: the router (guard) feeds it what its probes and requests saw.
 */

export interface HostHealth {
  state: 'healthy' | 'cooldown';
  /** In cooldown: no passing probe returns the host before this time (ms). */
  until: number;
  /** The current cooldown's length; doubles while failures continue. */
  cooldownMs: number;
  /** Consecutive 5xx answers while healthy. */
  serverErrors: number;
}

export interface HostState {
  name: string;
  /** Requests the host takes at once (its OLLAMA_NUM_PARALLEL). */
  parallel: number;
  inFlight: number;
  /** Requests waiting in the router's queues that could only run here. */
  queued: number;
  draining: boolean;
  health: HostHealth;
  /** Normalised names of the models it has (/api/tags) and of those loaded now (/api/ps). */
  models: ReadonlySet<string>;
  loaded: ReadonlySet<string>;
  /** When it was last chosen (ms); equal hosts take turns. */
  lastPickedAt: number;
}

export interface HealthOptions {
  /** First cooldown; it doubles with each further failure, up to maxCooldownMs. */
  cooldownMs: number;
  maxCooldownMs: number;
  /** Consecutive 5xx answers that take a healthy host out. */
  serverErrorStreak: number;
}

export const HEALTH_DEFAULTS: Readonly<HealthOptions> = Object.freeze({ cooldownMs: 5_000, maxCooldownMs: 60_000, serverErrorStreak: 3 });

export const HEALTHY: Readonly<HostHealth> = Object.freeze({ state: 'healthy', until: 0, cooldownMs: 0, serverErrors: 0 });

/** A host not probed yet: out of the rotation until its first probe passes (at once). */
export const UNPROBED: Readonly<HostHealth> = Object.freeze({ state: 'cooldown', until: 0, cooldownMs: HEALTH_DEFAULTS.cooldownMs, serverErrors: 0 });

export type HealthEvent =
  /** A probe (/api/version, /api/tags, /api/ps) answered, or failed. */
  | { kind: 'probe'; ok: boolean }
  /** A request could not connect, or its connection was reset before any answer. */
  | { kind: 'unreachable' }
  /** A request's answer began with this status. */
  | { kind: 'answer'; status: number };

/** The host's health after `e` at `now`. */
export function nextHealth(h: HostHealth, e: HealthEvent, now: number, o: HealthOptions = HEALTH_DEFAULTS): HostHealth {
  const failed = (e.kind === 'probe' && !e.ok) || e.kind === 'unreachable';
  if (h.state === 'healthy') {
    if (failed) return cooldown(o.cooldownMs, now);
    if (e.kind === 'answer') {
      if (e.status < 500) return h.serverErrors === 0 ? h : { ...h, serverErrors: 0 };
      const n = h.serverErrors + 1;
      return n >= o.serverErrorStreak ? cooldown(o.cooldownMs, now) : { ...h, serverErrors: n };
    }
    return h;
  }
  // In cooldown no requests are sent: failures of requests sent before it (a host running four
  // requests that restarts fails all four) are one failure, already counted. Only probes escalate.
  if (e.kind === 'probe' && !e.ok) return cooldown(Math.min(h.cooldownMs * 2, o.maxCooldownMs), now);
  if (e.kind === 'probe' && e.ok && now >= h.until) return HEALTHY;
  return h;
}

function cooldown(ms: number, now: number): HostHealth {
  return { state: 'cooldown', until: now + ms, cooldownMs: ms, serverErrors: 0 };
}

/** How full a host is: in flight and waiting for it, per slot. */
export const busyness = (h: Pick<HostState, 'inFlight' | 'queued' | 'parallel'>): number => (h.inFlight + h.queued) / Math.max(1, h.parallel);

/**
 * The hosts that may take a request for `model` (null: any model, e.g. /api/version), best
 * first: healthy, not draining, not in `exclude` (hosts it already failed on), having the
 * model; those with it loaded first, then the least busy, then the one picked longest ago.
 */
export function chooseHosts(hosts: readonly HostState[], model: string | null, exclude: ReadonlySet<string> = new Set()): HostState[] {
  return hosts
    .filter((h) => h.health.state === 'healthy' && !h.draining && !exclude.has(h.name) && (model === null || h.models.has(model)))
    .sort((a, b) => {
      if (model !== null) {
        const la = a.loaded.has(model) ? 0 : 1;
        const lb = b.loaded.has(model) ? 0 : 1;
        if (la !== lb) return la - lb;
      }
      return busyness(a) - busyness(b) || a.lastPickedAt - b.lastPickedAt || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    });
}

/** One entry of Ollama's /api/tags `models`. */
export interface TagEntry {
  name: string;
  modified_at?: string;
  [k: string]: unknown;
}

/**
 * /api/tags of the whole pool: every host's models once, by name; where two hosts list the
 * same name, the newer `modified_at` wins. Sorted like Ollama's (newest first).
 */
export function mergeTags(lists: readonly (readonly TagEntry[])[]): TagEntry[] {
  const byName = new Map<string, TagEntry>();
  for (const list of lists) {
    for (const m of list) {
      if (typeof m?.name !== 'string') continue;
      const have = byName.get(m.name);
      if (!have || time(m.modified_at) > time(have.modified_at)) byName.set(m.name, m);
    }
  }
  return [...byName.values()].sort((a, b) => time(b.modified_at) - time(a.modified_at) || (a.name < b.name ? -1 : 1));
}

const time = (s: unknown): number => {
  const t = typeof s === 'string' ? Date.parse(s) : NaN;
  return Number.isNaN(t) ? -Infinity : t;
};
