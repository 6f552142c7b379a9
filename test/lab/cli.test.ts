/**
 * The CLI contract under bad input and concurrency, with the real daemon:
 * every input is validated before anything changes; 50 concurrent add-peer
 * processes get 50 distinct addresses and a kernel state equal to the
 * database; QR codes decode (zbarimg) to the config byte for byte.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway, createLab, waitFor, type Gateway, type Lab } from './harness.js';

interface Added { name: string; address: string; publicKey: string; config: string; files: string[] }
interface Row { name: string; address: string; publicKey: string; status: string }

describe('cli', () => {
  let lab: Lab;
  let gw: Gateway;
  let first: Added;

  const snapshot = async (): Promise<string> => {
    const peers = (await gw.cli('list-peers', '--all', '--json')).stdout;
    const audit = (await gw.cli('logs', 'audit', '--json')).stdout;
    const psk = (await lab.exec(lab.ns('gw'), 'ls', [join(lab.dir, 'wgocl-state', 'psk')])).stdout;
    return `${peers}\n${audit}\n${psk}`;
  };

  beforeAll(async () => {
    lab = await createLab('cl');
    gw = await createGateway(lab, 'wgocl');
    await gw.start();
    first = await gw.cliJson<Added>('add-peer', 'first');
  });
  afterAll(async () => {
    await lab?.cleanup();
  });

  describe('bad input changes nothing and exits 2 with one line on stderr', () => {
    const serverKey = (): string => /\[Peer\]\nPublicKey = (\S+)/.exec(first.config)![1]!;
    const cases: [string, () => string[]][] = [
      ['shell metacharacters', () => ['add-peer', 'a;rm -rf /']],
      ['command substitution', () => ['add-peer', 'a$(id)']],
      ['backticks', () => ['add-peer', 'a`id`']],
      ['a newline', () => ['add-peer', 'a\nb']],
      ['a space', () => ['add-peer', 'a b']],
      ['uppercase', () => ['add-peer', 'Alice']],
      ['non-ASCII', () => ['add-peer', 'zoë']],
      ['a path', () => ['add-peer', '../etc/passwd']],
      ['33 characters', () => ['add-peer', 'a'.repeat(33)]],
      ['a reserved name', () => ['add-peer', 'gateway']],
      ['a duplicate', () => ['add-peer', 'first']],
      ['a short key', () => ['add-peer', 'k1', '--public-key', 'abc']],
      ['a non-canonical key', () => ['add-peer', 'k2', '--public-key', first.publicKey.slice(0, 42) + 'B=']],
      ['the all-zero key', () => ['add-peer', 'k3', '--public-key', Buffer.alloc(32).toString('base64')]],
      ["the server's key", () => ['add-peer', 'k4', '--public-key', serverKey()]],
      ["another peer's key", () => ['add-peer', 'k5', '--public-key', first.publicKey]],
      ['a bad expiry', () => ['add-peer', 'k6', '--expires', 'tomorrow']],
      ['a zero expiry', () => ['add-peer', 'k7', '--expires', '0d']],
      ['an unknown option', () => ['add-peer', 'k8', '--colour']],
      ['a missing name', () => ['add-peer']],
      ['an unknown peer', () => ['disable-peer', 'nobody']],
      ['--out onto a file', () => ['add-peer', 'k9', '--out', gw.configFile]],
      ['a newline inside an echoed value', () => ['add-peer', 'k10', '--expires', '1d\nINJECTED LINE']],
    ];
    it.each(cases)('%s', async (_what, args) => {
      const before = await snapshot();
      const r = await gw.cli(...args());
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\bat .*\.js:\d+/);
      expect(await snapshot()).toBe(before);
    });

    it('a bad name with --out creates no directory', async () => {
      const dir = join(lab.dir, 'never', 'made');
      for (const name of ['BAD;name', 'first']) {
        expect((await gw.cli('add-peer', name, '--out', dir)).code).toBe(2);
        expect(existsSync(join(lab.dir, 'never'))).toBe(false);
      }
    });

    it('init refuses a state directory others can read, and leaves its mode alone', async () => {
      const shared = join(lab.dir, 'shared');
      mkdirSync(shared, { mode: 0o1777 });
      chmodSync(shared, 0o1777);
      const r = await lab.exec(lab.ns('gw'), 'node', [join(process.cwd(), 'bin/wg-ollama.js'), '--config', join(lab.dir, 'shared.json'),
        'init', '--endpoint', 'vpn.example.com:51820', '--ollama-host', '198.51.100.10', '--state-dir', shared]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/mode 1777/);
      expect(statSync(shared).mode & 0o7777).toBe(0o1777);
      expect(existsSync(join(lab.dir, 'shared.json'))).toBe(false);
    });

    it('--debug adds the stack trace', async () => {
      const r = await gw.cli('--debug', 'add-peer', 'Bad');
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/at .*\.js:\d+/);
    });

    it('init validates every option before writing anything', async () => {
      const file = join(lab.dir, 'bad-init.json');
      for (const args of [
        ['--endpoint', 'no-port', '--ollama-host', '198.51.100.10'],
        ['--endpoint', 'vpn.example.com:51820', '--ollama-host', '10.66.0.9'],
        ['--endpoint', 'vpn.example.com:51820', '--ollama-host', '198.51.100.10', '--subnet', '10.66.0.1/24'],
        ['--endpoint', 'vpn.example.com:51820', '--ollama-host', '198.51.100.10', '--interface', 'a;b'],
        ['--endpoint', 'vpn.example.com:51820', '--ollama-host', '198.51.100.10', '--listen-port', '70000'],
      ]) {
        const r = await lab.exec(lab.ns('gw'), 'node', [join(process.cwd(), 'bin/wg-ollama.js'), '--config', file, 'init', ...args, '--state-dir', join(lab.dir, 'bad-state')]);
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.stderr).toMatch(/invalid option/);
      }
      expect(() => statSync(file)).toThrow();
      expect(() => statSync(join(lab.dir, 'bad-state'))).toThrow();
    });
  });

  it('a full address pool is refused and leaves no half-created peer', async () => {
    const small = await createGateway(lab, 'wgocs', ['--subnet', '10.67.0.0/29', '--listen-port', '51821']);
    for (let i = 0; i < 5; i++) expect((await small.cli('add-peer', `p${i}`)).code).toBe(0);
    const psk = join(lab.dir, 'wgocs-state', 'psk');
    const filesBefore = (await lab.exec(lab.ns('gw'), 'ls', [psk])).stdout;
    const r = await small.cli('add-peer', 'p5');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no free address left in 10\.67\.0\.0\/29/);
    expect((await small.cliJson<Row[]>('list-peers')).map((p) => p.address)).toEqual(
      ['10.67.0.2', '10.67.0.3', '10.67.0.4', '10.67.0.5', '10.67.0.6']);
    expect((await lab.exec(lab.ns('gw'), 'ls', [psk])).stdout).toBe(filesBefore);
  });

  it('50 concurrent add-peer processes: 50 distinct addresses, kernel state equal to the database', async () => {
    const names = Array.from({ length: 50 }, (_, i) => `c${i}`);
    const results = await Promise.all(names.map((n) => gw.cli('add-peer', n, '--json')));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const added = results.map((r) => JSON.parse(r.stdout) as Added);
    expect(new Set(added.map((a) => a.address)).size).toBe(50);
    expect(added.map((a) => a.address)).not.toContain(first.address);

    const db = await gw.cliJson<Row[]>('list-peers');
    expect(db).toHaveLength(51);
    const want = db.map((p) => `${p.publicKey} ${p.address}/32`).sort();
    await waitFor(async () => {
      const wg = (await lab.exec(lab.ns('gw'), 'wg', ['show', 'wgocl', 'allowed-ips'])).stdout.trim().split('\n').map((l) => l.replace('\t', ' ')).sort();
      return JSON.stringify(wg) === JSON.stringify(want);
    }, 5000, 'WireGuard to equal the database');
    const set = (await lab.exec(lab.ns('gw'), 'ipset', ['save', 'wgo-peers-wgocl'])).stdout
      .split('\n').filter((l) => l.startsWith('add ')).map((l) => l.split(' ')[2]).sort();
    expect(set).toEqual(db.map((p) => p.address).sort());
    const status = await gw.cliJson<{ firewall: { setMatchesDatabase: boolean; ipv4InSync: boolean } }>('status');
    expect(status.firewall).toMatchObject({ setMatchesDatabase: true, ipv4InSync: true });
  });

  it('--out writes NAME.conf (0600) and a PNG QR code that zbarimg decodes to the config byte for byte', async () => {
    const out = join(lab.dir, 'out');
    const p = await gw.cliJson<Added>('add-peer', 'qr-test', '--out', out);
    const conf = join(out, 'qr-test.conf');
    expect(readFileSync(conf, 'utf8')).toBe(p.config);
    expect(statSync(conf).mode & 0o777).toBe(0o600);
    const z = await execa('zbarimg', ['--raw', '-q', '-Sbinary', join(out, 'qr-test.png')]);
    expect(z.stdout).toBe(p.config.replace(/\n$/, ''));
    expect(Buffer.from(z.stdout + '\n').equals(Buffer.from(p.config))).toBe(true);
    const svg = readFileSync(join(out, 'qr-test.svg'), 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  });

  it('--qr prints the config and a terminal QR code', async () => {
    const r = await gw.cli('add-peer', 'qr-term', '--qr');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('[Interface]');
    expect(r.stdout).toMatch(/[▄▀█]{10}/);
  });

  it('a peer that brings its own key gets a config without a private key', async () => {
    const key = (await execa('wg', ['pubkey'], { input: (await execa('wg', ['genkey'])).stdout })).stdout.trim();
    const p = await gw.cliJson<Added>('add-peer', 'byo', '--public-key', key);
    expect(p.publicKey).toBe(key);
    expect(p.config).not.toMatch(/^PrivateKey = /m);
  });

  it('WG_OLLAMA_CONFIG selects the config when --config is absent', async () => {
    const r = await execa('ip', ['netns', 'exec', lab.ns('gw'), 'node', join(process.cwd(), 'bin/wg-ollama.js'), 'show-peer', 'first', '--json'], {
      reject: false, env: { WG_OLLAMA_CONFIG: gw.configFile },
    });
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(String(r.stdout)).address).toBe(first.address);
  });

  it('a missing config says to run init and exits 1', async () => {
    const r = await lab.exec(lab.ns('gw'), 'node', [join(process.cwd(), 'bin/wg-ollama.js'), '--config', join(lab.dir, 'nope.json'), 'list-peers']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/run "wg-ollama init"/);
  });

  it('a config with a bad field is refused, naming the field', async () => {
    const file = join(lab.dir, 'broken.json');
    const good = JSON.parse(readFileSync(gw.configFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify({ ...good, ollamaPort: 'eleven' }));
    const r = await lab.exec(lab.ns('gw'), 'node', [join(process.cwd(), 'bin/wg-ollama.js'), '--config', file, 'list-peers']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/ollamaPort/);
  });
});
