/**
 * The CA and issued certificates, checked with node:crypto X509Certificate and
 * the openssl binary (never with node-forge, which builds them).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { WgoError } from '../../../src/errors.js';
import { expectWgoError } from '../../support/errors.js';
import {
  certificateInfo,
  createCa,
  issueCertificate,
  normaliseSerial,
  type CaMaterial,
  type CertRole,
  type IssuedCert,
} from '../../../src/pki/ca.js';

const MINUTE = 60 * 1000;
const DAY = 24 * 60 * MINUTE;
const NOW = new Date('2030-03-01T12:00:00.000Z');
const at = (base: Date, ms: number): Date => new Date(base.getTime() + ms);

let dir: string;
let ca: CaMaterial;
let caX509: X509Certificate;
let peer: IssuedCert;
/** One RSA public key for the tests that only care about the certificate, to skip key generation. */
let spkiPem: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-pki-'));
  ca = createCa({ commonName: 'wg-ollama CA', days: 3650, now: NOW });
  caX509 = new X509Certificate(ca.certPem);
  peer = issueCertificate(ca, {
    role: 'peer',
    commonName: 'alice',
    ipAddresses: ['10.66.0.2'],
    notAfter: at(NOW, 365 * DAY),
    now: NOW,
  });
  spkiPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

const badInputFrom = (fn: () => unknown): WgoError => expectWgoError(fn, 'BAD_INPUT');

describe('createCa', () => {
  test('is a self-signed RSA 3072 CA, CA:TRUE pathlen:0, certificate and CRL signing only', () => {
    expect(caX509.ca).toBe(true);
    expect(caX509.checkIssued(caX509)).toBe(true);
    expect(caX509.verify(caX509.publicKey)).toBe(true);
    expect(caX509.checkPrivateKey(createPrivateKey(ca.keyPem))).toBe(true);
    expect(caX509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(3072);
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(caX509.subject).toBe('CN=wg-ollama CA\nO=wg-ollama');

    const text = openssl(['x509', '-in', file('ca.pem', ca.certPem), '-noout', '-text']);
    expect(text).toContain('Signature Algorithm: sha256WithRSAEncryption');
    expect(text).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:TRUE, pathlen:0\n/);
    expect(text).toMatch(/X509v3 Key Usage: critical\n\s+Certificate Sign, CRL Sign\n/);
    expect(text).toContain('X509v3 Subject Key Identifier');
  });

  test('is valid for `days` from 5 minutes before now', () => {
    expect(new Date(caX509.validFrom)).toEqual(at(NOW, -5 * MINUTE));
    expect(new Date(caX509.validTo)).toEqual(at(NOW, -5 * MINUTE + 3650 * DAY));
  });

  test('rejects a bad common name or validity', () => {
    badInputFrom(() => createCa({ commonName: '' }));
    badInputFrom(() => createCa({ commonName: 'x'.repeat(65) }));
    badInputFrom(() => createCa({ commonName: 'wg-ollama CA', days: 0 }));
    badInputFrom(() => createCa({ commonName: 'wg-ollama CA', days: 1.5 }));
    badInputFrom(() => createCa({ commonName: 'wg-ollama CA', now: new Date(Number.NaN) }));
  });
});

