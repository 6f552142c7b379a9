/**
 * Name constraints as Node's TLS (OpenSSL) enforces them in real mutual-TLS
 * handshakes on 127.0.0.1: certificates wg-ollama issues are accepted both
 * ways, and a certificate for another name signed with the same CA key is
 * refused, as a server (interception) and as a client.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { permittedForConfig } from '../../../src/core/ca-names.js';
import { createCa, issueCertificate, type CaMaterial, type CertRole, type IssuedCert } from '../../../src/pki/ca.js';
import { reissueCa } from '../../../src/pki/ca-reissue.js';
import { handshake } from './tls-harness.js';

const inDays = (n: number): Date => new Date(Date.now() + n * 86_400_000);

// A single-box gateway whose guard and admin UI are on loopback, as in the tests and the lab.
const permitted = permittedForConfig({
  subnet: '10.66.0.0/24', ollamaHost: '127.0.0.1', admin: { listen: ['127.0.0.1:8443'], hosts: ['wgo.lab.example'] }, guard: { dnsNames: [] },
});

let dir: string;
let ca: CaMaterial;
const issue = (role: CertRole, commonName: string, ipAddresses: string[], dnsNames: string[] = []): IssuedCert =>
  issueCertificate(ca, { role, commonName, ipAddresses, dnsNames, notAfter: inDays(30) });

/** Key and certificate for any subject/SAN, signed with the CA key by openssl: what a thief of ca.key could make. */
function rogue(subject: string, san: string | null, eku: string): { key: string; cert: string } {
  const key = join(dir, `${Math.random().toString(36).slice(2)}.key`);
  const csr = `${key}.csr`;
  const caKey = join(dir, 'ca.key');
  execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', key], { stdio: 'ignore' });
  execFileSync('openssl', ['req', '-new', '-key', key, '-subj', subject, ...(san ? ['-addext', `subjectAltName=${san}`] : []), '-addext', `extendedKeyUsage=${eku}`, '-out', csr], { stdio: 'ignore' });
  const cert = execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', join(dir, 'ca.crt'), '-CAkey', caKey, '-days', '30', '-copy_extensions', 'copy'], { encoding: 'utf8' });
  return { key: readFileSync(key, 'utf8'), cert };
}

