/**
 * The scheduled backup's systemd units: the keys that make it work are
 * there, and the ExecStart command line is one the CLI really accepts — it
 * is run here through main() with the credential directory and the backup
 * directory pointed at temporary ones, and must write a backup.
 */
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { isBackupFileName } from '../../../src/core/backup-rotation.js';
import { PASS, backupEnv, type BackupEnv } from '../../support/backup-env.js';

const SYSTEMD = resolve(import.meta.dirname, '../../../systemd');

/** A unit file as section → key → values (a key may repeat); comments and blank lines dropped. */
function unit(name: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section = '';
  for (const line of readFileSync(join(SYSTEMD, name), 'utf8').split('\n')) {
    if (/^\s*([#;]|$)/.test(line)) continue;
    const s = /^\[(\w+)\]$/.exec(line);
    if (s) {
      section = s[1]!;
      out[section] ??= {};
      continue;
    }
    const kv = /^(\w+)=(.*)$/.exec(line);
    if (!kv) throw new Error(`${name}: cannot read line ${JSON.stringify(line)}`);
    ((out[section] ??= {})[kv[1]!] ??= []).push(kv[2]!);
  }
  return out;
}

describe('wg-ollama-backup.service and .timer', () => {
  const service = unit('wg-ollama-backup.service');
  const timer = unit('wg-ollama-backup.timer');
  const argv = service.Service!.ExecStart![0]!.split(/\s+/);
  const opt = (name: string): string => argv[argv.indexOf(name) + 1]!;
  let env: BackupEnv;
  beforeAll(() => {
    env = backupEnv();
  });
  afterAll(() => env.cleanup());

  test('a oneshot that gets the passphrase as a credential and writes where it may write', () => {
    expect(service.Service!.Type).toEqual(['oneshot']);
    const [credential, source] = service.Service!.LoadCredential![0]!.split(':');
    expect(source).toBe('/etc/wg-ollama/backup-passphrase');
    expect(service.Unit!.ConditionPathExists).toEqual(['/etc/wg-ollama/config.json', source]);
    expect(argv.slice(0, 2)).toEqual(['/usr/local/bin/wg-ollama', 'backup']);
    expect(opt('--passphrase-file')).toBe(`\${CREDENTIALS_DIRECTORY}/${credential}`);
    expect(Number(opt('--keep'))).toBeGreaterThan(0);
    expect(service.Service!.ReadWritePaths![0]!.split(' ')).toEqual(['/var/lib/wg-ollama', opt('--out-dir')]);
    // The directory exists (0700) before the sandbox needs it.
    expect(readFileSync(join(SYSTEMD, 'wg-ollama-tmpfiles.conf'), 'utf8')).toContain(`\nd ${opt('--out-dir')} 0700 root root -\n`);
  });

  test('the timer runs it daily and makes up a missed day', () => {
    expect(timer.Timer).toMatchObject({ OnCalendar: ['daily'], Persistent: ['true'], Unit: ['wg-ollama-backup.service'] });
    expect(timer.Install!.WantedBy).toEqual(['timers.target']);
  });

  test('its ExecStart, run through the CLI, writes a backup into the directory', async () => {
    const creds = join(env.root, 'credentials');
    const out = join(env.root, 'backups');
    mkdirSync(creds, { mode: 0o700 });
    // systemd makes a credential readable by the service only (0400).
    writeFileSync(join(creds, 'backup-passphrase'), `${PASS}\n`, { mode: 0o400 });
    const args = argv.slice(1).map((a) => a.replace('${CREDENTIALS_DIRECTORY}', creds).replace(opt('--out-dir'), out));
    const err: string[] = [];
    const code = await main(['--config', env.file, ...args], { out: () => undefined, err: (t) => void err.push(t), env: {}, readStdin: async () => 'not read' });
    expect(code, err.join('')).toBe(0);
    const files = readdirSync(out);
    expect(files).toHaveLength(1);
    expect(isBackupFileName(files[0]!)).toBe(true);
    expect(statSync(join(out, files[0]!)).mode & 0o777).toBe(0o600);
  });
});
