import { closeSync, openSync, readSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { WgoError } from '../errors.js';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

/**
 * Opens the database: WAL, foreign keys on, a generous busy timeout (many CLI
 * processes may write at once), and every pending migration applied in one
 * transaction each. `:memory:` works for unit tests.
 *
 * A database from a newer wg-ollama (schema version above MIGRATIONS.length)
 * is refused with SCHEMA_TOO_NEW before anything is written to it: see
 * refuseNewerFile.
 */
export function openDatabase(path: string, options: { readonly?: boolean } = {}): Db {
  if (path !== ':memory:') refuseNewerFile(path);
  let db: Db;
  try {
    db = new Database(path, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
  } catch (e) {
    throw new WgoError('NOT_INITIALIZED', `cannot open database ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    db.pragma('busy_timeout = 30000');
    db.pragma('foreign_keys = ON');
    if (!options.readonly) {
      // A new file reclaims space as retention prunes (db/retention.ts). Only before the first page
      // is written (WAL's header counts): an older database gets it from one VACUUM (vacuumForRetention).
      if ((db.pragma('page_count', { simple: true }) as number) === 0) db.pragma('auto_vacuum = INCREMENTAL');
      if (path !== ':memory:') db.pragma('journal_mode = WAL');
      // FULL: a revoke the CLI reported done must survive a power cut.
      db.pragma('synchronous = FULL');
      migrate(db, path);
    } else {
      refuseNewer(db.pragma('user_version', { simple: true }) as number, path);
    }
  } catch (e) {
    db.close();
    throw e;
  }
  return db;
}

export function migrate(db: Db, name = 'the database'): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  refuseNewer(current, name);
  for (let v = current; v < MIGRATIONS.length; v++) {
    // IMMEDIATE: two processes starting at once must not both migrate.
    db.transaction(() => {
      const now = db.pragma('user_version', { simple: true }) as number;
      if (now > v) return;
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}

function refuseNewer(version: number, name: string): void {
  if (version <= MIGRATIONS.length) return;
  throw new WgoError(
    'SCHEMA_TOO_NEW',
    `${name} has schema version ${version}, newer than this wg-ollama knows (${MIGRATIONS.length}): a newer release wrote it. ` +
      'Nothing was changed. Run that release (or newer), or restore the backup taken before it was installed (see README, Upgrading)',
  );
}

/**
 * Refuses a newer database without writing a byte. Opening it read-write would
 * not do: SQLite creates -wal and -shm files, and the last connection to close
 * checkpoints the WAL into the main file. So: with no WAL content, the version
 * is the header's user_version (offset 60, big-endian, see sqlite.org/fileformat2.html);
 * with WAL content (a writer that did not close), a read-only connection reads
 * it, which neither checkpoints nor deletes the WAL.
 */
function refuseNewerFile(path: string): void {
  const walSize = sizeOf(`${path}-wal`);
  if (walSize === null || walSize === 0) {
    const header = readHeader(path);
    if (header && header.subarray(0, 16).toString('latin1') === 'SQLite format 3\0') refuseNewer(header.readInt32BE(60), path);
    return;
  }
  let ro: Db;
  try {
    ro = new Database(path, { readonly: true, fileMustExist: true });
  } catch {
    return; // the read-write open below reports it
  }
  try {
    refuseNewer(ro.pragma('user_version', { simple: true }) as number, path);
  } finally {
    ro.close();
  }
}

function sizeOf(path: string): number | null {
  try {
    return statSync(path).size;
  } catch {
    return null;
  }
}

function readHeader(path: string): Buffer | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null; // a new database, or one the open below reports
  }
  try {
    const buf = Buffer.alloc(100);
    return readSync(fd, buf, 0, 100, 0) === 100 ? buf : null;
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens a copy of a database as it is, without migrating it (a backup's
 * snapshot): its journal goes back into the file (journal_mode DELETE), so the
 * copy is one self-contained file.
 */
export function openSnapshot(path: string): Db {
  const db = new Database(path, { fileMustExist: true });
  db.pragma('journal_mode = DELETE');
  return db;
}
