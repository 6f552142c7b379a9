/**
 * Issue 10, item 1: a record that charged tokens reaches the spool within
 * 50 ms, not up to a second later, so a crash loses at most the charges of
 * requests that ended in the last 50 ms (the budget after a restart counts
 * the spool's).
 */
import { describe, expect, test } from 'vitest';
import { createRecorder, type DraftRecord } from '../../../src/guard/recorder.js';

const rec = (o: Partial<DraftRecord>): DraftRecord => ({
  at: 1, peer: 'alice', certSerial: null, source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat', model: null,
  promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 0, bytesOut: 0, promptTokens: null, evalTokens: null,
  ttfbMs: null, durationMs: 1, refusal: null, ...o,
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('recorder', () => {
  test('records that charged tokens (counted or estimated) are written within 50 ms, with what waits; others within the interval', async () => {
    const written: DraftRecord[][] = [];
    const r = createRecorder({ write: (b) => void written.push(b), onError: () => undefined, intervalMs: 60_000 });
    r.record(rec({ refusal: 'rate_limited', status: 429 }));
    await sleep(80);
    expect(written).toEqual([]);
    const t0 = performance.now();
    r.record(rec({ estimatedTokens: 12 }));
    r.record(rec({ promptTokens: 1, evalTokens: 2 }));
    while (written.length === 0 && performance.now() - t0 < 1000) await sleep(2);
    expect(performance.now() - t0).toBeLessThan(100);
    expect(written.map((b) => b.length)).toEqual([3]);
    r.record(rec({ promptTokens: 0, evalTokens: 0 }));
    await sleep(80);
    expect(written).toHaveLength(1);
    r.flush();
    expect(written).toHaveLength(2);
  });
});
