/**
 * Full disk on a GPU host (issue 12, item 3): the remote guard with its spool
 * on a small tmpfs in a private mount namespace (full-disk-harness.ts), filled
 * on purpose, auditFailure "serve". The gateway is stopped first so that
 * records wait in the spool. On the full spool the guard keeps serving
 * through the real tunnel, says the audit is failing (/healthz, metrics) and
 * counts what it served unrecorded; when the filler goes it records again by
 * itself, and once the gateway is back every record — those spooled before
 * the disk filled and those kept in memory while it was full — reaches the
 * gateway. The guard is never restarted.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPU, clientUp, createGateway, createLab, waitFor, type Gateway, type Lab } from './harness.js';
import { BIN, SYNC_LISTEN, addPeer, httpGet, metric, processes, requestLog, startSim, tlsCurl, type Bg, type Creds, type Peer, type Processes } from './guard-harness.js';
import { createSmallDisk, diskCli, type SmallDisk } from './full-disk-harness.js';

interface Health { ok: boolean; spooled: number; audit: { ok: boolean; mode: string; buffered: number } }

describe('full disk on the GPU host: the guard follows auditFailure "serve" and loses nothing', () => {
  let lab: Lab;
  let procs: Processes;
  let disk: SmallDisk;
  let gw: Gateway;
  let guard: Bg & { exit: () => string };
  let alice: Peer;
  let gpu: string;
  let served = 0;
  const as = (p: Peer): Creds => ({ ca: p.ca, crt: p.crt, key: p.key });
  const ask = async (): Promise<number> => {
    const r = await tlsCurl(lab, lab.ns('c1'), as(alice), '/api/generate', { data: JSON.stringify({ model: 'llama3.2', prompt: 'gpu disk', stream: false }) });
    if (r.status === 200) served++;
    return r.status;
  };
  const health = async (): Promise<Health> => JSON.parse((await httpGet(lab, gpu, 'http://127.0.0.1:9478/healthz')).body) as Health;
  const guardMetric = async (name: string): Promise<number | undefined> => metric((await httpGet(lab, gpu, 'http://127.0.0.1:9478/metrics')).body, name);
  const stopGateway = async (): Promise<void> => {
    const d = gw.daemon()!;
    d.kill('SIGTERM');
    await d;
  };

  beforeAll(async () => {
    lab = await createLab('fe', { gpuListener: false });
    procs = processes(lab);
    gpu = lab.ns('gpu');
    gw = await createGateway(lab, 'wgofe', ['--sync-listen', SYNC_LISTEN]);
    await gw.start();
    const guardDir = join(lab.dir, 'guard');
    const added = await gw.cli('add-guard', 'gpu1', '--address', GPU, '--out', guardDir);
    if (added.code !== 0) throw new Error(`add-guard failed: ${added.stderr}`);
    disk = await createSmallDisk(lab, 'spool', 4);
    const guardConfig = join(guardDir, 'guard.json');
    const c = JSON.parse(readFileSync(guardConfig, 'utf8')) as Record<string, unknown>;
    writeFileSync(guardConfig, JSON.stringify({ ...c, stateDir: disk.dir, auditFailure: 'serve' }, null, 2));
    await startSim(lab, procs, gpu);
    guard = disk.spawn(gpu, 'node', [BIN, 'guard', '--config', guardConfig], 'guard');
    alice = await addPeer(lab, gw, 'alice');
    await waitFor(async () => {
      if (guard.exited()) throw new Error(`the guard exited: ${readFileSync(`${guard.out}.err`, 'utf8')}`);
      return (await health().catch(() => null))?.ok === true;
    }, 20_000, 'the guard to serve');
    await clientUp(lab, lab.ns('c1'), 'wgcfe1', alice.config);
  }, 120_000);
  afterAll(async () => {
    await procs?.stopAll();
    await disk?.cleanup();
    await lab?.cleanup();
  });

  it('before: a request is served and its record reaches the gateway', async () => {
    expect(await ask()).toBe(200);
    await waitFor(async () => (await requestLog(gw)).length === 1, 5000, 'the record at the gateway');
  });

  it('with the gateway away, records wait in the spool', async () => {
    await stopGateway();
    expect(await ask()).toBe(200);
    expect(await ask()).toBe(200);
    await waitFor(async () => (await health()).spooled === 2, 5000, 'two records spooled');
  });

  it('the spool disk fills: the guard keeps serving, says the audit fails, counts what it served unrecorded', async () => {
    await diskCli(disk, gpu, '/dev/null').truncateWal(join(disk.dir, 'spool.db'));
    expect(await disk.fill(gpu)).toBe(0);
    expect(await ask()).toBe(200);
    await waitFor(async () => (await health()).audit.ok === false, 5000, 'the guard to notice');
    for (let i = 0; i < 3; i++) expect(await ask()).toBe(200);
    const h = await health();
    expect(h).toMatchObject({ ok: false, audit: { ok: false, mode: 'serve' } });
    expect(h.audit.buffered).toBeGreaterThanOrEqual(4);
    expect(await guardMetric('wgo_guard_audit_ok')).toBe(0);
    expect(await guardMetric('wgo_guard_unrecorded_requests_total')).toBe(3);
    expect(guard.exited()).toBe(false);
  });

  it('space returns: the guard records again by itself, and every record reaches the gateway', async () => {
    await disk.free(gpu);
    await waitFor(async () => (await health()).audit.ok, 5000, 'the audit trail back');
    expect((await health()).audit.buffered).toBe(0);
    await gw.start();
    let rows = await requestLog(gw);
    await waitFor(async () => (rows = await requestLog(gw)).length === served, 10_000, `all ${served} records at the gateway`);
    expect(rows.every((r) => r.peer === 'alice' && r.status === 200 && r.guard === 'gpu1')).toBe(true);
    expect(rows.map((r) => r.guardSeq)).toEqual(Array.from({ length: served }, (_, i) => i + 1));
    expect(await guardMetric('wgo_guard_records_dropped_total')).toBe(0);
    expect(guard.exited()).toBe(false);
  });
});
