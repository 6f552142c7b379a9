/**
 * PKCS#12 bundles opened by OpenSSL 3 (the binary, without -legacy) and by
 * Node's TLS, and the passphrases that protect them.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { WgoError } from '../../../src/errors.js';
import {
  buildPkcs12,
  createCa,
  generatePassphrase,
  issueCertificate,
  normaliseSerial,
  type CaMaterial,
  type IssuedCert,
} from '../../../src/pki/ca.js';
import { handshake } from './tls-harness.js';
import { expectWgoError } from '../../support/errors.js';

const DAY = 24 * 60 * 60 * 1000;
const FRIENDLY_NAME = 'alice (wg-ollama)';

let dir: string;
let ca: CaMaterial;
let peer: IssuedCert;
let guardServer: IssuedCert;
let passphrase: string;
let p12: Buffer;
let p12File: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-p12-'));
  ca = createCa({ commonName: 'wg-ollama CA' });
  const notAfter = new Date(Date.now() + 30 * DAY);
  peer = issueCertificate(ca, { role: 'peer', commonName: 'alice', ipAddresses: ['10.66.0.2'], notAfter });
  guardServer = issueCertificate(ca, { role: 'guard-server', commonName: 'guard', ipAddresses: ['127.0.0.1'], notAfter });
  passphrase = generatePassphrase();
  p12 = buildPkcs12({ certPem: peer.certPem, keyPem: peer.keyPem, caCertPem: ca.certPem, friendlyName: FRIENDLY_NAME, passphrase });
  p12File = join(dir, 'alice.p12');
  writeFileSync(p12File, p12);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** openssl pkcs12 (OpenSSL 3 defaults, no -legacy), passphrase through the environment. */
