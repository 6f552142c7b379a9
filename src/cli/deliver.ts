import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
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
  const ca = join(dir, 'ca.crt');
  const items: [string, string | Buffer, number, 'wx' | 'w'][] = [[f.conf, config, 0o600, 'wx'], [f.png, png, 0o600, 'wx'], [f.svg, svg, 0o600, 'wx']];
  if (tls) {
    items.push([f.crt, tls.certPem, 0o600, 'wx'], [f.key, tls.keyPem, 0o600, 'wx'], [f.p12, tls.p12, 0o600, 'wx'], [f.connect, tls.connectProfile, 0o600, 'wx']);
    const shared: [string, string | Buffer][] = [[ca, tls.caPem]];
    const bundle = connectorBundle();
    if (bundle) shared.push([join(dir, CONNECTOR_FILE), readFileSync(bundle)]);
    // Public and shared by the peers of this directory: replaced when they differ (a new CA, an upgraded connector).
    for (const [file, data] of shared) if (!sameContent(file, data)) items.push([file, data, 0o644, 'w']);
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  try {
    for (const [file, data, mode, flag] of items) {
      writeFileSync(file, data, { mode, flag });
      written.push(file);
    }
  } catch (e) {
    for (const file of written) rmSync(file, { force: true });
    // A file created but not completely written (disk full) is removed too.
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      for (const [file] of items) if (!written.includes(file)) rmSync(file, { force: true });
    }
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
