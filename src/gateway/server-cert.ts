import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { certificateRepository, type CertRole } from '../db/certificates.js';
import { certificateInfo, issueCertificate } from '../pki/ca.js';
import { ensurePrivateDir, writeSecretFile } from '../system/files.js';
import { generateLeafKey } from './ca-store.js';
import type { GatewayContext } from './context.js';

/** Server certificates the gateway makes for itself are renewed this long before they expire. */
const RENEW_BEFORE_MS = 30 * 86_400_000;
const SERVER_CERT_MS = 825 * 86_400_000;

/**
 * A server certificate of the gateway's own (sync API, single-box guard, admin
 * UI) in <state>/tls: reused while it is from the current CA, names the same
 * addresses and is not close to expiry; otherwise issued afresh.
 */
export function ensureServerCert(ctx: GatewayContext, file: string, role: CertRole, commonName: string, ips: string[], dns: string[]): { cert: string; key: string } {
  const { ca } = ctx.ca.ensure();
  ensurePrivateDir(ctx.config.paths.tlsDir);
  const certFile = join(ctx.config.paths.tlsDir, `${file}.crt`);
  const keyFile = join(ctx.config.paths.tlsDir, `${file}.key`);
  const now = Date.now();
  if (existsSync(certFile) && existsSync(keyFile)) {
    const cert = readFileSync(certFile, 'utf8');
    const info = certificateInfo(cert);
    const same = (a: string[], b: string[]): boolean => a.length === b.length && a.every((x) => b.includes(x));
    const key = readFileSync(keyFile, 'utf8');
    const x = new X509Certificate(cert);
    if (x.verify(new X509Certificate(ca.certPem).publicKey) && x.checkPrivateKey(createPrivateKey(key)) && same(info.ipAddresses, ips) && same(info.dnsNames, dns) && info.notAfter.getTime() - now > RENEW_BEFORE_MS) {
      return { cert, key };
    }
  }
  const key = generateLeafKey();
  const issued = issueCertificate(ca, { role, commonName, ipAddresses: ips, dnsNames: dns, notAfter: new Date(now + SERVER_CERT_MS), publicKeyPem: key.publicKeyPem });
  certificateRepository(ctx.db).insert({
    serial: issued.serial, role, peerId: null, guardId: null, commonName, notBefore: issued.notBefore.getTime(),
    notAfter: issued.notAfter.getTime(), issuedAt: now, certPem: issued.certPem,
  });
  writeSecretFile(keyFile, key.keyPem);
  writeSecretFile(certFile, issued.certPem);
  return { cert: issued.certPem, key: key.keyPem };
}
