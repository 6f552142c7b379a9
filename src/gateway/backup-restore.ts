import { closeSync, existsSync, fchmodSync, mkdirSync, mkdtempSync, openSync, readdirSync, renameSync, rmSync, rmdirSync, statSync, writeSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parseConfig } from '../config.js';
import { CONFIG_ENTRY, checkManifest, type Manifest } from '../core/backup-format.js';
import { auditRepository } from '../db/audit.js';
import { gatewayStateRepository } from '../db/gateway-state.js';
import { MIGRATIONS } from '../db/migrations.js';
import { openDatabase } from '../db/open.js';
import { WgoError, badInput } from '../errors.js';
import { writeSecretFile } from '../system/files.js';
import { hashingSink, readEnvelope } from './backup-envelope.js';
import { expectedEntries, verifyBackup } from './backup-service.js';
import type { Actor } from './peer-service.js';

export interface RestoreRequest {
  file: string;
  passphrase: string;
  /** Where the config goes (--config, $WG_OLLAMA_CONFIG or the default). */
  configFile: string;
  /** A state directory other than the one the backed-up config names (the config is rewritten to say so). */
  stateDir?: string;
  /** Move an existing state directory and config aside (never deleted) instead of refusing. */
  force?: boolean;
  /** Check the file and say what would happen; write nothing. */
  dryRun?: boolean;
  actor: Actor;
  /** Whether a serve answers on this control socket (a running gateway is never replaced). */
  daemonRunning: (socket: string) => Promise<boolean>;
  /** Makes what was written under a path durable (system/sync.ts: syncfs), before it is renamed into place. */
  flush: (path: string) => Promise<void>;
  clock?: () => number;
}

export interface RestoreResult {
  manifest: Manifest;
  configFile: string;
  stateDir: string;
  /** Where an existing state directory and config were moved (with --force). */
  movedAside: string[];
  dryRun: boolean;
}

/** A directory that is missing or empty may be restored into without --force. */
function occupied(dir: string): boolean {
  try {
    const st = statSync(dir);
    return !st.isDirectory() || readdirSync(dir).length > 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/**
 * `wg-ollama restore FILE`: two passes over the file. The first reads it all
 * and checks it (passphrase, tag, manifest, every entry's SHA-256) writing
 * nothing; then the targets are checked (an existing state directory or
 * config is refused without --force; a running serve always). The second
 * decrypts into a private directory next to the target and checks the tag
 * again (the file may have changed in between); only then is that directory
 * renamed into place and the config written (temporary file + rename). Any
 * failure removes the temporary directory and leaves the targets as they were.
 */
export async function restoreBackup(req: RestoreRequest): Promise<RestoreResult> {
  const clock = req.clock ?? Date.now;
  if (req.stateDir !== undefined && !isAbsolute(req.stateDir)) throw badInput('--state-dir must be an absolute path');
  const { manifest, configText } = await verifyBackup(req.file, req.passphrase);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(configText) as Record<string, unknown>;
  } catch {
    throw new WgoError('BAD_INPUT', 'the config in the backup is not JSON');
  }
  const stateDir = resolve(req.stateDir ?? String(raw.stateDir));
  const configFile = resolve(req.configFile);
  const newConfigText = req.stateDir === undefined ? configText : JSON.stringify({ ...raw, stateDir }, null, 2) + '\n';
  parseConfig(JSON.parse(newConfigText), configFile); // the restored config must load (CONFIG_INVALID otherwise)

  const clashes = [occupied(stateDir) ? stateDir : null, existsSync(configFile) ? configFile : null].filter((x): x is string => x !== null);
  if (clashes.length && !req.force) {
    throw new WgoError('CONFLICT', `${clashes.join(' and ')} already exist${clashes.length === 1 ? 's' : ''}: restore onto a fresh machine, give --config and --state-dir elsewhere, or pass --force to move ${clashes.length === 1 ? 'it' : 'them'} aside (nothing is deleted)`);
  }
  if (await req.daemonRunning(join(stateDir, 'control.sock'))) {
    throw new WgoError('ALREADY_RUNNING', `wg-ollama serve is running on ${stateDir}; stop it first (systemctl stop wg-ollama)`);
  }
  if (req.dryRun) return { manifest, configFile, stateDir, movedAside: [], dryRun: true };

  const parent = dirname(stateDir);
  mkdirSync(parent, { recursive: true, mode: 0o755 });
  mkdirSync(dirname(configFile), { recursive: true, mode: 0o755 });
  const work = mkdtempSync(join(parent, '.wg-ollama-restore-'));
  const moved: [string, string][] = [];
  let placed = false;
  try {
    await unpack(req.file, req.passphrase, work);
    const db = openDatabase(join(work, 'wg-ollama.db'));
    try {
      db.transaction(() => {
        auditRepository(db).record({ ...req.actor, action: 'gateway.restore', target: stateDir, details: { backupCreatedAt: manifest.createdAt, from: manifest.gateway.name, wgOllamaVersion: manifest.wgOllamaVersion } }, clock());
        // The state now is that backup: it is the last one (the snapshot was taken before `backup` recorded itself).
        gatewayStateRepository(db).recordBackup({ at: Date.parse(manifest.createdAt), file: req.file, size: statSync(req.file).size });
      })();
    } finally {
      db.close();
    }
    await req.flush(work);
    const stamp = new Date(clock()).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
    for (const target of clashes) {
      const aside = `${target}.replaced-${stamp}`;
      renameSync(target, aside);
      moved.push([target, aside]);
    }
    if (existsSync(stateDir)) rmdirSync(stateDir); // empty (else it clashed and was moved aside)
    renameSync(work, stateDir);
    placed = true;
    writeSecretFile(configFile, newConfigText);
    await req.flush(stateDir);
  } catch (e) {
    if (placed) renameSync(stateDir, work);
    for (const [target, aside] of moved.reverse()) renameSync(aside, target);
    throw e;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { manifest, configFile, stateDir, movedAside: moved.map(([, aside]) => aside), dryRun: false };
}

/**
 * Second pass: every state entry into `work` (0700 directories, each file with
 * its mode), the tag checked at the end. No fsync per file: the caller syncs
 * the file system once (10,000 preshared keys would cost 10,000 fsyncs).
 */
async function unpack(file: string, passphrase: string, work: string): Promise<void> {
  const check = hashingSink((json) => expectedEntries(checkManifest(json, MIGRATIONS.length)));
  let fd: number | null = null;
  await readEnvelope(file, passphrase, {
    manifest: (json) => check.manifest(json),
    start(name, mode, size) {
      check.start(name, mode, size);
      if (name === CONFIG_ENTRY) return;
      const path = join(work, name.slice('state/'.length));
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      fd = openSync(path, 'wx', mode);
      fchmodSync(fd, mode); // the mode it had, whatever the umask
    },
    data(bytes) {
      check.data(bytes);
      if (fd !== null) writeSync(fd, bytes);
    },
    end() {
      check.end();
      if (fd !== null) {
        closeSync(fd);
        fd = null;
      }
    },
  }).finally(() => {
    if (fd !== null) closeSync(fd);
  });
  check.complete();
}

