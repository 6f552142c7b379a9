/**
 * wg-ollama's certificate authority: creates the CA, issues leaf certificates
 * for peers and for the guard/gateway TLS endpoints, and reads facts back out
 * of certificates.
 *
 * node-forge is used only to assemble and DER-encode certificates. Every RSA
 * operation — key generation and signing — is done by node:crypto (OpenSSL):
 * it is native, fast, and constant-time, where forge's JavaScript RSA is none
 * of those. Reading certificates back (certificateInfo) uses node:crypto too,
 * so what we report is what OpenSSL — and therefore the TLS stack — sees.
 */
import { X509Certificate, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { cnReadsAsHostname, identityDnsName, normalisePermitted, outsidePermitted, type PermittedNames } from '../core/ca-names.js';
import { WgoError, badInput } from '../errors.js';
import { nameConstraintsExtension, readNameConstraints } from './name-constraints.js';
import { randomSerialHex, signAndEncode, wholeSeconds } from './sign.js';
import { parseX509 } from './x509.js';

export { buildPkcs12, generatePassphrase } from './pkcs12.js';

export interface CaMaterial {
  /** The CA certificate, PEM. */
  certPem: string;
  /** The CA private key, PKCS#8 PEM (unencrypted: protecting it at rest is the caller's job). */
  keyPem: string;
}

/** What a leaf certificate is for; written into the subject as OU and decides extKeyUsage. */
export type CertRole = 'peer' | 'guard-server' | 'guard-client' | 'gateway-server';

export interface IssuedCert {
  certPem: string;
  /** PKCS#8 PEM, or '' when the caller supplied the public key. */
  keyPem: string;
  /** normaliseSerial() form: lowercase hex, no leading zeros. */
  serial: string;
  /** As written in the certificate (X.509 times have whole seconds). */
  notBefore: Date;
  notAfter: Date;
}

const ORGANIZATION = 'wg-ollama';
const CLOCK_SKEW_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
const ROLES: ReadonlySet<string> = new Set<CertRole>(['peer', 'guard-server', 'guard-client', 'gateway-server']);
const SERVER_ROLES: ReadonlySet<CertRole> = new Set<CertRole>(['guard-server', 'gateway-server']);

/**
 * A new self-signed CA: RSA 3072, SHA-256, CA:true pathlen:0, keyCertSign+cRLSign,
 * and with `permitted` a critical nameConstraints extension: the CA can then
 * sign only for those names (see core/ca-names). Valid for `days` (default
 * 3650) from 5 minutes before `now`.
 */
export function createCa(opts: { commonName: string; days?: number; now?: Date; permitted?: PermittedNames }): CaMaterial {
  const commonName = validateCommonName(opts.commonName);
  const constraints = opts.permitted === undefined ? [] : [nameConstraintsExtension(normalisePermitted(opts.permitted))];
  const days = opts.days ?? 3650;
  if (!Number.isInteger(days) || days < 1 || days > 36_500) {
    throw badInput(`CA validity must be a whole number of days between 1 and 36500, not ${String(days)}`);
  }
  const now = validDate(opts.now ?? new Date(), 'now');
  const notBefore = wholeSeconds(new Date(now.getTime() - CLOCK_SKEW_MS));
  const notAfter = wholeSeconds(new Date(notBefore.getTime() + days * DAY_MS));

  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  const name = distinguishedName(commonName);
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', critical: true, cA: true, pathLenConstraint: 0 },
    { name: 'keyUsage', critical: true, keyCertSign: true, cRLSign: true },
    { name: 'subjectKeyIdentifier' },
    ...constraints,
  ]);
  const certPem = signAndEncode(cert, privateKey, publicKey);
  return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

/**
 * Issues a leaf certificate signed by `ca`. Validates every input before doing
 * any work, and throws WgoError BAD_INPUT naming the rule broken — a name
 * outside the CA's name constraints included.
 *
 * A common name that OpenSSL would read as a host name ("bob.laptop") on a
 * certificate without DNS names gets one, `<cn>.wg-ollama.invalid`: OpenSSL
 * checks a leaf's CN against the CA's DNS constraints only when it has no DNS
 * subjectAltName, so the certificate verifies whatever the CN looks like.
 */