/** What the CA certificate would be without name constraints: same key, same subject, made by openssl req -x509. */
let twin: string | null = null;
function unconstrainedTwin(): string {
  twin ??= execFileSync('openssl', ['req', '-x509', '-new', '-key', join(dir, 'ca.key'), '-subj', '/CN=wg-ollama CA/O=wg-ollama', '-days', '30',
    '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], { encoding: 'utf8' });
  return twin;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-nc-tls-'));
  ca = createCa({ commonName: 'wg-ollama CA', permitted });
  writeFileSync(join(dir, 'ca.crt'), ca.certPem);
  writeFileSync(join(dir, 'ca.key'), ca.keyPem, { mode: 0o600 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const serverOpts = (c: { keyPem: string; certPem: string } | { key: string; cert: string }, trust = ca.certPem) => ({
  ...('keyPem' in c ? { key: c.keyPem, cert: c.certPem } : c),
  ca: [trust], requestCert: true, rejectUnauthorized: false,
});
const clientOpts = (c: { keyPem: string; certPem: string } | { key: string; cert: string }, servername: string, trust = ca.certPem) => ({
  ...('keyPem' in c ? { key: c.keyPem, cert: c.certPem } : c),
  ca: [trust], servername,
});

describe('mutual TLS under the constrained CA', () => {
  test.each(['alice', 'bob.laptop', 'a-b_c', 'x_y.z', 'github.com'])('peer %s ↔ the guard (server certificate for 127.0.0.1)', async (name) => {
    const guard = issue('guard-server', 'wg-ollama guard (local)', ['127.0.0.1']);
    const peer = issue('peer', name, ['10.66.0.2']);
    const r = await handshake({ server: serverOpts(guard), client: { ...clientOpts(peer, 'localhost'), checkServerIdentity: () => undefined } });
    expect(r.server.authorizationError).toBeNull();
    expect(r.server.authorized).toBe(true);
    expect(r.server.peerCertificate?.subject.CN).toBe(name);
    expect(r.client.error).toBeNull();
    expect(r.client.gotReply).toBe(true);
  });

  test('a guard\'s sync client ↔ the sync API, and a browser ↔ the admin UI by name', async () => {
    const sync = issue('gateway-server', 'wg-ollama gateway', ['127.0.0.1']);
    const guardClient = issue('guard-client', 'guard:gpu1.lab', ['127.0.0.1']);
    const r1 = await handshake({ server: serverOpts(sync), client: { ...clientOpts(guardClient, ''), checkServerIdentity: () => undefined } });
    expect([r1.server.authorized, r1.client.gotReply, r1.client.error]).toEqual([true, true, null]);

    const admin = issue('gateway-server', 'wg-ollama admin', ['127.0.0.1'], ['localhost', 'wgo.lab.example']);
    const r2 = await handshake({ server: { key: admin.keyPem, cert: admin.certPem }, client: { ca: [ca.certPem], servername: 'wgo.lab.example' } });
    expect([r2.client.gotReply, r2.client.error]).toEqual([true, null]);
  });

  test('a server certificate for www.google.com signed with the CA key is refused by the client (no interception)', async () => {
    const fake = rogue('/CN=www.google.com', 'DNS:www.google.com', 'serverAuth');
    const r = await handshake({ server: { key: fake.key, cert: fake.cert }, client: { ca: [ca.certPem], servername: 'www.google.com' } });
    expect(r.client.gotReply).toBe(false);
    // Node has no code of its own for X509_V_ERR_PERMITTED_VIOLATION; the message is OpenSSL's.
    expect(r.client.error?.message).toBe('permitted subtree violation');
    // The same certificate under an unconstrained certificate for the same key and name is accepted: the constraint is what refuses it.
    const r2 = await handshake({ server: { key: fake.key, cert: fake.cert }, client: { ca: [unconstrainedTwin()], servername: 'www.google.com' } });
    expect([r2.client.gotReply, r2.client.error]).toEqual([true, null]);
  });

  test.each([
    ['/CN=www.google.com', null],
    ['/CN=mallory', 'IP:10.66.0.2,DNS:example.com'],
    ['/CN=mallory', 'IP:8.8.8.8'],
  ])('a client certificate %s %s signed with the CA key is refused by the guard', async (subject, san) => {
    const guard = issue('guard-server', 'wg-ollama guard (local)', ['127.0.0.1']);
    const fake = rogue(subject, san, 'clientAuth');
    const r = await handshake({ server: serverOpts(guard), client: { ...clientOpts(fake, ''), checkServerIdentity: () => undefined } });
    expect(r.server.authorized).toBe(false);
    // Node reports X509_V_ERR_PERMITTED_VIOLATION as 'UNSPECIFIED' (it has no code of its own for it) …
    expect(r.server.authorizationError).toBe('UNSPECIFIED');
    // … so prove the cause: trusting an unconstrained certificate for the same CA key and name, the guard accepts it.
    const r2 = await handshake({ server: serverOpts(guard, unconstrainedTwin()), client: { ...clientOpts(fake, ''), checkServerIdentity: () => undefined } });
    expect([r2.server.authorized, r2.server.authorizationError]).toEqual([true, null]);
  });

  test('a deployment re-keyed with reissue-ca: old certificates handshake under the re-issued ca.crt', async () => {
    const open = createCa({ commonName: 'wg-ollama CA' });
    const oldGuard = issueCertificate(open, { role: 'guard-server', commonName: 'gpu1', ipAddresses: ['127.0.0.1'], notAfter: inDays(30) });
    const oldPeer = issueCertificate(open, { role: 'peer', commonName: 'bob.laptop', ipAddresses: ['10.66.0.3'], notAfter: inDays(30) });
    const reissued = reissueCa(open, permitted);
    const r = await handshake({ server: serverOpts(oldGuard, reissued), client: { ...clientOpts(oldPeer, '', reissued), checkServerIdentity: () => undefined } });
    expect([r.server.authorized, r.server.authorizationError, r.client.gotReply, r.client.error]).toEqual([true, null, true, null]);
  });
});
