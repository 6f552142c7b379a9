/**
 * The CA carries X.509 name constraints: every certificate wg-ollama issues
 * still verifies, and a certificate for any other name, signed with the same
 * CA key, is refused. The verifier is the openssl binary (and, in
 * name-constraints-tls.test.ts, Node's TLS): never node-forge.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cnReadsAsHostname } from '../../../src/core/ca-names.js';
import { createCa, issueCertificate, type CaMaterial, type CertRole } from '../../../src/pki/ca.js';
import { expectWgoError } from '../../support/errors.js';

const DAY = 86_400_000;
const NOW = new Date();
const inDays = (n: number): Date => new Date(NOW.getTime() + n * DAY);

/** What a gateway with subnet 10.66.0.0/24, GPU host 192.168.50.10, admin.hosts [wgo.lab.example] and ca.permit [192.168.50.0/24, .gpu.lab.example] permits. */
const PERMITTED = {
  ip: ['10.66.0.0/24', '192.168.50.10/32', '127.0.0.1/32', '192.168.50.0/24'],
  dns: ['localhost', 'wgo.lab.example', '.gpu.lab.example', 'wg-ollama.invalid'],
  email: ['wg-ollama.invalid'],
};

let dir: string;
let ca: CaMaterial;
let caFile: string;
let caKeyFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-nc-'));
  ca = createCa({ commonName: 'wg-ollama CA', permitted: PERMITTED });
  caFile = file('ca.pem', ca.certPem);
  caKeyFile = file('ca.key', ca.keyPem);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(name: string, content: string): string {
  const path = join(dir, `${n++}-${name}`);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

/** `openssl verify` of one leaf under the CA: 'OK' or OpenSSL's error line. */
function verify(leafPem: string, purpose?: 'sslclient' | 'sslserver', caPem = caFile): string {
  const leaf = file('leaf.pem', leafPem);
  try {
    execFileSync('openssl', ['verify', ...(purpose ? ['-purpose', purpose] : []), '-CAfile', caPem, leaf], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return 'OK';
  } catch (e) {
    const out = `${(e as { stdout?: string }).stdout ?? ''}${(e as { stderr?: string }).stderr ?? ''}`;
    return /error \d+ at \d+ depth lookup: (.*)/.exec(out)?.[1] ?? out;
  }
}

/**
 * What someone holding ca.key could do without wg-ollama: a CSR for the given
 * subject and subjectAltName, signed by `openssl x509 -req` with the CA key.
 */
let sharedKey: string | null = null;
function mintWithOpenssl(subject: string, san: string | null): string {
  const key = (sharedKey ??= join(dir, `${n++}-rogue.key`));
  const csr = join(dir, `${n++}-rogue.csr`);
  const out = join(dir, `${n++}-rogue.pem`);
  if (!existsSync(key)) execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key], { stdio: 'ignore' });
  execFileSync('openssl', ['req', '-new', '-key', key, '-subj', subject, ...(san ? ['-addext', `subjectAltName=${san}`] : []), '-out', csr], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKeyFile, '-days', '30', '-copy_extensions', 'copy', '-out', out], { stdio: 'ignore' });
  return execFileSync('openssl', ['x509', '-in', out], { encoding: 'utf8' });
}

describe('a certificate outside the name constraints, signed with the CA key, is refused by OpenSSL', () => {
  test.each([
    ['/CN=example.com', 'DNS:example.com'],
    ['/CN=www.google.com', 'DNS:www.google.com'],
    ['/CN=anything', 'DNS:wgo.lab.example.attacker.com'],
    ['/CN=8.8.8.8', 'IP:8.8.8.8'],
    ['/CN=lan', 'IP:192.168.1.1'],
    ['/CN=v6', 'IP:2001:db8::1'],
    ['/CN=mail', 'email:ceo@example.com'],
    // No subjectAltName at all: OpenSSL reads a host-name-like CN as a DNS name.
    ['/CN=www.google.com', null],
  ])('%s %s', (subject, san) => {
    const rogue = mintWithOpenssl(subject, san);
    expect(verify(rogue)).toMatch(/permitted subtree violation/);
  });

  test('the same openssl-minted certificate for a permitted name verifies (the minting itself works)', () => {
    expect(verify(mintWithOpenssl('/CN=box.gpu.lab.example', 'DNS:box.gpu.lab.example,IP:192.168.50.77'))).toBe('OK');
  });
});

describe('which common names OpenSSL reads as host names (what cnReadsAsHostname mirrors)', () => {
  test.each(['alice', 'a-b_c', 'bob.laptop', 'x_y.z', '9.9.9.9', 'wg-ollama admin', 'guard:gpu1.lab', '.a', 'a.', 'a..b', 'a-.b', '-a.b', '_a._b'])('%s', (cn) => {
    // A certificate with this CN and no subjectAltName: OpenSSL checks the CN against the DNS constraints exactly when it reads it as a host name.
    const verdict = verify(mintWithOpenssl(`/CN=${cn}`, null));
    expect(verdict).toBe(cnReadsAsHostname(cn) ? 'permitted subtree violation' : 'OK');
  });
});

