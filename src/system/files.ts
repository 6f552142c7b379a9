import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { WgoError } from '../errors.js';

/**
 * Creates a directory (and parents) with mode 0700. An existing one is used
 * only if it is a directory of ours that nobody else can read; it is never
 * chmod-ed (pointing --state-dir at /var/lib must not change /var/lib).
 */
export function ensurePrivateDir(dir: string): void {
  let st;
  try {
    st = statSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    return;
  }
  if (!st.isDirectory()) throw new WgoError('BAD_INPUT', `${dir} exists and is not a directory`);
  if (st.uid !== process.getuid?.()) throw new WgoError('BAD_INPUT', `${dir} exists and belongs to another user`);
  if ((st.mode & 0o077) !== 0) {
    throw new WgoError('BAD_INPUT', `${dir} exists with mode ${(st.mode & 0o7777).toString(8)}; give a new directory, or chmod 700 it if it is meant for wg-ollama`);
  }
}

/**
 * Writes a secret to a 0600 file atomically (temporary file, fsync, rename),
 * so a reader never sees half a key and the mode is right from the first byte.
 */
export function writeSecretFile(path: string, content: string, options: { exclusive?: boolean } = {}): void {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    try {
      writeSync(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    // A full disk fails the write after the file was created: leave nothing behind.
    removeFile(tmp);
    throw e;
  }
  if (options.exclusive) {
    try {
      statSync(path);
      unlinkSync(tmp);
      throw new WgoError('CONFLICT', `${path} already exists`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  try {
    renameSync(tmp, path);
  } catch (e) {
    removeFile(tmp);
    throw e;
  }
}

export function readSecretFile(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new WgoError('NOT_INITIALIZED', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

export function removeFile(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

export function modeOf(path: string): number | null {
  try {
    return statSync(path).mode & 0o777;
  } catch {
    return null;
  }
}

export function parentDir(path: string): string {
  return dirname(path);
}
