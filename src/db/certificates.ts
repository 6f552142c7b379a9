import type { Db } from './open.js';

export type CertRole = 'peer' | 'guard-server' | 'guard-client' | 'gateway-server';

export interface CertificateRow {
  serial: string;
  role: CertRole;
  peerId: number | null;
  guardId: number | null;
  commonName: string;
  notBefore: number;
  notAfter: number;
  issuedAt: number;
  revokedAt: number | null;
  certPem: string;
}

export interface GuardRow {
  id: number;
  name: string;
  address: string;
  dnsNames: string[];
  createdAt: number;
  revokedAt: number | null;
  lastSeenAt: number | null;
  lastSeenFrom: string | null;
  lastVersion: string | null;
  /** In a pool of GPU hosts (migration 10): on its own, the router, or a member. */
  poolRole: PoolRole;
  /** A member's parallelism (its OLLAMA_NUM_PARALLEL); null for other roles. */
  parallel: number | null;
  /** A member taking no new requests (drain-guard). */
  draining: boolean;
  /** When the current drain began (ms; migration 11): the router echoes it, so a report is known to be about this drain. */
  drainedAt: number | null;
  /** What the router last reported of this member (JSON, core/wire.ts poolHostReportSchema), and when. */
  poolReport: string | null;
  poolReportedAt: number | null;
}

export type PoolRole = 'none' | 'router' | 'member';

const CERT_COLUMNS = `serial, role, peer_id AS peerId, guard_id AS guardId, common_name AS commonName, not_before AS notBefore,
  not_after AS notAfter, issued_at AS issuedAt, revoked_at AS revokedAt, cert_pem AS certPem`;
const GUARD_COLUMNS = `id, name, address, dns_names AS dnsNames, created_at AS createdAt, revoked_at AS revokedAt,
  last_seen_at AS lastSeenAt, last_seen_from AS lastSeenFrom, last_version AS lastVersion, pool_role AS poolRole, parallel,
  draining, drained_at AS drainedAt, pool_report AS poolReport, pool_reported_at AS poolReportedAt`;

