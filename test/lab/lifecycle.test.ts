/**
 * Disable, enable, revoke, rotate and expiry, through the real CLI and the
 * running daemon: a cut-off peer gets nothing and its open TCP flow dies
 * within 5 s.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GPU, clientDown, clientUp, createGateway, createLab, expectFlowDies, get, openStream, waitFor, type Gateway, type Lab,
} from './harness.js';

interface Added { name: string; address: string; publicKey: string; config: string; expiresAt: string | null; live: boolean }
interface Row { name: string; status: string }

describe('peer lifecycle', () => {
  let lab: Lab;
  let gw: Gateway;
  const url = `http://${GPU}:11434/`;

  beforeAll(async () => {
    lab = await createLab('lc');
    gw = await createGateway(lab, 'wgolc');
    await gw.start();
  });
  afterAll(async () => {
    await lab?.cleanup();
  });

  const statusOf = async (name: string): Promise<string> => (await gw.cliJson<Row>('show-peer', name)).status;

  it('disable cuts the peer and its open flow; enable lets it back in', async () => {
    const p = await gw.cliJson<Added>('add-peer', 'dana');
    expect(p.live).toBe(true);
    await clientUp(lab, lab.ns('c1'), 'wgclc1', p.config);
    expect((await get(lab, lab.ns('c1'), url, 5)).ok).toBe(true);
    const stream = await openStream(lab, lab.ns('c1'), 'disable');
    const t0 = Date.now();
    const r = await gw.cli('disable-peer', 'dana');
    expect(r.code).toBe(0);
    expect(await expectFlowDies(lab, stream, p.address, t0)).toBeLessThan(5000);
    expect((await get(lab, lab.ns('c1'), url)).ok).toBe(false);
    expect(await statusOf('dana')).toBe('disabled');

    expect((await gw.cli('enable-peer', 'dana')).code).toBe(0);
    await waitFor(async () => (await get(lab, lab.ns('c1'), url, 2)).ok, 15_000, 'dana to get back in');
    expect(await statusOf('dana')).toBe('active');
  });

  it('rotate: the old keys are dead at once, the new config works', async () => {
    const before = await gw.cliJson<Row & { publicKey: string; address: string }>('show-peer', 'dana');
    const stream = await openStream(lab, lab.ns('c1'), 'rotate');
    const t0 = Date.now();
    const rotated = await gw.cliJson<Added>('rotate-peer', 'dana');
    expect(rotated.publicKey).not.toBe(before.publicKey);
    expect(rotated.address).toBe(before.address);
    expect(await expectFlowDies(lab, stream, before.address, t0)).toBeLessThan(5000);
    expect((await get(lab, lab.ns('c1'), url)).ok).toBe(false);
    await clientDown(lab, lab.ns('c1'), 'wgclc1');
    await clientUp(lab, lab.ns('c1'), 'wgclc1', rotated.config);
    await waitFor(async () => (await get(lab, lab.ns('c1'), url, 2)).ok, 15_000, 'the rotated config to work');
  });

  it('revoke: out of WireGuard and the firewall, flow dead, and it stays revoked', async () => {
    const stream = await openStream(lab, lab.ns('c1'), 'revoke');
    const t0 = Date.now();
    const r = await gw.cliJson<{ status: string; changed: boolean }>('revoke-peer', 'dana');
    expect(r).toMatchObject({ status: 'revoked', changed: true });
    expect(await expectFlowDies(lab, stream, '10.66.0.2', t0)).toBeLessThan(5000);
    expect((await get(lab, lab.ns('c1'), url)).ok).toBe(false);
    const dump = await lab.exec(lab.ns('gw'), 'wg', ['show', 'wgolc', 'allowed-ips']);
    expect(dump.stdout).not.toContain('10.66.0.2/32');
    const set = await lab.exec(lab.ns('gw'), 'ipset', ['save', 'wgo-peers-wgolc']);
    expect(set.stdout).not.toContain('10.66.0.2');
    const again = await gw.cli('enable-peer', 'dana');
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/revoked/);
    await clientDown(lab, lab.ns('c1'), 'wgclc1');
  });

  it("a revoked peer's address is not handed out again", async () => {
    const p = await gw.cliJson<Added>('add-peer', 'erin');
    expect(p.address).not.toBe('10.66.0.2');
  });

  it('expiry is enforced by the daemon on time, flow included', async () => {
    const p = await gw.cliJson<Added>('add-peer', 'fay', '--expires', '6s');
    expect(Date.parse(p.expiresAt!)).toBeGreaterThan(Date.now());
    await clientUp(lab, lab.ns('c2'), 'wgclc2', p.config);
    await waitFor(async () => (await get(lab, lab.ns('c2'), url, 2)).ok, 10_000, 'fay to get in');
    const stream = await openStream(lab, lab.ns('c2'), 'expire');
    const expiresAt = Date.parse(p.expiresAt!);
    expect(await expectFlowDies(lab, stream, p.address, expiresAt, 8000)).toBeLessThan(5000);
    expect((await get(lab, lab.ns('c2'), url)).ok).toBe(false);
    expect(await statusOf('fay')).toBe('expired');
    const audit = (await gw.cli('logs', 'audit', '--json')).stdout.trim().split('\n').map((l) => JSON.parse(l) as { action: string; target: string; actor: string });
    expect(audit).toContainEqual(expect.objectContaining({ action: 'peer.expire', target: 'fay', actor: 'system' }));
    // Enabling needs a new expiry.
    expect((await gw.cli('enable-peer', 'fay')).code).toBe(2);
    expect((await gw.cli('enable-peer', 'fay', '--expires', '1h')).code).toBe(0);
    await waitFor(async () => (await get(lab, lab.ns('c2'), url, 2)).ok, 15_000, 'fay to get back in');
  });

  it('every change is in the admin audit log with actor, action, target, time and source', async () => {
    const rows = (await gw.cli('logs', 'audit', '--json')).stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const actions = rows.map((r) => `${r.action} ${r.target}`);
    expect(actions).toEqual(expect.arrayContaining([
      'peer.add dana', 'peer.disable dana', 'peer.enable dana', 'peer.rotate dana', 'peer.revoke dana', 'peer.add erin', 'peer.add fay', 'peer.enable fay',
    ]));
    for (const r of rows) {
      expect(r.actor).toEqual(expect.any(String));
      expect(r.source).toEqual(expect.any(String));
      expect(Number.isNaN(Date.parse(String(r.at)))).toBe(false);
    }
  });
});