describe('issueCertificate', () => {
  test('a peer certificate: subject, validity, key, and what X509Certificate sees', () => {
    const x = new X509Certificate(peer.certPem);
    expect(x.subject).toBe('CN=alice\nO=wg-ollama\nOU=peer');
    expect(x.issuer).toBe(caX509.subject);
    expect(x.ca).toBe(false);
    expect(x.checkIssued(caX509)).toBe(true);
    expect(x.verify(caX509.publicKey)).toBe(true);
    expect(x.checkIP('10.66.0.2')).toBe('10.66.0.2');
    expect(x.checkIP('10.66.0.3')).toBeUndefined();
    expect(x.subjectAltName).toBe('IP Address:10.66.0.2');
    expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // Node's name for extKeyUsage: clientAuth only

    const key = createPrivateKey(peer.keyPem);
    expect(peer.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(x.checkPrivateKey(key)).toBe(true);

    expect(peer.notBefore).toEqual(at(NOW, -5 * MINUTE));
    expect(peer.notAfter).toEqual(at(NOW, 365 * DAY));
    expect(new Date(x.validFrom)).toEqual(peer.notBefore);
    expect(new Date(x.validTo)).toEqual(peer.notAfter);
    expect(peer.serial).toBe(normaliseSerial(x.serialNumber));
  });

  test('openssl verifies the chain, and shows CA:FALSE, clientAuth, key identifiers, a ≥128-bit serial', () => {
    const caFile = file('ca.pem', ca.certPem);
    const leafFile = file('peer.pem', peer.certPem);
    // -attime: the certificates are valid in 2030 (NOW), not necessarily today.
    const attime = String(Math.floor(NOW.getTime() / 1000));
    expect(openssl(['verify', '-attime', attime, '-CAfile', caFile, leafFile]).trim()).toBe(`${leafFile}: OK`);
    expect(openssl(['verify', '-attime', attime, '-purpose', 'sslclient', '-CAfile', caFile, leafFile]).trim()).toBe(`${leafFile}: OK`);
    expect(() => openssl(['verify', '-attime', attime, '-purpose', 'sslserver', '-CAfile', caFile, leafFile])).toThrow(
      /unsuitable certificate purpose/,
    );

    const text = openssl(['x509', '-in', leafFile, '-noout', '-text']);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:FALSE\n/);
    expect(text).toMatch(/X509v3 Key Usage: critical\n\s+Digital Signature, Key Encipherment\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage: \n\s+TLS Web Client Authentication\n/);
    expect(text).toContain('Subject: CN = alice, O = wg-ollama, OU = peer');
    const caSki = /X509v3 Subject Key Identifier: \n\s+([0-9A-F:]+)\n/.exec(openssl(['x509', '-in', caFile, '-noout', '-text']))?.[1];
    expect(caSki).toBeDefined();
    expect(text).toMatch(new RegExp(`X509v3 Authority Key Identifier: \\n\\s+(keyid:)?${caSki}\\n`));
    expect(text).toMatch(/X509v3 Subject Key Identifier: \n\s+[0-9A-F:]+\n/);

    const serialLine = openssl(['x509', '-in', leafFile, '-noout', '-serial']).trim();
    const serial = BigInt(`0x${serialLine.replace(/^serial=/, '')}`);
    expect(serial >= 2n ** 128n).toBe(true);
    expect(serial < 2n ** 135n).toBe(true); // 17 bytes, first byte ≤ 0x7f: positive, no padding byte
  });

  test.each<[CertRole, string]>([
    ['peer', 'TLS Web Client Authentication'],
    ['guard-client', 'TLS Web Client Authentication'],
    ['guard-server', 'TLS Web Server Authentication'],
    ['gateway-server', 'TLS Web Server Authentication'],
  ])('role %s: OU and extKeyUsage %s', (role, eku) => {
    const cert = issueCertificate(ca, { role, commonName: 'x', dnsNames: ['x.test'], notAfter: at(NOW, DAY), now: NOW, publicKeyPem: spkiPem });
    const text = openssl(['x509', '-in', file(`${role}.pem`, cert.certPem), '-noout', '-text']);
    expect(text).toMatch(new RegExp(`X509v3 Extended Key Usage: \\n\\s+${eku}\\n`));
    expect(new X509Certificate(cert.certPem).subject).toBe(`CN=x\nO=wg-ollama\nOU=${role}`);
  });

  test('with publicKeyPem: the certificate carries that key and keyPem is empty', () => {
    const cert = issueCertificate(ca, { role: 'peer', commonName: 'bob', notAfter: at(NOW, DAY), now: NOW, publicKeyPem: spkiPem });
    expect(cert.keyPem).toBe('');
    expect(new X509Certificate(cert.certPem).publicKey.export({ type: 'spki', format: 'pem' })).toBe(spkiPem);
  });

  test('notAfter is clamped to the CA’s notAfter', () => {
    const cert = issueCertificate(ca, { role: 'peer', commonName: 'bob', notAfter: at(NOW, 20_000 * DAY), now: NOW, publicKeyPem: spkiPem });
    expect(cert.notAfter).toEqual(new Date(caX509.validTo));
    expect(new Date(new X509Certificate(cert.certPem).validTo)).toEqual(new Date(caX509.validTo));
  });

  test('IPv6 and DNS subject alternative names, canonicalised and deduplicated', () => {
    const cert = issueCertificate(ca, {
      role: 'guard-server',
      commonName: 'guard',
      ipAddresses: ['FD00:0:0::0001', 'fd00::1', '192.168.1.10'],
      dnsNames: ['Guard.Example.COM', 'localhost'],
      notAfter: at(NOW, DAY),
      now: NOW,
      publicKeyPem: spkiPem,
    });
    const x = new X509Certificate(cert.certPem);
    expect(x.checkIP('fd00::1')).toBe('fd00::1');
    expect(x.checkIP('192.168.1.10')).toBe('192.168.1.10');
    expect(x.checkHost('guard.example.com')).toBe('guard.example.com');
    expect(x.checkHost('localhost')).toBe('localhost');
    expect(x.subjectAltName).toBe('IP Address:FD00:0:0:0:0:0:0:1, IP Address:192.168.1.10, DNS:guard.example.com, DNS:localhost');

    const info = certificateInfo(cert.certPem);
    expect(info.ipAddresses).toEqual(['fd00::1', '192.168.1.10']);
    expect(info.dnsNames).toEqual(['guard.example.com', 'localhost']);
  });

  test('serials are unique, positive and at least 128 bits over 200 issues', () => {
    const serials = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const cert = issueCertificate(ca, { role: 'peer', commonName: `p${i}`, notAfter: at(NOW, DAY), now: NOW, publicKeyPem: spkiPem });
      expect(cert.serial).toBe(normaliseSerial(new X509Certificate(cert.certPem).serialNumber));
      const value = BigInt(`0x${cert.serial}`); // 0x01–0x7f, then 16 random bytes
      expect(value >= 2n ** 128n && value < 2n ** 135n).toBe(true);
      serials.add(cert.serial);
    }
    expect(serials.size).toBe(200);
  });

  describe('input validation: BAD_INPUT', () => {
    const ok = { role: 'peer' as CertRole, commonName: 'alice', notAfter: at(NOW, DAY), now: NOW };

    test.each<[string, Record<string, unknown>, RegExp]>([
      ['bad IPv4', { ipAddresses: ['10.66.0.256'] }, /not a valid IPv4 or IPv6/],
      ['IP with a prefix', { ipAddresses: ['10.66.0.2/32'] }, /not a valid IPv4 or IPv6/],
      ['bad IPv6', { ipAddresses: ['fd00:::1'] }, /not a valid IPv4 or IPv6/],
      ['IPv6 with a zone', { ipAddresses: ['fe80::1%eth0'] }, /not a valid IPv4 or IPv6/],
      ['DNS name with underscore', { dnsNames: ['bad_name.example'] }, /not a valid DNS name/],
      ['DNS label starting with -', { dnsNames: ['-x.example'] }, /not a valid DNS name/],
      ['DNS name with empty label', { dnsNames: ['a..example'] }, /not a valid DNS name/],
      ['DNS wildcard', { dnsNames: ['*.example.com'] }, /not a valid DNS name/],
      ['DNS label of 64 characters', { dnsNames: [`${'a'.repeat(64)}.example`] }, /not a valid DNS name/],
      ['IP in dnsNames', { dnsNames: ['10.0.0.1'] }, /pass it in ipAddresses/],
      ['notAfter in the past', { notAfter: at(NOW, -MINUTE) }, /must be later than now/],
      ['notAfter equal to now', { notAfter: NOW }, /must be later than now/],
      ['invalid notAfter', { notAfter: new Date('nope') }, /notAfter must be a valid Date/],
      ['empty common name', { commonName: '' }, /1–64 characters/],
      ['65-character common name', { commonName: 'a'.repeat(65) }, /1–64 characters/],
      ['common name with a newline', { commonName: 'a\nb' }, /printable ASCII/],
      ['unknown role', { role: 'admin' }, /unknown certificate role/],
      ['server role without SAN', { role: 'guard-server' }, /at least one IP address or DNS name/],
      ['gateway-server role without SAN', { role: 'gateway-server', ipAddresses: [], dnsNames: [] }, /at least one IP address/],
      ['non-RSA public key', { publicKeyPem: generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) }, /RSA public key/],
      ['garbage public key', { publicKeyPem: 'not a key' }, /not a valid PEM public key/],
    ])('%s', (_name, override, message) => {
      const e = badInputFrom(() => issueCertificate(ca, { ...ok, ...override } as Parameters<typeof issueCertificate>[1]));
      expect(e.message).toMatch(message);
    });

    test('a CA key that does not belong to the CA certificate', () => {
      expect(badInputFrom(() => issueCertificate({ certPem: ca.certPem, keyPem: peer.keyPem }, ok)).message).toMatch(/does not belong/);
    });

    test('an expired CA', () => {
      const later = at(NOW, 3651 * DAY);
      expect(badInputFrom(() => issueCertificate(ca, { ...ok, now: later, notAfter: at(later, DAY) })).message).toMatch(/CA certificate expired/);
    });

    test('a leaf certificate used as the CA', () => {
      expect(badInputFrom(() => issueCertificate({ certPem: peer.certPem, keyPem: peer.keyPem }, ok)).message).toMatch(/not a CA/);
    });
  });
});

