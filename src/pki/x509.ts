import { X509Certificate } from 'node:crypto';
import { WgoError } from '../errors.js';

/** A PEM certificate parsed by OpenSSL (node:crypto), or BAD_INPUT naming what it was meant to be. */
export function parseX509(pem: unknown, what: string): X509Certificate {
  try {
    if (typeof pem !== 'string') throw new TypeError('not a string');
    return new X509Certificate(pem);
  } catch (cause) {
    throw new WgoError('BAD_INPUT', `the ${what} is not a valid PEM certificate`, { cause });
  }
}
