/**
 * The one error type of wg-ollama: a stable `kind` each face maps to its own
 * answer (the CLI to an exit code in core/exit-code.ts, the admin UI to an HTTP
 * status in admin/http-status.ts), a finer `code` callers and tests can branch
 * on, a one-line message for people, and the underlying `cause`.
 */
export type ErrorKind =
  | 'bad-input' // the request itself is wrong: fix the input and try again
  | 'not-found' // the thing named does not exist
  | 'conflict' // the request clashes with the current state (a name taken, a peer revoked)
  | 'forbidden' // who asks may not do this
  | 'unavailable' // something the request needs is missing or not running; may work later
  | 'internal'; // a failure of wg-ollama or of the system under it

/** Each code belongs to exactly one kind. */
const KIND_OF = {
  BAD_INPUT: 'bad-input', // a value given by the user is invalid
  CONFIG_INVALID: 'bad-input', // the config file is missing a field or has a bad value
  NOT_FOUND: 'not-found', // a named peer (or file) does not exist
  CONFLICT: 'conflict', // a name or key already in use, or a state that forbids the change
  FORBIDDEN: 'forbidden', // the actor lacks the right
  POOL_EXHAUSTED: 'unavailable', // no free address left in the subnet
  NOT_INITIALIZED: 'unavailable', // `init` has not been run for this config
  ALREADY_RUNNING: 'unavailable', // another `serve` holds the state directory
  MISSING_PROGRAM: 'unavailable', // an external program is not installed
  SCHEMA_TOO_NEW: 'unavailable', // the database was written by a newer wg-ollama: run that one, or restore a backup
  DAEMON_UNREACHABLE: 'unavailable', // `serve` is not running or did not answer
  GATEWAY_REFUSED: 'unavailable', // the gateway answered a guard's sync call with an error status
  DISK_FULL: 'unavailable', // the disk holding the state (database, key files) has no space left; nothing was changed
  EXEC_FAILED: 'internal', // an external program exited non-zero
  INTERNAL: 'internal', // anything else, unexpected output of a program included
} as const satisfies Record<string, ErrorKind>;

export type ErrorCode = keyof typeof KIND_OF;

export class WgoError extends Error {
  override readonly name = 'WgoError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** What kind of failure this is; the faces map kinds, never codes, to their answers. */
  get kind(): ErrorKind {
    return kindOf(this.code);
  }
}

export function kindOf(code: ErrorCode): ErrorKind {
  return KIND_OF[code];
}

/** Every code, for tables that must cover them all. */
export const ERROR_CODES = Object.keys(KIND_OF) as ErrorCode[];

export function badInput(message: string): WgoError {
  return new WgoError('BAD_INPUT', message);
}

export function isWgoError(e: unknown, code?: ErrorCode): e is WgoError {
  return e instanceof WgoError && (code === undefined || e.code === code);
}

/**
 * Whether an error is a full disk: SQLite's SQLITE_FULL (and the I/O error it
 * reports when it cannot grow its shared-memory index), or ENOSPC / EDQUOT
 * from a file write.
 */
export function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_IOERR_SHMSIZE' ||
    (e instanceof WgoError && e.code === 'DISK_FULL');
}

/** A full disk as a WgoError DISK_FULL saying what happened (`what`, default: nothing changed); any other error as it is. */
export function asDiskFull(e: unknown, what = 'nothing was changed'): unknown {
  if (e instanceof WgoError || !isDiskFull(e)) return e;
  return new WgoError('DISK_FULL', `the disk is full (${(e as Error).message}): ${what}; free some space and try again`, { cause: e });
}
