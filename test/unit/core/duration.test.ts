import { describe, expect, test } from 'vitest';
import { parseDuration } from '../../../src/core/duration.js';
import { expectWgoError } from '../../support/errors.js';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

describe('parseDuration', () => {
  test.each([
    ['30d', 30 * D],
    ['12h', 12 * H],
    ['1h30m', H + 30 * M],
    ['90s', 90 * S],
    ['2w', 14 * D],
    ['1w2d3h4m5s', 7 * D + 2 * D + 3 * H + 4 * M + 5 * S],
    ['0d1h', H],
    [' 30d ', 30 * D],
    ['3650d', 3650 * D],
  ])('%j is %i ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test.each([
    ['', /is not a duration like 30d/],
    ['0d', /must be greater than zero/],
    ['0s0m', /must be greater than zero/],
    ['-1d', /is not a duration/],
    ['1x', /is not a duration/],
    ['10 d', /is not a duration/],
    ['d', /is not a duration/],
    ['30', /is not a duration/],
    ['1.5h', /is not a duration/],
    ['30D', /is not a duration/],
    ['1234567d', /is not a duration/],
    ['3651d', /longer than 10 years/],
    ['522w', /longer than 10 years/],
  ])('rejects %j', (text, message) => {
    expect(expectWgoError(() => parseDuration(text), 'BAD_INPUT').message).toMatch(message);
  });

  test('names the option in the message', () => {
    expect(expectWgoError(() => parseDuration('soon', '--expires'), 'BAD_INPUT').message).toBe(
      '--expires "soon" is not a duration like 30d, 12h, 1h30m or 90s',
    );
  });
});
