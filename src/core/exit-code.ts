import type { ErrorKind } from '../errors.js';

/**
 * The exit-code contract of both command lines (`wg-ollama` and
 * `wg-ollama-connect`): 0 ok, 2 when the input was wrong (a bad value, a name
 * that does not exist, a name or state that clashes: fix the command and run
 * it again), 1 for every other failure.
 */
const EXIT_CODE: Record<ErrorKind, 1 | 2> = {
  'bad-input': 2,
  'not-found': 2,
  conflict: 2,
  forbidden: 1,
  unavailable: 1,
  internal: 1,
};

export function exitCodeOf(kind: ErrorKind): 1 | 2 {
  return EXIT_CODE[kind];
}
