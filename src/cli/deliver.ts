import { accessSync, constants, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import QRCode from 'qrcode';
import { WgoError, badInput } from '../errors.js';

/** The file names `--out DIR` writes for a peer. */
export const outFiles = (dir: string, name: string) => ({
  conf: join(dir, `${name}.conf`),
  png: join(dir, `${name}.png`),
  svg: join(dir, `${name}.svg`),
});

/** Checked before anything changes: DIR is (or can become) a writable directory without our files in it. */
export function preflightOut(dir: string, name: string): string {
  const abs = resolve(dir);
  if (existsSync(abs)) {
    if (!statSync(abs).isDirectory()) throw badInput(`--out ${dir} is not a directory`);
  } else {
    mkdirSync(abs, { recursive: true, mode: 0o700 });
  }
  try {
    accessSync(abs, constants.W_OK);
  } catch {
    throw badInput(`--out ${dir} is not writable`);
  }
  for (const f of Object.values(outFiles(abs, name))) {
    if (existsSync(f)) throw new WgoError('CONFLICT', `${f} already exists; choose another --out directory`);
  }
  return abs;
}

/** Writes NAME.conf (0600), NAME.png and NAME.svg (the QR code, which holds the private key: 0600 too). */
export async function writeOut(dir: string, name: string, config: string): Promise<string[]> {
  const f = outFiles(dir, name);
  const png = await QRCode.toBuffer(config, { type: 'png', errorCorrectionLevel: 'M', margin: 4, scale: 6 });
  const svg = await QRCode.toString(config, { type: 'svg', errorCorrectionLevel: 'M', margin: 4 });
  writeFileSync(f.conf, config, { mode: 0o600, flag: 'wx' });
  writeFileSync(f.png, png, { mode: 0o600, flag: 'wx' });
  writeFileSync(f.svg, svg, { mode: 0o600, flag: 'wx' });
  return [f.conf, f.png, f.svg];
}

export function terminalQr(config: string): Promise<string> {
  return QRCode.toString(config, { type: 'terminal', small: true, errorCorrectionLevel: 'M' });
}
