/**
 * A new certificate for an existing CA: the same key, subject and validity,
 * with name constraints. Certificates the old one signed verify under the new
 * one (same issuer name, same key identifier, same key), so a deployment
 * gains constraints without re-issuing a single peer or guard certificate.
 */
import forge from 'node-forge';
import { normalisePermitted, type PermittedNames } from '../core/ca-names.js';
import { WgoError } from '../errors.js';
import { loadCa, type CaMaterial } from './ca.js';
import { NAME_CONSTRAINTS_OID, nameConstraintsExtension, readNameConstraints } from './name-constraints.js';
import { randomSerialHex, signAndEncode } from './sign.js';

/**
 * The CA certificate re-issued over the same key and subject with exactly the
 * given permitted names: every other extension is copied as it is, the
 * validity stays, and only the serial number (a new random one, as two
 * certificates from one issuer must never share one) and the constraints change.
 */
export function reissueCa(ca: CaMaterial, permitted: PermittedNames): string {
  const ext = nameConstraintsExtension(normalisePermitted(permitted));
  const { caCert, caKey, caX509 } = loadCa(ca);
  if (caX509.subject !== caX509.issuer || !caX509.verify(caX509.publicKey)) {
    throw new WgoError('BAD_INPUT', 'the CA certificate is not self-signed; only a root CA can be re-issued here');
  }
  const cert = forge.pki.createCertificate();
  cert.publicKey = caCert.publicKey;
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = caCert.validity.notBefore;
  cert.validity.notAfter = caCert.validity.notAfter;
  cert.setSubject(caCert.subject.attributes);
  cert.setIssuer(caCert.issuer.attributes);
  const kept = (caCert.extensions as { id: string; critical?: boolean; value: string }[])
    .filter((e) => e.id !== NAME_CONSTRAINTS_OID)
    .map((e) => ({ id: e.id, critical: e.critical === true, value: e.value }));
  cert.setExtensions([...kept, ext]);
  return signAndEncode(cert, caKey, caX509.publicKey);
}

/** The CA certificate's permitted names, or null when it has no name constraints (it can sign for any name). */
export function caNameConstraints(certPem: string): (PermittedNames & { other: number }) | null {
  let cert: forge.pki.Certificate;
  try {
    cert = forge.pki.certificateFromPem(certPem);
  } catch (cause) {
    throw new WgoError('BAD_INPUT', 'the CA certificate cannot be read (it must be RSA)', { cause });
  }
  return readNameConstraints(cert);
}
