/**
 * backup, backup --verify and restore through the real CLI entry (main): the
 * passphrase only from stdin or a private file, exit codes, --json output,
 * and --out-dir with --keep rotating only its own files.
 */
import { chmodSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { PASS, backupEnv, listing, type BackupEnv } from '../../support/backup-env.js';

describe('wg-ollama backup / restore', () => {
  let env: BackupEnv;
  beforeAll(() => {
    env = backupEnv();
  });
  afterAll(() => env.cleanup());

  const cli = (stdin: string, ...argv: string[]) => cliAt(env.file, stdin, ...argv);
  async function cliAt(config: string, stdin: string, ...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (t) => void out.push(t), err: (t) => void err.push(t), env: {}, readStdin: async () => stdin };
    const code = await main(['--config', config, ...argv], io);
    return { code, out: out.join(''), err: err.join('') };
  }

  test('a short, missing or world-readable passphrase is refused before anything is written', async () => {
    const before = listing(env.root);
    const out = join(env.root, 'x.wgobak');
    expect(await cli('short\n', 'backup', '--out', out)).toEqual({ code: 2, out: '', err: 'wg-ollama: the passphrase must be at least 12 characters\n' });
    expect(await cli('', 'backup', '--out', out)).toMatchObject({ code: 2, err: 'wg-ollama: no passphrase: give it as the first line of standard input (or --passphrase-file FILE)\n' });
    const pf = join(env.root, 'pass');
    writeFileSync(pf, `${PASS}\n`, { mode: 0o644 });
    chmodSync(pf, 0o644);
    expect(await cli('', 'backup', '--out', out, '--passphrase-file', pf)).toMatchObject({ code: 2, err: `wg-ollama: ${pf} has mode 644: a passphrase file must be readable by its owner only (chmod 600)\n` });
    expect(await cli(`${PASS}\n`, 'backup', '--out', out, '--keep', '2')).toMatchObject({ code: 2, err: 'wg-ollama: --keep goes with --out-dir (it removes the oldest backups in that directory)\n' });
    expect(await cli(`${PASS}\n`, 'backup')).toMatchObject({ code: 2, err: 'wg-ollama: give either --out FILE or --out-dir DIR\n' });
    expect(listing(env.root)).toEqual([...before, 'pass'].sort());
  });

  test('--json prints the manifest; --verify and restore --dry-run print it again and write nothing; a wrong passphrase exits 2', async () => {
    const out = join(env.root, 'a.wgobak');
    const r = await cli(`${PASS}\nignored second line\n`, 'backup', '--out', out, '--json');
    expect(r.code, r.err).toBe(0);
    const made = JSON.parse(r.out) as { file: string; size: number; removed: string[]; manifest: { counts: { peers: Record<string, number> } } };
    expect(made).toMatchObject({ file: out, removed: [], manifest: { counts: { peers: { active: 2, revoked: 1 } } } });
    const before = listing(env.root);
    const v = await cli(`${PASS}\n`, 'backup', '--verify', out, '--json');
    expect(v.code, v.err).toBe(0);
    expect(JSON.parse(v.out)).toEqual({ file: out, ok: true, manifest: made.manifest });
    const d = await cliAt(join(env.root, 'new.json'), `${PASS}\n`, 'restore', out, '--state-dir', join(env.root, 'new-state'), '--dry-run', '--json');
    expect(d.code, d.err).toBe(0);
    expect(JSON.parse(d.out)).toMatchObject({ dryRun: true, stateDir: join(env.root, 'new-state'), configFile: join(env.root, 'new.json'), manifest: made.manifest });
    expect(await cli('not the passphrase\n', 'backup', '--verify', out)).toMatchObject({ code: 2, err: 'wg-ollama: wrong passphrase for this backup (or its header was changed)\n' });
    // The config the CLI would restore onto exists: refused, exit 2.
    expect(await cli(`${PASS}\n`, 'restore', out, '--state-dir', join(env.root, 'new-state'))).toMatchObject({ code: 2, err: expect.stringContaining('config.json already exists: restore onto a fresh machine') });
    expect(listing(env.root)).toEqual(before);
  });

  test('--out-dir names backups by time; --keep 2 removes the oldest of ours only', async () => {
    const dir = join(env.root, 'scheduled');
    mkdirSync(dir);
    for (const f of ['wg-ollama-20200101T000000Z.wgobak', 'wg-ollama-20200102T000000Z.wgobak', 'notes.txt', 'wg-ollama-mine.wgobak']) writeFileSync(join(dir, f), 'x');
    const made: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await cli(`${PASS}\n`, 'backup', '--out-dir', dir, '--keep', '2', '--json');
      expect(r.code, r.err).toBe(0);
      made.push((JSON.parse(r.out) as { file: string }).file);
    }
    for (const f of made) expect(f).toMatch(/\/wg-ollama-\d{8}T\d{6}Z(-\d+)?\.wgobak$/);
    expect(readdirSync(dir).sort()).toEqual(['notes.txt', 'wg-ollama-mine.wgobak', ...made.slice(1).map((f) => f.slice(dir.length + 1))].sort());
  });
});
