import { describe, expect, test } from 'vitest';
import { EVENT_SLACK, MAX_PLAUSIBLE_TOKENS, estimateTokens, plausibleCounts, settleCharge, type StreamedSoFar } from '../../../src/core/token-charge.js';

const s = (o: Partial<StreamedSoFar>): StreamedSoFar => ({ promptLength: 40, lines: 0, bytes: 0, sse: false, stream: true, ...o });

describe('token charge', () => {
  test.each([
    ['counts that fit the stream', { promptTokens: 10, evalTokens: 20 }, s({ lines: 21 }), true],
    ['a few framing events beyond the eval count', { promptTokens: 10, evalTokens: 20 }, s({ lines: 20 + EVENT_SLACK }), true],
    ['fewer tokens than streamed events', { promptTokens: 10, evalTokens: 1 }, s({ lines: 30 }), false],
    ['SSE: events are two newlines', { promptTokens: 1, evalTokens: 20 }, s({ lines: 48, sse: true }), true],
    ['SSE: too many events', { promptTokens: 1, evalTokens: 2 }, s({ lines: 40, sse: true }), false],
    ['absurdly large', { promptTokens: MAX_PLAUSIBLE_TOKENS + 1, evalTokens: 1 }, s({ lines: 1 }), false],
    ['negative', { promptTokens: -1, evalTokens: 1 }, s({ lines: 1 }), false],
    ['fractional', { promptTokens: 1.5, evalTokens: 1 }, s({ lines: 1 }), false],
    ['not streamed: one document, any eval count', { promptTokens: 5, evalTokens: 0 }, s({ lines: 1, bytes: 5000, stream: false }), true],
  ])('%s', (_what, counts, so, ok) => {
    expect(plausibleCounts(counts, so)).toBe(ok);
  });

  test('estimates: a token per four bytes of prompt, plus one per streamed event, or per four bytes of an answer not streamed', () => {
    expect(estimateTokens(s({ lines: 7 }))).toBe(10 + 7);
    expect(estimateTokens(s({ lines: 14, sse: true }))).toBe(10 + 7);
    expect(estimateTokens(s({ lines: 1, bytes: 401, stream: false }))).toBe(10 + 101);
  });

  test('settle: plausible counts are charged; otherwise the estimate, which the record carries; nothing for an answer that ran no model', () => {
    expect(settleCharge({ promptTokens: 3, evalTokens: 9 }, s({ lines: 10 }), true)).toEqual({ promptTokens: 3, evalTokens: 9, estimatedTokens: null, charged: 12 });
    expect(settleCharge(null, s({ lines: 10 }), true)).toEqual({ promptTokens: null, evalTokens: null, estimatedTokens: 20, charged: 20 });
    expect(settleCharge({ promptTokens: 1, evalTokens: 1 }, s({ lines: 30 }), true)).toEqual({ promptTokens: 1, evalTokens: 1, estimatedTokens: 40, charged: 40 });
    expect(settleCharge(null, s({ lines: 1 }), false)).toEqual({ promptTokens: null, evalTokens: null, estimatedTokens: null, charged: 0 });
  });
});
