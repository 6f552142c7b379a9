import { beforeEach, describe, expect, test } from 'vitest';
import { createReconciler, reconcileOnce } from '../../../src/gateway/reconciler.js';
import { reconcileEnv, type ReconcileEnv } from '../../support/reconcile-env.js';
import { ingressVerdict, ipv4Packet, tcpHeader } from '../../fakes/packets.js';

let env: ReconcileEnv;
beforeEach(() => {
  env = reconcileEnv();
  env.desired.peers = [env.peer(0)];
});

const spec = { iface: 'wgo0', ollamaHost: '192.168.1.10', ollamaPort: 11434 };
const run = () => reconcileOnce(env.deps);
/**
 * Whether the barrier does its job, judged by running what is installed on a
 * peer's packets: the service passes; another port, another host and UDP do not.
 */
const barrierHolds = async (): Promise<boolean> => {
  const verdicts = await Promise.all([
    ingressVerdict(env.tc, 'wgo0', ipv4Packet({ dst: spec.ollamaHost, proto: 6, payload: tcpHeader(spec.ollamaPort) })),
    ingressVerdict(env.tc, 'wgo0', ipv4Packet({ dst: spec.ollamaHost, proto: 6, payload: tcpHeader(22) })),
    ingressVerdict(env.tc, 'wgo0', ipv4Packet({ dst: '192.168.1.20', proto: 6, payload: tcpHeader(spec.ollamaPort) })),
    ingressVerdict(env.tc, 'wgo0', ipv4Packet({ dst: spec.ollamaHost, proto: 17, payload: tcpHeader(spec.ollamaPort) })),
  ]);
  return verdicts.join() === 'pass,drop,drop,drop';
};

describe('reconcileOnce: the tc ingress barrier', () => {
  test('is installed on a new interface before it is brought up, and left alone when in place', async () => {
    const r = await run();
    expect(r).toMatchObject({ ok: true, barrier: 'repaired' });
    expect(env.log.indexOf('tc filter replace')).toBeLessThan(env.log.indexOf('wg.setUp true'));
    expect(await barrierHolds()).toBe(true);
    const mark = env.log.length;
    expect(await run()).toMatchObject({ ok: true, noop: true, barrier: 'in-place' });
    expect(env.since(mark)).toEqual([]);
  });

  // Whether the drift opens the tunnel by itself: a filter behind ours never runs
  // for a packet ours decides, but it is not ours and is removed all the same.
  test.each([
    ['the qdisc deleted', () => env.tc.devices.get('wgo0')!.clsact = false, false],
    ['the filter deleted', () => void env.tc.devices.get('wgo0')!.filters.splice(0), false],
    ['a pass-all filter put before ours', () => env.tc.addForeign('wgo0', { chain: 0, pref: 1, kind: 'bpf', protocol: 'all', handle: '0x2' }), false],
    ['a filter at another priority', () => env.tc.addForeign('wgo0', { chain: 0, pref: 9, kind: 'u32', protocol: 'ip', handle: '800::800' }), true],
  ])('drift is repaired by the next full run without taking the interface down: %s', async (_what, drift, holdsMeanwhile) => {
    await run();
    (drift as () => void)();
    expect(await barrierHolds()).toBe(holdsMeanwhile);
    const mark = env.log.length;
    expect(await run()).toMatchObject({ ok: true, noop: false, barrier: 'repaired', errors: [] });
    expect(await barrierHolds()).toBe(true);
    expect(env.tc.devices.get('wgo0')!.filters.map((f) => [f.pref, f.kind, f.handle])).toEqual([[1, 'bpf', '0x1']]);
    expect(env.since(mark).filter((l) => l.startsWith('wg.setUp'))).toEqual([]);
    expect((await env.wg.link('wgo0'))!.up).toBe(true);
  });

  test('fails closed: a new interface that cannot get its barrier is never brought up', async () => {
    env.tc.failOn.add('tc');
    const r = await run();
    expect(r).toMatchObject({ ok: false, barrier: 'failed', created: 'kernel' });
    expect(r.errors).toEqual([expect.stringMatching(/^tunnel barrier: fake tc: Error: TC classifier not found/)]);
    expect(env.log).not.toContain('wg.setUp true');
    expect((await env.wg.link('wgo0'))!.up).toBe(false);
    // The peer table is still applied: taking access away must keep working.
    expect(env.wg.peers('wgo0').size).toBe(1);
    env.tc.failOn.delete('tc');
    expect(await run()).toMatchObject({ ok: true, barrier: 'repaired' });
    expect((await env.wg.link('wgo0'))!.up).toBe(true);
  });

  test('fails closed: a running interface whose barrier is gone and cannot be restored is taken down', async () => {
    await run();
    env.tc.devices.get('wgo0')!.clsact = false;
    env.tc.failOn.add('tc');
    const r = await run();
    expect(r).toMatchObject({ ok: false, barrier: 'failed' });
    expect((await env.wg.link('wgo0'))!.up).toBe(false);
    env.tc.failOn.delete('tc');
    expect(await run()).toMatchObject({ ok: true, barrier: 'repaired' });
    expect((await env.wg.link('wgo0'))!.up).toBe(true);
  });

  test('a barrier that cannot even be read counts as failed', async () => {
    await run();
    env.tc.failOn.add('show');
    expect(await run()).toMatchObject({ ok: false, barrier: 'failed' });
    expect((await env.wg.link('wgo0'))!.up).toBe(false);
  });

  test('when the iptables side fails, the interface goes down before the barrier is looked at', async () => {
    await run();
    env.fw.failOn.add('restore');
    env.fw.seed('ipv4', '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n');
    expect(await run()).toMatchObject({ ok: false, barrier: null });
    expect((await env.wg.link('wgo0'))!.up).toBe(false);
  });

  test('while the latest full run failed, a changes request runs in full (no fast-path ok hides the failure)', async () => {
    let changes = 0;
    const rec = createReconciler({ ...env.deps, loadChanges: () => (changes++, { before: new Map(), after: new Map(), state: env.deps.loadDesired() }) });
    expect(await rec.request('full')).toMatchObject({ ok: true, mode: 'full' });
    expect(await rec.request('changes')).toMatchObject({ ok: true, mode: 'changes' });
    env.tc.devices.get('wgo0')!.clsact = false;
    env.tc.failOn.add('tc');
    expect(await rec.request('full')).toMatchObject({ ok: false, mode: 'full', barrier: 'failed' });
    expect(await rec.request('changes')).toMatchObject({ ok: false, mode: 'full', barrier: 'failed' });
    env.tc.failOn.delete('tc');
    expect(await rec.request('changes')).toMatchObject({ ok: true, mode: 'full', barrier: 'repaired' });
    expect(await rec.request('changes')).toMatchObject({ ok: true, mode: 'changes' });
    expect(changes).toBe(4);
  });
});
