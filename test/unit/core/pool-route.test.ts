import { describe, expect, test } from 'vitest';
import { HEALTHY, chooseHosts, mergeTags, nextHealth, type HealthEvent, type HostHealth, type HostState } from '../../../src/core/pool-route.js';

const host = (name: string, o: Partial<HostState> = {}): HostState => ({
  name, parallel: 4, inFlight: 0, queued: 0, draining: false, health: HEALTHY, models: new Set(['llama3.2:latest']), loaded: new Set(), lastPickedAt: 0, ...o,
});
const names = (hs: HostState[]): string[] => hs.map((h) => h.name);
const LLAMA = 'llama3.2:latest';

describe('chooseHosts: which host gets a request', () => {
  test('only hosts that have the model; none for a model no host has', () => {
    const hs = [host('a', { models: new Set(['qwen2.5:7b']) }), host('b')];
    expect(names(chooseHosts(hs, LLAMA))).toEqual(['b']);
    expect(chooseHosts(hs, 'mistral:latest')).toEqual([]);
  });
  test('a host with the model loaded comes before a less busy one without', () => {
    const hs = [host('a', { inFlight: 0 }), host('b', { inFlight: 3, loaded: new Set([LLAMA]) })];
    expect(names(chooseHosts(hs, LLAMA))).toEqual(['b', 'a']);
  });
  test('then the least busy, in flight and waiting per slot (parallelism counts)', () => {
    const hs = [host('a', { inFlight: 2, parallel: 2 }), host('b', { inFlight: 2, parallel: 8 }), host('c', { inFlight: 1, queued: 2, parallel: 4 })];
    expect(names(chooseHosts(hs, LLAMA))).toEqual(['b', 'c', 'a']);
  });
  test('equal hosts take turns: the one picked longest ago first, then by name', () => {
    expect(names(chooseHosts([host('a', { lastPickedAt: 20 }), host('b', { lastPickedAt: 10 })], LLAMA))).toEqual(['b', 'a']);
    expect(names(chooseHosts([host('b'), host('a')], LLAMA))).toEqual(['a', 'b']);
  });
  test('draining, cooling down and already-failed hosts are left out', () => {
    const cool: HostHealth = { state: 'cooldown', until: 99, cooldownMs: 5000, serverErrors: 0 };
    const hs = [host('a', { draining: true }), host('b', { health: cool }), host('c'), host('d')];
    expect(names(chooseHosts(hs, LLAMA, new Set(['d'])))).toEqual(['c']);
  });
  test('no model (e.g. /api/version): any usable host, least busy first', () => {
    const hs = [host('a', { inFlight: 2, models: new Set() }), host('b', { inFlight: 1, models: new Set() })];
    expect(names(chooseHosts(hs, null))).toEqual(['b', 'a']);
  });
});

describe('nextHealth: leaving and rejoining the rotation', () => {
  const run = (events: [HealthEvent, number][], from: HostHealth = HEALTHY): HostHealth => events.reduce((h, [e, t]) => nextHealth(h, e, t), from);
  test('a refused connection or a failed probe: 5 s cooldown; a passing probe before it ends does not return the host', () => {
    for (const e of [{ kind: 'unreachable' }, { kind: 'probe', ok: false }] as HealthEvent[]) {
      const h = run([[e, 1000]]);
      expect(h).toEqual({ state: 'cooldown', until: 6000, cooldownMs: 5000, serverErrors: 0 });
      expect(run([[{ kind: 'probe', ok: true }, 5999]], h).state).toBe('cooldown');
      expect(run([[{ kind: 'probe', ok: true }, 6000]], h)).toEqual(HEALTHY);
    }
  });
  test('failures during a cooldown double it, up to 60 s', () => {
    const fail: HealthEvent = { kind: 'probe', ok: false };
    const h = run([[fail, 0], [fail, 5000], [fail, 15000], [fail, 35000], [fail, 75000], [fail, 135000]]);
    expect(h).toEqual({ state: 'cooldown', until: 195000, cooldownMs: 60000, serverErrors: 0 });
  });
  test('in a cooldown, failures of requests sent before it do not lengthen it: a host running four requests that restarts is one failure', () => {
    const h = run([[{ kind: 'unreachable' }, 0], [{ kind: 'unreachable' }, 0], [{ kind: 'unreachable' }, 1], [{ kind: 'unreachable' }, 2]]);
    expect(h).toEqual({ state: 'cooldown', until: 5000, cooldownMs: 5000, serverErrors: 0 });
    expect(run([[{ kind: 'probe', ok: true }, 5000]], h)).toEqual(HEALTHY);
  });
  test('three 5xx answers in a row take a host out; an answer below 500 resets the streak', () => {
    const e5: HealthEvent = { kind: 'answer', status: 502 };
    const ok: HealthEvent = { kind: 'answer', status: 200 };
    expect(run([[e5, 0], [e5, 1], [ok, 2], [e5, 3], [e5, 4]]).state).toBe('healthy');
    expect(run([[e5, 0], [e5, 1], [e5, 2]])).toEqual({ state: 'cooldown', until: 5002, cooldownMs: 5000, serverErrors: 0 });
    // 4xx is the client's doing, not the host's
    expect(run([[e5, 0], [e5, 1], [{ kind: 'answer', status: 404 }, 2], [e5, 3]]).state).toBe('healthy');
  });
});

describe('mergeTags: the pool’s /api/tags', () => {
  test('each name once, the newest modified_at wins, newest first', () => {
    const a = [{ name: 'llama3.2:latest', modified_at: '2026-11-01T00:00:00Z', digest: 'old' }, { name: 'qwen2.5:7b', modified_at: '2026-10-01T00:00:00Z' }];
    const b = [{ name: 'llama3.2:latest', modified_at: '2026-12-01T00:00:00Z', digest: 'new' }, { name: 'nomic-embed-text:latest', modified_at: 'not a date' }];
    expect(mergeTags([a, b])).toEqual([
      { name: 'llama3.2:latest', modified_at: '2026-12-01T00:00:00Z', digest: 'new' },
      { name: 'qwen2.5:7b', modified_at: '2026-10-01T00:00:00Z' },
      { name: 'nomic-embed-text:latest', modified_at: 'not a date' },
    ]);
  });
  test('entries without a name are dropped', () => {
    expect(mergeTags([[{ name: 'a:latest' }, { nope: 1 } as never, null as never]])).toEqual([{ name: 'a:latest' }]);
  });
});
