/**
 * The one error type of wg-ollama: a stable `code` callers can branch on, a
 * one-line message for people, and the underlying `cause`.
 */
export type ErrorCode =
  | 'BAD_INPUT' // a value given by the user is invalid (exit 2)
  | 'CONFIG_INVALID' // the config file is missing a field or has a bad value (exit 2)
  | 'NOT_FOUND' // a named peer (or file) does not exist (exit 2)
  | 'CONFLICT' // a name or key already in use (exit 2)
  | 'POOL_EXHAUSTED' // no free address left in the subnet (exit 1)
  | 'NOT_INITIALIZED' // `init` has not been run for this config (exit 1)
  | 'ALREADY_RUNNING' // another `serve` holds the state directory (exit 1)
  | 'MISSING_PROGRAM' // an external program is not installed (exit 1)
  | 'EXEC_FAILED' // an external program exited non-zero (exit 1)
  | 'DAEMON_UNREACHABLE' // `serve` is not running or did not answer (exit 1)
  | 'INTERNAL';

const BAD_INPUT_CODES: ReadonlySet<ErrorCode> = new Set(['BAD_INPUT', 'CONFIG_INVALID', 'NOT_FOUND', 'CONFLICT']);

export class WgoError extends Error {
  override readonly name = 'WgoError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** 2 for bad input, 1 for everything else (the CLI contract). */
  get exitCode(): 1 | 2 {
    return BAD_INPUT_CODES.has(this.code) ? 2 : 1;
  }
}

export function badInput(message: string): WgoError {
  return new WgoError('BAD_INPUT', message);
}

export function isWgoError(e: unknown, code?: ErrorCode): e is WgoError {
  return e instanceof WgoError && (code === undefined || e.code === code);
}
