import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { generate } from 'otplib';
import QRCode from 'qrcode';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { accountService } from '../../../src/admin/accounts.js';
import { createSecretBox, loadAdminKey } from '../../../src/admin/secret-box.js';
import { adminAdd, adminList, adminRemove, adminResetTotp, stdinPassword } from '../../../src/cli/admin.js';
import type { Io } from '../../../src/cli/output.js';
import { type Config } from '../../../src/config.js';
import { auditRepository } from '../../../src/db/audit.js';
import { openDatabase } from '../../../src/db/open.js';
import { gatewayState, type GatewayState } from '../../support/gateway-state.js';

const WHO = { actor: 'root', source: 'cli' };
const PASSWORD = 'correct horse battery staple';

let state: GatewayState;
let dir: string;
let config: Config;
let out: string[];
let readCalls: number;
/** An Io whose standard input is `stdin` (and which counts the reads). */
const io = (stdin?: string): Io => ({
  out: (t) => void out.push(t),
  err: () => undefined,
  env: {},
  readStdin: stdin === undefined ? undefined : async () => (readCalls++, stdin),
});
const printed = (): string => out.join('');
const json = <T>(): T => JSON.parse(printed()) as T;
const stdinOf = (i: Io) => i.readStdin ?? (() => Promise.reject(new Error('stdin read without a readStdin')));

/** `admin add` as main() runs it: --password-stdin, the password from the Io. */
async function add(name: string, o: { role?: string; json?: boolean; passwordStdin?: boolean } = {}, stdin = PASSWORD + '\n'): Promise<void> {
  const i = io(stdin);
  await adminAdd(config, name, { passwordStdin: true, ...o }, i, WHO, stdinOf(i));
}
async function addJson(name: string, stdin = PASSWORD + '\n'): Promise<{ name: string; role: string; createdAt: string; totpUri: string }> {
  out = [];
  await add(name, { json: true }, stdin);
  const r = json<{ name: string; role: string; createdAt: string; totpUri: string }>();
  out = [];
  return r;
}
function names(): string[] {
  out = [];
  adminList(config, { json: true }, io());
  const l = json<{ name: string }[]>().map((a) => a.name);
  out = [];
  return l;
}
/** Signs in through the account service on the CLI's database, with the code of the URI's secret. */
async function login(name: string, password: string, totpUri: string, stepOffset = 0) {
  const db = openDatabase(config.paths.db);
  try {
    const svc = accountService({ db, box: () => createSecretBox(loadAdminKey(config.paths.adminKey, false)) });
    const secret = new URL(totpUri).searchParams.get('secret')!;
    const code = await generate({ secret, epoch: Math.floor(Date.now() / 1000) + stepOffset * 30 });
    return await svc.login({ name, password, code }, '192.0.2.1');
  } finally {
    db.close();
  }
}
/** The block-character QR code of the text output, as a PBM image (1 = dark module). */
function qrTextToPbm(text: string): string {
  const lines = text.split('\n').filter((l) => /^[ █▀▄]+$/u.test(l) && /[█▀▄]/u.test(l));
  const rows: number[][] = [];
  for (const line of lines) {
    const chars = [...line];
    rows.push(chars.map((c) => (c === '█' || c === '▀' ? 1 : 0)));
    rows.push(chars.map((c) => (c === '█' || c === '▄' ? 1 : 0)));
  }
  const scale = 4;
  const quiet = 4 * scale;
  const width = rows[0]!.length * scale + 2 * quiet;
  const blank = Array(width).fill(0).join(' ');
  const body = rows.flatMap((r) => {
    const line = [...Array(quiet).fill(0), ...r.flatMap((b) => Array(scale).fill(b)), ...Array(quiet).fill(0)].join(' ');
    return Array(scale).fill(line);
  });
  const all = [...Array(quiet).fill(blank), ...body, ...Array(quiet).fill(blank)];
  return `P1\n${width} ${all.length}\n${all.join('\n')}\n`;
}
async function zbar(file: string): Promise<string> {
  const r = await execa('zbarimg', ['--raw', '-q', file], { reject: false });
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout.trim();
}

beforeEach(() => {
  state = gatewayState({ name: 'admin-cli', keys: false });
  ({ dir, config } = state);
  out = [];
  readCalls = 0;
});
afterEach(() => state.cleanup());