function opensslPkcs12(args: string[], pass: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('openssl', ['pkcs12', '-in', p12File, '-passin', 'env:WGO_P12_PASS', ...args], {
    encoding: 'utf8',
    env: { ...process.env, WGO_P12_PASS: pass },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function pemBlocks(text: string, label: string): string[] {
  return text.match(new RegExp(`-----BEGIN ${label}-----[\\s\\S]+?-----END ${label}-----\\n`, 'g')) ?? [];
}

const badInputFrom = (fn: () => unknown): WgoError => expectWgoError(fn, 'BAD_INPUT');

describe('buildPkcs12', () => {
  test('openssl pkcs12 without -legacy yields the same key, the leaf and the CA certificate', () => {
    const r = opensslPkcs12(['-nodes'], passphrase);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);

    const keys = pemBlocks(r.stdout, 'PRIVATE KEY');
    expect(keys).toHaveLength(1);
    const der = (pem: string) => createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
    expect(der(keys[0]!).equals(der(peer.keyPem))).toBe(true);

    const certs = pemBlocks(r.stdout, 'CERTIFICATE').map((pem) => new X509Certificate(pem));
    expect(certs).toHaveLength(2);
    expect(certs[0]!.raw.equals(new X509Certificate(peer.certPem).raw)).toBe(true);
    expect(certs[1]!.raw.equals(new X509Certificate(ca.certPem).raw)).toBe(true);
  });

  test('uses 3DES for the key, plain certificates, a SHA-1 MAC, and sets friendlyName and localKeyID', () => {
    const r = opensslPkcs12(['-info', '-noout'], passphrase);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/^MAC: sha1, Iteration 10000$/m);
    expect(r.stderr).toMatch(/^Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 10000$/m);
    // No "PKCS7 Encrypted data": the certificate safe is not encrypted (so no RC2-40 for -legacy to decode).
    expect(r.stderr).not.toMatch(/PKCS7 Encrypted data/);

    const attrs = opensslPkcs12(['-nodes'], passphrase).stdout;
    expect(attrs.match(/^ {4}friendlyName: (.*)$/gm)).toEqual([`    friendlyName: ${FRIENDLY_NAME}`, `    friendlyName: ${FRIENDLY_NAME}`]);
    const keyIds = [...attrs.matchAll(/^ {4}localKeyID: ([0-9A-F ]+)$/gm)].map((m) => m[1]);
    expect(keyIds).toHaveLength(2); // on the key and on the leaf, pairing them
    expect(keyIds[0]).toBe(keyIds[1]);
  });

  test('a wrong passphrase is refused by openssl and by Node', () => {
    const r = opensslPkcs12(['-nodes'], 'wrong-passphrase');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/mac verify error/i);
    expect(pemBlocks(r.stdout, 'PRIVATE KEY')).toHaveLength(0);

    expect(() => tls.createSecureContext({ pfx: p12, passphrase: 'wrong-passphrase' })).toThrow(/mac verify failure/i);
  });

  test('Node’s TLS takes it as a client identity, and the guard authorizes it', async () => {
    expect(() => tls.createSecureContext({ pfx: p12, passphrase })).not.toThrow();
    const { server, client } = await handshake({
      server: { key: guardServer.keyPem, cert: guardServer.certPem, ca: [ca.certPem], requestCert: true, rejectUnauthorized: true },
      client: { pfx: p12, passphrase, ca: [ca.certPem] },
    });
    expect(client.error).toBeNull();
    expect(client.gotReply).toBe(true);
    expect(server.authorized).toBe(true);
    expect(normaliseSerial(server.peerCertificate!.serialNumber)).toBe(peer.serial);
  });

  test('every bundle has fresh salts', () => {
    const again = buildPkcs12({ certPem: peer.certPem, keyPem: peer.keyPem, caCertPem: ca.certPem, friendlyName: FRIENDLY_NAME, passphrase });
    expect(again.equals(p12)).toBe(false);
  });

  describe('input validation: BAD_INPUT', () => {
    const base = () => ({ certPem: peer.certPem, keyPem: peer.keyPem, caCertPem: ca.certPem, friendlyName: 'alice', passphrase });

    test.each<[string, () => Record<string, unknown>, RegExp]>([
      ['a key that is not the certificate’s', () => ({ keyPem: guardServer.keyPem }), /does not belong to the certificate/],
      ['no key (certificate issued for a supplied public key)', () => ({ keyPem: '' }), /not a valid unencrypted PEM private key/],
      ['a CA that did not issue the certificate', () => ({ caCertPem: guardServer.certPem }), /not issued by this CA/],
      ['a certificate that is not PEM', () => ({ certPem: 'nope' }), /not a valid PEM certificate/],
      ['a 7-character passphrase', () => ({ passphrase: 'abcdefg' }), /8–128 characters/],
      ['a non-ASCII passphrase', () => ({ passphrase: 'pässphrase-long' }), /printable ASCII/],
      ['an empty friendly name', () => ({ friendlyName: '' }), /friendly name/],
      ['a friendly name with a newline', () => ({ friendlyName: 'a\nb' }), /friendly name/],
      ['a non-ASCII friendly name', () => ({ friendlyName: 'alice’s phone' }), /friendly name/],
    ])('%s', (_name, override, message) => {
      const e = badInputFrom(() => buildPkcs12({ ...base(), ...override() } as Parameters<typeof buildPkcs12>[0]));
      expect(e.message).toMatch(message);
    });
  });
});

describe('generatePassphrase', () => {
  const ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789';

  test('five groups of four symbols from a 32-symbol alphabet without 0, 1, o, l', () => {
    const p = generatePassphrase();
    expect(p).toMatch(/^[a-km-np-z2-9]{4}(-[a-km-np-z2-9]{4}){4}$/);
    expect(p).not.toMatch(/[01ol]/);
  });

  test('carries 100 bits: 20 symbols, each one of all 32 symbols, roughly uniformly', () => {
    const counts = new Map<string, number>();
    const samples = Array.from({ length: 200 }, generatePassphrase);
    for (const p of samples) {
      const symbols = p.replaceAll('-', '');
      expect(symbols).toHaveLength(20);
      for (const c of symbols) counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    // 4000 draws: every symbol appears (a smaller alphabet would mean fewer bits),
    // and none is far from the expected 125 (a biased mapping would show here).
    expect([...counts.keys()].sort().join('')).toBe([...ALPHABET].sort().join(''));
    for (const n of counts.values()) {
      expect(n).toBeGreaterThan(60);
      expect(n).toBeLessThan(200);
    }
    expect(20 * Math.log2(counts.size)).toBeGreaterThanOrEqual(100);
    expect(new Set(samples).size).toBe(samples.length);
  });

  test('two calls differ', () => {
    expect(generatePassphrase()).not.toBe(generatePassphrase());
  });
});
