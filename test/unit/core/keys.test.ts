import { describe, expect, test } from 'vitest';
import {
  generateKeyPair,
  generatePresharedKey,
  isKeyText,
  publicKeyOf,
  validatePublicKey,
} from '../../../src/core/keys.js';
import { expectWgoError } from '../../support/errors.js';

const b64 = (hex: string): string => Buffer.from(hex, 'hex').toString('base64');

describe('generateKeyPair / publicKeyOf', () => {
  test('generated keys are canonical 32-byte base64 and the public key derives from the private key', () => {
    for (let i = 0; i < 5; i++) {
      const { privateKey, publicKey } = generateKeyPair();
      expect(isKeyText(privateKey)).toBe(true);
      expect(isKeyText(publicKey)).toBe(true);
      expect(Buffer.from(privateKey, 'base64')).toHaveLength(32);
      expect(publicKeyOf(privateKey)).toBe(publicKey);
      expect(validatePublicKey(publicKey)).toBe(publicKey);
    }
  });

  test('two generated pairs differ', () => {
    expect(generateKeyPair().privateKey).not.toBe(generateKeyPair().privateKey);
  });

  test('publicKeyOf matches the RFC 7748 test vector', () => {
    // RFC 7748 section 6.1: Alice's private key and public key.
    const priv = b64('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const pub = b64('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    expect(publicKeyOf(priv)).toBe(pub);
  });

  test('publicKeyOf rejects text that is not a key', () => {
    expectWgoError(() => publicKeyOf('not a key'), 'BAD_INPUT');
  });
});

describe('generatePresharedKey', () => {
  test('is 32 random bytes in canonical base64', () => {
    const a = generatePresharedKey();
    expect(a).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(a, 'base64')).toHaveLength(32);
    expect(isKeyText(a)).toBe(true);
    expect(generatePresharedKey()).not.toBe(a);
  });
});

describe('validatePublicKey', () => {
  const good = generateKeyPair().publicKey;

  test('accepts a generated key and trims surrounding whitespace', () => {
    expect(validatePublicKey(good)).toBe(good);
    expect(validatePublicKey(` ${good}\n`)).toBe(good);
  });

  // Flip the last data character to a neighbour that sets the 2 padding bits.
  const nonCanonical = good.slice(0, 42) + (good[42] === 'A' ? 'B' : String.fromCharCode(good.charCodeAt(42) + 1)) + '=';

  test.each([
    ['empty', '', /required/],
    ['a number', 42, /required/],
    ['31 bytes', Buffer.alloc(31, 7).toString('base64'), /32 bytes in base64/],
    ['33 bytes', Buffer.alloc(33, 7).toString('base64'), /32 bytes in base64/],
    ['no padding', good.slice(0, 43), /32 bytes in base64/],
    ['base64url alphabet', Buffer.alloc(32, 0xfb).toString('base64url') + '=', /32 bytes in base64/],
    ['non-canonical padding bits', nonCanonical, /32 bytes in base64/],
    ['garbage', 'hello world, this is not a wireguard key!!!=', /32 bytes in base64/],
    ['hex', 'ab'.repeat(32), /32 bytes in base64/],
    ['all zeros', b64('00'.repeat(32)), /all zeros/],
    ['low-order point of order 8', b64('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'), /low-order/],
    ['the point u = 1', b64('01' + '00'.repeat(31)), /low-order/],
    ['u = p - 1', b64('ec' + 'ff'.repeat(30) + '7f'), /low-order/],
    ['u = p (equals 0)', b64('ed' + 'ff'.repeat(30) + '7f'), /low-order/],
  ])('rejects %s', (_what, input, message) => {
    const err = expectWgoError(() => validatePublicKey(input), 'BAD_INPUT');
    expect(err.message).toMatch(message);
  });

  test('the non-canonical variant decodes to the same bytes (so only the text check catches it)', () => {
    expect(nonCanonical).not.toBe(good);
    expect(Buffer.from(nonCanonical, 'base64').equals(Buffer.from(good, 'base64'))).toBe(true);
  });
});

describe('RFC 7748 test vector', () => {
  test("publicKeyOf gives Alice's public key from her private key (section 6.1)", async () => {
    const { publicKeyOf } = await import('../../../src/core/keys.js');
    const priv = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex').toString('base64');
    const pub = Buffer.from('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'hex').toString('base64');
    expect(publicKeyOf(priv)).toBe(pub);
  });
});
