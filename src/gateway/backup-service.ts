import { createHash } from 'node:crypto';
import { createReadStream, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import type { Config } from '../config.js';
import { BACKUP_FORMAT, CONFIG_ENTRY, DB_ENTRY, DEFAULT_KDF, checkEntryName, checkManifest, type KdfParams, type Manifest } from '../core/backup-format.js';
import { backupsToRemove, isBackupFileName } from '../core/backup-rotation.js';
import { auditRepository } from '../db/audit.js';
import { gatewayStateRepository, livePskRefs, stateCounts } from '../db/gateway-state.js';
import { MIGRATIONS } from '../db/migrations.js';
import { openDatabase, openSnapshot } from '../db/open.js';
import { WgoError } from '../errors.js';
import { hashingSink, readEnvelope, writeEnvelope, type PayloadEntry } from './backup-envelope.js';
import type { Actor } from './peer-service.js';

/**
 * `wg-ollama backup`: one encrypted file with a consistent snapshot of the
 * database (SQLite's online backup API, while serve keeps writing), every
 * other file of the state directory with its mode, and the config.
 *
 * What the state directory holds and what a backup takes of it:
 *   wg-ollama.db            the snapshot (never the live file; -wal/-shm/-journal are left out)
 *   server.key              WireGuard private key (0600)
 *   ca.key, ca.crt          the CA: key + certificate (0600), public copy (0644)
 *   admin.key               seals admins' TOTP secrets (0600)
 *   psk/*.psk               preshared keys, one per peer (0600)
 *   tls/*.crt, tls/*.key    the gateway's own server certificates (sync API, admin UI, single-box guard)
 *   anything else there, except control.sock (a socket), temporary files (*.tmp, *.new) and syncconf-*.conf
 * Not in a backup: what the config names outside the state directory
 * (admin.tls), listed in the manifest's `notIncluded`.
 */

const DB_FILES = new Set(['wg-ollama.db', 'wg-ollama.db-wal', 'wg-ollama.db-shm', 'wg-ollama.db-journal']);
const MAX_FILE = 16 * 1024 * 1024;
const MAX_FILES = 200_000;
const MAX_DEPTH = 3;

const skipped = (name: string): boolean => /\.(tmp|new)$/.test(name) || /^syncconf-[0-9a-f]+\.conf$/.test(name);

const restorableName = (name: string): boolean => {
  try {
    checkEntryName(name);
    return true;
  } catch {
    return false;
  }
};

/** Every file of the state directory but the database, read into memory with its mode. */
export function collectStateFiles(stateDir: string): PayloadEntry[] {
  const out: PayloadEntry[] = [];
  const walk = (dir: string, depth: number): void => {
    for (const d of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(dir, d.name);
      const rel = relative(stateDir, path).split(sep).join('/');
      if (depth === 0 && DB_FILES.has(d.name)) continue;
      if (d.isDirectory()) {
        if (depth + 1 < MAX_DEPTH) walk(path, depth + 1);
        continue;
      }
      if (!d.isFile() || skipped(d.name)) continue;
      // Restore takes only plain names (checkEntryName): a backup holding another could never be restored.
      if (!restorableName(`state/${rel}`)) {
        throw new WgoError('BAD_INPUT', `cannot back up ${path}: not a file name wg-ollama writes (letters, digits, "._-", at most 128 characters); move it out of the state directory`);
      }
      const st = lstatSync(path);
      if (st.size > MAX_FILE) throw new WgoError('INTERNAL', `${path} is over ${MAX_FILE >> 20} MiB: not a file wg-ollama keeps there; move it out of the state directory`);
      if (out.length >= MAX_FILES) throw new WgoError('INTERNAL', `the state directory holds over ${MAX_FILES} files`);
      let data: Buffer;
      try {
        data = readFileSync(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed meanwhile (a revoked peer's key)
        throw e;
      }
      out.push({ name: `state/${rel}`, mode: st.mode & 0o777, size: data.length, data });
    }
  };
  walk(stateDir, 0);
  return out;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(c as Buffer);
  return h.digest('hex');
}

export interface BackupRequest {
  config: Config;
  /** The config file as it is on disk (its exact bytes go into the backup). */
  configText: string;
  out: string;
  passphrase: string;
  actor: Actor;
  /** Host name of the gateway, and this wg-ollama's version, for the manifest. */
  hostname: string;
  version: string;
  kdf?: KdfParams;
  /** With --out-dir: keep only the newest `keep` backups of ours in the directory. */
  keep?: number;
  clock?: () => number;
}

export interface BackupResult {
  file: string;
  size: number;
  manifest: Manifest;
  removed: string[];
}

const inside = (child: string, parent: string): boolean => {
  const r = relative(resolve(parent), resolve(child));
  return r === '' || (!r.startsWith('..') && !r.startsWith('/'));
};

/** Writes the backup to `out` (0600, whole or not at all), records it in the database, rotates. */
export async function createBackup(req: BackupRequest): Promise<BackupResult> {
  const { config } = req;
  const clock = req.clock ?? Date.now;
  const out = resolve(req.out);
  if (inside(out, config.stateDir)) throw new WgoError('BAD_INPUT', `the backup must not go into the state directory ${config.stateDir}`);
  try {
    statSync(out);
    throw new WgoError('CONFLICT', `${out} already exists; give a new file name`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const dir = dirname(out);
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new WgoError('BAD_INPUT', `${dir} is not a directory`);

  // Never a new empty database in its place: openDatabase would create one.
  if (!existsSync(config.paths.db)) throw new WgoError('NOT_INITIALIZED', `no database at ${config.paths.db}: nothing to back up (run wg-ollama init first)`);
  const files = collectStateFiles(config.stateDir);
  const db = openDatabase(config.paths.db);
  let work: string | null = null;
  try {
    work = mkdtempSync(join(dir, '.wg-ollama-backup-'));
    const snapshot = join(work, 'snapshot.db');
    // One step: the copy is one read transaction, a consistent snapshot; WAL lets serve keep writing meanwhile.
    await db.backup(snapshot, { progress: () => 0x7fffffff });
    const snap = openSnapshot(snapshot);
    let schemaVersion: number;
    let counts;
    let refs: string[];
    try {
      schemaVersion = snap.pragma('user_version', { simple: true }) as number;
      counts = stateCounts(snap, clock());
      refs = livePskRefs(snap);
    } finally {
      snap.close();
    }
    // A key written (and committed) while the files were read: take it now.
    const have = new Set(files.map((f) => f.name));
    for (const ref of refs) {
      const name = `state/psk/${ref}.psk`;
      if (have.has(name)) continue;
      try {
        const data = readFileSync(join(config.paths.pskDir, `${ref}.psk`));
        files.push({ name, mode: statSync(join(config.paths.pskDir, `${ref}.psk`)).mode & 0o777, size: data.length, data });
      } catch {
        /* removed since the snapshot (revoked or rotated meanwhile): that peer is left out at restore, fail closed */
      }
    }
    const configData = Buffer.from(req.configText, 'utf8');
    const entries: PayloadEntry[] = [
      { name: CONFIG_ENTRY, mode: 0o600, size: configData.length, data: configData },
      { name: DB_ENTRY, mode: 0o600, size: statSync(snapshot).size, path: snapshot },
      ...files,
    ];
    // One AES-GCM stream under one nonce carries at most 2^39 - 256 bits (64 GiB).
    if (entries.reduce((n, e) => n + e.size, 0) > 63 * 1024 ** 3) throw new WgoError('INTERNAL', 'the state is over 63 GiB: too large for one backup file');
    const manifest: Manifest = {
      format: BACKUP_FORMAT,
      wgOllamaVersion: req.version,
      schemaVersion,
      createdAt: new Date(clock()).toISOString(),
      gateway: { name: req.hostname, interface: config.interface, endpoint: config.endpoint, stateDir: config.stateDir, configFile: config.file },
      counts,
      entries: await Promise.all(entries.map(async (e) => ({ name: e.name, mode: e.mode, size: e.size, sha256: e.data ? sha256(e.data) : await sha256File(e.path!) }))),
      notIncluded: config.admin?.tls ? [`${config.admin.tls.cert} and ${config.admin.tls.key} (admin.tls, outside the state directory)`] : [],
    };
    const tmp = join(work, 'backup.wgobak');
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await writeEnvelope(fh, req.passphrase, req.kdf ?? DEFAULT_KDF, JSON.stringify(manifest), entries);
      await fh.sync();
    } finally {
      await fh.close();
    }
    // A link never replaces a file: a backup that appeared meanwhile at `out` is kept.
    try {
      linkSync(tmp, out);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new WgoError('CONFLICT', `${out} already exists; give a new file name`);
      throw e;
    }
    const size = statSync(out).size;
    const at = clock();
    db.transaction(() => {
      gatewayStateRepository(db).recordBackup({ at, file: out, size });
      auditRepository(db).record({ ...req.actor, action: 'gateway.backup', target: out, details: { size, peers: counts.peers, requests: counts.requests } }, at);
    })();
    const removed = req.keep === undefined ? [] : rotate(dir, req.keep, basename(out));
    return { file: out, size, manifest, removed };
  } finally {
    db.close();
    if (work) rmSync(work, { recursive: true, force: true });
  }
}

/** Removes our oldest backups in `dir` beyond `keep` (never `current`, never a file not named like ours). */
function rotate(dir: string, keep: number, current: string): string[] {
  const names = readdirSync(dir).filter(isBackupFileName);
  const removed: string[] = [];
  for (const n of backupsToRemove(names, keep)) {
    if (n === current) continue;
    try {
      unlinkSync(join(dir, n));
      removed.push(join(dir, n));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return removed;
}

/** The manifest as a map for the hashing sink, after checking it against this build. */
export const expectedEntries = (m: Manifest): Map<string, { mode: number; size: number; sha256: string }> =>
  new Map(m.entries.map((e) => [e.name, { mode: e.mode, size: e.size, sha256: e.sha256 }]));

/**
 * Reads a whole backup file and checks it (passphrase, tag, manifest, every
 * entry's SHA-256) without writing anything; returns the manifest and the
 * config it holds. `backup --verify` and the first pass of restore.
 */
export async function verifyBackup(file: string, passphrase: string): Promise<{ manifest: Manifest; configText: string }> {
  let manifest: Manifest | null = null;
  const config: Buffer[] = [];
  let inConfig = false;
  const check = hashingSink((json) => {
    manifest = checkManifest(json, MIGRATIONS.length);
    return expectedEntries(manifest);
  });
  await readEnvelope(file, passphrase, {
    manifest: (json) => check.manifest(json),
    start(name, mode, size) {
      check.start(name, mode, size);
      inConfig = name === CONFIG_ENTRY;
      if (inConfig && size > 1024 * 1024) throw new WgoError('BAD_INPUT', 'the backup file is damaged: its config is over 1 MiB');
    },
    data(bytes) {
      check.data(bytes);
      if (inConfig) config.push(Buffer.from(bytes));
    },
    end() {
      check.end();
      inConfig = false;
    },
  });
  check.complete();
  return { manifest: manifest!, configText: Buffer.concat(config).toString('utf8') };
}

/** Creates `dir` (0700) for --out-dir when it is missing. */
export function ensureBackupDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}
