import { readFileSync, writeFileSync } from 'node:fs';
/**
 * Fail closed: with the daemon killed -9 or stopped, nothing more is allowed
 * than before; a restart adds no duplicate rules; drift is repaired; only
 * `wg-ollama down` removes the firewall.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPU, OTHER, clientUp, createGateway, createLab, get, waitFor, type Gateway, type Lab } from './harness.js';

interface Added { address: string; config: string; live: boolean }

describe('fail closed', () => {
  let lab: Lab;
  let gw: Gateway;
  let serverKey: string;
  const ok = `http://${GPU}:11434/`;
  const forbidden = [`http://${GPU}:22/`, `http://${OTHER}:8080/`, 'http://10.66.0.1:8080/'];

  const save = async (): Promise<string> => (await lab.exec(lab.ns('gw'), 'iptables-save', ['-t', 'filter'])).stdout;
  const ourLines = (text: string): string[] => text.split('\n').filter((l) => l.includes('WGO-'));
  const reachable = async (url: string): Promise<boolean> => (await get(lab, lab.ns('c1'), url, 2)).ok;
  const expectOnlyOllama = async (): Promise<void> => {
    expect(await reachable(ok)).toBe(true);
    const results = await Promise.all(forbidden.map(reachable));
    expect(results).toEqual(forbidden.map(() => false));
  };

  beforeAll(async () => {
    lab = await createLab('fc');
    gw = await createGateway(lab, 'wgofc');
    await gw.start();
    const p = await gw.cliJson<Added>('add-peer', 'gus');
    await clientUp(lab, lab.ns('c1'), 'wgcfc1', p.config);
    serverKey = /\[Peer\]\nPublicKey = (\S+)/.exec(p.config)![1]!;
    // A hostile client: everything into the tunnel.
    await lab.exec(lab.ns('c1'), 'wg', ['set', 'wgcfc1', 'peer', serverKey, 'allowed-ips', '0.0.0.0/0']);
    for (const dst of [`${OTHER}/32`, '10.66.0.0/24']) await lab.exec(lab.ns('c1'), 'ip', ['route', 'replace', dst, 'dev', 'wgcfc1']);
  });
  afterAll(async () => {
    await lab?.cleanup();
  });

  it('before: only GPU:11434', async () => {
    await expectOnlyOllama();
  });

  it('kill -9 of the daemon keeps the tunnel and the firewall exactly as they were', async () => {
    const before = ourLines(await save());
    gw.daemon()!.kill('SIGKILL');
    await gw.daemon();
    expect(ourLines(await save())).toEqual(before);
    await expectOnlyOllama();
  });

  it('with the daemon dead, taking access away still works at once; giving it waits for the daemon', async () => {
    const r = await gw.cli('disable-peer', 'gus', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'disabled', live: true });
    expect(r.stderr).toMatch(/not running; access was removed directly/);
    expect(await reachable(ok)).toBe(false);
    const e = await gw.cli('enable-peer', 'gus', '--json');
    expect(JSON.parse(e.stdout)).toMatchObject({ status: 'active', live: false });
    expect(await reachable(ok)).toBe(false); // saved, not applied: nothing more allowed than before
    await gw.start();
    await waitFor(async () => reachable(ok), 20_000, 'gus to get back in once serve runs');
  });

  it('expiry is enforced by the kernel even while the daemon is dead', async () => {
    const p = await gw.cliJson<Added & { expiresAt: string }>('add-peer', 'short', '--expires', '8s');
    await clientUp(lab, lab.ns('c2'), 'wgcfc2', p.config);
    await waitFor(async () => (await get(lab, lab.ns('c2'), ok, 2)).ok, 15_000, 'short to get in');
    gw.daemon()!.kill('SIGKILL');
    await gw.daemon();
    const left = Date.parse(p.expiresAt) - Date.now();
    expect(left).toBeGreaterThan(0);
    await new Promise((res) => setTimeout(res, left + 1500));
    expect((await get(lab, lab.ns('c2'), ok, 2)).ok).toBe(false);
    expect(await reachable(ok)).toBe(true); // gus is unaffected
    await gw.start();
  });

  it('restarts add no duplicate rules', async () => {
    const before = ourLines(await save());
    for (let i = 0; i < 2; i++) {
      gw.daemon()!.kill('SIGKILL');
      await gw.daemon();
      await gw.start();
    }
    const after = ourLines(await save());
    expect(after).toEqual(before);
    expect(after.filter((l) => l === '-A FORWARD -j WGO-FWD-wgofc')).toHaveLength(1);
    expect(after.filter((l) => l === '-A INPUT -i wgofc -j WGO-IN-wgofc')).toHaveLength(1);
    const v6 = (await lab.exec(lab.ns('gw'), 'ip6tables-save', ['-t', 'filter'])).stdout;
    expect(v6.split('\n').filter((l) => l === '-A FORWARD -j WGO-FWD-wgofc')).toHaveLength(1);
  });

  it('the forbidden listeners answer only when both barriers are bypassed (so the checks above can fail)', async () => {
    gw.daemon()!.kill('SIGKILL');
    await gw.daemon();
    await lab.exec(lab.ns('gw'), 'iptables', ['-I', 'WGO-FWD-wgofc', '1', '-j', 'ACCEPT']);
    await lab.exec(lab.ns('gw'), 'iptables', ['-I', 'WGO-IN-wgofc', '1', '-j', 'ACCEPT']);
    // iptables open: the tunnel interface's own filter (tc, the second barrier) still drops them.
    expect(await Promise.all(forbidden.map(reachable))).toEqual(forbidden.map(() => false));
    expect((await lab.exec(lab.ns('gw'), 'tc', ['qdisc', 'del', 'dev', 'wgofc', 'clsact'])).code).toBe(0);
    expect(await Promise.all(forbidden.map(reachable))).toEqual(forbidden.map(() => true));
    await gw.start(); // repairs at start
    await expectOnlyOllama();
  });

  it.each([
    ['a rule deleted from our chain', ['-D', 'WGO-FWD-wgofc', '5']],
    ['the FORWARD hook deleted', ['-D', 'FORWARD', '-j', 'WGO-FWD-wgofc']],
    ['an ACCEPT inserted into our chain', ['-I', 'WGO-FWD-wgofc', '1', '-j', 'ACCEPT']],
    ['a rule put above our hook', ['-I', 'FORWARD', '1', '-j', 'ACCEPT']],
  ])('drift is repaired within 10 s: %s', async (_what, args) => {
    const want = ourLines(await save());
    expect((await lab.exec(lab.ns('gw'), 'iptables', args)).code).toBe(0);
    const took = await waitFor(async () => {
      const now = (await save()).split('\n');
      const first = now.find((l) => l.startsWith('-A FORWARD'));
      return first === '-A FORWARD -j WGO-FWD-wgofc' && JSON.stringify(ourLines(now.join('\n'))) === JSON.stringify(want);
    }, 10_000, 'the reconciler to repair the firewall', 200);
    expect(took).toBeLessThan(10_000);
    await expectOnlyOllama();
  });

  it('a removed peer set entry is put back', async () => {
    await lab.exec(lab.ns('gw'), 'ipset', ['del', 'wgo-peers-wgofc', '10.66.0.2']);
    await waitFor(async () => (await lab.exec(lab.ns('gw'), 'ipset', ['test', 'wgo-peers-wgofc', '10.66.0.2'])).code === 0, 10_000, 'set repair');
  });

  it('doctor passes on a healthy gateway and exits 1 naming the firewall when a hook is gone', async () => {
    const good = await gw.cli('doctor', '--json');
    expect(good.code, good.stdout).toBe(0);
    const checks = JSON.parse(good.stdout) as { check: string; status: string }[];
    expect(checks.filter((c) => c.status === 'fail')).toEqual([]);
    expect(checks.map((c) => c.check)).toEqual(expect.arrayContaining(['program wg', 'program ipset', 'server key', 'firewall ipv4', 'interface', 'daemon']));
    gw.daemon()!.kill('SIGKILL');
    await gw.daemon();
    await lab.exec(lab.ns('gw'), 'iptables', ['-D', 'FORWARD', '-j', 'WGO-FWD-wgofc']);
    const bad = await gw.cli('doctor', '--json');
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toEqual(expect.arrayContaining([
      expect.objectContaining({ check: 'firewall ipv4', status: 'fail' }),
      expect.objectContaining({ check: 'daemon', status: 'warn' }),
    ]));
    await gw.start();
    expect((await gw.cli('doctor')).code).toBe(0);
  });

  it('two gateways in one namespace do not fight over the hooks', async () => {
    const other = await createGateway(lab, 'wgofd', ['--subnet', '10.68.0.0/24', '--listen-port', '51822']);
    // Its own metrics and admin UI ports: two gateways in one namespace cannot share 127.0.0.1:9477 and :8443.
    const conf = JSON.parse(readFileSync(other.configFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(other.configFile, JSON.stringify({ ...conf, metricsListen: '127.0.0.1:9479', admin: { listen: ['127.0.0.1:8444'] } }));
    await other.start();
    const settled = ourLines(await save());
    await new Promise((res) => setTimeout(res, 7000)); // two periodic reconciles each
    // Judged by the kernel's table, not by the gateways' own reports: each hook
    // stands exactly once and first, and the reconciles left the table as it was.
    const text = await save();
    expect(ourLines(text)).toEqual(settled);
    const lines = text.split('\n').filter((l) => l.startsWith('-A '));
    for (const iface of ['wgofc', 'wgofd']) {
      expect(lines.filter((l) => l === `-A FORWARD -j WGO-FWD-${iface}`)).toHaveLength(1);
      expect(lines.filter((l) => l === `-A INPUT -i ${iface} -j WGO-IN-${iface}`)).toHaveLength(1);
    }
    expect(lines.filter((l) => l.startsWith('-A FORWARD ')).slice(0, 2).sort()).toEqual(['-A FORWARD -j WGO-FWD-wgofc', '-A FORWARD -j WGO-FWD-wgofd']);
    for (const g of [gw, other]) {
      const s = await g.cliJson<{ daemon: { lastReconcile: { noop: boolean; firewallRepaired: string[] } }; firewall: { ipv4InSync: boolean; ipv6InSync: boolean } }>('status');
      expect(s.firewall).toMatchObject({ ipv4InSync: true, ipv6InSync: true });
      expect(s.daemon.lastReconcile).toMatchObject({ noop: true, firewallRepaired: [] });
    }
    other.daemon()!.kill('SIGTERM');
    await other.daemon();
    expect((await other.cli('down')).code).toBe(0);
  });

  it('SIGTERM stops the daemon cleanly and leaves the firewall closed', async () => {
    const before = ourLines(await save());
    gw.daemon()!.kill('SIGTERM');
    const done = await gw.daemon()!;
    expect(done.exitCode).toBe(0);
    expect(ourLines(await save())).toEqual(before);
    await expectOnlyOllama();
  });

  it('only `down` removes chains, set and interface', async () => {
    const r = await gw.cliJson<{ removed: boolean }>('down');
    expect(r.removed).toBe(true);
    expect(ourLines(await save())).toEqual([]);
    expect((await lab.exec(lab.ns('gw'), 'ipset', ['list', '-n'])).stdout).not.toContain('wgo-peers-wgofc');
    expect((await lab.exec(lab.ns('gw'), 'ip', ['link', 'show', 'wgofc'])).code).not.toBe(0);
    expect(await reachable(ok)).toBe(false);
  });

  it('`down` refuses while the daemon runs', async () => {
    await gw.start();
    const r = await gw.cli('down');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/stop it first/);
  });
});
