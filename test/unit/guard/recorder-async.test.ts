/**
 * Issue 13, item 3: the recorder with a write that answers a promise (the spool's writer
 * thread). One write is under way at a time, so sequence numbers follow the order of the
 * records; a flush meanwhile waits and then writes what came since; a failed write puts its
 * batch back before the newer records; a charged record still has its 50 ms timer.
 */
import { afterEach, expect, test, vi } from 'vitest';
import { createRecorder, type DraftRecord } from '../../../src/guard/recorder.js';

const rec = (at: number, tokens: number | null = null): DraftRecord => ({
  at, peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat', model: null,
  promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 0, bytesOut: 0, promptTokens: tokens, evalTokens: null,
  ttfbMs: null, durationMs: 1, refusal: null,
});

/** A write whose outcome the test decides, one call at a time. */
function deferredWrites() {
  const calls: { batch: number[]; resolve(): void; reject(e: Error): void }[] = [];
  const write = (b: DraftRecord[]): Promise<void> =>
    new Promise<void>((resolve, reject) => void calls.push({ batch: b.map((r) => r.at), resolve, reject }));
  return { calls, write };
}

afterEach(() => {
  vi.useRealTimers();
});

test('one write at a time: a flush during a write waits for it, then writes what came since', async () => {
  const d = deferredWrites();
  const errors: Error[] = [];
  const r = createRecorder({ write: d.write, onError: (e) => void errors.push(e), intervalMs: 60_000 });
  r.record(rec(1));
  r.record(rec(2));
  const first = r.flush();
  expect(first).toBeInstanceOf(Promise);
  expect(d.calls.map((c) => c.batch)).toEqual([[1, 2]]);
  expect(r.pending()).toBe(2);
  r.record(rec(3));
  const second = r.flush();
  await Promise.resolve();
  expect(d.calls).toHaveLength(1);
  expect(r.idle()).not.toBeNull();
  d.calls[0]!.resolve();
  expect(await first).toBe(true);
  await vi.waitFor(() => expect(d.calls).toHaveLength(2));
  expect(d.calls[1]!.batch).toEqual([3]);
  d.calls[1]!.resolve();
  expect(await second).toBe(true);
  expect(r.pending()).toBe(0);
  expect(r.idle()).toBeNull();
  expect(errors).toEqual([]);
  r.stop();
});

test('a failed write puts its batch back before the records that came meanwhile', async () => {
  const d = deferredWrites();
  const errors: Error[] = [];
  const r = createRecorder({ write: d.write, onError: (e) => void errors.push(e), intervalMs: 60_000 });
  r.record(rec(1));
  const first = r.flush();
  r.record(rec(2));
  d.calls[0]!.reject(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }));
  expect(await first).toBe(false);
  expect(errors.map((e) => (e as { code?: string }).code)).toEqual(['SQLITE_FULL']);
  expect(r.drain().map((x) => x.at)).toEqual([1, 2]);
  r.stop();
});

test('a charged record is handed to an asynchronous write within 50 ms', async () => {
  vi.useFakeTimers();
  const d = deferredWrites();
  const r = createRecorder({ write: d.write, onError: () => undefined, intervalMs: 60_000 });
  r.record(rec(1, 5));
  vi.advanceTimersByTime(49);
  expect(d.calls).toHaveLength(0);
  vi.advanceTimersByTime(1);
  expect(d.calls.map((c) => c.batch)).toEqual([[1]]);
  d.calls[0]!.resolve();
  r.stop();
});
