import { beforeEach, describe, expect, test } from 'vitest';
import type { DesiredPeer } from '../../../src/core/desired.js';
import { applyChanges, createReconciler, reconcileOnce } from '../../../src/gateway/reconciler.js';
import type { DesiredChanges } from '../../../src/gateway/context.js';
import { reconcileEnv, type ReconcileEnv } from '../../support/reconcile-env.js';

let env: ReconcileEnv;
beforeEach(() => {
  env = reconcileEnv();
});

const changes = (before: DesiredPeer[], after: [number, DesiredPeer | null][]): DesiredChanges => ({
  before: new Map(before.map((p) => [p.id, p])),
  after: new Map(after),
  state: { ...env.desired },
});
const wgKeys = () => [...env.wg.peers('wgo0').keys()].sort();
const setAddrs = async () => (await env.fw.saveSet('wgo-peers-wgo0')).split('\n').filter((l) => l.startsWith('add ')).map((l) => l.split(' ')[2]).sort();

describe('applyChanges (the fast path after a commit)', () => {
  beforeEach(async () => {
    env.desired.peers = [env.peer(0), env.peer(1)];
    await reconcileOnce(env.deps);
  });

  test('a new peer: set and WireGuard in one step each, no kernel reads', async () => {
    const mark = env.log.length;
    const p = env.peer(2);
    const r = await applyChanges(env.deps, changes([], [[p.id, p]]));
    expect(r).toMatchObject({ ok: true, mode: 'changes', setAdded: 1, wgUpserted: 1, noop: false });
    expect(env.since(mark).sort()).toEqual(['ipset add 10.66.0.4', 'wg.set']);
    expect(wgKeys()).toContain(p.publicKey);
    expect(await setAddrs()).toContain('10.66.0.4');
  });

  test('a revoked peer: out of WireGuard, then out of the set, then its flows cut', async () => {
    const gone = env.desired.peers[0]!;
    const mark = env.log.length;
    const r = await applyChanges(env.deps, changes([gone], [[gone.id, null]]));
    expect(r).toMatchObject({ ok: true, wgRemoved: 1, setRemoved: 1, cut: [gone.address] });
    expect(env.since(mark)).toEqual(['wg.set', `ipset del ${gone.address}`, `conntrack.cut ${gone.address}`]);
    expect(wgKeys()).not.toContain(gone.publicKey);
    expect(await setAddrs()).not.toContain(gone.address);
  });

  test('nothing changed: no call at all', async () => {
    const p = env.desired.peers[0]!;
    const mark = env.log.length;
    const r = await applyChanges(env.deps, changes([p], [[p.id, p]]));
    expect(r).toMatchObject({ ok: true, noop: true });
    expect(env.since(mark)).toEqual([]);
  });

  test('more than 200 changed peers: left to a full run (null)', async () => {
    const many = Array.from({ length: 201 }, (_, i) => env.peer(10 + i));
    expect(await applyChanges(env.deps, changes([], many.map((p) => [p.id, p])))).toBeNull();
  });
});

describe('createReconciler with the fast path', () => {
  test('a changes request uses the fast path; a failure there falls back to a full run', async () => {
    env.desired.peers = [env.peer(0)];
    await reconcileOnce(env.deps);
    const p = env.peer(1);
    let next: DesiredChanges | null = changes([], [[p.id, p]]);
    const rec = createReconciler({ ...env.deps, loadChanges: () => next });
    env.desired.peers = [env.peer(0), p];
    expect(await rec.request('changes')).toMatchObject({ ok: true, mode: 'changes', wgUpserted: 1 });

    const q = env.peer(2);
    env.desired.peers = [...env.desired.peers, q];
    next = changes([], [[q.id, q]]);
    env.fw.failOn.add('restoreSet');
    const r = await rec.request('changes');
    expect(r.mode).toBe('full');
    expect(r.errors.some((e) => e.startsWith('fast path: firewall set'))).toBe(true);
    env.fw.failOn.delete('restoreSet');
    expect(await rec.request('full')).toMatchObject({ ok: true, mode: 'full' });
    expect(wgKeys()).toEqual([env.peer(0).publicKey, p.publicKey, q.publicKey].sort());
  });

  test('without a baseline (no changes available) a changes request runs in full', async () => {
    env.desired.peers = [env.peer(0)];
    const rec = createReconciler({ ...env.deps, loadChanges: () => null });
    expect(await rec.request('changes')).toMatchObject({ ok: true, mode: 'full', created: 'kernel' });
  });
});
