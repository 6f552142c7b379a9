/**
 * A real admin UI for browser tests: a gateway state in a temporary directory
 * (server key, test CA, SQLite), the HTTPS server on 127.0.0.1:0, admins with
 * known passwords and TOTP secrets, and Chromium through playwright-core.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { generate } from 'otplib';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { accountService, type AccountService } from '../../src/admin/accounts.js';
import { createSecretBox, loadAdminKey } from '../../src/admin/secret-box.js';
import { startAdminUi } from '../../src/admin/server.js';
import { type Config } from '../../src/config.js';
import { openGateway, type GatewayContext } from '../../src/gateway/context.js';
import { FakeFirewall } from '../fakes/firewall.js';
import { FakeIngress } from '../fakes/ingress.js';
import { FakeWireguard } from '../fakes/wireguard.js';
import { gatewayState } from '../support/gateway-state.js';

export const CHROMIUM = '/usr/bin/chromium';
export const PASSWORD = 'correct horse battery staple';
const ROOT = { actor: 'root', source: 'cli' };

export interface Admin {
  name: string;
  secret: string;
}

export interface UiEnv {
  dir: string;
  config: Config;
  ctx: GatewayContext;
  accounts: AccountService;
  /** https://127.0.0.1:PORT */
  url: string;
  /** What the server logged at error level (a test run should leave this empty). */
  serverErrors: object[];
  /** A new admin-role account (each TOTP step signs in only once per account, so sign-ins in one test run use fresh ones). */
  addAdmin(name: string): Promise<Admin>;
  close(): Promise<void>;
}

export async function startUiEnv(): Promise<UiEnv> {
  const state = gatewayState({
    name: 'browser',
    config: { sync: { listen: '192.168.1.1:7443' }, admin: { listen: ['127.0.0.1:0'], hosts: [], enrollMinutes: 15 } },
  });
  const { dir, config } = state;
  const ctx = openGateway(config);
  const serverErrors: object[] = [];
  const log = { info: () => undefined, warn: () => undefined, error: (o: object) => void serverErrors.push(o) };
  // The status page's kernel: the fakes' (no interface), and no daemon.
  const wg = new FakeWireguard();
  const status = { kernel: { wg, fw: new FakeFirewall(), tc: new FakeIngress((i) => wg.ifaces.has(i)) }, daemon: async () => ({ running: false }) };
  let ui: Awaited<ReturnType<typeof startAdminUi>>;
  try {
    ui = await startAdminUi(ctx, { log, onChange: () => undefined, ...status });
    if (!ui) throw new Error('startAdminUi returned null: config.admin is off');
  } catch (e) {
    ctx.close();
    state.cleanup();
    throw e;
  }
  const server = ui;
  const accounts = accountService({ db: ctx.db, box: () => createSecretBox(loadAdminKey(config.paths.adminKey, true)) });
  return {
    dir,
    config,
    ctx,
    accounts,
    url: `https://127.0.0.1:${server.ports()[0]}`,
    serverErrors,
    async addAdmin(name) {
      const a = await accounts.add({ name, role: 'admin', password: PASSWORD }, ROOT);
      const secret = new URL(a.totpUri).searchParams.get('secret');
      if (!secret) throw new Error(`no secret in ${a.totpUri}`);
      return { name, secret };
    },
    async close() {
      await server.close();
      ctx.close();
      state.cleanup();
    },
  };
}

/** The current TOTP code. */
export const totp = (secret: string): Promise<string> => generate({ secret });

/** A 6-digit code that is valid for none of the steps the server accepts (now ±1 step, and one more for slack). */
export async function wrongCode(secret: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const valid = new Set(await Promise.all([-2, -1, 0, 1, 2].map((s) => generate({ secret, epoch: now + s * 30 }))));
  for (let c = 123456; ; c++) if (!valid.has(String(c))) return String(c);
}

/**
 * Chromium as playwright-core starts it; `everyday` keeps two things a user's
 * browser does that Playwright turns off by default: the back/forward cache and
 * the prompt before a page that answered a POST is sent again.
 */
export function launchChromium(o: { everyday?: boolean } = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no ${CHROMIUM}: install Debian's chromium (scripts/setup.sh does, or: apt-get install chromium)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox'],
    ...(o.everyday ? { ignoreDefaultArgs: ['--disable-back-forward-cache', '--disable-prompt-on-repost'] } : {}),
  });
}

/**
 * A browser context for the UI. The server's certificate comes from the test
 * CA, which Chromium does not trust; the TLS setup is tested elsewhere.
 * Every dialog (alert, confirm) is recorded and dismissed, so an XSS that
 * runs shows up in `dialogs`; so do console errors (a CSP violation logs one).
 */
export async function newContext(
  browser: Browser,
  options: BrowserContextOptions = {},
): Promise<{ context: BrowserContext; dialogs: string[]; consoleErrors: string[] }> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, ...options });
  const dialogs: string[] = [];
  const consoleErrors: string[] = [];
  context.on('page', (p) => watch(p, dialogs, consoleErrors));
  return { context, dialogs, consoleErrors };
}

function watch(page: Page, dialogs: string[], consoleErrors: string[]): void {
  page.on('dialog', (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss().catch(() => undefined);
  });
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
}

/** Fills and submits the sign-in form; resolves with the HTTP status of the answer to the POST. */
export async function submitLogin(page: Page, base: string, name: string, password: string, code: string): Promise<number> {
  await page.goto(`${base}/login`);
  await page.fill('input[name=name]', name);
  await page.fill('input[name=password]', password);
  await page.fill('input[name=code]', code);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url() === `${base}/login` && r.request().method() === 'POST'),
    page.click('form[action="/login"] button[type=submit]'),
  ]);
  await page.waitForLoadState();
  return response.status();
}

/**
 * zbarimg on a PNG: the bytes of the one QR code in it. -Sbinary: no character
 * set guessing, the byte-mode data as it is. With --raw --oneshot zbarimg
 * 0.23.92 (Debian 12) writes exactly the data, no newline after it (checked:
 * "ab" decodes to 2 bytes, "ab\n" to 3), so nothing is stripped; nor may execa
 * strip the config's own final newline.
 */
export async function decodeQr(png: string): Promise<Buffer> {
  const r = await execa('zbarimg', ['--raw', '-q', '--oneshot', '-Sbinary', png], { encoding: 'buffer', stripFinalNewline: false, env: { LC_ALL: 'C' } });
  return Buffer.from(r.stdout);
}

/** `openssl pkcs12 -nokeys` with the passphrase on standard input (never in argv): the certificates, as PEM with subjects. */
export async function p12Certificates(file: string, passphrase: string): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  const r = await execa('openssl', ['pkcs12', '-in', file, '-passin', 'stdin', '-nokeys'], { input: passphrase + '\n', reject: false, env: { LC_ALL: 'C' } });
  return { ok: r.exitCode === 0, stdout: r.stdout, stderr: r.stderr };
}

/** Every regular file under `dir`, with its bytes (the state directory: database, WAL, keys). */
export function filesUnder(dir: string): { path: string; bytes: Buffer }[] {
  const out: { path: string; bytes: Buffer }[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) out.push(...filesUnder(p));
    else if (st.isFile()) out.push({ path: p, bytes: readFileSync(p) });
  }
  return out;
}
