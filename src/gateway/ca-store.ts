import { generateKeyPairSync } from 'node:crypto';
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { StatePaths } from '../config.js';
import { createCa, type CaMaterial } from '../pki/ca.js';
import { WgoError } from '../errors.js';

const PEM_RE = /-----BEGIN ([A-Z ]+)-----[\s\S]+?-----END \1-----\n?/g;

/** A fresh RSA key for a leaf certificate, made outside any transaction (it is the slow part). */
export function generateLeafKey(): { publicKeyPem: string; keyPem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/**
 * The gateway's CA. Key and certificate live together in `ca.key` (0600) so
 * they are created in one atomic step: written to a temporary file and linked
 * into place, which fails if another process won the race (then its CA is
 * used). `ca.crt` is the public copy handed to clients.
 */
export function caStore(paths: Pick<StatePaths, 'caKey' | 'caCert'>, commonName = 'wg-ollama CA') {
  let cached: CaMaterial | null = null;

  const read = (): CaMaterial | null => {
    let text: string;
    try {
      text = readFileSync(paths.caKey, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new WgoError('NOT_INITIALIZED', `cannot read the CA ${paths.caKey}: ${(e as Error).message}`, { cause: e });
    }
    const blocks = text.match(PEM_RE) ?? [];
    const keyPem = blocks.find((b) => b.includes('PRIVATE KEY'));
    const certPem = blocks.find((b) => b.includes('BEGIN CERTIFICATE'));
    if (!keyPem || !certPem) throw new WgoError('INTERNAL', `${paths.caKey} does not hold a CA key and certificate`);
    return { keyPem, certPem };
  };

  const publish = (ca: CaMaterial): void => {
    let current = '';
    try {
      current = readFileSync(paths.caCert, 'utf8');
    } catch {
      /* not there yet */
    }
    if (current !== ca.certPem) writeFileSync(paths.caCert, ca.certPem, { mode: 0o644 });
  };

  return {
    /** The CA, or null when none has been created yet. */
    load(): CaMaterial | null {
      cached ??= read();
      return cached;
    },
    /** The CA, created on first use. Returns whether this call created it. */
    ensure(): { ca: CaMaterial; created: boolean } {
      const existing = this.load();
      if (existing) {
        publish(existing);
        return { ca: existing, created: false };
      }
      const ca = createCa({ commonName });
      const tmp = `${paths.caKey}.${randomBytes(6).toString('hex')}.tmp`;
      writeFileSync(tmp, ca.keyPem + ca.certPem, { mode: 0o600, flag: 'wx' });
      let created = true;
      try {
        linkSync(tmp, paths.caKey);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        created = false;
      } finally {
        unlinkSync(tmp);
      }
      cached = created ? ca : read();
      publish(cached!);
      return { ca: cached!, created };
    },
  };
}

export type CaStore = ReturnType<typeof caStore>;
