import { beforeEach, describe, expect, test } from 'vitest';
import { reconcileOnce } from '../../../src/gateway/reconciler.js';
import { reconcileEnv, type ReconcileEnv } from '../../support/reconcile-env.js';
import { firewallVerdict, type Flow } from '../../fakes/packets.js';

let env: ReconcileEnv;
beforeEach(() => {
  env = reconcileEnv();
});

const spec = { iface: 'wgo0', ollamaHost: '192.168.1.10', ollamaPort: 11434 };
const run = () => reconcileOnce(env.deps);
const wgPeers = () => [...env.wg.peers('wgo0').values()];

describe('reconcileOnce: first run', () => {
  test('builds the firewall first, then creates and configures the interface', async () => {
    env.desired.peers = [env.peer(0)];
    const r = await run();
    expect(r).toMatchObject({
      ok: true, noop: false, created: 'kernel', firewallRepaired: ['ipv4', 'ipv6'], barrier: 'repaired', peers: 1, setAdded: 1, wgUpserted: 1, errors: [],
    });
    expect(env.log).toEqual([
      'ipset create wgo-peers-wgo0',
      'ipset add 10.66.0.2',
      'fw.restore ipv4',
      'fw.restore ipv6',
      'wg.create',
      'tc qdisc add',
      'tc filter replace',
      'wg.setIdentity',
      'wg.addAddress 10.66.0.1/16',
      'wg.setUp true',
      'wg.set',
    ]);
  });

  test('reaches the desired state: the firewall lets a peer reach only Ollama, interface up, peer with its PSK', async () => {
    const p = env.peer(0);
    env.desired.peers = [p];
    await run();
    // The firewall judged by what it does to packets, not by the plan's own check.
    const peer = { in: 'wgo0', src: '10.66.0.2', dst: spec.ollamaHost, proto: 'tcp' as const, dport: spec.ollamaPort };
    const verdicts = (flows: [string, 'FORWARD' | 'INPUT', Flow][], family: 'ipv4' | 'ipv6' = 'ipv4') =>
      Object.fromEntries(flows.map(([what, hook, flow]) => [what, firewallVerdict(env.fw, family, hook, flow)]));
    expect(verdicts([
      ['peer opens ollama', 'FORWARD', { ...peer, syn: true, ct: 'NEW' }],
      ['peer to ollama', 'FORWARD', { ...peer, ct: 'ESTABLISHED' }],
      ['ollama replies', 'FORWARD', { out: 'wgo0', src: spec.ollamaHost, dst: '10.66.0.2', proto: 'tcp', sport: spec.ollamaPort, ct: 'ESTABLISHED' }],
      ['a non-SYN opening', 'FORWARD', { ...peer, ct: 'NEW' }],
      ['another port', 'FORWARD', { ...peer, dport: 22, syn: true, ct: 'NEW' }],
      ['another host', 'FORWARD', { ...peer, dst: '192.168.1.20', syn: true, ct: 'NEW' }],
      ['udp', 'FORWARD', { ...peer, proto: 'udp', ct: 'NEW' }],
      ['an address no peer has', 'FORWARD', { ...peer, src: '10.66.0.99', syn: true, ct: 'NEW' }],
      ['peer to peer', 'FORWARD', { ...peer, out: 'wgo0', dst: '10.66.0.3', syn: true, ct: 'NEW' }],
      ['the gateway itself', 'INPUT', { ...peer, dst: '10.66.0.1', dport: 22, syn: true, ct: 'NEW' }],
    ])).toEqual({
      'peer opens ollama': 'ACCEPT', 'peer to ollama': 'ACCEPT', 'ollama replies': 'ACCEPT', 'a non-SYN opening': 'DROP', 'another port': 'DROP',
      'another host': 'DROP', udp: 'DROP', 'an address no peer has': 'DROP', 'peer to peer': 'DROP', 'the gateway itself': 'DROP',
    });
    expect(verdicts([
      ['from the tunnel', 'FORWARD', { in: 'wgo0', src: 'fd00::2', dst: 'fd00::1', proto: 'tcp', dport: spec.ollamaPort, syn: true, ct: 'NEW' }],
      ['to the tunnel', 'FORWARD', { out: 'wgo0', src: 'fd00::1', dst: 'fd00::2', proto: 'tcp', sport: spec.ollamaPort, ct: 'ESTABLISHED' }],
      ['to the gateway', 'INPUT', { in: 'wgo0', src: 'fd00::2', dst: 'fd00::1', proto: 'tcp', dport: 22, syn: true, ct: 'NEW' }],
    ], 'ipv6')).toEqual({ 'from the tunnel': 'DROP', 'to the tunnel': 'DROP', 'to the gateway': 'DROP' });
    expect(await env.wg.link('wgo0')).toEqual({ up: true, addresses: ['10.66.0.1/16'] });
    const dump = await env.wg.dump('wgo0');
    expect(dump.iface).toMatchObject({ privateKey: env.deps.privateKey, listenPort: 51820 });
    expect(dump.peers).toEqual([expect.objectContaining({ publicKey: p.publicKey, presharedKey: p.presharedKey, allowedIps: ['10.66.0.2/32'] })]);
  });

  test('a second run with nothing changed does nothing and says so', async () => {
    env.desired.peers = [env.peer(0), env.peer(1)];
    await run();
    const mark = env.log.length;
    const restores = env.fw.restores.length;
    const r = await run();
    expect(r).toMatchObject({
      ok: true, noop: true, created: null, firewallRepaired: [], barrier: 'in-place', setAdded: 0, setRemoved: 0, wgUpserted: 0, wgRemoved: 0, cut: [], errors: [],
    });
    expect(env.since(mark)).toEqual([]);
    expect(env.fw.restores.length).toBe(restores);
  });
});