export function issueCertificate(
  ca: CaMaterial,
  req: {
    role: CertRole;
    commonName: string;
    ipAddresses?: string[];
    dnsNames?: string[];
    notAfter: Date;
    now?: Date;
    publicKeyPem?: string;
  },
): IssuedCert {
  if (!ROLES.has(req.role)) throw badInput(`unknown certificate role "${String(req.role)}"`);
  const commonName = validateCommonName(req.commonName);
  const ipAddresses = unique((req.ipAddresses ?? []).map(canonicalIp));
  const dnsNames = unique((req.dnsNames ?? []).map(canonicalDnsName));
  if (dnsNames.length === 0 && cnReadsAsHostname(commonName)) dnsNames.push(identityDnsName(commonName));
  if (SERVER_ROLES.has(req.role) && ipAddresses.length + dnsNames.length === 0) {
    throw badInput(`a ${req.role} certificate needs at least one IP address or DNS name`);
  }
  const now = validDate(req.now ?? new Date(), 'now');
  const requestedNotAfter = validDate(req.notAfter, 'notAfter');
  if (requestedNotAfter.getTime() <= now.getTime()) {
    throw badInput(`notAfter (${requestedNotAfter.toISOString()}) must be later than now (${now.toISOString()})`);
  }

  const { caCert, caKey, caX509 } = loadCa(ca);
  const permitted = readNameConstraints(caCert);
  const outside = permitted ? outsidePermitted(permitted, { ips: ipAddresses, dns: dnsNames }) : [];
  if (outside.length > 0) {
    throw badInput(
      `${outside.join(', ')} ${outside.length > 1 ? 'are' : 'is'} outside the CA's name constraints (it may sign for ${[...permitted!.ip, ...permitted!.dns].join(', ')}); ` +
        'names the gateway config implies (admin.hosts, guard.dnsNames, listen addresses) or lists in "ca": {"permit": [...]} are added by "wg-ollama reissue-ca"',
    );
  }
  const caNotAfter = new Date(caX509.validTo);
  if (caNotAfter.getTime() <= now.getTime()) {
    throw badInput(`the CA certificate expired at ${caNotAfter.toISOString()}; create a new CA`);
  }
  // Never outlive the CA: a chain is only as valid as its shortest-lived link.
  const notAfter = wholeSeconds(requestedNotAfter.getTime() > caNotAfter.getTime() ? caNotAfter : requestedNotAfter);
  const notBefore = wholeSeconds(new Date(now.getTime() - CLOCK_SKEW_MS));

  let subjectPublicKey: KeyObject;
  let keyPem = '';
  if (req.publicKeyPem !== undefined) {
    subjectPublicKey = loadSubjectPublicKey(req.publicKeyPem);
  } else {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    subjectPublicKey = pair.publicKey;
    keyPem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  }

  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(subjectPublicKey.export({ type: 'spki', format: 'pem' }).toString());
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject(distinguishedName(commonName, req.role));
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', critical: true, cA: false },
    { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true },
    SERVER_ROLES.has(req.role) ? { name: 'extKeyUsage', serverAuth: true } : { name: 'extKeyUsage', clientAuth: true },
    ...(ipAddresses.length + dnsNames.length > 0
      ? [
          {
            name: 'subjectAltName',
            altNames: [
              // type 7 = iPAddress (raw network-order bytes), type 2 = dNSName
              ...ipAddresses.map((ip) => ({ type: 7, value: ipBytes(ip).toString('binary') })),
              ...dnsNames.map((dns) => ({ type: 2, value: dns })),
            ],
          },
        ]
      : []),
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caKeyIdentifier(caCert) },
  ]);
  const certPem = signAndEncode(cert, caKey, caX509.publicKey);
  return { certPem, keyPem, serial: normaliseSerial(cert.serialNumber), notBefore, notAfter };
}

