/**
 * The pool verbs of the CLI on a real gateway state: add-guard --router / --member [--parallel],
 * drain-guard, undrain-guard, set-guard, remove-guard [--force], and list-guards showing the
 * router's view of each GPU host. Refusals change nothing.
 */
import { existsSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { addGuard, drainGuard, listGuards, removeGuard, setGuard } from '../../../src/cli/guards.js';
import type { Io } from '../../../src/cli/output.js';
import type { Config } from '../../../src/config.js';
import { openGateway } from '../../../src/gateway/context.js';
import { loadGuardConfig } from '../../../src/guard/config.js';
import { gatewayState, type GatewayState } from '../../support/gateway-state.js';

const WHO = { actor: 'root', source: 'cli' };

describe('pool verbs (a real gateway state)', () => {
  let state: GatewayState;
  let dir: string;
  let config: Config;
  let out = '';
  const io: Io = { out: (s: string) => void (out += s), err: () => undefined, env: {} };
  const rows = () => {
    const ctx = openGateway(config);
    try {
      return ctx.guards.list().map((g) => [g.name, g.poolRole, g.parallel, g.draining, g.revokedAt === null]);
    } finally {
      ctx.close();
    }
  };
  const report = (inFlight: number, draining: boolean) => {
    const ctx = openGateway(config);
    try {
      const edge = ctx.guards.list().find((g) => g.name === 'edge')!;
      // As the router does: the drain it applied, from the peer set.
      const drainedAt = ctx.guards.list().find((g) => g.name === 'gpu1')!.drainedAt;
      ctx.guards.report(edge, { hosts: [{ name: 'gpu1', health: 'healthy', draining, drainedAt, parallel: 2, inFlight, queued: 1, models: ['llama3.2:latest', 'qwen2.5:latest'], loaded: ['llama3.2:latest'] }], queued: 1 });
    } finally {
      ctx.close();
    }
  };

  beforeAll(() => {
    state = gatewayState({ name: 'guards-pool', config: { sync: { listen: '192.168.1.1:7443' } } });
    ({ dir, config } = state);
  });
  afterAll(() => state.cleanup());

  test('--router writes a guard.json that routes (no upstream of its own); --member one that serves the router', async () => {
    await addGuard(config, 'edge', { address: '192.168.1.10', out: join(dir, 'edge'), router: true }, io, WHO);
    await addGuard(config, 'gpu1', { address: '192.168.1.21', out: join(dir, 'gpu1'), member: true, parallel: '2' }, io, WHO);
    expect(loadGuardConfig(join(dir, 'edge', 'guard.json'))).toMatchObject({ name: 'edge', listen: '192.168.1.10:11434', pool: { role: 'router' } });
    expect(loadGuardConfig(join(dir, 'gpu1', 'guard.json'))).toMatchObject({ name: 'gpu1', listen: '192.168.1.21:11434', upstream: 'http://127.0.0.1:11434', pool: { role: 'member' } });
    expect(rows()).toEqual([['edge', 'router', null, false, true], ['gpu1', 'member', 2, false, true]]);
  });

  test('refused before anything is issued or written: a router not at ollamaHost, a member at it, both flags, a bad --parallel, a second router', async () => {
    const cases: [string, Parameters<typeof addGuard>[2], RegExp][] = [
      ['r2', { address: '192.168.1.11', out: join(dir, 'r2'), router: true }, /use --address 192\.168\.1\.10/],
      ['m2', { address: '192.168.1.10', out: join(dir, 'm2'), member: true }, /is ollamaHost, where peers connect/],
      ['m3', { address: '192.168.1.23', out: join(dir, 'm3'), member: true, router: true }, /exclude each other/],
      ['m4', { address: '192.168.1.24', out: join(dir, 'm4'), member: true, parallel: 'four' }, /--parallel "four" is not a whole number/],
      ['m5', { address: '192.168.1.25', out: join(dir, 'm5'), parallel: '2' }, /--parallel is for a pool member/],
      ['m6', { address: '192.168.1.26', out: join(dir, 'm6'), member: true, parallel: '0' }, /from 1 to 256/],
    ];
    for (const [name, o, message] of cases) {
      await expect(addGuard(config, name, o, io, WHO), name).rejects.toThrow(message);
      expect(existsSync(join(dir, name)), name).toBe(false);
    }
    await expect(addGuard(config, 'edge2', { address: '192.168.1.10', out: join(dir, 'edge2'), router: true }, io, WHO)).rejects.toThrow(/edge is already the pool's router/);
    expect(existsSync(join(dir, 'edge2')) && readdirSync(join(dir, 'edge2')).length > 0).toBe(false);
    expect(rows().map((r) => r[0])).toEqual(['edge', 'gpu1']);
  });

  test('a member whose files cannot be written is removed again, not left half-added (a member is never drained yet)', async () => {
    const out = join(dir, 'gpu9');
    mkdirSync(out);
    // A dangling link is no file to the preflight, but O_EXCL refuses to write through it: guard.json is written, ca.crt fails.
    symlinkSync('/nonexistent/ca.crt', join(out, 'ca.crt'));
    await expect(addGuard(config, 'gpu9', { address: '192.168.1.29', out, member: true }, io, WHO)).rejects.toMatchObject({ code: 'EXEC_FAILED' });
    expect(existsSync(join(out, 'guard.json'))).toBe(false);
    expect(rows().find((r) => r[0] === 'gpu9')).toEqual(['gpu9', 'member', 4, false, false]);
  });

  test('single-box mode (its guard inside serve) takes neither a router nor members', async () => {
    const single = { ...config, guard: { listen: '192.168.1.10:11434', upstream: 'http://127.0.0.1:11434', dnsNames: [], limits: config.guard?.limits ?? ({} as never), auditFailure: 'refuse' as const } } as Config;
    await expect(addGuard(single, 'edge3', { address: '192.168.1.10', out: join(dir, 'edge3'), router: true }, io, WHO)).rejects.toThrow(/single-box mode .* a pool router runs as its own "wg-ollama guard"/);
    await expect(addGuard(single, 'gpu8', { address: '192.168.1.28', out: join(dir, 'gpu8'), member: true }, io, WHO)).rejects.toThrow(/single-box mode .* has no pool router, so a member would serve no one/);
    expect(rows().map((r) => r[0])).not.toContain('gpu8');
  });

  test('list-guards shows the role and, for members, the router’s last report', () => {
    out = '';
    listGuards(config, {}, io);
    expect(out).toMatch(/gpu1\s+192\.168\.1\.21\s+member\s+active/);
    expect(out).toMatch(/gpu1\s+no report\s+no\s+-\s+2\s+-/);
    report(1, false);
    out = '';
    listGuards(config, {}, io);
    expect(out).toMatch(/gpu1\s+healthy\s+no\s+1\s+2\s+1\s+llama3\.2:latest,qwen2\.5:latest\s+llama3\.2:latest\s+\d{4}-/);
    // A report from before the router stopped (40 s ago) is marked stale.
    const ctx = openGateway(config);
    try {
      ctx.db.prepare(`UPDATE guards SET pool_reported_at = pool_reported_at - 40000 WHERE name = 'gpu1'`).run();
    } finally {
      ctx.close();
    }
    out = '';
    listGuards(config, {}, io);
    expect(out).toMatch(/gpu1\s+healthy \(stale\)\s+no\s+1\s+2/);
    out = '';
    listGuards(config, { json: true }, io);
    expect(JSON.parse(out).find((g: { name: string }) => g.name === 'gpu1')).toMatchObject({ poolRole: 'member', parallel: 2, draining: false, host: { inFlight: 1, queued: 1 }, reportStale: true });
  });

  test('remove-guard refuses a member that is not drained; drain-guard, then remove once the router reports 0 in flight', async () => {
    expect(() => removeGuard(config, 'gpu1', {}, io, WHO)).toThrow(/run drain-guard gpu1 first/);
    out = '';
    drainGuard(config, 'gpu1', true, {}, io, WHO);
    expect(out).toBe('gpu1: draining (no new requests; the running ones finish; list-guards shows what it still runs)\n');
    report(1, true);
    expect(() => removeGuard(config, 'gpu1', {}, io, WHO)).toThrow(/still runs 1 request/);
    out = '';
    drainGuard(config, 'gpu1', false, {}, io, WHO);
    expect(out).toBe('gpu1: taking requests\n');
    drainGuard(config, 'gpu1', true, {}, io, WHO);
    report(0, true);
    expect(rows()[1]).toEqual(['gpu1', 'member', 2, true, true]);
    out = '';
    removeGuard(config, 'gpu1', {}, io, WHO);
    expect(out).toBe('gpu1: removed\n');
    expect(rows()[1]![4]).toBe(false);
  });

  test('set-guard --parallel; --force removes a member that still runs requests', async () => {
    await addGuard(config, 'gpu2', { address: '192.168.1.22', out: join(dir, 'gpu2'), member: true }, io, WHO);
    expect(rows()[2]).toEqual(['gpu2', 'member', 4, false, true]);
    out = '';
    setGuard(config, 'gpu2', { parallel: '8' }, io, WHO);
    expect(out).toBe('gpu2: parallel 8\n');
    expect(() => setGuard(config, 'gpu2', { parallel: '-1' }, io, WHO)).toThrow(/not a whole number/);
    expect(() => setGuard(config, 'edge', { parallel: '2' }, io, WHO)).toThrow(/not a pool member/);
    expect(rows()[2]).toEqual(['gpu2', 'member', 8, false, true]);
    removeGuard(config, 'gpu2', { force: true }, io, WHO);
    expect(rows()[2]![4]).toBe(false);
  });
});
