import { accessSync, constants, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import QRCode from 'qrcode';
import { WgoError, badInput } from '../errors.js';

/** The file names `--out DIR` writes for a peer. */
export const outFiles = (dir: string, name: string) => ({
  conf: join(dir, `${name}.conf`),
  png: join(dir, `${name}.png`),
  svg: join(dir, `${name}.svg`),
});

/**
 * Checked before anything changes, and changing nothing itself: DIR is a
 * writable directory (or can be created under a writable parent) without our
 * files in it. The directory is created only when the files are written.
 */
export function preflightOut(dir: string, name: string): string {
  const abs = resolve(dir);
  let existing = abs;
  while (!existsSync(existing)) existing = dirname(existing);
  if (!statSync(existing).isDirectory()) throw badInput(`--out ${dir}: ${existing} is not a directory`);
  try {
    accessSync(existing, constants.W_OK);
  } catch {
    throw badInput(`--out ${dir}: ${existing} is not writable`);
  }
  for (const f of Object.values(outFiles(abs, name))) {
    if (existsSync(f)) throw new WgoError('CONFLICT', `${f} already exists; choose another --out directory`);
  }
  return abs;
}

/**
 * Writes NAME.conf, NAME.png and NAME.svg (the QR code holds the private key:
 * all 0600). Renders first; on any failure removes what it wrote.
 */
export async function writeOut(dir: string, name: string, config: string): Promise<string[]> {
  const f = outFiles(dir, name);
  const png = await QRCode.toBuffer(config, { type: 'png', errorCorrectionLevel: 'M', margin: 4, scale: 6 });
  const svg = await QRCode.toString(config, { type: 'svg', errorCorrectionLevel: 'M', margin: 4 });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  try {
    for (const [file, data] of [[f.conf, config], [f.png, png], [f.svg, svg]] as const) {
      writeFileSync(file, data, { mode: 0o600, flag: 'wx' });
      written.push(file);
    }
  } catch (e) {
    for (const file of written) rmSync(file, { force: true });
    // A file created but not completely written (disk full) is removed too.
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      for (const file of [f.conf, f.png, f.svg]) if (!written.includes(file)) rmSync(file, { force: true });
    }
    throw e;
  }
  return written;
}

export function terminalQr(config: string): Promise<string> {
  return QRCode.toString(config, { type: 'terminal', small: true, errorCorrectionLevel: 'M' });
}
