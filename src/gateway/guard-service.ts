import { isIP } from 'node:net';
import type { Config } from '../config.js';
import { validatePeerName } from '../core/names.js';
import { auditRepository } from '../db/audit.js';
import { certificateRepository, type CertRole, type GuardRow, type PoolRole } from '../db/certificates.js';
import { MAX_POOL_MEMBERS, poolHostReportSchema, type PoolHostReport, type PoolReport } from '../core/wire.js';
import type { Db } from '../db/open.js';
import { WgoError, badInput } from '../errors.js';
import { issueCertificate, type CaMaterial } from '../pki/ca.js';
import { generateLeafKey, type CaStore } from './ca-store.js';
import type { Actor } from './peer-service.js';

/** What a GPU host needs to run a guard; the keys exist only in this value. */
export interface IssuedGuard {
  guard: GuardRow;
  server: { certPem: string; keyPem: string; serial: string };
  client: { certPem: string; keyPem: string; serial: string };
  caCertificate: string;
  syncUrl: string | null;
}

/** A member's parallelism when add-guard is not told: Ollama's OLLAMA_NUM_PARALLEL on a GPU with room for it. */
export const DEFAULT_PARALLEL = 4;
export const MAX_PARALLEL = 256;
/** A router reports every 2 s (guard/main.ts); remove-guard trusts a report no older than this. */
export const POOL_REPORT_FRESH_MS = 15_000;
/** The router reports at least every 10 s: a report older than this says the router has stopped (list-guards, status, the admin UI mark it). */
export const POOL_REPORT_STALE_MS = 30_000;

/** A member as the router last reported it, and how old the report is; null: never, or unreadable. */
export function memberReport(g: GuardRow, now: number): { report: PoolHostReport; ageMs: number } | null {
  if (g.poolReport === null || g.poolReportedAt === null) return null;
  try {
    const r = poolHostReportSchema.safeParse(JSON.parse(g.poolReport));
    return r.success ? { report: r.data, ageMs: now - g.poolReportedAt } : null;
  } catch {
    return null;
  }
}

/** Guard certificates live as long as the CA allows, up to ten years; they are revoked by remove-guard. */
const GUARD_CERT_MS = 3650 * 86_400_000;

export function syncUrl(config: Config): string | null {
  if (!config.sync) return null;
  return config.sync.url ?? `https://${config.sync.listen}`;
}