/**
 * One canonical form for serial numbers: lowercase hex, no leading zeros, no
 * colons ("0" for zero). Accepts forge's lowercase hex, Node's uppercase
 * getPeerCertificate().serialNumber and openssl's colon-separated form.
 */
export function normaliseSerial(hex: string): string {
  if (typeof hex !== 'string') throw badInput('a certificate serial number must be a string of hex digits');
  const digits = hex.trim().replaceAll(':', '');
  if (!/^[0-9a-fA-F]+$/.test(digits)) throw badInput(`"${hex}" is not a hexadecimal serial number`);
  return digits.toLowerCase().replace(/^0+(?=.)/, '');
}

/** Facts about a PEM certificate, as OpenSSL (node:crypto) reads them. */
export function certificateInfo(pem: string): {
  serial: string;
  notBefore: Date;
  notAfter: Date;
  commonName: string;
  issuer: string;
  ipAddresses: string[];
  dnsNames: string[];
  /** Node's format ("AB:CD:…"), the same as getPeerCertificate().fingerprint256. */
  fingerprint256: string;
} {
  const x509 = parseX509(pem, 'certificate');
  // toLegacyObject() gives the name entries decoded (no RFC 2253 escaping),
  // exactly as tlsSocket.getPeerCertificate() reports them.
  const legacy = x509.toLegacyObject();
  const ipAddresses: string[] = [];
  const dnsNames: string[] = [];
  for (const entry of splitSubjectAltName(x509.subjectAltName)) {
    if (entry.startsWith('IP Address:')) ipAddresses.push(canonicalIp(entry.slice('IP Address:'.length)));
    else if (entry.startsWith('DNS:')) dnsNames.push(entry.slice('DNS:'.length));
  }
  return {
    serial: normaliseSerial(x509.serialNumber),
    notBefore: new Date(x509.validFrom),
    notAfter: new Date(x509.validTo),
    commonName: firstValue(legacy.subject?.CN),
    issuer: firstValue(legacy.issuer?.CN),
    ipAddresses,
    dnsNames,
    fingerprint256: x509.fingerprint256,
  };
}

// ---------------------------------------------------------------------------

/** RFC 5280 ub-common-name is 64; printable ASCII keeps logs and file names sane. */
function validateCommonName(input: unknown): string {
  if (typeof input !== 'string' || input.length < 1 || input.length > 64) {
    throw badInput('a certificate common name must be 1–64 characters long');
  }
  if (!/^[\x20-\x7e]+$/.test(input)) {
    throw badInput('a certificate common name may contain only printable ASCII characters');
  }
  if (input.trim() !== input) throw badInput('a certificate common name may not start or end with a space');
  return input;
}

/** Checks with node:net, then returns the address in one canonical form (RFC 5952 for IPv6). */
function canonicalIp(input: unknown): string {
  if (typeof input !== 'string') throw badInput('an IP address must be a string');
  const family = isIP(input);
  if (family === 4) return input;
  // isIP accepts zone ids ("fe80::1%eth0"); a zone has no meaning in a certificate.
  if (family === 6 && !input.includes('%')) {
    // The WHATWG URL serializer produces the RFC 5952 form: lowercase, longest zero run compressed.
    return new URL(`http://[${input}]/`).hostname.slice(1, -1);
  }
  throw badInput(`"${input}" is not a valid IPv4 or IPv6 address`);
}

/** Network-order bytes of a canonicalIp() result. */
function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // canonicalIp output has no embedded IPv4 part, at most one "::", 1–4 hex digits per group.
  const [head = '', tail] = ip.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  const groups = [...headGroups, ...zeros, ...tailGroups];
  if (groups.length !== 8) throw new WgoError('INTERNAL', `cannot encode IPv6 address ${ip}`);
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A hostname (RFC 1123 labels, ≤ 253 characters, no wildcard, no trailing dot), lowercased. */
function canonicalDnsName(input: unknown): string {
  if (typeof input !== 'string') throw badInput('a DNS name must be a string');
  const name = input.toLowerCase();
  if (isIP(name) !== 0) throw badInput(`"${input}" is an IP address; pass it in ipAddresses, not dnsNames`);
  if (name.length < 1 || name.length > 253 || !name.split('.').every((label) => LABEL_RE.test(label))) {
    throw badInput(`"${input}" is not a valid DNS name (letters, digits and "-" in dot-separated labels of 1–63 characters)`);
  }
  return name;
}

