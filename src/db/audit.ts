import type { Db } from './open.js';

export interface AuditEntry {
  actor: string;
  action: string;
  target: string | null;
  source: string;
  details?: Record<string, unknown>;
}

export interface AuditRow extends Omit<AuditEntry, 'details'> {
  id: number;
  at: number;
  details: Record<string, unknown> | null;
}

/** Who did what, when, from where. Details never hold secrets. */
export function auditRepository(db: Db) {
  const insert = db.prepare(
    `INSERT INTO audit_log (at, actor, action, target, source, details) VALUES (?, ?, ?, ?, ?, ?)`,
  );
  const since = db.prepare(
    `SELECT id, at, actor, action, target, source, details FROM audit_log WHERE at >= ? AND id > ? AND (? IS NULL OR id < ?) AND (? IS NULL OR action LIKE ? ESCAPE '\\' OR actor = ? OR target = ?) ORDER BY id LIMIT ?`,
  );
  const newest = db.prepare(
    `SELECT * FROM (SELECT id, at, actor, action, target, source, details FROM audit_log WHERE at >= ? AND id > ? AND (? IS NULL OR id < ?) AND (? IS NULL OR action LIKE ? ESCAPE '\\' OR actor = ? OR target = ?) ORDER BY id DESC LIMIT ?) ORDER BY id`,
  );
  return {
    record(e: AuditEntry, at: number): void {
      insert.run(at, e.actor, e.action, e.target, e.source, e.details ? JSON.stringify(e.details) : null);
    },
    /** Rows after `afterId` (and before `beforeId`), oldest first; with `newest`, the last `limit` of them. `match`: an action prefix, or exactly the actor or the target. */
    list(opts: { since: number; afterId?: number; beforeId?: number; limit?: number; newest?: boolean; match?: string }): AuditRow[] {
      const before = opts.beforeId ?? null;
      const m = opts.match ?? null;
      const like = m === null ? null : m.replace(/[\\%_]/g, (c) => '\\' + c) + '%';
      const rows = (opts.newest ? newest : since).all(opts.since, opts.afterId ?? 0, before, before, m, like, m, m, opts.limit ?? 1000) as (AuditRow & { details: string | null })[];
      return rows.map((r) => ({ ...r, details: r.details ? (JSON.parse(r.details) as Record<string, unknown>) : null }));
    },
  };
}

export type AuditRepository = ReturnType<typeof auditRepository>;
