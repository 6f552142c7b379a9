import { describe, expect, test } from 'vitest';
import { escapeControl } from '../../../src/core/format.js';

describe('escapeControl', () => {
  test.each([
    ['plain text is unchanged', 'llama3.2:latest', 'llama3.2:latest'],
    ['Unicode letters are unchanged', 'café 模型 🦙', 'café 模型 🦙'],
    ['newline', 'a\nb', 'a\\x0ab'],
    ['carriage return', 'a\rb', 'a\\x0db'],
    ['tab', 'a\tb', 'a\\x09b'],
    ['NUL', 'a\0b', 'a\\x00b'],
    ['ESC (a colour sequence)', '\x1b[31mred', '\\x1b[31mred'],
    ['OSC 8 hyperlink', '\x1b]8;;http://evil\x1b\\x', '\\x1b]8;;http://evil\\x1b\\x'],
    ['DEL', 'a\x7fb', 'a\\x7fb'],
    ['C1 CSI', 'a\u009bb', 'a\\x9bb'],
    ['C1 NEL', 'a\u0085b', 'a\\x85b'],
    ['line separator', 'a\u2028b', 'a\\u2028b'],
    ['paragraph separator', 'a\u2029b', 'a\\u2029b'],
    ['bidi override RLO', 'a\u202eb', 'a\\u202eb'],
    ['bidi embedding LRE', 'a\u202ab', 'a\\u202ab'],
    ['bidi isolate LRI', 'a\u2066b', 'a\\u2066b'],
    ['bidi pop isolate PDI', 'a\u2069b', 'a\\u2069b'],
    ['U+00A0 (printable) is unchanged', 'a\u00a0b', 'a\u00a0b'],
    ['U+2065 and U+206A are not bidi controls', '\u2065\u206a', '\u2065\u206a'],
  ])('%s', (_what, input, expected) => {
    expect(escapeControl(input)).toBe(expected);
  });

  test('a forged log line stays on one line', () => {
    const out = escapeControl('x\n2026-01-01T00:00:00.000Z  root@cli  admin.add  mallory');
    expect(out).not.toMatch(/[\n\r]/);
    expect(out).toContain('\\x0a2026-01-01');
  });
});