describe('reconcileOnce: peer changes', () => {
  beforeEach(async () => {
    env.desired.peers = [env.peer(0)];
    await run();
  });

  test('adding peers: set additions before the one wg set', async () => {
    const mark = env.log.length;
    env.desired.peers = [env.peer(0), env.peer(1), env.peer(2)];
    const r = await run();
    expect(env.since(mark)).toEqual(['ipset add 10.66.0.3', 'ipset add 10.66.0.4', 'wg.set']);
    expect(r).toMatchObject({ ok: true, noop: false, setAdded: 2, wgUpserted: 2, wgRemoved: 0, cut: [] });
    expect(env.wg.setCalls.at(-1)).toEqual([
      'set', 'wgo0',
      'peer', env.peer(1).publicKey, 'preshared-key', env.peer(1).presharedKeyFile, 'allowed-ips', '10.66.0.3/32',
      'peer', env.peer(2).publicKey, 'preshared-key', env.peer(2).presharedKeyFile, 'allowed-ips', '10.66.0.4/32',
    ]);
    expect((await run()).noop).toBe(true);
  });

  test('removing a peer: WireGuard first, then the set, then its flows are cut', async () => {
    env.desired.peers = [env.peer(0), env.peer(1)];
    await run();
    const mark = env.log.length;
    env.desired.peers = [env.peer(0)];
    const r = await run();
    expect(env.since(mark)).toEqual(['wg.set', 'ipset del 10.66.0.3', 'conntrack.cut 10.66.0.3']);
    expect(env.wg.setCalls.at(-1)).toEqual(['set', 'wgo0', 'peer', env.peer(1).publicKey, 'remove']);
    expect(r).toMatchObject({ ok: true, setRemoved: 1, wgRemoved: 1, cut: ['10.66.0.3'] });
    expect(wgPeers().map((p) => p.publicKey)).toEqual([env.peer(0).publicKey]);
    expect([...env.fw.sets.get('wgo-peers-wgo0')!.keys()]).toEqual(['10.66.0.2']);
  });

  test('a key rotation at the same address swaps the key in one wg set and cuts the address', async () => {
    const mark = env.log.length;
    const rotated = env.peer(0, 1);
    env.desired.peers = [rotated];
    const r = await run();
    expect(env.since(mark)).toEqual(['wg.set', 'conntrack.cut 10.66.0.2']);
    expect(env.wg.setCalls.at(-1)).toEqual([
      'set', 'wgo0',
      'peer', rotated.publicKey, 'preshared-key', rotated.presharedKeyFile, 'allowed-ips', '10.66.0.2/32',
      'peer', env.peer(0).publicKey, 'remove',
    ]);
    expect(r).toMatchObject({ setAdded: 0, setRemoved: 0, wgUpserted: 1, wgRemoved: 1, cut: ['10.66.0.2'] });
    expect(wgPeers()).toEqual([expect.objectContaining({ publicKey: rotated.publicKey, allowedIps: ['10.66.0.2/32'] })]);
  });

  test('a changed PSK is re-applied without cutting anything', async () => {
    const p = env.peer(0, 7);
    env.desired.peers = [{ ...env.peer(0), presharedKey: p.presharedKey, presharedKeyFile: p.presharedKeyFile }];
    const r = await run();
    expect(r).toMatchObject({ wgUpserted: 1, wgRemoved: 0, cut: [] });
    expect(wgPeers()[0]!.presharedKey).toBe(p.presharedKey);
  });

  test.each([
    [201, 'wg.syncconf', 1, 0],
    [200, 'wg.set', 0, 1],
  ])('%i changed peers use %s', async (n, call, syncconfs, sets) => {
    const setsBefore = env.wg.setCalls.length;
    env.desired.peers = Array.from({ length: n + 1 }, (_, i) => env.peer(i));
    const mark = env.log.length;
    const r = await run();
    expect(r).toMatchObject({ ok: true, wgUpserted: n, setAdded: n });
    expect(env.since(mark).filter((l) => l.startsWith('wg.'))).toEqual([call]);
    expect(env.wg.syncconfCalls).toHaveLength(syncconfs);
    expect(env.wg.setCalls.length - setsBefore).toBe(sets);
    expect(wgPeers()).toHaveLength(n + 1);
    expect((await run()).noop).toBe(true);
  });

  test('syncconf also removes: a big swap leaves exactly the desired peers and cuts the departed', async () => {
    env.desired.peers = Array.from({ length: 150 }, (_, i) => env.peer(i));
    await run();
    env.desired.peers = Array.from({ length: 150 }, (_, i) => env.peer(i + 101));
    const r = await run();
    expect(env.wg.syncconfCalls).toHaveLength(1);
    expect(r).toMatchObject({ ok: true, wgUpserted: 101, wgRemoved: 101, setAdded: 101, setRemoved: 101 });
    expect(r.cut).toHaveLength(101);
    expect(r.cut).toContain('10.66.0.2');
    expect(new Set(wgPeers().map((p) => p.publicKey))).toEqual(new Set(env.desired.peers.map((p) => p.publicKey)));
  });
});

