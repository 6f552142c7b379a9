import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CONNECTOR_FILE, connectorBundle } from '../connect/bundle.js';
import QRCode from 'qrcode';
import { WgoError, badInput } from '../errors.js';

/** The file names `--out DIR` writes for a peer (ca.crt may be shared by several peers). */
export const outFiles = (dir: string, name: string) => ({
  conf: join(dir, `${name}.conf`),
  png: join(dir, `${name}.png`),
  svg: join(dir, `${name}.svg`),
  crt: join(dir, `${name}.crt`),
  key: join(dir, `${name}.key`),
  p12: join(dir, `${name}.p12`),
  connect: join(dir, `${name}.connect.json`),
});


/** What a peer gets besides its WireGuard config: the client certificate, its key, the CA and a .p12 of them. */
export interface TlsBundle {
  certPem: string;
  keyPem: string;
  caPem: string;
  p12: Buffer;
  /** The connect profile (NAME.connect.json): guard URL, CA, certificate and key in one file. */
  connectProfile: string;
}

/**
 * Checked before anything changes, and changing nothing itself: DIR is a
 * writable directory (or can be created under a writable parent) without our
 * files in it. The directory is created only when the files are written.
 */
export function preflightOut(dir: string, name: string): string {
  const abs = preflightDir(dir);
  for (const f of Object.values(outFiles(abs, name))) {
    if (existsSync(f)) throw new WgoError('CONFLICT', `${f} already exists; choose another --out directory`);
  }
  return abs;
}

/** DIR is a writable directory, or can be created under a writable parent; creates nothing. */
export function preflightDir(dir: string): string {
  const abs = resolve(dir);
  let existing = abs;
  while (!existsSync(existing)) existing = dirname(existing);
  if (!statSync(existing).isDirectory()) throw badInput(`--out ${dir}: ${existing} is not a directory`);
  try {
    accessSync(existing, constants.W_OK);
  } catch {
    throw badInput(`--out ${dir}: ${existing} is not writable`);
  }
  return abs;
}

/**
 * Writes NAME.conf, NAME.png, NAME.svg (the QR code holds the private key),
 * and with a TLS bundle NAME.crt, NAME.key, NAME.p12, NAME.connect.json,
 * ca.crt and the connector (wg-ollama-connect.mjs). Secrets are 0600; ca.crt
 * and the connector (public, 0644) are left alone when they already hold the
 * same bytes. Renders first; on any failure removes what it wrote.
 */
export async function writeOut(dir: string, name: string, config: string, tls?: TlsBundle): Promise<string[]> {
  const f = outFiles(dir, name);
  const png = await QRCode.toBuffer(config, { type: 'png', errorCorrectionLevel: 'M', margin: 4, scale: 6 });
  const svg = await QRCode.toString(config, { type: 'svg', errorCorrectionLevel: 'M', margin: 4 });
  // The peer's own files: new, 0600, never over anything (preflightOut checked; 'wx' makes sure).
  const own: [string, string | Buffer][] = [[f.conf, config], [f.png, png], [f.svg, svg]];
  // Public files the peers of this directory share: replaced when they differ (a new CA, an upgraded connector).
  const shared: [string, string | Buffer][] = [];
  if (tls) {
    own.push([f.crt, tls.certPem], [f.key, tls.keyPem], [f.p12, tls.p12], [f.connect, tls.connectProfile]);
    const bundle = connectorBundle();
    for (const [file, data] of [[join(dir, 'ca.crt'), tls.caPem], ...(bundle ? [[join(dir, CONNECTOR_FILE), readFileSync(bundle)]] : [])] as [string, string | Buffer][]) {
      if (!sameContent(file, data)) shared.push([file, data]);
    }
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  const temps: string[] = [];
  try {
    for (const [file, data] of own) {
      try {
        writeFileSync(file, data, { mode: 0o600, flag: 'wx' });
      } catch (e) {
        // Created by us but not completely written (a full disk): ours to remove. EEXIST: not ours.
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') rmSync(file, { force: true });
        throw e;
      }
      written.push(file);
    }
    // Shared files: written next to the target, then renamed over it. A rename replaces a symlink
    // planted there instead of writing through it (this runs as root), and a failure leaves the
    // file other peers use as it was.
    for (const [file, data] of shared) {
      const tmp = join(dir, `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
      temps.push(tmp);
      writeFileSync(tmp, data, { mode: 0o644, flag: 'wx' });
    }
    for (const [i, [file]] of shared.entries()) {
      renameSync(temps[i]!, file);
      written.push(file);
    }
  } catch (e) {
    for (const file of written.filter((w) => own.some(([o]) => o === w))) rmSync(file, { force: true });
    for (const tmp of temps) rmSync(tmp, { force: true });
    throw e;
  }
  return written;
}

function sameContent(file: string, data: string | Buffer): boolean {
  try {
    return readFileSync(file).equals(Buffer.from(data));
  } catch {
    return false;
  }
}

export function terminalQr(config: string): Promise<string> {
  return QRCode.toString(config, { type: 'terminal', small: true, errorCorrectionLevel: 'M' });
}
