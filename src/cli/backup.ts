import { existsSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config.js';
import type { Manifest } from '../core/backup-format.js';
import { backupFileName } from '../core/backup-rotation.js';
import { badInput, isWgoError, WgoError } from '../errors.js';
import { checkPassphrase } from '../gateway/backup-envelope.js';
import { restoreBackup } from '../gateway/backup-restore.js';
import { createBackup, ensureBackupDir, verifyBackup } from '../gateway/backup-service.js';
import { requestControl } from '../gateway/control.js';
import type { Actor } from '../gateway/peer-service.js';
import { execRunner } from '../system/exec.js';
import { syncFileSystem } from '../system/sync.js';
import { stdinPassword } from './admin.js';
import { bytes, emit, type Io } from './output.js';

export interface BackupOptions {
  out?: string;
  outDir?: string;
  keep?: string;
  verify?: string;
  passphraseFile?: string;
  json?: boolean;
}

export interface RestoreOptions {
  stateDir?: string;
  force?: boolean;
  dryRun?: boolean;
  passphraseFile?: string;
  json?: boolean;
}

/** This wg-ollama's version (package.json, two floors up from src/cli and dist/cli alike). */
function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Reads one line from the terminal with echo off (the passphrase is never shown). */
function ttyLine(prompt: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    let line = '';
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    const done = (err: Error | null): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (text: string): void => {
      for (const c of text) {
        if (c === '\r' || c === '\n') return done(null);
        if (c === '\u0003' || c === '\u0004') return done(badInput('no passphrase given'));
        if (c === '\u007f' || c === '\b') line = [...line].slice(0, -1).join('');
        else if (line.length < 4096) line += c;
      }
    };
    stdin.on('data', onData);
  });
}

/**
 * The passphrase: the first line of a file that only its owner can read
 * (--passphrase-file, e.g. a systemd credential), or of standard input —
 * asked for with echo off when that is a terminal (twice with `confirm`).
 */
async function passphrase(o: { passphraseFile?: string }, io: Io, confirm = false): Promise<string> {
  if (!o.passphraseFile && !io.readStdin && process.stdin.isTTY) {
    const first = checkPassphrase(await ttyLine('passphrase (not shown): '));
    if (confirm && (await ttyLine('the same again: ')) !== first) throw badInput('the two passphrases differ');
    return first;
  }
  let text: string;
  if (o.passphraseFile) {
    let st;
    try {
      st = statSync(o.passphraseFile);
    } catch (e) {
      throw badInput(`cannot read the passphrase file ${o.passphraseFile}: ${(e as Error).message}`);
    }
    if (!st.isFile()) throw badInput(`${o.passphraseFile} is not a file`);
    if ((st.mode & 0o077) !== 0) throw badInput(`${o.passphraseFile} has mode ${(st.mode & 0o777).toString(8)}: a passphrase file must be readable by its owner only (chmod 600)`);
    if (st.size > 16 * 1024) throw badInput(`${o.passphraseFile} is over 16 KiB`);
    text = readFileSync(o.passphraseFile, 'utf8');
  } else {
    text = await (io.readStdin ?? stdinPassword())();
  }
  const line = text.split(/\r?\n/)[0] ?? '';
  if (line === '') throw badInput('no passphrase: give it as the first line of standard input (or --passphrase-file FILE)');
  return checkPassphrase(line);
}

function keepOption(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,4}$/.test(text) || Number(text) < 1) throw badInput(`--keep "${text}" must be a number of backups, 1 or more`);
  return Number(text);
}

