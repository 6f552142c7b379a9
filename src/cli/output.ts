import { escapeControl } from '../core/format.js';
import { WgoError, asDiskFull } from '../errors.js';

/** Global flags every verb understands. */
export interface GlobalOptions {
  config?: string;
  json?: boolean;
  debug?: boolean;
}

export interface Io {
  out: (text: string) => void;
  /** Writes to standard output before returning, throwing on failure (for what must not be lost: a token shown once). */
  outSync?: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Standard input as text (tests pass their own; the CLI reads process.stdin). */
  readStdin?: () => Promise<string>;
}

/** Prints data as one JSON document, or as text made by `text`. */
export function emit<T>(io: Io, json: boolean | undefined, data: T, text: (d: T) => string): void {
  io.out(json ? JSON.stringify(data, null, 2) + '\n' : text(data));
}

/** Aligned columns; every cell is escaped (names, endpoints and addresses come from the database and from clients). */
export function table(cells: string[][]): string {
  if (cells.length === 0) return '';
  const rows = cells.map((r) => r.map((c) => escapeControl(c)));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

export { ago, bytes, escapeControl } from '../core/format.js';

/** Turns anything thrown into a WgoError so the boundary logs it once, in one line. */
export function asWgoError(e: unknown): WgoError {
  if (e instanceof WgoError) return e;
  // A full disk fails a verb before it changes anything (transactions roll back, files are removed).
  const full = asDiskFull(e);
  if (full instanceof WgoError) return full;
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'EACCES' || err?.code === 'EPERM') {
    return new WgoError('EXEC_FAILED', `${err.message} (wg-ollama needs root or CAP_NET_ADMIN)`, { cause: e });
  }
  return new WgoError('INTERNAL', err?.message ?? String(e), { cause: e });
}
