/**
 * The spool's size ceiling (issue 12, item 2): only unacknowledged records are in the spool, and
 * none is ever deleted unacknowledged. At the ceiling a write fails like on a full disk and the
 * audit trail's auditFailure decides; acknowledgements make room, and the file gives it back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createAuditTrail, type AuditFailure, type AuditTrail } from '../../../src/guard/audit.js';
import { parseGuardConfig } from '../../../src/guard/config.js';
import { guardMetrics, spoolMetrics } from '../../../src/guard/metrics.js';
import type { DraftRecord } from '../../../src/guard/recorder.js';
import { openSpool, type Spool } from '../../../src/guard/spool.js';
import { expectWgoError } from '../../support/errors.js';

const T0 = Date.UTC(2026, 5, 15, 12);
const draft = (n: number): DraftRecord => ({
  at: T0 + n, peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat',
  model: 'llama3.2:latest', promptSha256: null, promptLength: null, promptText: 'x'.repeat(1000), status: 200, bytesIn: 10, bytesOut: 20,
  promptTokens: null, evalTokens: null, ttfbMs: 1, durationMs: 2, refusal: null,
});
const MAX = 512 * 1024;
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

let dir: string;
let spool: Spool;
let trail: AuditTrail | null = null;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-spool-bound-'));
  spool = openSpool(join(dir, 'spool.db'), { maxBytes: MAX });
});
afterEach(() => {
  trail?.stop();
  trail = null;
  spool.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Appends batches of 20 until the spool refuses; returns how many records went in. */
function fill(): number {
  let n = 0;
  for (let i = 0; i < 1000; i++) {
    try {
      spool.append(Array.from({ length: 20 }, (_, j) => draft(n + j)));
      n += 20;
    } catch {
      return n;
    }
  }
  throw new Error('the spool never filled');
}

describe('spool ceiling', () => {
  test('at the ceiling writes fail and nothing waiting is deleted; an acknowledgement makes room and the file shrinks', () => {
    const n = fill();
    expect(n).toBeGreaterThan(100);
    expect(spool.count()).toBe(n);
    const full = expectWgoError(() => spool.append([draft(0)]), 'INTERNAL');
    expect(full.message).toContain('the guard spool is full');
    expectWgoError(() => spool.probe(), 'INTERNAL');
    expect(spool.count()).toBe(n);
    expect(spool.pending(1)[0]!.seq).toBe(1);
    const big = spool.size().fileBytes;
    expect(big).toBeGreaterThanOrEqual(MAX);
    spool.ack(n);
    expect(spool.count()).toBe(0);
    // The pages the acknowledged records took go back to the file system (incremental vacuum).
    expect(spool.size().fileBytes).toBeLessThan(big / 4);
    spool.probe();
    expect(spool.append([draft(1)])[0]!.seq).toBe(n + 1);
    expect(spool.size()).toMatchObject({ records: 1, maxBytes: MAX, oldestAt: T0 + 1 });
  });

  test.each<[AuditFailure]>([['refuse'], ['serve']])('a full spool is an unavailable audit trail (%s), recovered by acknowledgements, nothing lost', async (mode) => {
    const n = fill();
    const registry = new Registry();
    const metrics = guardMetrics(registry);
    spoolMetrics(registry, () => spool.size());
    const t = createAuditTrail({ spool, mode, metrics, log: silent, intervalMs: 10, probeMs: 20 });
    trail = t;
    t.record(draft(9999));
    expect(t.flush()).toBe(false);
    expect(t.state()).toMatchObject({ ok: false, buffered: 1 });
    expect(t.state().lastError).toContain('the guard spool is full');
    const refusal = t.admit();
    if (mode === 'refuse') expect(refusal).toMatchObject({ status: 503, reason: 'audit_unavailable' });
    else {
      expect(refusal).toBeNull();
      expect(await registry.getSingleMetricAsString('wgo_guard_unrecorded_requests_total')).toMatch(/ 1$/m);
    }
    expect(await registry.getSingleMetricAsString('wgo_guard_spool_records')).toContain(`wgo_guard_spool_records ${n}`);
    expect(await registry.getSingleMetricAsString('wgo_guard_spool_max_bytes')).toContain(`wgo_guard_spool_max_bytes ${MAX}`);
    expect(await registry.getSingleMetricAsString('wgo_guard_spool_oldest_record_timestamp_seconds')).toContain(String(Math.floor(T0 / 1000)));
    // The gateway takes them: the next probe writes the buffered record and the trail is back.
    spool.ack(n);
    for (let i = 0; i < 100 && !t.state().ok; i++) await new Promise((r) => setTimeout(r, 10));
    expect(t.state()).toMatchObject({ ok: true, buffered: 0 });
    expect(spool.pending(10).map((r) => r.at)).toEqual([T0 + 9999]);
  });

  test('guard.json spool.maxBytes: default 1 GiB, at least 16 MiB', () => {
    const base = { name: 'gpu1', listen: '192.168.1.10:11434', gatewayUrl: 'https://192.0.2.1:8443', tls: { ca: 'a', cert: 'b', key: 'c', syncCert: 'd', syncKey: 'e' } };
    expect(parseGuardConfig(base, '/g/guard.json').spool).toEqual({ maxBytes: 1024 ** 3 });
    expect(parseGuardConfig({ ...base, spool: { maxBytes: 32 * 1024 * 1024 } }, '/g/guard.json').spool.maxBytes).toBe(32 * 1024 * 1024);
    expect(expectWgoError(() => parseGuardConfig({ ...base, spool: { maxBytes: 1000 } }, '/g/guard.json'), 'CONFIG_INVALID').message).toContain('spool.maxBytes: must be at least 16777216 (16 MiB)');
    expectWgoError(() => parseGuardConfig({ ...base, spool: { maxAge: '1d' } }, '/g/guard.json'), 'CONFIG_INVALID');
  });
});
