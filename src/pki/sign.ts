/**
 * Signing a certificate that node-forge assembled: the RSA work is done by
 * node:crypto (OpenSSL), and the result is checked with OpenSSL.
 */
import { randomBytes, randomInt, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { WgoError } from '../errors.js';
import { parseX509 } from './x509.js';

/** X.509 times have whole seconds; truncate so what we return is what the certificate says. */
export function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

/** 17 bytes: a first byte 0x01–0x7f (positive, no leading zero byte) and 128 random bits. */
export function randomSerialHex(): string {
  return Buffer.concat([Buffer.from([randomInt(1, 0x80)]), randomBytes(16)]).toString('hex');
}

// getTBSCertificate is public in node-forge but missing from @types/node-forge.
const getTBSCertificate = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 })
  .getTBSCertificate;

/**
 * Signs the certificate with node:crypto (sha256WithRSAEncryption) — the same
 * steps as forge's cert.sign(), minus forge's JavaScript RSA — and checks the
 * result with OpenSSL before handing it out.
 */
export function signAndEncode(cert: forge.pki.Certificate, signingKey: KeyObject, verifyKey: KeyObject): string {
  const oid = forge.pki.oids['sha256WithRSAEncryption'];
  if (oid === undefined) throw new WgoError('INTERNAL', 'node-forge does not know sha256WithRSAEncryption');
  cert.signatureOid = oid;
  cert.siginfo.algorithmOid = oid;
  cert.tbsCertificate = getTBSCertificate(cert);
  const tbs = Buffer.from(forge.asn1.toDer(cert.tbsCertificate).getBytes(), 'binary');
  cert.signature = sign('sha256', tbs, signingKey).toString('binary');
  const pem = forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n');
  if (!parseX509(pem, 'new certificate').verify(verifyKey)) {
    throw new WgoError('INTERNAL', 'the new certificate does not verify with the CA key');
  }
  return pem;
}
