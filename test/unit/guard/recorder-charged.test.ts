/**
 * Issue 10, item 1: a record that charged tokens reaches the spool within
 * 50 ms, not up to a second later, so a crash loses at most the charges of
 * requests that ended in the last 50 ms (the budget after a restart counts
 * the spool's).
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createRecorder, type DraftRecord } from '../../../src/guard/recorder.js';

const rec = (o: Partial<DraftRecord>): DraftRecord => ({
  at: 1, peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat', model: null,
  promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 0, bytesOut: 0, promptTokens: null, evalTokens: null,
  ttfbMs: null, durationMs: 1, refusal: null, ...o,
});

afterEach(() => {
  vi.useRealTimers();
});

describe('recorder', () => {
  // Fake timers: the deadlines are the recorder's own timers, checked exactly, not wall-clock timing.
  test('records that charged tokens (counted or estimated) are written within 50 ms, with what waits; others within the interval', () => {
    vi.useFakeTimers();
    const written: DraftRecord[][] = [];
    const r = createRecorder({ write: (b) => void written.push(b), onError: () => undefined, intervalMs: 60_000 });
    r.record(rec({ refusal: 'rate_limited', status: 429 }));
    vi.advanceTimersByTime(1000);
    expect(written).toEqual([]);
    r.record(rec({ estimatedTokens: 12 }));
    r.record(rec({ promptTokens: 1, evalTokens: 2 }));
    vi.advanceTimersByTime(49);
    expect(written).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(written.map((b) => b.length)).toEqual([3]);
    // Zero tokens charged: it waits for the interval like any other record.
    r.record(rec({ promptTokens: 0, evalTokens: 0 }));
    vi.advanceTimersByTime(59_999);
    expect(written).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(written.map((b) => b.length)).toEqual([3, 1]);
  });
});
