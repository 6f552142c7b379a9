/**
 * The tunnel reaches exactly one thing: GPU:11434. Real namespaces, real
 * wireguard-go on both ends (the client with wg-quick and the config text
 * add-peer printed), real iptables, real listeners.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPU, GW_LAN, OTHER, clientUp, createGateway, createLab, get, tunnelDrops, type Gateway, type Lab } from './harness.js';

interface Added { name: string; address: string; publicKey: string; config: string; expiresAt: string | null }

describe('tunnel', () => {
  let lab: Lab;
  let gw: Gateway;
  let alice: Added;
  let bob: Added;
  let serverKey: string;

  beforeAll(async () => {
    lab = await createLab('lt');
    gw = await createGateway(lab, 'wgolt');
    await gw.start();
    alice = await gw.cliJson<Added>('add-peer', 'alice');
    bob = await gw.cliJson<Added>('add-peer', 'bob');
    await clientUp(lab, lab.ns('c1'), 'wgclt1', alice.config);
    await clientUp(lab, lab.ns('c2'), 'wgclt2', bob.config);
    serverKey = /PublicKey = (\S+)/.exec(alice.config.split('[Peer]')[1]!)![1]!;
  });
  afterAll(async () => {
    await lab?.cleanup();
  });

  it('add-peer prints the documented JSON contract', () => {
    expect(alice.name).toBe('alice');
    expect(alice.address).toBe('10.66.0.2');
    expect(bob.address).toBe('10.66.0.3');
    expect(alice.publicKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(alice.expiresAt).toBeNull();
    expect(alice.config).toContain(`AllowedIPs = ${GPU}/32`);
    expect(alice.config).toContain('Endpoint = 192.0.2.1:51820');
  });

  it('reaches Ollama on the GPU host, which sees the real tunnel address (no NAT)', async () => {
    const r = await get(lab, lab.ns('c1'), `http://${GPU}:11434/`, 5);
    expect(r.ok).toBe(true);
    expect(JSON.parse(r.body)).toMatchObject({ host: 'gpu', port: 11434, from: '::ffff:10.66.0.2' });
    const b = await get(lab, lab.ns('c2'), `http://${GPU}:11434/api/version`, 5);
    expect(JSON.parse(b.body)).toEqual({ version: '0.0.0-lab' });
  });

  it('the client config is a split tunnel: only the GPU host is routed through it', async () => {
    const r = await lab.exec(lab.ns('c1'), 'ip', ['-4', 'route', 'show', 'dev', 'wgclt1']);
    expect(r.stdout.trim()).toBe(`${GPU} scope link`);
  });

  describe('a client that widens its own AllowedIPs and routes', () => {
    beforeAll(async () => {
      const c1 = lab.ns('c1');
      await lab.exec(c1, 'wg', ['set', 'wgclt1', 'peer', serverKey, 'allowed-ips', '0.0.0.0/0,::/0']);
      for (const dst of [`${OTHER}/32`, `${GW_LAN}/32`, '10.66.0.0/24']) {
        await lab.exec(c1, 'ip', ['route', 'replace', dst, 'dev', 'wgclt1']);
      }
      await lab.exec(c1, 'ip', ['-6', 'addr', 'add', 'fd66::2/128', 'dev', 'wgclt1']);
      await lab.exec(c1, 'ip', ['-6', 'route', 'add', '2001:db8:1::/64', 'dev', 'wgclt1']);
    });

    it('still reaches GPU:11434', async () => {
      expect((await get(lab, lab.ns('c1'), `http://${GPU}:11434/`, 5)).ok).toBe(true);
    });

    it.each([
      ['GPU host SSH', `http://${GPU}:22/`],
      ['another LAN host, Ollama port', `http://${OTHER}:11434/`],
      ['another LAN host', `http://${OTHER}:8080/`],
      ["the gateway's tunnel address", 'http://10.66.0.1:8080/'],
      ["the gateway's tunnel address, SSH", 'http://10.66.0.1:22/'],
      ["the gateway's LAN address", `http://${GW_LAN}:8080/`],
      ["another peer's address", 'http://10.66.0.3:8080/'],
      ['IPv6 on the GPU host', 'http://[2001:db8:1::10]:11434/'],
    ])('cannot reach %s', async (_what, url) => {
      const r = await get(lab, lab.ns('c1'), url, 2);
      expect(r.ok).toBe(false);
      expect(r.body).toBe('');
    });

    it('the listener it tried to reach next to the gateway is itself alive (the block is the firewall)', async () => {
      expect((await get(lab, lab.ns('gw'), `http://${OTHER}:8080/`)).ok).toBe(true);
      expect((await get(lab, lab.ns('gw'), `http://${GPU}:22/`)).ok).toBe(true);
    });

    it('the filter on the tunnel interface (the first of the two barriers) counted the drops', async () => {
      // tc's ingress filter drops before netfilter sees a packet, so iptables' DROP counters stay at 0
      // here (firewall-flush.test.ts deletes the tc filter and checks that iptables holds alone).
      expect(await tunnelDrops(lab, 'wgolt')).toBeGreaterThan(0);
    });
  });

  it('the gateway never touched the root namespace', async () => {
    const { execa } = await import('execa');
    const links = await execa('ip', ['-o', 'link', 'show']);
    expect(links.stdout).not.toContain('wgolt');
    const rules = await execa('iptables-save', ['-t', 'filter']);
    expect(rules.stdout).not.toContain('WGO-FWD-wgolt');
  });
});
