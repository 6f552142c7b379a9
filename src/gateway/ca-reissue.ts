import { X509Certificate } from 'node:crypto';
import type { Config } from '../config.js';
import { permittedForConfig, uncoveredSubtrees, widenForLeaves, type LeafNames, type PermittedNames } from '../core/ca-names.js';
import { auditRepository } from '../db/audit.js';
import { certificateRepository } from '../db/certificates.js';
import type { Db } from '../db/open.js';
import { WgoError } from '../errors.js';
import { certificateInfo } from '../pki/ca.js';
import { caNameConstraints, reissueCa } from '../pki/ca-reissue.js';
import type { CaStore } from './ca-store.js';
import type { Actor } from './peer-service.js';

export interface ReissuePlan {
  /** What the CA certificate permits now; null: no name constraints, it can sign for any name. */
  current: PermittedNames | null;
  /** What the re-issued certificate permits. */
  permitted: PermittedNames;
  /** Addresses and DNS names of live certificates outside the config's names, permitted so they keep verifying. */
  keptForCertificates: string[];
  /** Host-name-like common names of older certificates without a DNS name (see core/ca-names widenForLeaves). */
  legacyCommonNames: string[];
  /** Whether the certificate would change (false: it already permits exactly this). */
  changes: boolean;
}

const same = (a: PermittedNames, b: PermittedNames & { other?: number }): boolean =>
  (b.other ?? 0) === 0 && (['ip', 'dns', 'email'] as const).every((f) => a[f].length === b[f].length && a[f].every((x) => b[f].includes(x)));

/**
 * `wg-ollama reissue-ca`: the CA certificate re-issued over the same key and
 * subject, permitting what the config implies plus every name of a live
 * (unrevoked, unexpired) certificate this CA signed, so nothing that works
 * today stops working. Does nothing when the CA already permits exactly that.
 */
export function caReissueService(deps: { db: Db; config: Config; ca: CaStore; clock?: () => number }) {
  const clock = deps.clock ?? Date.now;

  const plan = (): ReissuePlan => {
    const ca = deps.ca.load();
    if (!ca) throw new WgoError('NOT_INITIALIZED', `there is no CA at ${deps.config.paths.caKey}: run "wg-ollama init" first`);
    const caKey = new X509Certificate(ca.certPem).publicKey;
    const leaves: LeafNames[] = certificateRepository(deps.db)
      .expiring(clock(), Number.MAX_SAFE_INTEGER)
      .filter((row) => new X509Certificate(row.certPem).verify(caKey))
      .map((row) => certificateInfo(row.certPem));
    const current = caNameConstraints(ca.certPem);
    const widened = widenForLeaves(permittedForConfig(deps.config), leaves);
    return {
      current: current && { ip: current.ip, dns: current.dns, email: current.email },
      permitted: widened.permitted,
      keptForCertificates: widened.added,
      legacyCommonNames: widened.legacy,
      changes: current === null || !same(widened.permitted, current),
    };
  };

  return {
    plan,
    /** Re-issues (when anything changes) and records it in the admin audit log. */
    reissue(who: Actor): ReissuePlan & { fingerprint256: string; previousFingerprint256: string } {
      const p = plan();
      const before = deps.ca.load()!;
      const previousFingerprint256 = new X509Certificate(before.certPem).fingerprint256;
      if (!p.changes) return { ...p, fingerprint256: previousFingerprint256, previousFingerprint256 };
      const after = deps.ca.replaceCertificate(reissueCa(before, p.permitted));
      const fingerprint256 = new X509Certificate(after.certPem).fingerprint256;
      auditRepository(deps.db).record({
        ...who, action: 'ca.reissue', target: 'ca',
        details: { previousFingerprint256, fingerprint256, permitted: p.permitted, keptForCertificates: p.keptForCertificates, legacyCommonNames: p.legacyCommonNames },
      }, clock());
      return { ...p, fingerprint256, previousFingerprint256 };
    },
  };
}

/**
 * At serve start: a CA with name constraints that do not cover what the
 * config now names (an admin.hosts entry, guard.dnsNames, ca.permit, a new
 * listen address) is re-issued to cover it, as reissue-ca would, so editing
 * the config and restarting keeps working. Devices that imported the older
 * ca.crt refuse certificates for the new names until they re-import it. A CA
 * without constraints is left alone: adding them is the explicit reissue-ca.
 */
export function coverConfigNames(deps: { db: Db; config: Config; ca: CaStore; clock?: () => number }, who: Actor): { unconstrained: boolean; reissued: string[] } {
  const ca = deps.ca.ensure().ca;
  const nc = caNameConstraints(ca.certPem);
  if (!nc) return { unconstrained: true, reissued: [] };
  const missing = uncoveredSubtrees(nc, permittedForConfig(deps.config));
  if (missing.length === 0) return { unconstrained: false, reissued: [] };
  caReissueService(deps).reissue(who);
  return { unconstrained: false, reissued: missing };
}

/** For doctor: null when the CA is fine, else why not (no constraints, or config names it cannot sign for). */
export function caConstraintProblem(config: Config, caCertPem: string): string | null {
  const nc = caNameConstraints(caCertPem);
  if (!nc) return 'the CA has no name constraints: whoever gets ca.key can sign for any web site on the devices that trust ca.crt; run "wg-ollama reissue-ca"';
  const missing = uncoveredSubtrees(nc, permittedForConfig(config));
  if (missing.length > 0) return `the config names ${missing.join(', ')}, which the CA may not sign for; run "wg-ollama reissue-ca"`;
  return null;
}
