import { isIP } from 'node:net';
import type { Config } from '../config.js';
import { validatePeerName } from '../core/names.js';
import { auditRepository } from '../db/audit.js';
import { certificateRepository, type CertRole, type GuardRow } from '../db/certificates.js';
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
    add(input: { name: string; address: string; dnsNames?: string[] }, who: Actor): IssuedGuard {
      const name = validatePeerName(input.name, 'guard name');
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
        const id = certs.insertGuard({ name, address: input.address, dnsNames, now });
        const server = issue(ca, 'guard-server', id, name, [input.address], dnsNames, serverKey, now);
        const client = issue(ca, 'guard-client', id, `guard:${name}`, [input.address], [], clientKey, now);
        audit.record({ ...who, action: 'guard.add', target: name, details: { address: input.address, dnsNames, server: server.serial, client: client.serial } }, now);
        return { guard: certs.guardById(id)!, server, client, caCertificate: ca.certPem, syncUrl: syncUrl(config) };
      }).immediate();
    },

    list: (): GuardRow[] => certs.guards(),

    /** Revokes a guard's certificates: the sync API refuses it at once. Peers check the guard's server certificate against the CA only (there is no CRL), so stop the guard itself too. */
    remove(name: string, who: Actor): { guard: GuardRow; changed: boolean } {
      validatePeerName(name, 'guard name');
      return db.transaction(() => {
        const now = clock();
        const g = certs.guardByName(name);
        if (!g) throw new WgoError('NOT_FOUND', `no guard named "${name}"`);
        if (g.revokedAt !== null) return { guard: g, changed: false };
        certs.revokeGuardCerts(g.id, now);
        certs.removeGuard(g.id, now);
        audit.record({ ...who, action: 'guard.remove', target: name }, now);
        return { guard: certs.guardById(g.id)!, changed: true };
      }).immediate();
    },
  };
}

export type GuardService = ReturnType<typeof guardService>;
