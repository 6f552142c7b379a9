import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createSecretBox, loadAdminKey } from '../../src/admin/secret-box.js';
import { parseConfig, type Config } from '../../src/config.js';
import type { KdfParams } from '../../src/core/backup-format.js';
import { generateKeyPair } from '../../src/core/keys.js';
import { createBackup, type BackupResult } from '../../src/gateway/backup-service.js';
import { restoreBackup, type RestoreRequest, type RestoreResult } from '../../src/gateway/backup-restore.js';
import { openGateway } from '../../src/gateway/context.js';
import { ensureServerCert } from '../../src/gateway/server-cert.js';
import { tokenService } from '../../src/gateway/token-service.js';
import { execRunner } from '../../src/system/exec.js';
import { writeSecretFile } from '../../src/system/files.js';
import { syncFileSystem } from '../../src/system/sync.js';
import { testCa } from './ca.js';

export const WHO = { actor: 'root', source: 'cli' };
export const PASS = 'correct horse battery staple';
/** The smallest cost a backup file may carry: fast tests, same code path. */
export const FAST_KDF: KdfParams = { log2N: 14, r: 8, p: 1 };

/** Every file under `dir` (relative path → mode and bytes), directories with their mode. */
export function tree(dir: string): Map<string, { mode: number; bytes: string }> {
  const out = new Map<string, { mode: number; bytes: string }>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      const rel = relative(dir, p);
      if (st.isDirectory()) {
        out.set(`${rel}/`, { mode: st.mode & 0o777, bytes: '' });
        walk(p);
      } else out.set(rel, { mode: st.mode & 0o777, bytes: readFileSync(p).toString('base64') });
    }
  };
  walk(dir);
  return out;
}

/** A names-only listing of a directory tree (to show that nothing was written). */
export const listing = (dir: string): string[] => [...tree(dir).keys()];

/**
 * A real gateway state in a temp directory: config file, server key, CA,
 * admin key, a sync server certificate in tls/, three peers (with preshared
 * keys), one API token. `root` holds it all: root/config.json, root/state.
 */
export function backupEnv() {
  const root = mkdtempSync(join(tmpdir(), 'wgo-backup-'));
  const stateDir = join(root, 'state');
  const file = join(root, 'config.json');
  const raw = { stateDir, interface: 'wgo0', listenPort: 51820, subnet: '10.66.0.0/24', endpoint: 'vpn.example.com:51820', ollamaHost: '192.168.1.10', ollamaPort: 11434, policy: { apiTokens: true } };
  writeFileSync(file, JSON.stringify(raw, null, 2) + '\n', { mode: 0o600 });
  const config: Config = parseConfig(raw, file);
  mkdirSync(stateDir, { mode: 0o700 });
  writeSecretFile(config.paths.serverKey, generateKeyPair().privateKey + '\n');
  writeSecretFile(config.paths.caKey, testCa().keyPem + testCa().certPem);
  writeFileSync(config.paths.caCert, testCa().certPem, { mode: 0o644 });
  const ctx = openGateway(config);
  try {
    for (const name of ['alice', 'bob', 'carol']) ctx.peers.add({ name }, WHO);
    ctx.peers.revoke('carol', WHO);
    tokenService({ db: ctx.db, config }).issue('alice', WHO);
    ensureServerCert(ctx, 'sync', 'gateway-server', 'wg-ollama sync', ['192.168.1.1'], []);
    createSecretBox(loadAdminKey(config.paths.adminKey, true));
  } finally {
    ctx.close();
  }
  return {
    root,
    config,
    file,
    stateDir,
    /** A backup into root/out (made on first use). */
    backup: (out: string, kdf: KdfParams = FAST_KDF, extra: { keep?: number; clock?: () => number } = {}): Promise<BackupResult> =>
      createBackup({ config, configText: readFileSync(file, 'utf8'), out, passphrase: PASS, actor: WHO, hostname: 'gw1', version: '0.1.0', kdf, ...extra }),
    restore: (r: Partial<RestoreRequest> & { file: string }): Promise<RestoreResult> =>
      restoreBackup({ passphrase: PASS, configFile: join(root, 'restored', 'config.json'), stateDir: join(root, 'restored', 'state'), actor: WHO, daemonRunning: async () => false, flush: syncFileSystem(execRunner), ...r }),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

export type BackupEnv = ReturnType<typeof backupEnv>;
