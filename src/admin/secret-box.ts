import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { linkSync, statSync } from 'node:fs';
import { WgoError } from '../errors.js';
import { readSecretFile, removeFile, writeSecretFile } from '../system/files.js';

const IV_LEN = 12;
const TAG_LEN = 16;

/**
 * Seals small secrets (TOTP secrets) for the database with AES-256-GCM under a
 * key kept in a 0600 file outside it (<state>/admin.key). The admin name is
 * the associated data, so a sealed secret copied onto another account fails.
 * Format: `v1.<iv>.<tag>.<ciphertext>`, base64url; the tag is always 16 bytes
 * (GCM would otherwise accept a truncated tag, which is far easier to forge).
 */
export interface SecretBox {
  seal(plain: string, context: string): string;
  open(sealed: string, context: string): string;
  /**
   * A keyed fingerprint of `text` (hex HMAC-SHA-256 under a key derived from
   * admin.key): the same text gives the same tag, but without the key file a
   * copy of the database cannot be used to test guesses against it.
   */
  tag(text: string): string;
}

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new WgoError('INTERNAL', 'the admin key must be 32 bytes');
  // A key of its own for tags: the AES key is never used for anything but sealing.
  const tagKey = createHmac('sha256', key).update('wg-ollama tag key v1').digest();
  return {
    tag: (text) => createHmac('sha256', tagKey).update(text, 'utf8').digest('hex'),
    seal(plain, context) {
      const iv = randomBytes(IV_LEN);
      const c = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_LEN });
      c.setAAD(Buffer.from(context, 'utf8'));
      const ct = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
      return ['v1', iv.toString('base64url'), c.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
    },
    open(sealed, context) {
      const parts = sealed.split('.');
      if (parts.length !== 4 || parts[0] !== 'v1') throw new WgoError('INTERNAL', 'a sealed secret in the database is malformed');
      try {
        const iv = Buffer.from(parts[1]!, 'base64url');
        if (iv.length !== IV_LEN) throw new WgoError('INTERNAL', `the IV is ${iv.length} bytes, not ${IV_LEN}`);
        const d = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_LEN });
        d.setAAD(Buffer.from(context, 'utf8'));
        d.setAuthTag(Buffer.from(parts[2]!, 'base64url'));
        return Buffer.concat([d.update(Buffer.from(parts[3]!, 'base64url')), d.final()]).toString('utf8');
      } catch (e) {
        throw new WgoError('INTERNAL', 'a sealed secret does not open with admin.key (was the key replaced?)', { cause: e });
      }
    },
  };
}

/** Reads the admin key file, creating it (32 random bytes, hex, 0600) when `create` and it is missing. */
export function loadAdminKey(path: string, create: boolean): Buffer {
  let exists = true;
  try {
    statSync(path);
  } catch {
    exists = false;
  }
  if (!exists) {
    if (!create) throw new WgoError('NOT_INITIALIZED', `no admin key at ${path}: add an admin first ("wg-ollama admin add NAME")`);
    createKeyFile(path);
  }
  const text = readSecretFile(path);
  if (!/^[0-9a-f]{64}$/.test(text)) throw new WgoError('CONFIG_INVALID', `${path} is not a 32-byte hex key`);
  return Buffer.from(text, 'hex');
}

/**
 * Writes a new key to a private temporary file, then links it to `path`: a
 * link never replaces an existing file, so when two processes create the key
 * at once one wins and both read its key (a stat-then-rename could let the
 * second overwrite a key the first has already sealed with).
 */
function createKeyFile(path: string): void {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.new`;
  writeSecretFile(tmp, randomBytes(32).toString('hex') + '\n');
  try {
    linkSync(tmp, path);
  } catch (e) {
    // Another process created it first: use theirs.
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    removeFile(tmp);
  }
}
