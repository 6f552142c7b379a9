import { expect, test } from 'vitest';
import { parseYaml } from '../support/readme-yaml.js';

test('the README YAML reader reads mappings, sequences of mappings, flow lists, empty values, quotes, comments', () => {
  expect(parseYaml([
    'a: 1  # a comment',
    'b:',
    '  - x: "q: r"',
    '    y: [p, q]',
    '  - plain',
    'c:',
    '  d:',
    "  e: 'it''s'",
  ].join('\n'))).toEqual({ a: '1', b: [{ x: 'q: r', y: ['p', 'q'] }, 'plain'], c: { d: null, e: "it's" } });
});

test.each([
  ['a key given twice', 'a: 1\na: 2'],
  ['an indentation that fits nothing', 'a:\n    b: 1\n  c: 2'],
  ['a tab', 'a:\n\tb: 1'],
  ['a line that is no key: value', 'a: 1\njust words'],
  ['an anchor', 'a: 1\n&x b: 2'],
  ['an unclosed flow list', 'a: [x, y'],
  ['a first line indented', '  a: 1'],
])('the README YAML reader refuses %s', (_what, text) => {
  expect(() => parseYaml(text)).toThrow(/^line \d+: /);
});