describe('reconcileOnce: drift and failures', () => {
  beforeEach(async () => {
    env.desired.peers = [env.peer(0)];
    await run();
  });

  test('repairs a hook someone removed, and only that family', async () => {
    await env.fw.restore('ipv4', '*filter\n-D FORWARD -j WGO-FWD-wgo0\nCOMMIT\n');
    const r = await run();
    expect(r).toMatchObject({ ok: true, noop: false, firewallRepaired: ['ipv4'] });
    expect(env.fw.rules('ipv4', 'FORWARD')).toEqual(['-A FORWARD -j WGO-FWD-wgo0']);
  });

  test('brings a downed interface up and re-adds a peer removed behind its back', async () => {
    await env.wg.setUp('wgo0', false);
    await env.wg.set(['set', 'wgo0', 'peer', env.peer(0).publicKey, 'remove']);
    const r = await run();
    expect(r).toMatchObject({ ok: true, noop: false, wgUpserted: 1 });
    expect((await env.wg.link('wgo0'))?.up).toBe(true);
    expect(wgPeers()).toHaveLength(1);
  });

  test('a firewall failure takes the interface down and leaves WireGuard alone (fail closed)', async () => {
    env.desired.ollamaPort = 8080;
    env.desired.peers = [env.peer(0), env.peer(1)];
    env.fw.failOn.add('restore');
    const mark = env.log.length;
    const r = await run();
    expect(r.ok).toBe(false);
    expect(r.errors).toEqual(['firewall: fake ipv4 restore failure']);
    expect(env.since(mark)).toEqual(['ipset add 10.66.0.3', 'fw.restore ipv4', 'wg.setUp false']);
    expect((await env.wg.link('wgo0'))?.up).toBe(false);
    expect(wgPeers().map((p) => p.publicKey)).toEqual([env.peer(0).publicKey]);
  });

  test('a set failure is a firewall failure too; the next good run brings everything back', async () => {
    env.desired.peers = [env.peer(0), env.peer(1)];
    env.fw.failOn.add('restoreSet');
    const r = await run();
    expect(r.ok).toBe(false);
    expect(r.errors).toEqual(['firewall: fake ipset restore failure']);
    expect(env.wg.setCalls).toHaveLength(1);
    env.fw.failOn.clear();
    expect(await run()).toMatchObject({ ok: true, setAdded: 1, wgUpserted: 1 });
    expect((await env.wg.link('wgo0'))?.up).toBe(true);
  });

  test('without an interface, a firewall failure does not create one', async () => {
    const fresh = reconcileEnv();
    fresh.fw.failOn.add('restore');
    const r = await reconcileOnce(fresh.deps);
    expect(r.ok).toBe(false);
    expect(fresh.log.filter((l) => l.startsWith('wg.'))).toEqual([]);
    expect(await fresh.wg.link('wgo0')).toBeNull();
  });

  test('a WireGuard failure is reported, and removed peers still leave the set and get cut', async () => {
    env.desired.peers = [];
    env.wg.failOn.add('set');
    const r = await run();
    expect(r.ok).toBe(false);
    expect(r.errors).toEqual(['wireguard: fake wg set failure']);
    expect(r).toMatchObject({ setRemoved: 1, cut: ['10.66.0.2'] });
  });

  test('a conntrack failure for one address is reported and the others are still cut', async () => {
    env.desired.peers = [env.peer(0), env.peer(1), env.peer(2)];
    await run();
    env.desired.peers = [];
    env.conntrack.failFor.add('10.66.0.3');
    const r = await run();
    expect(r.ok).toBe(false);
    expect(r.errors).toEqual(['conntrack 10.66.0.3: fake conntrack failure for 10.66.0.3']);
    expect(r.cut.sort()).toEqual(['10.66.0.2', '10.66.0.4']);
  });

  test('a wrong private key or listen port is put right with setIdentity', async () => {
    env.desired.listenPort = 51821;
    const mark = env.log.length;
    const r = await run();
    expect(env.since(mark)).toEqual(['wg.setIdentity']);
    expect(r.noop).toBe(false);
    expect((await env.wg.dump('wgo0')).iface.listenPort).toBe(51821);
  });
});