describe('admin add', () => {
  test('without --password-stdin: BAD_INPUT, stdin untouched, nothing created', async () => {
    const i = io(PASSWORD + '\n');
    await expect(adminAdd(config, 'alice', {}, i, WHO, stdinOf(i))).rejects.toMatchObject({ code: 'BAD_INPUT', message: expect.stringMatching(/--password-stdin/) });
    expect(readCalls).toBe(0);
    expect(existsSync(config.paths.db)).toBe(false);
    expect(existsSync(config.paths.adminKey)).toBe(false);
    expect(names()).toEqual([]);
  });

  test('the final newline of stdin is not part of the password', async () => {
    const a = await addJson('alice', PASSWORD + '\n');
    expect(readCalls).toBe(1);
    expect(await login('alice', PASSWORD + '\n', a.totpUri)).toStrictEqual({ ok: false, reason: 'invalid' });
    expect(await login('alice', PASSWORD, a.totpUri, 1)).toMatchObject({ ok: true, admin: { name: 'alice' } });
  });

  test('a CRLF line ending and no line ending at all work too', async () => {
    const a = await addJson('alice', PASSWORD + '\r\n');
    const b = await addJson('bob', 'another passphrase 42');
    expect(await login('alice', PASSWORD, a.totpUri)).toMatchObject({ ok: true });
    expect(await login('bob', 'another passphrase 42', b.totpUri)).toMatchObject({ ok: true });
  });

  test.each([
    ['two lines', `${PASSWORD}\nsecond line\n`],
    ['an empty line after it', `${PASSWORD}\n\n`],
    ['a line break in the middle', `correct horse\r\nbattery staple`],
    ['nothing', ''],
    ['only a newline', '\n'],
    ['a short password', 'short\n'],
  ])('stdin with %s is BAD_INPUT and no admin (nor admin.key) is created', async (what, stdin) => {
    const message = what === 'two lines' ? /one line/ : /./;
    await expect(add('alice', {}, stdin)).rejects.toMatchObject({ code: 'BAD_INPUT', message: expect.stringMatching(message) });
    expect(existsSync(config.paths.adminKey)).toBe(false);
    expect(names()).toEqual([]);
  });

  test('--json prints name, role, createdAt and the otpauth URI, and nothing secret besides the URI', async () => {
    await add('vic', { role: 'viewer', json: true });
    const a = json<Record<string, string>>();
    expect(Object.keys(a).sort()).toEqual(['createdAt', 'name', 'role', 'totpUri']);
    expect(a).toMatchObject({ name: 'vic', role: 'viewer' });
    expect(new Date(a.createdAt!).toISOString()).toBe(a.createdAt);
    const uri = new URL(a.totpUri!);
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(decodeURIComponent(uri.pathname)).toBe('/wg-ollama:vic');
    expect(uri.searchParams.get('issuer')).toBe('wg-ollama');
    expect(uri.searchParams.get('secret')).toMatch(/^[A-Z2-7]{32}$/);
    expect(printed()).not.toContain(PASSWORD);
  });

  test('the role defaults to admin; a bad role or name is BAD_INPUT; a taken name is CONFLICT', async () => {
    expect((await addJson('alice')).role).toBe('admin');
    await expect(add('bob', { role: 'superuser' })).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await expect(add('Bob')).rejects.toMatchObject({ code: 'BAD_INPUT' });
    await expect(add('alice')).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(names()).toEqual(['alice']);
  });

  test('text output: the name, a QR block and the otpauth URI; admin.key is created 0600; the add is audited as the CLI actor', async () => {
    await add('alice');
    const text = printed();
    expect(text).toMatch(/^Added admin alice \(admin\)\.\nScan this with an authenticator app/);
    const uri = text.match(/^otpauth:\/\/\S+$/m)?.[0];
    expect(uri).toBeDefined();
    expect(text.split('\n').filter((l) => /[█▀▄]/u.test(l)).length).toBeGreaterThan(10);
    expect(text).not.toContain(PASSWORD);
    expect(statSync(config.paths.adminKey).mode & 0o777).toBe(0o600);
    expect(await login('alice', PASSWORD, uri!)).toMatchObject({ ok: true });
    const db = openDatabase(config.paths.db);
    try {
      expect(auditRepository(db).list({ since: 0 }).filter((r) => r.action === 'admin.add')).toMatchObject([{ actor: 'root', source: 'cli', target: 'alice', details: { role: 'admin' } }]);
    } finally {
      db.close();
    }
  });

  test('the printed QR code decodes (zbarimg) to the printed URI, and so does a PNG of that URI', async () => {
    await add('alice');
    const text = printed();
    const uri = text.match(/^otpauth:\/\/\S+$/m)![0];
    const pbm = join(dir, 'printed.pbm');
    writeFileSync(pbm, qrTextToPbm(text));
    expect(await zbar(pbm)).toBe(uri);
    const png = join(dir, 'uri.png');
    await QRCode.toFile(png, uri, { errorCorrectionLevel: 'M' });
    expect(await zbar(png)).toBe(uri);
  });
});

