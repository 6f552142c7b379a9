/**
 * What `serve` and `guard` write when they run for real is what journald and
 * Promtail/Vector take as it is (README "Logs"): the daemon in the gateway
 * namespace with the guard sync API, a guard on the GPU host syncing from it,
 * peers added and revoked; then both stopped with SIGTERM. Every line either
 * wrote is one JSON object with time, level as a label, pid, a known event
 * and msg; nothing went to stderr.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLogLines, type LogLine } from '../support/log-line.js';
import { GPU, GW_LAN, ROOT, createGateway, createLab, waitFor, type Gateway, type Lab } from './harness.js';

const BIN = join(ROOT, 'bin/wg-ollama.js');

describe('logs of serve and guard', () => {
  let lab: Lab;
  let gw: Gateway;
  /** The stdout file of the node process in a namespace whose output holds `marker` (harness: NS-INDEX-node.log). */
  const outputOf = (ns: string, marker: string): string => {
    const files = readdirSync(lab.dir).filter((f) => f.startsWith(`${ns}-`) && f.endsWith('-node.log'))
      .map((f) => join(lab.dir, f)).filter((f) => readFileSync(f, 'utf8').includes(marker));
    expect(files, `one output in ${ns} with ${marker}`).toHaveLength(1);
    return files[0]!;
  };
  let serveOut: string;
  let guardOut: string;
  let guard: ReturnType<Lab['spawn']>;

  beforeAll(async () => {
    lab = await createLab('lg', { gpuListener: false });
    gw = await createGateway(lab, 'wgolg', ['--sync-listen', `${GW_LAN}:7443`]);
    await gw.start();
    const has = (ns: string, marker: string) => (): boolean => readdirSync(lab.dir).some((f) => f.startsWith(`${ns}-`)
      && f.endsWith('-node.log') && readFileSync(join(lab.dir, f), 'utf8').includes(marker));
    await waitFor(has(lab.ns('gw'), '"serve.start"'), 15_000, 'serve to log its start');
    serveOut = outputOf(lab.ns('gw'), '"serve.start"');
    const add = await gw.cli('add-guard', 'gpu1', '--address', GPU, '--out', join(lab.dir, 'guard'));
    expect(add.code, add.stderr).toBe(0);
    guard = lab.spawn(lab.ns('gpu'), 'node', [BIN, 'guard', '--config', join(lab.dir, 'guard/guard.json')]);
    await waitFor(has(lab.ns('gpu'), '"peers.updated"'), 15_000, 'the guard to take the peer set');
    guardOut = outputOf(lab.ns('gpu'), '"guard.start"');
  });
  afterAll(async () => {
    await lab?.cleanup();
  });

  it('serve and guard: every line JSON with the documented fields, each event where it belongs', async () => {
    for (const name of ['alice', 'bob']) expect((await gw.cli('add-peer', name)).code).toBe(0);
    expect((await gw.cli('revoke-peer', 'bob')).code).toBe(0);
    await waitFor(() => readFileSync(guardOut, 'utf8').split('"peers.updated"').length > 2, 10_000, 'the guard to see the change');

    guard.kill('SIGTERM');
    gw.daemon()!.kill('SIGTERM');
    await Promise.all([guard, gw.daemon()!]);

    const serve = parseLogLines(readFileSync(serveOut, 'utf8'));
    const g = parseLogLines(readFileSync(guardOut, 'utf8'));
    expect(readFileSync(`${serveOut}.err`, 'utf8')).toBe('');
    expect(readFileSync(`${guardOut}.err`, 'utf8')).toBe('');
    const events = (lines: LogLine[]): string[] => lines.map((l) => l.event);

    expect(events(serve)).toEqual(expect.arrayContaining(['sync-api.start', 'admin-ui.start', 'serve.start', 'reconcile.done', 'serve.stop']));
    expect(events(serve).at(-1)).toBe('serve.stop');
    const cut = serve.filter((l) => l.event === 'reconcile.done' && (l.wgRemoved as number) >= 1);
    expect(cut.length).toBeGreaterThan(0);
    expect(cut[0]).toMatchObject({ level: 'info', ok: true });
    expect(new Set(serve.map((l) => l.pid)).size).toBe(1);

    expect(events(g)).toEqual(expect.arrayContaining(['guard.start', 'sync.connected', 'peers.updated', 'guard.stop']));
    expect(events(g).at(-1)).toBe('guard.stop');
    for (const l of g) expect(l.guard).toBe('gpu1');
    expect(g.filter((l) => l.event === 'peers.updated').at(-1)).toMatchObject({ level: 'info', peers: 1 });
    // No secret of the state directory is in either log.
    const key = readFileSync(join(lab.dir, 'guard/sync.key'), 'utf8').split('\n')[1]!;
    for (const out of [serveOut, guardOut]) expect(readFileSync(out, 'utf8')).not.toContain(key);
  });
});
