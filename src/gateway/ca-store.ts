import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { linkSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { StatePaths } from '../config.js';
import type { PermittedNames } from '../core/ca-names.js';
import { createCa, type CaMaterial } from '../pki/ca.js';
import { WgoError, badInput } from '../errors.js';

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
 *
 * A new CA gets name constraints when `permitted` is given (see
 * core/ca-names permittedForConfig). `replaceCertificate` swaps in a
 * re-issued CA certificate for the same key (`wg-ollama reissue-ca`); every
 * store notices the new file at its next load, a running serve included.
 */
export function caStore(paths: Pick<StatePaths, 'caKey' | 'caCert'>, opts: { commonName?: string; permitted?: PermittedNames } = {}) {
  const commonName = opts.commonName ?? 'wg-ollama CA';
  let cached: { ca: CaMaterial; stamp: string } | null = null;
  /** Identifies the ca.key file as written: a replacement is a rename, so a new inode. */
  const stampOf = (): string | null => {
    try {
      const st = statSync(paths.caKey);
      return `${st.ino}:${st.mtimeMs}:${st.size}`;
    } catch {
      return null;
    }
  };

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
    if (current !== ca.certPem) {
      const tmp = `${paths.caCert}.${randomBytes(6).toString('hex')}.tmp`;
      writeFileSync(tmp, ca.certPem, { mode: 0o644, flag: 'wx' });
      renameSync(tmp, paths.caCert);
    }
  };

  return {
    /** The CA, or null when none has been created yet. */
    load(): CaMaterial | null {
      const stamp = stampOf();
      if (cached && cached.stamp === stamp) return cached.ca;
      const ca = read();
      cached = ca && stamp ? { ca, stamp } : null;
      return ca;
    },
    /** The CA, created on first use. Returns whether this call created it. */
    ensure(): { ca: CaMaterial; created: boolean } {
      const existing = this.load();
      if (existing) {
        publish(existing);
        return { ca: existing, created: false };
      }
      const ca = createCa({ commonName, ...(opts.permitted ? { permitted: opts.permitted } : {}) });
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
      const result = created ? ca : read()!;
      cached = { ca: result, stamp: stampOf() ?? '' };
      publish(result);
      return { ca: result, created };
    },
    /**
     * Puts a re-issued certificate for the same CA key in place: ca.key (key +
     * new certificate) and ca.crt are both written to temporary files first,
     * then renamed over the old ones, so a failure part-way changes nothing
     * (a crash between the two renames leaves ca.crt behind, and the next
     * ensure() writes it again from ca.key).
     */
    replaceCertificate(certPem: string): CaMaterial {
      const current = read();
      if (!current) throw new WgoError('NOT_INITIALIZED', `there is no CA at ${paths.caKey} to re-issue`);
      let x: X509Certificate;
      try {
        x = new X509Certificate(certPem);
      } catch (cause) {
        throw new WgoError('BAD_INPUT', 'the new CA certificate is not a valid PEM certificate', { cause });
      }
      if (!x.ca || !x.checkPrivateKey(createPrivateKey(current.keyPem)) || x.subject !== new X509Certificate(current.certPem).subject) {
        throw badInput('the new CA certificate must be a CA certificate for the same key and subject');
      }
      const next: CaMaterial = { keyPem: current.keyPem, certPem };
      const suffix = `${randomBytes(6).toString('hex')}.tmp`;
      const tmpKey = `${paths.caKey}.${suffix}`;
      const tmpCert = `${paths.caCert}.${suffix}`;
      try {
        writeFileSync(tmpKey, next.keyPem + next.certPem, { mode: 0o600, flag: 'wx' });
        writeFileSync(tmpCert, next.certPem, { mode: 0o644, flag: 'wx' });
        renameSync(tmpKey, paths.caKey);
      } catch (e) {
        rmSync(tmpKey, { force: true });
        rmSync(tmpCert, { force: true });
        throw new WgoError('EXEC_FAILED', `could not write the re-issued CA certificate (nothing was changed): ${(e as Error).message}`, { cause: e });
      }
      renameSync(tmpCert, paths.caCert);
      cached = { ca: next, stamp: stampOf() ?? '' };
      return next;
    },
  };
}

export type CaStore = ReturnType<typeof caStore>;
