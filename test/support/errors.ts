import { expect } from 'vitest';
import { WgoError, type ErrorCode } from '../../src/errors.js';

/** Runs fn, expects a WgoError with this code, and returns it for further checks. */
export function expectWgoError(fn: () => unknown, code: ErrorCode): WgoError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a WgoError to be thrown').toBeInstanceOf(WgoError);
  const err = caught as WgoError;
  expect(err.code).toBe(code);
  return err;
}
