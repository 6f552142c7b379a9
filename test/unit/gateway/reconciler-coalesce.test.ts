import { beforeEach, describe, expect, test } from 'vitest';
import { createReconciler } from '../../../src/gateway/reconciler.js';
import { reconcileEnv, type ReconcileEnv } from '../../support/reconcile-env.js';

let env: ReconcileEnv;
let runs: number;
let gate: Promise<void>;
let release: () => void;

beforeEach(() => {
  env = reconcileEnv();
  runs = 0;
  gate = Promise.resolve();
  const load = env.deps.loadDesired;
  env.deps.loadDesired = () => {
    runs++;
    return load();
  };
  // Every run reads the link first: holding it holds the run in progress.
  const link = env.wg.link.bind(env.wg);
  env.wg.link = async (iface) => {
    await gate;
    return link(iface);
  };
});

const hold = (): void => {
  gate = new Promise((resolve) => {
    release = resolve;
  });
};

describe('createReconciler', () => {
  test('10 requests during a run coalesce into one more run that sees the newest state; all resolve', async () => {
    const r = createReconciler(env.deps);
    hold();
    const first = r.request();
    expect(runs).toBe(1);
    env.desired.peers = [env.peer(0)];
    const burst = Array.from({ length: 10 }, () => r.request());
    env.desired.peers = [env.peer(0), env.peer(1)];
    release();
    const [a, ...rest] = await Promise.all([first, ...burst]);
    expect(runs).toBe(2);
    expect(a).toMatchObject({ ok: true, peers: 0, created: 'kernel' });
    for (const b of rest) expect(b).toBe(rest[0]);
    expect(rest[0]).toMatchObject({ ok: true, peers: 2, wgUpserted: 2, created: null });
  });

  test('requests made one after another each get their own run', async () => {
    const r = createReconciler(env.deps);
    const a = await r.request();
    const b = await r.request();
    expect(runs).toBe(2);
    expect(a.noop).toBe(false);
    expect(b.noop).toBe(true);
  });

  test('a request made during the queued run queues exactly one more', async () => {
    const r = createReconciler(env.deps);
    hold();
    const first = r.request();
    const second = r.request();
    release();
    await first;
    // The queued run started the moment the first one ended, and is running now.
    expect(runs).toBe(2);
    const third = r.request();
    expect(third).not.toBe(second);
    expect(r.request()).toBe(third);
    await Promise.all([second, third]);
    expect(runs).toBe(3);
  });

  test('idle() waits for the running and the queued run', async () => {
    const r = createReconciler(env.deps);
    hold();
    void r.request();
    void r.request();
    let idle = false;
    const waiting = r.idle().then(() => {
      idle = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(idle).toBe(false);
    release();
    await waiting;
    expect(runs).toBe(2);
  });

  test('a run that throws resolves as a failed result, and the next run works', async () => {
    const r = createReconciler(env.deps);
    env.fw.failOn.add('save');
    const bad = await r.request();
    expect(bad).toMatchObject({ ok: false, noop: false, errors: ['fake ipv4 save failure'] });
    env.fw.failOn.clear();
    expect(await r.request()).toMatchObject({ ok: true, created: 'kernel' });
  });
});
