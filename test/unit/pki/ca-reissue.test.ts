/**
 * Re-issuing an existing (unconstrained) CA certificate over the same key and
 * subject with name constraints: certificates it signed before keep verifying
 * (openssl verify), a certificate for any other name stops verifying, and
 * nothing else about the CA certificate changes.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { widenForLeaves, type PermittedNames } from '../../../src/core/ca-names.js';
import { certificateInfo, createCa, issueCertificate, type CaMaterial, type IssuedCert } from '../../../src/pki/ca.js';
import { caNameConstraints, reissueCa } from '../../../src/pki/ca-reissue.js';
import { expectWgoError } from '../../support/errors.js';

const DAY = 86_400_000;
const inDays = (n: number): Date => new Date(Date.now() + n * DAY);
const CONFIG_NAMES: PermittedNames = { ip: ['10.66.0.0/24', '192.168.50.10/32', '127.0.0.1/32'], dns: ['localhost', 'wg-ollama.invalid'], email: ['wg-ollama.invalid'] };

let dir: string;
let old: CaMaterial;
let oldFile: string;
let leaves: { name: string; pem: string; purpose: 'sslclient' | 'sslserver' }[];
let reissued: string;
let newFile: string;
let legacy: string[];

let n = 0;
function file(name: string, content: string): string {
  const path = join(dir, `${n++}-${name}`);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}
function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function verify(leafPem: string, caFile: string, purpose?: string): string {
  try {
    openssl(['verify', ...(purpose ? ['-purpose', purpose] : []), '-CAfile', caFile, file('leaf.pem', leafPem)]);
    return 'OK';
  } catch (e) {
    const out = `${(e as { stdout?: string }).stdout ?? ''}${(e as { stderr?: string }).stderr ?? ''}`;
    return /error \d+ at \d+ depth lookup: (.*)/.exec(out)?.[1] ?? out;
  }
}
/** A leaf as an older wg-ollama made it (no wg-ollama.invalid name), or as anyone with ca.key could: signed by openssl x509 -req. */
function mint(ca: CaMaterial, caFile: string, subject: string, san: string): string {
  const key = join(dir, `${n++}.key`);
  const csr = join(dir, `${n++}.csr`);
  const out = join(dir, `${n++}.pem`);
  execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key], { stdio: 'ignore' });
  execFileSync('openssl', ['req', '-new', '-key', key, '-subj', subject, '-addext', `subjectAltName=${san}`, '-addext', 'extendedKeyUsage=clientAuth', '-out', csr], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', file('ca.key', ca.keyPem), '-days', '30', '-copy_extensions', 'copy', '-out', out], { stdio: 'ignore' });
  return openssl(['x509', '-in', out]);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-reissue-'));
  old = createCa({ commonName: 'wg-ollama CA' });
  oldFile = file('old-ca.pem', old.certPem);
  const issue = (role: 'peer' | 'guard-server' | 'guard-client' | 'gateway-server', cn: string, ips: string[], dns: string[] = []): IssuedCert =>
    issueCertificate(old, { role, commonName: cn, ipAddresses: ips, dnsNames: dns, notAfter: inDays(30) });
  leaves = [
    { name: 'peer alice', pem: issue('peer', 'alice', ['10.66.0.2']).certPem, purpose: 'sslclient' },
    { name: 'peer bob.laptop, as older releases made it', pem: mint(old, oldFile, '/CN=bob.laptop/O=wg-ollama/OU=peer', 'IP:10.66.0.3'), purpose: 'sslclient' },
    { name: 'guard on an address the config does not name', pem: issue('guard-server', 'gpu2', ['192.168.77.5'], ['gpu2.lab.example']).certPem, purpose: 'sslserver' },
    { name: 'its sync client certificate', pem: issue('guard-client', 'guard:gpu2', ['192.168.77.5']).certPem, purpose: 'sslclient' },
    { name: 'admin UI', pem: issue('gateway-server', 'wg-ollama admin', ['127.0.0.1'], ['localhost']).certPem, purpose: 'sslserver' },
  ];
  const widened = widenForLeaves(CONFIG_NAMES, leaves.map((l) => certificateInfo(l.pem)));
  legacy = widened.legacy;
  reissued = reissueCa(old, widened.permitted);
  newFile = file('new-ca.pem', reissued);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('reissueCa', () => {
  test('every certificate the old CA certificate signed verifies under the re-issued one', () => {
    for (const l of leaves) {
      expect(verify(l.pem, oldFile, l.purpose), `${l.name} under the old CA`).toBe('OK');
      expect(verify(l.pem, newFile, l.purpose), `${l.name} under the re-issued CA`).toBe('OK');
    }
  });

  test('the names of live certificates are kept, and an old host-name-like CN is reported as legacy', () => {
    expect(caNameConstraints(reissued)).toEqual({
      ip: ['10.66.0.0/24', '192.168.50.10/32', '127.0.0.1/32', '192.168.77.5/32'],
      dns: ['localhost', 'wg-ollama.invalid', 'bob.laptop', 'gpu2.lab.example'],
      email: ['wg-ollama.invalid'],
      other: 0,
    });
    expect(legacy).toEqual(['bob.laptop']);
  });

  test('a certificate for any other name, signed with the same key, verifies under the old certificate and not under the new one', () => {
    for (const [subject, san] of [['/CN=www.google.com', 'DNS:www.google.com'], ['/CN=dns', 'IP:8.8.8.8'], ['/CN=x', 'DNS:evil.gpu2.lab.example.com']] as const) {
      const rogue = mint(old, oldFile, subject, san);
      expect(verify(rogue, oldFile)).toBe('OK');
      expect(verify(rogue, newFile)).toMatch(/permitted subtree violation/);
    }
  });

  test('nothing but the serial number, the constraints and the signature changes', () => {
    const a = new X509Certificate(old.certPem);
    const b = new X509Certificate(reissued);
    expect(b.subject).toBe(a.subject);
    expect(b.issuer).toBe(a.issuer);
    expect(b.validFrom).toBe(a.validFrom);
    expect(b.validTo).toBe(a.validTo);
    expect(b.publicKey.export({ type: 'spki', format: 'der' }).equals(a.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
    expect(b.serialNumber).not.toBe(a.serialNumber);
    // The subject is byte-for-byte the same DER, so every issuer name in the old leaves matches it.
    const der = (pem: string) => openssl(['x509', '-in', file('c.pem', pem), '-noout', '-subject', '-nameopt', 'RFC2253,dump_der,dump_all']);
    expect(der(reissued)).toBe(der(old.certPem));
    // openssl's text of every other extension is identical.
    const exts = (pem: string) => openssl(['x509', '-in', file('c.pem', pem), '-noout', '-ext', 'basicConstraints,keyUsage,subjectKeyIdentifier,authorityKeyIdentifier,extendedKeyUsage,subjectAltName']);
    expect(exts(reissued)).toBe(exts(old.certPem));
    const names = (pem: string) => [...openssl(['x509', '-in', file('c.pem', pem), '-noout', '-text']).matchAll(/^\s+(X509v3 [^:]+):/gm)].map((m) => m[1]);
    expect(names(reissued)).toEqual([...names(old.certPem), 'X509v3 Name Constraints']);
  });

  test('certificates issued after the re-issue verify under the old ca.crt too (devices that have not re-imported it)', () => {
    const ca = { keyPem: old.keyPem, certPem: reissued };
    const fresh = issueCertificate(ca, { role: 'peer', commonName: 'carol.phone', ipAddresses: ['10.66.0.9'], notAfter: inDays(30) });
    expect(verify(fresh.certPem, newFile, 'sslclient')).toBe('OK');
    expect(verify(fresh.certPem, oldFile, 'sslclient')).toBe('OK');
  });

  test('re-issuing a constrained CA replaces its constraints', () => {
    const again = reissueCa({ keyPem: old.keyPem, certPem: reissued }, CONFIG_NAMES);
    expect(caNameConstraints(again)).toEqual({ ...CONFIG_NAMES, other: 0 });
    expect(verify(leaves[2]!.pem, file('again.pem', again), 'sslserver')).toMatch(/permitted subtree violation/);
  });

  test('a key that is not the CA\'s, or a name set that constrains nothing, is refused', () => {
    const other = createCa({ commonName: 'wg-ollama CA' });
    expectWgoError(() => reissueCa({ keyPem: other.keyPem, certPem: old.certPem }, CONFIG_NAMES), 'BAD_INPUT');
    expectWgoError(() => reissueCa(old, { ip: ['10.66.0.0/24'], dns: [], email: [] }), 'BAD_INPUT');
  });
});
