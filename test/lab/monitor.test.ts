/**
 * The connection monitor against real WireGuard: handshakes, endpoint
 * changes, traffic and lost connections land in SQLite and come out of
 * `wg-ollama logs connections`, including --follow.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPU, clientUp, createGateway, createLab, get, waitFor, type Gateway, type Lab } from './harness.js';

interface Event { kind: string; peer: string; endpoint: string | null; oldEndpoint: string | null; rxBytes: number | null; txBytes: number | null; at: string }

describe('connection monitor', () => {
  let lab: Lab;
  let gw: Gateway;

  const events = async (...extra: string[]): Promise<Event[]> => {
    const r = await gw.cli('logs', 'connections', '--json', ...extra);
    expect(r.code).toBe(0);
    return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Event);
  };

  beforeAll(async () => {
    lab = await createLab('mo');
    gw = await createGateway(lab, 'wgomo');
    // Fast monitor settings for the test (the config file is the documented way to set them).
    const cfg = JSON.parse(readFileSync(gw.configFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(gw.configFile, JSON.stringify({ ...cfg, monitorIntervalSec: 0.5, trafficIntervalSec: 1, handshakeTimeoutSec: 10 }));
    await gw.start();
  });
  afterAll(async () => {
    await lab?.cleanup();
  });

  it('records the handshake with the endpoint, then traffic', async () => {
    const p = await gw.cliJson<{ config: string }>('add-peer', 'hal');
    await gw.cliJson('add-peer', 'ivy');
    await clientUp(lab, lab.ns('c1'), 'wgcmo1', p.config);
    for (let i = 0; i < 3; i++) expect((await get(lab, lab.ns('c1'), `http://${GPU}:11434/`, 5)).ok).toBe(true);
    await waitFor(async () => (await events('--peer', 'hal')).some((e) => e.kind === 'traffic'), 10_000, 'a traffic event');
    const hal = await events('--peer', 'hal');
    const hs = hal.find((e) => e.kind === 'handshake');
    expect(hs?.endpoint).toMatch(/^192\.0\.2\.10:\d+$/);
    const traffic = hal.filter((e) => e.kind === 'traffic');
    expect(traffic.reduce((n, e) => n + (e.rxBytes ?? 0), 0)).toBeGreaterThan(0);
    expect(traffic.reduce((n, e) => n + (e.txBytes ?? 0), 0)).toBeGreaterThan(0);
    // --peer filters: ivy never connected.
    expect(await events('--peer', 'ivy')).toEqual([]);
    const shown = await gw.cliJson<{ connected: boolean; endpoint: string; latestHandshake: string }>('show-peer', 'hal');
    expect(shown).toMatchObject({ connected: true, endpoint: hs!.endpoint });
  });

  it('records an endpoint change (old -> new) and streams it with --follow', async () => {
    const follow = execa('ip', ['netns', 'exec', lab.ns('gw'), 'node', join(process.cwd(), 'bin/wg-ollama.js'), '--config', gw.configFile,
      'logs', 'connections', '--json', '--follow', '--since', '1s'], { reject: false, timeout: 30_000 });
    let seen = '';
    follow.stdout?.on('data', (d: Buffer) => (seen += d.toString()));
    const before = (await events('--peer', 'hal')).find((e) => e.kind === 'handshake')!.endpoint;
    await lab.exec(lab.ns('c1'), 'wg', ['set', 'wgcmo1', 'listen-port', '40404']);
    expect((await get(lab, lab.ns('c1'), `http://${GPU}:11434/`, 5)).ok).toBe(true);
    await waitFor(() => seen.includes('endpoint_changed'), 10_000, '--follow to print the endpoint change');
    follow.kill('SIGTERM');
    const ev = seen.trim().split('\n').map((l) => JSON.parse(l) as Event).find((e) => e.kind === 'endpoint_changed')!;
    expect(ev).toMatchObject({ peer: 'hal', oldEndpoint: before, endpoint: '192.0.2.10:40404' });
  });

  it('records a lost connection when the peer is cut off', async () => {
    expect((await gw.cli('disable-peer', 'hal')).code).toBe(0);
    await waitFor(async () => (await events('--peer', 'hal')).some((e) => e.kind === 'handshake_lost'), 5000, 'handshake_lost');
    const text = await gw.cli('logs', 'connections', '--peer', 'hal');
    expect(text.stdout).toMatch(/hal {2}handshake lost/);
    expect(text.stdout).toMatch(/endpoint 192\.0\.2\.10:\d+ -> 192\.0\.2\.10:40404/);
  });

  it('--since and --peer are validated', async () => {
    expect((await gw.cli('logs', 'connections', '--since', 'yesterday')).code).toBe(2);
    expect((await gw.cli('logs', 'connections', '--peer', 'nobody')).code).toBe(2);
    expect((await gw.cli('logs', 'packets')).code).toBe(2);
  });
});
