import { describe, expect, test } from 'vitest';
import { exitCodeOf } from '../../../src/core/exit-code.js';
import { ERROR_CODES, WgoError, asDiskFull, isDiskFull, kindOf, type ErrorCode } from '../../../src/errors.js';

describe('errors: each code has one kind; the command line maps kinds to exit codes', () => {
  // The CLI contract (README): 2 when the input was wrong, 1 for any other failure.
  const EXIT: Record<ErrorCode, 1 | 2> = {
    BAD_INPUT: 2, CONFIG_INVALID: 2, NOT_FOUND: 2, CONFLICT: 2,
    FORBIDDEN: 1, POOL_EXHAUSTED: 1, NOT_INITIALIZED: 1, ALREADY_RUNNING: 1, MISSING_PROGRAM: 1,
    SCHEMA_TOO_NEW: 1, DAEMON_UNREACHABLE: 1, GATEWAY_REFUSED: 1, DISK_FULL: 1, EXEC_FAILED: 1, INTERNAL: 1,
  };

  test.each(ERROR_CODES)('%s', (code) => {
    const e = new WgoError(code, 'm', { cause: 'c' });
    expect(e.kind).toBe(kindOf(code));
    expect(exitCodeOf(e.kind)).toBe(EXIT[code]);
    expect(e.cause).toBe('c');
    expect(e).not.toHaveProperty('exitCode');
  });

  test('the kinds', () => {
    expect(Object.fromEntries(ERROR_CODES.map((c) => [c, kindOf(c)]))).toEqual({
      BAD_INPUT: 'bad-input', CONFIG_INVALID: 'bad-input', NOT_FOUND: 'not-found', CONFLICT: 'conflict', FORBIDDEN: 'forbidden',
      POOL_EXHAUSTED: 'unavailable', NOT_INITIALIZED: 'unavailable', ALREADY_RUNNING: 'unavailable', MISSING_PROGRAM: 'unavailable',
      SCHEMA_TOO_NEW: 'unavailable', DAEMON_UNREACHABLE: 'unavailable', GATEWAY_REFUSED: 'unavailable', DISK_FULL: 'unavailable', EXEC_FAILED: 'internal', INTERNAL: 'internal',
    });
    expect(Object.keys(EXIT).sort()).toEqual([...ERROR_CODES].sort());
  });
});

describe('a full disk is DISK_FULL, whoever reports it', () => {
  const sqlite = (code: string): Error => Object.assign(new Error('database or disk is full'), { code });
  test.each([
    ['SQLite', sqlite('SQLITE_FULL')],
    ["SQLite's shared-memory index", sqlite('SQLITE_IOERR_SHMSIZE')],
    ['a file write', Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })],
    ['a quota', Object.assign(new Error('EDQUOT: disk quota exceeded'), { code: 'EDQUOT' })],
  ])('%s', (_what, e) => {
    expect(isDiskFull(e)).toBe(true);
    const named = asDiskFull(e, 'the peer was not added');
    expect(named).toBeInstanceOf(WgoError);
    expect(named).toMatchObject({ code: 'DISK_FULL', kind: 'unavailable', cause: e });
    expect((named as Error).message).toBe(`the disk is full (${e.message}): the peer was not added; free some space and try again`);
  });

  test('anything else stays what it was', () => {
    for (const e of [sqlite('SQLITE_BUSY'), Object.assign(new Error('x'), { code: 'EACCES' }), new WgoError('CONFLICT', 'taken'), null, 'text']) {
      expect(isDiskFull(e)).toBe(false);
      expect(asDiskFull(e)).toBe(e);
    }
  });
});
