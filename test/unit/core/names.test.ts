import { describe, expect, test } from 'vitest';
import { validatePeerName } from '../../../src/core/names.js';
import { expectWgoError } from '../../support/errors.js';

describe('validatePeerName', () => {
  test.each([
    'alice',
    'a',
    '0',
    'bob-laptop',
    'gpu_box.2',
    'x'.repeat(32),
    '9lives',
    'a..b',
  ])('accepts %j and returns it unchanged', (name) => {
    expect(validatePeerName(name)).toBe(name);
  });

  test.each([
    ['33 characters', 'x'.repeat(33), /33 characters long; the limit is 32/],
    ['uppercase', 'Alice', /lowercase/],
    ['all uppercase', 'BOB', /lowercase/],
    ['semicolon', 'a;reboot', /may contain only/],
    ['command substitution', '$(x)', /may contain only/],
    ['backtick', 'a`id`', /may contain only/],
    ['space', 'alice laptop', /may contain only/],
    ['trailing newline', 'alice\n', /may contain only/],
    ['embedded newline', 'al\nice', /may contain only/],
    ['slash', 'a/b', /may contain only/],
    ['path traversal', '../etc', /may contain only/],
    ['dot-dot', '..', /may contain only/],
    ['single dot', '.', /may contain only/],
    ['leading dot', '.hidden', /must start with a letter or digit/],
    ['leading dash', '-rf', /must start with a letter or digit/],
    ['leading underscore', '_x', /must start with a letter or digit/],
    ['non-ASCII', 'zoë', /may contain only/],
    ['NUL byte', 'a\0b', /may contain only/],
    ['empty', '', /required/],
  ])('rejects %s', (_what, name, message) => {
    const err = expectWgoError(() => validatePeerName(name), 'BAD_INPUT');
    expect(err.message).toMatch(message);
    expect(err.kind).toBe('bad-input');
  });

  test.each(['all', 'root', 'admin', 'gateway', 'localhost', 'wg-ollama', 'ollama', 'none', 'default'])(
    'rejects the reserved name %j',
    (name) => {
      const err = expectWgoError(() => validatePeerName(name), 'BAD_INPUT');
      expect(err.message).toBe(`peer name "${name}" is reserved`);
    },
  );

  test('a reserved word inside a longer name is fine', () => {
    expect(validatePeerName('admin-laptop')).toBe('admin-laptop');
  });

  test.each([[undefined], [null], [42], [['alice']], [{ name: 'alice' }]])('rejects non-string input %j', (input) => {
    const err = expectWgoError(() => validatePeerName(input), 'BAD_INPUT');
    expect(err.message).toBe('peer name is required');
  });
});