const countsText = (m: Manifest): string => {
  const c = m.counts;
  const peers = Object.entries(c.peers).map(([k, v]) => `${v} ${k}`).join(', ') || 'none';
  return [
    `  gateway   ${m.gateway.name}, interface ${m.gateway.interface}, endpoint ${m.gateway.endpoint}`,
    `  made      ${m.createdAt} by wg-ollama ${m.wgOllamaVersion} (schema ${m.schemaVersion})`,
    `  peers     ${peers}`,
    `  holds     ${c.certificates} certificates (${c.certificatesInForce} in force), ${c.apiTokens} API tokens, ${c.guards} guards, ${c.admins} admins`,
    `  records   ${c.requests} requests, ${c.connectionEvents} connection events, ${c.auditRecords} audit records`,
    `  files     ${m.entries.length} (${bytes(m.entries.reduce((s, e) => s + e.size, 0))})`,
    ...m.notIncluded.map((n) => `  NOT in it ${n}`),
  ].join('\n') + '\n';
};

/** `wg-ollama backup --out FILE | --out-dir DIR [--keep N]`, or `backup --verify FILE`. */
export async function runBackup(configFile: string, o: BackupOptions, io: Io, who: Actor, now: () => number = Date.now): Promise<void> {
  if (o.verify !== undefined) {
    if (o.out || o.outDir || o.keep) throw badInput('--verify takes no --out, --out-dir or --keep');
    const { manifest } = await verifyBackup(resolve(o.verify), await passphrase(o, io));
    emit(io, o.json, { file: resolve(o.verify), ok: true, manifest }, (d) => `${d.file}: intact, the passphrase opens it\n${countsText(d.manifest)}`);
    return;
  }
  if (!o.out === !o.outDir) throw badInput('give either --out FILE or --out-dir DIR');
  const keep = keepOption(o.keep);
  if (keep !== undefined && !o.outDir) throw badInput('--keep goes with --out-dir (it removes the oldest backups in that directory)');
  const config = loadConfig(configFile);
  const configText = readFileSync(config.file, 'utf8');
  const secret = await passphrase(o, io, true);
  let out: string;
  if (o.outDir) {
    const dir = resolve(o.outDir);
    ensureBackupDir(dir);
    const at = new Date(now());
    let attempt = 0;
    while (existsSync(join(dir, backupFileName(at, attempt)))) {
      if (++attempt > 99) throw new WgoError('CONFLICT', `too many backups named for ${at.toISOString()} in ${dir}`);
    }
    out = join(dir, backupFileName(at, attempt));
  } else {
    out = resolve(o.out!);
  }
  const r = await createBackup({ config, configText, out, passphrase: secret, actor: who, hostname: hostname(), version: version(), keep, clock: now });
  emit(io, o.json, r, (d) =>
    `backup written: ${d.file} (${bytes(d.size)}, mode 0600)\n${countsText(d.manifest)}${d.removed.map((f) => `  removed   ${f} (older than the newest ${keep})\n`).join('')}`);
}

/** `wg-ollama restore FILE [--state-dir DIR] [--force] [--dry-run]` */
export async function runRestore(configFile: string, file: string, o: RestoreOptions, io: Io, who: Actor): Promise<void> {
  const secret = await passphrase(o, io);
  const r = await restoreBackup({
    file: resolve(file), passphrase: secret, configFile, stateDir: o.stateDir, force: o.force, dryRun: o.dryRun, actor: who,
    flush: syncFileSystem(execRunner),
    daemonRunning: (socket) => requestControl(socket, 'status', 3000).then(() => true, (e: unknown) => {
      if (isWgoError(e, 'DAEMON_UNREACHABLE')) return false;
      throw e;
    }),
  });
  emit(io, o.json, r, (d) =>
    (d.dryRun
      ? `${resolve(file)}: intact, the passphrase opens it; restore would write ${d.stateDir} and ${d.configFile}\n`
      : `restored ${d.stateDir} and ${d.configFile}\n${d.movedAside.map((m) => `  moved aside: ${m}\n`).join('')}`) +
    countsText(d.manifest) +
    (d.dryRun ? '' : 'next: wg-ollama serve (or systemctl start wg-ollama); peers, certificates, tokens and guards work as they did\n'));
}
