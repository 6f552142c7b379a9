import type { Db } from '../../src/db/open.js';

/**
 * Makes a real SQLite database full, as a full disk does: no new page may be
 * allocated (max_page_count), and the last pages of the audit log (and of the
 * connection events, when a peer exists to own them, and of the request records) are filled with tiny
 * rows dated before 1970 (so no listing shows them). Every service change
 * (each writes an audit record) and every monitor write then fails with
 * SQLITE_FULL. `room()` lifts the limit again.
 */
export function fillDatabase(db: Db): { room: () => void } {
  db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
  const peer = db.prepare('SELECT min(id) FROM peers').pluck().get() as number | null;
  const inserts = [db.prepare("INSERT INTO audit_log (at, actor, action, target, source) VALUES (-1, 'x', 'x', NULL, 'x')")];
  if (peer !== null) inserts.push(db.prepare(`INSERT INTO connection_events (at, peer_id, kind) VALUES (-1, ${peer}, 'traffic')`));
  const seq = (db.prepare("SELECT coalesce(max(guard_seq), 0) FROM requests WHERE guard = '~filler'").pluck().get() as number) + 1;
  inserts.push(db.prepare(`INSERT INTO requests (guard, guard_seq, at, source, status, bytes_in, bytes_out, duration_ms) VALUES ('~filler', ${seq} + (SELECT count(*) FROM requests WHERE guard = '~filler'), -1, 'x', 0, 0, 0, 0)`));
  for (const ins of inserts) {
    let full = false;
    for (let i = 0; i < 100_000 && !full; i++) {
      try {
        ins.run();
      } catch (e) {
        if ((e as { code?: string }).code !== 'SQLITE_FULL') throw e;
        full = true;
      }
    }
    if (!full) throw new Error('the database did not fill up');
  }
  return { room: () => void db.pragma('max_page_count = 1073741823') };
}
