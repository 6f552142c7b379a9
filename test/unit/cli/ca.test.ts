/** `wg-ollama reissue-ca` and add-guard outside the constraints, through the real CLI entry (main) on a real state directory. */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { main } from '../../../src/cli/main.js';
import type { Io } from '../../../src/cli/output.js';
import { statePaths } from '../../../src/config.js';
import { generateKeyPair } from '../../../src/core/keys.js';
import { caStore } from '../../../src/gateway/ca-store.js';
import { caNameConstraints } from '../../../src/pki/ca-reissue.js';
import { writeSecretFile } from '../../../src/system/files.js';

let dir: string;
let file: string;
let paths: ReturnType<typeof statePaths>;

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (t) => void (out += t), err: (t) => void (err += t), env: {} };
  const code = await main(['--config', file, ...args], io);
  return { code, out, err };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wgo-cli-ca-'));
  const stateDir = join(dir, 'state');
  paths = statePaths(stateDir);
  file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({
    stateDir, interface: 'wgo0', listenPort: 51820, subnet: '10.66.0.0/24', endpoint: 'vpn.example.com:51820',
    ollamaHost: '192.168.1.10', ollamaPort: 11434, sync: { listen: '192.168.1.1:7443' },
  }));
  mkdirSync(stateDir, { mode: 0o700 });
  writeSecretFile(paths.serverKey, generateKeyPair().privateKey + '\n');
  caStore(paths).ensure(); // a CA as releases before name constraints made it
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('reissue-ca', () => {
  test('--dry-run says what it would permit and changes nothing; then it re-issues; then there is nothing to do', async () => {
    const before = readFileSync(paths.caCert, 'utf8');
    const dry = await cli('reissue-ca', '--dry-run', '--json');
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.out)).toMatchObject({ dryRun: true, changes: true, current: null, permitted: { ip: ['10.66.0.0/24', '192.168.1.10/32', '192.168.1.1/32', '127.0.0.1/32'] } });
    expect(readFileSync(paths.caCert, 'utf8')).toBe(before);

    const done = await cli('reissue-ca');
    expect(done.code).toBe(0);
    expect(done.out).toMatch(/^re-issued .*ca\.crt \(same key and subject; SHA-256 [0-9A-F:]+\)\nbefore: no name constraints \(any name\)\npermits: 10\.66\.0\.0\/24, .*DNS:localhost, DNS:wg-ollama\.invalid, email:wg-ollama\.invalid\n/);
    expect(done.out).toMatch(/next: copy ca\.crt to every guard/);
    const after = readFileSync(paths.caCert, 'utf8');
    expect(after).not.toBe(before);
    expect(caNameConstraints(after)).not.toBeNull();

    const again = await cli('reissue-ca', '--json');
    expect(again.code).toBe(0);
    expect(JSON.parse(again.out)).toMatchObject({ changes: false, dryRun: false });
    expect(readFileSync(paths.caCert, 'utf8')).toBe(after);
  });

  test('add-guard outside the constraints: exit 2, a clear message, no files, no guard', async () => {
    const out = join(dir, 'gpu9');
    const r = await cli('add-guard', 'gpu9', '--address', '172.16.5.5', '--out', out);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^wg-ollama: 172\.16\.5\.5 is outside the CA's name constraints .*reissue-ca/);
    expect(existsSync(out)).toBe(false);
    const list = await cli('list-guards', '--json');
    expect(JSON.parse(list.out)).toEqual([]);
  });
});

describe('init', () => {
  test('makes a CA with the name constraints its options imply', async () => {
    const stateDir = join(dir, 'fresh');
    const fresh = join(dir, 'fresh.json');
    let code = -1;
    const io: Io = { out: () => undefined, err: () => undefined, env: {} };
    code = await main(['--config', fresh, 'init', '--endpoint', 'vpn.example.com:51820', '--ollama-host', '192.168.7.10', '--subnet', '10.77.0.0/24', '--state-dir', stateDir, '--sync-listen', '192.168.7.1:7443'], io);
    expect(code).toBe(0);
    expect(caNameConstraints(readFileSync(statePaths(stateDir).caCert, 'utf8'))).toEqual({
      ip: ['10.77.0.0/24', '192.168.7.10/32', '192.168.7.1/32', '127.0.0.1/32'],
      dns: ['localhost', 'wg-ollama.invalid'],
      email: ['wg-ollama.invalid'],
      other: 0,
    });
  });
});