/** Certificates the CA issued (public parts only) and the guards they belong to. */
export function certificateRepository(db: Db) {
  const s = {
    insert: db.prepare(`INSERT INTO certificates (serial, role, peer_id, guard_id, common_name, not_before, not_after, issued_at, cert_pem)
      VALUES (@serial, @role, @peerId, @guardId, @commonName, @notBefore, @notAfter, @issuedAt, @certPem)`),
    bySerial: db.prepare(`SELECT ${CERT_COLUMNS} FROM certificates WHERE serial = ?`),
    revokePeer: db.prepare(`UPDATE certificates SET revoked_at = @now WHERE peer_id = @peerId AND revoked_at IS NULL AND (@keep IS NULL OR serial <> @keep)`),
    revokeGuard: db.prepare(`UPDATE certificates SET revoked_at = @now WHERE guard_id = @guardId AND revoked_at IS NULL`),
    expiring: db.prepare(`SELECT ${CERT_COLUMNS} FROM certificates WHERE revoked_at IS NULL AND not_after BETWEEN ? AND ? ORDER BY not_after`),
    insertGuard: db.prepare(`INSERT INTO guards (name, address, dns_names, created_at, pool_role, parallel) VALUES (@name, @address, @dnsNames, @now, @poolRole, @parallel)`),
    guardByName: db.prepare(`SELECT ${GUARD_COLUMNS} FROM guards WHERE name = ?`),
    guardById: db.prepare(`SELECT ${GUARD_COLUMNS} FROM guards WHERE id = ?`),
    guards: db.prepare(`SELECT ${GUARD_COLUMNS} FROM guards ORDER BY name`),
    seen: db.prepare(`UPDATE guards SET last_seen_at = @now, last_seen_from = @from, last_version = coalesce(@version, last_version) WHERE id = @id`),
    removeGuard: db.prepare(`UPDATE guards SET revoked_at = @now WHERE id = @id`),
    setDraining: db.prepare(`UPDATE guards SET draining = @draining, drained_at = CASE WHEN @draining = 1 THEN @now END WHERE id = @id`),
    poolGuards: db.prepare(`SELECT name, address, pool_role AS poolRole, parallel, draining, drained_at AS drainedAt FROM guards
      WHERE revoked_at IS NULL AND pool_role <> 'none' ORDER BY name`),
    setParallel: db.prepare(`UPDATE guards SET parallel = @parallel WHERE id = @id`),
    report: db.prepare(`UPDATE guards SET pool_report = @report, pool_reported_at = @now WHERE name = @name AND pool_role = 'member' AND revoked_at IS NULL`),
    routerSerials: db.prepare(`SELECT g.name, c.serial FROM guards g JOIN certificates c ON c.guard_id = g.id
      WHERE g.pool_role = 'router' AND g.revoked_at IS NULL AND c.role = 'guard-client' AND c.revoked_at IS NULL ORDER BY g.name, c.serial`),
  };
  const guard = (r: (Omit<GuardRow, 'dnsNames' | 'draining'> & { dnsNames: string; draining: number }) | undefined): GuardRow | undefined =>
    r && { ...r, dnsNames: JSON.parse(r.dnsNames) as string[], draining: r.draining === 1 };
  return {
    insert(c: Omit<CertificateRow, 'revokedAt'>): void {
      s.insert.run(c);
    },
    bySerial: (serial: string) => s.bySerial.get(serial) as CertificateRow | undefined,
    /** Marks every certificate of a peer revoked, except `keep` (its new one after a rotation). */
    revokePeerCerts: (peerId: number, now: number, keep: string | null = null) => s.revokePeer.run({ peerId, now, keep }).changes,
    revokeGuardCerts: (guardId: number, now: number) => s.revokeGuard.run({ guardId, now }).changes,
    /** Live certificates whose validity ends within [from, to]. */
    expiring: (from: number, to: number) => s.expiring.all(from, to) as CertificateRow[],
    insertGuard: (g: { name: string; address: string; dnsNames: string[]; now: number; poolRole?: PoolRole; parallel?: number | null }) =>
      Number(s.insertGuard.run({ ...g, dnsNames: JSON.stringify(g.dnsNames), poolRole: g.poolRole ?? 'none', parallel: g.parallel ?? null }).lastInsertRowid),
    guardByName: (name: string) => guard(s.guardByName.get(name) as never),
    guardById: (id: number) => guard(s.guardById.get(id) as never),
    guards: () => (s.guards.all() as never[]).map((r) => guard(r)!),
    guardSeen: (id: number, now: number, from: string, version: string | null) => void s.seen.run({ id, now, from, version }),
    removeGuard: (id: number, now: number) => void s.removeGuard.run({ id, now }),
    setGuardDraining: (id: number, draining: boolean, now: number) => void s.setDraining.run({ id, draining: draining ? 1 : 0, now }),
    /** Active guards of the pool, only what the peer set needs (read on every long-poll wake). */
    poolGuards: () => (s.poolGuards.all() as (Pick<GuardRow, 'name' | 'address' | 'poolRole' | 'parallel' | 'drainedAt'> & { draining: number })[]).map((g) => ({ ...g, draining: g.draining === 1 })),
    setGuardParallel: (id: number, parallel: number) => void s.setParallel.run({ id, parallel }),
    /** Stores the router's report of one member (by name); false when no active member has that name. */
    savePoolReport: (name: string, report: string, now: number): boolean => s.report.run({ name, report, now }).changes > 0,
    /** The client certificates of active routers: the only ones a member serves. */
    routerSerials: () => s.routerSerials.all() as { name: string; serial: string }[],
  };
}

export type CertificateRepository = ReturnType<typeof certificateRepository>;