describe('every certificate wg-ollama issues verifies under the constrained CA', () => {
  const cases: [string, CertRole, string, string[], string[], 'sslclient' | 'sslserver'][] = [
    ['peer alice', 'peer', 'alice', ['10.66.0.2'], [], 'sslclient'],
    ['peer bob.laptop (CN that OpenSSL reads as a host name)', 'peer', 'bob.laptop', ['10.66.0.3'], [], 'sslclient'],
    ['peer a-b_c', 'peer', 'a-b_c', ['10.66.0.4'], [], 'sslclient'],
    ['peer x_y.z (dot and underscore)', 'peer', 'x_y.z', ['10.66.0.5'], [], 'sslclient'],
    ['peer github.com (a real domain as a peer name)', 'peer', 'github.com', ['10.66.0.6'], [], 'sslclient'],
    ['peer 9.9.9.9 (an address as a peer name)', 'peer', '9.9.9.9', ['10.66.0.7'], [], 'sslclient'],
    ['guard server, address only, dotted name', 'guard-server', 'gpu1.lab', ['192.168.50.21'], [], 'sslserver'],
    ['guard server with a permitted DNS name', 'guard-server', 'gpu2', ['192.168.50.22'], ['gpu2.gpu.lab.example'], 'sslserver'],
    ['guard client', 'guard-client', 'guard:gpu1.lab', ['192.168.50.21'], [], 'sslclient'],
    ['single-box guard', 'guard-server', 'wg-ollama guard (local)', ['192.168.50.10'], [], 'sslserver'],
    ['sync API', 'gateway-server', 'wg-ollama gateway', ['192.168.50.10'], [], 'sslserver'],
    ['admin UI', 'gateway-server', 'wg-ollama admin', ['127.0.0.1'], ['localhost', 'wgo.lab.example'], 'sslserver'],
  ];
  test.each(cases)('%s', (_what, role, commonName, ipAddresses, dnsNames, purpose) => {
    const c = issueCertificate(ca, { role, commonName, ipAddresses, dnsNames, notAfter: inDays(30) });
    expect(verify(c.certPem, purpose)).toBe('OK');
    // The common name is what it was asked to be.
    expect(new X509Certificate(c.certPem).subject).toContain(`CN=${commonName}`);
  });

  test('a peer certificate whose CN reads as a host name names it under wg-ollama.invalid, so OpenSSL checks that instead', () => {
    const c = issueCertificate(ca, { role: 'peer', commonName: 'bob.laptop', ipAddresses: ['10.66.0.3'], notAfter: inDays(30) });
    expect(new X509Certificate(c.certPem).subjectAltName).toBe('IP Address:10.66.0.3, DNS:bob.laptop.wg-ollama.invalid');
    const plain = issueCertificate(ca, { role: 'peer', commonName: 'alice', ipAddresses: ['10.66.0.2'], notAfter: inDays(30) });
    expect(new X509Certificate(plain.certPem).subjectAltName).toBe('IP Address:10.66.0.2');
  });
});

describe('issuing refuses a name outside the constraints and says what to do', () => {
  test.each([
    ['an address outside every permitted range', ['192.168.99.9'], []],
    ['a DNS name outside', ['192.168.50.30'], ['gpu.other.example']],
    ['an IPv6 address', ['2001:db8::5'], []],
  ])('%s', (_what, ipAddresses, dnsNames) => {
    const err = expectWgoError(() => issueCertificate(ca, { role: 'guard-server', commonName: 'gpu9', ipAddresses, dnsNames, notAfter: inDays(30) }), 'BAD_INPUT');
    expect(err.message).toMatch(/outside the CA's name constraints/);
    expect(err.message).toMatch(/reissue-ca/);
  });
});

describe('the extension itself', () => {
  test('is critical and lists exactly the permitted subtrees (as openssl prints them)', () => {
    const text = execFileSync('openssl', ['x509', '-in', caFile, '-noout', '-ext', 'nameConstraints'], { encoding: 'utf8' });
    expect(text).toContain('X509v3 Name Constraints: critical');
    const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('X509v3') && l !== 'Permitted:');
    expect(lines).toEqual([
      'IP:10.66.0.0/255.255.255.0',
      'IP:192.168.50.10/255.255.255.255',
      'IP:127.0.0.1/255.255.255.255',
      'IP:192.168.50.0/255.255.255.0',
      'DNS:localhost',
      'DNS:wgo.lab.example',
      'DNS:.gpu.lab.example',
      'DNS:wg-ollama.invalid',
      'email:wg-ollama.invalid',
    ]);
  });

  test('a CA made without constraints has none (and so accepts any name: what older releases made)', () => {
    const open = createCa({ commonName: 'wg-ollama CA' });
    const openFile = file('open-ca.pem', open.certPem);
    const leaf = issueCertificate(open, { role: 'guard-server', commonName: 'x', dnsNames: ['www.google.com'], notAfter: inDays(30) });
    expect(verify(leaf.certPem, 'sslserver', openFile)).toBe('OK');
  });

  test('bad permitted names are refused before any key is made', () => {
    expectWgoError(() => createCa({ commonName: 'c', permitted: { ip: ['10.66.0.1/24'], dns: [], email: [] } }), 'BAD_INPUT');
    expectWgoError(() => createCa({ commonName: 'c', permitted: { ip: [], dns: ['bad name'], email: [] } }), 'BAD_INPUT');
    expectWgoError(() => createCa({ commonName: 'c', permitted: { ip: [], dns: [], email: [] } }), 'BAD_INPUT');
  });
});
