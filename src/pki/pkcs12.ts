/**
 * PKCS#12 bundles (.p12) for phones and browsers, and the passphrases that
 * protect them.
 *
 * Algorithms, chosen for what opens everywhere (iOS, Android, Firefox/NSS,
 * Windows, and OpenSSL 3 *without* -legacy):
 *  - private key: pkcs8ShroudedKeyBag, pbeWithSHAAnd3-KeyTripleDES-CBC
 *    (the PKCS#12 KDF with SHA-1), PBE_ITERATIONS iterations;
 *  - certificates: leaf then CA, in an unencrypted (PKCS#7 data) safe — they
 *    are public; OpenSSL's legacy default would encrypt them with RC2-40,
 *    which OpenSSL 3 only reads with -legacy;
 *  - MAC: HMAC-SHA-1. node-forge 1.4.3 writes only SHA-1 MACs (it reads
 *    SHA-256 ones, but toPkcs12Asn1 hard-codes SHA-1), and SHA-1 is also the
 *    MAC Apple's importers have always accepted. HMAC-SHA-1 is not weakened by
 *    SHA-1 collisions; the strength rests on the passphrase.
 * friendlyName and localKeyID (SHA-1 of the leaf) are set on the key and the
 * leaf certificate so that key stores pair them and show a name.
 */
import { createPrivateKey, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { WgoError, badInput } from '../errors.js';
import { parseX509 } from './x509.js';

/** OpenSSL's default is 2048. The passphrases we generate carry 100 bits, so this is belt and braces. */
const PBE_ITERATIONS = 10_000;

/**
 * Builds a password-protected PKCS#12 holding the key, the leaf certificate
 * and the CA certificate. Returns DER bytes. Checks that the key belongs to
 * the certificate and that the CA issued it (BAD_INPUT otherwise).
 */
export function buildPkcs12(opts: {
  certPem: string;
  keyPem: string;
  caCertPem: string;
  friendlyName: string;
  passphrase: string;
}): Buffer {
  const leaf = parseX509(opts.certPem, 'certificate');
  const ca = parseX509(opts.caCertPem, 'CA certificate');
  const key = parsePrivateKey(opts.keyPem);
  if (!leaf.checkPrivateKey(key)) throw badInput('the private key does not belong to the certificate');
  if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) throw badInput('the certificate was not issued by this CA');
  validateFriendlyName(opts.friendlyName);
  validatePassphrase(opts.passphrase);

  try {
    const forgeKey = forge.pki.privateKeyFromPem(key.export({ type: 'pkcs8', format: 'pem' }).toString());
    const chain = [forge.pki.certificateFromPem(opts.certPem), forge.pki.certificateFromPem(opts.caCertPem)];
    const asn1 = forge.pkcs12.toPkcs12Asn1(forgeKey, chain, opts.passphrase, {
      algorithm: '3des',
      count: PBE_ITERATIONS,
      saltSize: 16,
      useMac: true,
      generateLocalKeyId: true,
      friendlyName: opts.friendlyName,
    });
    return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
  } catch (cause) {
    throw new WgoError('INTERNAL', 'could not build the PKCS#12 bundle', { cause });
  }
}

// 32 symbols: a–z without "l" and "o", 2–9 (no 0/1). 32 divides 256, so
// `byte & 31` is uniform and each symbol carries exactly 5 bits.
const PASSPHRASE_ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789';
const PASSPHRASE_GROUPS = 5;
const PASSPHRASE_GROUP_LENGTH = 4;

/**
 * A passphrase people can type on a phone: 5 groups of 4 symbols from a
 * 32-symbol alphabet, e.g. "k7dm-3xqa-pw4e-n8rt-2hbz" — 20 × 5 = 100 bits.
 */
export function generatePassphrase(): string {
  const bytes = randomBytes(PASSPHRASE_GROUPS * PASSPHRASE_GROUP_LENGTH);
  const symbols = [...bytes].map((b) => PASSPHRASE_ALPHABET[b & 31] ?? '');
  const groups: string[] = [];
  for (let i = 0; i < symbols.length; i += PASSPHRASE_GROUP_LENGTH) {
    groups.push(symbols.slice(i, i + PASSPHRASE_GROUP_LENGTH).join(''));
  }
  return groups.join('-');
}

/**
 * Printable ASCII only: the PKCS#12 KDF works on the BMPString of the
 * password, and implementations disagree on how to get there from non-ASCII
 * input (OpenSSL converts from UTF-8, forge uses UTF-16 code units), so a
 * non-ASCII passphrase could make a bundle that some devices cannot open.
 */
function validatePassphrase(p: unknown): void {
  if (typeof p !== 'string' || p.length < 8 || p.length > 128) {
    throw badInput('a PKCS#12 passphrase must be 8–128 characters long');
  }
  if (!/^[\x20-\x7e]+$/.test(p)) throw badInput('a PKCS#12 passphrase may contain only printable ASCII characters');
}

/**
 * Printable ASCII too: friendlyName is a BMPString, and OpenSSL 3.0 prints
 * non-ASCII characters of it mangled (it narrows each to a byte).
 */
function validateFriendlyName(name: unknown): void {
  if (typeof name !== 'string' || !/^[\x20-\x7e]{1,64}$/.test(name)) {
    throw badInput('a PKCS#12 friendly name must be 1–64 printable ASCII characters');
  }
}


function parsePrivateKey(pem: unknown): KeyObject {
  let key: KeyObject;
  try {
    if (typeof pem !== 'string' || pem === '') throw new TypeError('not a PEM string');
    key = createPrivateKey(pem);
  } catch (cause) {
    throw new WgoError('BAD_INPUT', 'the private key is not a valid unencrypted PEM private key', { cause });
  }
  if (key.asymmetricKeyType !== 'rsa') throw badInput('only RSA keys can be put into a PKCS#12 bundle');
  return key;
}