describe('normaliseSerial', () => {
  test.each([
    ['00ab12', 'ab12'],
    ['AB12', 'ab12'],
    ['ab:12', 'ab12'],
    ['00:AB:12', 'ab12'],
    ['0000', '0'],
    ['0', '0'],
    ['7F', '7f'],
    ['  1a2b  ', '1a2b'],
  ])('%j → %j', (input, expected) => {
    expect(normaliseSerial(input)).toBe(expected);
  });

  test('Node’s uppercase form and forge’s lowercase form map to the same string', () => {
    const nodeForm = new X509Certificate(peer.certPem).serialNumber;
    expect(nodeForm).toMatch(/^[0-9A-F]+$/);
    expect(normaliseSerial(nodeForm)).toBe(normaliseSerial(nodeForm.toLowerCase()));
    expect(normaliseSerial(nodeForm)).toBe(peer.serial);
  });

  test.each(['', ':', 'xyz', '12 34', '0x12', '-12'])('rejects %j', (input) => {
    badInputFrom(() => normaliseSerial(input));
  });
});

describe('certificateInfo', () => {
  test('reports what is in the certificate', () => {
    const x = new X509Certificate(peer.certPem);
    expect(certificateInfo(peer.certPem)).toEqual({
      serial: peer.serial,
      notBefore: peer.notBefore,
      notAfter: peer.notAfter,
      commonName: 'alice',
      issuer: 'wg-ollama CA',
      ipAddresses: ['10.66.0.2'],
      dnsNames: [],
      fingerprint256: x.fingerprint256,
    });
    expect(x.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  test('a common name with characters OpenSSL would escape comes back verbatim', () => {
    const cert = issueCertificate(ca, { role: 'peer', commonName: 'Ann, "A+B" <ann@x>', notAfter: at(NOW, DAY), now: NOW, publicKeyPem: spkiPem });
    expect(certificateInfo(cert.certPem).commonName).toBe('Ann, "A+B" <ann@x>');
  });

  test('rejects something that is not a certificate', () => {
    badInputFrom(() => certificateInfo('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'));
    badInputFrom(() => certificateInfo(ca.keyPem));
  });
});
