import type { Config } from '../config.js';
import { bytes } from '../core/format.js';
import { CEILING_WARN, nearCeiling } from '../core/retention.js';
import { MIGRATIONS } from '../db/migrations.js';
import { openDatabase } from '../db/open.js';
import { databaseSize } from '../db/retention.js';
import type { CheckStatus } from './status-query.js';

export interface DatabaseCheck {
  check: string;
  status: CheckStatus;
  detail: string;
}

/**
 * `doctor`'s look at the database, read-only: its schema version, its size against the ceiling
 * (warn from 80 %: retention then prunes young rows, or cannot prune enough) and whether pruned
 * space goes back to the file system (auto_vacuum incremental; warn otherwise, with the fix).
 */
export function databaseChecks(config: Config): DatabaseCheck[] {
  let db;
  try {
    db = openDatabase(config.paths.db, { readonly: true });
  } catch (e) {
    return [{ check: 'database', status: 'fail', detail: (e as Error).message }];
  }
  try {
    const out: DatabaseCheck[] = [];
    const v = db.pragma('user_version', { simple: true });
    out.push({ check: 'database', status: v === MIGRATIONS.length ? 'ok' : 'warn', detail: `schema version ${v} of ${MIGRATIONS.length}` });
    const s = databaseSize(db, config.paths.db);
    const max = config.retention.maxDatabaseBytes;
    const share = Math.round((s.usedBytes / max) * 100);
    const sizes = `${bytes(s.usedBytes)} used of the ${bytes(max)} ceiling (${share} %); file ${bytes(s.fileBytes)}, wal ${bytes(s.walBytes)}`;
    out.push(nearCeiling(s.usedBytes, max)
      ? { check: 'database size', status: 'warn', detail: `${sizes}: at ${Math.round(CEILING_WARN * 100)} % of retention.maxDatabaseBytes or more; raise it, or shorten the retention ages` }
      : { check: 'database size', status: 'ok', detail: sizes });
    out.push(s.autoVacuum === 'incremental'
      ? { check: 'database space reuse', status: 'ok', detail: 'auto_vacuum incremental: pruned space goes back to the file system' }
      : { check: 'database space reuse', status: 'warn', detail: `auto_vacuum ${s.autoVacuum}: pruned space stays in the file; run "wg-ollama vacuum" once (it rebuilds the file: stop serve first, see README Retention)` });
    return out;
  } finally {
    db.close();
  }
}