describe('admin list', () => {
  test('no admins yet: a hint, or [] in JSON (and no admin.key is needed)', () => {
    adminList(config, {}, io());
    expect(printed()).toBe('No admins yet: wg-ollama admin add NAME --password-stdin\n');
    out = [];
    adminList(config, { json: true }, io());
    expect(json()).toEqual([]);
    expect(existsSync(config.paths.adminKey)).toBe(false);
  });

  test('a table sorted by name, and the same in JSON', async () => {
    const z = await addJson('zed');
    await add('vic', { role: 'viewer', json: true });
    const v = json<{ createdAt: string }>();
    out = [];
    adminList(config, {}, io());
    expect(printed()).toBe(
      [
        'NAME  ROLE    CREATED',
        `vic   viewer  ${v.createdAt}`,
        `zed   admin   ${z.createdAt}`,
        '',
      ].join('\n'),
    );
    out = [];
    adminList(config, { json: true }, io());
    expect(json()).toEqual([
      { name: 'vic', role: 'viewer', createdAt: v.createdAt },
      { name: 'zed', role: 'admin', createdAt: z.createdAt },
    ]);
  });
});

describe('admin remove', () => {
  test('removes a viewer (text and JSON); the last admin is CONFLICT; an unknown name is NOT_FOUND', async () => {
    await add('alice');
    await add('vic', { role: 'viewer' });
    await add('viv', { role: 'viewer' });
    out = [];
    adminRemove(config, 'vic', {}, io(), WHO);
    expect(printed()).toBe('Removed admin vic; their sessions ended.\n');
    out = [];
    adminRemove(config, 'viv', { json: true }, io(), WHO);
    expect(json()).toEqual({ removed: 'viv' });
    expect(() => adminRemove(config, 'alice', {}, io(), WHO)).toThrow(expect.objectContaining({ code: 'CONFLICT' }));
    expect(() => adminRemove(config, 'nobody', {}, io(), WHO)).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }));
    expect(names()).toEqual(['alice']);
  });
});

describe('admin reset-totp', () => {
  test('prints a new URI (text: with a QR block) that works, and the old one does not', async () => {
    const old = await addJson('alice');
    await adminResetTotp(config, 'alice', {}, io(), WHO);
    const text = printed();
    expect(text).toMatch(/^New TOTP secret for alice \(admin\)\./);
    expect(text.split('\n').filter((l) => /[█▀▄]/u.test(l)).length).toBeGreaterThan(10);
    const fresh = text.match(/^otpauth:\/\/\S+$/m)![0];
    expect(fresh).not.toBe(old.totpUri);
    expect(new URL(fresh).searchParams.get('secret')).not.toBe(new URL(old.totpUri).searchParams.get('secret'));
    expect(await login('alice', PASSWORD, old.totpUri)).toStrictEqual({ ok: false, reason: 'invalid' });
    expect(await login('alice', PASSWORD, fresh)).toMatchObject({ ok: true });
  });

  test('--json prints name, role and the new URI; an unknown name is NOT_FOUND', async () => {
    const old = await addJson('alice');
    await adminResetTotp(config, 'alice', { json: true }, io(), WHO);
    const r = json<{ name: string; role: string; totpUri: string }>();
    expect(r).toEqual({ name: 'alice', role: 'admin', totpUri: expect.stringMatching(/^otpauth:\/\/totp\//) });
    expect(r.totpUri).not.toBe(old.totpUri);
    await expect(adminResetTotp(config, 'bob', {}, io(), WHO)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('stdinPassword', () => {
  test('reads the whole stream as text', async () => {
    await expect(stdinPassword(Readable.from([Buffer.from('pässwörd '), Buffer.from('in two chunks\n')]))()).resolves.toBe('pässwörd in two chunks\n');
  });

  test('more than 16 KiB is BAD_INPUT', async () => {
    await expect(stdinPassword(Readable.from([Buffer.alloc(16 * 1024, 'a'), Buffer.from('b')]))()).rejects.toMatchObject({ code: 'BAD_INPUT' });
  });
});
