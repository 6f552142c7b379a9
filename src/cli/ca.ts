import type { Config } from '../config.js';
import type { PermittedNames } from '../core/ca-names.js';
import { caReissueService } from '../gateway/ca-reissue.js';
import { caStore } from '../gateway/ca-store.js';
import { openDatabase } from '../db/open.js';
import type { Actor } from '../gateway/peer-service.js';
import { emit, escapeControl, type Io } from './output.js';

const list = (p: PermittedNames): string => [...p.ip, ...p.dns.map((d) => `DNS:${d}`), ...p.email.map((e) => `email:${e}`)].join(', ');

/**
 * `wg-ollama reissue-ca [--dry-run]`: the CA certificate re-issued over the
 * same key and subject with name constraints (config names plus the names of
 * every live certificate). Every certificate issued so far keeps verifying.
 */
export function reissueCaVerb(config: Config, o: { dryRun?: boolean; json?: boolean }, io: Io, who: Actor): void {
  const db = openDatabase(config.paths.db);
  try {
    const service = caReissueService({ db, config, ca: caStore(config.paths) });
    const r = o.dryRun ? { ...service.plan(), dryRun: true } : { ...service.reissue(who), dryRun: false };
    const data = { caCertificate: config.paths.caCert, ...r };
    emit(io, o.json, data, (d) => {
      const lines = [
        d.dryRun
          ? d.changes ? `would re-issue ${d.caCertificate}` : `${d.caCertificate} already permits exactly these names; nothing to do`
          : d.changes ? `re-issued ${d.caCertificate} (same key and subject; SHA-256 ${'fingerprint256' in d ? d.fingerprint256 : ''})` : `${d.caCertificate} already permits exactly these names; nothing changed`,
        `before: ${d.current ? list(d.current) : 'no name constraints (any name)'}`,
        `permits: ${list(d.permitted)}`,
      ];
      if (d.keptForCertificates.length) lines.push(`kept for existing certificates: ${d.keptForCertificates.join(', ')}`);
      if (d.legacyCommonNames.length) {
        lines.push(`permitted only for older certificates whose common name reads as a host name: ${d.legacyCommonNames.join(', ')} (rotate those peers or re-add those guards, then run reissue-ca again to drop them)`);
      }
      if (!d.dryRun && d.changes) {
        lines.push('next: copy ca.crt to every guard (ca.crt in its config directory; restart the guard) and re-import it on every device that trusts it; new peer configs carry it already');
      }
      return lines.map((l) => escapeControl(l)).join('\n') + '\n';
    });
  } finally {
    db.close();
  }
}
