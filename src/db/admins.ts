import type { Db } from './open.js';

export type AdminRole = 'admin' | 'viewer';

export interface AdminRow {
  id: number;
  name: string;
  role: AdminRole;
  passwordHash: string;
  /** Sealed (src/admin/secret-box.ts), never the plain secret. */
  totpSecret: string;
  totpStep: number;
  createdAt: number;
  updatedAt: number;
}

export interface SessionRow {
  idHash: string;
  adminId: number;
  csrf: string;
  source: string;
  createdAt: number;
  seenAt: number;
}

const ADMIN_COLUMNS = `id, name, role, password_hash AS passwordHash, totp_secret AS totpSecret, totp_step AS totpStep, created_at AS createdAt, updated_at AS updatedAt`;

/** Admin accounts, their sessions and the sign-in throttle. */
export function adminRepository(db: Db) {
  const s = {
    insert: db.prepare(`INSERT INTO admins (name, role, password_hash, totp_secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`),
    byName: db.prepare(`SELECT ${ADMIN_COLUMNS} FROM admins WHERE name = ?`),
    byId: db.prepare(`SELECT ${ADMIN_COLUMNS} FROM admins WHERE id = ?`),
    list: db.prepare(`SELECT ${ADMIN_COLUMNS} FROM admins ORDER BY name`),
    countRole: db.prepare(`SELECT count(*) FROM admins WHERE role = ?`).pluck(),
    remove: db.prepare(`DELETE FROM admins WHERE id = ?`),
    setTotp: db.prepare(`UPDATE admins SET totp_secret = ?, totp_step = 0, updated_at = ? WHERE id = ?`),
    setPassword: db.prepare(`UPDATE admins SET password_hash = ?, updated_at = ? WHERE id = ?`),
    // Only moves forward: of two concurrent sign-ins with the same code, one wins.
    useStep: db.prepare(`UPDATE admins SET totp_step = ? WHERE id = ? AND totp_step < ?`),
    sessionInsert: db.prepare(`INSERT INTO admin_sessions (id_hash, admin_id, csrf, source, created_at, seen_at) VALUES (?, ?, ?, ?, ?, ?)`),
    sessionGet: db.prepare(`SELECT id_hash AS idHash, admin_id AS adminId, csrf, source, created_at AS createdAt, seen_at AS seenAt FROM admin_sessions WHERE id_hash = ?`),
    sessionTouch: db.prepare(`UPDATE admin_sessions SET seen_at = ? WHERE id_hash = ?`),
    sessionDelete: db.prepare(`DELETE FROM admin_sessions WHERE id_hash = ?`),
    sessionsOfAdmin: db.prepare(`DELETE FROM admin_sessions WHERE admin_id = ?`),
    sessionsExpire: db.prepare(`DELETE FROM admin_sessions WHERE seen_at < ? OR created_at < ?`),
    throttleGet: db.prepare(`SELECT failures, window_start AS windowStart, locked_until AS lockedUntil FROM login_throttle WHERE key = ?`),
    throttlePut: db.prepare(
      `INSERT INTO login_throttle (key, failures, window_start, locked_until) VALUES (?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start, locked_until = excluded.locked_until`,
    ),
    throttleClear: db.prepare(`DELETE FROM login_throttle WHERE key = ?`),
  };
  return {
    insert(a: { name: string; role: AdminRole; passwordHash: string; totpSecret: string }, now: number): number {
      return Number(s.insert.run(a.name, a.role, a.passwordHash, a.totpSecret, now, now).lastInsertRowid);
    },
    byName: (name: string): AdminRow | undefined => s.byName.get(name) as AdminRow | undefined,
    byId: (id: number): AdminRow | undefined => s.byId.get(id) as AdminRow | undefined,
    list: (): AdminRow[] => s.list.all() as AdminRow[],
    countRole: (role: AdminRole): number => s.countRole.get(role) as number,
    remove: (id: number): void => void s.remove.run(id),
    setTotp: (id: number, sealed: string, now: number): void => void s.setTotp.run(sealed, now, id),
    setPassword: (id: number, hash: string, now: number): void => void s.setPassword.run(hash, now, id),
    /** Records `step` as used; false when it (or a later one) was used already. */
    useStep: (id: number, step: number): boolean => s.useStep.run(step, id, step).changes === 1,
    sessions: {
      insert(r: SessionRow): void {
        s.sessionInsert.run(r.idHash, r.adminId, r.csrf, r.source, r.createdAt, r.seenAt);
      },
      get: (idHash: string): SessionRow | undefined => s.sessionGet.get(idHash) as SessionRow | undefined,
      touch: (idHash: string, now: number): void => void s.sessionTouch.run(now, idHash),
      delete: (idHash: string): void => void s.sessionDelete.run(idHash),
      deleteOfAdmin: (adminId: number): number => s.sessionsOfAdmin.run(adminId).changes,
      /** Drops sessions idle since before `idleBefore` or created before `createdBefore`. */
      expire: (idleBefore: number, createdBefore: number): number => s.sessionsExpire.run(idleBefore, createdBefore).changes,
    },
    throttle: {
      get: (key: string) => s.throttleGet.get(key) as { failures: number; windowStart: number; lockedUntil: number | null } | undefined,
      put: (key: string, failures: number, windowStart: number, lockedUntil: number | null): void => void s.throttlePut.run(key, failures, windowStart, lockedUntil),
      clear: (key: string): void => void s.throttleClear.run(key),
    },
  };
}

