import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DEFAULT_STATE_DIR, parseConfig, type ConfigInput } from '../config.js';
import { generateKeyPair, publicKeyOf } from '../core/keys.js';
import { auditRepository } from '../db/audit.js';
import { openDatabase } from '../db/open.js';
import { WgoError, badInput } from '../errors.js';
import { ensurePrivateDir, readSecretFile, writeSecretFile } from '../system/files.js';
import { permittedForConfig } from '../core/ca-names.js';
import { caStore } from '../gateway/ca-store.js';
import { denialJournal } from '../gateway/denials.js';
import { certificateInfo } from '../pki/ca.js';
import { emit, type Io } from './output.js';

export interface InitOptions {
  endpoint: string;
  ollamaHost: string;
  ollamaPort: string;
  subnet: string;
  interface: string;
  listenPort: string;
  stateDir?: string;
  syncListen?: string;
  json?: boolean;
}

function intOption(text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text)) throw badInput(`${what} "${text}" is not a port number`);
  return Number(text);
}

/**
 * `wg-ollama init`: validates every option first, then creates the state
 * directory (0700), the server key (0600, kept if present), the config file
 * and the database. Refuses to overwrite an existing config.
 */
export function runInit(file: string, o: InitOptions, io: Io, actor: string): void {
  const raw: ConfigInput = {
    stateDir: o.stateDir ?? DEFAULT_STATE_DIR,
    interface: o.interface,
    listenPort: intOption(o.listenPort, '--listen-port'),
    subnet: o.subnet,
    endpoint: o.endpoint,
    ollamaHost: o.ollamaHost,
    ollamaPort: intOption(o.ollamaPort, '--ollama-port'),
    ...(o.syncListen ? { sync: { listen: o.syncListen } } : {}),
  };
  let config;
  try {
    config = parseConfig(raw, file);
  } catch (e) {
    throw badInput((e as Error).message.replace(/^invalid config [^:]+: /, 'invalid option: '));
  }
  if (existsSync(file)) throw new WgoError('CONFLICT', `${file} already exists; remove it to initialise again`);

  ensurePrivateDir(config.stateDir);
  ensurePrivateDir(config.paths.pskDir);
  let publicKey: string;
  if (existsSync(config.paths.serverKey)) {
    publicKey = publicKeyOf(readSecretFile(config.paths.serverKey));
  } else {
    const pair = generateKeyPair();
    writeSecretFile(config.paths.serverKey, pair.privateKey + '\n', { exclusive: true });
    publicKey = pair.publicKey;
  }
  const { ca, created } = caStore(config.paths, { permitted: permittedForConfig(config) }).ensure();
  const caFingerprint = certificateInfo(ca.certPem).fingerprint256;
  // Pre-allocated now, while there is space: a revoke on a full disk is kept there (gateway/denials.ts).
  if (!denialJournal(join(config.stateDir, 'denials')).ensure()) throw new WgoError('DISK_FULL', `the disk holding ${config.stateDir} is full`);
  const db = openDatabase(config.paths.db);
  try {
    auditRepository(db).record({ actor, source: 'cli', action: 'gateway.init', target: config.interface, details: { endpoint: config.endpoint, ollamaHost: config.ollamaHost, subnet: config.subnet, caCreated: created, caFingerprint } }, Date.now());
  } finally {
    db.close();
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  writeFileSync(file, JSON.stringify({ ...raw, stateDir: config.stateDir }, null, 2) + '\n', { mode: 0o640, flag: 'wx' });

  emit(io, o.json, { config: file, stateDir: config.stateDir, interface: config.interface, publicKey, endpoint: config.endpoint, caCertificate: config.paths.caCert, caFingerprint }, (d) =>
    `initialised ${d.interface}: config ${d.config}, state ${d.stateDir}\nserver public key ${d.publicKey}\nCA ${d.caCertificate} (SHA-256 ${d.caFingerprint})\n`);
}
