import { describe, expect, test } from 'vitest';
import { RECORD_FIELDS, fitRecord, recordForGateway, requestRecordSchema, type RequestRecord } from '../../../src/core/request-record.js';
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

describe('records for gateways of another version', () => {
  const rec = {
    seq: 1, at: 1_700_000_000_000, peer: 'alice', certSerial: 'ab', source: '10.66.0.2', method: 'POST', path: '/api/chat', endpoint: 'chat', model: 'llama3.2:latest',
    promptSha256: null, promptLength: null, promptText: null, status: 200, bytesIn: 1, bytesOut: 2, promptTokens: 1, evalTokens: 2, ttfbMs: 1, durationMs: 2, refusal: null, auth: 'token' as const,
  };
  // The record schema before the auth field (the gateway of the previous release): strict, so an unknown field is a rejected record.
  const previousRelease = requestRecordSchema.omit({ auth: true }).strict();

  test('a gateway that does not name auth gets records without it, which it stores', () => {
    expect(previousRelease.safeParse(rec).success).toBe(false);
    const sent = recordForGateway(rec, undefined);
    expect(previousRelease.safeParse(sent).success).toBe(true);
    expect(recordForGateway(rec, [])).not.toHaveProperty('auth');
  });

  test('a gateway that names auth (this build: RECORD_FIELDS) gets it', () => {
    expect(RECORD_FIELDS).toContain('auth');
    expect(recordForGateway(rec, RECORD_FIELDS)).toEqual(rec);
    expect(requestRecordSchema.safeParse(recordForGateway(rec, RECORD_FIELDS)).success).toBe(true);
  });
});