export type AdminRepository = ReturnType<typeof adminRepository>;

export interface EnrollmentRow {
  id: number;
  peerName: string;
  expiresInMs: number | null;
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
  usedFrom: string | null;
  cancelledAt: number | null;
}

const ENROLL_COLUMNS = `id, peer_name AS peerName, expires_in_ms AS expiresInMs, created_by AS createdBy, created_at AS createdAt, expires_at AS expiresAt, used_at AS usedAt, used_from AS usedFrom, cancelled_at AS cancelledAt`;

/** One-time enrollment links (the token itself is never stored). */
export function enrollmentRepository(db: Db) {
  const s = {
    insert: db.prepare(`INSERT INTO enrollments (token_hash, peer_name, expires_in_ms, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`),
    byHash: db.prepare(`SELECT ${ENROLL_COLUMNS} FROM enrollments WHERE token_hash = ?`),
    byId: db.prepare(`SELECT ${ENROLL_COLUMNS} FROM enrollments WHERE id = ?`),
    openForName: db.prepare(`SELECT ${ENROLL_COLUMNS} FROM enrollments WHERE peer_name = ? AND used_at IS NULL AND cancelled_at IS NULL AND expires_at > ?`),
    recent: db.prepare(`SELECT ${ENROLL_COLUMNS} FROM enrollments ORDER BY id DESC LIMIT ?`),
    claim: db.prepare(`UPDATE enrollments SET used_at = ?, used_from = ? WHERE id = ? AND used_at IS NULL AND cancelled_at IS NULL AND expires_at > ?`),
    unclaim: db.prepare(`UPDATE enrollments SET used_at = NULL, used_from = NULL WHERE id = ?`),
    cancel: db.prepare(`UPDATE enrollments SET cancelled_at = ? WHERE id = ? AND used_at IS NULL AND cancelled_at IS NULL`),
  };
  return {
    insert(e: { tokenHash: string; peerName: string; expiresInMs: number | null; createdBy: string; expiresAt: number }, now: number): number {
      return Number(s.insert.run(e.tokenHash, e.peerName, e.expiresInMs, e.createdBy, now, e.expiresAt).lastInsertRowid);
    },
    byHash: (hash: string): EnrollmentRow | undefined => s.byHash.get(hash) as EnrollmentRow | undefined,
    byId: (id: number): EnrollmentRow | undefined => s.byId.get(id) as EnrollmentRow | undefined,
    openForName: (name: string, now: number): EnrollmentRow | undefined => s.openForName.get(name, now) as EnrollmentRow | undefined,
    recent: (limit: number): EnrollmentRow[] => s.recent.all(limit) as EnrollmentRow[],
    /** Marks the link used; false when it was used, cancelled or expired meanwhile. */
    claim: (id: number, source: string, now: number): boolean => s.claim.run(now, source, id, now).changes === 1,
    unclaim: (id: number): void => void s.unclaim.run(id),
    cancel: (id: number, now: number): boolean => s.cancel.run(now, id).changes === 1,
  };
}

export type EnrollmentRepository = ReturnType<typeof enrollmentRepository>;
