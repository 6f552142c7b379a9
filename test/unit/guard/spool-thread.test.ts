/**
 * The spool's writes on their own thread (issue 13, item 3): what the guard's audit trail and
 * sync client rely on when every append, probe, acknowledgement and peer-set save runs there —
 * sequence numbers in call order, reads on the main connection seeing the writes, a full spool
 * as an unavailable trail (refuse answers 503) recovered by an acknowledgement, and shutdown
 * waiting for the write under way and logging what could not be written.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createAuditTrail } from '../../../src/guard/audit.js';
import { guardMetrics } from '../../../src/guard/metrics.js';
import type { DraftRecord } from '../../../src/guard/recorder.js';
import { openSpool, type Spool } from '../../../src/guard/spool.js';
import { startSpoolThread, type SpoolThread } from '../../../src/guard/spool-thread.js';
import { isWgoError } from '../../../src/errors.js';
import { waitFor } from '../../support/wait.js';

const T0 = Date.UTC(2026, 5, 15, 12);
const draft = (n: number, tokens: number | null = null): DraftRecord => ({
  at: T0 + n, peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat',
  model: 'llama3.2:latest', promptSha256: null, promptLength: null, promptText: 'x'.repeat(1000), status: 200, bytesIn: 10, bytesOut: 20,
  promptTokens: tokens, evalTokens: tokens, ttfbMs: 1, durationMs: 2, refusal: null,
});
const MAX = 512 * 1024;
type Line = { level: string; o: Record<string, unknown> };

let dir: string;
let path: string;
let spool: Spool;
let thread: SpoolThread;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-spool-thread-'));
  path = join(dir, 'spool.db');
  spool = openSpool(path, { maxBytes: MAX });
  thread = startSpoolThread(path, { maxBytes: MAX });
});
afterEach(async () => {
  await thread.close();
  spool.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the spool's writer thread", () => {
  test('appends made at once get sequence numbers in call order; the main connection reads them; ack and the peer set are saved', async () => {
    const batches = await Promise.all([0, 1, 2, 3].map((b) => thread.append([draft(b * 2), draft(b * 2 + 1)])));
    expect(batches.flat().map((r) => [r.seq, r.at])).toEqual(Array.from({ length: 8 }, (_, i) => [i + 1, T0 + i]));
    expect(spool.pending(10).map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    await thread.ack(5, { day: '2026-06-15', upTo: 5, tokensToday: { alice: 100 } });
    expect(spool.pending(10).map((r) => r.seq)).toEqual([6, 7, 8]);
    expect(spool.loadUsage()).toEqual({ day: '2026-06-15', upTo: 5, tokensToday: { alice: 100 } });
    await thread.savePeerSet({ version: 'v7', peers: [], logPrompts: false, tokensToday: {}, day: '2026-06-15' } as never);
    expect(spool.loadPeerSet()?.version).toBe('v7');
  });

  test.each([['append'], ['close']])('a write not yet answered, and closing, keep the process alive until done (%s)', (then) => {
    const other = join(dir, 'other.db');
    const out = execFileSync(join('node_modules', '.bin', 'vite-node'), [join('test', 'support', 'spool-thread-exit.ts'), other, then], { encoding: 'utf8', timeout: 15_000 });
    if (then === 'close') expect(out).toContain('closed');
    const s = openSpool(other);
    try {
      expect(s.pending(10).map((r) => r.seq)).toEqual([1]);
    } finally {
      s.close();
    }
  });

  test('a full spool rejects with the WgoError the synchronous spool throws', async () => {
    let n = 0;
    for (;;) {
      try {
        await thread.append(Array.from({ length: 20 }, (_, j) => draft(n + j)));
        n += 20;
      } catch (e) {
        expect(isWgoError(e, 'INTERNAL')).toBe(true);
        expect((e as Error).message).toContain('the guard spool is full');
        break;
      }
      if (n > 20_000) throw new Error('the spool never filled');
    }
    await expect(thread.probe()).rejects.toThrow('the guard spool is full');
    expect(spool.count()).toBe(n);
  });

  test('audit trail over the thread: full spool refused (503), recovered by an acknowledgement, nothing lost; stop waits and logs the rest', async () => {
    const lines: Line[] = [];
    const log = { info: (o: object) => void lines.push({ level: 'info', o: o as Record<string, unknown> }), warn: () => undefined, error: (o: object) => void lines.push({ level: 'error', o: o as Record<string, unknown> }) };
    const written: number[] = [];
    const t = createAuditTrail({ spool: thread, mode: 'refuse', metrics: guardMetrics(new Registry()), log, intervalMs: 20, probeMs: 20, onWritten: (rs) => written.push(...rs.map((r) => r.seq)) });
    // A charged record is written without a flush from outside (the recorder's deadline), with its seq.
    t.record(draft(0, 10));
    await waitFor(() => written.length === 1, 2000, 'the charged record written');
    expect(spool.pending(10).map((r) => r.seq)).toEqual(written);
    // Fill the spool through the trail until a write fails: from then on, requests are refused.
    for (let i = 1; t.state().ok; i++) {
      for (let j = 0; j < 20; j++) t.record(draft(i * 20 + j));
      await t.flush();
      if (i > 1000) throw new Error('the spool never filled');
    }
    expect(t.admit()).toMatchObject({ status: 503, reason: 'audit_unavailable' });
    expect(t.state().lastError).toContain('the guard spool is full');
    const kept = t.state().buffered;
    expect(kept).toBeGreaterThan(0);
    expect(lines.some((l) => l.o.event === 'audit.failed')).toBe(true);
    // The gateway takes everything spooled: the probe writes what was kept and the trail is back.
    const spooled = spool.count();
    await thread.ack(written[written.length - 1]!);
    await waitFor(() => t.state().ok, 3000, 'the trail back');
    expect(t.admit()).toBeNull();
    expect(spool.count()).toBe(kept);
    expect(written.length).toBe(spooled + kept);
    // Stop with a write under way that fails (the file made read-only meanwhile is not portable; fill again instead).
    for (let i = 0; t.state().ok && i < 1000; i++) {
      for (let j = 0; j < 20; j++) t.record(draft(100_000 + i * 20 + j));
      await t.flush();
    }
    t.record(draft(999_999));
    const flushing = t.flush();
    const stopped = t.stop();
    expect(stopped).toBeInstanceOf(Promise);
    expect(await flushing).toBe(false);
    await stopped;
    const unrecorded = lines.find((l) => l.o.event === 'audit.unrecorded');
    expect(unrecorded?.o.count).toBeGreaterThan(0);
    expect((unrecorded?.o.records as DraftRecord[]).some((r) => r.at === T0 + 999_999)).toBe(true);
  });
});
