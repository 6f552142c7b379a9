/**
 * Bulk changes take the `wg syncconf` path (more than 200 changed peers):
 * at start-up on a populated database, and for a burst committed while the
 * daemon runs. The kernel state must equal the database both times.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { openGateway, type GatewayContext } from '../../src/gateway/context.js';
import { createGateway, createLab, waitFor, type Gateway, type Lab } from './harness.js';

describe('bulk changes', () => {
  let lab: Lab;
  let gw: Gateway;
  let ctx: GatewayContext;
  const who = { actor: 'test', source: 'bulk.test' };

  const kernelEqualsDatabase = async (): Promise<boolean> => {
    const want = ctx.peers.list().filter((p) => p.status === 'active').map((p) => `${p.publicKey} ${p.address}/32`).sort();
    const wg = (await lab.exec(lab.ns('gw'), 'wg', ['show', 'wgobk', 'allowed-ips'])).stdout.trim().split('\n').filter(Boolean).map((l) => l.replace('\t', ' ')).sort();
    const set = (await lab.exec(lab.ns('gw'), 'ipset', ['save', 'wgo-peers-wgobk'])).stdout.split('\n').filter((l) => l.startsWith('add ')).length;
    return JSON.stringify(wg) === JSON.stringify(want) && set === want.length;
  };

  beforeAll(async () => {
    lab = await createLab('bk');
    gw = await createGateway(lab, 'wgobk', ['--subnet', '10.69.0.0/22']);
    ctx = openGateway(loadConfig(gw.configFile));
  });
  afterAll(async () => {
    ctx?.close();
    await lab?.cleanup();
  });

  it('a daemon starting on 300 peers applies them all in one syncconf', async () => {
    for (let i = 0; i < 300; i++) ctx.peers.add({ name: `a${i}` }, who);
    await gw.start();
    await waitFor(kernelEqualsDatabase, 15_000, 'WireGuard and the set to hold the 300 peers');
    const s = await gw.cliJson<{ daemon: { lastReconcile: { ok: boolean } } }>('status');
    expect(s.daemon.lastReconcile.ok).toBe(true);
  });

  it('a burst of 300 more, and then revoking 250, while it runs', async () => {
    for (let i = 0; i < 300; i++) ctx.peers.add({ name: `b${i}` }, who);
    await waitFor(kernelEqualsDatabase, 15_000, 'the burst of additions to apply');
    expect(ctx.peers.list()).toHaveLength(600);
    for (let i = 0; i < 250; i++) ctx.peers.revoke(`a${i}`, who);
    await waitFor(kernelEqualsDatabase, 15_000, 'the burst of revocations to apply');
    const wgCount = (await lab.exec(lab.ns('gw'), 'wg', ['show', 'wgobk', 'peers'])).stdout.trim().split('\n').length;
    expect(wgCount).toBe(350);
  });
});
