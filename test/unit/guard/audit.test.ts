/**
 * A spool that cannot be written (issue 10, item 10), at the guard: the real
 * guard, recorder and audit trail over a spool whose writes throw
 * SQLITE_FULL while `full` is set. 'refuse' answers 503 audit_unavailable
 * (Ollama hears nothing) until a probe finds the spool writable again, then
 * serves again without a restart and every buffered record is written;
 * 'serve' keeps serving and counts what it served unrecorded.
 */
import { Registry } from 'prom-client';
import { afterEach, describe, expect, test } from 'vitest';
import { createAuditTrail, type AuditFailure, type AuditTrail } from '../../../src/guard/audit.js';
import { guardMetrics } from '../../../src/guard/metrics.js';
import type { DraftRecord } from '../../../src/guard/recorder.js';
import { errorOf, startEnv, type GuardEnv } from '../../support/guard-env.js';
import { waitFor } from '../../support/wait.js';

const FAST = { requestsPerMinute: 100_000, burst: 1000 };
const diskFull = (): Error => Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });

/** The spool's writes: appended batches, and failures while `full`. */
function fakeSpool() {
  const written: DraftRecord[] = [];
  const s = {
    full: false,
    written,
    probes: 0,
    append(batch: DraftRecord[]): (DraftRecord & { seq: number })[] {
      if (s.full) throw diskFull();
      written.push(...batch);
      return batch.map((r, i) => ({ ...r, seq: written.length - batch.length + i + 1 }));
    },
    probe(): void {
      s.probes++;
      if (s.full) throw diskFull();
    },
  };
  return s;
}

let env: GuardEnv | null = null;
let trail: AuditTrail | null = null;
afterEach(async () => {
  trail?.stop();
  await env?.close();
  env = null;
  trail = null;
});

async function start(mode: AuditFailure, o: { maxBuffered?: number } = {}) {
  const spool = fakeSpool();
  const registry = new Registry();
  const errors: string[] = [];
  const logged: object[] = [];
  const log = { info: () => undefined, warn: () => undefined, error: (o: object, m?: string) => void (errors.push(String(m)), logged.push(o)) };
  const t = createAuditTrail({ spool, mode, metrics: guardMetrics(registry), log, intervalMs: 20, probeMs: 50, ...o });
  trail = t;
  env = await startEnv({ record: t.record, audit: t, peers: [{ name: 'alice', address: '127.0.0.1', policy: FAST }] });
  const metric = async (name: string): Promise<number> => {
    const m = /\s(\S+)$/.exec((await registry.getSingleMetricAsString(name)).trim().split('\n').pop()!);
    return Number(m![1]);
  };
  return { spool, registry, errors, logged, trail: t, env, metric };
}

const gen = { model: 'llama3.2', prompt: 'hi', stream: false };

