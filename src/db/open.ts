import Database from 'better-sqlite3';
import { WgoError } from '../errors.js';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

/**
 * Opens the database: WAL, foreign keys on, a generous busy timeout (many CLI
 * processes may write at once), and every pending migration applied in one
 * transaction each. `:memory:` works for unit tests.
 */
export function openDatabase(path: string, options: { readonly?: boolean } = {}): Db {
  let db: Db;
  try {
    db = new Database(path, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false });
  } catch (e) {
    throw new WgoError('NOT_INITIALIZED', `cannot open database ${path}: ${(e as Error).message}`, { cause: e });
  }
  db.pragma('busy_timeout = 30000');
  db.pragma('foreign_keys = ON');
  if (!options.readonly) {
    // A new file reclaims space as retention prunes (db/retention.ts). Only before the first page
    // is written (WAL's header counts): an older database gets it from one VACUUM (vacuumForRetention).
    if ((db.pragma('page_count', { simple: true }) as number) === 0) db.pragma('auto_vacuum = INCREMENTAL');
    if (path !== ':memory:') db.pragma('journal_mode = WAL');
    // FULL: a revoke the CLI reported done must survive a power cut.
    db.pragma('synchronous = FULL');
    migrate(db);
  }
  return db;
}

export function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new WgoError(
      'INTERNAL',
      `database schema version ${current} is newer than this wg-ollama (${MIGRATIONS.length}); upgrade wg-ollama`,
    );
  }
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