function validDate(d: unknown, what: string): Date {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw badInput(`${what} must be a valid Date`);
  return d;
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

/** CN, O, OU as UTF8String (RFC 5280's recommendation; forge would default to PrintableString). */
function distinguishedName(commonName: string, role?: CertRole): forge.pki.CertificateField[] {
  // @types/node-forge types valueTagClass as asn1.Class; forge wants an asn1.Type here.
  const utf8 = forge.asn1.Type.UTF8 as unknown as forge.asn1.Class;
  const fields: forge.pki.CertificateField[] = [
    { shortName: 'CN', value: commonName, valueTagClass: utf8 },
    { shortName: 'O', value: ORGANIZATION, valueTagClass: utf8 },
  ];
  if (role !== undefined) fields.push({ shortName: 'OU', value: role, valueTagClass: utf8 });
  return fields;
}

/** The CA's certificate (forge and OpenSSL views) and key, checked to belong together. */
export function loadCa(ca: CaMaterial): { caCert: forge.pki.Certificate; caKey: KeyObject; caX509: X509Certificate } {
  if (typeof ca?.certPem !== 'string' || typeof ca.keyPem !== 'string') {
    throw badInput('the CA material needs certPem and keyPem');
  }
  const caX509 = parseX509(ca.certPem, 'CA certificate');
  let caKey: KeyObject;
  try {
    caKey = createPrivateKey(ca.keyPem);
  } catch (cause) {
    throw new WgoError('BAD_INPUT', 'the CA private key is not a valid PEM private key', { cause });
  }
  if (!caX509.checkPrivateKey(caKey)) throw badInput('the CA private key does not belong to the CA certificate');
  if (!caX509.ca) throw badInput('the CA certificate is not a CA (basicConstraints CA:FALSE)');
  let caCert: forge.pki.Certificate;
  try {
    caCert = forge.pki.certificateFromPem(ca.certPem);
  } catch (cause) {
    throw new WgoError('BAD_INPUT', 'the CA certificate cannot be read (it must be RSA)', { cause });
  }
  return { caCert, caKey, caX509 };
}

/** The CA's subjectKeyIdentifier as raw bytes, for the leaf's authorityKeyIdentifier. */
function caKeyIdentifier(caCert: forge.pki.Certificate): string {
  const ext = caCert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  if (ext?.subjectKeyIdentifier) return forge.util.hexToBytes(ext.subjectKeyIdentifier);
  return caCert.generateSubjectKeyIdentifier().getBytes();
}

function loadSubjectPublicKey(pem: unknown): KeyObject {
  let key: KeyObject;
  try {
    if (typeof pem !== 'string') throw new TypeError('not a string');
    key = createPublicKey(pem);
  } catch (cause) {
    throw new WgoError('BAD_INPUT', 'publicKeyPem is not a valid PEM public key', { cause });
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (key.asymmetricKeyType !== 'rsa' || bits < 2048) {
    throw badInput('publicKeyPem must be an RSA public key of at least 2048 bits');
  }
  return key;
}

/** Splits Node's subjectAltName string ("DNS:a, IP Address:1.2.3.4"); entries with odd characters come JSON-quoted. */
function splitSubjectAltName(san: string | undefined): string[] {
  if (!san) return [];
  return (san.match(/(?:[^",]|"(?:[^"\\]|\\.)*")+/g) ?? []).map((raw) => {
    const entry = raw.trim();
    const colon = entry.indexOf(':');
    const value = entry.slice(colon + 1);
    return value.startsWith('"') ? `${entry.slice(0, colon + 1)}${JSON.parse(value) as string}` : entry;
  });
}

function firstValue(v: string | string[] | undefined): string {
  return (Array.isArray(v) ? v[0] : v) ?? '';
}