describe('auditFailure "refuse" (the default)', () => {
  test('503 audit_unavailable while records cannot be written, Ollama hears nothing; served again once they can, nothing buffered lost', async () => {
    const { spool, errors, trail: t, env: e, metric } = await start('refuse');
    expect((await e.request('alice', { path: '/api/generate', body: gen })).status).toBe(200);
    await waitFor(() => spool.written.length === 1, 1000, 'the first record written');
    expect(await metric('wgo_guard_audit_ok')).toBe(1);

    spool.full = true;
    // served while the failure is not yet known: its record waits in memory
    expect((await e.request('alice', { path: '/api/generate', body: gen })).status).toBe(200);
    await waitFor(() => !t.state().ok, 1000, 'the write failure noticed');
    expect(errors.some((m) => /cannot be written/.test(m))).toBe(true);
    expect(t.state().lastError).toMatch(/SQLITE_FULL/);
    expect(await metric('wgo_guard_audit_ok')).toBe(0);
    expect(await metric('wgo_guard_spool_write_failures_total')).toBeGreaterThanOrEqual(1);

    const before = e.sim.requests.length;
    for (const path of ['/api/generate', '/api/version', '/api/tags']) {
      const r = await e.request('alice', { path, ...(path === '/api/generate' ? { body: gen } : {}) });
      expect(r.status).toBe(503);
      expect(errorOf(r)).toMatch(/audit trail unavailable/);
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    expect(e.sim.requests).toHaveLength(before);
    expect(e.records.filter((r) => r.refusal === 'audit_unavailable')).toHaveLength(3);
    // the probe keeps trying
    const probes = spool.probes;
    await new Promise((r) => setTimeout(r, 200));
    expect(t.state().ok).toBe(false);

    spool.full = false;
    await waitFor(() => t.state().ok, 1000, 'the audit trail back');
    expect(spool.probes).toBeGreaterThanOrEqual(probes);
    expect(await metric('wgo_guard_audit_ok')).toBe(1);
    expect((await e.request('alice', { path: '/api/generate', body: gen })).status).toBe(200);
    await waitFor(() => spool.written.length === 6, 1000, 'every record written');
    // in order, none lost: served, served while failing, three refusals, served again
    expect(spool.written.map((r) => [r.status, r.refusal])).toEqual([[200, null], [200, null], [503, 'audit_unavailable'], [503, 'audit_unavailable'], [503, 'audit_unavailable'], [200, null]]);
  });

  test('with nothing buffered, the probe alone notices recovery (a failed peer-set save)', async () => {
    const { spool, trail: t, env: e } = await start('refuse');
    spool.full = true;
    t.failed(diskFull(), 'the peer set');
    expect(t.state()).toMatchObject({ ok: false, buffered: 0 });
    expect(t.admit()).toMatchObject({ status: 503, reason: 'audit_unavailable' });
    await new Promise((r) => setTimeout(r, 150));
    expect(spool.probes).toBeGreaterThanOrEqual(2);
    expect(t.state().ok).toBe(false);
    spool.full = false;
    await waitFor(() => t.state().ok, 1000, 'the probe to succeed');
    expect(spool.probes).toBeGreaterThanOrEqual(1);
    expect((await e.request('alice', { path: '/api/version' })).status).toBe(200);
  });
});

describe('stopping while records cannot be written', () => {
  test('the records still in memory go to the log (without prompt text) and count as dropped: none vanishes', async () => {
    const { spool, errors, logged, trail: t, env: e, metric } = await start('refuse');
    spool.full = true;
    expect((await e.request('alice', { path: '/api/generate', body: gen })).status).toBe(200);
    await waitFor(() => !t.state().ok, 1000, 'the write failure noticed');
    expect(t.flush()).toBe(false);
    t.stop();
    trail = null;
    expect(errors.at(-1)).toBe('stopping with 1 request record(s) that could not be written: they are in this log line only');
    const line = logged.at(-1) as { event: string; count: number; records: Record<string, unknown>[] };
    expect(line).toMatchObject({ event: 'audit.unrecorded', count: 1, records: [{ peer: 'alice', path: '/api/generate', status: 200 }] });
    expect(line.records[0]).not.toHaveProperty('promptText');
    expect(t.state().buffered).toBe(0);
    expect(await metric('wgo_guard_records_dropped_total')).toBe(1);
  });
});

describe('auditFailure "serve"', () => {
  test('keeps serving, counts requests served unrecorded, and writes what it kept once it can', async () => {
    const { spool, trail: t, env: e, metric } = await start('serve', { maxBuffered: 3 });
    spool.full = true;
    expect((await e.request('alice', { path: '/api/version' })).status).toBe(200);
    await waitFor(() => !t.state().ok, 1000, 'the write failure noticed');
    for (let i = 0; i < 4; i++) expect((await e.request('alice', { path: '/api/version' })).status).toBe(200);
    expect(await metric('wgo_guard_unrecorded_requests_total')).toBe(4);
    // three kept in memory (the oldest), two dropped and counted
    expect(await metric('wgo_guard_records_dropped_total')).toBe(2);
    spool.full = false;
    await waitFor(() => t.state().ok && spool.written.length === 3, 1000, 'the kept records written');
  });
});
