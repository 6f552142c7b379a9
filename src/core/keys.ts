import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, randomBytes } from 'node:crypto';
import { badInput } from '../errors.js';

/** A Curve25519 key pair in WireGuard's base64 form. */
export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

const B64_KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

// DER framing of raw X25519 keys (RFC 8410). We export DER, not JWK: exporting
// thousands of keys as JWK can deadlock Node 20 (scripts/bench/repro-jwk-deadlock.mjs).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

const rawOf = (der: Buffer): string => der.subarray(der.length - 32).toString('base64');
const privateKeyFromRaw = (b64: string) =>
  createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, Buffer.from(b64, 'base64')]), format: 'der', type: 'pkcs8' });
const publicKeyFromRaw = (b64: string) =>
  createPublicKey({ key: Buffer.concat([SPKI_PREFIX, Buffer.from(b64, 'base64')]), format: 'der', type: 'spki' });

/** Generates a key pair with node:crypto (no `wg genkey` process, nothing on argv). */
export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return {
    privateKey: rawOf(privateKey.export({ format: 'der', type: 'pkcs8' })),
    publicKey: rawOf(publicKey.export({ format: 'der', type: 'spki' })),
  };
}

/** 32 random bytes, base64: a WireGuard preshared key. */
export function generatePresharedKey(): string {
  return randomBytes(32).toString('base64');
}

/** The public key belonging to a base64 private key. */
export function publicKeyOf(privateKey: string): string {
  if (!isKeyText(privateKey)) throw badInput('private key is not 32 bytes of base64');
  return rawOf(createPublicKey(privateKeyFromRaw(privateKey)).export({ format: 'der', type: 'spki' }));
}

/** True when text is the canonical base64 encoding of exactly 32 bytes. */
export function isKeyText(text: string): boolean {
  return B64_KEY_RE.test(text) && Buffer.from(text, 'base64').toString('base64') === text;
}

/**
 * Validates a public key a peer brings: canonical base64 of 32 bytes and a
 * usable Curve25519 point (the all-zero key and the other low-order points make
 * X25519 produce an all-zero secret, which OpenSSL refuses).
 */
export function validatePublicKey(input: unknown): string {
  if (typeof input !== 'string' || input.length === 0) throw badInput('public key is required');
  const text = input.trim();
  if (!isKeyText(text)) throw badInput('public key must be 32 bytes in base64 (44 characters ending in "=")');
  if (Buffer.from(text, 'base64').every((b) => b === 0)) throw badInput('public key is all zeros');
  try {
    const peer = publicKeyFromRaw(text);
    const { privateKey } = generateKeyPairSync('x25519');
    diffieHellman({ privateKey, publicKey: peer });
  } catch {
    throw badInput('public key is not a usable Curve25519 key (low-order point)');
  }
  return text;
}
