import { describe, expect, test } from 'vitest';
import { fitRecord, requestRecordSchema, type RequestRecord } from '../../../src/core/request-record.js';
import { createRecorder, type DraftRecord } from '../../../src/guard/recorder.js';

const draft = (o: Partial<DraftRecord> = {}): DraftRecord => ({
  at: 1, peer: 'alice', certSerial: 'ab', source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat',
  model: 'llama3.2:latest', promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 1, bytesOut: 1,
  promptTokens: null, evalTokens: null, ttfbMs: null, durationMs: 1, refusal: null, ...o,
});

describe('request records fit what the gateway stores', () => {
  test('a client-chosen model name or path over the limit is cut, and the record then validates', () => {
    const long = draft({ model: 'm'.repeat(5000), path: '/' + 'p'.repeat(5000) });
    expect(requestRecordSchema.safeParse({ ...long, seq: 1 }).success).toBe(false);
    const fit = fitRecord(long);
    expect(fit.model).toHaveLength(256);
    expect(fit.path).toHaveLength(2048);
    expect(requestRecordSchema.safeParse({ ...fit, seq: 1 } satisfies RequestRecord).success).toBe(true);
    const ok = draft();
    expect(fitRecord(ok)).toBe(ok);
  });

  test('the recorder fits every record it takes', () => {
    const written: DraftRecord[] = [];
    const rec = createRecorder({ write: (b) => void written.push(...b), onError: () => undefined, intervalMs: 1000 });
    rec.record(draft({ model: 'x'.repeat(300) }));
    rec.flush();
    expect(written.map((r) => r.model!.length)).toEqual([256]);
  });
});