/** Guards (GPU hosts) and their certificates: a server certificate for peers, a client one for the sync API. */
export function guardService(deps: { db: Db; config: Config; ca: CaStore; clock?: () => number }) {
  const { db, config } = deps;
  const clock = deps.clock ?? Date.now;
  const certs = certificateRepository(db);
  const audit = auditRepository(db);

  const issue = (ca: CaMaterial, role: CertRole, guardId: number, commonName: string, ips: string[], dns: string[], key: { publicKeyPem: string; keyPem: string }, now: number) => {
    const c = issueCertificate(ca, { role, commonName, ipAddresses: ips, dnsNames: dns, notAfter: new Date(now + GUARD_CERT_MS), now: new Date(now), publicKeyPem: key.publicKeyPem });
    certs.insert({ serial: c.serial, role, peerId: null, guardId, commonName, notBefore: c.notBefore.getTime(), notAfter: c.notAfter.getTime(), issuedAt: now, certPem: c.certPem });
    return { certPem: c.certPem, keyPem: key.keyPem, serial: c.serial };
  };

  return {
    add(input: { name: string; address: string; dnsNames?: string[]; poolRole?: PoolRole; parallel?: number }, who: Actor): IssuedGuard {
      const name = validatePeerName(input.name, 'guard name');
      const poolRole = input.poolRole ?? 'none';
      if (input.parallel !== undefined && poolRole !== 'member') throw badInput('--parallel is for a pool member (add it with --member)');
      const parallel = poolRole === 'member' ? checkParallel(input.parallel ?? DEFAULT_PARALLEL) : null;
      if (name === 'local') throw badInput('guard name "local" is reserved for the guard inside serve (single-box mode)');
      if (isIP(input.address) === 0) throw badInput(`--address "${input.address}" is not an IP address`);
      const dnsNames = input.dnsNames ?? [];
      for (const d of dnsNames) {
        if (!/^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(d)) throw badInput(`--dns "${d}" is not a DNS name`);
      }
      const serverKey = generateLeafKey();
      const clientKey = generateLeafKey();
      const { ca } = deps.ca.ensure();
      return db.transaction(() => {
        const now = clock();
        if (certs.guardByName(name)) throw new WgoError('CONFLICT', `a guard named "${name}" already exists (guard names are never reused)`);
        if (poolRole === 'member' && certs.poolGuards().filter((g) => g.poolRole === 'member').length >= MAX_POOL_MEMBERS) {
          throw new WgoError('CONFLICT', `the pool has ${MAX_POOL_MEMBERS} members, the most it takes: remove one first`);
        }
        if (poolRole === 'router') {
          const other = certs.guards().find((g) => g.revokedAt === null && g.poolRole === 'router');
          // Per-peer limits are exact because they live in one process: one router per gateway.
          if (other) throw new WgoError('CONFLICT', `guard ${other.name} is already the pool's router: a gateway has one router (remove-guard ${other.name} first)`);
        }
        const id = certs.insertGuard({ name, address: input.address, dnsNames, now, poolRole, parallel });
        const server = issue(ca, 'guard-server', id, name, [input.address], dnsNames, serverKey, now);
        const client = issue(ca, 'guard-client', id, `guard:${name}`, [input.address], [], clientKey, now);
        audit.record({ ...who, action: 'guard.add', target: name, details: { address: input.address, dnsNames, server: server.serial, client: client.serial, ...(poolRole !== 'none' ? { pool: poolRole } : {}), ...(parallel !== null ? { parallel } : {}) } }, now);
        return { guard: certs.guardById(id)!, server, client, caCertificate: ca.certPem, syncUrl: syncUrl(config) };
      }).immediate();
    },

    list: (): GuardRow[] => certs.guards(),

    /**
     * Revokes a guard's certificates: the sync API refuses it at once. Peers check the guard's server
     * certificate against the CA only (there is no CRL), so stop the guard itself too. A pool member
     * is removed only once drained: draining, and the router's last report (fresh) shows it
     * running nothing; `force` skips that check.
     */
    remove(name: string, who: Actor, o: { force?: boolean } = {}): { guard: GuardRow; changed: boolean } {
      validatePeerName(name, 'guard name');
      return db.transaction(() => {
        const now = clock();
        const g = certs.guardByName(name);
        if (!g) throw new WgoError('NOT_FOUND', `no guard named "${name}"`);
        if (g.revokedAt !== null) return { guard: g, changed: false };
        if (g.poolRole === 'member' && !o.force) {
          if (!g.draining) throw new WgoError('CONFLICT', `guard ${name} is a pool member taking requests: run drain-guard ${name} first, wait until list-guards shows 0 in flight, then remove it (or --force to cut what it runs)`);
          const r = memberReport(g, now);
          // About this drain: the router echoes the drain's stamp (an undrain and a new drain since make an older "idle" report worthless).
          if (!r || r.ageMs > POOL_REPORT_FRESH_MS || !r.report.draining || r.report.drainedAt !== g.drainedAt) {
            throw new WgoError('CONFLICT', `guard ${name} is draining, but the router has not reported since the drain (${r ? `last report ${Math.round(r.ageMs / 1000)} s ago${r.report.drainedAt !== g.drainedAt ? ', about an earlier state' : ''}` : 'no report'}), so what it still runs is unknown: wait a few seconds, or --force`);
          }
          if (r.report.inFlight > 0) throw new WgoError('CONFLICT', `guard ${name} is draining but still runs ${r.report.inFlight} request(s): wait until list-guards shows 0 in flight, or --force to cut them`);
        }
        certs.revokeGuardCerts(g.id, now);
        certs.removeGuard(g.id, now);
        audit.record({ ...who, action: 'guard.remove', target: name, ...(o.force && g.poolRole === 'member' ? { details: { force: true } } : {}) }, now);
        return { guard: certs.guardById(g.id)!, changed: true };
      }).immediate();
    },

    /** drain-guard / undrain-guard: a draining member takes no new requests; the ones it runs finish. */
    setDraining(name: string, draining: boolean, who: Actor): { guard: GuardRow; changed: boolean } {
      validatePeerName(name, 'guard name');
      return db.transaction(() => {
        const now = clock();
        const g = activeMember(name);
        if (g.draining === draining) return { guard: g, changed: false };
        certs.setGuardDraining(g.id, draining, now);
        audit.record({ ...who, action: draining ? 'guard.drain' : 'guard.undrain', target: name }, now);
        return { guard: certs.guardById(g.id)!, changed: true };
      }).immediate();
    },

    /** set-guard NAME --parallel N: how many requests the router sends the member at once. */
    setParallel(name: string, parallel: number, who: Actor): { guard: GuardRow; changed: boolean } {
      validatePeerName(name, 'guard name');
      const n = checkParallel(parallel);
      return db.transaction(() => {
        const now = clock();
        const g = activeMember(name);
        if (g.parallel === n) return { guard: g, changed: false };
        certs.setGuardParallel(g.id, n);
        audit.record({ ...who, action: 'guard.parallel', target: name, details: { from: g.parallel, to: n } }, now);
        return { guard: certs.guardById(g.id)!, changed: true };
      }).immediate();
    },

    /** POST /v1/pool from the router: what it sees of each member, kept on the member's row. Names that are not active members are skipped. */
    report(router: GuardRow, r: PoolReport): { stored: number } {
      if (router.poolRole !== 'router') throw new WgoError('FORBIDDEN', `guard ${router.name} is not the pool's router`);
      return db.transaction(() => {
        const now = clock();
        let stored = 0;
        for (const h of r.hosts) if (certs.savePoolReport(h.name, JSON.stringify(h), now)) stored++;
        return { stored };
      })();
    },
  };

  function activeMember(name: string): GuardRow {
    const g = certs.guardByName(name);
    if (!g || g.revokedAt !== null) throw new WgoError('NOT_FOUND', `no guard named "${name}"`);
    if (g.poolRole !== 'member') throw badInput(`guard ${name} is not a pool member (add GPU hosts with add-guard --member)`);
    return g;
  }
}

function checkParallel(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_PARALLEL) throw badInput(`--parallel must be a whole number from 1 to ${MAX_PARALLEL} (the host's OLLAMA_NUM_PARALLEL)`);
  return n;
}

export type GuardService = ReturnType<typeof guardService>;
